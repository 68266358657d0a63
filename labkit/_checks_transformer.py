"""Exercise check for lesson 04 (transformer KD): MiniLM's attention term with padding, re-exported by
``labkit.checks``; same machinery and conventions as the checks there (``check_function`` with hints)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ._grading import DIVERGENCES, check_function, refuses
from .losses import attention_rows_kl

__all__ = ["check_attention_kl"]


def _attention_case(seed: int, b: int = 3, h: int = 2, length: int = 6) -> tuple[torch.Tensor, ...]:
    """Student and teacher attention probabilities ``(B, H, L, L)`` of a padded batch, and its mask ``(B, L)``:
    example ``i`` has ``i`` padding tokens at the end, which no real query attends to (as in a model)."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, length)
    for i in range(b):
        if i:
            mask[i, -i:] = 0
    keys = mask[:, None, None, :].bool()  # (B, 1, 1, L)
    maps = []
    for _ in range(2):
        scores = 2.0 * torch.randn(b, h, length, length, generator=g)
        maps.append(scores.masked_fill(~keys, float("-inf")).softmax(-1))
    return maps[0], maps[1], mask


@refuses(attention_rows_kl, *DIVERGENCES)
def check_attention_kl(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``fn(student_attn, teacher_attn, attention_mask)``: attention probabilities ``(B, H, L, L)`` (query, key)
    and a ``(B, L)`` mask -> ``KL(A_t || A_s)`` per row (one query token's distribution over the keys), averaged
    over the rows of real query tokens and the heads (``lk.attention_rows_kl``)."""

    def rows_kl(a_s, a_t, mask, log_input=True):
        rows_s, rows_t = (a.transpose(1, 2)[mask.bool()].flatten(0, 1) for a in (a_s, a_t))
        inp = rows_s.clamp_min(1e-12).log() if log_input else rows_s
        return F.kl_div(inp, rows_t, reduction="batchmean")

    check_function(
        "check_attention_kl",
        fn,
        attention_rows_kl,
        [_attention_case(60), _attention_case(61, b=4, length=5)],
        {
            "averaged over every query row, padding included: keep only the rows of real tokens "
            "(attention_mask == 1), whose distributions the model really uses": lambda s, t, m: rows_kl(
                s, t, torch.ones_like(m)
            ),
            "compared columns instead of rows: a row is one query token's distribution over the keys, "
            "attn[b, h, i, :], and it sums to 1": lambda s, t, m: rows_kl(
                s.transpose(2, 3), t.transpose(2, 3), m
            ),
            "KL in the wrong direction: KL(A_t || A_s) weights each key by the teacher's attention": (
                lambda s, t, m: rows_kl(t, s, m)
            ),
            'divided by the number of keys too (reduction="mean"): average over rows only ("batchmean")': (
                lambda s, t, m: attention_rows_kl(s, t, m) / s.shape[-1]
            ),
            "passed probabilities as F.kl_div's input: it expects the student's log-probabilities (rows.log())": (
                lambda s, t, m: rows_kl(s, t, m, log_input=False)
            ),
        },
        scalar=True,
        grad_arg=0,
    )
