"""The training loop: determinism, teacher handling, cached logits, resume, checkpoints, bad inputs."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re

import pytest
import torch

import labkit as lk
import labkit.training
from labkit.data import load_dataset
from labkit.models import build_model
from labkit.training import (
    TrainConfig,
    fit,
    get_device,
    load_weights,
    save_weights,
    seed_everything,
    train_or_load,
)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", verbose=False)


@pytest.fixture(scope="module")
def teacher(digits):
    torch.manual_seed(0)
    t = build_model("resnet", digits.in_shape, digits.num_classes, width=8, blocks=(1, 1, 1))
    fit(t, digits.train, config=TrainConfig(epochs=3, batch_size=64, progress=False))
    return t


def student(digits, seed=0, name="cnn", **kw):
    torch.manual_seed(seed)
    kw = kw or ({"width": 4, "stages": 3} if name == "cnn" else {})
    return build_model(name, digits.in_shape, digits.num_classes, **kw)


def cfg(**kw):
    base = {"epochs": 2, "batch_size": 64, "progress": False}
    return TrainConfig(**(base | kw))


def weights(m):
    return torch.cat([p.detach().flatten() for p in m.state_dict().values() if p.is_floating_point()])


def test_scratch_training_learns(digits):
    s = student(digits)
    h = fit(s, digits.train, config=cfg(epochs=4), val=digits.test)
    assert h.records[-1]["train_loss"] < h.records[0]["train_loss"]
    assert h.records[-1]["val_accuracy"] > 0.5  # 10 classes: chance is 0.1
    assert [r["epoch"] for r in h.records] == [1, 2, 3, 4]


def test_same_seed_same_metrics_on_cpu(digits, teacher):
    runs = []
    for _ in range(2):
        s = student(digits, seed=3)
        h = fit(s, digits.train, method="kd", teacher=teacher, config=cfg(seed=7), val=digits.test)
        runs.append((weights(s), [(r["train_loss"], r["val_accuracy"]) for r in h.records]))
    assert torch.equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    s = student(digits, seed=3)
    fit(s, digits.train, method="kd", teacher=teacher, config=cfg(seed=8))
    assert not torch.equal(runs[0][0], weights(s))  # the seed matters


def test_teacher_untouched_and_in_eval(digits, teacher):
    before = weights(teacher).clone()
    fit(
        student(digits), digits.train, method="kd", teacher=teacher, config=cfg(epochs=1, cache_teacher=False)
    )
    assert torch.equal(before, weights(teacher))
    assert not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())


def test_cached_and_uncached_teacher_logits_agree(digits, teacher):
    a, b = student(digits), student(digits)
    fit(a, digits.train, method="kd", teacher=teacher, config=cfg(cache_teacher=True))
    fit(b, digits.train, method="kd", teacher=teacher, config=cfg(cache_teacher=False))
    torch.testing.assert_close(weights(a), weights(b), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("method", ["hint", "attention"])
def test_cached_teacher_features_match_a_teacher_pass_per_step(digits, teacher, method, monkeypatch):
    # The feature cache (teacher features computed once) trains the same student as a teacher pass per step,
    # and a cache over the memory cap falls back to the per-step pass instead of failing.
    runs = {}
    for name, cache, limit in (("cached", True, 2**30), ("per step", False, 2**30), ("over cap", True, 1)):
        monkeypatch.setattr(lk.training, "FEATURE_CACHE_BYTES", limit)
        calls = []
        hook = teacher.register_forward_hook(lambda m, i, o, calls=calls: calls.append(len(i[0])))
        s = student(digits)
        fit(
            s,
            digits.train,
            method=method,
            teacher=teacher,
            config=cfg(epochs=2, beta=0.5, cache_teacher=cache),
        )
        hook.remove()
        runs[name] = (weights(s), len(calls))
    n_batches = -(-len(digits.train) // cfg().batch_size)
    assert runs["cached"][1] < n_batches  # the teacher ran over the training set once, not per batch
    assert runs["per step"][1] == 2 * n_batches
    assert runs["over cap"][1] == 2 * n_batches + 1  # a 2-image probe of the sizes, then a pass per batch
    torch.testing.assert_close(runs["cached"][0], runs["per step"][0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(runs["over cap"][0], runs["per step"][0], atol=0, rtol=0)


def test_attention_loss_takes_precomputed_teacher_maps():
    g = torch.Generator().manual_seed(0)
    fs = [torch.randn(4, 3, 6, 6, generator=g), torch.randn(4, 5, 3, 3, generator=g)]
    ft = [torch.randn(4, 7, 6, 6, generator=g), torch.randn(4, 2, 3, 3, generator=g)]
    maps = [lk.attention_map(f) for f in ft]
    torch.testing.assert_close(lk.attention_transfer_loss(fs, maps), lk.attention_transfer_loss(fs, ft))
    with pytest.raises(ValueError, match="precomputed map must be"):
        lk.attention_transfer_loss(fs, [maps[0][:, :5], maps[1]])


@pytest.mark.parametrize("method", ["hint", "attention"])
def test_feature_methods_train_their_extra_parameters(digits, teacher, method):
    s = student(digits)
    h = fit(s, digits.train, method=method, teacher=teacher, config=cfg(epochs=3, beta=0.1), val=digits.test)
    assert h.records[-1]["val_accuracy"] > 0.2


def test_transfer_set_labels_minus_one_are_ignored_by_ce(digits):
    train = digits.train
    y = train.y.clone()
    y[20:] = -1
    h = fit(student(digits), dataclasses.replace(train, y=y), config=cfg(epochs=1))
    assert h.records[-1]["train_loss"] > 0


def test_interrupted_run_resumes_to_the_same_weights(digits, teacher, tmp_path):
    full = student(digits, seed=1)
    fit(full, digits.train, method="kd", teacher=teacher, config=cfg(epochs=4))

    class Killed(Exception):
        pass

    def kill_after_two(epoch, record):
        if epoch == 2:
            raise Killed

    ckpt = tmp_path / "run.pt"
    s = student(digits, seed=1)
    with pytest.raises(Killed):
        fit(
            s,
            digits.train,
            method="kd",
            teacher=teacher,
            config=cfg(epochs=4),
            checkpoint=ckpt,
            callbacks=[kill_after_two],
        )
    resumed = student(digits, seed=5)  # a fresh process would build the model again; weights come from disk
    h = fit(resumed, digits.train, method="kd", teacher=teacher, config=cfg(epochs=4), checkpoint=ckpt)
    assert [r["epoch"] for r in h.records] == [1, 2, 3, 4]
    assert torch.equal(weights(full), weights(resumed))


def test_corrupted_checkpoint_is_a_clear_error(digits, tmp_path):
    ckpt = tmp_path / "run.pt"
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="corrupted or not a labkit training checkpoint"):
        fit(student(digits), digits.train, config=cfg(), checkpoint=ckpt)


def test_safetensors_roundtrip_and_corruption(digits, tmp_path):
    a, b = student(digits, seed=0), student(digits, seed=1)
    path = save_weights(a, tmp_path / "w.safetensors")
    load_weights(b, path)
    assert torch.equal(weights(a), weights(b))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(RuntimeError, match="corrupted"):
        load_weights(b, path)
    with pytest.raises(RuntimeError, match="do not fit this MLP: "):
        load_weights(student(digits, name="mlp"), save_weights(a, tmp_path / "x.safetensors"))
    with pytest.raises(FileNotFoundError):
        load_weights(b, tmp_path / "missing.safetensors")


def test_train_or_load_skips_training_when_cached(digits, tmp_path, capsys):
    a = student(digits, seed=0)
    h1 = train_or_load(a, digits.train, name="t", config=cfg(), cache=tmp_path)
    b = student(digits, seed=0)  # the same call again (a rerun notebook): the same initial weights
    h2 = train_or_load(b, digits.train, name="t", config=cfg(), cache=tmp_path)
    assert "loaded cached t" in capsys.readouterr().out
    assert torch.equal(weights(a), weights(b)) and h1.records == h2.records
    c = student(digits, seed=0)
    train_or_load(c, digits.train, name="t", config=cfg(epochs=1), cache=tmp_path)  # new config: retrains
    assert len(list(tmp_path.glob("t-*.safetensors"))) == 2


def test_train_or_load_key_covers_the_initial_weights_and_the_teacher(digits, teacher, tmp_path, capsys):
    # #15 item 1: students built from other initial weights train their own entry (before, the first one trained
    # decided every later one); the teacher of a distilled run is part of the key too
    c = cfg(epochs=1)
    first = student(digits, seed=0)
    train_or_load(first, digits.train, name="t", config=c, cache=tmp_path)
    other = student(digits, seed=9)
    before = weights(other).clone()
    train_or_load(other, digits.train, name="t", config=c, cache=tmp_path)
    assert "loaded cached" not in capsys.readouterr().out
    assert len(list(tmp_path.glob("t-*.safetensors"))) == 2
    assert not torch.equal(weights(other), before) and not torch.equal(weights(other), weights(first))
    again = student(digits, seed=9)  # the same call again loads what the seed-9 call trained
    train_or_load(again, digits.train, name="t", config=c, cache=tmp_path)
    assert "loaded cached t" in capsys.readouterr().out and torch.equal(weights(again), weights(other))
    # "auto" and "cpu" are the same run on a CPU-only machine: one entry
    if not torch.cuda.is_available():
        train_or_load(student(digits, seed=9), digits.train, name="t", config=cfg(epochs=1, device="cpu"),
                      cache=tmp_path)  # fmt: skip
        assert "loaded cached t" in capsys.readouterr().out
    # a distilled student: another teacher (weights changed) is another entry
    changed = copy.deepcopy(teacher)
    for t in (teacher, teacher, changed):
        train_or_load(student(digits, seed=0), digits.train, name="kd", method="kd", teacher=t, config=c,
                      cache=tmp_path)  # fmt: skip
        with torch.no_grad():
            next(changed.parameters()).add_(0.01)  # changed differs from teacher from now on
    assert len(list(tmp_path.glob("kd-*.safetensors"))) == 2
    assert capsys.readouterr().out.count("loaded cached kd") == 1


def test_train_or_load_gives_the_same_model_for_the_same_call(digits, tmp_path):
    # fit seeds everything it runs (seed_everything(config.seed)), so the same call in a fresh cache trains the
    # same weights: whoever trains the cached teacher first, it is the same teacher
    runs = []
    for folder in ("a", "b"):
        torch.manual_seed(123)  # whatever the global RNG state before the call
        m = student(digits, seed=0)
        torch.rand(7)
        train_or_load(m, digits.train, name="t", config=cfg(epochs=1), cache=tmp_path / folder)
        runs.append(weights(m))
    assert torch.equal(*runs)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        p.name for p in (tmp_path / "b").iterdir()
    )


def test_seed_everything_repeats_random_draws():
    seed_everything(11)
    a = torch.rand(3)
    seed_everything(11)
    assert torch.equal(a, torch.rand(3))


# ----------------------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"temperature": 0}, "temperature must be a finite number > 0"),
        ({"alpha": 1.5}, r"alpha must be in \[0, 1\]"),
        ({"epochs": 0}, "epochs must be an integer >= 1"),
        ({"lr": -1.0}, "lr must be a number > 0"),
        ({"optimizer": "adamx"}, "unknown optimizer 'adamx'"),
        ({"beta": -1.0}, "beta"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_teacher_student_class_mismatch(digits):
    torch.manual_seed(0)
    t5 = build_model("mlp", digits.in_shape, 5)
    with pytest.raises(ValueError, match="teacher has 5 classes but student has 10"):
        fit(student(digits), digits.train, method="kd", teacher=t5, config=cfg())


def test_kd_without_teacher_and_unknown_method(digits):
    with pytest.raises(ValueError, match="pass teacher="):
        fit(student(digits), digits.train, method="kd", config=cfg())
    with pytest.raises(ValueError, match="unknown method 'distill'"):
        fit(student(digits), digits.train, method="distill", config=cfg())


def test_wrong_teacher_logits_shape(digits, teacher):
    with pytest.raises(ValueError, match="one row per training example"):
        fit(
            student(digits),
            digits.train,
            method="kd",
            teacher=teacher,
            teacher_logits=torch.zeros(3, 10),
            config=cfg(),
        )


def test_devices():
    assert get_device("cpu").type == "cpu"
    assert get_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU is available"):
            get_device("cuda")


def test_train_or_load_cache_key_follows_data_content_not_path(digits, tmp_path, capsys):
    import dataclasses

    a = student(digits, seed=0)
    train_or_load(a, digits.train, name="t", config=cfg(epochs=1), cache=tmp_path)
    moved = dataclasses.replace(
        digits.train, source="local: /elsewhere/digits.npz"
    )  # same data, other folder
    train_or_load(student(digits, seed=0), moved, name="t", config=cfg(epochs=1), cache=tmp_path)
    assert "loaded cached t" in capsys.readouterr().out
    changed = dataclasses.replace(digits.train, x=digits.train.x.flip(-1))  # same size, other content
    train_or_load(student(digits, seed=0), changed, name="t", config=cfg(epochs=1), cache=tmp_path)
    assert len(list(tmp_path.glob("t-*.safetensors"))) == 2


def test_paired_runs_share_one_teacher_pass_until_the_teacher_changes(digits, teacher):
    # lk.compare's arms call fit with the same teacher and training set: the teacher runs over it once, and a
    # changed teacher (weights updated in place, or a different setting) is run again, never served stale.
    teacher = copy.deepcopy(teacher)  # changed below: not the module's shared fixture
    calls = []
    hook = teacher.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    a, b = student(digits), student(digits)
    fit(a, digits.train, method="kd", teacher=teacher, config=cfg(epochs=1))
    first = len(calls)
    fit(b, digits.train, method="kd", teacher=teacher, config=cfg(epochs=1))
    assert first > 0 and len(calls) == first  # the second run reused the first run's teacher logits
    with torch.no_grad():
        next(teacher.parameters()).add_(0.01)  # an in-place change of the teacher's weights
    c = student(digits)
    fit(c, digits.train, method="kd", teacher=teacher, config=cfg(epochs=1))
    assert len(calls) > first
    teacher.some_setting = "changed"  # a plain attribute that may change what the teacher returns
    n = len(calls)
    fit(student(digits), digits.train, method="kd", teacher=teacher, config=cfg(epochs=1))
    assert len(calls) > n
    hook.remove()


def test_alternating_feature_arms_keep_their_teacher_passes(digits, teacher):
    # lk.compare runs its arms seed by seed: hint, attention, hint, attention... Each method's teacher pass is kept
    # (labkit.training.MEMO_ENTRIES entries), so the second seed runs the teacher no more; a third method evicts
    # the least recently used one, which then runs again.
    from labkit import training

    teacher = copy.deepcopy(teacher)
    calls = []
    hook = teacher.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    methods = ("hint", "attention")
    for m in methods:
        fit(student(digits), digits.train, method=m, teacher=teacher, config=cfg(epochs=1, beta=0.1))
    first = len(calls)
    for m in methods:
        fit(student(digits), digits.train, method=m, teacher=teacher, config=cfg(epochs=1, beta=0.1))
    assert first > 0 and len(calls) == first
    assert training.MEMO_ENTRIES == 2
    fit(student(digits), digits.train, method="kd", teacher=teacher, config=cfg(epochs=1))  # evicts "hint"
    n = len(calls)
    fit(student(digits), digits.train, method="attention", teacher=teacher, config=cfg(epochs=1, beta=0.1))
    assert len(calls) == n  # still kept
    fit(student(digits), digits.train, method="hint", teacher=teacher, config=cfg(epochs=1, beta=0.1))
    assert len(calls) > n  # evicted, run again
    hook.remove()


def test_a_truncated_cache_entry_is_trained_again_not_a_crash(digits, tmp_path, capsys):
    # a run killed while writing the cache (or a corrupted file) must not break every later train_or_load
    import json

    c = cfg(epochs=1)
    lk.train_or_load(student(digits), digits.train, name="t", config=c, cache=tmp_path)
    meta, weights = next(tmp_path.glob("t-*.json")), next(tmp_path.glob("t-*.safetensors"))
    for broken, keep in ((meta, meta.read_text()[:5]), (weights, None)):
        if keep is None:
            broken.write_bytes(broken.read_bytes()[:100])
        else:
            broken.write_text(keep)
        capsys.readouterr()
        history = lk.train_or_load(student(digits), digits.train, name="t", config=c, cache=tmp_path)
        out = capsys.readouterr().out
        assert "unreadable" in out and "training it again" in out
        assert json.loads(meta.read_text()) == json.loads(json.dumps(history.records))  # written whole again
        lk.train_or_load(student(digits), digits.train, name="t", config=c, cache=tmp_path)
        assert "loaded cached t" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [meta.name, weights.name]
    )  # no temporary files


# ----------------------------------------------------------------------------- checkpoints belong to one run
class Killed(Exception):
    pass


def _kill_after(n):
    def cb(epoch, record):
        if epoch == n:
            raise Killed

    return cb


@pytest.fixture()
def one_epoch_checkpoint(digits, tmp_path):
    """A 3-epoch ce run killed after its first epoch: the checkpoint file."""
    ckpt = tmp_path / "run.pt"
    with pytest.raises(Killed):
        fit(
            student(digits, seed=1),
            digits.train,
            config=cfg(epochs=3),
            checkpoint=ckpt,
            callbacks=[_kill_after(1)],
        )
    return ckpt


def _other_run(digits, change):
    """fit arguments of the killed run with one thing changed."""
    kw = {"student": student(digits, seed=1), "train": digits.train, "config": cfg(epochs=3), "method": "ce"}
    kw.update(change(digits))
    return kw


@pytest.mark.parametrize(
    "change, fields",
    [
        (
            lambda d: {"config": cfg(epochs=3, lr=1e-3)},
            [r"config\.lr: 0\.002 \(checkpoint\) vs 0\.001 \(now\)"],
        ),
        (lambda d: {"config": cfg(epochs=3, seed=4)}, [r"config\.seed: 0 \(checkpoint\) vs 4 \(now\)"]),
        (
            lambda d: {"config": cfg(epochs=2)},
            [r"config\.epochs: 3 \(checkpoint\) vs 2 \(now\)", "total steps"],
        ),
        (lambda d: {"config": cfg(epochs=3, batch_size=32)}, ["config.batch_size", "total steps"]),
        (lambda d: {"config": cfg(epochs=3, optimizer="sgd")}, ["config.optimizer", "optimizer: 'AdamW'"]),
        (lambda d: {"train": d.train.subset(range(600))}, ["data: 'digits, 1347 examples"]),
        (
            lambda d: {"student": student(d, name="mlp")},
            [r"student: .SmallCNN. \(checkpoint\) vs .MLP. \(now\)", "student tensors"],
        ),
        (
            lambda d: {"method": "kd", "teacher": build_model("mlp", d.in_shape, 10, hidden=(8,))},
            [r"method: 'ce' \(checkpoint\) vs 'kd' \(now\)", r"teacher: None \(checkpoint\) vs 'MLP weights"],
        ),
    ],
    ids=["lr", "seed", "epochs", "batch_size", "optimizer", "data", "architecture", "method"],
)
def test_a_checkpoint_of_another_run_is_refused(digits, one_epoch_checkpoint, change, fields):
    # #15 item 3: a changed lr, seed, data, epoch count, architecture or optimizer was resumed silently (or gave a
    # raw torch error / KeyError: 'momentum'); now a ValueError names each field, old vs new, and how to start fresh
    kw = _other_run(digits, change)
    with pytest.raises(ValueError, match="belongs to another run") as info:
        fit(**kw, checkpoint=one_epoch_checkpoint)
    msg = str(info.value)
    for f in fields:
        assert re.search(f, msg), (f, msg)
    assert f"delete {one_epoch_checkpoint} or pass another checkpoint= path" in msg
    # the same run resumes (and finishes) from the same file
    h = fit(student(digits, seed=7), digits.train, config=cfg(epochs=3), checkpoint=one_epoch_checkpoint)
    assert [r["epoch"] for r in h.records] == [1, 2, 3]


def test_an_old_checkpoint_without_its_run_record_is_a_clear_error(digits, one_epoch_checkpoint):
    state = torch.load(one_epoch_checkpoint, weights_only=True)
    del state["run"]
    torch.save(state, one_epoch_checkpoint)
    with pytest.raises(ValueError, match="written by an older labkit and does not record which run") as info:
        fit(student(digits, seed=1), digits.train, config=cfg(epochs=3), checkpoint=one_epoch_checkpoint)
    assert "delete" in str(info.value)
    del state["optimizer"]  # and a dict that lacks the training state: no KeyError
    torch.save(state, one_epoch_checkpoint)
    with pytest.raises(RuntimeError, match=r"lacks \['optimizer'\]"):
        fit(student(digits, seed=1), digits.train, config=cfg(epochs=3), checkpoint=one_epoch_checkpoint)


def test_checkpoints_keep_and_restore_the_cuda_rng_state(digits, tmp_path, monkeypatch):
    # on a GPU the CUDA generators (dropout on the device) are part of the state: saved and restored (mocked here)
    saved_state = [torch.arange(8, dtype=torch.uint8), torch.arange(8, 16, dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: saved_state)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: restored.append(list(states)))
    ckpt = tmp_path / "run.pt"
    config = cfg(epochs=2, device="cpu")
    with pytest.raises(Killed):
        fit(student(digits), digits.train, config=config, checkpoint=ckpt, callbacks=[_kill_after(1)])
    state = torch.load(ckpt, weights_only=True)
    assert [t.tolist() for t in state["rng_cuda"]] == [t.tolist() for t in saved_state]
    fit(student(digits), digits.train, config=config, checkpoint=ckpt)
    assert len(restored) == 1 and [t.tolist() for t in restored[0]] == [saved_state[0].tolist()]  # 1 GPU here
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU machine stores none
    assert (
        labkit.training._checkpoint_state(
            student(digits), torch.nn.Linear(1, 1), *_opt_sched(), 1, lk.History(), {}
        )["rng_cuda"]
        == []
    )


def _opt_sched():
    opt = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)


# --------------------------------------------------------------------------------- unwritable paths, up front
def test_an_unwritable_checkpoint_or_cache_path_is_found_before_training(digits, tmp_path, monkeypatch):
    # #15 item 7: found only after training finished; now before the first step, with the path in the message
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    s = student(digits)
    before = weights(s).clone()
    epochs = []
    with pytest.raises(ValueError, match=f"checkpoint {blocker / 'run.pt'} cannot be written"):
        fit(
            s,
            digits.train,
            config=cfg(),
            checkpoint=blocker / "run.pt",
            callbacks=[lambda e, r: epochs.append(e)],
        )
    with pytest.raises(ValueError, match=f"cache folder {blocker / 'sub'} cannot be written"):
        train_or_load(s, digits.train, name="t", config=cfg(), cache=blocker / "sub")
    with pytest.raises(ValueError, match="is a directory"):
        fit(s, digits.train, config=cfg(), checkpoint=tmp_path)
    assert epochs == [] and torch.equal(weights(s), before)  # nothing trained
    # a folder without write permission (root ignores chmod, so the refusal is simulated)
    real = type(tmp_path).write_bytes

    def refuse(self, data):
        if self.name.startswith(".labkit-write-test"):
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, data)

    monkeypatch.setattr(type(tmp_path), "write_bytes", refuse)
    with pytest.raises(
        ValueError, match=f"checkpoint {tmp_path / 'ok' / 'run.pt'} cannot be written.*Permission"
    ):
        fit(s, digits.train, config=cfg(), checkpoint=tmp_path / "ok" / "run.pt")
    with pytest.raises(ValueError, match=f"cache folder {tmp_path / 'c'} cannot be written.*Permission"):
        train_or_load(s, digits.train, name="t", config=cfg(), cache=tmp_path / "c")
    assert torch.equal(weights(s), before)


# ---------------------------------------------------------------------------------------------- on a GPU
@pytest.mark.parametrize(
    "capability, dtype, scaler",
    [((7, 5), torch.float16, True), ((7, 0), torch.float16, True), ((8, 0), torch.bfloat16, False),
     ((9, 0), torch.bfloat16, False)],
    ids=["T4 7.5", "V100 7.0", "A100 8.0", "H100 9.0"],
)  # fmt: skip
def test_autocast_uses_bf16_from_compute_capability_8_and_fp16_with_a_scaler_below(
    capability, dtype, scaler, monkeypatch
):
    # recent torch reports bf16 as supported on pre-Ampere GPUs (emulated, slower than fp32): the capability decides
    import warnings

    from labkit.training import _amp_dtype, _autocast, _use_scaler

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    cuda = torch.device("cuda")
    assert _amp_dtype(cuda) == dtype
    assert _use_scaler(cuda, True) is scaler and _use_scaler(cuda, False) is False
    with warnings.catch_warnings():  # on a CPU-only machine torch warns and disables the CUDA autocast
        warnings.simplefilter("ignore")
        assert _autocast(cuda, True).fast_dtype == dtype
    cpu = torch.device("cpu")
    assert _amp_dtype(cpu) is None and _use_scaler(cpu, True) is False
    assert not _autocast(cpu, True)._enabled


@pytest.mark.parametrize(("capability", "precision"), [((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")])
def test_accelerate_and_mutual_learning_follow_the_same_precision_rule(capability, precision, monkeypatch):
    # the accelerate path (TrainConfig(accelerate=True)) asked torch.cuda.is_bf16_supported(), true on a T4
    from labkit import distributed, ensemble, training

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(training, "get_device", lambda device="auto": torch.device("cuda"))
    assert distributed._precision(TrainConfig(progress=False)) == (False, precision)
    assert distributed._precision(TrainConfig(amp=False, progress=False)) == (False, "no")
    assert ensemble._use_scaler(torch.device("cuda"), True) is (
        precision == "fp16"
    )  # mutual_learning's scaler
    monkeypatch.undo()
    assert distributed._precision(TrainConfig(device="cpu", progress=False)) == (True, "no")


def _count_host_syncs(monkeypatch):
    """Count calls that copy a device value to the host, made by any labkit module (fit and the losses, the
    distillers and the weightings it calls every step)."""
    import sys

    calls = []
    for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__"):
        real = getattr(torch.Tensor, name)

        def spy(self, *a, _real=real, _name=name, **k):
            where = sys._getframe(1).f_code.co_filename.replace(os.sep, "/")
            if "/labkit/" in where:
                calls.append((_name, where.rsplit("/", 1)[-1], sys._getframe(1).f_lineno))
            return _real(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, spy)
    return calls


def _multi_teacher(digits):
    import labkit as lk

    torch.manual_seed(1)
    general = build_model("mlp", digits.in_shape, digits.num_classes, hidden=(8,))
    expert = build_model("mlp", digits.in_shape, 5, hidden=(8,))  # classes 5..9 only: -inf elsewhere
    return lk.TeacherEnsemble([general, expert], digits.num_classes, class_maps=[None, [5, 6, 7, 8, 9]],
                              weighting="learned")  # fmt: skip


@pytest.mark.parametrize("method", ["ce", "kd", "mse", "hint", "attention", "multi"])
def test_fit_syncs_the_host_once_per_epoch_not_per_step(digits, teacher, method, monkeypatch):
    # per-step loss.item() / int(...) / value checks stall a GPU every step: the epoch's sums stay on the device
    # until its end, and the losses skip their value checks inside fit's loop (lk._validate.checked_upstream)
    t = {"ce": None, "multi": _multi_teacher(digits)}.get(method, teacher)
    fit(
        student(digits), digits.train, method=method, teacher=t, config=cfg(epochs=1)
    )  # the teacher pass, memoised
    counts = {}
    for epochs, batch_size in ((1, 64), (1, 16), (3, 16)):
        calls = _count_host_syncs(monkeypatch)
        fit(
            student(digits),
            digits.train,
            method=method,
            teacher=t,
            config=cfg(epochs=epochs, batch_size=batch_size),
        )
        counts[epochs, batch_size] = calls
        monkeypatch.undo()
    assert -(-len(digits.train) // 16) >= 80  # many steps per epoch
    assert len(counts[1, 16]) == len(counts[1, 64]), counts[1, 16]  # 4x the steps, the same number of syncs
    assert len(counts[3, 16]) - len(counts[1, 16]) == 2  # one more per epoch
    assert len(counts[1, 16]) <= 6, counts[1, 16]  # setup checks (labels, teacher logits) + the epoch's one


def test_the_value_checks_still_run_outside_fit():
    # checked_upstream() is fit's alone: called directly, a NaN logit is still a clear error
    import labkit as lk
    from labkit._validate import checked_upstream, values_checked_upstream

    z = torch.randn(4, 3)
    bad = z.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="student_logits"):
        lk.kd_kl_loss(bad, z)
    with checked_upstream():
        assert values_checked_upstream()
    assert not values_checked_upstream()
    with pytest.raises(ValueError, match="student_logits"):
        lk.kd_kl_loss(bad, z)


def test_a_nan_teacher_is_reported_before_training(digits):
    class NanTeacher(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            out = torch.zeros(len(x), 10) + self.w
            out[0, 3] = float("nan")
            return out

    with pytest.raises(ValueError, match="the teacher's logits on the training set.*NaN"):
        fit(student(digits), digits.train, method="kd", teacher=NanTeacher(), config=cfg(epochs=1))


def test_a_nan_loss_is_still_reported_with_its_epoch(digits, tmp_path, monkeypatch):
    # the loss is checked once per epoch now (its sum is NaN/inf if any step's loss was): still the clear error,
    # with the epoch, and the checkpoint keeps the last good epoch
    from labkit.methods import CrossEntropy

    poison = []

    class NanAfterTwo(CrossEntropy):  # finite logits, a loss that turns NaN in epoch 3
        def terms(self, s_logits, y, *rest):
            return {"ce": super().terms(s_logits, y)["ce"] * (float("nan") if poison else 1.0)}

    monkeypatch.setitem(lk.METHODS, "nan_after_two", NanAfterTwo)
    ckpt, s = tmp_path / "run.pt", student(digits)
    with pytest.raises(
        FloatingPointError, match="loss became nan at epoch 3: lower the learning rate"
    ) as info:
        fit(s, digits.train, method="nan_after_two", config=cfg(epochs=4), checkpoint=ckpt,
            callbacks=[lambda epoch, record: poison.append(1) if epoch == 2 else None])  # fmt: skip
    assert f"the checkpoint {ckpt} keeps the last good epoch" in str(info.value)
    assert torch.isfinite(weights(s)).all()  # the NaN steps took zero gradients
    assert json.loads(torch.load(ckpt, weights_only=True)["history"])[-1]["epoch"] == 2


@pytest.mark.parametrize("method", ["ce", "kd", "attention", "multi"])
def test_the_sync_free_steps_train_the_same_weights(digits, teacher, method, monkeypatch):
    # inside fit the losses take branch-free, check-free paths (masked means instead of boolean indexing, -inf
    # teacher classes masked without looking for them): the weights must be exactly those of the checked path
    import contextlib
    import dataclasses

    from labkit import training

    y = digits.train.y.clone()
    y[::3] = -1  # a third of the rows unlabelled: the masked means differ from a plain mean
    data = dataclasses.replace(digits.train, y=y)
    t = {"ce": None, "multi": _multi_teacher(digits)}.get(method, teacher)
    name = "mlp" if method == "multi" else "cnn"
    runs = []
    for upstream in (training.checked_upstream, contextlib.nullcontext):
        monkeypatch.setattr(training, "checked_upstream", upstream)
        s = student(digits, name=name)
        fit(s, data, method=method, teacher=t, config=cfg(epochs=1))
        runs.append(weights(s))
    assert torch.equal(runs[0], runs[1])
