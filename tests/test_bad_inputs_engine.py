"""Bad inputs to the comparison engine and what surrounds it (compare, verdicts, metrics, models, ensembles,
transfer, plots, the Hugging Face helpers): each must raise a labkit error that names the argument and what is
allowed, before any training starts, never a bare traceback from torch/numpy/pandas and never a silent result.

Same pattern as tests/test_bad_inputs.py; the module tests check the fixes in more depth.
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
from labkit import verdicts as V

NAN = float("nan")


@functools.cache
def _data():
    d = lk.load_dataset("digits", verbose=False)
    return d.train.subset(range(64)), d.test.subset(range(40))


def _mlp(k: int = 10):
    return lk.build_model("mlp", (1, 8, 8), k, hidden=(4,))


def _compare(arms=None, **kw):
    train, test = _data()
    args = dict(train=train, test=test, make_student=_mlp, config=lk.TrainConfig(epochs=1, progress=False),
                seeds=(0, 1), steps=1)  # fmt: skip
    args.update(kw)
    return lk.compare(arms if arms is not None else [lk.Arm("scratch")], **args)


def _cmp(n_seeds: int = 2):
    test = _data()[1]
    cmp = lk.Comparison(test)
    for s in range(n_seeds):
        cmp.add("a", s, torch.randn(len(test), 10))
        cmp.add("b", s, torch.randn(len(test), 10))
    return cmp


def _logits(n: int = 40, k: int = 10, fill: float | None = None):
    z = torch.randn(n, k, generator=torch.Generator().manual_seed(0))
    if fill is not None:
        z[0, 0] = fill
    return z


def _y(n: int = 40):
    return torch.arange(n) % 10


_VERDICT = dict(a="a", b="b", metric="accuracy", better="higher", diff=1.0, low=0.5, high=1.5, n_seeds=3, n_test=100,
                se_seed=0.1, se_test=0.1)  # fmt: skip

BAD = [
    # (what a learner did, call, error type, words the message must contain)
    # ------------------------------------------------------------------ lk.Arm / lk.compare
    ("Arm config epochs=0", lambda: lk.Arm("x", config={"epochs": 0}), ValueError, r"arm 'x'.*epochs"),
    ("Arm config a string", lambda: lk.Arm("x", config="lr=0.1"), TypeError, "config must be a dict"),
    (
        "Arm teacher a string",
        lambda: lk.Arm("x", method="kd", teacher="resnet"),
        TypeError,
        "teacher must be",
    ),
    ("Arm student not callable", lambda: lk.Arm("x", student="cnn"), TypeError, "student must be a function"),
    ("Arm train a list", lambda: lk.Arm("x", train=[1, 2]), TypeError, "train must be an lk.ImageData"),
    (
        "Arm teacher_logits numpy",
        lambda: lk.Arm("x", method="kd", teacher=_mlp(), teacher_logits=np.zeros((4, 10))),
        TypeError,
        "teacher_logits must be a floating torch.Tensor",
    ),
    (
        "Arm teacher_logits NaN",
        lambda: lk.Arm("x", method="kd", teacher=_mlp(), teacher_logits=torch.full((4, 10), NAN)),
        ValueError,
        "teacher_logits.*NaN",
    ),
    ("compare arms a single Arm", lambda: _compare(lk.Arm("a")), TypeError, r"one arm is \[arm\]"),
    ("compare seeds an int", lambda: _compare(seeds=3), TypeError, "seeds must be a list"),
    ("compare seeds floats", lambda: _compare(seeds=(0.5, 1.5)), ValueError, r"seeds must be integers"),
    ("compare seeds bools", lambda: _compare(seeds=(True, False)), ValueError, r"seeds must be integers"),
    ("compare seeds empty", lambda: _compare(seeds=()), ValueError, "at least one"),
    ("compare steps=0", lambda: _compare(steps=0), ValueError, "steps must be an integer >= 1"),
    ("compare steps=2.5", lambda: _compare(steps=2.5), ValueError, "steps must be an integer >= 1"),
    ("compare train=None", lambda: _compare(train=None), TypeError, "train must be an lk.ImageData"),
    ("compare test=None", lambda: _compare(test=None), TypeError, "test must be an lk.ImageData"),
    (
        "compare test of another image shape",
        lambda: _compare(
            test=lk.ImageData(
                torch.zeros(4, 1, 10, 10), torch.zeros(4, dtype=torch.long), _data()[0].classes, "t", "t"
            )
        ),  # fmt: skip
        ValueError,
        r"shape \(1, 8, 8\) but test \(1, 10, 10\)",
    ),
    (
        "compare test with other classes",
        lambda: _compare(test=dataclasses.replace(_data()[1], classes=[*_data()[1].classes[:9], "x"])),
        ValueError,
        "different classes",
    ),
    (
        "compare teacher with 5 classes",
        lambda: _compare([lk.Arm("a"), lk.Arm("kd", method="kd", teacher=_mlp(5))]),
        ValueError,
        "teacher has 5 classes but the training data 10",
    ),
    ("compare make_student a model", lambda: _compare(make_student=_mlp()), ValueError, "not a model"),
    (
        "compare make_student returns None",
        lambda: _compare(make_student=lambda: None),
        TypeError,
        r"nn\.Module",
    ),
    ("compare into a string", lambda: _compare(into="cmp"), TypeError, "into must be an lk.Comparison"),
    (
        "compare teacher_logits numpy",
        lambda: _compare(teacher_logits=np.zeros((40, 10))),
        TypeError,
        "teacher_logits",
    ),
    (
        "compare teacher_logits NaN",
        lambda: _compare(teacher_logits=torch.full((40, 10), NAN)),
        ValueError,
        "NaN",
    ),
    (
        "compare extra not callable",
        lambda: _compare(metrics={"m": V.Metric("higher")}, extra={"m": 3}),
        TypeError,
        r"extra\['m'\] must be a function",
    ),
    # ------------------------------------------------------------------ lk.Comparison
    (
        "Comparison test.y float",
        lambda: lk.Comparison(type("T", (), {"y": torch.tensor([0.5])})()),
        ValueError,
        "integer",
    ),
    (
        "add numpy logits",
        lambda: lk.Comparison(_data()[1]).add("a", 0, np.zeros((40, 10))),
        TypeError,
        "torch.Tensor",
    ),
    (
        "add logits with too few classes",
        lambda: lk.Comparison(_data()[1]).add("a", 0, torch.zeros(40, 3)),
        ValueError,
        "3 classes but the test labels go up to",
    ),  # fmt: skip
    (
        "add logits of another width than the first run",
        lambda: (lambda c: (c.add("a", 0, _logits()), c.add("b", 0, _logits(k=12))))(
            lk.Comparison(_data()[1])
        ),
        ValueError,
        "one label space",
    ),
    (
        "add seed a string",
        lambda: lk.Comparison(_data()[1]).add("a", "0", _logits()),
        ValueError,
        "seed must be an integer",
    ),
    (
        "extra metric named accuracy",
        lambda: lk.Comparison(_data()[1], metrics={"accuracy": V.Metric("lower")}),
        ValueError,
        "another name",
    ),  # fmt: skip
    ("runs of an empty comparison", lambda: lk.Comparison(_data()[1]).runs, ValueError, "no runs yet"),
    (
        "verdict metric a list",
        lambda: _cmp().verdict("a", "b", metric=["accuracy"]),
        ValueError,
        "one metric's name",
    ),
    ("verdicts pairs a string", lambda: _cmp().verdicts("ab"), ValueError, "pairs must be"),
    ("verdicts pairs empty", lambda: _cmp().verdicts([]), ValueError, "pairs must be a non-empty"),
    ("summary digits=-1", lambda: _cmp().summary(digits=-1), ValueError, "digits must be an integer >= 0"),
    # ------------------------------------------------------------------ labkit.verdicts
    (
        "interval of NaN differences",
        lambda: V.interval_from_examples(np.array([[NAN, 1.0], [0.0, 1.0]])),
        ValueError,
        "diffs must be finite",
    ),  # fmt: skip
    (
        "interval of ragged differences",
        lambda: V.interval_from_examples([[1, 2], [3]]),
        ValueError,
        "rectangular",
    ),
    (
        "interval with 0 seeds",
        lambda: V.interval_from_examples(np.zeros((0, 5))),
        ValueError,
        "seeds and examples",
    ),
    ("interval level 1.5", lambda: V.interval_from_examples(np.ones((3, 4)), level=1.5), ValueError, "level"),
    (
        "bootstrap negative variance",
        lambda: V.interval_from_bootstrap(np.ones(3), -1.0),
        ValueError,
        "test_var",
    ),
    ("bootstrap no seeds", lambda: V.interval_from_bootstrap(np.zeros(0), 0.1), ValueError, "per_seed"),
    ("effect_of low > high", lambda: V.effect_of(1.0, -1.0, "higher"), ValueError, "low <= high"),
    ("effect_of NaN", lambda: V.effect_of(NAN, 1.0, "higher"), ValueError, "low <= high"),
    ("Metric better='up'", lambda: V.Metric("up"), ValueError, "better must be"),
    ("Metric scale 0", lambda: V.Metric("higher", scale=0), ValueError, "scale"),
    ("Verdict diff NaN", lambda: V.Verdict(**{**_VERDICT, "diff": NAN}), ValueError, "diff must be a number"),
    ("Verdict low > high", lambda: V.Verdict(**{**_VERDICT, "low": 2.0}), ValueError, r"\[low, high\]"),
    ("Verdict n_seeds=0", lambda: V.Verdict(**{**_VERDICT, "n_seeds": 0}), ValueError, "n_seeds"),
    ("simulate_rule 1 seed", lambda: V.simulate_rule(n_seeds=1, n_sims=5, n_test=10), ValueError, "n_seeds"),
    (
        "simulate_rule seed_sd<0",
        lambda: V.simulate_rule(seed_sd=-1, n_sims=5, n_test=10),
        ValueError,
        "seed_sd",
    ),
    # ------------------------------------------------------------------ metrics
    ("accuracy of NaN logits", lambda: lk.accuracy(_logits(fill=NAN), _y()), ValueError, "logits.*NaN"),
    (
        "accuracy of +inf logits",
        lambda: lk.accuracy(_logits(fill=float("inf")), _y()),
        ValueError,
        "logits.*inf",
    ),
    (
        "accuracy of nothing",
        lambda: lk.accuracy(torch.zeros(0, 10), torch.zeros(0, dtype=torch.long)),
        ValueError,
        "at least one example",
    ),  # fmt: skip
    (
        "accuracy of 1 class",
        lambda: lk.accuracy(torch.zeros(4, 1), torch.zeros(4, dtype=torch.long)),
        ValueError,
        ">= 2",
    ),  # fmt: skip
    (
        "ECE of probabilities",
        lambda: lk.expected_calibration_error(_logits().softmax(1), _y()),
        ValueError,
        "look like probabilities",
    ),  # fmt: skip
    ("ECE of NaN logits", lambda: lk.expected_calibration_error(_logits(fill=NAN), _y()), ValueError, "NaN"),
    (
        "agreement of NaN logits",
        lambda: lk.agreement(_logits(fill=NAN), _logits()),
        ValueError,
        "student_logits",
    ),
    (
        "KL of NaN teacher",
        lambda: lk.kl_to_teacher(_logits(), _logits(fill=NAN)),
        ValueError,
        "teacher_logits",
    ),
    (
        "evaluate a softmax model",
        lambda: lk.evaluate(
            torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10), torch.nn.Softmax(1)), _data()[1]
        ),  # fmt: skip
        ValueError,
        "look like probabilities",
    ),
    ("predict float64 images", lambda: lk.predict_logits(_mlp(), _data()[1].x.double()), ValueError, "x.to"),
    ("mean_std with NaN", lambda: lk.mean_std([0.9, NAN]), ValueError, r"values \(one per run\)"),
    ("mean_std of strings", lambda: lk.mean_std("abc"), ValueError, "sequence of numbers"),
    ("format_mean_std digits=-1", lambda: lk.format_mean_std([1, 2], digits=-1), ValueError, "digits"),
    (
        "summarize a text metric",
        lambda: lk.summarize([{"arm": "a", "acc": "high"}], "arm", "acc"),
        ValueError,
        "must hold numbers",
    ),  # fmt: skip
    (
        "summarize with a missing value in a group",
        lambda: lk.summarize([{"arm": "a", "acc": 0.5}, {"arm": "a", "acc": NAN}], "arm", "acc"),
        ValueError,
        "missing",
    ),
    ("summarize a file name", lambda: lk.summarize("runs.csv", "arm", "acc"), TypeError, "records must be"),
    # ------------------------------------------------------------------ models
    (
        "forward uint8 pixels",
        lambda: lk.build_model("cnn", (1, 8, 8), 10, width=4)(torch.zeros(2, 1, 8, 8, dtype=torch.uint8)),
        ValueError,
        "floating-point",
    ),  # fmt: skip
    (
        "MLP on images of another size",
        lambda: _mlp()(torch.zeros(2, 1, 9, 9)),
        ValueError,
        r"shape \(1, 8, 8\)",
    ),
    (
        "CNN on 2x2 images",
        lambda: lk.build_model("cnn", (1, 8, 8), 10, width=4)(torch.zeros(2, 1, 2, 2)),
        ValueError,
        "at least 8x8",
    ),  # fmt: skip
    (
        "model_table reference without parameters",
        lambda: lk.model_table({"relu": torch.nn.ReLU()}),
        ValueError,
        "no parameters",
    ),  # fmt: skip
    # ------------------------------------------------------------------ ensembles, mutual learning, born-again
    (
        "ensemble members a generator",
        lambda: lk.EnsembleTeacher(m for m in [_mlp()]),
        TypeError,
        "members must be a list",
    ),
    (
        "ensemble weights strings",
        lambda: lk.EnsembleTeacher([_mlp(), _mlp()], weights=["a", "b"]),
        ValueError,
        "weights must be",
    ),  # fmt: skip
    (
        "ensemble weights a number",
        lambda: lk.EnsembleTeacher([_mlp(), _mlp()], weights=0.5),
        ValueError,
        "weights",
    ),
    (
        "ensemble feature_member True",
        lambda: lk.EnsembleTeacher([_mlp(), _mlp()], feature_member=True),
        ValueError,
        "feature_member",
    ),  # fmt: skip
    (
        "ensemble of two input shapes",
        lambda: lk.EnsembleTeacher([_mlp(), lk.build_model("mlp", (1, 9, 9), 10)]),
        ValueError,
        "same input shape",
    ),  # fmt: skip
    (
        "mutual learning on a tensor",
        lambda: lk.mutual_learning([_mlp(), _mlp()], _data()[0].x),
        TypeError,
        "train must be an lk.ImageData",
    ),  # fmt: skip
    (
        "mutual learning on no data",
        lambda: lk.mutual_learning([_mlp(), _mlp()], _data()[0].subset([])),
        ValueError,
        "train is empty",
    ),  # fmt: skip
    (
        "mutual learning config a dict",
        lambda: lk.mutual_learning([_mlp(), _mlp()], _data()[0], {"epochs": 1}),
        TypeError,
        "config must be an lk.TrainConfig",
    ),  # fmt: skip
    (
        "mutual learning peers of another shape",
        lambda: lk.mutual_learning([_mlp(), lk.build_model("mlp", (1, 9, 9), 10)], _data()[0]),
        ValueError,
        "in_shape",
    ),  # fmt: skip
    (
        "born-again with method ce",
        lambda: lk.born_again(lambda g: _mlp(), _data()[0], _mlp(), 1, method="ce"),
        ValueError,
        "ignores the teacher",
    ),  # fmt: skip
    (
        "born-again make_student a model",
        lambda: lk.born_again(_mlp(), _data()[0], _mlp(), 1),
        ValueError,
        "not a model",
    ),
    (
        "born-again teacher of 5 classes",
        lambda: lk.born_again(lambda g: _mlp(), _data()[0], _mlp(5), 1),
        ValueError,
        "5 classes",
    ),  # fmt: skip
    # ------------------------------------------------------------------ transfer
    (
        "pseudo-labels of NaN logits",
        lambda: lk.pseudo_labels(_logits(fill=NAN)),
        ValueError,
        "teacher_logits.*NaN",
    ),
    (
        "pseudo-labels of probabilities",
        lambda: lk.pseudo_labels(_logits().softmax(1)),
        ValueError,
        "probabilities",
    ),
    (
        "pseudo-label quality with unknown truth",
        lambda: lk.pseudo_label_quality(_logits(), torch.full((40,), -1)),
        ValueError,
        "true_labels",
    ),  # fmt: skip
    (
        "pseudo-label quality, no thresholds",
        lambda: lk.pseudo_label_quality(_logits(), _y(), thresholds=[]),
        ValueError,
        "thresholds",
    ),  # fmt: skip
    (
        "DomainPair of plain numbers",
        lambda: lk.DomainPair(1, 2, 3, 4),
        ValueError,
        "source_train must be a dataset",
    ),
    ("domain_shift test None", lambda: lk.domain_shift(_mlp(), None, _data()[1]), TypeError, "source_test"),
    # ------------------------------------------------------------------ plotting
    (
        "plot_history text values",
        lambda: lk.plot_history({"a": [{"epoch": 1, "x": "high"}]}, metrics=["x"]),
        ValueError,
        "must hold numbers",
    ),  # fmt: skip
    (
        "plot_temperature of a string",
        lambda: lk.plot_temperature("abc"),
        ValueError,
        "logits must be numbers",
    ),
    (
        "plot_gradient_scale text index",
        lambda: lk.plot_gradient_scale(pd.DataFrame({"g": [1.0, 2.0]}, index=["a", "b"])),
        ValueError,
        "table must hold numbers",
    ),  # fmt: skip
    (
        "plot_comparison scale 0",
        lambda: lk.plot_comparison([{"arm": "a", "acc": 0.5}], "acc", "arm", scale=0),
        ValueError,
        "scale",
    ),  # fmt: skip
    (
        "plot_comparison all NaN",
        lambda: lk.plot_comparison([{"arm": "a", "acc": NAN}], "acc", "arm"),
        ValueError,
        "no values",
    ),  # fmt: skip
    ("plot_reliability NaN logits", lambda: lk.plot_reliability(_logits(fill=NAN), _y()), ValueError, "NaN"),
    (
        "plot_reliability ax a string",
        lambda: lk.plot_reliability(_logits(), _y(), ax="left"),
        TypeError,
        "Axes",
    ),
    (
        "plot_attention_maps NaN maps",
        lambda: lk.plot_attention_maps(torch.rand(2, 1, 8, 8), {"a": torch.full((2, 4, 8, 8), NAN)}),
        ValueError,
        "maps",
    ),  # fmt: skip
    (
        "plot_teacher_mix NaN logits",
        lambda: lk.plot_teacher_mix(torch.tensor([[1.0, NAN], [0.0, 1.0]])),
        ValueError,
        "teacher_logits",
    ),  # fmt: skip
    (
        "plot_teacher_mix a blind teacher",
        lambda: lk.plot_teacher_mix(torch.tensor([[-float("inf")] * 2, [0.0, 1.0]])),
        ValueError,
        "know no class",
    ),  # fmt: skip
]

HF_BAD = [
    (
        "tiny_checkpoint texts a string",
        lambda hf: hf.tiny_checkpoint("tiny-student", "hello"),
        ValueError,
        "list of strings",
    ),
    (
        "tiny_checkpoint vocab_size 0",
        lambda hf: hf.tiny_checkpoint("tiny-student", ["a b"], vocab_size=0),
        ValueError,
        "vocab_size",
    ),  # fmt: skip
    (
        "tiny_checkpoint 1 label",
        lambda hf: hf.tiny_checkpoint("tiny-student", ["a b"], num_labels=1),
        ValueError,
        "num_labels",
    ),  # fmt: skip
    (
        "TokenizedText rows differ",
        lambda hf: hf.TokenizedText({"input_ids": [[1]]}, torch.tensor([0, 1])),
        ValueError,
        "one row per text",
    ),  # fmt: skip
    (
        "TokenizedText labels a list",
        lambda hf: hf.TokenizedText({"input_ids": [[1]]}, [0]),
        ValueError,
        "labels",
    ),
    (
        "teacher logits NaN",
        lambda hf: hf.TokenizedText({"input_ids": [[1]]}, torch.tensor([0])).with_teacher_logits(
            torch.full((1, 2), NAN)
        ),
        ValueError,
        "NaN",
    ),
    ("TextCollator of nothing", lambda hf: hf.TextCollator()([]), ValueError, "non-empty list"),
    ("TextCollator pad id a string", lambda hf: hf.TextCollator("0"), ValueError, "pad_token_id"),
    (
        "predict_text of a list",
        lambda hf: hf.predict_text(torch.nn.Linear(2, 2), [1]),
        TypeError,
        "sequence classifier",
    ),
    (
        "check_pair of plain modules",
        lambda hf: hf.check_pair(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)),
        TypeError,
        "transformers sequence classifier",
    ),  # fmt: skip
]


@pytest.mark.parametrize("call, error, words", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_gives_a_clear_error(call, error, words):
    with pytest.raises(error, match=words) as info:
        call()
    assert_clear_labkit_error(info)


@pytest.mark.parametrize("call, error, words", [b[1:] for b in HF_BAD], ids=[b[0] for b in HF_BAD])
def test_bad_hf_input_gives_a_clear_error(call, error, words):
    hf = pytest.importorskip("labkit.hf")
    with pytest.raises(error, match=words) as info:
        call(hf)
    assert_clear_labkit_error(info)
