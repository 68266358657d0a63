r"""Small causal language models for lesson 09, end to end: a character tokenizer, text cut into training
windows, a GPT-2 built from a ``transformers`` config, one training loop for every token-level objective
(cross-entropy, forward KL, reverse KL, generalized JSD), per-window perplexity and a cache for teachers.

Everything here is also what the Hub path uses: a ``GPT2LMHeadModel`` is a Hugging Face causal LM like
SmolLM2, so ``lk.lm.generate``, ``lk.lm.on_policy_step`` and TRL's trainers take either. The objective of
``train_lm`` for each window ``x`` of ``L`` next-token predictions is

.. math::  L = (1-\alpha)\,\frac{1}{L}\sum_i -\log p_S(x_{i+1} \mid x_{\le i})
               + \alpha\, T^2\, \frac{1}{L}\sum_i D\big(p_T^T(\cdot \mid x_{\le i}),\, p_S^T(\cdot \mid x_{\le i})\big)

with ``D`` the forward KL (DistilGPT-2's word-level KD; Sanh et al., 2019; Kim & Rush, 2016), the reverse KL
(MiniLLM's token-level form; Gu et al., 2024) or the generalized JSD of GKD (Agarwal et al., 2024), and the
``T^2`` of Hinton et al. (2015), which ``lk.lm``'s divergences leave to the caller as TRL does.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import _is_number, check_choice, check_positive_int, check_temperature
from .lm import _check_beta, generalized_jsd, token_kl

__all__ = [
    "OBJECTIVES",
    "CharTokenizer",
    "Corpus",
    "load_causal_lm",
    "load_corpus",
    "real_continuations",
    "build_gpt",
    "cached_teacher_windows",
    "mixture_logits",
    "routed_teacher_logits",
    "teacher_logits",
    "train_lm",
    "train_or_load_lm",
    "window_nll",
]

OBJECTIVES = ("ce", "forward", "reverse", "jsd")
"""``train_lm``'s objectives: cross-entropy only, or CE mixed with a token-level divergence to the teacher."""


class CharTokenizer:
    """One id per character: ``<pad>`` 0, ``<unk>`` 1 (any character outside the vocabulary), ``"\\n"`` 2 (the
    end of a text, the end-of-sequence token), then the characters. Teacher and student share it, which is what
    token-level KD needs (one next-token distribution over the same ids)."""

    pad_token_id, unk_token_id, eos_token_id = 0, 1, 2
    SPECIAL = ("<pad>", "<unk>", "\n")

    def __init__(self, chars: Sequence[str]) -> None:
        if isinstance(chars, str) or not isinstance(chars, Sequence):
            raise TypeError(f"chars must be a list of single characters, got {type(chars).__name__}.")
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1 or c in self.SPECIAL]
        if bad or len(set(chars)) != len(chars) or not chars:
            raise ValueError(
                "chars must be a non-empty list of distinct single characters other than '\\n' (the end-of-text "
                f"token); got {len(chars)} entries, e.g. bad {bad[:3]!r}."
            )
        self.tokens = [*self.SPECIAL, *chars]
        self._ids = {c: i for i, c in enumerate(self.tokens)}

    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> CharTokenizer:
        """The printable ASCII characters (codes 32-126) that occur in ``texts``; anything else becomes ``<unk>``."""
        _check_texts(texts, "texts")
        return cls(sorted({c for t in texts for c in t if 32 <= ord(c) < 127}))

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def get_vocab(self) -> dict[str, int]:
        return dict(self._ids)

    def fingerprint(self) -> str:
        return hashlib.sha1("\x1f".join(self.tokens).encode()).hexdigest()[:12]

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}.")
        return [self._ids.get(c, 1) for c in text]

    def decode(self, ids: Sequence[int] | torch.Tensor, stop_at_eos: bool = True) -> str:
        """The text of ``ids``: padding skipped, ``<unk>`` shown as ``?``; stops at the end-of-text token."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        out = []
        for i in ids:
            if not isinstance(i, numbers.Integral) or not 0 <= i < len(self.tokens):
                raise ValueError(f"ids must be integers in [0, {len(self.tokens)}), got {i!r}.")
            if i == self.eos_token_id and stop_at_eos:
                break
            out.append("" if i == 0 else "?" if i == 1 else self.tokens[i])
        return "".join(out)

    def stream(self, texts: Sequence[str]) -> torch.Tensor:
        """All texts as one id stream, each followed by the end-of-text token: ``(total,)`` int64."""
        _check_texts(texts, "texts")
        ids: list[int] = []
        for t in texts:
            ids += self.encode(t)
            ids.append(self.eos_token_id)
        return torch.tensor(ids, dtype=torch.long)

    def windows(self, texts: Sequence[str], length: int, n: int | None = None, seed: int = 0) -> torch.Tensor:
        """The stream of ``texts`` cut into non-overlapping windows of ``length + 1`` ids, ``(m, length + 1)``:
        ``length`` next-token predictions each (a window may span the end of one text and the start of the next,
        as in GPT-2's training). ``n``: keep a random ``n`` of them, drawn with ``seed``."""
        check_positive_int(length, "length")
        s = self.stream(texts)
        m = (len(s) - 1) // length
        if m < 1:
            raise ValueError(
                f"texts hold {len(s)} characters, too few for one window of {length + 1}: pass more text or a "
                "smaller length."
            )
        w = s[: m * length + 1]
        out = torch.stack([w[i * length : (i + 1) * length + 1] for i in range(m)])
        if n is not None:
            check_positive_int(n, "n")
            if n > m:
                raise ValueError(f"n={n} windows asked for, but the texts give only {m} of length {length}.")
            g = torch.Generator().manual_seed(int(seed))
            out = out[torch.randperm(m, generator=g)[:n]]
        return out

    def __repr__(self) -> str:
        return f"CharTokenizer({len(self)} ids)"


def _check_texts(texts: Any, name: str) -> None:
    if isinstance(texts, str) or not isinstance(texts, Sequence) or not texts:
        raise ValueError(f"{name} must be a non-empty list of str, got {type(texts).__name__}.")
    wrong = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if wrong is not None:
        raise ValueError(f"{name} must be a list of str; {name}[{wrong}] is a {type(texts[wrong]).__name__}.")


@dataclass
class Corpus:
    """Review text per domain, split three ways: ``fit`` (training reviews the teacher and students learn from),
    ``val`` (held out from the training reviews: every choice of the lesson) and ``test`` (the dataset's own test
    reviews: final numbers only). ``fell_back``: the toy reviews replaced the real ones (a banner said so)."""

    fit: dict[str, list[str]]
    val: dict[str, list[str]]
    test: dict[str, list[str]]
    source: str
    fell_back: bool

    def texts(self, split: str, domains: Sequence[str] | None = None) -> list[str]:
        check_choice(split, ("fit", "val", "test"), "split")
        parts = getattr(self, split)
        names = list(parts) if domains is None else list(domains)
        for d in names:
            check_choice(d, list(parts), "domain")
        return [t for d in names for t in parts[d]]

    def windows(
        self,
        tokenizer: CharTokenizer,
        split: str,
        length: int,
        n_per_domain: int | None = None,
        seed: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows of every domain of ``split`` (``tokenizer.windows``, cut per domain so that no window spans
        two), up to ``n_per_domain`` drawn from each with ``seed`` (all if ``None``, or when a domain has fewer),
        shuffled together: ``(windows (m, length + 1), domain (m,))``, the domain as its index in ``self.fit``.
        Balanced splits with their domains are what per-domain teachers and per-domain scores need."""
        check_choice(split, ("fit", "val", "test"), "split")
        if n_per_domain is not None:
            check_positive_int(n_per_domain, "n_per_domain")
        g = torch.Generator().manual_seed(int(seed))
        parts = []
        for d in self.fit:
            w = tokenizer.windows(self.texts(split, [d]), length)
            parts.append(w[torch.randperm(len(w), generator=g)[:n_per_domain]])
        domain = torch.cat([torch.full((len(w),), i, dtype=torch.long) for i, w in enumerate(parts)])
        order = torch.randperm(len(domain), generator=g)
        return torch.cat(parts)[order], domain[order]


def load_corpus(
    domains: Sequence[str], *, data_dir: str | Path | None = None, val_fraction: float = 0.1, seed: int = 0
) -> Corpus:
    """The review text of ``domains`` (names of ``lk.text.TEXT_DATASETS``: ``"books"``, ``"dvd"``,
    ``"kitchen"``, ...) through ``lk.load_text_dataset``: ``$LABKIT_DATA_DIR`` or ``data_dir``, else a download,
    else the toy reviews with the loud fallback banner. Labels are dropped: a language model learns the text.
    ``val_fraction`` of each domain's training reviews, drawn with ``seed``, is held out for validation."""
    from .text import load_text_dataset

    if isinstance(domains, str) or not isinstance(domains, Sequence) or not domains:
        raise ValueError(
            f"domains must be a non-empty list of text dataset names such as ['books'], got {domains!r}."
        )
    if not _is_number(val_fraction) or not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}.")
    fit, val, test, sources, fell = {}, {}, {}, [], False
    for d in domains:
        splits = load_text_dataset(d, data_dir=data_dir)
        texts = list(splits.train.texts)
        order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(int(seed))).tolist()
        k = max(1, int(round(val_fraction * len(texts))))
        val[d] = [texts[i] for i in order[:k]]
        fit[d] = [texts[i] for i in order[k:]]
        test[d] = list(splits.test.texts)
        sources.append(splits.train.source)
        fell = fell or bool(splits.fell_back)
    return Corpus(fit, val, test, "; ".join(dict.fromkeys(sources)), fell)


def build_gpt(vocab_size: int, context: int, layers: int, width: int, heads: int, seed: int = 0) -> nn.Module:
    """A GPT-2 (``transformers.GPT2LMHeadModel``) from a config: ``layers`` blocks of ``width`` units and
    ``heads`` heads, a context of ``context`` positions, no dropout (small data, short budgets), output layer
    not tied to the embedding, and the exact GELU (one fused kernel; GPT-2's tanh approximation costs a fifth of
    a small model's training time on a CPU). Its initial weights depend on ``seed`` only (the global random state is left as
    it was)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    for value, name in ((vocab_size, "vocab_size"), (context, "context"), (layers, "layers"), (width, "width"), (heads, "heads")):  # fmt: skip
        check_positive_int(value, name)
    if width % heads:
        raise ValueError(
            f"width ({width}) must be a multiple of heads ({heads}): each head gets width / heads units."
        )
    cfg = GPT2Config(
        vocab_size=vocab_size, n_positions=context, n_embd=width, n_layer=layers, n_head=heads,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=False, activation_function="gelu",
        bos_token_id=CharTokenizer.eos_token_id, eos_token_id=CharTokenizer.eos_token_id,
        pad_token_id=CharTokenizer.pad_token_id,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return GPT2LMHeadModel(cfg)


def _check_windows(windows: Any, model: nn.Module | None, name: str = "windows") -> torch.Tensor:
    if not isinstance(windows, torch.Tensor) or windows.dim() != 2 or windows.is_floating_point():
        got = (
            f"{windows.dtype} {tuple(windows.shape)}"
            if isinstance(windows, torch.Tensor)
            else type(windows).__name__
        )
        raise ValueError(
            f"{name} must be token ids of shape (m, length + 1) (CharTokenizer.windows), got {got}."
        )
    if windows.shape[0] == 0 or windows.shape[1] < 2:
        raise ValueError(
            f"{name} must hold at least one window of 2 or more ids, got shape {tuple(windows.shape)}."
        )
    if model is not None:
        cfg = getattr(model, "config", None)
        v, ctx = getattr(cfg, "vocab_size", None), getattr(cfg, "n_positions", None)
        if isinstance(v, int) and (int(windows.min()) < 0 or int(windows.max()) >= v):
            raise ValueError(
                f"{name} hold ids in [{int(windows.min())}, {int(windows.max())}] but the model's vocabulary has {v}: "
                "encode with the tokenizer the model was built for."
            )
        if isinstance(ctx, int) and windows.shape[1] - 1 > ctx:
            raise ValueError(
                f"{name} have {windows.shape[1] - 1} positions but the model's context is {ctx}: cut shorter windows."
            )
    return windows.long()


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def window_nll(model: nn.Module, windows: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Each window's mean next-token negative log-likelihood (nats per token), ``(m,)``; the held-out
    perplexity is ``exp(window_nll(...).mean())``. A mean over windows, so the course's verdict rule reads it
    per window (``lk.Comparison.of_examples``)."""
    windows = _check_windows(windows, model)
    check_positive_int(batch_size, "batch_size")
    was, dev = model.training, _device(model)
    model.eval()
    out = []
    try:
        for i in range(0, len(windows), batch_size):
            x = windows[i : i + batch_size].to(dev)
            z = model(x[:, :-1]).logits.float()
            out.append(F.cross_entropy(z.transpose(1, 2), x[:, 1:], reduction="none").mean(1).cpu())
    finally:
        model.train(was)
    return torch.cat(out)


@torch.no_grad()
def teacher_logits(model: nn.Module, windows: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The teacher's full next-token logits on every window, ``(m, length, vocab)`` in float16 (half the memory;
    the divergences run in float32): computed once and reused by every student and seed, so a KD step costs no
    teacher forward pass. Top-k storage keeps much less of the gain at small vocabularies (lesson 09)."""
    windows = _check_windows(windows, model)
    check_positive_int(batch_size, "batch_size")
    was, dev = model.training, _device(model)
    model.eval()
    try:
        out = [
            model(windows[i : i + batch_size, :-1].to(dev)).logits.half().cpu()
            for i in range(0, len(windows), batch_size)
        ]
    finally:
        model.train(was)
    return torch.cat(out)


def routed_teacher_logits(
    teachers: Sequence[nn.Module], windows: torch.Tensor, route: Any, batch_size: int = 256
) -> torch.Tensor:
    r"""Many teachers, one target per window: window ``j`` gets the logits of ``teachers[route[j]]`` (float16,
    ``(m, length, vocab)`` like ``teacher_logits``). This is lesson 08's multi-teacher loss with per-sample
    weights that are one-hot, each window's domain expert:

    .. math::  L(x) = \sum_k lpha_k(x)\, \mathrm{KL}(p_k \| p_S), \qquad lpha_k(x) = 1[	ext{route}(x) = k]

    so each window costs one teacher forward pass, whatever the number of teachers (Branch-Train-Merge's domain
    experts, Li et al., 2022, distilled into one student). ``route``: ``(m,)`` integers in ``[0, len(teachers))``.
    Teachers must share one vocabulary (``check_same_vocab``)."""
    from .lm import check_same_vocab

    if isinstance(teachers, nn.Module) or not isinstance(teachers, Sequence) or not teachers:
        raise TypeError(
            f"teachers must be a non-empty list of models (one per route), got {type(teachers).__name__}."
        )
    for t in teachers[1:]:
        check_same_vocab(teachers[0], t)
    windows = _check_windows(windows, teachers[0])
    try:
        route = route if torch.is_tensor(route) else torch.as_tensor(route)
    except (TypeError, ValueError, RuntimeError):
        route = None
    if (
        route is None
        or route.shape != (len(windows),)
        or route.is_floating_point()
        or route.dtype == torch.bool
    ):
        got = (
            "something that is not a list of integers"
            if route is None
            else f"{route.dtype} of shape {tuple(route.shape)}"
        )
        raise ValueError(
            f"route must be ({len(windows)},) integers, one teacher index per window; got {got}."
        )
    if len(route) and (int(route.min()) < 0 or int(route.max()) >= len(teachers)):
        raise ValueError(
            f"route holds teacher indices from {int(route.min())} to {int(route.max())}; allowed: 0 to {len(teachers) - 1} "
            f"({len(teachers)} teachers)."
        )
    out = None
    for k, t in enumerate(teachers):
        rows = (route == k).nonzero().flatten()
        if len(rows) == 0:
            continue
        z = teacher_logits(t, windows[rows], batch_size=batch_size)
        if out is None:
            out = torch.empty((len(windows), *z.shape[1:]), dtype=z.dtype)
        out[rows] = z
    return out


def mixture_logits(logits: Sequence[torch.Tensor], weights: Any = None, chunk: int = 256) -> torch.Tensor:
    r"""The targets of many teachers mixed in probability space: log-probabilities of

    .. math::  p(\cdot \mid x) = \sum_k \alpha_k(x)\, p_k(\cdot \mid x), \qquad \sum_k \alpha_k(x) = 1

    from each teacher's logits ``(m, length, vocab)`` (``teacher_logits``), float16 like them, for ``train_lm``.
    Its KL is lesson 08's multi-teacher loss up to a constant: the gradient of ``sum_k alpha_k KL(p_k || p_S)``
    in the student is that of ``KL(p || p_S)``. ``weights``: ``None`` (uniform, ``1/K``), ``(K,)`` (one per
    teacher, e.g. from their quality) or ``(m, K)`` (per window: one-hot rows route each window to one teacher,
    ``routed_teacher_logits`` without the other teachers' forward passes); each row must sum to 1. Mixing logits
    (or log-probabilities) instead is another model, a product of experts, not this average."""
    if isinstance(logits, torch.Tensor) or not isinstance(logits, Sequence) or not logits:
        raise TypeError(
            f"logits must be a non-empty list of teacher logits (one tensor per teacher), got {type(logits).__name__}."
        )
    shape = tuple(logits[0].shape) if isinstance(logits[0], torch.Tensor) else None
    if (
        shape is None
        or len(shape) != 3
        or any(
            not isinstance(z, torch.Tensor) or tuple(z.shape) != shape or not z.is_floating_point()
            for z in logits
        )
    ):
        got = [tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__ for z in logits]
        raise ValueError(f"logits must be float tensors of one shape (windows, length, vocab), got {got}.")
    k, m = len(logits), shape[0]
    w = torch.full((k,), 1.0 / k) if weights is None else weights
    try:
        w = torch.as_tensor(w, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(
            f"weights must be numbers: ({k},) or ({m}, {k}), got {type(weights).__name__}."
        ) from None
    if w.shape not in ((k,), (m, k)) or not torch.isfinite(w).all() or bool((w < 0).any()):
        raise ValueError(
            f"weights must be ({k},) or ({m}, {k}) non-negative numbers (one per teacher, or per window and "
            f"teacher), got shape {tuple(w.shape)}."
        )
    if not torch.allclose(w.sum(-1), torch.ones(()).double(), atol=1e-6):
        raise ValueError(
            f"each row of weights must sum to 1 (a mixture), got sums from {float(w.sum(-1).min()):.4g}."
        )
    w = (w.expand(m, k) if w.dim() == 1 else w).float()
    out = torch.empty(shape, dtype=logits[0].dtype)
    for i in range(0, m, chunk):
        p = sum(
            w[i : i + chunk, j, None, None] * z[i : i + chunk].float().softmax(-1)
            for j, z in enumerate(logits)
        )
        out[i : i + chunk] = p.clamp_min(1e-30).log().to(out.dtype)
    return out


def cached_teacher_windows(
    teacher: nn.Module,
    prompts: torch.Tensor,
    *,
    max_new_tokens: int,
    name: str,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 2048,
    cache: str | Path | None = None,
) -> tuple[torch.Tensor, float]:
    """Sequence-level KD data as training windows, cached with the teacher: the teacher continues each prompt
    (``lk.lm.sequence_kd_data``, ``max_new_tokens`` sampled at ``temperature``) and each continuation, padded after
    an end of text with end-of-text ids, becomes one ``(prompt + max_new_tokens)``-id window for ``train_lm``. Like
    the teacher's weights, its writing is the same on every run (the teacher's weights, the prompts and the
    settings make the key), so the first run generates it and later runs load it. Returns ``(windows, seconds)``:
    the generation time of the run that made the entry."""
    from .data import cache_dir
    from .lm import sequence_kd_data
    from .training import _atomic_write, _check_path, _state_hash, _tensor_hash

    prompts = _check_windows(prompts, teacher, name="prompts")
    check_positive_int(max_new_tokens, "max_new_tokens")
    if not isinstance(name, str) or not name.strip() or any(c in name for c in "/\\") or name.startswith("."):
        raise ValueError(f"name must be a short file-name prefix such as 'lm-teacher-writing', got {name!r}.")
    settings = [max_new_tokens, float(temperature), int(seed)]
    key = hashlib.sha1(
        json.dumps([_state_hash(teacher), _tensor_hash(prompts), settings]).encode()
    ).hexdigest()[:16]
    folder = _check_path(cache, "cache") if cache is not None else cache_dir() / "checkpoints"
    path = folder / f"{name}-{key}.pt"
    if path.exists():
        try:
            entry = torch.load(path, weights_only=True)
            windows, seconds = entry["windows"], float(entry["seconds"])
        except (KeyError, RuntimeError, OSError, ValueError) as err:
            print(f"[labkit] WARNING: the cached {name} ({path.name}) is unreadable ({type(err).__name__}: {err}); "
                  "generating it again.")  # fmt: skip
        else:
            print(f"[labkit] loaded the cached {name} ({len(windows):,} windows) from {path}")
            return windows, seconds
    t0 = time.perf_counter()
    gens = sequence_kd_data(
        teacher, prompts.to(_device(teacher)), max_new_tokens=max_new_tokens, temperature=temperature,
        seed=seed, batch_size=batch_size, eos_token_id=CharTokenizer.eos_token_id,
    )  # fmt: skip
    windows = gens.sequences.cpu().masked_fill(gens.attention_mask.cpu() == 0, CharTokenizer.eos_token_id)
    seconds = time.perf_counter() - t0
    _atomic_write(path, lambda tmp: torch.save({"windows": windows, "seconds": seconds}, tmp))
    return windows, seconds


def _check_train(model, windows, steps, batch_size, lr, seed, objective, logits, alpha, temperature, beta):
    if not isinstance(model, nn.Module) or not callable(getattr(model, "forward", None)):
        raise TypeError(
            f"model must be a causal LM (an nn.Module such as build_gpt's), got {type(model).__name__}."
        )
    windows = _check_windows(windows, model)
    check_positive_int(steps, "steps")
    check_positive_int(batch_size, "batch_size")
    if not _is_number(lr) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a finite number > 0, e.g. 3e-3, got {lr!r}.")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an integer, got {seed!r}.")
    check_choice(objective, OBJECTIVES, "objective")
    if objective == "ce":
        if logits is not None:
            raise ValueError(
                'objective="ce" uses no teacher: drop teacher_logits= (or choose "forward", "reverse", "jsd").'
            )
        return windows
    if logits is None:
        raise ValueError(
            f'objective="{objective}" distils from a teacher: pass teacher_logits=lk.lm.teacher_logits(teacher, windows).'
        )
    if (
        not isinstance(logits, torch.Tensor)
        or logits.dim() != 3
        or tuple(logits.shape[:2]) != (len(windows), windows.shape[1] - 1)
    ):
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(
            f"teacher_logits must be (windows, positions, vocab) = ({len(windows)}, {windows.shape[1] - 1}, vocab), one "
            f"row per window of the same windows, got {got}."
        )
    v = getattr(getattr(model, "config", None), "vocab_size", None)
    if isinstance(v, int) and logits.shape[2] != v:
        raise ValueError(
            f"teacher_logits have {logits.shape[2]} entries per position but the student's vocabulary {v}: teacher and "
            "student must share one tokenizer (lk.lm.check_same_vocab)."
        )
    if not _is_number(alpha) or not 0 < alpha <= 1:
        raise ValueError(f"alpha (the KD term's weight) must be in (0, 1], got {alpha!r}.")
    check_temperature(temperature)
    if objective == "jsd":
        _check_beta(beta)
    return windows


def train_lm(
    model: nn.Module,
    windows: torch.Tensor,
    *,
    steps: int,
    batch_size: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    objective: str = "ce",
    teacher_logits: torch.Tensor | None = None,
    alpha: float = 0.5,
    temperature: float = 1.0,
    beta: float = 0.5,
    warmup: float = 0.1,
    weight_decay: float = 0.01,
) -> list[dict[str, float]]:
    """Train ``model`` for ``steps`` steps of ``batch_size`` windows (AdamW, linear warm-up then cosine decay,
    gradient norm clipped at 1). ``objective``: ``"ce"`` (next-token cross-entropy only), or CE mixed with a
    divergence to the teacher (module docstring): ``"forward"`` KL(p_T || p_S), ``"reverse"`` KL(p_S || p_T),
    ``"jsd"`` with GKD's ``beta``, over ``teacher_logits`` (``teacher_logits(teacher, windows)``, the same rows).
    Batches are drawn without replacement, epoch after epoch, from a generator seeded with ``seed``, so equal
    seeds give arms equal batches. Returns one record per tenth of the run: step, loss, CE."""
    windows = _check_train(
        model, windows, steps, batch_size, lr, seed, objective, teacher_logits, alpha, temperature, beta
    )
    dev = _device(model)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    ramp = max(1, int(warmup * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / ramp) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    g = torch.Generator().manual_seed(int(seed))
    n, bs = len(windows), min(batch_size, len(windows))
    perm, pos, history, every = torch.randperm(n, generator=g), 0, [], max(1, steps // 10)
    model.train()
    for step in range(steps):
        if pos + bs > n:
            perm, pos = torch.randperm(n, generator=g), 0
        idx = perm[pos : pos + bs]
        pos += bs
        x = windows[idx].to(dev)
        z = model(x[:, :-1]).logits
        ce = F.cross_entropy(z.reshape(-1, z.shape[-1]).float(), x[:, 1:].reshape(-1))
        loss = ce
        if objective != "ce":
            t = teacher_logits[idx].to(dev).float()
            if objective == "jsd":
                d = generalized_jsd(z, t, beta=beta, temperature=temperature)
            else:
                d = token_kl(z, t, temperature=temperature, direction=objective)
            loss = (1 - alpha) * ce + alpha * temperature**2 * d
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if (step + 1) % every == 0 or step + 1 == steps:
            history.append({"step": step + 1, "loss": float(loss.detach()), "ce": float(ce.detach())})
    model.eval()
    return history


def train_or_load_lm(
    model: nn.Module,
    windows: torch.Tensor,
    *,
    name: str,
    cache: str | Path | None = None,
    **train_kwargs: Any,
) -> list[dict[str, float]]:
    """``train_lm`` unless a checkpoint of exactly this run is cached (the model's config and initial weights,
    the windows' content and every training argument make the key); then load it. For teachers, which every
    student and seed of a lesson share: the first run trains it (its time is in the README), later runs load it.
    The last record's ``seconds`` is the training time of the run that made the entry (cached or not)."""
    from .data import cache_dir
    from .training import _atomic_write, _check_path, _state_hash, _tensor_hash, load_weights, save_weights

    if "teacher_logits" in train_kwargs and train_kwargs["teacher_logits"] is not None:
        raise ValueError(
            "train_or_load_lm caches teachers trained on text (objective='ce'): pass no teacher_logits."
        )
    if not isinstance(name, str) or not name.strip() or any(c in name for c in "/\\") or name.startswith("."):
        raise ValueError(
            f"name must be a short file-name prefix such as 'lm-teacher' (no '/', '\\'), got {name!r}."
        )
    kwargs = dict(train_kwargs)
    _check_train(
        model, windows, kwargs.get("steps"), kwargs.get("batch_size", 32), kwargs.get("lr", 3e-3),
        kwargs.get("seed", 0), kwargs.get("objective", "ce"), None, 0.5, 1.0, 0.5,
    )  # fmt: skip
    cfg = model.config.to_json_string() if hasattr(model, "config") else type(model).__name__
    key = hashlib.sha1(
        json.dumps(
            [cfg, _state_hash(model), _tensor_hash(windows), sorted(kwargs.items())], default=str
        ).encode()
    ).hexdigest()[:16]
    folder = _check_path(cache, "cache") if cache is not None else cache_dir() / "checkpoints"
    weights, meta = folder / f"{name}-{key}.safetensors", folder / f"{name}-{key}.json"
    if weights.exists() and meta.exists():
        try:
            history = json.loads(meta.read_text())
            load_weights(model, weights)
        except (ValueError, RuntimeError, OSError) as err:
            print(f"[labkit] WARNING: the cached {name} ({weights.name}) is unreadable ({type(err).__name__}: {err}); "
                  "training it again and replacing it.")  # fmt: skip
        else:
            model.eval()
            print(f"[labkit] loaded cached {name} from {weights}")
            return history
    t0 = time.perf_counter()
    history = train_lm(model, windows, **kwargs)
    history[-1]["seconds"] = time.perf_counter() - t0  # the one-off training time, kept with the cached entry
    save_weights(model, weights)
    _atomic_write(meta, lambda tmp: tmp.write_text(json.dumps(history)))
    return history


# ---- a pretrained pair from the Hub (lesson 09's full profile, on a GPU with a network) --------------------
def load_causal_lm(name_or_path: str | Path, *, dtype: torch.dtype | None = None, verbose: bool = True):
    """``(model, tokenizer)`` of a causal LM through ``from_pretrained``: a Hub id (e.g.
    ``"HuggingFaceTB/SmolLM2-135M"``) or a local folder saved with ``save_pretrained``. Offline
    (``LABKIT_OFFLINE=1`` / ``HF_HUB_OFFLINE=1``) nothing is downloaded; a checkpoint that cannot be had raises
    ``lk.hf.CheckpointUnavailable`` with what to do (lesson 09 then prints a loud banner and skips the Hub pair).
    A tokenizer without a padding token gets its end-of-sequence token as one (GPT-2 and SmolLM2 have none)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .hf import CheckpointUnavailable, _offline, _quiet_transformers, resolve_checkpoint

    where = resolve_checkpoint(name_or_path)
    kwargs = {"local_files_only": _offline() and not Path(where).is_dir()}
    try:
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, **kwargs)
    except OSError as err:
        how = "offline (LABKIT_OFFLINE / HF_HUB_OFFLINE set)" if kwargs["local_files_only"] else "online"
        raise CheckpointUnavailable(
            f"causal LM {str(name_or_path)!r} could not be loaded {how}: {str(err).splitlines()[0]} Connect to the "
            "Hugging Face Hub, or pass a local folder saved with save_pretrained."
        ) from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if verbose:
        n = sum(p.numel() for p in model.parameters())
        print(
            f"loaded {name_or_path}: {n / 1e6:.0f}M parameters, vocabulary {len(tokenizer)} ({model.config.vocab_size} logits)"
        )
    return model.eval(), tokenizer


def real_continuations(tokenizer: Any, texts: Sequence[str], prompt_tokens: int, new_tokens: int):
    """``lk.lm.Generations`` of real text: the first ``prompt_tokens`` tokens of each text as the prompt
    (left-padded, as ``lk.lm.generate`` pads prompts) and its next ``new_tokens`` tokens as the completion
    (right-padded where a text ends), for off-policy KD (``lk.lm.distill_step``) with any Hugging Face tokenizer.
    Texts shorter than ``prompt_tokens + 1`` tokens are dropped; none left is an error."""
    from .lm import Generations

    _check_texts(texts, "texts")
    check_positive_int(prompt_tokens, "prompt_tokens")
    check_positive_int(new_tokens, "new_tokens")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rows, masks = [], []
    for t in texts:
        ids = tokenizer(t, add_special_tokens=False)["input_ids"]
        if len(ids) <= prompt_tokens:
            continue
        prompt, rest = ids[:prompt_tokens], ids[prompt_tokens : prompt_tokens + new_tokens]
        rows.append(prompt + rest + [pad] * (new_tokens - len(rest)))
        masks.append([1] * (prompt_tokens + len(rest)) + [0] * (new_tokens - len(rest)))
    if not rows:
        raise ValueError(
            f"no text has more than prompt_tokens={prompt_tokens} tokens: pass longer texts or a shorter prompt."
        )
    return Generations(torch.tensor(rows), torch.tensor(masks), prompt_tokens)
