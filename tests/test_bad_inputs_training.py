"""Bad inputs to labkit.training's public functions (fit, train_or_load, save_weights, load_weights,
seed_everything, get_device): each row is what a careless learner did, and the clear labkit error it must get
(message names the argument and what is allowed), never a bare traceback from torch, numpy, safetensors or
pathlib, never a silently wrong result. The same pattern as tests/test_bad_inputs.py.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
import torch
from conftest import assert_clear_labkit_error

import labkit as lk


@functools.cache
def _data():
    return lk.load_dataset("digits", verbose=False).train.subset(range(64))


def _student(**kw):
    torch.manual_seed(0)
    return lk.build_model("mlp", (1, 8, 8), 10, hidden=(8,), **kw)


def _cfg(**kw):
    return lk.TrainConfig(**({"epochs": 1, "batch_size": 32, "progress": False} | kw))


def _fit(**kw):
    args = {"student": _student(), "train": _data(), "config": _cfg()} | kw
    return lk.fit(args.pop("student"), args.pop("train"), **args)


def _kd(**kw):
    return _fit(method="kd", teacher=_student(), **kw)


def _set_after(**fields):
    cfg = _cfg()
    for k, v in fields.items():
        setattr(cfg, k, v)  # skips the constructor's checks
    return cfg


def _tmp(name: str, content: bytes | None = None):
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp(prefix="labkit-bad-")) / name
    if content is not None:
        path.write_bytes(content)
    return path


def _file_as_parent(name: str):
    return _tmp("a-file", b"x") / name


def _checkpoint(edit=None):
    """A real 1-epoch checkpoint of _fit(), then edit(state) applied to it."""
    path = _tmp("run.pt")
    with pytest.raises(_Stop):
        _fit(config=_cfg(epochs=2), checkpoint=path, callbacks=[_stop_after_one])
    if edit is not None:
        state = torch.load(path, weights_only=True)
        edit(state)
        torch.save(state, path)
    return path


class _Stop(Exception):
    pass


def _stop_after_one(epoch, record):
    raise _Stop


def _resume(path, **kw):
    try:
        return _fit(config=_cfg(epochs=2), checkpoint=path, **kw)
    except _Stop:
        raise AssertionError("trained instead of refusing") from None


def _weights_file():
    return lk.save_weights(_student(), _tmp("w.safetensors"))


NOT_A_MODULE = "resnet"
BAD = [
    # (what a learner did, call, error type, words the message must contain)
    # ----------------------------------------------------------------------------------------------- fit
    ("fit: student is a string", lambda: _fit(student=NOT_A_MODULE), TypeError, "student must be a torch nn.Module"),
    ("fit: train is a tuple (x, y)", lambda: _fit(train=(_data().x, _data().y)), TypeError, r"train must be an lk\.ImageData.*tuple"),
    ("fit: train has no examples", lambda: _fit(train=_data().subset([])), ValueError, "has no examples"),
    ("fit: ce on all-unlabelled data", lambda: _fit(train=dataclasses.replace(_data(), y=torch.full((64,), -1))), ValueError, "every example of train .* is unlabelled"),
    ("fit: config is a dict", lambda: _fit(config={"epochs": 1}), TypeError, r"config must be an lk\.TrainConfig.*TrainConfig\(\*\*config\)"),
    ("fit: config.epochs = 0 set after construction", lambda: _fit(config=_set_after(epochs=0)), ValueError, "epochs must be an integer >= 1"),
    ("fit: config.lr = -1 set after construction", lambda: _fit(config=_set_after(lr=-1.0)), ValueError, "lr must be"),
    ("fit: config.optimizer typo set after construction", lambda: _fit(config=_set_after(optimizer="adam")), ValueError, "unknown optimizer 'adam'"),
    ("fit: method is a list", lambda: _fit(method=["kd"]), ValueError, "unknown method"),
    ("fit: teacher is a string", lambda: _fit(method="kd", teacher=NOT_A_MODULE), TypeError, "teacher must be a torch nn.Module"),
    ("fit: student without parameters", lambda: _fit(student=torch.nn.Flatten()), ValueError, "no trainable parameters"),
    ("fit: frozen student", lambda: _fit(student=_student().requires_grad_(False)), ValueError, "no trainable parameters"),
    ("fit: teacher_logits a numpy array", lambda: _kd(teacher_logits=np.zeros((64, 10), np.float32)), TypeError, "teacher_logits must be a floating torch.Tensor.*ndarray"),
    ("fit: teacher_logits integer", lambda: _kd(teacher_logits=torch.zeros(64, 10, dtype=torch.long)), TypeError, "teacher_logits must be a floating torch.Tensor.*int64"),
    ("fit: teacher_logits with NaN", lambda: _kd(teacher_logits=torch.zeros(64, 10).index_fill_(0, torch.tensor([3]), float("nan"))), ValueError, r"teacher_logits hold NaN or \+inf in 1 row\(s\) \(first \[3\]\)"),
    ("fit: teacher_logits with +inf", lambda: _kd(teacher_logits=torch.zeros(64, 10).index_fill_(1, torch.tensor([2]), float("inf"))), ValueError, r"NaN or \+inf in 64 row"),
    ("fit: teacher_logits of the wrong shape", lambda: _kd(teacher_logits=torch.zeros(10, 64)), ValueError, r"teacher_logits must have shape \(64, 10\)"),
    ("fit: val is a tensor", lambda: _fit(val=_data().x), TypeError, r"val must be an lk\.ImageData"),
    ("fit: val of other images", lambda: _fit(val=dataclasses.replace(_data(), x=torch.zeros(64, 1, 4, 4))), ValueError, r"val must look like train: images \(1, 4, 4\) vs \(1, 8, 8\)"),
    ("fit: val with no examples", lambda: _fit(val=_data().subset([])), ValueError, "val has no examples"),
    ("fit: callbacks a bare function", lambda: _fit(callbacks=print), TypeError, r"callbacks must be a list of functions.*pass \[print\]"),
    ("fit: callbacks hold a number", lambda: _fit(callbacks=[1]), TypeError, "callbacks must be a list of functions"),
    ("fit: callbacks a number", lambda: _fit(callbacks=3), TypeError, "callbacks must be a list of functions"),
    ("fit: checkpoint an int", lambda: _fit(checkpoint=3), TypeError, r"checkpoint must be a path \(str or pathlib.Path\)"),
    ("fit: checkpoint is a folder", lambda: _fit(checkpoint=_tmp("")), ValueError, "is a directory; pass a file path"),
    ("fit: checkpoint under a file", lambda: _fit(checkpoint=_file_as_parent("run.pt")), ValueError, "cannot be written.*found before training"),
    ("fit: checkpoint empty file", lambda: _fit(checkpoint=_tmp("run.pt", b"")), RuntimeError, "corrupted or not a labkit training checkpoint"),
    ("fit: checkpoint truncated", lambda: _resume(_tmp("run.pt", _checkpoint().read_bytes()[:300])), RuntimeError, "corrupted or not a labkit training checkpoint"),
    ("fit: checkpoint holds a tensor", lambda: (torch.save(torch.ones(2), p := _tmp("t.pt")), _fit(checkpoint=p)), RuntimeError, "not a labkit training checkpoint .*Tensor"),
    ("fit: checkpoint from an older labkit", lambda: _resume(_checkpoint(lambda s: s.pop("run"))), ValueError, "older labkit.*delete"),
    ("fit: checkpoint lacks the optimizer", lambda: _resume(_checkpoint(lambda s: s.pop("optimizer"))), RuntimeError, r"lacks \['optimizer'\]"),
    ("fit: checkpoint of another lr", lambda: _fit(config=_cfg(epochs=2, lr=0.1), checkpoint=_checkpoint()), ValueError, r"config\.lr: 0\.002 \(checkpoint\) vs 0\.1 \(now\)"),
    ("fit: checkpoint of fewer epochs", lambda: _fit(config=_cfg(epochs=1), checkpoint=_checkpoint()), ValueError, r"config\.epochs: 2 \(checkpoint\) vs 1 \(now\)"),
    ("fit: checkpoint of another optimizer", lambda: _fit(config=_cfg(epochs=2, optimizer="sgd"), checkpoint=_checkpoint()), ValueError, "optimizer: 'AdamW' .checkpoint. vs 'SGD'"),
    ("fit: checkpoint of another architecture", lambda: _fit(student=lk.build_model("mlp", (1, 8, 8), 10, hidden=(4,)), config=_cfg(epochs=2), checkpoint=_checkpoint()), ValueError, r"student tensors \(checkpoint vs now\): layers.0.0.weight \[8, 64\] vs \[4, 64\]"),
    ("fit: checkpoint of other data", lambda: _fit(train=_data().subset(range(32)), config=_cfg(epochs=2), checkpoint=_checkpoint()), ValueError, "differs in data: .digits, 64 examples"),
    # ------------------------------------------------------------------------------------- train_or_load
    ("train_or_load: model is a string", lambda: lk.train_or_load(NOT_A_MODULE, _data(), name="t", config=_cfg(), cache=_tmp("c")), TypeError, "model must be a torch nn.Module"),
    ("train_or_load: config is a dict", lambda: lk.train_or_load(_student(), _data(), name="t", config={"epochs": 1}, cache=_tmp("c")), TypeError, r"config must be an lk\.TrainConfig"),
    ("train_or_load: empty name", lambda: lk.train_or_load(_student(), _data(), name="", config=_cfg(), cache=_tmp("c")), ValueError, "name must be a short file-name prefix"),
    ("train_or_load: name is a path", lambda: lk.train_or_load(_student(), _data(), name="../teacher", config=_cfg(), cache=_tmp("c")), ValueError, r"no '/'"),
    ("train_or_load: name is a number", lambda: lk.train_or_load(_student(), _data(), name=3, config=_cfg(), cache=_tmp("c")), ValueError, "name must be a short file-name prefix"),
    ("train_or_load: cache under a file", lambda: lk.train_or_load(_student(), _data(), name="t", config=_cfg(), cache=_file_as_parent("c")), ValueError, "cache folder .* cannot be written"),
    ("train_or_load: cache an int", lambda: lk.train_or_load(_student(), _data(), name="t", config=_cfg(), cache=7), TypeError, "cache must be a file path"),
    ("train_or_load: unknown method", lambda: lk.train_or_load(_student(), _data(), name="t", method="distil", config=_cfg(), cache=_tmp("c")), ValueError, "unknown method 'distil'"),
    # ------------------------------------------------------------------------------- save / load weights
    ("save_weights: model is a state_dict", lambda: lk.save_weights(_student().state_dict(), _tmp("w.safetensors")), TypeError, "save_weights needs an nn.Module"),
    ("save_weights: path an int", lambda: lk.save_weights(_student(), 3), TypeError, "path must be a file path"),
    ("save_weights: path under a file", lambda: lk.save_weights(_student(), _file_as_parent("w.safetensors")), ValueError, "weights file .* cannot be written"),
    ("save_weights: path is a folder", lambda: lk.save_weights(_student(), _tmp("")), ValueError, "is a directory"),
    ("load_weights: model is None", lambda: lk.load_weights(None, _weights_file()), TypeError, "load_weights needs an nn.Module"),
    ("load_weights: path None", lambda: lk.load_weights(_student(), None), TypeError, "path must be a file path"),
    ("load_weights: path is a folder", lambda: lk.load_weights(_student(), _tmp("")), ValueError, "is a directory"),
    ("load_weights: missing file", lambda: lk.load_weights(_student(), _tmp("none.safetensors")), FileNotFoundError, "no weights file at"),
    ("load_weights: empty file", lambda: lk.load_weights(_student(), _tmp("w.safetensors", b"")), RuntimeError, "is corrupted"),
    ("load_weights: truncated file", lambda: lk.load_weights(_student(), _tmp("w.safetensors", _weights_file().read_bytes()[:60])), RuntimeError, "is corrupted"),
    ("load_weights: a torch pickle", lambda: (torch.save(_student().state_dict(), p := _tmp("w.pt")), lk.load_weights(_student(), p)), RuntimeError, "is corrupted"),
    ("load_weights: another architecture", lambda: lk.load_weights(lk.build_model("mlp", (1, 8, 8), 10, hidden=(4,)), _weights_file()), RuntimeError, r"do not fit this MLP: size mismatch for layers.0.0.weight"),
    # ------------------------------------------------------------------------------ seeds and devices
    ("seed_everything: a string", lambda: lk.seed_everything("0"), ValueError, r"seed must be an integer in \[0, 2\*\*32\)"),
    ("seed_everything: negative", lambda: lk.seed_everything(-1), ValueError, r"seed must be an integer in \[0, 2\*\*32\), got -1"),
    ("seed_everything: a float", lambda: lk.seed_everything(1.5), ValueError, "got 1.5"),
    ("seed_everything: True", lambda: lk.seed_everything(True), ValueError, "got True"),
    ("seed_everything: 2**40 (numpy's limit)", lambda: lk.seed_everything(2**40), ValueError, r"\[0, 2\*\*32\)"),
    ("seed_everything: deterministic='yes'", lambda: lk.seed_everything(0, deterministic="yes"), TypeError, "deterministic must be True or False"),
    ("get_device: unknown name", lambda: lk.get_device("tpu"), ValueError, "unknown device 'tpu'"),
    ("get_device: an int", lambda: lk.get_device(0), TypeError, "device must be a str"),
    ("get_device: None", lambda: lk.get_device(None), TypeError, "device must be a str"),
    ("get_device: bad index", lambda: lk.get_device("cpu:x"), ValueError, "must be a device number"),
    ("TrainConfig: device typo reaches fit", lambda: _fit(config=_cfg(device="gpu")), ValueError, "unknown device 'gpu'"),
]  # fmt: skip
if not torch.cuda.is_available():
    BAD += [
        ("get_device: cuda on a CPU machine", lambda: lk.get_device("cuda:0"), ValueError, "no CUDA GPU is available"),
        ("get_device: torch.device('cuda') on a CPU machine", lambda: lk.get_device(torch.device("cuda")), ValueError, "no CUDA GPU"),
    ]  # fmt: skip


@pytest.mark.parametrize("call, error, words", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_gives_a_clear_error(call, error, words):
    with pytest.raises(error, match=words) as info:
        call()
    assert_clear_labkit_error(info)


def test_valid_odd_inputs_still_work(tmp_path):
    # numpy integers are seeds; a torch.device and a pathlib path are accepted as they are
    lk.seed_everything(np.int64(3))
    assert lk.get_device(torch.device("cpu")) == torch.device("cpu")
    path = lk.save_weights(_student(), tmp_path / "sub" / "w.safetensors")  # missing folders are created
    lk.load_weights(_student(), str(path))
    assert not list(path.parent.glob(".*"))  # no temporary or probe file left behind
