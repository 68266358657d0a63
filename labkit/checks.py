"""Exercise checks: call ``lk.checks.check_<name>(your_fn)`` under an exercise to grade your function.

Each check runs your function on small fixed inputs and compares it with labkit's own implementation. When the
answer is wrong it recognises the classic mistakes by their numbers (the ``T**2`` factor forgotten,
``reduction="mean"`` instead of ``"batchmean"``, probabilities where ``kl_div`` wants log-probabilities,
weights that do not sum to one, ...) and says which one, instead of just "wrong". A passing check prints
``OK  <check>: ...``; a failing one raises ``ExerciseError`` (an ``AssertionError``, so nbgrader's autograder
and pytest both count it as a failed test) whose message is the hint.

The exercises themselves live in the notebooks, between nbgrader's ``### BEGIN SOLUTION`` / ``### END SOLUTION``
markers; ``make student`` blanks the solutions (``tools/course_tools.py``). A new check is one call to
``check_function`` with a reference and a dictionary of recognised mistakes (``tests/test_checks.py`` tests
that every hint fires on the mistake it names).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._checks_transfer import (  # lessons 05, 06 and 09: pseudo-labels, cross-domain, the capstone's report
    check_effect,
    check_hard_label_loss,
    check_mean_std,
    check_pseudo_label,
    check_unseen_share,
)
from ._checks_transformer import check_attention_kl  # lesson 04: MiniLM's attention term with padding
from ._grading import ExerciseError, _call, check_function
from .ensemble import prob_mse_loss
from .losses import (
    attention_map,
    attention_transfer_loss,
    hinton_kd_loss,
    kd_kl_loss,
    labelled_cross_entropy,
    soft_targets,
)
from .metrics import accuracy
from .multiteacher import fuse_teachers, multi_teacher_kd_loss

__all__ = [
    "CHECKS",
    "ExerciseError",
    "check_accuracy",
    "check_accuracy_weights",
    "check_attention_map",
    "check_attention_transfer",
    "check_count_parameters",
    "check_effect",
    "check_function",
    "check_hard_label_loss",
    "check_hinton_loss",
    "check_kd_loss",
    "check_labelled_ce",
    "check_mean_std",
    "check_multi_teacher_kd",
    "check_prob_fusion",
    "check_prob_mse",
    "check_pseudo_label",
    "check_soft_targets",
    "check_unseen_share",
]

T2 = "forgot the T^2 factor: multiply the KL by T**2 so the soft term's gradients do not shrink as 1/T^2"
MEAN = (
    'used reduction="mean", which divides by batch * classes: use reduction="batchmean" (divide by the batch)'
)
PROBS = (
    "passed probabilities (or raw logits) instead of log-probabilities: the first argument of F.kl_div must be "
    "the student's log-probabilities, F.log_softmax(student_logits / T, dim=-1)"
)
DIRECTION = (
    "computed KL(p_s || p_t), the wrong direction: F.kl_div(input, target) is KL(target || input), so the input "
    "is the student's log-probabilities and the target the teacher's probabilities"
)
SUM_TO_ONE = "weights that do not sum to one"


def _inputs(seed: int, *shape: int, scale: float = 2.0) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------- 00 setup and tour
def check_accuracy(fn: Callable[[torch.Tensor, torch.Tensor], float]) -> None:
    """``fn(logits (B, K), labels (B,))`` -> the fraction of rows whose arg-max is the label, a number in [0, 1]."""
    logits, labels = _inputs(0, 40, 5), torch.arange(40) % 5
    cases = [(logits, labels), (logits[:7], labels[:7])]
    check_function(
        "check_accuracy",
        fn,
        accuracy,
        cases,
        {
            "return a fraction in [0, 1], not a count: divide by the number of examples": lambda z, y: (
                accuracy(z, y) * len(y)
            ),
            "return a fraction in [0, 1], not a percentage": lambda z, y: 100 * accuracy(z, y),
        },
    )


def check_count_parameters(fn: Callable[[nn.Module], int]) -> None:
    """``fn(model)`` -> the number of trainable parameters (elements of tensors with ``requires_grad``)."""
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3))
    model[0].requires_grad_(False)  # a frozen layer: its 28 weights do not count
    total = sum(p.numel() for p in model.parameters())
    check_function(
        "check_count_parameters",
        fn,
        lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad),
        [(model,)],
        {
            "counted parameter tensors, not their elements: add up p.numel()": lambda m: len(
                list(m.parameters())
            ),
            "counted frozen parameters too: keep those with p.requires_grad": lambda m: total,
        },
        tol=0,
    )


# ----------------------------------------------------------------------------------------- 01 soft targets
def check_soft_targets(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> None:
    """``fn(logits (B, K), T)`` -> ``softmax(logits / T)`` row by row, shape ``(B, K)``."""
    z = _inputs(1, 6, 5)
    check_function(
        "check_soft_targets",
        fn,
        soft_targets,
        [(z, 4.0), (z, 0.5)],
        {
            "did not divide the logits by the temperature: softmax(z / T)": lambda z, t: z.softmax(-1),
            "multiplied the logits by T; divide them: softmax(z / T)": lambda z, t: (z * t).softmax(-1),
            "returned log-probabilities (log_softmax); soft targets are probabilities": lambda z, t: (
                F.log_softmax(z / t, -1)
            ),
            "took the softmax over the batch (dim=0): each row (dim=-1) must sum to 1": lambda z, t: (
                z / t
            ).softmax(0),
        },
        grad_arg=0,
    )


def check_kd_loss(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> None:
    """``fn(student_logits, teacher_logits, T)`` -> ``T^2 * KL(p_t^T || p_s^T)`` averaged over the batch."""
    s, t = _inputs(2, 8, 5), _inputs(3, 8, 5)
    _kd_mistakes(check_kd_loss.__name__, fn, [(s, t, 4.0), (s, t, 2.0)], kd_kl_loss)


def _kd_mistakes(name: str, fn: Callable, cases: Sequence[tuple], reference: Callable) -> None:
    """The soft-target mistakes, recognised for ``reference(s, t, T, *rest)``, shared by the KD-loss checks."""

    def kl(s, t, temp, log_input=True, log_target=True):
        inp = F.log_softmax(s / temp, -1) if log_input else F.softmax(s / temp, -1)
        return F.kl_div(inp, F.log_softmax(t / temp, -1), reduction="batchmean", log_target=log_target)

    check_function(
        name,
        fn,
        reference,
        cases,
        {
            T2: lambda s, t, temp, *rest: reference(s, t, temp, *rest) / temp**2,
            MEAN: lambda s, t, temp, *rest: reference(s, t, temp, *rest) / s.shape[1],
            f"{T2}; and {MEAN}": lambda s, t, temp, *rest: (
                reference(s, t, temp, *rest) / temp**2 / s.shape[1]
            ),
            PROBS: lambda s, t, temp, *rest: kl(s, t, temp, log_input=False) * temp**2,
            f"{PROBS} (and {T2})": lambda s, t, temp, *rest: kl(s, t, temp, log_input=False),
            "raw logits into F.kl_div: " + PROBS: lambda s, t, temp, *rest: (
                F.kl_div(s / temp, F.softmax(t / temp, -1), reduction="batchmean") * temp**2
            ),
            DIRECTION: lambda s, t, temp, *rest: kl(t, s, temp) * temp**2,
            "gave F.kl_div teacher log-probabilities without log_target=True: pass softmax(teacher_logits / T)": (
                lambda s, t, temp, *rest: kl(s, t, temp, log_target=False) * temp**2
            ),
            'used reduction="sum": divide by the batch size (reduction="batchmean")': lambda s, t, temp, *rest: (
                reference(s, t, temp, *rest) * s.shape[0]
            ),
        },
        scalar=True,
        grad_arg=0,
    )


# -------------------------------------------------------------------------------------- 02 response KD
def check_hinton_loss(fn: Callable[..., torch.Tensor]) -> None:
    """``fn(student_logits, teacher_logits, labels, T, alpha)`` -> ``(1 - alpha) CE + alpha T^2 KL``."""
    s, t, y = _inputs(4, 8, 5), _inputs(5, 8, 5), torch.arange(8) % 5
    cases = [(s, t, y, 4.0, 0.9), (s, t, y, 2.0, 0.3)]

    def mix(s, t, y, temp, w_ce, w_kl, ce_temp=1.0):
        return w_ce * F.cross_entropy(s / ce_temp, y) + w_kl * kd_kl_loss(s, t, temp)

    check_function(
        "check_hinton_loss",
        fn,
        hinton_kd_loss,
        cases,
        {
            "swapped the weights: (1 - alpha) goes with the cross-entropy, alpha with the soft term": (
                lambda s, t, y, temp, a: mix(s, t, y, temp, a, 1 - a)
            ),
            f"{SUM_TO_ONE}: CE + alpha * KD; use (1 - alpha) * CE + alpha * KD": lambda s, t, y, temp, a: mix(
                s, t, y, temp, 1.0, a
            ),
            f"{SUM_TO_ONE}: (1 - alpha) * CE + KD; use (1 - alpha) * CE + alpha * KD": lambda s, t, y, temp, a: (
                mix(s, t, y, temp, 1 - a, 1.0)
            ),
            T2: lambda s, t, y, temp, a: mix(s, t, y, temp, 1 - a, a / temp**2),
            "softened the hard-label term: the cross-entropy with labels uses the plain logits (T = 1)": (
                lambda s, t, y, temp, a: mix(s, t, y, temp, 1 - a, a, ce_temp=temp)
            ),
            MEAN: lambda s, t, y, temp, a: mix(s, t, y, temp, 1 - a, a / s.shape[1]),
        },
        scalar=True,
        grad_arg=0,
    )


def check_labelled_ce(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``fn(logits, labels)`` -> cross-entropy averaged over the rows with a label; ``-1`` marks an unlabelled
    row of a transfer set, and a batch without any label gives 0 (not NaN)."""
    z, y = _inputs(6, 8, 5), torch.tensor([0, -1, 2, -1, 4, 1, -1, 3])
    cases = [(z, y), (z[:4], torch.full((4,), -1))]
    name = "check_labelled_ce"
    try:
        _call(name, fn, cases[0])
    except (IndexError, RuntimeError) as err:  # F.cross_entropy on a -1 target
        raise ExerciseError(
            f"{name}: your function failed on a -1 label ({type(err).__name__}): rows with label -1 are "
            "unlabelled; keep only labels >= 0 (or pass ignore_index=-1)."
        ) from None
    check_function(
        name,
        fn,
        labelled_cross_entropy,
        cases,
        {
            "divided by the whole batch: average over the labelled rows only": lambda z, y: (
                F.cross_entropy(z, y, ignore_index=-1, reduction="sum") / len(y)
            ),
            "a batch with no labels must give 0, got NaN (0 / 0): return a zero loss when no row has a label": (
                lambda z, y: F.cross_entropy(z, y, ignore_index=-1)
            ),
        },
        scalar=True,
    )


# -------------------------------------------------------------------------------------- 03 feature KD
def check_attention_map(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """``fn(features (B, C, H, W))`` -> ``(B, H*W)``: channel mean of the squared activations, flattened and
    L2-normalised per example (Zagoruyko & Komodakis, 2017)."""
    f = _inputs(7, 3, 4, 5, 5)
    mean_sq = lambda f: f.pow(2).mean(1).flatten(1)  # noqa: E731  (B, H*W), not normalised
    check_function(
        "check_attention_map",
        fn,
        attention_map,
        [(f,), (f[:, :2, :3, :4],)],
        {
            "the map is not normalised: divide each row by its L2 norm (F.normalize(q, dim=1))": mean_sq,
            "used |A| (p = 1); the map uses the squared activations |A|^2": lambda f: F.normalize(
                f.abs().mean(1).flatten(1), dim=1
            ),
            "normalised across the batch (dim=0); normalise each example's map (dim=1)": lambda f: (
                F.normalize(mean_sq(f), dim=0)
            ),
            "flatten the spatial dimensions: the map has shape (B, H*W)": lambda f: F.normalize(
                mean_sq(f), dim=1
            ).view(f.shape[0], *f.shape[2:]),
        },
        grad_arg=0,
    )


def check_attention_transfer(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``fn(student_features, teacher_features)`` -> mean over the batch of ``||Q_s - Q_t||_2^2``, with ``Q`` the
    attention maps; channel counts may differ, spatial sizes match."""
    fs, ft = _inputs(8, 4, 3, 5, 5), _inputs(9, 4, 6, 5, 5)
    cases = [(fs, ft), (fs[:2], ft[:2] * 10)]
    name = "check_attention_transfer"
    try:
        _call(name, fn, cases[0])
    except RuntimeError as err:  # raw features with 3 vs 6 channels do not broadcast
        raise ExerciseError(
            f"{name}: your function failed on features with 3 and 6 channels ({type(err).__name__}): compare "
            "attention maps (averaged over channels), not the raw features."
        ) from None
    diff = lambda fs, ft: attention_map(fs) - attention_map(ft)  # noqa: E731  (B, H*W)
    check_function(
        name,
        fn,
        attention_transfer_loss,
        cases,
        {
            "used the L2 distance; attention transfer uses the squared distance ||Q_s - Q_t||^2": lambda fs, ft: (
                diff(fs, ft).norm(dim=1).mean()
            ),
            "summed over the batch: average over the examples": lambda fs, ft: (
                diff(fs, ft).pow(2).sum(1).sum()
            ),
            'used F.mse_loss with reduction="mean", which also averages over positions: sum over H*W': (
                lambda fs, ft: F.mse_loss(attention_map(fs), attention_map(ft))
            ),
        },
        scalar=True,
        grad_arg=0,
    )


# ---------------------------------------------------------------------------------- 07 ensemble distillation
def check_prob_fusion(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """``fn(member_logits (B, M, C))`` -> log of the members' average probabilities, ``(B, C)``."""
    z = _inputs(10, 5, 3, 4)
    check_function(
        "check_prob_fusion",
        fn,
        lambda z: fuse_teachers(z, space="prob"),
        [(z,), (z[:, :2] * 3,)],
        {
            "averaged the logits: average the probabilities softmax(z) over members, then take the log": (
                lambda z: F.log_softmax(z.mean(1), -1)
            ),
            "averaged log-probabilities (a geometric mean): average the probabilities": lambda z: (
                F.log_softmax(z, -1).mean(1)
            ),
            "returned probabilities: return their log (log-probabilities can stand in for logits)": lambda z: (
                z.softmax(-1).mean(1)
            ),
        },
    )


def check_prob_mse(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> None:
    """``fn(student_logits, teacher_logits, T)`` -> squared error of ``softmax(z / T)`` summed over classes and
    averaged over the batch (label distillation)."""
    s, t = _inputs(11, 8, 5), _inputs(12, 8, 5)
    check_function(
        "check_prob_mse",
        fn,
        prob_mse_loss,
        [(s, t, 1.0), (s, t, 3.0)],
        {
            "F.mse_loss averages over the classes too: sum over classes, then average over the batch": (
                lambda s, t, temp: prob_mse_loss(s, t, temp) / s.shape[1]
            ),
            "compared logits: label distillation compares probabilities softmax(z / T)": lambda s, t, temp: (
                (s - t).pow(2).sum(1).mean() / temp**2
            ),
            "added a T^2 factor: that belongs to the KL, not to the squared error": lambda s, t, temp: (
                prob_mse_loss(s, t, temp) * temp**2
            ),
        },
        scalar=True,
        grad_arg=0,
    )


# ------------------------------------------------------------------------------------------- 08 multi-teacher
def check_accuracy_weights(fn: Callable[[Sequence[float]], torch.Tensor]) -> None:
    """``fn(accuracies)`` -> one weight per teacher, proportional to its accuracy and summing to one."""
    cases = [(torch.tensor([0.9, 0.6, 0.3]),), (torch.tensor([0.5, 0.5]),)]
    name = "check_accuracy_weights"
    for (acc,) in cases:
        w = torch.as_tensor(_call(name, fn, (acc.clone(),)), dtype=torch.float32)
        if w.shape == acc.shape and not math.isclose(float(w.sum()), 1.0, abs_tol=1e-4):
            raise ExerciseError(
                f"{name}: {SUM_TO_ONE}: yours sum to {float(w.sum()):.4g}; divide by their sum (w / w.sum())."
            )
    check_function(
        name,
        fn,
        lambda a: a / a.sum(),
        cases,
        {
            "softmax(accuracies) is not proportional to them (and nearly uniform): use acc / acc.sum()": (
                lambda a: a.softmax(0)
            ),
        },
    )


def check_multi_teacher_kd(fn: Callable[..., torch.Tensor]) -> None:
    """``fn(student_logits (B, C), teacher_logits (B, K, C), weights (K,), T)`` ->
    ``T^2 * mean_b sum_k w_k KL(p_k^T || p_s^T)``: a weighted sum of per-teacher KLs."""
    s, stack = _inputs(13, 6, 5), _inputs(14, 6, 3, 5)
    unlabelled = torch.full((6,), -1)

    def reference(s, z, w, temp):  # every row unlabelled and alpha = 1: the pure multi-teacher KD term
        return multi_teacher_kd_loss(s, z, unlabelled, w.expand(len(s), -1), temp, alpha=1.0)

    check_function(
        "check_multi_teacher_kd",
        fn,
        reference,
        [(s, stack, torch.tensor([0.5, 0.3, 0.2]), 4.0), (s, stack, torch.tensor([0.1, 0.1, 0.8]), 2.0)],
        {
            T2: lambda s, z, w, temp: reference(s, z, w, temp) / temp**2,
            "ignored the weights (a plain mean over teachers): weight teacher k's KL by w[k]": (
                lambda s, z, w, temp: reference(s, z, torch.full_like(w, 1 / len(w)), temp)
            ),
            "distilled from the weighted average of the teachers' probabilities: the objective is the weighted "
            "sum of per-teacher KLs": lambda s, z, w, temp: kd_kl_loss(
                s, fuse_teachers(z / temp, w.expand(len(s), -1)) * temp, temp
            ),
        },
        scalar=True,
        grad_arg=0,
    )


# name -> check, for tools and tests that walk every check
CHECKS: dict[str, Callable[[Callable], None]] = {
    fn.__name__: fn
    for fn in (
        check_accuracy,
        check_count_parameters,
        check_soft_targets,
        check_kd_loss,
        check_hinton_loss,
        check_attention_kl,
        check_labelled_ce,
        check_attention_map,
        check_attention_transfer,
        check_prob_fusion,
        check_prob_mse,
        check_accuracy_weights,
        check_multi_teacher_kd,
        check_pseudo_label,
        check_hard_label_loss,
        check_unseen_share,
        check_mean_std,
        check_effect,
    )
}
