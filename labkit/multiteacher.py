"""Many teachers, one student: weighting strategies, label-space mapping and the multi-teacher objective.

.. math::  L = (1 - \\alpha)\\, CE(y, p_s) + \\alpha\\, T^2 \\frac{1}{B} \\sum_b \\sum_k w_{bk}\\,
           KL\\big(p_k^T(b) \\,\\|\\, p_s^T(b)|_{S_k}\\big), \\qquad w_{bk} \\ge 0,\\ \\sum_k w_{bk} = 1

Teachers may cover different parts of the label space (experts on class subsets): teacher ``k`` covers the
classes ``S_k`` and its logits are expanded to the student's label space with ``-inf`` outside ``S_k``
(``expand_logits``). Its KL is then taken against the student's distribution *renormalised over* ``S_k``,
so an expert on five classes is never asked about the other five. A stack of teacher logits is a tensor
``(B, K, C)``: batch, teachers, the student's classes.

The weights ``w`` come from a strategy in ``WEIGHTINGS`` (each a small ``nn.Module``; ``forward`` returns
``(B, K)`` weights, non-negative, rows summing to 1):

* ``uniform``    - ``1 / K`` (the usual baseline).
* ``accuracy``   - proportional to each teacher's validation accuracy *on its own classes*
  (``teacher_accuracies``: the examples of ``S_k``, arg-max among ``S_k``), one weight per teacher. All-class
  accuracy would cap an expert on 5 of 10 classes at about 50 % however good it is.
* ``confidence`` - per sample, ``softmax_k(-H(p_k) / (tau log|S_k|))``: low-entropy (confident) teachers count
  more. The entropy is normalised by its maximum ``log|S_k|``, so a maximally unsure expert on 5 classes and a
  maximally unsure generalist on 10 get the same weight (the raw entropy would favour the expert).
* ``label``      - per sample, CA-MKD (Zhang et al., 2022): ``w_k = (1 - softmax_k(CE_k)) / (K - 1)`` with
  ``CE_k = -log p_k(y)``; teachers that agree with the true label count more. Unlabelled rows: uniform.
* ``learned``    - ``softmax(theta)``, one logit per teacher, trained with the student to make the weighted
  mixture of teacher probabilities predict the labels (``aux_loss``). Trained on the KD term itself, the
  weights would collapse onto whichever teacher the student already matches best; this is why they learn
  from the labels instead.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import (
    check_alpha,
    check_choice,
    check_finite,
    check_has_data,
    check_logits,
    check_positive_int,
    check_targets,
    check_temperature,
    values_checked_upstream,
)
from .data import ImageData
from .losses import MAX_TEMPERATURE, _check_overflow, _kl_rows, _labelled_ce
from .metrics import batched_outputs

__all__ = [
    "WEIGHTINGS",
    "TeacherEnsemble",
    "check_weights",
    "class_subset",
    "expand_logits",
    "fuse_teachers",
    "make_weighting",
    "multi_teacher_kd_loss",
    "per_teacher_kl",
    "stack_teacher_logits",
    "teacher_accuracies",
]


# ---------------------------------------------------------------------------------- label spaces and stacks
def class_subset(data: ImageData, classes: Sequence[int]) -> ImageData:
    """The examples of ``classes`` only, relabelled ``0..len(classes) - 1`` in the order given: the training
    set of an expert teacher. Its ``classes`` names follow, so ``list(classes)`` is the expert's class map
    (``TeacherEnsemble(..., class_maps=[classes, ...])``). Unlabelled rows (``-1``) are dropped."""
    if not isinstance(data, ImageData):
        raise ValueError(f"class_subset needs an ImageData, got {type(data).__name__}.")
    if isinstance(classes, (str, bytes)) or not hasattr(classes, "__len__"):
        raise ValueError(f"classes must be a sequence of class indices, e.g. [0, 1, 2], got {classes!r}.")
    idx = _check_class_map(classes, len(classes), data.num_classes)  # (C_k,), distinct, in range
    if len(idx) < 2:
        raise ValueError(f"an expert needs at least 2 classes, got {idx.tolist()}.")
    remap = torch.full((data.num_classes,), -1, dtype=torch.long)
    remap[idx] = torch.arange(len(idx))
    y = data.y.cpu()
    keep = torch.nonzero((y >= 0) & (remap[y.clamp_min(0)] >= 0)).squeeze(1)  # (N_k,)
    sub = data.subset(keep)
    names = [data.classes[int(c)] for c in idx]
    return ImageData(
        sub.x, remap[sub.y.cpu()].to(sub.y.device), names, f"{data.name}[{len(idx)} classes]", data.source
    )


def _check_class_map(class_map: Any, width: int, num_classes: int, k: int | None = None) -> torch.Tensor:
    who = "class_map" if k is None else f"class_maps[{k}]"
    try:
        idx = torch.as_tensor(list(class_map) if not isinstance(class_map, torch.Tensor) else class_map)
    except (TypeError, ValueError, RuntimeError):  # not iterable, ragged, strings
        idx = None
    if idx is not None and idx.dim() == 1 and idx.numel() == 0:
        raise ValueError(f"{who} is empty: a teacher must know at least one class.")
    if idx is None or idx.dim() != 1 or idx.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"{who} must be a sequence of integer class indices, got {class_map!r}.")
    if len(idx) != width:
        raise ValueError(
            f"{who} names {len(idx)} classes but the teacher has {width} outputs: give one student class "
            "index per teacher output."
        )
    if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= num_classes):
        raise ValueError(f"{who} must index the student's classes 0..{num_classes - 1}, got {idx.tolist()}.")
    if len(set(idx.tolist())) != len(idx):
        raise ValueError(f"{who} maps two teacher outputs to the same student class: {idx.tolist()}.")
    return idx.long()


def expand_logits(logits: torch.Tensor, class_map: Sequence[int], num_classes: int) -> torch.Tensor:
    """Put a partial teacher's logits ``(B, C_k)`` into the student's label space ``(B, C)``: column ``j``
    goes to class ``class_map[j]``; classes the teacher does not know get ``-inf`` (probability 0)."""
    check_positive_int(num_classes, "num_classes", minimum=2)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or not logits.is_floating_point():
        raise ValueError(f"logits must be a float tensor (batch, teacher_classes), got {_shape(logits)}.")
    idx = _check_class_map(class_map, logits.shape[1], num_classes)
    check_finite(logits, "logits", allow_neg_inf=True)
    out = logits.new_full((logits.shape[0], num_classes), float("-inf"))
    out[:, idx] = logits
    return out


def stack_teacher_logits(
    logits: Sequence[torch.Tensor],
    class_maps: Sequence[Sequence[int] | None] | None = None,
    num_classes: int | None = None,
) -> torch.Tensor:
    """K teachers' logits -> one ``(B, K, C)`` stack. ``class_maps[k]`` (None = all classes, in order) maps
    teacher ``k``'s outputs onto the student's ``num_classes`` classes (default: the widest teacher)."""
    if not isinstance(logits, (list, tuple)) or len(logits) == 0:
        raise ValueError("need at least one teacher: got zero teacher logits.")
    for k, z in enumerate(logits):
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or not z.is_floating_point():
            raise ValueError(
                f"teacher {k}'s logits must be a float tensor (batch, classes), got {_shape(z)}."
            )
    if len({z.shape[0] for z in logits}) != 1:
        raise ValueError(f"teachers disagree on the batch size: {[tuple(z.shape) for z in logits]}.")
    for k, z in enumerate(logits):
        check_finite(z, f"teacher {k}'s logits", allow_neg_inf=True)
    if class_maps is not None and not isinstance(class_maps, (list, tuple)):
        raise ValueError(
            f"class_maps must be a list with one entry per teacher (None or a class map), got {class_maps!r}."
        )
    maps = list(class_maps) if class_maps is not None else [None] * len(logits)
    if len(maps) != len(logits):
        raise ValueError(f"got {len(logits)} teachers but {len(maps)} class maps.")
    c = num_classes if num_classes is not None else max(z.shape[1] for z in logits)
    out = []
    for k, (z, m) in enumerate(zip(logits, maps)):
        if m is None:
            if z.shape[1] != c:
                raise ValueError(
                    f"teacher {k} has {z.shape[1]} classes but the student has {c}: pass class_maps[{k}] "
                    "(the student class of each teacher output) for a teacher with a different label space."
                )
            out.append(z.float())
        else:
            try:
                out.append(expand_logits(z.float(), m, c))
            except ValueError as err:
                raise ValueError(f"teacher {k}: {err}") from None
    return torch.stack(out, dim=1)  # (B, K, C)


def _shape(x: Any) -> str:
    return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__


def _check_stack(teacher_logits: Any, student_logits: Any = None, allow_empty: bool = True) -> None:
    """A ``(B, K, C)`` float stack whose entries are finite or -inf (a class teacher ``k`` does not know); NaN and
    +inf are errors naming the teacher and the example, never read as "unknown", and so is a teacher that knows no
    class of an example (a row of all -inf: there is no distribution to distil, and no weight could be right)."""
    if not isinstance(teacher_logits, torch.Tensor) or teacher_logits.dim() != 3:
        raise ValueError(
            f"teacher logits must be a stack (batch, teachers, classes), got {_shape(teacher_logits)}; "
            "build it with lk.stack_teacher_logits([...])."
        )
    check_has_data(teacher_logits, "teacher logits")
    if not teacher_logits.is_floating_point():
        raise ValueError(f"teacher logits must be a float stack, got dtype {teacher_logits.dtype}.")
    if teacher_logits.shape[1] == 0:
        raise ValueError("need at least one teacher: the stack has zero teachers.")
    if teacher_logits.shape[2] == 0:
        raise ValueError("the teacher stack has 0 classes: teachers must map onto the student's classes.")
    if not allow_empty and teacher_logits.shape[0] == 0:
        raise ValueError(
            "the teacher stack is an empty batch (0 examples): the mean of no examples is undefined."
        )
    if student_logits is not None:
        b, k, c = teacher_logits.shape
        check_logits(student_logits, "student_logits")
        if student_logits.shape != (b, c):
            raise ValueError(
                f"student logits {tuple(student_logits.shape)} do not match the teacher stack {(b, k, c)}: "
                f"the student needs shape ({b}, {c}) (teachers map onto the student's {c} classes)."
            )
    if values_checked_upstream():  # inside fit: the teacher stack was checked once, no per-step sync
        return
    z = teacher_logits.detach()
    bad = torch.isnan(z) | torch.isposinf(z)  # (B, K, C)
    dead = torch.isneginf(z).all(dim=-1)  # (B, K)
    any_bad, any_dead = (
        torch.stack([bad.any(), dead.any()]).tolist() if z.numel() else (False, False)
    )  # one sync
    if any_bad:
        b, k, c = (int(i) for i in bad.nonzero()[0])
        what = "NaN" if bool(torch.isnan(z[b, k, c])) else "+inf"
        raise ValueError(
            f"teacher {k} has a {what} logit at example {b}, class {c} (of {int(bad[:, k].sum())} bad entries for "
            f"that teacher): teacher logits must be finite, or -inf for a class the teacher does not know. A NaN "
            "or +inf is a broken teacher output, not an unknown class."
        )
    if any_dead:
        b, k = (int(i) for i in dead.nonzero()[0])
        raise ValueError(
            f"teacher {k} knows no class for example {b} (its logits are all -inf): every teacher must cover at "
            "least one class (-inf marks the classes it does not know). Check its class map, or leave it out."
        )
    if student_logits is not None:
        check_finite(student_logits, "student_logits")


def check_weights(weights: torch.Tensor, batch: int, num_teachers: int) -> torch.Tensor:
    """Teacher weights ``(B, K)``: finite, non-negative, each row summing to 1."""
    if not isinstance(weights, torch.Tensor) or tuple(weights.shape) != (batch, num_teachers):
        raise ValueError(
            f"teacher weights must have shape (batch, teachers) = {(batch, num_teachers)}, got {_shape(weights)}."
        )
    if not weights.is_floating_point():
        raise ValueError(f"teacher weights must be floats (batch, teachers), got dtype {weights.dtype}.")
    if values_checked_upstream():  # inside fit: the weighting's output, no per-step sync
        return weights
    check_finite(weights, "teacher weights")
    if (weights < 0).any():
        raise ValueError(f"teacher weights must be >= 0, got a minimum of {float(weights.min()):.4g}.")
    sums = weights.sum(dim=1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        raise ValueError(
            f"teacher weights must sum to 1 for every example, got sums from {float(sums.min()):.4g} to "
            f"{float(sums.max()):.4g}; normalise them (w / w.sum(1, keepdim=True))."
        )
    return weights


def teacher_accuracies(teachers: Any, data: Any) -> list[float]:
    """Each teacher's accuracy **on its own classes**: over the examples whose label is in ``S_k``, the
    fraction where the arg-max among ``S_k`` is the label. A list of ``K`` floats in [0, 1], the input of the
    ``accuracy`` weighting (``accuracies=teacher_accuracies(ensemble, val)``).

    ``teachers``: a ``TeacherEnsemble`` (its stack is computed on ``data.x``) or a stack ``(N, K, C)`` with
    ``-inf`` outside each teacher's classes (``stack_teacher_logits``). ``data``: an ``ImageData`` (validation
    data; unlabelled rows are ignored) or the labels ``(N,)``. For a generalist ``S_k`` is every class, so this
    is its plain accuracy; for an expert on 5 of 10 classes it is not capped at 50 %.
    """
    labels = data.y if isinstance(data, ImageData) else data
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.is_floating_point():
        raise ValueError(
            f"teacher_accuracies needs an ImageData or integer labels (N,), got {_shape(labels)}."
        )
    check_has_data(labels, "labels")
    if isinstance(teachers, TeacherEnsemble):
        if not isinstance(data, ImageData):
            raise ValueError(
                "teacher_accuracies(ensemble, data) needs an ImageData, to run the teachers on data.x."
            )
        stack = teachers.predict_stack(data.x)  # (N, K, C)
    else:
        stack = teachers
    _check_stack(stack)
    n, k, c = stack.shape
    labels = labels.to(stack.device)
    if len(labels) != n:
        raise ValueError(f"got {len(labels)} labels for a stack of {n} examples.")
    if len(labels) and int(labels.max()) >= c:
        raise ValueError(
            f"labels must index the {c} classes of the stack, got a maximum of {int(labels.max())}."
        )
    labels = check_targets(labels, n, c)  # int64; -1 = unlabelled
    accs = []
    for j in range(k):
        z = stack[:, j]  # (N, C), -inf outside S_j
        known = torch.isfinite(z)  # (N, C)
        own = (labels >= 0) & known.gather(1, labels.clamp_min(0).unsqueeze(1)).squeeze(1)  # (N,)
        if not bool(own.any()):
            raise ValueError(f"teacher {j}: no labelled example of its classes, so no accuracy to measure.")
        pred = z[own].masked_fill(~known[own], float("-inf")).argmax(dim=-1)  # arg-max among S_j
        accs.append(float((pred == labels[own]).float().mean()))
    return accs


# ------------------------------------------------------------------------------------------ the objective
def _masked_log_softmax(z: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    # log-softmax over the supported classes only; 0 (never -inf) outside, so no NaN reaches a gradient.
    return F.log_softmax(z.masked_fill(~support, float("-inf")), dim=-1).masked_fill(~support, 0.0)


def per_teacher_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``KL(p_k^T || p_s^T restricted to S_k)`` for every example and teacher: ``(B, C)``, ``(B, K, C)`` ->
    ``(B, K)``, each >= 0. Float32; no ``T^2`` here (``multi_teacher_kd_loss`` applies it). ``S_k``: the classes
    where teacher ``k``'s logit is not -inf. NaN / +inf logits, a teacher row of all -inf, non-finite student
    logits and ``temperature > MAX_TEMPERATURE`` are errors."""
    if student_logits is None:
        raise TypeError("student_logits must be a torch.Tensor (batch, num_classes), got None.")
    _check_stack(teacher_logits, student_logits, allow_empty=False)
    t = check_temperature(temperature, maximum=MAX_TEMPERATURE)
    z_t = teacher_logits.detach().float() / t  # (B, K, C)
    z_s = student_logits.float() / t  # (B, C)
    support = torch.isfinite(z_t)  # (B, K, C): the classes each teacher knows (NaN / +inf refused above)
    if values_checked_upstream():  # inside fit: the masked path, which covers both cases, without a sync
        flags = [False, False, False]
    else:
        over_t = ~support & torch.isfinite(
            teacher_logits.detach().float()
        )  # finite / T overflowed: not "unknown"
        flags = torch.stack([over_t.any(), torch.isinf(z_s).any(), support.all()]).tolist()  # one host sync
    if flags[0]:
        k = int(over_t.nonzero()[0][1])
        _check_overflow(teacher_logits[:, k], z_t[:, k], f"teacher {k}'s logits", t)
    if flags[1]:
        _check_overflow(student_logits, z_s, "student_logits", t)
    if flags[2]:  # every teacher knows every class: one student log-softmax, broadcast over K
        log_p_t = F.log_softmax(z_t, dim=-1)
        log_p_s = F.log_softmax(z_s, dim=-1).unsqueeze(1)  # (B, 1, C)
        return _kl_rows(log_p_s.expand_as(log_p_t), log_p_t, None)  # (B, K)
    log_p_t = _masked_log_softmax(z_t.masked_fill(~support, 0.0), support)
    log_p_s = _masked_log_softmax(z_s.unsqueeze(1).expand_as(z_t), support)  # (B, K, C)
    return _kl_rows(log_p_s, log_p_t, support)  # (B, K)


def multi_teacher_kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    temperature: float = 4.0,
    alpha: float = 0.9,
) -> torch.Tensor:
    """``(1 - alpha) CE + alpha T^2 mean_b sum_k w_bk KL_bk`` (module docstring). Shapes: student ``(B, C)``,
    teachers ``(B, K, C)``, targets ``(B,)`` (-1 = unlabelled), weights ``(B, K)``. With one teacher and
    weight 1 it equals ``hinton_kd_loss``."""
    kl = per_teacher_kl(student_logits, teacher_logits, temperature)  # (B, K)
    b, k = kl.shape
    w = check_weights(weights, b, k)
    a = check_alpha(alpha)
    targets = check_targets(targets, b, student_logits.shape[1])
    ce = _labelled_ce(student_logits, targets, True)  # student checked finite by per_teacher_kl
    t = float(temperature)
    return (1.0 - a) * ce + a * t * t * (w.detach() * kl).sum(dim=1).mean()


def fuse_teachers(
    teacher_logits: torch.Tensor, weights: torch.Tensor | None = None, space: str = "prob"
) -> torch.Tensor:
    """One distribution from K teachers, returned as log-probabilities ``(B, C)`` (usable as logits).

    ``space="prob"``: ``log sum_k w_k p_k`` (a mixture; averaging probabilities). ``"logit"``: the softmax of
    ``sum_k w_k z_k`` (averaging logits; sharper than the mixture). ``"logprob"``: the normalised geometric
    mixture ``softmax(sum_k w_k log p_k)``. Classes a teacher does not know take no part in its average
    (weights renormalised over the teachers that know the class).
    """
    _check_stack(teacher_logits)
    check_choice(space, FUSIONS, "fusion space")
    b, k, _ = teacher_logits.shape
    w = torch.full((b, k), 1.0 / k) if weights is None else check_weights(weights, b, k)
    return FUSIONS[space](teacher_logits.float(), w.to(teacher_logits.device).float())


def _fuse_prob(z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    p = F.softmax(z, dim=-1)  # -inf -> probability 0
    return torch.log((w.unsqueeze(-1) * p).sum(dim=1).clamp_min(1e-30))


def _fuse_linear(values: torch.Tensor, support: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    wk = w.unsqueeze(-1) * support  # (B, K, C): a teacher votes only on the classes it knows
    covered = wk.sum(dim=1)  # (B, C)
    mixed = (wk * values.masked_fill(~support, 0.0)).sum(dim=1) / covered.clamp_min(1e-12)
    return F.log_softmax(mixed.masked_fill(covered <= 0, float("-inf")), dim=-1)


FUSIONS = {
    "prob": _fuse_prob,
    "logit": lambda z, w: _fuse_linear(z, torch.isfinite(z), w),
    "logprob": lambda z, w: _fuse_linear(F.log_softmax(z, dim=-1), torch.isfinite(z), w),
}


# ------------------------------------------------------------------------------------------- weightings
class Weighting(nn.Module):
    """``forward(teacher_logits (B, K, C), targets (B,)) -> weights (B, K)``; ``aux_loss`` is added to the
    training loss (0 unless the strategy learns)."""

    def __init__(self, num_teachers: int) -> None:
        super().__init__()
        self.num_teachers = check_positive_int(num_teachers, "num_teachers")
        self.aux_loss = torch.zeros(())

    def __call__(self, teacher_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # every strategy (a learner's own subclass too) gets a checked stack and int64 targets
        _check_stack(teacher_logits)
        b, k, c = teacher_logits.shape
        if k != self.num_teachers:
            raise ValueError(
                f"this {type(self).__name__} was built for {self.num_teachers} teachers, got a stack of {k} "
                f"{tuple(teacher_logits.shape)}: build it with make_weighting(name, {k})."
            )
        return super().__call__(teacher_logits, check_targets(targets, b, c))

    def _uniform(self, b: int, device: torch.device) -> torch.Tensor:
        return torch.full((b, self.num_teachers), 1.0 / self.num_teachers, device=device)


class UniformWeights(Weighting):
    def forward(self, teacher_logits, targets):
        return self._uniform(teacher_logits.shape[0], teacher_logits.device)


class AccuracyWeights(Weighting):
    """``w_k = acc_k / sum_j acc_j`` from each teacher's held-out accuracy on its own classes
    (``teacher_accuracies``)."""

    def __init__(self, num_teachers: int, accuracies: Sequence[float] | None = None) -> None:
        super().__init__(num_teachers)
        if accuracies is None:
            raise ValueError(
                "weighting 'accuracy' needs accuracies=[...], one validation accuracy per teacher, each on "
                "that teacher's own classes: accuracies=lk.teacher_accuracies(ensemble, val)."
            )
        try:
            acc = torch.as_tensor([float(a) for a in accuracies], dtype=torch.float32)
        except (TypeError, ValueError):
            raise ValueError(
                f"accuracies must be a list of numbers in [0, 1], one per teacher, got {accuracies!r}."
            ) from None
        if len(acc) != num_teachers:
            raise ValueError(f"got {len(acc)} accuracies for {num_teachers} teachers.")
        if not torch.isfinite(acc).all() or (acc < 0).any() or (acc > 1).any() or float(acc.sum()) == 0:
            raise ValueError(f"accuracies must be numbers in [0, 1], not all 0; got {acc.tolist()}.")
        self.register_buffer("w", acc / acc.sum())

    def forward(self, teacher_logits, targets):
        return self.w.to(teacher_logits.device).expand(teacher_logits.shape[0], -1)


class ConfidenceWeights(Weighting):
    """Per sample ``softmax_k(-H(p_k) / (tau log|S_k|))``: confident (low-entropy) teachers count more.

    ``H(p_k) / log|S_k|`` is the entropy as a fraction of its maximum over the teacher's own ``|S_k|``
    classes, in [0, 1]: 0 for a one-hot teacher, 1 for a uniform one, whatever the size of its label space.
    A teacher of one class is certain (0). Shapes: stack ``(B, K, C)`` -> weights ``(B, K)``."""

    def __init__(self, num_teachers: int, tau: float = 1.0) -> None:
        super().__init__(num_teachers)
        self.tau = check_temperature(tau, "tau")

    def forward(self, teacher_logits, targets):
        z = teacher_logits.detach().float()
        support = torch.isfinite(z)
        log_p = _masked_log_softmax(z.masked_fill(~support, 0.0), support)
        entropy = -(log_p.exp() * support * log_p).sum(-1)  # (B, K), in nats
        max_entropy = torch.log(support.sum(-1).float())  # (B, K): log|S_k|, 0 for a one-class teacher
        normalised = torch.where(
            max_entropy > 0, entropy / max_entropy.clamp_min(1e-12), torch.zeros_like(entropy)
        )
        return F.softmax(-normalised / self.tau, dim=1)


class LabelAgreementWeights(Weighting):
    """CA-MKD (Zhang, Chen, Wang, 2022): ``w_k = (1 - softmax_k(CE_k)) / (K - 1)``, ``CE_k = -log p_k(y)``."""

    def forward(self, teacher_logits, targets):
        b, k, _ = teacher_logits.shape
        if k == 1:
            return self._uniform(b, teacher_logits.device)
        z = teacher_logits.detach().float()
        log_p = F.log_softmax(z, dim=-1)  # -inf where a teacher does not know the class
        y = targets.clamp_min(0).view(b, 1, 1).expand(b, k, 1)
        ce = (-log_p.gather(-1, y).squeeze(-1)).clamp(max=50.0)  # (B, K); an unknown true class: CE 50
        w = (1.0 - F.softmax(ce, dim=1)) / (k - 1)
        return torch.where((targets >= 0).unsqueeze(1), w, self._uniform(b, w.device))


class LearnedWeights(Weighting):
    """``softmax(theta)``, ``theta`` learned so that ``sum_k w_k p_k`` predicts the labels (``aux_loss``)."""

    def __init__(self, num_teachers: int) -> None:
        super().__init__(num_teachers)
        self.theta = nn.Parameter(torch.zeros(num_teachers))

    def forward(self, teacher_logits, targets):
        b = teacher_logits.shape[0]
        w = F.softmax(self.theta, dim=0).unsqueeze(0).expand(b, -1)  # (B, K)
        labelled = targets >= 0
        if values_checked_upstream():  # inside fit: the mean over labelled rows without a host sync
            mix = _fuse_prob(teacher_logits.detach().float(), w)  # (B, C) log-probabilities
            nll = F.nll_loss(mix, targets.clamp_min(0), reduction="none")  # (B,)
            self.aux_loss = (nll * labelled).sum() / labelled.sum().clamp_min(1)
        elif bool(labelled.any()):
            mix = _fuse_prob(teacher_logits.detach().float()[labelled], w[labelled])  # (b_l, C)
            self.aux_loss = F.nll_loss(mix, targets[labelled])
        else:
            self.aux_loss = self.theta.sum() * 0.0
        return w


WEIGHTINGS: dict[str, type[Weighting]] = {
    "uniform": UniformWeights,
    "accuracy": AccuracyWeights,
    "confidence": ConfidenceWeights,
    "label": LabelAgreementWeights,
    "learned": LearnedWeights,
}


def make_weighting(name: str, num_teachers: int, **kwargs: Any) -> Weighting:
    """Build a strategy from ``WEIGHTINGS`` (``accuracies=teacher_accuracies(...)`` for ``"accuracy"``, ``tau``
    for ``"confidence"``)."""
    check_choice(name, WEIGHTINGS, "weighting")
    cls = WEIGHTINGS[name]
    params = inspect.signature(cls.__init__).parameters
    allowed = [p for p in params if p not in ("self", "num_teachers")]
    open_ended = any(
        q.kind is inspect.Parameter.VAR_KEYWORD for q in params.values()
    )  # a strategy with **kwargs
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown and not open_ended:
        takes = ", ".join(allowed) if allowed else "no options"
        raise ValueError(f"weighting {name!r} does not take {', '.join(unknown)}; it takes: {takes}.")
    return cls(num_teachers, **kwargs)


# ------------------------------------------------------------------------------------------ the teachers
class TeacherEnsemble(nn.Module):
    """K trained teachers presented as one: ``forward(x)`` returns the ``(B, K, C)`` stack of their logits in
    the student's label space. Pass it as ``teacher=`` to ``lk.fit(..., method="multi")``; the stack for the
    whole training set is then computed once and cached (``predict_stack``), whatever K is.

    ``class_maps[k]``: student class of each output of teacher ``k`` (None = the full label space).
    ``weighting`` / ``weighting_kwargs``: the strategy ``fit`` uses (a fresh one per run).
    """

    def __init__(
        self,
        teachers: Sequence[nn.Module],
        num_classes: int,
        class_maps: Sequence[Sequence[int] | None] | None = None,
        weighting: str = "uniform",
        **weighting_kwargs: Any,
    ) -> None:
        super().__init__()
        if not isinstance(teachers, (list, tuple)):
            raise ValueError(
                f"teachers must be a list of models, got {type(teachers).__name__}; for one teacher pass [teacher]."
            )
        if len(teachers) == 0:
            raise ValueError("TeacherEnsemble needs at least one teacher, got zero.")
        if not all(isinstance(t, nn.Module) for t in teachers):
            raise ValueError("every teacher must be an nn.Module.")
        self.teachers = nn.ModuleList(teachers)
        self.num_classes = check_positive_int(num_classes, "num_classes", minimum=2)
        self.class_maps = list(class_maps) if class_maps is not None else [None] * len(teachers)
        if len(self.class_maps) != len(teachers):
            raise ValueError(f"got {len(teachers)} teachers but {len(self.class_maps)} class maps.")
        for k, (t, m) in enumerate(zip(teachers, self.class_maps)):
            width = getattr(t, "num_classes", getattr(t, "out_features", None))
            if m is None and width is not None and width != num_classes:
                raise ValueError(
                    f"teacher {k} has {width} classes but the student has {num_classes}: give class_maps[{k}]."
                )
            if m is not None and width is not None:
                _check_class_map(m, width, num_classes, k)
        self.weighting_name, self.weighting_kwargs = weighting, weighting_kwargs
        make_weighting(weighting, len(teachers), **weighting_kwargs)  # fail now, not mid-training

    def make_weighting(self) -> Weighting:
        return make_weighting(self.weighting_name, len(self.teachers), **self.weighting_kwargs)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        if return_features:
            raise ValueError("a TeacherEnsemble gives logits only; feature methods need a single teacher.")
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"x must be a tensor of inputs (batch, ...), got {type(x).__name__}.")
        logits = []
        for k, t in enumerate(self.teachers):
            try:
                out = t(x)
            except RuntimeError as err:  # e.g. an input of the wrong shape for this teacher
                raise ValueError(
                    f"teacher {k} ({type(t).__name__}) cannot run on x of shape {tuple(x.shape)}: {err}"
                ) from err
            logits.append(out[0] if isinstance(out, (tuple, list)) else out)
        return stack_teacher_logits(logits, self.class_maps, self.num_classes)  # (B, K, C)

    @torch.no_grad()
    def predict_stack(self, x: torch.Tensor, batch_size: int = 1024, device: Any = None) -> torch.Tensor:
        """The ``(N, K, C)`` stack for ``x`` in eval mode, computed once (float32, CPU)."""
        return batched_outputs(self, x, batch_size, device)
