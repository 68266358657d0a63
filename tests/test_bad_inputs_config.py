"""The bad inputs of get_profile / Profile, TrainConfig (made, replaced or set later) and ``python -m labkit.distill``:
each must be refused with a message that names the argument and what is allowed, never a bare traceback, never a
silent acceptance that fails (or trains nothing) later. Same pattern as tests/test_bad_inputs.py."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
from unittest import mock

import pytest

import labkit as lk
from labkit import distill
from labkit.config import CheckedFields, Profile, TrainConfigChecks

NAN, INF = float("nan"), float("inf")


if issubclass(lk.TrainConfig, CheckedFields):
    TrainConfig = lk.TrainConfig
else:  # lk.TrainConfig with the field checks, until training.py declares class TrainConfig(TrainConfigChecks)
    TrainConfig = type("TrainConfig", (TrainConfigChecks, lk.TrainConfig), {})


class Refused(Exception):
    """The command exited with argparse's status 2; the message is what it printed on stderr."""


def cli(*argv: str) -> None:
    """``python -m labkit.distill --profile smoke ...`` in this process, offline, where loading data fails the test:
    every refusal below must come before any data is loaded or model trained."""
    err = io.StringIO()
    env = {"LABKIT_OFFLINE": "1"}
    with mock.patch.dict(os.environ, env), contextlib.redirect_stderr(err):
        with mock.patch.object(
            distill, "load_dataset", side_effect=AssertionError("loaded data before refusing")
        ):
            try:
                distill.main(["--profile", "smoke", *argv])
            except SystemExit as stop:
                if stop.code == 2 and "Traceback" not in err.getvalue():
                    raise Refused(err.getvalue()) from None
                raise
    raise AssertionError(f"the command accepted {argv}")


def set_later(field: str, value) -> None:
    cfg = TrainConfig()
    setattr(cfg, field, value)


def profile(**fields) -> Profile:
    base = {"name": "mine", "dataset": "digits", "max_train": None, "max_test": None, "seeds": (0,),
            "teacher_model": "resnet"}  # fmt: skip
    return Profile(**{**base, **fields})


BAD = [
    # (what a learner did, call, error type, words the message must contain)
    # get_profile overrides and Profile itself: type, range, NaN/inf, empty, bool and string as numbers
    ("profile name not a string", lambda: lk.get_profile(3), ValueError, "unknown profile 3; choose one of"),
    (
        "override student_epochs=0",
        lambda: lk.get_profile("smoke", student_epochs=0),
        ValueError,
        "student_epochs",
    ),
    ("override teacher_epochs=-1", lambda: lk.get_profile("smoke", teacher_epochs=-1), ValueError, ">= 1"),
    (
        "override epochs as a string",
        lambda: lk.get_profile("smoke", student_epochs="3"),
        ValueError,
        r"'3' \(a str\)",
    ),
    ("override lr=True", lambda: lk.get_profile("smoke", lr=True), ValueError, "lr .*a bool, not a number"),
    (
        "override lr=nan",
        lambda: lk.get_profile("smoke", lr=NAN),
        ValueError,
        "lr must be a number > 0 and finite",
    ),
    (
        "override tf_lr=inf",
        lambda: lk.get_profile("smoke", tf_lr=INF),
        ValueError,
        "tf_lr must be a number > 0 and finite, got inf",
    ),
    (
        "override seeds=()",
        lambda: lk.get_profile("smoke", seeds=()),
        ValueError,
        "seeds must be a non-empty tuple",
    ),
    (
        "override seeds repeated",
        lambda: lk.get_profile("smoke", seeds=(1, 1)),
        ValueError,
        "seeds must not repeat",
    ),
    (
        "override seeds=3",
        lambda: lk.get_profile("smoke", seeds=3),
        ValueError,
        "seeds must be a non-empty tuple",
    ),
    (
        "override seeds as floats",
        lambda: lk.get_profile("smoke", seeds=(0.0,)),
        ValueError,
        r"seeds\[0\] must be",
    ),
    (
        "override alphas out of [0, 1]",
        lambda: lk.get_profile("smoke", alphas=(2.0,)),
        ValueError,
        r"alphas\[0\]",
    ),
    (
        "override temperature 0",
        lambda: lk.get_profile("smoke", tf_temperature=0),
        ValueError,
        "tf_temperature",
    ),
    (
        "override threshold nan",
        lambda: lk.get_profile("smoke", pl_thresholds=(NAN,)),
        ValueError,
        "pl_thresholds",
    ),
    (
        "override max_train=0",
        lambda: lk.get_profile("smoke", max_train=0),
        ValueError,
        "max_train .* or None",
    ),
    ("override kd_labelled=1.5", lambda: lk.get_profile("smoke", kd_labelled=1.5), ValueError, "kd_labelled"),
    (
        "override augment='no'",
        lambda: lk.get_profile("smoke", augment="no"),
        ValueError,
        "augment must be True",
    ),
    (
        "override unknown model",
        lambda: lk.get_profile("smoke", student_model="vit"),
        ValueError,
        "cnn, mlp, resnet",
    ),
    (
        "override kwargs not a dict",
        lambda: lk.get_profile("smoke", student_kwargs=8),
        ValueError,
        "student_kwargs",
    ),
    (
        "override expert class 10",
        lambda: lk.get_profile("smoke", mt_experts=((10,),)),
        ValueError,
        "mt_experts",
    ),
    ("override empty text target", lambda: lk.get_profile("smoke", xd_targets=()), ValueError, "xd_targets"),
    ("override unknown text data", lambda: lk.get_profile("smoke", tf_dataset="imdb"), ValueError, "sst2"),
    (
        "override transfer >= read",
        lambda: lk.get_profile("smoke", tf_unlabelled=5_000),
        ValueError,
        "tf_max_train",
    ),
    (
        "override typo",
        lambda: lk.get_profile("smoke", teacher_epoch=2),
        ValueError,
        "did you mean 'teacher_epochs'",
    ),
    ("Profile with no seeds", lambda: profile(seeds=()), ValueError, "seeds must be a non-empty tuple"),
    ("Profile with a NaN lr", lambda: profile(lr=NAN), ValueError, "lr must be a number > 0 and finite"),
    (
        "Profile field set later",
        lambda: setattr(lk.get_profile("smoke"), "seeds", ()),
        AttributeError,
        "seeds",
    ),
    # TrainConfig: the constructor, dataclasses.replace and assignment after construction
    (
        "epochs=0 set later",
        lambda: set_later("epochs", 0),
        ValueError,
        "epochs must be an integer >= 1, got 0",
    ),
    (
        "epochs=-3 set later",
        lambda: set_later("epochs", -3),
        ValueError,
        "epochs must be an integer >= 1, got -3",
    ),
    ("epochs as a string", lambda: TrainConfig(epochs="10"), ValueError, r"epochs .*'10' \(a str\)"),
    ("epochs=True", lambda: TrainConfig(epochs=True), ValueError, "epochs .*a bool, not a number"),
    (
        "weight_decay=nan",
        lambda: TrainConfig(weight_decay=NAN),
        ValueError,
        "weight_decay must be a number >= 0 and finite",
    ),
    ("weight_decay=inf set later", lambda: set_later("weight_decay", INF), ValueError, "weight_decay"),
    ("lr=True", lambda: TrainConfig(lr=True), ValueError, "lr must be a number > 0 and finite, got True"),
    ("lr=inf", lambda: TrainConfig(lr=INF), ValueError, "lr must be a number > 0 and finite, got inf"),
    ("negative lr", lambda: TrainConfig(lr=-0.1), ValueError, "lr must be a number > 0 and finite"),
    ("lr=0 set later", lambda: set_later("lr", 0), ValueError, "lr must be a number > 0 and finite, got 0"),
    ("lr as a string", lambda: TrainConfig(lr="1e-3"), ValueError, r"'1e-3' \(a str\)"),
    ("hint_layer a float", lambda: TrainConfig(hint_layer=1.0), ValueError, "hint_layer must be an integer"),
    ("hint_layer=True", lambda: TrainConfig(hint_layer=True), ValueError, "hint_layer .*a bool"),
    (
        "hint_layer as a string",
        lambda: set_later("hint_layer", "-1"),
        ValueError,
        "hint_layer must be an integer",
    ),
    ("beta=nan", lambda: TrainConfig(beta=NAN), ValueError, "beta must be a number >= 0 and finite"),
    ("steps=0", lambda: TrainConfig(steps=0), ValueError, "steps must be an integer >= 1 or None"),
    (
        "batch_size=0 set later",
        lambda: set_later("batch_size", 0),
        ValueError,
        "batch_size must be an integer >= 1",
    ),
    ("seed=-1", lambda: TrainConfig(seed=-1), ValueError, "seed must be an integer >= 0"),
    ("seed=2**32", lambda: TrainConfig(seed=2**32), ValueError, "below 2\\*\\*32"),
    ("seed=1.0", lambda: TrainConfig(seed=1.0), ValueError, "seed must be an integer"),
    (
        "temperature=inf set later",
        lambda: set_later("temperature", INF),
        ValueError,
        "temperature must be a finite",
    ),
    ("alpha=True", lambda: TrainConfig(alpha=True), ValueError, r"alpha must be in \[0, 1\]"),
    ("unknown optimizer set later", lambda: set_later("optimizer", "adam"), ValueError, "adamw, sgd"),
    ("unknown schedule", lambda: TrainConfig(schedule="step"), ValueError, "constant, cosine"),
    ("device 'gpu'", lambda: TrainConfig(device="gpu"), ValueError, "unknown device 'gpu'; choose one of"),
    (
        "device None",
        lambda: TrainConfig(device=None),
        ValueError,
        "device must be a str .* or a torch.device",
    ),
    ("progress=1", lambda: TrainConfig(progress=1), ValueError, "progress must be True or False, got 1"),
    (
        "augment='yes' set later",
        lambda: set_later("augment", "yes"),
        ValueError,
        "augment must be True or False",
    ),
    (
        "accelerate=1",
        lambda: TrainConfig(accelerate=1),
        ValueError,
        "accelerate must be True or False or None",
    ),
    ("a typo set later", lambda: set_later("epoch", 3), AttributeError, "did you mean 'epochs'"),
    (
        "replace with epochs=0",
        lambda: dataclasses.replace(TrainConfig(), epochs=0),
        ValueError,
        "epochs must be",
    ),
    # python -m labkit.distill: every argument
    (
        "--profile unknown",
        lambda: cli("--profile", "fast"),
        Refused,
        "argument --profile: invalid choice: 'fast'",
    ),
    ("--dataset unknown", lambda: cli("--dataset", "mnist"), Refused, "argument --dataset: invalid choice"),
    (
        "--data-dir missing",
        lambda: cli("--data-dir", "/no/such/dir"),
        Refused,
        "--data-dir /no/such/dir is not a",
    ),
    ("--methods multi", lambda: cli("--methods", "ce,multi"), Refused, "'multi' needs several teachers"),
    (
        "--methods unknown",
        lambda: cli("--methods", "kl"),
        Refused,
        "unknown method 'kl'; choose from: attention, ce",
    ),
    ("--methods empty", lambda: cli("--methods", ","), Refused, "argument --methods: expected at least one"),
    ("--methods repeated", lambda: cli("--methods", "ce,ce"), Refused, "argument --methods: each value once"),
    (
        "--seeds not ints",
        lambda: cli("--seeds", "0,one"),
        Refused,
        "argument --seeds: expected comma-separated",
    ),
    (
        "--seeds floats",
        lambda: cli("--seeds", "0.5"),
        Refused,
        "argument --seeds: expected comma-separated ints",
    ),
    (
        "--seeds negative",
        lambda: cli("--seeds", "-1"),
        Refused,
        r"argument --seeds: seeds must be integers in \[0",
    ),
    ("--seeds repeated", lambda: cli("--seeds", "1,1"), Refused, "argument --seeds: each value once"),
    ("--seeds empty", lambda: cli("--seeds", ""), Refused, "argument --seeds: expected at least one value"),
    ("--teacher unknown", lambda: cli("--teacher", "vit"), Refused, "argument --teacher: invalid choice"),
    ("--student unknown", lambda: cli("--student", "vit"), Refused, "argument --student: invalid choice"),
    (
        "--epochs 0",
        lambda: cli("--epochs", "0"),
        Refused,
        "argument --epochs: expected an integer >= 1, got '0'",
    ),
    ("--epochs 2.5", lambda: cli("--epochs", "2.5"), Refused, "argument --epochs: expected an integer >= 1"),
    ("--teacher-epochs -1", lambda: cli("--teacher-epochs", "-1"), Refused, "argument --teacher-epochs"),
    (
        "--batch-size 0",
        lambda: cli("--batch-size", "0"),
        Refused,
        "argument --batch-size: expected an integer",
    ),
    (
        "--lr nan",
        lambda: cli("--lr", "nan"),
        Refused,
        "argument --lr: expected a finite number > 0, got 'nan'",
    ),
    ("--lr inf", lambda: cli("--lr", "inf"), Refused, "argument --lr: expected a finite number > 0"),
    ("--lr 0", lambda: cli("--lr", "0"), Refused, "argument --lr: expected a finite number > 0, got '0'"),
    ("--lr True", lambda: cli("--lr", "True"), Refused, "argument --lr: expected a finite number"),
    (
        "--temperature 0",
        lambda: cli("--temperature", "0"),
        Refused,
        "argument --temperature: expected a finite",
    ),
    ("--temperature nan", lambda: cli("--temperature", "nan"), Refused, "argument --temperature"),
    (
        "--alpha 1.5",
        lambda: cli("--alpha", "1.5"),
        Refused,
        "argument --alpha: expected a finite number >= 0 and",
    ),
    ("--alpha nan", lambda: cli("--alpha", "nan"), Refused, "argument --alpha"),
    (
        "--max-train 0",
        lambda: cli("--max-train", "0"),
        Refused,
        "argument --max-train: expected an integer >= 1",
    ),
    ("--max-test abc", lambda: cli("--max-test", "abc"), Refused, "argument --max-test: expected an integer"),
    ("--augment=yes", lambda: cli("--augment=yes"), Refused, "argument --augment"),
    ("--device gpu", lambda: cli("--device", "gpu"), Refused, "unknown device 'gpu'; choose one of"),
    ("--out under a file", lambda: cli("--out", f"{__file__}/r.json"), Refused, "is a file, not a folder"),
    (
        "--out a folder",
        lambda: cli("--out", os.path.dirname(__file__)),
        Refused,
        "is a folder; give a file name",
    ),
]


@pytest.mark.parametrize("call, error, words", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_gives_a_clear_error(call, error, words):
    with pytest.raises(error, match=words) as info:
        call()
    assert len(str(info.value)) > 20  # a sentence, not a bare code
    tb = info.traceback
    assert "torch/" not in str(tb[-1].path) and "numpy/" not in str(tb[-1].path)  # raised by labkit


def test_train_config_bounds_the_temperature_as_the_losses_do():
    # found when the config is made, not at the first loss call after the teacher's logits were computed
    assert lk.TrainConfig(temperature=lk.losses.MAX_TEMPERATURE).temperature == lk.losses.MAX_TEMPERATURE
    with pytest.raises(ValueError, match="temperature must be at most 100"):
        lk.TrainConfig(temperature=200)
    cfg = lk.TrainConfig()
    with pytest.raises(ValueError, match="temperature must be at most 100"):
        cfg.temperature = 1e6
