"""Profiles and TrainConfig hold only values that can run: every field is checked for type, range and finiteness
when a profile or config is made, when get_profile overrides a field, and (TrainConfig) when a field is set later."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import labkit as lk
from labkit.config import (
    PROFILE_CHECKS,
    PROFILES,
    TRAIN_CONFIG_CHECKS,
    CheckedFields,
    Profile,
    TrainConfigChecks,
)

TrainConfig = lk.TrainConfig


# --------------------------------------------------------------------------------------------- profiles
@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_built_in_profile_passes_its_own_checks(name):
    P = PROFILES[name]
    again = Profile(**{f.name: getattr(P, f.name) for f in dataclasses.fields(Profile)})
    assert again == P == lk.get_profile(name)


def test_every_profile_field_has_a_check():
    assert set(PROFILE_CHECKS) == {f.name for f in dataclasses.fields(Profile)}


@pytest.mark.parametrize(
    "override, words",
    [
        ({"student_epochs": 0}, r"student_epochs must be an integer >= 1, got 0"),
        ({"teacher_epochs": -3}, r"teacher_epochs must be an integer >= 1, got -3"),
        ({"teacher_epochs": 2.5}, r"teacher_epochs must be an integer"),
        ({"batch_size": "64"}, r"batch_size must be an integer >= 1, got '64' \(a str\)"),
        ({"fkd_steps": True}, r"fkd_steps .* True \(a bool, not a number\)"),
        ({"seeds": ()}, r"seeds must be a non-empty tuple"),
        ({"seeds": (0, 0, 1)}, r"seeds must not repeat a value.*\[0\]"),
        ({"seeds": (0, 1.5)}, r"seeds\[1\] must be an integer"),
        ({"seeds": (-1,)}, r"seeds\[0\] must be an integer >= 0"),
        ({"seeds": 3}, r"seeds must be a non-empty tuple"),
        ({"tf_seeds": ("0",)}, r"tf_seeds\[0\]"),
        ({"lr": float("nan")}, r"lr must be a number > 0 and finite, got nan"),
        ({"lr": 0.0}, r"lr must be a number > 0 and finite"),
        ({"tf_lr": float("inf")}, r"tf_lr must be a number > 0 and finite, got inf"),
        ({"alphas": (0.5, 1.5)}, r"alphas\[1\] must be in \[0, 1\]"),
        ({"temperatures": (1.0, 0.0)}, r"temperatures\[1\] must be a finite number > 0"),
        ({"pl_thresholds": (0.5, float("nan"))}, r"pl_thresholds\[1\]"),
        ({"max_train": 0}, r"max_train must be an integer >= 1 or None, got 0"),
        ({"kd_labelled": -5}, r"kd_labelled"),
        ({"dataset": "mnist"}, r"unknown dataset 'mnist'; choose one of: cifar10, digits, fashion_mnist"),
        ({"teacher_model": "vit"}, r"unknown teacher_model 'vit'; choose one of: cnn, mlp, resnet"),
        ({"teacher_kwargs": [("width", 8)]}, r"teacher_kwargs must be a dict"),
        ({"augment": "yes"}, r"augment must be True or False"),
        ({"augment": 1}, r"augment must be True or False, got 1"),
        ({"mt_experts": ((0, 1), (2, 12))}, r"mt_experts\[1\]\[1\] must be an integer >= 0 and <= 9"),
        ({"mt_experts": ((0, 1), ())}, r"mt_experts\[1\] must be a non-empty tuple"),
        ({"ens_members": (("vit", {}),)}, r"unknown ens_members\[0\]\[0\] 'vit'"),
        ({"ens_members": ("mlp",)}, r"ens_members\[0\] must be a pair"),
        ({"ens_generations": 0}, r"ens_generations must be an integer >= 1"),
        ({"tf_dataset": "imdb"}, r"unknown tf_dataset 'imdb'"),
        ({"xd_targets": ()}, r"xd_targets must be a non-empty tuple"),
        ({"tf_teacher": ""}, r"tf_teacher must be a non-empty string"),
        ({"tf_teacher_epochs": -1}, r"tf_teacher_epochs must be a number >= 0 and finite"),
        (
            {"tf_max_train": 2_000, "tf_unlabelled": 2_000},
            r"tf_unlabelled \(2000\) must be smaller than tf_max_train",
        ),
    ],
)
def test_get_profile_checks_every_override(override, words):
    with pytest.raises(ValueError, match=words):
        lk.get_profile("smoke", **override)


def test_valid_overrides_are_kept_and_normalised():
    P = lk.get_profile(
        "smoke", seeds=[3, 4], student_epochs=np.int64(2), lr=np.float32(0.5), kd_labelled=None
    )
    assert P.seeds == (3, 4) and type(P.student_epochs) is int and P.student_epochs == 2
    assert type(P.lr) is float and P.lr == 0.5 and P.kd_labelled is None
    assert lk.get_profile("default", tf_teacher_epochs=0).tf_teacher_epochs == 0  # lesson 04's exercise
    assert (
        lk.get_profile("default", mt_experts=((0, 2, 3, 4, 6, 8), (1, 5, 7, 8, 9, 6))).mt_experts[1][-1] == 6
    )


def test_a_profile_from_get_profile_is_a_copy():
    """Editing the model kwargs of one notebook's profile must not change what the next get_profile returns."""
    P = lk.get_profile("smoke")
    P.teacher_kwargs["width"] = 64
    P.student_kwargs.clear()
    assert lk.get_profile("smoke").teacher_kwargs["width"] == 8 and lk.get_profile("smoke").student_kwargs


def test_unknown_override_suggests_the_field():
    with pytest.raises(ValueError, match=r"did you mean 'student_epochs' for 'student_epoch'"):
        lk.get_profile("smoke", student_epoch=2)


def test_profile_fields_cannot_be_set_later():
    P = lk.get_profile("smoke")
    with pytest.raises(dataclasses.FrozenInstanceError):
        P.student_epochs = 0


# --------------------------------------------------------------------------------------------- TrainConfig
def test_every_train_config_field_has_a_check():
    """A field added to TrainConfig without a check would be the one field that is never validated."""
    assert set(TRAIN_CONFIG_CHECKS) == {f.name for f in dataclasses.fields(lk.TrainConfig)}


@pytest.mark.parametrize("value", [0, -3])
def test_epochs_set_after_construction_are_checked(value):
    cfg = TrainConfig(epochs=2)
    with pytest.raises(ValueError, match=rf"epochs must be an integer >= 1, got {value}"):
        cfg.epochs = value
    assert cfg.epochs == 2  # a refused value is not stored


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("weight_decay", float("nan"), r"weight_decay must be a number >= 0 and finite, got nan"),
        ("weight_decay", -1e-4, r"weight_decay must be a number >= 0 and finite"),
        ("lr", True, r"lr must be a number > 0 and finite, got True \(a bool, not a number\)"),
        ("lr", float("inf"), r"lr must be a number > 0 and finite, got inf"),
        ("lr", -1e-3, r"lr must be a number > 0 and finite, got -0.001"),
        ("lr", "1e-3", r"lr must be a number > 0 and finite, got '1e-3' \(a str\)"),
        ("hint_layer", 1.5, r"hint_layer must be an integer"),
        ("hint_layer", True, r"hint_layer must be an integer .* \(a bool, not a number\)"),
        ("hint_layer", "2", r"hint_layer must be an integer"),
        ("beta", float("nan"), r"beta must be a number >= 0 and finite"),
        ("beta", -1.0, r"beta must be a number >= 0 and finite"),
        ("steps", 0, r"steps must be an integer >= 1 or None"),
        ("batch_size", 0, r"batch_size must be an integer >= 1"),
        ("seed", -1, r"seed must be an integer >= 0"),
        ("seed", 2**32, r"seed must be an integer >= 0 and <= 4294967295"),
        ("temperature", float("inf"), r"temperature must be a finite number > 0"),
        ("alpha", float("nan"), r"alpha must be in \[0, 1\]"),
        ("optimizer", "adam", r"unknown optimizer 'adam'; choose one of: adamw, sgd"),
        ("schedule", "linear", r"unknown schedule 'linear'; choose one of: constant, cosine"),
        ("device", "gpu", r"unknown device 'gpu'; choose one of: auto, cpu, cuda, mps"),
        ("device", "cuda:first", r"device 'cuda:first': the part after ':' must be a device number"),
        ("progress", 1, r"progress must be True or False, got 1"),
        ("amp", None, r"amp must be True or False, got None"),
        ("accelerate", 0, r"accelerate must be True or False or None, got 0"),
    ],
)
def test_every_field_is_checked_in_the_constructor_and_later(field, value, words):
    with pytest.raises(ValueError, match=words):
        TrainConfig(**{field: value})
    cfg = TrainConfig()
    with pytest.raises(ValueError, match=words):
        setattr(cfg, field, value)
    assert getattr(cfg, field) == getattr(TrainConfig(), field)


def test_a_typo_is_an_error_not_a_new_attribute():
    cfg = TrainConfig()
    with pytest.raises(AttributeError, match=r"no field 'temprature' \(did you mean 'temperature'\?\)"):
        cfg.temprature = 2.0


def test_replace_keeps_working_and_checks():
    cfg = TrainConfig(epochs=3, lr=0.01)
    new = dataclasses.replace(cfg, epochs=5)
    assert (new.epochs, new.lr, type(new)) == (5, 0.01, type(cfg)) and cfg.epochs == 3
    with pytest.raises(ValueError, match="epochs must be an integer >= 1, got 0"):
        dataclasses.replace(cfg, epochs=0)


def test_valid_values_are_stored_as_given():
    """The cache key of train_or_load is made from the config's values: ints stay ints, floats floats."""
    cfg = TrainConfig(
        lr=1, weight_decay=0, temperature=4, hint_layer=-2, device="cuda:1"
    )  # checked at fit time
    assert (type(cfg.lr), type(cfg.weight_decay), type(cfg.temperature)) == (int, int, int)
    assert dataclasses.asdict(TrainConfig()) == dataclasses.asdict(lk.TrainConfig())
    np_cfg = TrainConfig(epochs=np.int64(3), lr=np.float32(0.25), seed=np.uint32(7))
    assert (type(np_cfg.epochs), type(np_cfg.lr), type(np_cfg.seed)) == (int, float, int)
    assert math.isclose(np_cfg.lr, 0.25)


def test_lk_train_config_runs_the_field_checks():
    assert issubclass(lk.TrainConfig, CheckedFields) and issubclass(lk.TrainConfig, TrainConfigChecks)
    cfg = lk.TrainConfig(epochs=2)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1, got 0"):
        cfg.epochs = 0
    with pytest.raises(ValueError, match="weight_decay"):
        lk.TrainConfig(weight_decay=float("nan"))
