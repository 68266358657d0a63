"""Exercise checks for lessons 05 (pseudo-labels), 06 (cross-domain) and 10 (the capstone's report), re-exported
by ``labkit.checks``; same machinery and conventions as the checks there (``check_function`` with hints)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ._grading import check_function, refuses
from .losses import _labelled_ce, labelled_cross_entropy
from .metrics import mean_std, summarize
from .transfer import pseudo_labels
from .verdicts import effect_of

__all__ = [
    "check_effect",
    "check_hard_label_loss",
    "check_mean_std",
    "check_pseudo_label",
    "check_unseen_share",
]


def _logits(seed: int, n: int = 12, k: int = 4) -> torch.Tensor:
    return 2.0 * torch.randn(n, k, generator=torch.Generator().manual_seed(seed))


def _pseudo_label(z: torch.Tensor, threshold: float) -> torch.Tensor:
    conf, labels = z.softmax(-1).max(-1)
    return torch.where(conf >= threshold, labels, torch.full_like(labels, -1))


@refuses(pseudo_labels, _pseudo_label)
def check_pseudo_label(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> None:
    """``fn(teacher_logits (N, K), threshold)`` -> ``(N,)`` int labels: the teacher's arg-max where its softmax
    confidence is at least ``threshold``, ``-1`` (unlabelled) elsewhere."""
    z = _logits(50)
    check_function(
        "check_pseudo_label",
        fn,
        _pseudo_label,
        [(z, 0.0), (z, 0.7), (z * 0.3, 0.5)],
        {
            "compared the threshold with the raw logits: compare it with the softmax probability "
            "(z.softmax(-1).max(-1))": lambda z, t: torch.where(z.max(-1).values >= t, z.argmax(-1), -1),
            "took the softmax over the batch (dim=0): each row's probabilities (dim=-1) must sum to 1": lambda z, t: (
                torch.where(z.softmax(0).max(-1).values >= t, z.argmax(-1), -1)
            ),
            "marked confident rows -1 and kept the unsure ones: keep rows whose confidence is >= threshold": (
                lambda z, t: torch.where(z.softmax(-1).max(-1).values < t, z.argmax(-1), -1)
            ),
        },
        tol=0,
    )


# the teacher's hard labels, and labkit's cross-entropy on them (_labelled_ce: inside hinton_kd_loss, ...)
@refuses(pseudo_labels, labelled_cross_entropy, _labelled_ce)
def check_hard_label_loss(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``fn(student_logits, teacher_logits)`` -> cross-entropy of the student against the teacher's arg-max
    labels (hard-label distillation), averaged over the batch."""
    s, t = _logits(51), _logits(52)

    def reference(s, t):
        return F.cross_entropy(s, t.argmax(-1))

    check_function(
        "check_hard_label_loss",
        fn,
        reference,
        [(s, t), (s[:5], t[:5])],
        {
            "used the teacher's probabilities as targets (that is soft-target training): hard-label distillation "
            "takes the teacher's arg-max class, t.argmax(-1)": lambda s, t: F.cross_entropy(s, t.softmax(-1)),
            "negated the cross-entropy: a loss to minimise is +CE": lambda s, t: -reference(s, t),
            "passed probabilities to F.cross_entropy, which applies log_softmax itself: give it raw student "
            "logits": lambda s, t: F.cross_entropy(s.softmax(-1), t.argmax(-1)),
        },
        scalar=True,
        grad_arg=0,
    )


def _unseen(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    seen = (source > 0).any(0)
    present = target > 0
    return (present & ~seen).sum() / present.sum()


@refuses(_unseen)  # labkit has no public version: its own reference
def check_unseen_share(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``fn(source_x (N, D), target_x (M, D))`` (bag-of-words counts or TF-IDF) -> the share of the target's
    non-zero entries (word occurrences) whose feature never occurs in the source, a number in [0, 1]."""
    g = torch.Generator().manual_seed(53)
    source = (torch.rand(20, 30, generator=g) < 0.1).float() * torch.rand(20, 30, generator=g)
    target = (torch.rand(15, 30, generator=g) < 0.3).float()
    check_function(
        "check_unseen_share",
        fn,
        _unseen,
        [(source, target)],
        {
            "counted features (columns), not occurrences: divide the target's non-zero entries in unseen "
            "columns by all its non-zero entries": lambda s, t: (
                ((t > 0).any(0) & ~(s > 0).any(0)).sum() / (t > 0).any(0).sum()
            ),
            "swapped the roles: the question is which target words the source never shows": lambda s, t: (
                _unseen(t, s)
            ),
            "returned the share of words the source does show (1 minus the answer)": lambda s, t: (
                1 - _unseen(s, t)
            ),
        },
    )


@refuses(mean_std, summarize)
def check_mean_std(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """``fn(values (n,))`` -> ``tensor([mean, std])`` over repeated runs, with the *sample* standard deviation
    (``n - 1`` in the denominator), the one every table of this course reports."""
    v = torch.tensor([0.81, 0.84, 0.79, 0.86])
    check_function(
        "check_mean_std",
        fn,
        lambda x: torch.stack([x.mean(), x.std(unbiased=True)]),
        [(v,), (v[:2],)],
        {
            "used the population std (divide by n): over a few seeds use the sample std, x.std() with n - 1": (
                lambda x: torch.stack([x.mean(), x.std(unbiased=False)])
            ),
            "returned the variance, not the standard deviation": lambda x: torch.stack([x.mean(), x.var()]),
        },
    )


@refuses(effect_of)
def check_effect(fn: Callable[[float, float, str], int]) -> None:
    """``fn(low, high, better)`` -> ``1`` (a gain), ``-1`` (a loss) or ``0`` (no measurable effect), from the 95 %
    interval ``[low, high]`` of a paired difference and the metric's direction (``"higher"`` or ``"lower"`` is
    better): an effect only when the whole interval lies on one side of 0 (``lk.verdicts.effect_of``)."""

    def reference(low, high, better):
        return {"gain": 1, "loss": -1, "none": 0}[effect_of(low, high, better)]

    check_function(
        "check_effect",
        fn,
        reference,
        [
            (-0.5, 1.0, "higher"),
            (0.4, 2.0, "higher"),
            (-3.0, -1.0, "higher"),
            (-3.0, -1.0, "lower"),
            (0.2, 0.9, "lower"),
            (-1.0, 0.0, "higher"),
        ],
        {
            "ignored the direction: for a lower-is-better metric (ECE, NLL) an interval below 0 is a gain": (
                lambda lo, hi, b: 1 if lo > 0 else (-1 if hi < 0 else 0)
            ),
            "counted an interval that touches 0 as an effect: it must exclude 0": (
                lambda lo, hi, b: (1 if lo >= 0 else (-1 if hi <= 0 else 0)) * (1 if b == "higher" else -1)
            ),
            "read the midpoint, not the interval: an interval that contains 0 is no measurable effect": (
                lambda lo, hi, b: (1 if (lo + hi) > 0 else -1) * (1 if b == "higher" else -1)
            ),
        },
        tol=0,
    )
