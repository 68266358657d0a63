"""Bad inputs found by an adversarial sweep of the whole public API (#15), after the per-area tables: tensors on
PyTorch's ``meta`` device (a shape, no values), bool/complex/integer tensors where real values are meant, flags
given as strings, scales that print every value as 0, a domain shift across label spaces, and the like. Each
must raise a labkit error naming the argument and what is allowed, never a bare traceback from torch/numpy and
never a silent result. Valid inputs of odd kinds (NumPy scalars as numbers, a plain
``nn.Module`` teacher) must work and give the same numbers as the plain kind.

Same pattern as tests/test_bad_inputs.py.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import assert_clear_labkit_error

import labkit as lk

NAN = float("nan")
META = "on the 'meta' device"


def _meta(*shape, dtype=torch.float32):
    return torch.empty(*shape, dtype=dtype, device="meta")


@functools.cache
def _data():
    d = lk.load_dataset("digits", verbose=False)
    return d.train.subset(range(64)), d.test.subset(range(40))


def _mlp(k: int = 10):
    torch.manual_seed(0)
    return lk.build_model("mlp", (1, 8, 8), k, hidden=(4,))


def _fit(**kw):
    args = dict(method="ce", config=lk.TrainConfig(epochs=1, progress=False, batch_size=32))
    args.update(kw)
    return lk.fit(args.pop("student", None) or _mlp(), _data()[0], **args)


def _compare(arms, **kw):
    train, test = _data()
    args = dict(train=train, test=test, make_student=_mlp, config=lk.TrainConfig(epochs=1, progress=False),
                seeds=(0,), steps=1)  # fmt: skip
    args.update(kw)
    return lk.compare(arms, **args)


def _text(**kw):
    base = dict(
        texts=["good film", "bad film"], y=torch.tensor([1, 0]), classes=["neg", "pos"], name="t", source="s"
    )
    return lk.TextData(**{**base, **kw})


z = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
y = torch.tensor([1, 2, 3, 4])
stack = torch.randn(4, 3, 10, generator=torch.Generator().manual_seed(1))
feat = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(2))
x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(3))
runs = pd.DataFrame({"arm": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1], "accuracy": [0.5, 0.6, 0.7, 0.8]})

BAD = [
    # (what a learner did, call, error type, words the message must contain)
    # ------------------------------------------------------- tensors on the meta device (a shape, no values)
    ("kd: meta student logits", lambda: lk.kd_kl_loss(_meta(4, 10), z), ValueError, f"student_logits is a tensor {META}"),
    ("kd: meta teacher logits", lambda: lk.kd_kl_loss(z, _meta(4, 10)), ValueError, f"teacher_logits is a tensor {META}"),
    ("CE: meta targets", lambda: lk.labelled_cross_entropy(z, _meta(4, dtype=torch.long)), ValueError, f"targets is a tensor {META}"),
    ("accuracy: meta logits", lambda: lk.accuracy(_meta(4, 10), y), ValueError, META),
    ("fuse: meta stack", lambda: lk.fuse_teachers(_meta(4, 3, 10)), ValueError, f"teacher logits is a tensor {META}"),
    ("teacher_accuracies: meta labels", lambda: lk.teacher_accuracies(stack, _meta(4, dtype=torch.long)), ValueError, f"labels is a tensor {META}"),
    ("softened_table: meta logits", lambda: lk.softened_table(_meta(10)), ValueError, META),
    ("mixer_table: meta stack", lambda: lk.mixer_table(_meta(3, 10)), ValueError, META),
    ("predict_logits: meta batch", lambda: lk.predict_logits(_mlp(), _meta(5, 1, 8, 8)), ValueError, f"x is a tensor {META}"),
    ("inference_ms: meta batch", lambda: lk.inference_ms(_mlp(), _meta(5, 1, 8, 8)), ValueError, f"x is a tensor {META}"),
    ("a model called on a meta batch", lambda: _mlp()(_meta(2, 1, 8, 8)), ValueError, r"weights are on cpu but the batch is on meta"),
    ("subset: meta positions", lambda: _data()[0].subset(torch.arange(3, device="meta")), ValueError, f"idx is a tensor {META}"),
    ("TextData: meta labels", lambda: _text(y=_meta(2, dtype=torch.long)), ValueError, f"TextData.y is a tensor {META}"),
    ("attention_map: meta features", lambda: lk.attention_map(_meta(2, 3, 4, 4)), ValueError, f"feat is a tensor {META}"),
    ("pseudo_label_quality: meta labels", lambda: lk.pseudo_label_quality(z, _meta(4, dtype=torch.long)), ValueError, f"true_labels is a tensor {META}"),
    ("with_pseudo_labels: meta logits", lambda: lk.with_pseudo_labels(_data()[0], _meta(64, 10)), ValueError, META),
    ("mean_std: meta tensor", lambda: lk.mean_std(_meta(3)), ValueError, f"values is a tensor {META}"),
    ("Comparison.add: meta logits", lambda: lk.Comparison(_data()[1]).add("a", 0, _meta(40, 10)), ValueError, f"arm 'a': logits is a tensor {META}"),
    ("save_weights: a meta model", lambda: lk.save_weights(torch.nn.Linear(2, 2, device="meta"), "/tmp/m.safetensors"), ValueError, r"model \(Linear\) has weights on the 'meta' device"),
    ("fit: a meta student", lambda: _fit(student=_mlp().to("meta")), ValueError, r"student \(MLP\) has weights on the 'meta' device"),
    ("fit: a meta teacher", lambda: _fit(method="kd", teacher=_mlp().to("meta")), ValueError, r"teacher \(MLP\) has weights on the 'meta' device"),
    ("fit: meta teacher_logits", lambda: _fit(method="kd", teacher=_mlp(), teacher_logits=_meta(64, 10)), ValueError, f"teacher_logits is a tensor {META}"),
    # ------------------------------------------------------- wrong kinds of tensors and values
    ("per-teacher KL of student None", lambda: lk.per_teacher_kl(None, stack, 2.0), TypeError, "student_logits must be a torch.Tensor"),
    ("multi-teacher loss of student None", lambda: lk.multi_teacher_kd_loss(None, stack, y, torch.full((4, 3), 1 / 3)), TypeError, "student_logits must be a torch.Tensor"),
    ("attention_map of 0 channels", lambda: lk.attention_map(feat[:, :0]), ValueError, "no channels or no positions"),
    ("attention_map of 0x4 maps", lambda: lk.attention_map(feat[:, :, :0]), ValueError, "no channels or no positions"),
    ("attention_map of integer features", lambda: lk.attention_map(feat.long()), ValueError, "floating-point feature map.*int64"),
    ("AT of boolean features", lambda: lk.attention_transfer_loss([feat > 0], [feat]), ValueError, "floating-point feature map.*bool"),
    ("AT of complex features", lambda: lk.attention_transfer_loss([feat.to(torch.complex64)], [feat]), ValueError, "floating-point feature map.*complex64"),
    ("hint of integer features", lambda: lk.HintLoss(3, 3)(feat.long(), feat), ValueError, "student_feat must be a floating-point feature map"),
    ("hint of a boolean teacher feature", lambda: lk.HintLoss(3, 3)(feat, feat > 0), ValueError, "teacher_feat must be a floating-point"),
    ("predict_logits of a boolean batch", lambda: lk.predict_logits(_mlp(), x > 0), ValueError, r"x must hold the model's input values.*torch.bool"),
    ("inference_ms of a complex batch", lambda: lk.inference_ms(_mlp(), x.to(torch.complex64)), ValueError, "x must hold the model's input values"),
    ("softened_table of complex logits", lambda: lk.softened_table(z[0].to(torch.complex64)), ValueError, "must be real numbers.*complex64"),
    ("plot_temperature of a boolean mask", lambda: lk.plot_temperature(z[0] > 0), ValueError, "must be real numbers.*torch.bool"),
    ("pseudo_label_quality of boolean labels", lambda: lk.pseudo_label_quality(z, y > 2), ValueError, "true_labels must be the known classes"),
    # ------------------------------------------------------- flags and numbers
    ("count_parameters trainable_only='yes'", lambda: lk.count_parameters(_mlp(), trainable_only="yes"), TypeError, "trainable_only must be True or False"),
    ("few labels keep_labels='no'", lambda: lk.few_labels_split(_data()[0], 2, keep_labels="no"), TypeError, "keep_labels must be True or False, got 'no'"),
    ("batches shuffle='yes'", lambda: list(lk.batches(x, batch_size=2, shuffle="yes")), TypeError, "shuffle must be True or False"),
    ("batches drop_last='no'", lambda: list(lk.batches(x, batch_size=2, drop_last="no")), TypeError, "drop_last must be True or False"),
    ("num_batches drop_last='no'", lambda: lk.num_batches(5, 2, drop_last="no"), TypeError, "drop_last must be True or False"),
    ("crop flip='no'", lambda: lk.random_crop_flip(x, flip="no"), TypeError, "flip must be True or False"),
    ("crop padding 100 on 8x8 images", lambda: lk.random_crop_flip(x, padding=100), ValueError, r"padding=100 is not smaller than the 8x8 images"),
    ("compare keep='yes'", lambda: _compare([lk.Arm("a")], keep="yes"), TypeError, "keep must be True or False"),
    ("simulate_rule seed 'a'", lambda: lk.simulate_rule(seed="a", n_sims=10), ValueError, "seed must be an integer >= 0, got 'a'"),
    ("simulate_rule seed -1", lambda: lk.simulate_rule(seed=-1, n_sims=10), ValueError, "seed must be an integer >= 0"),
    ("redact_local_paths root a number", lambda: lk.redact_local_paths("abc", root=3), TypeError, "root must be a folder path"),
    ("mean_std of a 2-D array", lambda: lk.mean_std(np.zeros((2, 2))), ValueError, r"one number per run, got shape \(2, 2\)"),
    ("mean_std of nested lists", lambda: lk.mean_std([[1.0], [2.0]]), ValueError, r"must be flat.*\(2, 1\)"),
    ("mean_std of booleans", lambda: lk.mean_std([True, False]), ValueError, "got booleans"),
    ("format_mean_std of a 2-D array", lambda: lk.format_mean_std(np.zeros((2, 3))), ValueError, "must be flat"),
    ("format_mean_std scale 0", lambda: lk.format_mean_std([0.1, 0.2], scale=0), ValueError, "scale must be a finite, non-zero number"),
    ("summarize scale 0", lambda: lk.summarize(runs, by="arm", metrics="accuracy", scale=0), ValueError, "scale must be a finite, non-zero"),
    ("summarize scale {metric: 0}", lambda: lk.summarize(runs, by="arm", metrics="accuracy", scale={"accuracy": 0}), ValueError, "non-zero"),
    # ------------------------------------------------------- combinations
    ("profile whose target domain is its source", lambda: lk.get_profile("smoke", xd_targets=("toy_books",)), ValueError, "include the source domain xd_source='toy_books'"),
    ("domain shift to a 12-class target", lambda: lk.domain_shift(_mlp(), _data()[1], dataclasses.replace(_data()[1], classes=[str(i) for i in range(12)])), ValueError, "source_test has 10 classes but target_test 12"),
]  # fmt: skip


@pytest.mark.parametrize("call, error, words", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_gives_a_clear_error(call, error, words):
    with pytest.raises(error, match=words) as info:
        call()
    assert_clear_labkit_error(info)


def test_numpy_scalars_are_numbers_with_the_same_result():
    # np.float32(2.0) is what indexing an array of temperatures gives; it was refused as "not a number"
    assert torch.equal(lk.kd_kl_loss(z, z.flip(0), np.float32(2.0)), lk.kd_kl_loss(z, z.flip(0), 2.0))
    assert torch.equal(lk.soft_targets(z, np.int64(3)), lk.soft_targets(z, 3.0))
    assert torch.equal(
        lk.hinton_kd_loss(z, z.flip(0), y, alpha=np.float64(0.5)),
        lk.hinton_kd_loss(z, z.flip(0), y, alpha=0.5),
    )
    assert torch.equal(lk.attention_map(feat, p=np.float32(2.0)), lk.attention_map(feat, p=2.0))
    assert (
        lk.format_mean_std([0.1, 0.2], digits=np.int64(2))
        == lk.format_mean_std([0.1, 0.2], digits=2)
        == "15.00 ± 7.07"
    )
    assert lk.pseudo_labels(z, np.float64(0.2)).keep.tolist() == lk.pseudo_labels(z, 0.2).keep.tolist()
    for bad in (np.bool_(True), np.complex64(2.0), torch.tensor(2.0)):  # still refused
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            lk.soft_targets(z, bad)


def test_a_plain_module_teacher_works_without_the_cache():
    # with cache_teacher=False fit called teacher(x, return_features=False): a TypeError for any plain nn.Module
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    cfg = dict(epochs=1, progress=False, batch_size=32)
    a, b = _mlp(), _mlp()
    lk.fit(a, _data()[0], method="kd", teacher=teacher, config=lk.TrainConfig(**cfg, cache_teacher=False))
    lk.fit(b, _data()[0], method="kd", teacher=teacher, config=lk.TrainConfig(**cfg, cache_teacher=True))
    for p, q in zip(a.state_dict().values(), b.state_dict().values()):
        torch.testing.assert_close(p, q)  # the same targets, cached or not


HF_BAD = [
    ("a layer map for 0 student layers", lambda ht: ht.uniform_layer_map(0, 6), ValueError, "student_layers must be an integer >= 1, got 0"),
    ("a layer map for 2.5 layers", lambda ht: ht.uniform_layer_map(2.5, 6), ValueError, r"student_layers must be an integer >= 1, got 2.5 \(a float\)"),
    ("length_grouped='yes'", lambda ht: ht.DistillationTrainingArguments(output_dir="/tmp/labkit-dta", length_grouped="yes"), TypeError, "length_grouped must be True or False"),
    ("attention dropout off for a model name", lambda ht: ht.attention_dropout_off("bert").__enter__(), TypeError, "needs a transformers model"),
]  # fmt: skip


@pytest.mark.parametrize("call, error, words", [b[1:] for b in HF_BAD], ids=[b[0] for b in HF_BAD])
def test_bad_hf_input_gives_a_clear_error(call, error, words):
    ht = pytest.importorskip("labkit.hf_trainer")
    with pytest.raises(error, match=words) as info:
        call(ht)
    assert_clear_labkit_error(info)


@pytest.mark.parametrize("call", ["predict_logits", "inference_ms"])
def test_integer_pixels_into_a_plain_module_are_named(call):
    # a plain nn.Module (not one of labkit's, which check their inputs) given integer pixels: torch's dtype error
    # comes back as a labkit error that names x, its dtype and what to pass
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with pytest.raises(
        ValueError, match=r"Sequential cannot take x \(dtype torch.int64, shape \(4, 1, 8, 8\)\)"
    ):
        getattr(lk, call)(model, torch.zeros(4, 1, 8, 8, dtype=torch.long))
    assert lk.predict_logits(model, torch.zeros(4, 1, 8, 8)).shape == (4, 10)
