"""Distillation objectives, one small function or module each, chosen through ``OBJECTIVES``.

Every objective takes student outputs first and teacher outputs second. The pitfalls they avoid are the
ones published tutorials keep shipping (see ``labkit.pitfalls`` for the buggy versions, reproduced on
purpose):

* ``nn.KLDivLoss`` / ``F.kl_div`` expects **log-probabilities** for its input and probabilities for its
  target. Feeding raw logits gives a number, but not a KL divergence.
* ``reduction="batchmean"`` is the mathematical KL averaged over examples; ``"mean"`` divides by
  ``batch * num_classes`` as well, silently shrinking the loss by the number of classes.
* Softening both distributions by ``T`` scales the gradient of the KL term by ``1 / T**2``; multiplying by
  ``T**2`` keeps the soft and hard terms on the same scale when ``T`` changes (Hinton et al., 2015, Sec. 2).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import (
    _is_number,
    all_finite,
    check_alpha,
    check_choice,
    check_finite,
    check_has_data,
    check_logit_values,
    check_logits,
    check_logits_pair,
    check_positive_int,
    check_targets,
    check_temperature,
    values_checked_upstream,
)

__all__ = [
    "MAX_TEMPERATURE",
    "OBJECTIVES",
    "HintLoss",
    "attention_map",
    "attention_rows_kl",
    "attention_transfer_loss",
    "dml_loss",
    "get_objective",
    "hinton_kd_loss",
    "kd_kl_loss",
    "label_distillation_loss",
    "labelled_cross_entropy",
    "prob_mse_loss",
    "soft_targets",
]


MAX_TEMPERATURE = 100.0
"""The largest temperature the KL losses accept. ``T^2 * KL`` at large ``T`` is the difference of nearly equal
log-probabilities: in float32 its rounding error grows like ``4e-7 * T^2`` (0.004 at T = 100, 40 at T = 10^4), so
beyond this the "loss" is noise and can come out negative. Published KD uses T = 1-20."""


def soft_targets(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Softened class probabilities ``softmax(z / T)``.

    Shapes: logits ``(B, K)`` -> probabilities ``(B, K)``, each row sums to 1. ``T > 1`` spreads mass onto
    the non-argmax classes ("dark knowledge"); ``T -> 0`` approaches one-hot; ``T = 1`` is the softmax. A
    ``-inf`` logit (a class that is masked or unknown) gets probability 0; NaN, ``+inf`` and a row that is
    ``-inf`` everywhere are errors (their softmax would be NaN).
    """
    check_logits(logits)
    t = check_temperature(temperature)
    z = logits.float() / t  # (B, K)
    if not all_finite(z):
        check_logit_values(logits, "logits")
        _check_overflow(logits, z, "logits", t)
    return F.softmax(z, dim=-1)


def _check_overflow(raw: torch.Tensor, scaled: torch.Tensor, name: str, t: float) -> None:
    """``raw / T`` must not overflow float32 to +-inf (a -inf that was -inf before is fine): softmax of inf is NaN,
    and an overflowed teacher logit would pass for an unknown class."""
    over = torch.isinf(scaled) & torch.isfinite(raw.detach().float())
    if bool(over.any()):
        raise ValueError(
            f"{name} / temperature overflows float32: logits up to {float(raw.detach().float().abs().max()):.3g} "
            f"divided by T={t:g} exceed 3.4e38. Logits this large come from a diverged model; check its training "
            "(learning rate, NaN/inf inputs) before distilling."
        )


def labelled_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy ``+CE`` on raw logits over the labelled rows (target ``-1`` = unlabelled, skipped).
    A batch without labels gives 0 that keeps the autograd graph. Shapes: ``(B, K)``, ``(B,)`` -> scalar.

    ``targets`` are integer class indices in ``0..K-1`` or ``-1`` (any integer dtype; converted to int64). An
    empty batch, NaN or ``+inf`` logits, and a ``-inf`` logit at a row's own label (an infinite loss) are errors.
    """
    check_logits(logits, "logits", allow_empty=False)
    finite = all_finite(logits)
    if not finite:
        check_logit_values(logits, "logits")
    return _labelled_ce(logits, check_targets(targets, logits.shape[0], logits.shape[1]), finite)


def _labelled_ce(logits: torch.Tensor, targets: torch.Tensor, finite: bool) -> torch.Tensor:
    # logits and int64 targets already checked; ``finite=False``: some logit is -inf, never at a row's label
    labelled = targets >= 0  # (B,)
    if values_checked_upstream():  # inside fit: no host sync (boolean indexing would need the count)
        per_row = F.cross_entropy(logits.float(), targets.clamp_min(0), reduction="none")  # (B,)
        return (per_row * labelled).sum() / labelled.sum().clamp_min(1)  # 0 (graph kept) without labels
    if not bool(labelled.any()):
        return logits.float().sum() * 0.0  # keeps the graph; no labels in this batch
    if not finite:
        at_label = logits[labelled].gather(1, targets[labelled].unsqueeze(1)).squeeze(1)  # (B_l,)
        if bool(torch.isneginf(at_label).any()):
            row = int(labelled.nonzero().squeeze(1)[torch.isneginf(at_label)][0])
            raise ValueError(
                f"logits: row {row} is -inf at its own label {int(targets[row])}, so its cross-entropy is "
                "infinite; a masked (-inf) class cannot be a target."
            )
    return F.cross_entropy(logits[labelled].float(), targets[labelled])


def _check_kd_values(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Values of a student/teacher pair that are not all finite; returns the teacher's support ``(B, K)`` (False
    where its logit is -inf: a class the teacher does not know, probability 0)."""
    check_logit_values(teacher_logits, "teacher_logits")
    check_logit_values(student_logits, "student_logits")
    support = ~torch.isneginf(teacher_logits.detach())  # (B, K)
    impossible = torch.isneginf(student_logits.detach()) & support
    if bool(impossible.any()):
        b, k = (int(i) for i in impossible.nonzero()[0])
        raise ValueError(
            f"student_logits is -inf at row {b}, class {k}, where the teacher gives that class probability > 0: "
            "KL(p_t || p_s) would be +inf. The student may be -inf only where the teacher is -inf too."
        )
    return support


def _kl_rows(log_p_s: torch.Tensor, log_p_t: torch.Tensor, support: torch.Tensor | None) -> torch.Tensor:
    """``KL(p_t || p_s)`` per row, ``(..., K)`` -> ``(...)``, from log-probabilities. Classes outside ``support``
    (teacher probability 0) contribute 0 (``0 log 0 = 0``). Mathematically KL >= 0; a row that rounds below 0
    reads 0, with the gradient left untouched (straight through), so the value is never negative."""
    if support is None:
        terms = F.kl_div(log_p_s, log_p_t, reduction="none", log_target=True)  # p_t (log p_t - log p_s)
    else:
        terms = F.kl_div(log_p_s, log_p_t.masked_fill(~support, 0.0), reduction="none", log_target=True)
        terms = terms.masked_fill(~support, 0.0)
    kl = terms.sum(dim=-1)
    return kl + (kl.clamp_min(0.0) - kl).detach()


def kd_kl_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0
) -> torch.Tensor:
    r"""Soft-target loss of Hinton et al. (2015), "Distilling the Knowledge in a Neural Network".

    .. math::  L_{KD} = T^2 \cdot \frac{1}{B} \sum_b KL\big(p_t^T(b) \,\|\, p_s^T(b)\big),
               \quad p^T = \mathrm{softmax}(z / T)

    Shapes: ``student_logits`` and ``teacher_logits`` ``(B, K)`` -> scalar, ``B >= 1``. The teacher side is
    detached (no gradient flows into the teacher). Computed in float32 from log-probabilities on both sides
    (``log_target=True``), which stays finite for extreme logits in fp16/bf16 inputs.

    Pitfalls avoided: log-probabilities (not logits) for the student, ``batchmean`` (not ``mean``), and the
    ``T**2`` factor that keeps gradient magnitudes independent of ``T``.

    Edge cases: a ``-inf`` teacher logit (labkit's "class unknown") has probability 0 and contributes 0; the
    student may be ``-inf`` only where the teacher is. NaN / ``+inf`` logits, an empty batch and
    ``temperature > MAX_TEMPERATURE`` (where float32 cannot resolve the KL) are errors. The value is never
    negative (rows that round below 0 read 0).
    """
    check_logits_pair(student_logits, teacher_logits, allow_empty=False)
    t = check_temperature(temperature, maximum=MAX_TEMPERATURE)
    z_s, z_t = student_logits.float() / t, teacher_logits.detach().float() / t  # (B, K) each
    support = None  # every class known: the plain formula
    if values_checked_upstream():  # inside fit: mask -inf teacher classes without looking for them (no sync)
        support = ~torch.isneginf(z_t)  # all True: the same numbers as the plain formula
    elif not all_finite(z_s, z_t):  # one host sync on the common path
        support = _check_kd_values(student_logits, teacher_logits)  # (B, K): the teacher's classes
        _check_overflow(student_logits, z_s, "student_logits", t)
        _check_overflow(teacher_logits, z_t, "teacher_logits", t)
    log_p_s = F.log_softmax(z_s, dim=-1)  # (B, K)
    log_p_t = F.log_softmax(z_t, dim=-1)  # (B, K)
    kl = _kl_rows(log_p_s, log_p_t, support)  # (B,)
    return kl.mean() * (t * t)


def attention_rows_kl(
    student_attn: torch.Tensor, teacher_attn: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """MiniLM's attention term (Wang et al., 2020): ``KL(A_t || A_s)`` per attention row, averaged over the rows of
    real (non-padding) query tokens and heads.

    Shapes: attention probabilities ``(B, H, L, L)`` (query, key), as ``output_attentions=True`` returns them,
    and ``attention_mask`` ``(B, L)`` (1 = token, 0 = padding) -> scalar. A padded query's row is whatever the
    model computed for a position that carries nothing, so it is left out; padded keys have probability ~0 in
    every real row. The log of a distribution is a valid logit vector, so this is ``kd_kl_loss`` at ``T = 1`` on
    the log-rows.
    """
    for name, a in (("student_attn", student_attn), ("teacher_attn", teacher_attn)):
        if not isinstance(a, torch.Tensor):
            raise TypeError(
                f"{name} must be a torch.Tensor (batch, heads, queries, keys), got {type(a).__name__}."
            )
        if not a.is_floating_point():
            raise ValueError(f"{name} must hold attention probabilities (floats), got dtype {a.dtype}.")
    if not isinstance(attention_mask, torch.Tensor):
        raise TypeError(
            f"attention_mask must be a torch.Tensor (batch, tokens), got {type(attention_mask).__name__}."
        )
    if student_attn.dim() != 4 or student_attn.shape != teacher_attn.shape:
        raise ValueError(
            "attention maps must both have shape (batch, heads, queries, keys), got "
            f"{tuple(student_attn.shape)} and {tuple(teacher_attn.shape)}."
        )
    b, _, q, _ = student_attn.shape
    if tuple(attention_mask.shape) != (b, q):
        raise ValueError(
            f"attention_mask must have shape (batch, tokens) = {(b, q)}, got {tuple(attention_mask.shape)}."
        )
    if attention_mask.dtype != torch.bool and not bool(((attention_mask == 0) | (attention_mask == 1)).all()):
        raise ValueError(
            f"attention_mask must hold 1 (token) and 0 (padding) only, got values in "
            f"[{float(attention_mask.min()):g}, {float(attention_mask.max()):g}]."
        )
    real = attention_mask.bool()  # (B, L)
    if not bool(real.any()):
        raise ValueError("attention_mask marks no real token: nothing to distil.")
    for name, a in (("student_attn", student_attn), ("teacher_attn", teacher_attn)):
        check_finite(a, name)
        if bool((a < 0).any()) or bool((a > 1 + 1e-3).any()):
            raise ValueError(
                f"{name} must hold attention probabilities in [0, 1] (rows of a softmax, output_attentions=True), "
                f"got values in [{float(a.min()):.4g}, {float(a.max()):.4g}]: pass the probabilities, not the scores."
            )
    rows_s, rows_t = (a.transpose(1, 2)[real].flatten(0, 1) for a in (student_attn, teacher_attn))  # (N*H, L)
    return kd_kl_loss(rows_s.clamp_min(1e-12).log(), rows_t.clamp_min(1e-12).log(), 1.0)


def hinton_kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 4.0,
    alpha: float = 0.9,
) -> torch.Tensor:
    r"""Hinton's combined objective: hard-label cross-entropy plus the soft-target KL.

    .. math::  L = (1 - \alpha)\, CE(y, \mathrm{softmax}(z_s)) + \alpha\, T^2\, KL(p_t^T \| p_s^T)

    Shapes: logits ``(B, K)``, ``targets`` ``(B,)`` int64 class indices. Examples with target ``-1`` are
    unlabelled (a transfer set): they contribute to the KL term only, and the CE term averages over the
    labelled examples (0 when a batch has none). ``alpha`` must be in [0, 1]: ``alpha=0`` is plain
    training from labels, ``alpha=1`` pure distillation.

    Pitfall avoided: the CE term is ``+CE`` computed with ``F.cross_entropy`` on raw logits (a negated CE
    or CE on probabilities are common bugs; see ``labkit.pitfalls``).
    """
    parts = hinton_kd_terms(student_logits, teacher_logits, targets, temperature, alpha)
    return parts["ce"] + parts["kd"]


def hinton_kd_terms(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 4.0,
    alpha: float = 0.9,
) -> dict[str, torch.Tensor]:
    """``hinton_kd_loss``'s two weighted parts, ``{"ce": (1 - alpha) CE, "kd": alpha T^2 KL}`` (their sum is the
    loss); the distillers log them separately."""
    check_logits_pair(student_logits, teacher_logits, allow_empty=False)
    a = check_alpha(alpha)
    targets = check_targets(targets, student_logits.shape[0], student_logits.shape[1])
    kd = kd_kl_loss(student_logits, teacher_logits, temperature)  # checks values and temperature first
    ce = _labelled_ce(student_logits, targets, all_finite(student_logits))
    return {"ce": (1.0 - a) * ce, "kd": a * kd}


class HintLoss(nn.Module):
    r"""FitNets hint loss (Romero et al., 2015, "FitNets: Hints for Thin Deep Nets").

    A learned regressor maps the student's guided layer onto the teacher's hint layer, and the loss is the
    mean squared error between them:

    .. math::  L_{hint} = \frac{1}{B\,C\,H\,W} \sum \big(r(f_s) - f_t\big)^2

    ``r`` is a 1x1 convolution (or a linear layer for vector features) from ``student_channels`` to
    ``teacher_channels``; its parameters must be optimised together with the student (``fit`` does this).
    Shapes: ``student_feat`` ``(B, C_s, H, W)`` or ``(B, C_s)``, ``teacher_feat`` ``(B, C_t, H, W)`` or
    ``(B, C_t)``; spatial sizes must match (choose layers at the same resolution).
    """

    def __init__(self, student_channels: int, teacher_channels: int, spatial: bool = True) -> None:
        super().__init__()
        check_positive_int(student_channels, "student_channels")
        check_positive_int(teacher_channels, "teacher_channels")
        if not isinstance(spatial, bool):
            raise ValueError(
                f"spatial must be True (feature maps) or False (feature vectors), got {spatial!r}."
            )
        self.student_channels, self.teacher_channels = student_channels, teacher_channels
        self.spatial = spatial
        if spatial:
            self.regressor: nn.Module = nn.Conv2d(
                student_channels, teacher_channels, kernel_size=1, bias=False
            )
        else:
            self.regressor = nn.Linear(student_channels, teacher_channels, bias=False)

    def forward(self, student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
        want = "(B, C, H, W)" if self.spatial else "(B, C)"
        for name, f in (("student_feat", student_feat), ("teacher_feat", teacher_feat)):
            if not isinstance(f, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor {want}, got {type(f).__name__}.")
            if f.dim() != (4 if self.spatial else 2):
                raise ValueError(
                    f"{name} must have shape {want} for a HintLoss built with spatial={self.spatial}, got "
                    f"{tuple(f.shape)}."
                )
            if f.shape[0] == 0:
                raise ValueError(
                    f"{name} is an empty batch {tuple(f.shape)}: the mean of no examples is undefined."
                )
            check_has_data(f, name)
            if not f.is_floating_point():
                raise ValueError(
                    f"{name} must be a floating-point feature map (activations), got dtype {f.dtype}."
                )
            check_finite(f, name)
        s, t = student_feat.shape, teacher_feat.shape
        if len(s) != len(t) or s[0] != t[0] or s[2:] != t[2:]:
            raise ValueError(
                f"hint layers do not line up: student feature {tuple(s)} vs teacher feature {tuple(t)}. "
                "Batch and spatial sizes must match (pick a student layer at the teacher layer's resolution); "
                "only the channel count may differ, and the regressor maps it."
            )
        if s[1] != self.student_channels or t[1] != self.teacher_channels:
            raise ValueError(
                f"HintLoss was built for {self.student_channels} student -> {self.teacher_channels} teacher "
                f"channels, got {s[1]} -> {t[1]}."
            )
        return F.mse_loss(self.regressor(student_feat.float()), teacher_feat.detach().float())


def attention_map(feat: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    r"""Spatial attention map of Zagoruyko & Komodakis (2017), "Paying More Attention to Attention".

    .. math::  Q = \mathrm{vec}\Big(\sum_c |A_c|^p\Big) / \big\| \mathrm{vec}(\sum_c |A_c|^p) \big\|_2

    Shapes: ``feat`` ``(B, C, H, W)`` -> ``(B, H*W)``, each row L2-normalised, so maps of layers with
    different channel counts are comparable.
    """
    if not isinstance(feat, torch.Tensor) or feat.dim() != 4:
        shape = tuple(feat.shape) if isinstance(feat, torch.Tensor) else type(feat).__name__
        raise ValueError(f"attention_map needs a feature map of shape (B, C, H, W), got {shape}.")
    check_has_data(feat, "feat")
    if not feat.is_floating_point():
        raise ValueError(
            f"feat must be a floating-point feature map (a layer's activations), got dtype {feat.dtype}."
        )
    if 0 in feat.shape[1:]:
        raise ValueError(
            f"feat has no channels or no positions (shape {tuple(feat.shape)}): an attention map needs C, H, W >= 1."
        )
    _check_p(p)
    am = feat.float().abs().pow(p).mean(dim=1).flatten(1)  # (B, H*W)
    if not all_finite(am):  # one host sync: NaN/inf features, or |A|^p overflowing float32
        check_finite(feat, "feat")
        raise ValueError(
            f"feat: |A|^p overflows float32 (features up to {float(feat.detach().float().abs().max()):.3g}, p={p:g}); "
            "features this large come from a diverged model."
        )
    return F.normalize(am, dim=1)


def _check_p(p: float) -> float:
    if not _is_number(p) or not math.isfinite(p) or p <= 0:
        raise ValueError(
            f"p must be a finite number > 0 (the paper uses p = 2: |A|^p summed over channels), got {p!r}."
        )
    return float(p)


def attention_transfer_loss(
    student_feats: Sequence[torch.Tensor] | torch.Tensor,
    teacher_feats: Sequence[torch.Tensor] | torch.Tensor,
    p: float = 2.0,
) -> torch.Tensor:
    r"""Attention transfer loss, summed over paired layers.

    .. math::  L_{AT} = \sum_j \frac{1}{B} \sum_b \big\| Q_s^j(b) - Q_t^j(b) \big\|_2^2

    Channel counts may differ (the map averages over channels); spatial sizes of each pair must match.
    Shapes: lists of ``(B, C_j, H_j, W_j)`` tensors (or single tensors) -> scalar. A teacher entry may also be
    its already computed map ``attention_map(f_t, p)`` (same ``p``), ``(B, H_j * W_j)``: ``lk.fit`` computes the teacher's maps
    once per training set instead of running the teacher at every step.
    """
    if isinstance(student_feats, torch.Tensor):
        student_feats, teacher_feats = [student_feats], [teacher_feats]  # type: ignore[list-item]
    for name, feats in (("student_feats", student_feats), ("teacher_feats", teacher_feats)):
        if not isinstance(feats, (list, tuple)) or not all(isinstance(f, torch.Tensor) for f in feats):
            got = (
                type(feats).__name__
                if not isinstance(feats, (list, tuple))
                else [type(f).__name__ for f in feats]
            )
            raise TypeError(f"{name} must be a tensor or a list of tensors (B, C, H, W), got {got}.")
    _check_p(p)
    if len(student_feats) != len(teacher_feats) or len(student_feats) == 0:
        raise ValueError(
            f"attention transfer pairs layers one to one: got {len(student_feats)} student and "
            f"{len(teacher_feats)} teacher feature maps (need the same number, at least one)."
        )
    total = student_feats[0].new_zeros((), dtype=torch.float32)
    for j, (fs, ft) in enumerate(zip(student_feats, teacher_feats)):
        if ft.dim() == 2 and fs.dim() == 4:  # the teacher's map, computed once (lk.fit's feature cache)
            if ft.shape != (fs.shape[0], fs.shape[2] * fs.shape[3]):
                raise ValueError(
                    f"attention transfer pair {j}: student feature {tuple(fs.shape)} vs teacher attention map "
                    f"{tuple(ft.shape)}; a precomputed map must be (B, H*W) for the student's batch and size."
                )
            q_t = ft.detach()  # (B, H*W)
        elif fs.dim() != 4 or ft.dim() != 4 or fs.shape[0] != ft.shape[0] or fs.shape[2:] != ft.shape[2:]:
            raise ValueError(
                f"attention transfer pair {j}: student feature {tuple(fs.shape)} vs teacher feature "
                f"{tuple(ft.shape)}; both must be (B, C, H, W) with the same batch and spatial size."
            )
        else:
            q_t = attention_map(ft.detach(), p)  # (B, H*W)
        if fs.shape[0] == 0:
            raise ValueError(
                f"attention transfer pair {j} is an empty batch: the mean of no examples is undefined."
            )
        check_finite(q_t, f"teacher_feats[{j}]")
        diff = attention_map(fs, p) - q_t  # (B, H*W)
        total = total + diff.pow(2).sum(dim=1).mean()
    return total


# ------------------------------------------------- objectives of ensembles and peers (lesson 07)
def prob_mse_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    r"""Squared error between softened probabilities, summed over classes and averaged over the batch.

    .. math::  L_{MSE} = \frac{1}{B} \sum_b \sum_c \big(p_s^T(b)_c - p_t^T(b)_c\big)^2,
               \quad p^T = \mathrm{softmax}(z / T)

    Shapes: both ``(B, C)`` -> scalar, float32, teacher side detached. Each term lies in [0, 2]. Unlike the KL
    there is no ``T**2`` factor, and the gradient with respect to the student's logits passes through the
    softmax Jacobian ``diag(p) - p p^T``: it vanishes when the student is confidently wrong, the reason Ba &
    Caruana (2014) regressed logits rather than probabilities.
    """
    check_logits_pair(student_logits, teacher_logits, allow_empty=False)
    t = check_temperature(temperature)
    z_s, z_t = student_logits.float() / t, teacher_logits.detach().float() / t  # (B, C) each
    if not all_finite(z_s, z_t):
        check_logit_values(student_logits, "student_logits")
        check_logit_values(teacher_logits, "teacher_logits")
        _check_overflow(student_logits, z_s, "student_logits", t)
        _check_overflow(teacher_logits, z_t, "teacher_logits", t)
    p_s = F.softmax(z_s, dim=-1)  # (B, C)
    p_t = F.softmax(z_t, dim=-1)  # (B, C)
    return (p_s - p_t).pow(2).sum(dim=-1).mean()


def label_distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 1.0,
    alpha: float = 0.9,
) -> torch.Tensor:
    r"""``(1 - alpha) CE(y, p_s) + alpha * prob_mse_loss(z_s, z_t, T)``: Hinton's objective with the KL
    replaced by the squared error on probabilities. Shapes: logits ``(B, C)``, targets ``(B,)`` (-1 =
    unlabelled, MSE term only)."""
    check_logits_pair(student_logits, teacher_logits, allow_empty=False)
    a = check_alpha(alpha)
    targets = check_targets(targets, student_logits.shape[0], student_logits.shape[1])
    mse = prob_mse_loss(student_logits, teacher_logits, temperature)  # checks values and temperature first
    return (1.0 - a) * _labelled_ce(student_logits, targets, all_finite(student_logits)) + a * mse


def dml_loss(logits: Sequence[torch.Tensor], targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    r"""Deep mutual learning (Zhang et al., 2018): one loss per peer, ``(K,)``.

    .. math::  L_k = CE(y, p_k) + \frac{1}{K - 1} \sum_{j \ne k} T^2\, KL\big(p_j^T \,\|\, p_k^T\big)

    ``logits``: K peers' ``(B, C)`` logits on the same batch. Peer ``j`` is detached inside ``L_k``, so
    ``dml_loss(...).sum().backward()`` gives every peer exactly the gradient of its own loss. The paper uses
    ``T = 1`` (then ``T**2 = 1``). Unlabelled rows (target -1) contribute to the KL terms only.
    """
    if not isinstance(logits, (list, tuple)) or len(logits) < 2:
        n = len(logits) if isinstance(logits, (list, tuple)) else type(logits).__name__
        raise ValueError(f"mutual learning needs at least two peers' logits, got {n}.")
    for j, z in enumerate(logits):
        check_logits(z, f"logits[{j}]", allow_empty=False)
        if z.shape != logits[0].shape:
            raise ValueError(
                f"every peer's logits must have the same shape (the same batch, the same classes): logits[0] is "
                f"{tuple(logits[0].shape)}, logits[{j}] is {tuple(z.shape)}."
            )
        check_logit_values(z, f"logits[{j}]", allow_neg_inf=False)  # each peer is also a teacher: finite
    targets = check_targets(targets, logits[0].shape[0], logits[0].shape[1])
    t = check_temperature(temperature, maximum=MAX_TEMPERATURE)
    k = len(logits)
    losses = []
    for i, z in enumerate(logits):
        kl = sum(kd_kl_loss(z, other, t) for j, other in enumerate(logits) if j != i)  # others detached
        losses.append(_labelled_ce(z, targets, True) + kl / (k - 1))  # peers checked finite above
    return torch.stack(losses)  # (K,)


# name -> objective. Functions take (student_logits, teacher_logits, ...); modules are built with their
# sizes first. ``get_objective`` gives a clear error for unknown names.
OBJECTIVES: dict[str, Callable] = {
    "kd": kd_kl_loss,
    "hinton": hinton_kd_loss,
    "hint": HintLoss,
    "attention": attention_transfer_loss,
}


def get_objective(name: str) -> Callable:
    """Look an objective up by name in ``OBJECTIVES`` (unknown names list the choices)."""
    check_choice(name, OBJECTIVES, "objective")
    return OBJECTIVES[name]
