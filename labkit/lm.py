r"""Distilling causal language models: token-level divergences over next-token distributions, top-k teacher
storage, the shared-vocabulary check, sequence-level data and one on-policy step.

A causal LM's output at position ``i`` is a distribution over the vocabulary for token ``i + 1``, so logits
are ``(batch, seq, vocab)`` and one sequence gives ``seq`` classification problems at once. Every divergence
here is summed over the vocabulary and **averaged over the real (unmasked) tokens**; padding is never counted.
That is what TRL's ``DistillationTrainer`` and ``GKDTrainer.generalized_jsd_loss(labels=...)`` compute
(``tests/test_lm.py`` checks the equality on fixed inputs).

Conventions, the same as TRL's: the temperature divides both sets of logits and there is **no** ``T**2``
factor (multiply by it yourself for Hinton's gradient scale, as ``lk.kd_kl_loss`` does); the teacher side is
detached; the arithmetic runs in float32.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from ._validate import _is_number, check_choice, check_finite, check_positive_int, check_temperature

__all__ = [
    "DIRECTIONS",
    "Generations",
    "TopK",
    "check_same_vocab",
    "distill_step",
    "distinct_n",
    "generalized_jsd",
    "generate",
    "on_policy_step",
    "sequence_kd_data",
    "sample_divergence",
    "sample_entropy",
    "sequence_logprob",
    "token_kl",
    "topk_kl",
    "topk_teacher_logprobs",
]


# ---- input checks ------------------------------------------------------------------------------------------
def _check_seq_logits(logits: Any, name: str) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (batch, seq, vocab), got {type(logits).__name__}."
        )
    if logits.dim() != 3 or not logits.is_floating_point():
        raise ValueError(
            f"{name} must be a floating tensor of shape (batch, seq, vocab) (a causal LM's .logits), got shape "
            f"{tuple(logits.shape)} and dtype {logits.dtype}. For (batch, num_classes) logits use lk.kd_kl_loss."
        )
    return check_finite(logits, name, allow_neg_inf=True)


def _check_pair(student_logits: Any, teacher_logits: Any) -> None:
    s = _check_seq_logits(student_logits, "student_logits").shape
    t = _check_seq_logits(teacher_logits, "teacher_logits").shape
    if s[-1] != t[-1]:
        raise ValueError(
            f"teacher_logits cover {t[-1]} vocabulary entries but student_logits {s[-1]}: token-level KD compares "
            "p_T(v | x) and p_S(v | x) entry by entry, so entry v must be the same token in both. If one vocabulary "
            "is only padded (e.g. 50257 real tokens padded to 50304), n = lm.check_same_vocab(teacher, student, "
            "tokenizer) and slice both: logits[..., :n]. Different tokenizers cannot be compared this way."
        )
    if s != t:
        raise ValueError(
            f"student_logits {tuple(s)} and teacher_logits {tuple(t)} differ in (batch, seq): both models must be "
            "run on the same input_ids (same prompts, same padding, same shift)."
        )


def _token_mask(mask: Any, batch: int, seq: int) -> torch.Tensor:
    """(batch, seq) bool/0-1 -> bool; None -> every token. All padding is an error, not a silent 0 or NaN."""
    if mask is None:
        return torch.ones(batch, seq, dtype=torch.bool)
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != (batch, seq):
        got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a tensor of shape (batch, seq) = ({batch}, {seq}), got {got}.")
    if mask.dtype != torch.bool:
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(
                "mask must hold 0/1 or True/False (1 = real token, 0 = padding), got other values, e.g. "
                f"{mask[(mask != 0) & (mask != 1)][:3].tolist()}. Labels with -100 for padding: pass labels != -100."
            )
        mask = mask != 0
    if not bool(mask.any()):
        raise ValueError(
            "mask selects no token: every position is padding (mask is all 0), so there is nothing to average. "
            "Check the padding side and that completions are not empty."
        )
    return mask


def _f32(z: torch.Tensor) -> torch.Tensor:
    """At least float32 (fp16/bf16 logits overflow in exp); float64 stays float64."""
    return z.to(torch.promote_types(z.dtype, torch.float32))


def _select(student_logits, teacher_logits, mask, temperature):
    """Unmasked rows only, as float32 log-probabilities at temperature T: ``(N, V)`` each."""
    _check_pair(student_logits, teacher_logits)
    t = check_temperature(temperature)
    keep = _token_mask(mask, *student_logits.shape[:2]).to(student_logits.device)
    s, te = _f32(student_logits[keep]), _f32(teacher_logits.detach()[keep])  # (N, V)
    for name, z in (("student_logits", s), ("teacher_logits", te)):
        if bool(torch.isneginf(z).all(-1).any()):
            raise ValueError(
                f"{name} are -inf over the whole vocabulary at an unmasked token: no distribution."
            )
    return F.log_softmax(s / t, dim=-1), F.log_softmax(te / t, dim=-1)


def _kl_rows(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per row, sum_v p (log p - log q), with 0 log 0 = 0 and no NaN gradient where p = 0."""
    absent = torch.isneginf(log_p)  # p(v) = 0: contributes nothing, whatever q(v) is
    lp, lq = log_p.masked_fill(absent, 0.0), log_q.masked_fill(absent, 0.0)
    return (log_p.exp() * (lp - lq)).sum(-1)  # (N,)


def _reduce(per_token: torch.Tensor, reduction: str) -> torch.Tensor:
    check_choice(reduction, ("mean", "sum"), "reduction")
    if not bool(torch.isfinite(per_token).all()):
        raise ValueError(
            "the divergence is infinite: one model gives probability 0 (a -inf logit) to a token the other "
            "model assigns probability to. Padded vocabulary slots are the usual cause: slice both logits to the "
            "shared vocabulary (lm.check_same_vocab), or use generalized_jsd with 0 < beta < 1, which stays finite."
        )
    return per_token.mean() if reduction == "mean" else per_token.sum()


# ---- token-level divergences -------------------------------------------------------------------------------
#: direction -> per-token divergence of (student log-probs, teacher log-probs)
DIRECTIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "forward": lambda log_s, log_t: _kl_rows(log_t, log_s),  # KL(p_T || p_S): mode covering
    "reverse": lambda log_s, log_t: _kl_rows(log_s, log_t),  # KL(p_S || p_T): mode seeking
}


def token_kl(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mask: torch.Tensor | None = None,
    temperature: float = 1.0,
    direction: str = "forward",
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Per-token KL between next-token distributions, averaged over the unmasked tokens.

    .. math::  L = \frac{1}{|M|} \sum_{(b,i) \in M} KL\big(p_T(\cdot \mid x_{<i}) \,\|\, p_S(\cdot \mid x_{<i})\big)
               \quad \text{(forward)}, \qquad p = \mathrm{softmax}(z / T)

    ``direction="forward"``: KL(p_T || p_S), the word-level KD of Kim & Rush (2016) and DistilGPT-2 (Sanh et al.,
    2019), Hinton et al.'s (2015) soft targets per token; it is mode covering (the student spreads mass over
    every token the teacher allows). ``"reverse"``: KL(p_S || p_T), mode seeking (the student may drop some of
    the teacher's modes but puts no mass where the teacher has none), the objective of MiniLLM (Gu et al.,
    2024). MiniLLM optimises the *sequence-level* reverse KL with a policy gradient; this is its token-level
    form, exact over the vocabulary, which is what GKD / TRL use on student samples (``on_policy_step``).

    Shapes: logits ``(batch, seq, vocab)``, ``mask`` ``(batch, seq)`` bool or 0/1 (1 = real token, 0 = padding;
    ``None`` = every token) -> scalar. ``reduction="sum"`` returns the sum over tokens (divide by the global
    token count yourself under gradient accumulation). Equal to ``generalized_jsd`` with beta 0 (forward) or 1
    (reverse). Pitfalls avoided: padding in the average, ``batchmean`` over sequences (TRL without labels
    divides by the batch size, not the token count), NaN from ``0 * log 0`` where a logit is -inf.
    """
    check_choice(direction, DIRECTIONS, "direction")
    log_s, log_t = _select(student_logits, teacher_logits, mask, temperature)  # (N, V) each
    return _reduce(DIRECTIONS[direction](log_s, log_t), reduction)


def _check_beta(beta: float) -> float:
    if not _is_number(beta) or not math.isfinite(beta) or not 0.0 <= beta <= 1.0:
        raise ValueError(
            f"beta must be a number in [0, 1] (0 = forward KL(teacher || student), 1 = reverse KL(student || "
            f"teacher), 0.5 = symmetric JSD), got {beta!r}."
        )
    return float(beta)


def generalized_jsd(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mask: torch.Tensor | None = None,
    beta: float = 0.5,
    temperature: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""GKD's generalized Jensen-Shannon divergence per token (Agarwal et al., 2024, "On-Policy Distillation of
    Language Models: Learning from Self-Generated Mistakes", Eq. 1), averaged over the unmasked tokens.

    .. math::  JSD(\beta) = \beta\, KL(p_T \,\|\, m) + (1 - \beta)\, KL(p_S \,\|\, m),
               \qquad m = \beta\, p_T + (1 - \beta)\, p_S

    The endpoints follow TRL (``GKDTrainer.generalized_jsd_loss``, ``DistillationTrainer``): ``beta=0`` is the
    forward KL(p_T || p_S) and ``beta=1`` the reverse KL(p_S || p_T). These are the limits of JSD(beta) / beta
    and JSD(beta) / (1 - beta); JSD(beta) itself tends to 0 at both ends (about ``beta * KL(p_T || p_S)`` near
    0), so the loss scale jumps between beta=0.01 and beta=0: compare betas by their gradients' effect, not by
    the loss value. ``0 < beta < 1`` stays finite even where one model gives a token probability 0.

    Shapes and reduction as ``token_kl``; equal to TRL's ``generalized_jsd_loss(s, t, labels, beta, T)`` with
    ``mask = labels != -100`` (TRL's default reduction without labels divides by the batch size instead).
    """
    b = _check_beta(beta)
    log_s, log_t = _select(student_logits, teacher_logits, mask, temperature)  # (N, V) each
    if b in (0.0, 1.0):
        return _reduce(DIRECTIONS["forward" if b == 0.0 else "reverse"](log_s, log_t), reduction)
    both_zero = torch.isneginf(log_s) & torch.isneginf(log_t)  # logsumexp(-inf, -inf) has a NaN gradient
    log_m = torch.logsumexp(
        torch.stack(
            [
                log_s.masked_fill(both_zero, 0.0) + math.log1p(-b),
                log_t.masked_fill(both_zero, 0.0) + math.log(b),
            ]
        ),
        dim=0,
    )  # (N, V): log of the mixture beta * p_T + (1 - beta) * p_S
    return _reduce(b * _kl_rows(log_t, log_m) + (1 - b) * _kl_rows(log_s, log_m), reduction)


# ---- top-k teacher outputs ---------------------------------------------------------------------------------
class TopK(NamedTuple):
    """A teacher's ``k`` most likely next tokens: true log-probabilities (full softmax, not renormalised) and
    vocabulary indices, both ``(batch, seq, k)``. Store ``logprobs.half()`` and ``indices.int()`` on disk:
    ``k / vocab`` of the dense logits."""

    logprobs: torch.Tensor
    indices: torch.Tensor

    @property
    def coverage(self) -> torch.Tensor:
        """The teacher probability mass the top-k keep, per token ``(batch, seq)`` (1 = nothing dropped)."""
        return self.logprobs.float().exp().sum(-1)


def topk_teacher_logprobs(teacher_logits: torch.Tensor, k: int, temperature: float = 1.0) -> TopK:
    """The teacher's top-``k`` log-probabilities log softmax(z / T) and their indices, per token.

    Shapes: ``(batch, seq, vocab)`` -> ``TopK`` of two ``(batch, seq, k)`` tensors, sorted most likely first.
    Storing these instead of the dense logits is how teacher outputs are cached for offline token-level KD
    (sparse KD); ``topk_kl`` is the loss against them, ``TopK.coverage`` what the truncation drops."""
    z = _f32(_check_seq_logits(teacher_logits, "teacher_logits").detach())  # (B, S, V)
    v = z.shape[-1]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= v:
        raise ValueError(f"k must be an integer in [1, {v}] (the vocabulary size), got {k!r}.")
    values, indices = torch.topk(F.log_softmax(z / check_temperature(temperature), dim=-1), k, dim=-1)
    return TopK(values, indices)


def topk_kl(
    student_logits: torch.Tensor,
    teacher_topk: TopK,
    mask: torch.Tensor | None = None,
    temperature: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Forward KL from the teacher's stored top-k, renormalised over those k tokens, to the student.

    .. math::  \tilde p_T(v) = \frac{p_T(v)}{\sum_{u \in K} p_T(u)} \ (v \in K), \qquad
               L = \frac{1}{|M|} \sum_{M} \sum_{v \in K} \tilde p_T(v)\, \big(\log \tilde p_T(v) - \log p_S(v)\big)

    The student keeps its full softmax over the vocabulary, so the loss is a true KL(p~_T || p_S) >= 0: it
    pulls the student's mass into the teacher's top-k, and the teacher's mass outside them (``1 - coverage``)
    is dropped. With ``k = vocab`` it equals ``token_kl(direction="forward")``. Use the same temperature as
    ``topk_teacher_logprobs``. Shapes: ``(batch, seq, vocab)``, ``TopK`` of ``(batch, seq, k)``, mask
    ``(batch, seq)`` -> scalar.
    """
    if not isinstance(teacher_topk, TopK):
        raise TypeError(
            f"teacher_topk must be the TopK that topk_teacher_logprobs returns, got {type(teacher_topk).__name__}."
        )
    s = _check_seq_logits(student_logits, "student_logits")
    lp, idx = teacher_topk.logprobs, teacher_topk.indices
    if lp.shape != idx.shape or lp.shape[:2] != s.shape[:2] or lp.dim() != 3:
        raise ValueError(
            f"teacher_topk has shape {tuple(lp.shape)} but student_logits {tuple(s.shape)}: the top-k must come from "
            "the teacher on the same input_ids, (batch, seq, k)."
        )
    if int(idx.min()) < 0 or int(idx.max()) >= s.shape[-1]:
        raise ValueError(f"teacher_topk indices must lie in [0, {s.shape[-1]}) (the student's vocabulary).")
    keep = _token_mask(mask, *s.shape[:2]).to(s.device)
    log_s = F.log_softmax(_f32(s[keep]) / check_temperature(temperature), dim=-1)  # (N, V)
    log_t = F.log_softmax(_f32(lp[keep]), dim=-1)  # (N, k): renormalised over the top-k
    return _reduce(_kl_rows(log_t, log_s.gather(-1, idx[keep].long())), reduction)


# ---- one vocabulary ----------------------------------------------------------------------------------------
_ONE_VOCAB = (
    "Token-level KD compares p_T(v | x) and p_S(v | x) entry by entry, so id v must be the same token in both and "
    "the same text must be cut into the same tokens. Use a student of the teacher's family with its tokenizer (e.g. "
    "SmolLM2-360M -> SmolLM2-135M), or distil through text instead (lm.sequence_kd_data: the student learns from "
    "teacher generations re-tokenised with its own tokenizer); cross-tokenizer KD (e.g. ULD, Boizard et al. 2024) "
    "is beyond this course."
)


def _width(obj: Any, name: str) -> int:
    """The number of logits a model (or an int) produces."""
    if _is_number(obj) and int(obj) == obj and obj > 0:
        return int(obj)
    head = obj.get_output_embeddings() if hasattr(obj, "get_output_embeddings") else None
    if head is not None and hasattr(head, "weight"):
        return int(head.weight.shape[0])
    size = getattr(getattr(obj, "config", None), "vocab_size", None)
    if isinstance(size, int):
        return size
    raise TypeError(
        f"{name} must be a causal LM (with .config.vocab_size), a tokenizer or an int, got {type(obj).__name__}."
    )


def check_same_vocab(teacher: Any, student: Any, tokenizer: Any = None, student_tokenizer: Any = None) -> int:
    """The vocabulary size ``n`` both models' logits share; ``logits[..., :n]`` is what to distil over.

    ``teacher`` and ``student`` are causal LMs (or their logit widths as ints, or tokenizers). ``tokenizer`` is the
    teacher's (and the student's too, unless ``student_tokenizer`` is given). Rules:

    * two tokenizers must map the same ids to the same tokens; otherwise a ``ValueError`` explains why KD over
      next-token distributions needs one vocabulary and what to do instead. If one only adds tokens at the end
      (e.g. a pad token), ``n`` is the shared prefix and a warning names the extra tokens;
    * logit widths may differ when a vocabulary is padded to a multiple of 64 (GPT-2's 50257 real tokens as 50304
      logits): the padded slots are no tokens, so ``n`` is the real vocabulary, ``len(tokenizer)``. Without a
      tokenizer, different widths are an error (which slots are real cannot be known);
    * a model with fewer logits than the tokenizer has tokens is an error.
    """
    toks = [x for x in (tokenizer, student_tokenizer) if x is not None]
    toks += [x for x in (teacher, student) if hasattr(x, "get_vocab")]
    n = None
    if toks:
        vocabs = [{i: t for t, i in tk.get_vocab().items()} for tk in toks]
        n = min(len(v) for v in vocabs)
        for other in vocabs[1:]:
            bad = [i for i in range(n) if vocabs[0].get(i) != other.get(i)]
            if bad:
                i = bad[0]
                raise ValueError(
                    f"the teacher and student tokenizers differ at {len(bad)} of their first {n} ids (id {i}: "
                    f"{vocabs[0].get(i)!r} vs {other.get(i)!r}). {_ONE_VOCAB}"
                )
        extra = sorted({t for v in vocabs for i, t in v.items() if i >= n})
        if extra:
            warnings.warn(
                f"one tokenizer has {len(extra)} extra tokens at the end ({extra[:5]}); distilling over the "
                f"{n} shared ids. Mask positions whose target is an extra token (e.g. padding).",
                stacklevel=2,
            )
    widths = {
        name: _width(m, name)
        for name, m in (("teacher", teacher), ("student", student))
        if not hasattr(m, "get_vocab")
    }
    if n is None:
        if len(set(widths.values())) > 1:
            raise ValueError(
                f"teacher and student produce different numbers of logits ({widths['teacher']} vs {widths['student']})"
                " and no tokenizer says which are real tokens. If one vocabulary is padded (e.g. 50257 tokens as 50304"
                f" logits), pass tokenizer= to get the real size. {_ONE_VOCAB}"
            )
        return next(iter(widths.values()))
    for name, w in widths.items():
        if w < n:
            raise ValueError(
                f"the {name} has {w} logits but the tokenizer {n} tokens: it was built for another vocabulary. {_ONE_VOCAB}"
            )
    return n


# ---- generations: sequence-level and on-policy KD ----------------------------------------------------------
@dataclass(eq=False)
class Generations:
    """Prompts with their completions: ``sequences`` ``(N, P + C)`` (prompt ids, then the completion, padded
    after its end), ``attention_mask`` ``(N, P + C)`` (0 = left padding of a prompt or padding after the
    end-of-sequence token; the EOS itself counts: stopping is a decision the student learns), ``prompt_length``
    ``P`` and the decoded ``texts`` when a tokenizer was given."""

    sequences: torch.Tensor
    attention_mask: torch.Tensor
    prompt_length: int
    texts: list[str] | None = None

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def completion_mask(self) -> torch.Tensor:
        """``(N, C)``, 1 on completion tokens: the mask for a loss on the completion logits."""
        return self.attention_mask[:, self.prompt_length :]

    @property
    def labels(self) -> torch.Tensor:
        """``(N, P + C)`` Hugging Face labels: the ids, -100 on the prompt and on padding (``model(..., labels=)``
        then trains on the completions only, shifting internally)."""
        labels = self.sequences.masked_fill(self.attention_mask == 0, -100)
        labels[:, : self.prompt_length] = -100
        return labels

    def take(self, idx: torch.Tensor) -> Generations:
        texts = None if self.texts is None else [self.texts[i] for i in idx.tolist()]
        return Generations(self.sequences[idx], self.attention_mask[idx], self.prompt_length, texts)


def _context(model: Any) -> int | None:
    cfg = getattr(model, "config", None)
    for key in ("n_positions", "max_position_embeddings"):
        if isinstance(getattr(cfg, key, None), int):
            return getattr(cfg, key)
    return None


def _prompt_ids(
    model: Any, prompts: Any, tokenizer: Any, max_new_tokens: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts -> (ids, attention_mask), both (N, P), left-padded; checked against the model's context."""
    if isinstance(prompts, torch.Tensor):
        if (
            prompts.dim() != 2
            or prompts.is_floating_point()
            or prompts.shape[0] == 0
            or prompts.shape[1] == 0
        ):
            raise ValueError(
                f"prompts must be token ids of shape (N, P) with N, P >= 1, or a list of str with tokenizer=, got "
                f"shape {tuple(prompts.shape)} and dtype {prompts.dtype}."
            )
        ids, mask = prompts.long(), torch.ones_like(prompts, dtype=torch.long)
    elif isinstance(prompts, Sequence) and prompts and all(isinstance(p, str) for p in prompts):
        if tokenizer is None:
            raise ValueError("prompts are strings: pass tokenizer= (or token ids of shape (N, P)).")
        side, tokenizer.padding_side = (
            tokenizer.padding_side,
            "left",
        )  # completions must follow the prompt directly
        try:
            enc = tokenizer(list(prompts), return_tensors="pt", padding=True)
        finally:
            tokenizer.padding_side = side
        ids, mask = enc["input_ids"], enc["attention_mask"]
    else:
        raise ValueError(
            f"prompts must be a non-empty list of str or a (N, P) tensor of token ids, got {prompts!r:.80}."
        )
    width, ctx = _width(model, "model"), _context(model)
    if int(ids.min()) < 0 or int(ids.max()) >= width:
        raise ValueError(
            f"prompt ids must lie in [0, {width}) (the model's vocabulary), got [{int(ids.min())}, {int(ids.max())}]."
        )
    if ctx is not None and ids.shape[1] + max_new_tokens > ctx:
        raise ValueError(
            f"prompts of {ids.shape[1]} tokens + max_new_tokens={max_new_tokens} exceed the model's context of {ctx} "
            f"positions. Truncate the prompts (keep their last {max(ctx - max_new_tokens, 0)} tokens) or generate fewer tokens."
        )
    return ids, mask


def generate(
    model: Any,
    prompts: torch.Tensor | Sequence[str],
    *,
    tokenizer: Any = None,
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    top_k: int | None = None,
    eos_token_id: int | None = None,
    seed: int | None = None,
    batch_size: int = 64,
) -> Generations:
    """Sample a completion per prompt with ``model.generate`` (any Hugging Face causal LM), in eval mode.

    ``temperature=0`` is greedy decoding (the T -> 0 limit of sampling); ``temperature > 0`` samples from
    softmax(z / T), restricted to the ``top_k`` most likely tokens if given (``None``: the full distribution, as
    on-policy KD needs). A completion ends after ``eos_token_id`` (default: the tokenizer's, else the model's) or after
    ``max_new_tokens``. ``seed`` fixes the samples without touching the global random state. Errors: prompts that
    do not leave ``max_new_tokens`` in the model's context, ids outside its vocabulary, a negative temperature."""
    from transformers import GenerationConfig

    if not callable(getattr(model, "generate", None)):
        raise TypeError(
            f"model must be a Hugging Face causal LM (with .generate), got {type(model).__name__}."
        )
    check_positive_int(max_new_tokens, "max_new_tokens")
    check_positive_int(batch_size, "batch_size")
    if not _is_number(temperature) or not math.isfinite(temperature) or temperature < 0:
        raise ValueError(
            f"temperature must be a finite number >= 0 (0 = greedy decoding, 1 = sample the model's distribution), got {temperature!r}."
        )
    if top_k is not None:
        check_positive_int(top_k, "top_k")
    ids, mask = _prompt_ids(model, prompts, tokenizer, max_new_tokens)
    if eos_token_id is None:  # the tokenizer's, else the model's own if it is one of its tokens
        eos_token_id = getattr(tokenizer, "eos_token_id", None)
        own = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        if eos_token_id is None and isinstance(own, int) and 0 <= own < _width(model, "model"):
            eos_token_id = own
    pad = eos_token_id if eos_token_id is not None else 0
    sample = temperature > 0
    config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=sample, temperature=temperature if sample else None,
        top_k=(top_k or 0) if sample else None, top_p=1.0 if sample else None, eos_token_id=eos_token_id, pad_token_id=pad,
    )  # fmt: skip
    device = next(model.parameters()).device
    was_training, rng = (
        model.training,
        torch.random.fork_rng(devices=[device] if device.type == "cuda" else []),
    )
    model.eval()
    outs = []
    try:
        with rng, torch.no_grad():
            if seed is not None:
                torch.manual_seed(seed)
            for i in range(0, len(ids), batch_size):
                out = model.generate(
                    input_ids=ids[i : i + batch_size].to(device), attention_mask=mask[i : i + batch_size].to(device),
                    generation_config=config,
                )  # fmt: skip
                outs.append(
                    F.pad(
                        out[:, ids.shape[1] :].cpu(),
                        (0, max_new_tokens - out.shape[1] + ids.shape[1]),
                        value=pad,
                    )
                )
    finally:
        model.train(was_training)
    completions = torch.cat(outs)  # (N, C)
    keep = torch.ones_like(completions, dtype=torch.long)
    if eos_token_id is not None:  # 1 up to and including the first EOS, 0 after it
        keep = (
            (completions == eos_token_id).long().cumsum(-1) - (completions == eos_token_id).long() == 0
        ).long()
    texts = (
        None
        if tokenizer is None
        else tokenizer.batch_decode(completions.masked_fill(keep == 0, pad), skip_special_tokens=True)
    )
    return Generations(torch.cat([ids, completions], 1), torch.cat([mask, keep], 1), ids.shape[1], texts)


def _completion_logits(model: Any, gens: Generations) -> torch.Tensor:
    """The logits that predict each completion token: ``(N, C, vocab)``; position i predicts token i + 1."""
    ctx = _context(model)
    if ctx is not None and gens.sequences.shape[1] > ctx:
        raise ValueError(
            f"sequences of {gens.sequences.shape[1]} tokens do not fit the model's context of {ctx} positions: "
            "generate fewer tokens or cut the prompts."
        )
    width = _width(model, "model")
    if int(gens.sequences.min()) < 0 or int(gens.sequences.max()) >= width:
        raise ValueError(
            f"the sequences hold ids in [{int(gens.sequences.min())}, {int(gens.sequences.max())}] but the model has "
            f"{width} logits: they were made with another vocabulary."
        )
    device = next(model.parameters()).device
    mask = gens.attention_mask.to(device)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)  # left-padded prompts start at position 0
    out = model(input_ids=gens.sequences.to(device), attention_mask=mask, position_ids=position_ids)
    return out.logits[:, gens.prompt_length - 1 : -1]


def sequence_kd_data(
    teacher: Any, prompts: torch.Tensor | Sequence[str], **generate_kwargs: Any
) -> Generations:
    """Sequence-level KD data (Kim & Rush, 2016, "Sequence-Level Knowledge Distillation"): the teacher's
    completions of ``prompts``, on which a student is then trained with plain cross-entropy (``labels``).

    Kim & Rush take the teacher's beam-search output, an approximation of its mode; ``temperature=0`` (greedy)
    is the beam-1 version, ``temperature=1`` samples the teacher's distribution (more diverse data). Keyword
    arguments are those of ``generate`` (``seed`` defaults to 0). Completions that end at once (only an EOS) are
    dropped with a warning; if every completion is empty that is an error, not an empty data set."""
    generate_kwargs.setdefault("seed", 0)
    gens = generate(teacher, prompts, **generate_kwargs)
    lengths = gens.completion_mask.sum(-1)
    eos = generate_kwargs.get("eos_token_id") or getattr(
        generate_kwargs.get("tokenizer"), "eos_token_id", None
    )
    first = gens.sequences[:, gens.prompt_length]
    empty = (lengths == 0) | ((lengths == 1) & (first == eos)) if eos is not None else lengths == 0
    if bool(empty.all()):
        raise ValueError(
            f"all {len(gens)} teacher completions are empty (the teacher emits the end-of-sequence token {eos} at "
            "once): check eos_token_id, the prompts (do they end where a text ends?) and the temperature."
        )
    if bool(empty.any()):
        warnings.warn(f"dropped {int(empty.sum())} of {len(gens)} empty teacher completions.", stacklevel=2)
    return gens.take((~empty).nonzero().flatten())


@torch.no_grad()
def sequence_logprob(model: Any, gens: Generations) -> torch.Tensor:
    """Mean per-token log-probability that ``model`` gives each completion, ``(N,)``: with the teacher as
    ``model``, how plausible the teacher finds a student's samples (the quality axis of on-policy KD)."""
    was_training = model.training
    model.eval()
    try:
        logits = _completion_logits(model, gens).float()  # (N, C, V)
    finally:
        model.train(was_training)
    targets = gens.sequences[:, gens.prompt_length :].to(logits.device)
    logp = F.log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (N, C)
    m = gens.completion_mask.to(logp.device).float()
    return (logp * m).sum(-1) / m.sum(-1).clamp(min=1)


@torch.no_grad()
def sample_divergence(
    student: Any, teacher: Any, gens: Generations, direction: str = "forward"
) -> torch.Tensor:
    """Per generation, the mean token-level KL between teacher and student at the completion positions of
    ``gens`` ``(N,)``: with the student's own samples, how far it is from the teacher *where it actually goes*
    when it generates, the contexts that training on real text never shows it (exposure bias). ``direction``:
    ``"forward"`` KL(p_T || p_S), ``"reverse"`` KL(p_S || p_T)."""
    check_choice(direction, DIRECTIONS, "direction")
    n = check_same_vocab(teacher, student)
    if not isinstance(gens, Generations):
        raise TypeError(f"gens must be an lk.lm.Generations, got {type(gens).__name__}.")
    states = student.training, teacher.training
    student.eval()
    teacher.eval()
    try:
        log_s = F.log_softmax(_completion_logits(student, gens)[..., :n].float(), -1)  # (N, C, n)
        log_t = F.log_softmax(_completion_logits(teacher, gens)[..., :n].float(), -1)
    finally:
        student.train(states[0])
        teacher.train(states[1])
    per = DIRECTIONS[direction](log_s.flatten(0, 1), log_t.flatten(0, 1)).view(log_s.shape[:2])  # (N, C)
    m = gens.completion_mask.to(per.device).float()
    if bool((m.sum(-1) == 0).any()):
        raise ValueError("some generations have no completion token: generate at least one token per prompt.")
    return (per * m).sum(-1) / m.sum(-1)


@torch.no_grad()
def sample_entropy(model: Any, gens: Generations) -> torch.Tensor:
    """Per generation, the mean entropy (nats) of ``model``'s next-token distribution at its completion positions,
    ``(N,)``: with a model's own samples, how many continuations it keeps open as it writes. A per-sample
    diversity measure (mode-seeking students lower it); ``distinct_n`` is the pooled one."""
    if not isinstance(gens, Generations):
        raise TypeError(f"gens must be an lk.lm.Generations, got {type(gens).__name__}.")
    was = model.training
    model.eval()
    try:
        log_p = F.log_softmax(_completion_logits(model, gens).float(), -1)  # (N, C, V)
    finally:
        model.train(was)
    ent = -(log_p.exp() * log_p.masked_fill(torch.isneginf(log_p), 0.0)).sum(-1)  # (N, C)
    m = gens.completion_mask.to(ent.device).float()
    if bool((m.sum(-1) == 0).any()):
        raise ValueError("some generations have no completion token: generate at least one token per prompt.")
    return (ent * m).sum(-1) / m.sum(-1)


def distinct_n(gens: Generations, n: int = 2) -> float:
    """Distinct-n (Li et al., 2016): the share of the completions' n-grams (tokens) that are unique, over all
    samples together; 1 = no n-gram repeats, near 0 = the same phrases again and again. The diversity axis
    against which mode-seeking objectives (reverse KL) trade quality."""
    check_positive_int(n, "n")
    grams = []
    for row, m in zip(gens.sequences[:, gens.prompt_length :].tolist(), gens.completion_mask.tolist()):
        row = row[: sum(m)]
        grams += [tuple(row[i : i + n]) for i in range(len(row) - n + 1)]
    if not grams:
        raise ValueError(
            f"no completion has {n} tokens: distinct-{n} is undefined. Generate longer completions."
        )
    return len(set(grams)) / len(grams)


def distill_step(
    student: Any,
    teacher: Any,
    gens: Generations,
    optimizer: torch.optim.Optimizer,
    *,
    beta: float = 1.0,
    kd_temperature: float = 1.0,
    tokenizer: Any = None,
) -> dict[str, Any]:
    r"""One gradient step of token-level distillation on given sequences: the teacher scores every completion
    position of ``gens`` with its full next-token distribution (no gradient) and the student steps on

    .. math::  L = \frac{1}{|M|} \sum_{(b,i) \in M} JSD(\beta)\big(p_T(\cdot \mid y_{<i}) \,\|\, p_S(\cdot \mid y_{<i})\big)

    over the completion tokens ``M`` (``generalized_jsd``; ``beta=1`` reverse KL, ``beta=0`` forward KL). On
    real or teacher-written continuations this is *off-policy* (supervised) KD, GKD with lambda = 0; on the
    student's own samples it is the on-policy step (``on_policy_step``). Either way one teacher forward pass
    per step: the two compare at equal teacher calls. Returns ``{"loss", "tokens", "mean_length"}``."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer over the student's parameters, got {type(optimizer).__name__}."
        )
    if not isinstance(gens, Generations):
        raise TypeError(
            f"gens must be an lk.lm.Generations (prompts with completions), got {type(gens).__name__}."
        )
    n = check_same_vocab(teacher, student, tokenizer)
    _check_beta(beta)
    teacher.eval()
    with torch.no_grad():
        t_logits = _completion_logits(teacher, gens)[..., :n]  # (N, C, n)
    was = student.training
    student.train()
    s_logits = _completion_logits(student, gens)[..., :n]
    mask = gens.completion_mask.to(s_logits.device)
    if int(mask.sum()) == 0:
        raise ValueError("every completion is empty (no token to distil on): generate longer completions.")
    loss = generalized_jsd(s_logits, t_logits, mask, beta=beta, temperature=kd_temperature)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    student.train(was)
    return {"loss": loss.item(), "tokens": int(mask.sum()), "mean_length": float(mask.sum(-1).float().mean())}


def on_policy_step(
    student: Any,
    teacher: Any,
    prompts: torch.Tensor | Sequence[str],
    optimizer: torch.optim.Optimizer,
    *,
    beta: float = 1.0,
    kd_temperature: float = 1.0,
    tokenizer: Any = None,
    **generate_kwargs: Any,
) -> dict[str, Any]:
    r"""One on-policy distillation step, GKD with lambda = 1 (Agarwal et al., 2024): the student samples
    completions of ``prompts`` (``generate``, keyword arguments as there), the teacher scores every sampled
    position with its full next-token distribution, and the student takes one gradient step on

    .. math::  L = \frac{1}{|M|} \sum_{(b,i) \in M} JSD(\beta)\big(p_T(\cdot \mid y_{<i}) \,\|\, p_S(\cdot \mid y_{<i})\big),
               \qquad y \sim p_S(\cdot \mid x)

    over the completion tokens ``M`` (``generalized_jsd``; ``beta=1`` reverse KL, the default of TRL's
    ``DistillationTrainer``, which runs this step at scale). The samples are not differentiated through: the
    gradient is that of the divergence at fixed samples, as in GKD and TRL. The student learns on the prefixes
    it produces itself, which is what fixes exposure bias. Returns ``{"loss", "tokens", "mean_length",
    "generations"}``.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer over the student's parameters, got {type(optimizer).__name__}."
        )
    check_same_vocab(teacher, student, tokenizer)
    _check_beta(beta)
    gens = generate(student, prompts, tokenizer=tokenizer, **generate_kwargs)
    out = distill_step(
        student, teacher, gens, optimizer, beta=beta, kd_temperature=kd_temperature, tokenizer=tokenizer
    )
    return {**out, "generations": gens}


# ---- small models end to end (lesson 09): tokenizer, windows, GPT-2 from a config, training, perplexity ----
from . import lm_train as _lm_train  # noqa: E402  (lm_train builds on the divergences above)
from .lm_train import *  # noqa: E402, F403  (its __all__ is the one list of what lk.lm re-exports from it)

__all__ += _lm_train.__all__

# ---- TRL's trainer on the same models (lesson 09): a Hugging Face tokenizer for CharTokenizer, GKDTrainer runs ----
from . import lm_trl as _lm_trl  # noqa: E402
from .lm_trl import *  # noqa: E402, F403

__all__ += _lm_trl.__all__
