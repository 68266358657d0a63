"""Run profiles: one knob (``PROFILE``) scales every notebook from a CI smoke test to the reference run.

* ``smoke``   - CI: offline, scikit-learn digits, seconds per notebook on a 2-core CPU.
* ``default`` - the real lesson on a laptop CPU or a Colab GPU: Fashion-MNIST (real data, falls back to
  digits loudly when it cannot be loaded), a few minutes per notebook.
* ``full``    - a GPU: CIFAR-10 with a ResNet teacher, the numbers in ``results/REFERENCE.md``.

Notebooks read their settings from ``get_profile(PROFILE)`` and may override single fields
(``get_profile("default", student_epochs=3)``). The environment variable ``LABKIT_PROFILE`` overrides the
notebook's choice (used by the nbval run in CI); the override is announced, never silent.

Every field of a ``Profile`` (``PROFILE_CHECKS``) and of ``lk.TrainConfig`` (``TRAIN_CONFIG_CHECKS``, through the
``TrainConfigChecks`` mixin, also when a field is set after construction) is checked for type, range and finiteness,
with a message that names the field, the value and what is allowed.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import numbers
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ._validate import check_alpha, check_choice, check_temperature
from .data import DATASETS
from .losses import MAX_TEMPERATURE
from .models import MODELS
from .text import TEXT_DATASETS

__all__ = ["PROFILES", "CheckedFields", "Profile", "TrainConfigChecks", "get_profile"]

Check = Callable[[Any, str], Any]  # check(value, field name) -> the value to store, or raise ValueError


# --------------------------------------------------------------------------------------------- field checks
# One check per field: type, range and finiteness, with a message that names the field, the value it got and what
# is allowed. A bool is never a number (lr=True), a string never a number (epochs="3"). NumPy scalars are stored
# as Python numbers; other values are stored as given, so configs (and the cache keys made from them) do not change.
def _got(value: Any) -> str:
    if isinstance(value, bool):
        return f"{value!r} (a bool, not a number)"
    return (
        f"{value!r}"
        if isinstance(value, (int, float, type(None)))
        else f"{value!r} (a {type(value).__name__})"
    )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _integer(
    minimum: int | None = 1, maximum: int | None = None, optional: bool = False, why: str = ""
) -> Check:
    allowed = "an integer" + (f" >= {minimum}" if minimum is not None else "")
    allowed += (f" and <= {maximum}" if maximum is not None else "") + (" or None" if optional else "")

    def check(value: Any, name: str) -> Any:
        value = _plain(value)
        if value is None and optional:
            return None
        if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
                or (minimum is not None and value < minimum) or (maximum is not None and value > maximum)):  # fmt: skip
            raise ValueError(f"{name} must be {allowed}{why}, got {_got(value)}.")
        return value

    return check


def _real(low: float, high: float | None = None, above: bool = False, why: str = "") -> Check:
    """A finite number >= low (> low with ``above``), <= high when given; ints are numbers too."""
    allowed = f"a number {'>' if above else '>='} {low:g}" + (
        f" and <= {high:g}" if high is not None else " and finite"
    )

    def check(value: Any, name: str) -> Any:
        value = _plain(value)
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or value < low or (above and value == low) or (high is not None and value > high):
            raise ValueError(f"{name} must be {allowed}{why}, got {_got(value)}.")
        return value

    return check


def _via(validate: Callable[[Any, str], Any]) -> Check:
    """A check from ``labkit._validate`` (its own message), storing the value as given."""

    def check(value: Any, name: str) -> Any:
        value = _plain(value)
        validate(value, name)
        return value

    return check


def _flag(optional: bool = False) -> Check:
    def check(value: Any, name: str) -> Any:
        value = _plain(value)
        if not (isinstance(value, bool) or (optional and value is None)):
            raise ValueError(
                f"{name} must be True or False{' or None' if optional else ''}, got {_got(value)}."
            )
        return value

    return check


def _text(choices: Callable[[], Any] | None = None, own: bool = False) -> Check:
    """A non-empty string; with ``choices`` one of them (``own``: or a .csv/.tsv/.tab path or "hf:<name>")."""

    def check(value: Any, name: str) -> Any:
        value = _plain(value)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name} must be a non-empty string, got {_got(value)}.")
        if own and (value.startswith("hf:") or Path(value).suffix.lower() in (".csv", ".tsv", ".tab")):
            return value
        return value if choices is None else check_choice(value, choices(), name)

    return check


def _seq(item: Check, distinct: bool = False, what: str = "") -> Check:
    """A non-empty tuple (or list) of items that each pass ``item``; stored as a tuple."""

    def check(value: Any, name: str) -> Any:
        if not isinstance(value, (tuple, list, range)) or len(value) == 0:
            raise ValueError(f"{name} must be a non-empty tuple{what}, got {_got(value)}.")
        out = tuple(item(v, f"{name}[{i}]") for i, v in enumerate(value))
        if distinct and len(set(out)) != len(out):
            repeated = sorted({v for v in out if out.count(v) > 1})
            raise ValueError(f"{name} must not repeat a value, got {value!r} ({repeated} more than once).")
        return out

    return check


def _kwargs(value: Any, name: str) -> Any:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{name} must be a dict of keyword arguments (str keys), got {_got(value)}.")
    return value


def _member(value: Any, name: str) -> Any:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a pair (model family, kwargs dict), got {_got(value)}.")
    return (_text(lambda: MODELS)(value[0], f"{name}[0]"), _kwargs(value[1], f"{name}[1]"))


def _device(value: Any, name: str) -> Any:
    """'auto', 'cpu', 'cuda', 'cuda:<n>', 'mps' or a torch.device (whether it exists is checked where it is used:
    a config may be written on one machine and run on another); the messages are ``get_device``'s."""
    if isinstance(value, torch.device):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a str ('auto', 'cpu', 'cuda', 'cuda:1', 'mps') or a torch.device, "
                         f"got {_got(value)}.")  # fmt: skip
    kind, _, index = value.partition(":")
    check_choice(kind, ("auto", "cpu", "cuda", "mps"), name)
    if index and (not index.isdigit() or kind == "auto"):
        raise ValueError(f"{name} {value!r}: the part after ':' must be a device number, e.g. 'cuda:0'.")
    return value


def _optimizers():
    from .training import OPTIMIZERS  # training imports this module: read its registry when a config is made

    return OPTIMIZERS


_SEED = _integer(0, 2**32 - 1, why=" (NumPy accepts seeds below 2**32)")
_SEEDS = _seq(_SEED, distinct=True, what=" of distinct integer seeds")
_TEXT_DATA = _text(lambda: TEXT_DATASETS, own=True)

TRAIN_CONFIG_CHECKS: dict[str, Check] = {
    "epochs": _integer(1),
    "steps": _integer(1, optional=True),
    "batch_size": _integer(1),
    "lr": _real(0, above=True),
    "weight_decay": _real(0),
    "optimizer": _text(_optimizers),
    "schedule": _text(lambda: ("cosine", "constant")),
    "temperature": _via(lambda value, name: check_temperature(value, name, maximum=MAX_TEMPERATURE)),
    "alpha": _via(check_alpha),
    "beta": _real(0, why=" (the feature term's weight)"),
    # the stage index; whether it exists depends on the models, which fit() sees (-1 is the last stage)
    "hint_layer": _integer(None, why=" (a stage index; -1 is the last stage)"),
    "seed": _SEED,
    "device": _device,
    "amp": _flag(),
    "cache_teacher": _flag(),
    "augment": _flag(),
    "progress": _flag(),
    "accelerate": _flag(optional=True),
}


class CheckedFields:
    """Mixin for a (not frozen) dataclass: every assignment to a field, in the constructor, in
    ``dataclasses.replace`` and later (``cfg.epochs = 0``), runs that field's check from ``_field_checks``, so a
    config can never hold a value that fails halfway through training. Assigning a name that is not a field (a
    typo such as ``cfg.epoch = 3``) is an error too, instead of a new attribute that nothing reads."""

    _field_checks: ClassVar[Mapping[str, Check]] = {}

    def __setattr__(self, name: str, value: Any) -> None:
        check = type(self)._field_checks.get(name)
        if check is not None:
            value = check(value, name)
        elif dataclasses.is_dataclass(self) and not name.startswith("_"):
            names = [f.name for f in dataclasses.fields(self)]
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise AttributeError(
                    f"{type(self).__name__} has no field {name!r}{hint}; fields: {', '.join(names)}."
                )
        object.__setattr__(self, name, value)


class TrainConfigChecks(CheckedFields):
    """``TrainConfig``'s field checks (``TRAIN_CONFIG_CHECKS``): ``class TrainConfig(TrainConfigChecks)``."""

    _field_checks = TRAIN_CONFIG_CHECKS


@dataclass(frozen=True)
class Profile:
    """Everything that changes between a smoke run and a full run. Field names match notebook parameters."""

    name: str
    dataset: str  # "digits" | "fashion_mnist" | "cifar10"
    max_train: int | None  # cap on training images (class-stratified), None = all
    max_test: int | None
    seeds: tuple[int, ...]  # student runs are repeated over these seeds (mean +- std)
    teacher_model: str  # a key of labkit.models.MODELS
    teacher_kwargs: dict = field(default_factory=dict)
    student_model: str = "cnn"
    student_kwargs: dict = field(default_factory=dict)
    kd_student_model: str = "mlp"  # lesson 02's student (an MLP, as in Hinton et al.'s MNIST experiments)
    kd_student_kwargs: dict = field(default_factory=dict)
    kd_labelled: int | None = None  # labelled images lesson 02's main comparison trains on (None = all)
    tiny_student_model: str = "mlp"  # the capacity-gap student of lesson 02
    tiny_student_kwargs: dict = field(default_factory=dict)
    teacher_epochs: int = 10
    augment: bool = False  # image teachers train on random crop + flip (TrainConfig.augment), on the device
    student_epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-3
    labels_per_class: int = 20  # few-labels experiment: labelled examples per class
    # lesson 03 (feature KD): optimisation steps of every student run, and their batch size
    fkd_steps: int = 300
    fkd_batch_size: int = 64
    temperatures: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)  # sweeps
    alphas: tuple[float, ...] = (0.0, 0.5, 0.9)
    # lesson 08 (multi-teacher KD): experts on class subsets (and, in its second part, one generalist that knows
    # every class), distilled into one student that has few labels and an unlabelled transfer set
    mt_experts: tuple[tuple[int, ...], ...] = ((0, 2, 3, 4, 6), (1, 5, 7, 8, 9))  # each expert's classes
    mt_expert_model: str = "mlp"
    mt_expert_kwargs: dict = field(default_factory=lambda: {"hidden": (256,)})
    mt_expert_epochs: int = 6
    mt_generalist_model: str = "mlp"  # the generalist: the experts' recipe on every class
    mt_generalist_kwargs: dict = field(default_factory=lambda: {"hidden": (256,)})
    mt_generalist_epochs: int = 6
    mt_student_model: str = "mlp"
    mt_student_kwargs: dict = field(default_factory=lambda: {"hidden": (64,)})
    mt_labels_per_class: int = 10  # the student's labels; the rest of the training set is unlabelled
    # lesson 07: the ensemble's members as (model, kwargs); member k is trained with seed SEED + k
    ens_members: tuple[tuple[str, dict], ...] = (
        ("resnet", {"width": 8, "blocks": (1, 1, 1)}),
        ("cnn", {"width": 8, "stages": 3}),
        ("cnn", {"width": 8, "stages": 3}),
        ("mlp", {"hidden": (256,)}),
    )
    ens_generations: int = 2  # born-again generations after generation 0
    # lesson 04 (transformers): checkpoints are Hub ids, local folders, or "tiny-*" config-built BERTs (offline)
    tf_dataset: str = "sst2"  # a key of labkit.text.TEXT_DATASETS
    tf_max_train: int | None = 6_000  # training sentences read (stratified subsample; None = all)
    tf_unlabelled: int = 3_000  # of those, the transfer set (no labels); the teacher trains on the rest
    tf_labelled: int | None = 100  # the students' labels, a random part of the teacher's (None = all)
    tf_max_test: int | None = None
    tf_max_length: int = 64  # tokens per sentence (truncation)
    tf_teacher: str = "sentence-transformers/all-MiniLM-L6-v2"
    tf_teacher_epochs: float = 1.0  # fine-tuning of the teacher on the task (0: the checkpoint already is)
    tf_teacher_lr: float = 1e-4
    tf_student: str = "sentence-transformers/all-MiniLM-L6-v2"
    tf_student_layers: int | None = 2  # keep the first n layers of the student checkpoint (None: all)
    tf_steps: int = 100  # optimisation steps of every student arm (equal budgets, however large its data)
    tf_lr: float = 5e-4
    tf_batch_size: int = 32
    tf_temperature: float = 2.0
    tf_alpha: float = 0.9
    tf_layer_weight: float = 1.0  # weight of the hidden-state and of the attention term
    tf_layer_kd: bool = False  # train the hidden-state + attention arm too (the teacher runs on every batch)
    tf_freeze_embeddings: bool = True  # students keep the checkpoint's token embeddings (pretrained ones)
    tf_seeds: tuple[int, ...] = (0, 1, 2)
    tf_bug_steps: int = 100  # lesson 04's two classic-bug runs and their correct run (a bug shows early)
    # lesson 05 (pseudo-labels): the teacher learns from one half of the training set, the student gets
    # pl_labels_per_class true labels per class from the other half; the rest of that half is unlabelled
    pl_labels_per_class: int = 20
    pl_budgets: tuple[int, ...] = (5, 20, 100, 500)  # labels per class along the label-budget curve
    pl_thresholds: tuple[float, ...] = (0.0, 0.5, 0.9, 0.99)  # confidence thresholds for hard pseudo-labels
    # soft targets on the pool: T and alpha chosen together on validation (alpha near 1: the CE term averages over
    # the few labelled rows of a batch, so a low alpha overweights them; Hinton et al. 2015 favour a low CE weight)
    pl_temperatures: tuple[float, ...] = (1.0, 2.0, 4.0)
    pl_alphas: tuple[float, ...] = (0.5, 0.9, 1.0)
    # lesson 06 (cross-domain): text domains (labkit.text) and bag-of-words sizes
    xd_source: str = "books"
    xd_targets: tuple[str, ...] = ("dvd", "kitchen")
    xd_max_features: int = 5_000
    xd_teacher_hidden: tuple[int, ...] = (256,)
    xd_epochs: int = 15
    # lesson 09 (language models): character-level GPT-2s built from a transformers config and trained on the
    # course's review text; or (lm_hub_teacher/lm_hub_student set, e.g. on a Colab GPU) a Hub pair sharing a tokenizer
    lm_domains: tuple[str, ...] = ("books", "dvd", "kitchen")  # the corpus: review text of these domains
    lm_context: int = 64  # characters per training window
    lm_teacher_layers: int = 3
    lm_teacher_width: int = 128
    lm_teacher_heads: int = 4
    lm_teacher_steps: int = 2_000  # the teacher's one-off training (cached), on every training window
    lm_student_layers: int = 2
    lm_student_width: int = 64
    lm_student_heads: int = 2
    lm_transfer: int = 6_000  # windows the students train on (the teacher saw the whole corpus)
    lm_steps: int = 300  # optimisation steps of every student arm (equal tokens)
    lm_batch_size: int = 32
    lm_lr: float = 3e-3
    lm_alpha: float = 0.5  # weight of the token-level KD term
    lm_temperature: float = 1.0
    lm_eval_windows: int = 1_000  # held-out windows for perplexity (validation and test each)
    lm_prompt_length: int = 16  # characters of real text before a generation
    lm_new_tokens: int = 48  # characters generated per prompt
    lm_prompts: int = 160  # held-out prompts for the generation metrics
    lm_policy_steps: int = 60  # on-policy vs off-policy fine-tuning steps after lm_steps of CE
    lm_policy_new_tokens: int = (
        32  # tokens each of those steps samples (on-policy) or reads (off-policy) per prompt
    )
    lm_policy_batch_size: int = (
        32  # prompts per on-policy / off-policy step (equal teacher calls in both arms)
    )
    lm_expert_steps: int = 300  # each domain expert: the teacher fine-tuned on one domain (one-off, cached)
    lm_hub_teacher: str = (
        ""  # e.g. "HuggingFaceTB/SmolLM2-360M" (full profile, with a network); "" = course GPT-2s
    )
    lm_hub_student: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        # every field (the profile's own values and get_profile's overrides alike): type, range, finiteness;
        # frozen, so a checked value is stored with object.__setattr__ (lists become tuples)
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, PROFILE_CHECKS[f.name](getattr(self, f.name), f.name))
        if self.tf_max_train is not None and self.tf_unlabelled >= self.tf_max_train:
            raise ValueError(
                f"tf_unlabelled ({self.tf_unlabelled}) must be smaller than tf_max_train ({self.tf_max_train}): the "
                "transfer set is taken from the sentences read, and the teacher trains on the rest."
            )
        if self.xd_source in self.xd_targets:
            raise ValueError(
                f"xd_targets {self.xd_targets} include the source domain xd_source={self.xd_source!r}: a cross-domain "
                "target must be another domain (a source-to-source 'shift' measures nothing)."
            )


_MODEL = _text(lambda: MODELS)
_COUNT, _COUNT_OR_ALL = _integer(1), _integer(1, optional=True)
_RATE = _real(0, above=True)
_CLASSES = _seq(_integer(0, 9, why=" (a class index; a profile's datasets have 10 classes)"), distinct=True)

PROFILE_CHECKS: dict[str, Check] = {
    "name": _text(),
    "dataset": _text(lambda: DATASETS),
    "max_train": _COUNT_OR_ALL,
    "max_test": _COUNT_OR_ALL,
    "seeds": _SEEDS,
    **{
        k: _MODEL
        for k in (
            "teacher_model",
            "student_model",
            "kd_student_model",
            "tiny_student_model",
            "mt_expert_model",
            "mt_generalist_model",
            "mt_student_model",
        )
    },  # fmt: skip
    **{
        k: _kwargs
        for k in (
            "teacher_kwargs",
            "student_kwargs",
            "kd_student_kwargs",
            "tiny_student_kwargs",
            "mt_expert_kwargs",
            "mt_generalist_kwargs",
            "mt_student_kwargs",
        )
    },  # fmt: skip
    "kd_labelled": _COUNT_OR_ALL,
    **{
        k: _COUNT
        for k in (
            "teacher_epochs",
            "student_epochs",
            "batch_size",
            "labels_per_class",
            "fkd_steps",
            "fkd_batch_size",
            "mt_expert_epochs",
            "mt_generalist_epochs",
            "mt_labels_per_class",
            "tf_unlabelled",
            "tf_steps",
            "tf_batch_size",
            "tf_bug_steps",
            "pl_labels_per_class",
            "xd_max_features",
            "xd_epochs",
        )
    },  # fmt: skip
    "ens_generations": _integer(1, why=" (born-again generations after generation 0)"),
    **{k: _flag() for k in ("augment", "tf_layer_kd", "tf_freeze_embeddings")},
    **{k: _RATE for k in ("lr", "tf_teacher_lr", "tf_lr")},
    "temperatures": _seq(_via(check_temperature), distinct=True),
    "alphas": _seq(_via(check_alpha), distinct=True),
    "mt_experts": _seq(_CLASSES, distinct=True, what=" of class-index tuples, one per expert"),
    "ens_members": _seq(_member, what=" of (model family, kwargs) pairs"),
    "tf_dataset": _TEXT_DATA,
    **{k: _COUNT_OR_ALL for k in ("tf_max_train", "tf_labelled", "tf_max_test", "tf_student_layers")},
    "tf_max_length": _integer(2, why=" (tokens per sentence, [CLS] and [SEP] included)"),
    **{k: _text() for k in ("tf_teacher", "tf_student")},
    "tf_teacher_epochs": _real(0, why=" (0: the checkpoint is already fine-tuned)"),
    "tf_temperature": _via(check_temperature),
    "tf_alpha": _via(check_alpha),
    "tf_layer_weight": _real(0),
    "tf_seeds": _SEEDS,
    "pl_budgets": _seq(_integer(1), distinct=True, what=" of labels per class"),
    "pl_thresholds": _seq(_real(0, 1), distinct=True, what=" of confidence thresholds in [0, 1]"),
    "pl_temperatures": _seq(_via(check_temperature), distinct=True),
    "pl_alphas": _seq(_via(check_alpha), distinct=True),
    "xd_source": _TEXT_DATA,
    "xd_targets": _seq(_TEXT_DATA, distinct=True, what=" of text datasets"),
    "xd_teacher_hidden": _seq(_integer(1), what=" of hidden-layer widths"),
    "lm_domains": _seq(_TEXT_DATA, distinct=True, what=" of text datasets"),
    **{
        k: _COUNT
        for k in (
            "lm_context",
            "lm_teacher_layers",
            "lm_teacher_width",
            "lm_teacher_heads",
            "lm_teacher_steps",
            "lm_student_layers",
            "lm_student_width",
            "lm_student_heads",
            "lm_transfer",
            "lm_steps",
            "lm_batch_size",
            "lm_eval_windows",
            "lm_prompt_length",
            "lm_new_tokens",
            "lm_prompts",
            "lm_policy_steps",
            "lm_policy_new_tokens",
            "lm_policy_batch_size",
            "lm_expert_steps",
        )
    },  # fmt: skip
    "lm_lr": _RATE,
    "lm_alpha": _via(check_alpha),
    "lm_temperature": _via(check_temperature),
    **{
        k: lambda value, name: value if isinstance(value, str) else _text()(value, name)
        for k in ("lm_hub_teacher", "lm_hub_student")
    },
    "description": lambda value, name: value if isinstance(value, str) else _text()(value, name),
}


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        dataset="digits",
        max_train=None,
        max_test=None,
        seeds=(0, 1),
        teacher_model="resnet",
        teacher_kwargs={"width": 8, "blocks": (1, 1, 1)},
        student_model="cnn",
        student_kwargs={"width": 4, "stages": 3, "pool": 2},
        kd_student_kwargs={"hidden": (16,)},
        kd_labelled=500,
        fkd_steps=40,
        tiny_student_kwargs={"hidden": (4,)},
        teacher_epochs=4,
        student_epochs=3,
        batch_size=64,
        labels_per_class=5,
        temperatures=(1.0, 4.0),
        alphas=(0.0, 0.9),
        mt_expert_kwargs={"hidden": (64,)},
        mt_expert_epochs=15,
        mt_generalist_kwargs={"hidden": (64,)},
        mt_generalist_epochs=15,
        mt_labels_per_class=10,
        ens_members=(
            ("resnet", {"width": 8, "blocks": (1, 1, 1)}),
            ("cnn", {"width": 8, "stages": 3}),
            ("cnn", {"width": 8, "stages": 3}),
            ("mlp", {"hidden": (64,)}),
        ),
        ens_generations=2,
        tf_dataset="toy_movies",
        tf_max_train=2_000,
        tf_unlabelled=1_000,
        tf_labelled=200,
        tf_max_test=None,
        tf_teacher="tiny-teacher",
        tf_teacher_epochs=5.0,
        tf_teacher_lr=3e-3,
        tf_student="tiny-student",
        tf_student_layers=None,
        tf_steps=100,
        tf_lr=3e-3,
        tf_layer_kd=True,
        tf_freeze_embeddings=False,  # a tiny BERT's embeddings are random: they must learn
        tf_seeds=(0, 1),
        pl_labels_per_class=5,
        pl_budgets=(2, 5, 20),
        pl_temperatures=(1.0, 4.0),
        pl_alphas=(0.5, 1.0),
        xd_source="toy_books",
        xd_targets=("toy_dvd", "toy_kitchen"),
        xd_max_features=2_000,
        xd_teacher_hidden=(64,),
        xd_epochs=5,
        lm_domains=("toy_books", "toy_dvd", "toy_kitchen"),
        lm_context=32,
        lm_teacher_layers=1,
        lm_teacher_width=32,
        lm_teacher_heads=2,
        lm_teacher_steps=150,
        lm_student_layers=1,
        lm_student_width=16,
        lm_student_heads=2,
        lm_transfer=400,
        lm_steps=60,
        lm_eval_windows=200,
        lm_prompt_length=8,
        lm_new_tokens=16,
        lm_prompts=64,
        lm_policy_steps=15,
        lm_policy_new_tokens=12,
        lm_policy_batch_size=16,
        lm_expert_steps=30,
        description="CI: offline digits, tiny models, seconds on a 2-core CPU",
    ),
    "default": Profile(
        name="default",
        dataset="fashion_mnist",
        max_train=20_000,
        max_test=5_000,
        seeds=(0, 1, 2),
        teacher_model="resnet",
        teacher_kwargs={"width": 16, "blocks": (1, 1, 1)},
        student_model="cnn",
        # a 4x4 grid head: the classifier sees where a feature is, not only that it is
        student_kwargs={"width": 8, "stages": 3, "pool": 4},
        kd_student_kwargs={"hidden": (16,)},
        kd_labelled=1_000,
        fkd_steps=300,  # of fkd_batch_size=64, screened on validation (2 seeds) against 250 of 128
        tiny_student_kwargs={"hidden": (4,)},
        teacher_epochs=6,
        student_epochs=8,
        batch_size=128,
        labels_per_class=20,
        # lesson 08: the dataclass defaults (MLP teachers, tops vs the rest, 10 labels per class)
        ens_members=(  # four MLPs of similar strength and different shapes: the small ResNets trained less
            ("mlp", {"hidden": (256,)}),  # accurately on this budget and far slower on a CPU
            ("mlp", {"hidden": (512,)}),
            ("mlp", {"hidden": (256, 128)}),
            ("mlp", {"hidden": (512, 256)}),
        ),
        ens_generations=2,
        tf_dataset="sst2",
        tf_max_train=6_000,
        tf_unlabelled=3_000,
        tf_labelled=100,
        tf_teacher="sentence-transformers/all-MiniLM-L6-v2",
        tf_teacher_epochs=1.0,
        tf_student="sentence-transformers/all-MiniLM-L6-v2",
        tf_student_layers=2,
        tf_steps=80,  # validation, seeds 0-2: headline +7.2 at 70 steps, +8.7 at 80, +9.6 at 100; 100 ran over 300 s
        tf_bug_steps=40,
        tf_lr=5e-4,
        tf_layer_kd=False,
        tf_seeds=(0, 1, 2),
        description="laptop CPU or Colab GPU: Fashion-MNIST, minutes per notebook",
    ),
    "full": Profile(
        name="full",
        dataset="cifar10",
        max_train=None,
        max_test=None,
        seeds=(0, 1, 2),
        teacher_model="resnet",
        teacher_kwargs={"width": 32, "blocks": (2, 2, 2)},
        student_model="cnn",
        student_kwargs={"width": 16, "stages": 3, "pool": 4},
        fkd_steps=3_000,
        fkd_batch_size=128,
        kd_student_model="cnn",
        kd_student_kwargs={"width": 16, "stages": 3},
        kd_labelled=5_000,
        tiny_student_kwargs={"hidden": (16,)},
        teacher_epochs=30,
        augment=True,  # CIFAR-10 teachers overfit without crop + flip; the students train on the clean images
        student_epochs=30,
        batch_size=256,
        labels_per_class=100,
        temperatures=(1.0, 2.0, 4.0, 8.0, 16.0),
        alphas=(0.0, 0.25, 0.5, 0.75, 0.9, 1.0),
        mt_experts=((0, 1, 8, 9), (2, 3, 4, 5, 6, 7)),  # CIFAR-10: vehicles, animals
        mt_expert_model="resnet",
        mt_expert_kwargs={"width": 16, "blocks": (1, 1, 1)},
        mt_expert_epochs=30,
        mt_generalist_model="resnet",
        mt_generalist_kwargs={"width": 16, "blocks": (1, 1, 1)},
        mt_generalist_epochs=30,
        mt_student_model="cnn",
        mt_student_kwargs={"width": 16, "stages": 3},
        mt_labels_per_class=100,
        ens_members=(
            ("resnet", {"width": 32, "blocks": (2, 2, 2)}),
            ("resnet", {"width": 16, "blocks": (2, 2, 2)}),
            ("cnn", {"width": 32, "stages": 3}),
            ("mlp", {"hidden": (512,)}),
        ),
        ens_generations=3,
        tf_dataset="sst2",
        tf_max_train=None,
        tf_unlabelled=30_000,
        tf_labelled=1_000,
        tf_teacher="textattack/bert-base-uncased-SST-2",
        tf_teacher_epochs=0.0,
        tf_student="google/bert_uncased_L-4_H-256_A-4",
        tf_student_layers=None,
        tf_steps=3_000,
        tf_bug_steps=300,
        tf_lr=1e-4,
        tf_layer_kd=True,
        tf_batch_size=64,
        tf_seeds=(0, 1, 2),
        pl_labels_per_class=50,
        pl_budgets=(10, 50, 250, 1_000),
        xd_teacher_hidden=(512,),
        xd_epochs=20,
        lm_teacher_layers=6,
        lm_teacher_width=256,
        lm_teacher_heads=8,
        lm_teacher_steps=6_000,
        lm_student_layers=2,
        lm_student_width=128,
        lm_student_heads=4,
        lm_transfer=12_000,
        lm_steps=1_500,
        lm_policy_steps=200,
        lm_policy_batch_size=64,
        lm_expert_steps=1_000,
        lm_hub_teacher="HuggingFaceTB/SmolLM2-360M",
        lm_hub_student="HuggingFaceTB/SmolLM2-135M",
        description="GPU: CIFAR-10, ResNet teacher, the reference results",
    ),
}


def get_profile(name: str = "default", **overrides) -> Profile:
    """The profile called ``name`` (or ``$LABKIT_PROFILE`` when set), with single fields overridden; every
    override is checked like the profile's own values (type, range, finiteness), the field named in the message.

    >>> get_profile("smoke", student_epochs=1).student_epochs
    1
    """
    env = os.environ.get("LABKIT_PROFILE")
    if env and env != name:
        check_choice(env, PROFILES, "profile (from $LABKIT_PROFILE)")
        print(f"[labkit] PROFILE={name!r} overridden by the environment: LABKIT_PROFILE={env!r}")
        name = env
    check_choice(name, PROFILES, "profile")
    profile = PROFILES[name]
    known = {f.name for f in dataclasses.fields(Profile)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        close = {u: difflib.get_close_matches(u, known, n=1) for u in unknown}
        hint = "".join(f" (did you mean {c[0]!r} for {u!r}?)" for u, c in close.items() if c)
        raise ValueError(f"unknown profile field(s) {unknown}{hint}; fields are: {', '.join(sorted(known))}.")
    # a deep copy: the model kwargs are dicts, and a notebook that edits P.teacher_kwargs must not change the
    # profile that every later get_profile call returns; replace() runs the field checks on the overrides
    return dataclasses.replace(copy.deepcopy(profile), **overrides)
