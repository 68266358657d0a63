"""Learning from a teacher on data without labels: pseudo-labels (lesson 05) and domain pairs (lesson 06).

* ``pseudo_labels(teacher_logits, threshold)``: the teacher's argmax class, its confidence, and which rows
  pass a confidence threshold.
* ``with_pseudo_labels(data, teacher_logits, threshold)``: a training set where unlabelled rows carry the
  teacher's hard label (rows below the threshold are dropped); labelled rows keep their true labels.
* ``pseudo_label_quality``: coverage and accuracy of the pseudo-labels per threshold (when the truth is known).
* ``DomainPair`` / ``domain_pair``: a source and a target dataset with the same label space, checked once;
  ``domain_shift`` measures one model on both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn

from ._validate import check_fraction, check_has_data, check_logits
from .data import ImageData
from .metrics import _check_scores, accuracy, predict_logits

__all__ = [
    "DomainPair",
    "PseudoLabels",
    "domain_pair",
    "domain_shift",
    "pseudo_label_quality",
    "pseudo_labels",
    "with_pseudo_labels",
]


class PseudoLabels(NamedTuple):
    labels: torch.Tensor  # (N,) int64, the teacher's argmax class
    confidence: torch.Tensor  # (N,) float, the teacher's max softmax probability
    keep: torch.Tensor  # (N,) bool, confidence >= threshold


def pseudo_labels(teacher_logits: torch.Tensor, threshold: float = 0.0) -> PseudoLabels:
    """Hard labels from ``teacher_logits`` ``(N, K)``; ``keep`` marks rows whose max probability is at least
    ``threshold`` (in [0, 1]; 0 keeps every row, 1 keeps only rows the teacher is certain of)."""
    logits = check_logits(teacher_logits, "teacher_logits")
    if len(logits):  # finite (or -inf: a class of probability 0), and logits, not probabilities
        _check_scores(logits, "teacher_logits", probabilities_ok=False)
    threshold = check_fraction(threshold, "threshold (a probability)")
    probs = logits.detach().float().softmax(dim=-1)
    confidence, labels = probs.max(dim=-1)
    return PseudoLabels(labels.long(), confidence, confidence >= threshold)


def with_pseudo_labels(data: ImageData, teacher_logits: torch.Tensor, threshold: float = 0.0) -> ImageData:
    """``data`` with each unlabelled row (``y = -1``) labelled by the teacher's argmax; unlabelled rows whose
    teacher confidence is below ``threshold`` are dropped. Labelled rows keep their true label, always."""
    if not isinstance(data, ImageData):
        raise ValueError(f"data must be an ImageData, got {type(data).__name__}.")
    logits = check_logits(teacher_logits, "teacher_logits")
    if logits.shape != (len(data), data.num_classes):
        raise ValueError(
            f"teacher_logits must be (N, K) = ({len(data)}, {data.num_classes}) to label this data, "
            f"got {tuple(logits.shape)}. Compute them on the same rows, in the same order."
        )
    pl = pseudo_labels(logits, threshold)
    y = data.y.cpu()
    unlabelled = y < 0
    new_y = torch.where(unlabelled, pl.labels, y)
    rows = torch.nonzero(~unlabelled | pl.keep).squeeze(1)
    out = ImageData(data.x, new_y.to(data.y.device), list(data.classes), data.name, data.source)
    return out.subset(rows)


def pseudo_label_quality(
    teacher_logits: torch.Tensor, true_labels: torch.Tensor, thresholds: Sequence[float] = (0.0, 0.5, 0.9)
) -> Any:
    """A table with one row per threshold: ``coverage`` (fraction kept) and ``accuracy`` of the kept
    pseudo-labels against ``true_labels`` (NaN when nothing is kept). Needs the true labels: a diagnostic."""
    import pandas as pd

    logits = check_logits(teacher_logits, "teacher_logits")
    if len(logits) == 0:
        raise ValueError("teacher_logits is empty: pseudo-label quality needs at least one row.")
    if not isinstance(true_labels, torch.Tensor) or true_labels.shape != (len(logits),):
        raise ValueError(f"true_labels must be a tensor of shape ({len(logits)},), one label per row.")
    check_has_data(true_labels, "true_labels")
    k = logits.shape[1]
    if (
        true_labels.is_floating_point()
        or true_labels.is_complex()
        or true_labels.dtype == torch.bool
        or int(true_labels.min()) < 0
        or int(true_labels.max()) >= k
    ):
        raise ValueError(
            f"true_labels must be the known classes 0..{k - 1} of every row (integers; -1 'unknown' rows would count "
            f"as wrong), got dtype {true_labels.dtype}, values in [{true_labels.min().item()}, {true_labels.max().item()}]."
        )
    if isinstance(thresholds, (int, float)) and not isinstance(thresholds, bool):
        thresholds = [thresholds]
    if isinstance(thresholds, (str, bytes)) or not isinstance(thresholds, Sequence) or len(thresholds) == 0:
        raise ValueError(
            f"thresholds must be a non-empty list of probabilities in [0, 1], got {thresholds!r}."
        )
    rows = []
    for t in thresholds:
        pl = pseudo_labels(logits, t)
        kept = int(pl.keep.sum())
        correct = (
            (pl.labels[pl.keep] == true_labels.cpu()[pl.keep]).float().mean().item() if kept else float("nan")
        )
        rows.append(
            {"threshold": float(t), "coverage": kept / len(logits), "accuracy": correct, "kept": kept}
        )
    return pd.DataFrame(rows).set_index("threshold")


def _check_label_spaces(sc: list, tc: list) -> None:
    if sc != tc:
        if sorted(sc) == sorted(tc):
            why = "the same class names in a different order (label i means different things)"
        elif len(sc) != len(tc):
            why = f"{len(sc)} source classes vs {len(tc)} target classes"
        else:
            why = f"different class names: only in source {sorted(set(sc) - set(tc))}, only in target {sorted(set(tc) - set(sc))}"
        raise ValueError(
            f"source and target label spaces differ: {why}. Source {sc}, target {tc}. Cross-domain "
            "distillation needs the same classes in the same order; map the labels first."
        )


def _classes(split: Any, name: str) -> list:
    classes = getattr(split, "classes", None)
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence):
        raise ValueError(
            f"{name} must be a dataset with .classes (an ImageData or TextData), got {type(split).__name__}."
        )
    return list(classes)


@dataclass(eq=False)
class DomainPair:
    """A source and a target domain over the same classes (train/test splits of each)."""

    source_train: Any
    source_test: Any
    target_train: Any
    target_test: Any

    def __post_init__(self) -> None:
        names = ("source_train", "source_test", "target_train", "target_test")
        sc, *rest = (_classes(getattr(self, n), n) for n in names)
        for n, c in zip(names[1:], rest):
            if n == "source_test" and c != sc:
                raise ValueError(f"source_test's classes {c} differ from source_train's {sc}.")
            _check_label_spaces(sc, c)

    @property
    def classes(self) -> list[str]:
        return list(self.source_train.classes)

    @property
    def names(self) -> tuple[str, str]:
        return self.source_train.name, self.target_train.name


def domain_pair(source: Any, target: Any) -> DomainPair:
    """Pair two datasets (``DataSplits`` or ``TextSplits``: anything with ``.train``/``.test`` carrying
    ``.classes``). The label spaces must be identical, names and order, or the comparison means nothing."""
    for role, splits in (("source", source), ("target", target)):
        if not (hasattr(splits, "train") and hasattr(splits, "test")):
            raise ValueError(f"{role} must have .train and .test splits (DataSplits or TextSplits).")
    _check_label_spaces(_classes(source.train, "source.train"), _classes(target.train, "target.train"))
    return DomainPair(source.train, source.test, target.train, target.test)


def domain_shift(model: nn.Module, source_test: ImageData, target_test: ImageData) -> dict[str, float]:
    """``model``'s accuracy on the source and on the target test sets, and the drop (source - target)."""
    for name, data in (("source_test", source_test), ("target_test", target_test)):
        if not (hasattr(data, "x") and hasattr(data, "y")):
            raise TypeError(
                f"{name} must be a labelled test set with .x and .y (an ImageData), got {type(data).__name__}."
            )
    if len(source_test.classes) != len(target_test.classes):
        raise ValueError(
            f"source_test has {len(source_test.classes)} classes but target_test {len(target_test.classes)}: a "
            "domain shift compares one label space on two domains (see lk.domain_pair)."
        )
    src = accuracy(predict_logits(model, source_test.x), source_test.y)
    tgt = accuracy(predict_logits(model, target_test.x), target_test.y)
    return {"source": src, "target": tgt, "drop": src - tgt}
