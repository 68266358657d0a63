"""The classic distillation bugs, reproduced on purpose so lesson 01 can show why each one fails.

Each function is a faithful copy of a mistake that appears in published tutorials. They run without error
and return plausible-looking numbers, which is exactly why they survive review. Never train with them in place
of the loss you meant; the correct versions are in ``labkit.losses``. ``tests/test_pitfalls.py`` checks that
each one really differs from the intended loss, in the way lesson 01 says.

One of them is a bug only by accident: ``kd_wrong_direction`` computes the reverse KL ``KL(p_s || p_t)``, a
legitimate, mode-seeking objective that distillation of generative models chooses on purpose (MiniLLM, Gu et
al., 2024; GKD, Agarwal et al., 2024). It is a bug when Hinton's forward ``KL(p_t || p_s)`` was meant and the
arguments of ``F.kl_div`` were swapped.
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
    r"""BUG when you meant Hinton's KD: the arguments of ``F.kl_div`` swapped by accident, which gives the reverse
    KL instead of the forward one.

    .. math::  T^2 \cdot \frac{1}{B} \sum_b KL\big(p_s^T(b) \,\|\, p_t^T(b)\big)
               = T^2 \cdot \frac{1}{B} \sum_b \sum_k p_s^T(b)_k \big(\log p_s^T(b)_k - \log p_t^T(b)_k\big)

    ``F.kl_div(input, target)`` is ``KL(target || input)`` with ``input`` as log-probabilities, so passing the
    teacher's log-probabilities as ``input`` and the student's probabilities as ``target`` computes
    ``KL(p_s || p_t)``. Shapes: logits ``(B, K)`` -> scalar.

    The reverse KL is a different objective, not a broken one. It is *mode-seeking*: the student is free to
    put its mass on the teacher's main modes and ignore classes the teacher finds merely plausible. Hinton et
    al.'s (2015) forward ``KL(p_t || p_s)`` is *mass-covering*: it punishes every plausible class the student
    misses, which is the dark knowledge classifier KD transfers. Generative students choose the reverse KL on
    purpose: MiniLLM (Gu et al., 2024, "MiniLLM: Knowledge Distillation of Large Language Models") minimises
    it over the student's own sampled sequences so a small language model does not spread probability over
    text the teacher finds unlikely, and GKD (Agarwal et al., 2024, "On-Policy Distillation of Language Models:
    Learning from Self-Generated Mistakes") treats forward KL, reverse KL and the generalised JSD between them
    as a choice. It is a bug only when you meant the forward KL and swapped the arguments.
    """
    t = temperature
    log_p_t = F.log_softmax(teacher_logits / t, dim=-1)
    return F.kl_div(log_p_t, F.softmax(student_logits / t, dim=-1), reduction="batchmean") * t * t


def negated_ce_loss(student_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BUG: ``-F.cross_entropy(...)``, a sign copied from the ``-sum y log p`` formula that CE already has.

    Minimising it *maximises* the cross-entropy: the student learns to be confidently wrong.
    """
    return -F.cross_entropy(student_logits, targets)


# name -> (buggy function, one-line diagnosis) for tables in lesson 01. Each is a bug against the loss meant:
# Hinton's KD with the forward KL(p_t || p_s).
BUGS = {
    "KLDivLoss on raw logits": (kd_kl_on_raw_logits, "input must be log-probabilities (log_softmax)"),
    'reduction="mean"': (kd_mean_reduction, 'divides by batch*K; use reduction="batchmean"'),
    "missing T^2": (kd_missing_t2, "soft-term gradients shrink as 1/T^2"),
    "KL in the wrong direction": (
        kd_wrong_direction,
        "swapped kl_div arguments give the reverse KL(p_s||p_t): mode-seeking, a deliberate choice for "
        "generative students (MiniLLM, GKD), a bug when you meant Hinton's KL(p_t||p_s)",
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
