"""Exercise checks for lessons 09-10 (language models), re-exported by ``labkit.checks``: the reverse KL over a
padded batch, GKD's generalized JSD, one on-policy step, and many experts' targets mixed per window. Same machinery as the other checks
(``check_function`` with hints for the classic mistakes, ``ExerciseError`` on a wrong answer)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ._grading import DIVERGENCES, ExerciseError, _call, check_function, refuses
from .lm import (
    Generations,
    _completion_logits,
    distill_step,
    generalized_jsd,
    on_policy_step,
    sample_divergence,
    token_kl,
)
from .lm_train import mixture_logits, routed_teacher_logits

__all__ = ["check_expert_mixture", "check_generalized_jsd", "check_masked_reverse_kl", "check_on_policy_step"]


def _lm_case(seed: int, b: int = 3, length: int = 5, vocab: int = 7) -> tuple[torch.Tensor, ...]:
    """Student and teacher logits ``(B, L, V)`` of a padded batch and its mask ``(B, L)``: sequence ``i`` ends
    with ``i`` padding positions, whose logits are garbage (large), as a model's are."""
    g = torch.Generator().manual_seed(seed)
    s, t = (2.0 * torch.randn(b, length, vocab, generator=g) for _ in range(2))
    mask = torch.ones(b, length)
    for i in range(1, b):
        mask[i, -i:] = 0
        s[i, -i:] *= 5.0
        t[i, -i:] = -t[i, -i:] * 5.0
    return s, t, mask


def _rows_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per position, ``(B, L)``."""
    log_p, log_q = F.log_softmax(p_logits, -1), F.log_softmax(q_logits, -1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


@refuses(token_kl, *DIVERGENCES)
def check_masked_reverse_kl(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``fn(student_logits, teacher_logits, mask)``: logits ``(B, L, V)`` and a ``(B, L)`` mask (1 = real token)
    -> the reverse KL(p_S || p_T) of each real position, averaged over the real tokens (``lk.lm.token_kl(...,
    direction="reverse")``)."""
    check_function(
        "check_masked_reverse_kl",
        fn,
        lambda s, t, m: token_kl(s, t, m, direction="reverse"),
        [_lm_case(90), _lm_case(91, b=4, length=6, vocab=5)],
        {
            "averaged over every position, padding included: keep only the real tokens (mask == 1); padded "
            "positions are garbage and their number changes with the batch": lambda s, t, m: _rows_kl(
                s, t
            ).mean(),
            "zeroed the padded positions but divided by all positions: divide by the number of real tokens, "
            "mask.sum()": lambda s, t, m: (_rows_kl(s, t) * m).sum() / m.numel(),
            'divided by the number of sequences (F.kl_div\'s "batchmean" on (B, L, V)): a long sequence then '
            "weighs more; average over the real tokens": lambda s, t, m: (
                (_rows_kl(s, t) * m).sum() / m.shape[0]
            ),
            "computed the forward KL(p_T || p_S): the reverse KL weights each token by the STUDENT's probability, "
            "F.kl_div(teacher_log_probs, student_log_probs, log_target=True)": lambda s, t, m: token_kl(
                s, t, m
            ),
            "summed over the tokens: average over the real tokens (divide by mask.sum())": lambda s, t, m: (
                _rows_kl(s, t) * m
            ).sum(),
        },
        scalar=True,
        grad_arg=0,
    )


@refuses(generalized_jsd, *DIVERGENCES)
def check_generalized_jsd(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> None:
    """``fn(student_logits, teacher_logits, beta)``: logits ``(N, V)`` (one row per token), ``0 < beta < 1`` ->
    ``beta KL(p_T || m) + (1 - beta) KL(p_S || m)`` with ``m = beta p_T + (1 - beta) p_S``, averaged over the
    rows (GKD's Eq. 1, TRL's ``generalized_jsd_loss``, ``lk.lm.generalized_jsd``)."""

    def rows(s, t):
        return s[:, None], t[:, None]  # (N, V) -> (N, 1, V) for lk.lm's (batch, seq, vocab) convention

    def jsd(s, t, beta, mix_logits=False, weights=None):
        log_s, log_t = F.log_softmax(s, -1), F.log_softmax(t, -1)
        if mix_logits:
            log_m = F.log_softmax(beta * t + (1 - beta) * s, -1)
        else:
            log_m = torch.logsumexp(
                torch.stack(
                    [log_t + torch.log(torch.tensor(beta)), log_s + torch.log1p(torch.tensor(-beta))]
                ),
                0,
            )
        wt, ws = weights or (beta, 1 - beta)
        kl_t = (log_t.exp() * (log_t - log_m)).sum(-1)
        kl_s = (log_s.exp() * (log_s - log_m)).sum(-1)
        return (wt * kl_t + ws * kl_s).mean()

    g = torch.Generator().manual_seed(92)
    cases = [
        (2.0 * torch.randn(6, 5, generator=g), 2.0 * torch.randn(6, 5, generator=g), b)
        for b in (0.3, 0.5, 0.8)
    ]
    check_function(
        "check_generalized_jsd",
        fn,
        lambda s, t, beta: generalized_jsd(*rows(s, t), beta=beta),
        cases,
        {
            "swapped beta and 1 - beta: beta weights the TEACHER, in the mixture m = beta p_T + (1 - beta) p_S and "
            "on KL(p_T || m)": lambda s, t, beta: generalized_jsd(*rows(s, t), beta=1 - beta),
            "mixed the logits (or log-probabilities) instead of the probabilities: m = beta p_T + (1 - beta) p_S "
            "is a mixture of distributions; in log space it is a logsumexp": lambda s, t, beta: jsd(
                s, t, beta, mix_logits=True
            ),
            "weighted the two KL terms equally (the symmetric JSD): GKD weights KL(p_T || m) by beta and "
            "KL(p_S || m) by 1 - beta": lambda s, t, beta: jsd(s, t, beta, weights=(0.5, 0.5)),
            "summed over the rows: average over the tokens (rows)": lambda s, t, beta: generalized_jsd(
                *rows(s, t), beta=beta, reduction="sum"
            ),
        },
        scalar=True,
        grad_arg=0,
    )


def _policy_case(seed: int):
    """A tiny student and teacher (GPT-2 configs, 11 ids) and student samples: prompts of 3 ids, completions of
    4, the second one ended early by the end-of-sequence id 2 and padded."""
    from .lm_train import build_gpt

    student = build_gpt(11, 8, 1, 8, 2, seed=seed)
    teacher = build_gpt(11, 8, 1, 16, 2, seed=seed + 1)
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(3, 11, (3, 7), generator=g)
    seq[1, 4], seq[1, 5:] = 2, 0  # EOS, then padding
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[1, 5:] = 0
    return student, teacher, Generations(seq, mask, 3)


def _reference_step(
    student, teacher, gens, optimizer, shift=0, forward=False, prompt_too=False, teacher_grad=False
):
    with torch.set_grad_enabled(teacher_grad):
        t = _completion_logits(teacher, gens)
    s = _completion_logits(student, gens)
    mask = gens.completion_mask
    if shift:  # logits of position i scored against token i (one position late)
        s, t = (
            student(gens.sequences).logits[:, gens.prompt_length :],
            teacher(gens.sequences).logits[:, gens.prompt_length :].detach(),
        )
    if prompt_too:
        s = student(gens.sequences).logits[:, :-1]
        t = teacher(gens.sequences).logits[:, :-1].detach()
        mask = gens.attention_mask[:, 1:]
    loss = token_kl(s, t, mask, direction="forward" if forward else "reverse")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


# _completion_logits: the logits that predict the completion, the position shift this check grades
@refuses(distill_step, on_policy_step, sample_divergence, _completion_logits, _reference_step, *DIVERGENCES)
def check_on_policy_step(fn: Callable) -> None:
    """``fn(student, teacher, gens, optimizer)``: ``gens`` are the student's own samples (``lk.lm.Generations``:
    ``sequences``, ``attention_mask``, ``prompt_length``, ``completion_mask``). One on-policy step, GKD with
    beta = 1: the teacher's and the student's next-token logits at every completion position (the logits at
    position ``i`` predict token ``i + 1``: positions ``prompt_length - 1`` to the next-to-last), the reverse
    KL(p_S || p_T) averaged over the completion tokens, the teacher held fixed, one optimizer step. Return the
    loss (detached). The check compares your loss and the student's weights after the step with the reference."""
    for seed in (93, 94):
        student, teacher, gens = _policy_case(seed)
        ref_s, ref_t = copy.deepcopy(student), copy.deepcopy(teacher)
        opt = torch.optim.SGD(student.parameters(), lr=0.5)
        teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
        out = _call("check_on_policy_step", fn, [student, teacher, gens, opt])
        if not torch.is_tensor(out) or out.dim() != 0:
            raise ExerciseError("check_on_policy_step: return the loss, a 0-dim tensor (loss.detach()).")
        if any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in teacher.parameters()):
            raise ExerciseError(
                "check_on_policy_step: gradients reached the teacher: compute its logits under torch.no_grad() "
                "(the teacher is fixed; only the student learns)."
            )
        if any(not torch.equal(v, teacher_before[k]) for k, v in teacher.state_dict().items()):
            raise ExerciseError(
                "check_on_policy_step: the teacher's weights changed: the optimizer must hold the student's only."
            )
        mistakes = {
            "used the forward KL(p_T || p_S): on-policy GKD with beta = 1 uses the reverse KL(p_S || p_T), mode "
            "seeking on the student's own samples": dict(forward=True),
            "scored the logits one position late: the logits at position i predict token i + 1, so the completion "
            "tokens are predicted by positions prompt_length - 1 ... -2 (logits[:, P - 1 : -1])": dict(
                shift=1
            ),
            "distilled over the prompt too: only the completion tokens (completion_mask) are the student's own "
            "samples": dict(prompt_too=True),
        }
        expected = _reference_step(ref_s, ref_t, gens, torch.optim.SGD(ref_s.parameters(), lr=0.5))
        same_w = all(
            torch.allclose(a, b, atol=1e-5) for a, b in zip(student.parameters(), ref_s.parameters())
        )
        if torch.allclose(out.float(), expected, atol=1e-5) and same_w:
            continue
        for hint, kw in mistakes.items():
            s2, t2, _ = _policy_case(seed)
            wrong = _reference_step(s2, t2, gens, torch.optim.SGD(s2.parameters(), lr=0.5), **kw)
            if torch.allclose(out.float(), wrong, atol=1e-5):
                raise ExerciseError(f"check_on_policy_step: {hint}.")
        if torch.allclose(out.float(), expected, atol=1e-5):
            raise ExerciseError(
                "check_on_policy_step: the loss is right but the student's weights after the step are not: call "
                "optimizer.zero_grad(), loss.backward() and optimizer.step() once each."
            )
        raise ExerciseError(
            f"check_on_policy_step: loss {float(out):.5f}, expected {float(expected):.5f} (seed {seed})."
        )
    print("OK  check_on_policy_step: one on-policy step matches the reference (loss and weights)")


@refuses(mixture_logits, routed_teacher_logits)
def check_expert_mixture(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """``fn(expert_logits, weights)``: logits ``(K, N, V)`` of K experts on N positions, weights ``(N, K)`` (each
    row sums to 1; one-hot rows route a position to one expert) -> the log-probabilities ``(N, V)`` of the
    mixture ``sum_k weights[:, k] p_k`` (lesson 10, ``lk.lm.mixture_logits``)."""

    def ref(z, w):
        return mixture_logits([zk[:, None] for zk in z], w)[:, 0]

    g = torch.Generator().manual_seed(10)
    cases = []
    for k, n, v, one_hot in ((3, 6, 5, False), (2, 5, 4, True), (3, 4, 6, True)):
        z = 3.0 * torch.randn(k, n, v, generator=g)
        if one_hot:
            w = F.one_hot(torch.randint(0, k, (n,), generator=g), k).float()
        else:
            w = torch.rand(n, k, generator=g).softmax(-1)
        cases.append((z, w))
    check_function(
        "check_expert_mixture",
        fn,
        ref,
        cases,
        {
            "averaged the logits: a mixture of experts averages their PROBABILITIES (softmax each expert, weight, "
            "sum, then log); averaged logits are a product of experts, another distribution": lambda z, w: (
                (w.T[:, :, None] * z).sum(0).log_softmax(-1)
            ),
            "averaged the log-probabilities: weight the probabilities, then take the log (log of a sum, not a sum "
            "of logs)": lambda z, w: (w.T[:, :, None] * z.log_softmax(-1)).sum(0),
            "ignored the weights (a plain mean over the experts): each position takes its own weights, "
            "weights[:, k] for expert k": lambda z, w: z.softmax(-1).mean(0).log(),
            "returned probabilities: the targets are LOG-probabilities (take the log of the mixture)": lambda z, w: (
                (w.T[:, :, None] * z.softmax(-1)).sum(0)
            ),
        },
    )
