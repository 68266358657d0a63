r"""The ecosystem path of lesson 09: TRL's GKD trainer on labkit's GPT-2 pair and character tokenizer.

GKD (Agarwal et al., 2024, "On-Policy Distillation of Language Models: Learning from Self-Generated Mistakes",
ICLR) mixes fixed sequences with the student's own samples: each step takes a batch of prompts ``x``; with
probability ``lmbda`` the student samples the completions ``y ~ p_S(. | x)`` (on-policy), otherwise the given
completions are used (off-policy, supervised KD), and the student steps on

.. math::  L = \frac{1}{|M|} \sum_{(b,i) \in M} JSD(\beta)\big(p_T(\cdot \mid x_b, y_{b,<i}) \,\|\,
           p_S(\cdot \mid x_b, y_{b,<i})\big)

over the batch's completion tokens ``M`` (``lk.lm.generalized_jsd``; ``beta=0`` forward KL, ``beta=1``
reverse KL): ``lk.lm.distill_step`` at ``lmbda=0``, ``lk.lm.on_policy_step`` at ``lmbda=1``. The trainer is
``trl.experimental.gkd.GKDTrainer``, because in TRL 1.13 it is the only one with ``lmbda`` and an off-policy
data path: ``trl.DistillationTrainer`` (exported, maintained) reads only a ``"prompt"`` column and is
on-policy only (``lmbda=1``). Its quirks in TRL 1.13, and what ``trl_distill`` does about them:

* its loss is at temperature 1: ``compute_loss`` does not pass ``temperature`` to ``generalized_jsd_loss``,
  so ``temperature`` only sets the sampling of the on-policy completions;
* it divides by the completion tokens of the *dataset* batch, also on on-policy steps (without completions: by
  0, an infinite loss). ``trl_distill`` sets ``model_accepts_loss_kwargs = False``, so TRL divides by the
  tokens trained on, as above;
* its training forward passes no ``position_ids``: rows of different lengths are left-padded, so GPT-2's
  absolute positions are shifted there (not at generation). Prompts and completions of one length avoid it;
* ``SFTConfig``'s default ``loss_type="chunked_nll"`` patches ``student.forward`` for good (``"nll"`` here),
  ``disable_dropout=True`` edits the student (off here); the trainer reseeds the global random generators,
  sets ``config.use_cache = False`` and tags the models (all put back here).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import fields
from typing import Any

import numpy as np
import torch

from ._validate import _is_number, check_fraction, check_positive_int, check_temperature
from .lm import _check_beta, _context, _width, check_same_vocab
from .lm_train import CharTokenizer, _check_texts

__all__ = ["hf_tokenizer", "trl_distill"]

# What TRL 1.13 / transformers 5 print on every run of this path about their own calls, not the user's run:
# the advice to move to DistillationTrainer (answered above), deprecations, and the padding hint at generation
# steps whose finished rows hold pad tokens (TRL does pass the attention mask).
_NOISE = (
    "fully covered by `DistillationTrainer`", "is_gradient_checkpointing",
    "`gradient_checkpointing` is deprecated", "Passing `generation_config` together with",
    "strongly recommend passing in an `attention_mask`",
)  # fmt: skip
_LOGGERS = (
    "trl.experimental.gkd.gkd_trainer",
    "transformers.generation.utils",
    "transformers.modeling_utils",
)


def hf_tokenizer(tok: CharTokenizer) -> Any:
    """``tok`` as a ``transformers.PreTrainedTokenizerFast`` with the same ids: ``encode(text)`` equals
    ``tok.encode(text)`` (one id per character, ``<unk>`` outside the vocabulary, no BOS/EOS added, a literal
    ``"<pad>"`` in a text split into characters too) and ``decode(ids)`` equals ``tok.decode(ids,
    stop_at_eos=False)`` (padding dropped, ``<unk>`` shown as ``?``). Built in memory; pads on the left."""
    if not isinstance(tok, CharTokenizer):
        raise TypeError(
            f"tok must be an lk.lm.CharTokenizer (CharTokenizer.from_texts), got {type(tok).__name__}. A "
            "Hugging Face tokenizer needs no conversion: trl_distill takes it as it is."
        )
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pad, unk, eos = tok.SPECIAL
    backend = Tokenizer(models.WordLevel(vocab=tok.get_vocab(), unk_token=unk))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # each char, "\n" too
    backend.decoder = decoders.Sequence(
        [decoders.Replace(unk, "?"), decoders.Replace(pad, ""), decoders.Fuse()]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=pad, unk_token=unk, eos_token=eos, padding_side="left",
        clean_up_tokenization_spaces=False, split_special_tokens=True,  # "<pad>" in a text is 5 characters
    )  # fmt: skip


def _as_hf(tokenizer: Any) -> Any:
    from transformers import PreTrainedTokenizerBase

    if isinstance(tokenizer, CharTokenizer):
        return hf_tokenizer(tokenizer)
    if not isinstance(tokenizer, PreTrainedTokenizerBase):
        raise TypeError(
            "tokenizer must be the models' CharTokenizer or a Hugging Face tokenizer, got "
            f"{type(tokenizer).__name__}."
        )
    if tokenizer.pad_token_id is None:
        raise ValueError("tokenizer has no pad token, which TRL pads with: set tokenizer.pad_token first.")
    return tokenizer


def _rows(hf: Any, prompts: Any, completions: Any, lmbda: float, new: int, ctx: int | None) -> list[dict]:
    """The dataset TRL's collator takes as it is: prompt + completion ids, 1 on the completion positions."""
    _check_texts(prompts, "prompts")
    if completions is None and lmbda < 1:
        raise ValueError(
            f"lmbda={lmbda} < 1 trains some steps off-policy, on given completions: pass completions= (one "
            "text per prompt, e.g. its real continuation), or lmbda=1 (the student's own samples only)."
        )
    if completions is not None:
        _check_texts(completions, "completions")
        if len(completions) != len(prompts):
            raise ValueError(f"completions: one per prompt, got {len(completions)} for {len(prompts)}.")
    rows = []
    for i, (p, c) in enumerate(zip(prompts, completions or [""] * len(prompts))):
        pi, ci = (hf(t, add_special_tokens=False)["input_ids"] if t else [] for t in (p, c))
        if not pi:
            raise ValueError(f"prompts[{i}] is empty: the student needs at least one token to continue.")
        if ctx is not None and lmbda > 0 and len(pi) + new > ctx:
            raise ValueError(
                f"prompts[{i}] has {len(pi)} tokens, + max_new_tokens={new} exceeds the models' context of "
                f"{ctx} positions: cut the prompts or generate fewer tokens."
            )
        if ctx is not None and lmbda < 1 and len(pi) + len(ci) > ctx:
            raise ValueError(
                f"prompts[{i}] + completions[{i}] hold {len(pi) + len(ci)} tokens, over the models' context "
                f"of {ctx}: cut them."
            )
        rows.append({"prompt": p, "input_ids": pi + ci, "completion_mask": [0] * len(pi) + [1] * len(ci)})
    return rows


def _not_noise(record: logging.LogRecord) -> bool:
    return not any(s in record.getMessage() for s in _NOISE)


@contextlib.contextmanager
def _quiet_and_seeded(device: torch.device) -> Iterator[None]:
    """Drop ``_NOISE`` (and only it); leave the global random generators as they were."""
    loggers = [logging.getLogger(n) for n in _LOGGERS]
    py, npy = random.getstate(), np.random.get_state()
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for s in _NOISE:
            warnings.filterwarnings("ignore", message=f".*{re.escape(s)}")
        for lg in loggers:
            lg.addFilter(_not_noise)
        try:
            yield
        finally:
            for lg in loggers:
                lg.removeFilter(_not_noise)
            random.setstate(py)
            np.random.set_state(npy)


def trl_distill(
    student: Any,
    teacher: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    completions: Sequence[str] | None = None,
    *,
    steps: int,
    lmbda: float = 1.0,
    beta: float = 1.0,
    temperature: float = 1.0,
    max_new_tokens: int,
    lr: float,
    batch_size: int,
    seed: int = 0,
    output_dir: str | os.PathLike | None = None,
) -> list[dict[str, float]]:
    """Distil ``teacher`` into ``student`` (Hugging Face causal LMs over one vocabulary, e.g. ``build_gpt``'s)
    with ``steps`` steps of TRL's ``GKDTrainer`` on the objective above; returns its per-step log (``loss``,
    ``grad_norm``, ``learning_rate``, ``epoch``, ``step``). The student is trained in place; the teacher, both
    models' devices, modes and configs, and the global random state are left as they were.

    ``tokenizer``: the models' ``CharTokenizer`` (through ``hf_tokenizer``) or a Hugging Face tokenizer.
    ``completions``: one text per prompt for the off-policy steps (needed when ``lmbda < 1``, unused at 1; end
    one with ``"\\n"``, the CharTokenizer's EOS, to teach stopping). ``lmbda``: the probability that a step is
    on-policy (one draw per step, from ``seed``); ``beta``: JSD's (1, reverse KL, is DistillationTrainer's
    default); ``temperature`` and ``max_new_tokens``: the on-policy sampling. AdamW at a constant ``lr``,
    ``batch_size`` prompts a step, TRL's gradient clipping at norm 1, float32 on the student's device, nothing
    reported or saved; ``output_dir`` (default: a temporary folder, removed after) holds the trainer's
    files."""
    for model, name in ((student, "student"), (teacher, "teacher")):
        if not callable(getattr(model, "generate", None)) or not hasattr(model, "config"):
            raise TypeError(
                f"{name} must be a Hugging Face causal LM (lk.lm.build_gpt), got {type(model).__name__}."
            )
    if student is teacher:
        raise ValueError("student and teacher are the same model: the trainer would train the teacher too.")
    hf = _as_hf(tokenizer)
    check_same_vocab(teacher, student, hf)
    if _width(student, "student") != _width(teacher, "teacher"):
        raise ValueError(
            f"teacher has {_width(teacher, 'teacher')} logits and student {_width(student, 'student')}: TRL "
            "compares the full next-token distributions, so both need the same vocab_size (build both with "
            "len(tokenizer))."
        )
    for value, name in ((steps, "steps"), (max_new_tokens, "max_new_tokens"), (batch_size, "batch_size")):
        check_positive_int(value, name)
    lmbda = check_fraction(lmbda, "lmbda")
    beta, temperature = _check_beta(beta), check_temperature(temperature)
    if not _is_number(lr) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a finite number > 0, e.g. 1e-3, got {lr!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}.")
    ctx = min([c for c in (_context(student), _context(teacher)) if c is not None], default=None)
    rows = _rows(hf, prompts, completions, lmbda, max_new_tokens, ctx)

    states = [
        (m, m.training, next(m.parameters()).device, set(vars(m)), getattr(m.config, "use_cache", None))
        for m in (student, teacher)
    ]
    device = states[0][2]
    out = tempfile.mkdtemp(prefix="labkit-trl-") if output_dir is None else os.fspath(output_dir)
    try:
        with _quiet_and_seeded(device):  # importing trl draws from Python's random generator too
            os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # trl.experimental warns on import
            from datasets import Dataset
            from transformers import PrinterCallback
            from trl.experimental.gkd import GKDConfig, GKDTrainer

            new = any(f.name == "activation_checkpointing" for f in fields(GKDConfig))  # transformers >= 5
            ckpt = "activation_checkpointing" if new else "gradient_checkpointing"
            args = GKDConfig(
                output_dir=out, max_steps=steps, per_device_train_batch_size=batch_size, learning_rate=lr,
                lr_scheduler_type="constant", seed=seed, lmbda=lmbda, beta=beta, temperature=temperature,
                max_new_tokens=max_new_tokens, max_length=ctx, loss_type="nll", disable_dropout=False,
                bf16=False, fp16=False, use_cpu=device.type == "cpu", dataloader_pin_memory=False,
                report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True, **{ckpt: False},
            )  # fmt: skip
            trainer = GKDTrainer(
                model=student, teacher_model=teacher, args=args, train_dataset=Dataset.from_list(rows),
                processing_class=hf,
            )  # fmt: skip
            trainer.model_accepts_loss_kwargs = False  # divide by the tokens trained on (see above)
            trainer.remove_callback(PrinterCallback)  # the log is returned, not printed
            trainer.train()
    finally:
        for model, mode, dev, keys, use_cache in states:
            model.to(dev).train(mode)
            if use_cache is not None:
                model.config.use_cache = use_cache
            for key in set(vars(model)) - keys:  # model_tags, accelerate's _is_accelerate_prepared
                delattr(model, key)
        if output_dir is None:
            shutil.rmtree(out, ignore_errors=True)
    return [dict(r) for r in trainer.state.log_history if "loss" in r]
