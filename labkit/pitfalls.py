"""The classic distillation bugs, reproduced on purpose so lesson 01 can show why each one fails.

Each function is a faithful copy of a mistake that appears in published tutorials. They run without error
and return plausible-looking numbers, which is exactly why they survive review. Never train with them; the
correct versions are in ``labkit.losses``. ``tests/test_pitfalls.py`` checks that each one really is wrong.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .methods import Distiller

__all__ = [
    "BUGS",
    "CE_BUGS",
    "NegatedCE",
    "kd_kl_on_raw_logits",
    "kd_mean_reduction",
    "kd_missing_t2",
    "kd_wrong_direction",
    "negated_ce_loss",
]


def kd_kl_on_raw_logits(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0):
    """BUG: ``nn.KLDivLoss`` fed raw logits for the input and softmax for the target.

    ``KLDivLoss`` computes ``sum target * (log(target) - input)``, assuming ``input`` is a log-probability.
    With raw logits the "divergence" is not zero for identical inputs, can be negative, and changes when a
    constant is added to the logits, which leaves the distribution unchanged.
    """
    t = temperature
    return (
        nn.KLDivLoss(reduction="batchmean")(student_logits / t, F.softmax(teacher_logits / t, dim=-1)) * t * t
    )


def kd_mean_reduction(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0):
    """BUG: ``reduction="mean"`` averages over batch *and classes*: the loss is K times too small."""
    t = temperature
    log_p_s = F.log_softmax(student_logits / t, dim=-1)
    return F.kl_div(log_p_s, F.softmax(teacher_logits / t, dim=-1), reduction="mean") * t * t


def kd_missing_t2(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0):
    """BUG: no ``T**2`` factor, so the soft term's gradients shrink as ``1/T**2`` and vanish at high T."""
    t = temperature
    log_p_s = F.log_softmax(student_logits / t, dim=-1)
    return F.kl_div(log_p_s, F.softmax(teacher_logits / t, dim=-1), reduction="batchmean")


def kd_wrong_direction(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0):
    """BUG (subtle): KL(p_s || p_t) instead of KL(p_t || p_s), by swapping the arguments of ``kl_div``.

    The reverse KL is mode-seeking: the student is no longer pushed to put mass on every class the teacher
    considers plausible, which is the dark knowledge KD is meant to transfer.
    """
    t = temperature
    log_p_t = F.log_softmax(teacher_logits / t, dim=-1)
    return F.kl_div(log_p_t, F.softmax(student_logits / t, dim=-1), reduction="batchmean") * t * t


def negated_ce_loss(student_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BUG: ``-F.cross_entropy(...)``, a sign copied from the ``-sum y log p`` formula that CE already has.

    Minimising it *maximises* the cross-entropy: the student learns to be confidently wrong.
    """
    return -F.cross_entropy(student_logits, targets)


# name -> (buggy function, one-line diagnosis) for tables in lesson 01.
BUGS = {
    "KLDivLoss on raw logits": (kd_kl_on_raw_logits, "input must be log-probabilities (log_softmax)"),
    'reduction="mean"': (kd_mean_reduction, 'divides by batch*K; use reduction="batchmean"'),
    "missing T^2": (kd_missing_t2, "soft-term gradients shrink as 1/T^2"),
    "KL in the wrong direction": (
        kd_wrong_direction,
        "KL(p_s||p_t) is mode-seeking; distil with KL(p_t||p_s)",
    ),
}

# The hard-label bug takes labels instead of teacher logits, so it has its own table.
CE_BUGS = {
    "negated cross-entropy": (
        negated_ce_loss,
        "F.cross_entropy already is -log p_y; minimising -CE maximises the error",
    ),
}


class NegatedCE(Distiller):
    """``negated_ce_loss`` as a training method for ``labkit.fit``, to watch the bug train (lesson 01).

    Register it for one experiment only: ``lk.METHODS["negated_ce"] = NegatedCE``. The loss is unbounded
    below (``-CE -> -inf`` as the student pushes the true class's probability to 0), so the training loss keeps
    falling while accuracy collapses to chance or below.
    """

    needs_teacher = False

    def forward(self, s_logits, y, t_logits=None, s_feats=None, t_feats=None):
        labelled = y >= 0  # (B,): unlabelled examples (-1) carry no label to get wrong
        return negated_ce_loss(s_logits[labelled].float(), y[labelled])
