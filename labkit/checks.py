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
that every hint fires on the mistake it names), under ``@refuses(...)``: the labkit functions that compute
the exercise's answer, which the learner's function may not call (``labkit._grading``; the tests reject a
check without that list, and check that each check refuses its reference in every form a learner could use).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ._checks_lm import (  # lessons 09-10: language models
    check_expert_mixture,
    check_generalized_jsd,
    check_masked_reverse_kl,
    check_on_policy_step,
)
from ._checks_transfer import (  # lessons 05, 06 and 11: pseudo-labels, cross-domain, the capstone's report
    check_effect,
    check_hard_label_loss,
    check_mean_std,
    check_pseudo_label,
    check_unseen_share,
)
from ._checks_transformer import check_attention_kl  # lesson 04: MiniLM's attention term with padding
from ._grading import DIVERGENCES, ExerciseError, _call, check_function, refuses
from .ensemble import prob_mse_loss
from .losses import (
    _labelled_ce,
    attention_map,
    attention_transfer_loss,
    hinton_kd_loss,
    hinton_kd_terms,
    kd_kl_loss,
    labelled_cross_entropy,
    soft_targets,
)
from .metrics import accuracy, agreement
from .models import count_parameters
from .multiteacher import AccuracyWeights, _fuse_prob, fuse_teachers, multi_teacher_kd_loss
from .reading import check_reading  # lessons 02-11: reading the run's own results

__all__ = [
    "AT_CONVENTIONS",
    "ATConvention",
    "CHECKS",
    "ExerciseError",
    "check_accuracy",
    "check_accuracy_weights",
    "check_attention_map",
    "check_attention_transfer",
    "check_count_parameters",
    "check_effect",
    "check_function",
    "check_generalized_jsd",
    "check_hard_label_loss",
    "check_hinton_loss",
    "check_kd_loss",
    "check_labelled_ce",
    "check_masked_reverse_kl",
    "check_reading",
    "check_mean_std",
    "check_multi_teacher_kd",
    "check_on_policy_step",
    "check_expert_mixture",
    "check_prob_fusion",
    "check_prob_mse",
    "check_pseudo_label",
    "check_soft_targets",
    "check_unseen_share",
    "refuses",
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
    "computed the reverse KL(p_s || p_t), the wrong direction for Hinton's KD, which is the forward KL(p_t || p_s) "
    "(the reverse KL is mode-seeking, a different objective that generative distillation such as MiniLLM chooses "
    "on purpose): F.kl_div(input, target) is KL(target || input), so the input is the student's log-probabilities "
    "and the target the teacher's probabilities"
)
SUM_TO_ONE = "weights that do not sum to one"


def _inputs(seed: int, *shape: int, scale: float = 2.0) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------- 00 setup and tour
@refuses(accuracy, agreement)
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


@refuses(count_parameters)
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
@refuses(soft_targets)
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


@refuses(kd_kl_loss, *DIVERGENCES)
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
@refuses(hinton_kd_loss, hinton_kd_terms, multi_teacher_kd_loss, *DIVERGENCES)
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


# _labelled_ce: labkit's labelled CE inside hinton_kd_loss, label_distillation_loss, multi_teacher_kd_loss, ...
@refuses(labelled_cross_entropy, _labelled_ce)
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
@refuses(attention_map)
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


class ATConvention(NamedTuple):
    """A published form of the attention-transfer loss: labkit's value times ``factor(H*W)``, a factor fixed by
    the map size alone, which the weight beta absorbs."""

    factor: Callable[[int], float]
    label: str  # short name, for hints
    form: str  # what the learner's function computes
    weight: str  # how beta on that scale maps onto a weight of lk.attention_transfer_loss


AT_CONVENTIONS: tuple[ATConvention, ...] = (
    ATConvention(
        lambda hw: 0.5,
        "the paper's 1/2",
        "labkit's value / 2: eq. (2) of Zagoruyko & Komodakis (2017), beta/2 * ||Q_s - Q_t||_2^2, squared as the "
        "authors implement it, averaged over the batch, with the 1/2 of beta/2 inside your function",
        "a weight beta on your loss is beta / 2 on lk.attention_transfer_loss",
    ),
    ATConvention(
        lambda hw: 1.0 / hw,
        "the authors' mean over H*W",
        "labkit's value / (H*W): the authors' code, at_loss(x, y) = (at(x) - at(y)).pow(2).mean() "
        "(github.com/szagoruyko/attention-transfer), which averages over the H*W positions where labkit sums "
        "(F.mse_loss of the two maps is the same)",
        "their beta = 1000 multiplies this mean, so it is weight 1000 / (H*W) on lk.attention_transfer_loss "
        "(40 for 5x5 maps, 1000 / 1024 ~ 0.98 for 32x32). Summed over layers of different sizes, the mean "
        "weights layer j by 1 / (H_j W_j) relative to labkit's sum: one weight per layer reproduces it",
    ),
    ATConvention(
        lambda hw: 0.5 / hw,
        "the paper's 1/2 with the mean over H*W",
        "labkit's value / (2*H*W): eq. (2)'s beta/2 with the mean over the batch and the H*W positions, as the "
        "paper's text sets beta (10^3 divided by the number of elements of the map and the batch size)",
        "beta = 1000 on this scale is weight 500 / (H*W) on lk.attention_transfer_loss (the authors' code has no "
        "1/2: weight 1000 / (H*W)), one weight per layer when the layers' sizes differ",
    ),
)


def _scalar_outputs(name: str, fn: Callable, cases: Sequence[tuple]) -> list[float] | None:
    """``float(fn(*case))`` for every case, or ``None`` when one is not a one-number tensor (the full check then
    explains what is wrong)."""
    values = []
    for case in cases:
        out = _call(name, fn, case)
        if not torch.is_tensor(out) or out.dim() != 0 or not out.dtype.is_floating_point:
            return None
        values.append(float(out.detach()))
    return values


@refuses(attention_transfer_loss, attention_map)
def check_attention_transfer(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    r"""``fn(student_features (B, C_s, H, W), teacher_features (B, C_t, H, W))`` -> a scalar: labkit's
    ``attention_transfer_loss``, :math:`\frac{1}{B} \sum_b \| Q_s(b) - Q_t(b) \|_2^2` with ``Q`` the
    attention maps (``attention_map``: channel mean of the squared activations, L2-normalised per example), of
    Zagoruyko & Komodakis (2017), "Paying More Attention to Attention". Channel counts may differ.

    The published forms differ from this by a factor that depends on the map size only, and pass with a note on
    how their ``beta`` maps onto labkit's weight (``AT_CONVENTIONS``): eq. (2)'s ``1/2`` (factor 1/2), the
    authors' code ``(at(x) - at(y)).pow(2).mean()`` (factor ``1 / (H*W)``) and both (``1 / (2*H*W)``). Each
    factor must hold exactly on all four cases: two different random inputs of one shape, a smaller batch with
    the teacher's features scaled by 10, and another map size (4x3 against 5x5), so a mean over positions is
    told apart from an accidental constant. Any other constant factor (a weight such as beta = 1000 inside
    the function) fails: the caller applies the weight. Over layers of different sizes the mean convention
    weights layer ``j`` by ``1 / (H_j W_j)`` relative to labkit's sum, which per-layer weights reproduce.
    """
    fs, ft = _inputs(8, 4, 3, 5, 5), _inputs(9, 4, 6, 5, 5)
    cases = [
        (fs, ft),
        (_inputs(15, 4, 3, 5, 5), _inputs(16, 4, 6, 5, 5)),  # other random features of the same shape
        (fs[:2], ft[:2] * 10),  # another batch size; a scaled teacher has the same maps
        (_inputs(17, 3, 3, 4, 3), _inputs(18, 3, 6, 4, 3)),  # another map size: H*W = 12, not 25
    ]
    name = "check_attention_transfer"
    try:
        _call(name, fn, cases[0])
    except RuntimeError as err:  # raw features with 3 vs 6 channels do not broadcast
        raise ExerciseError(
            f"{name}: your function failed on features with 3 and 6 channels ({type(err).__name__}): compare "
            "attention maps (averaged over channels), not the raw features."
        ) from None
    hw = [case[0].shape[2] * case[0].shape[3] for case in cases]
    outs = _scalar_outputs(name, fn, cases)
    refs = [float(attention_transfer_loss(*case)) for case in cases]
    if outs is not None:
        for factor, _, form, weight in AT_CONVENTIONS:
            if all(math.isclose(o, factor(n) * r, rel_tol=1e-5) for o, r, n in zip(outs, refs, hw)):
                check_function(
                    name,
                    fn,
                    lambda fs, ft, factor=factor: (
                        factor(fs.shape[2] * fs.shape[3]) * attention_transfer_loss(fs, ft)
                    ),
                    cases,
                    scalar=True,
                    grad_arg=0,
                    tol=1e-7,
                )
                print(f"    note: yours is {form}. The weight absorbs this factor: {weight}.")
                return
        for per_position in (False, True):  # out = k * labkit (or k * labkit / (H*W)) on every case
            ks = [o / r * (n if per_position else 1) for o, r, n in zip(outs, refs, hw)]
            if not math.isclose(ks[0], 1.0, rel_tol=1e-3) and all(
                math.isclose(k, ks[0], rel_tol=1e-4) for k in ks
            ):
                scale = f"{ks[0]:.4g} x labkit's value" + (" / (H*W)" if per_position else "")
                raise ExerciseError(
                    f"{name}: your loss is {scale} on every case: a constant weight inside the function (such as "
                    "beta = 1000)? Return the loss alone, in labkit's convention (or the paper's 1/2, or the "
                    "authors' mean over H*W); the caller multiplies it by beta."
                )

    diff = lambda fs, ft: attention_map(fs) - attention_map(ft)  # noqa: E731  (B, H*W)
    unnormalised = lambda f: f.pow(2).mean(1).flatten(1)  # noqa: E731  (B, H*W), no L2 normalisation
    mistakes = {
        "used the L2 distance ||Q_s - Q_t||_2: use the squared distance ||Q_s - Q_t||^2. Eq. (2) of the paper "
        "writes the p-norm (p = 2), but the authors' code squares it, (at(x) - at(y)).pow(2).mean(); the plain "
        "norm is no rescaling of the square (its gradient keeps unit length as the maps converge)": (
            lambda fs, ft: diff(fs, ft).norm(dim=1).mean()
        ),
        "summed over the batch: average over the examples (the paper divides beta by the batch size)": (
            lambda fs, ft: diff(fs, ft).pow(2).sum(1).sum()
        ),
        "the maps are not normalised: divide each example's map by its L2 norm (F.normalize(q, dim=1)), which makes "
        "layers with different scales comparable": lambda fs, ft: (
            (unnormalised(fs) - unnormalised(ft)).pow(2).sum(1).mean()
        ),
        "used |A| (p = 1) for the maps; attention transfer uses the squared activations |A|^2": lambda fs, ft: (
            (
                F.normalize(fs.abs().mean(1).flatten(1), dim=1)
                - F.normalize(ft.abs().mean(1).flatten(1), dim=1)
            )
            .pow(2)
            .sum(1)
            .mean()
        ),
        "normalised the maps across the batch (dim=0); normalise each example's map (dim=1)": lambda fs, ft: (
            (F.normalize(unnormalised(fs), dim=0) - F.normalize(unnormalised(ft), dim=0)).pow(2).sum(1).mean()
        ),
    }
    # the same mistakes written in one of the published conventions
    scaled = {
        f"{hint} (in the convention of {label})": (
            lambda fs, ft, m=mistake, factor=factor: factor(fs.shape[2] * fs.shape[3]) * m(fs, ft)
        )
        for factor, label, _, _ in AT_CONVENTIONS
        for hint, mistake in mistakes.items()
    }
    check_function(name, fn, attention_transfer_loss, cases, {**mistakes, **scaled}, scalar=True, grad_arg=0)


# ---------------------------------------------------------------------------------- 07 ensemble distillation
@refuses(fuse_teachers, _fuse_prob)
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


@refuses(prob_mse_loss)
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
@refuses(AccuracyWeights)
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


@refuses(multi_teacher_kd_loss, *DIVERGENCES)
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
        check_masked_reverse_kl,
        check_generalized_jsd,
        check_on_policy_step,
        check_expert_mixture,
    )
}
