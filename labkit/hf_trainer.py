"""Distillation inside Hugging Face conventions: a ``transformers.Trainer`` subclass and its arguments.

``DistillationTrainer(model=student, teacher_model=teacher, args=DistillationTrainingArguments(...), ...)`` is a
``Trainer``: ``train()``, ``evaluate()``, callbacks and ``save_model`` work as usual (``save_model`` writes the
student only). The arguments add ``temperature``, ``alpha``, ``hidden_weight``, ``attention_weight`` and
``layer_map`` to ``TrainingArguments``. The loss is ``transformer_kd_loss``:

.. math::  L = \\underbrace{(1-\\alpha) CE + \\alpha T^2 KL(p_t^T \\| p_s^T)}_{\\text{OBJECTIVES["hinton"]}}
    + \\beta_h \\sum_{(i, j)} MSE(W_i h^s_i, h^t_j) + \\beta_a \\sum_{(i, j)} KL(A^t_j \\| A^s_i)

over the real (non-padding) tokens, for the mapped layer pairs ``(student i, teacher j)``: TinyBERT's hidden-state
loss with a learned projection ``W_i`` (Jiao et al., 2020; ``HintLoss`` with a linear regressor, trained with the
student and dropped when it is saved) and MiniLM's attention-distribution KL (Wang et al., 2020; ``attention_rows_kl``: ``kd_kl_loss`` at
T = 1 on each attention row, heads averaged when the two models have different head counts). Without a teacher
the trainer fine-tunes with plain cross-entropy, so a no-KD baseline runs through the same code.

The attention maps ``A`` are the attention *probabilities* (rows that sum to 1). In train mode a Hugging Face
model returns them after attention-probability dropout (``config.attention_probs_dropout_prob``, 0.1 for BERT):
some entries zeroed, the rest scaled by ``1 / (1 - p)``. Two identical models then differ by 2-3 nats of
"attention KL". The trainer therefore runs the student's forward inside ``attention_dropout_off(student)``
whenever the attention term is on: attention-probability dropout is off for that forward (whose logits and
hidden states feed the other terms too), hidden-state dropout stays as it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from transformers import PrinterCallback, Trainer, TrainingArguments
from transformers.modeling_outputs import SequenceClassifierOutput

from ._validate import check_alpha, check_positive_int, check_temperature
from .data import cache_dir
from .hf import TextCollator, TokenizedText, _quiet_transformers, check_pair, load_pretrained, save_checkpoint
from .losses import attention_rows_kl, get_objective, labelled_cross_entropy

__all__ = [
    "DistillationTrainer",
    "DistillationTrainingArguments",
    "attention_dropout_off",
    "finetune_or_load",
    "transformer_kd_loss",
    "uniform_layer_map",
]


@dataclass
class DistillationTrainingArguments(TrainingArguments):
    """``TrainingArguments`` plus the distillation knobs. ``layer_map`` pairs ``(student_layer, teacher_layer)``,
    counted as in ``output_hidden_states`` (0 = embeddings, i = output of transformer layer i); ``None`` maps
    student layer i to teacher layer ``i * L_t / L_s`` (TinyBERT's uniform strategy). Quiet defaults for
    notebooks: no reporting integrations, no intermediate checkpoints."""

    temperature: float = field(default=2.0, metadata={"help": "softmax temperature T of the logit KD term"})
    alpha: float = field(
        default=0.5, metadata={"help": "weight of the KD term: (1 - alpha) CE + alpha T^2 KL"}
    )
    hidden_weight: float = field(default=0.0, metadata={"help": "weight of the hidden-state MSE (0 = off)"})
    attention_weight: float = field(default=0.0, metadata={"help": "weight of the attention KL (0 = off)"})
    layer_map: list[tuple[int, int]] | None = field(
        default=None, metadata={"help": "(student, teacher) layers"}
    )
    length_grouped: bool = field(
        default=False, metadata={"help": "batches of texts of similar length, in random order (less padding)"}
    )
    report_to: str | list[str] | None = "none"
    save_strategy: str = "no"
    remove_unused_columns: bool = False  # keep the cached teacher logits in the batch

    def __post_init__(self) -> None:
        super().__post_init__()
        check_temperature(self.temperature)
        check_alpha(self.alpha)
        for name in ("hidden_weight", "attention_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0 (0 switches the term off), got {value!r}.")
        if not isinstance(self.length_grouped, bool):
            raise TypeError(f"length_grouped must be True or False, got {self.length_grouped!r}.")


def uniform_layer_map(student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """``[(i, round(i * L_t / L_s)) for i = 1..L_s]``: every student layer learns from the teacher layer at the
    same relative depth (2 student layers, 6 teacher layers: ``[(1, 3), (2, 6)]``)."""
    student_layers = check_positive_int(student_layers, "student_layers")
    teacher_layers = check_positive_int(teacher_layers, "teacher_layers")
    return [(i, round(i * teacher_layers / student_layers)) for i in range(1, student_layers + 1)]


def _check_layer_map(layer_map: Sequence, student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    pairs = [tuple(p) for p in layer_map]
    bad = [
        p for p in pairs if len(p) != 2 or not 0 <= p[0] <= student_layers or not 0 <= p[1] <= teacher_layers
    ]
    if not pairs or bad:
        raise ValueError(
            f"layer_map pairs (student_layer, teacher_layer) must lie in 0..{student_layers} and 0..{teacher_layers} "
            f"(0 = embeddings), got {layer_map!r}."
        )
    return [(int(s), int(t)) for s, t in pairs]


# An attention module is recognised by its query and key projections; its attention-probability dropout is an
# nn.Dropout child (BERT reads ``self.dropout.p`` and passes it to the attention function; older versions call it)
# or a float (``attention_dropout`` in Llama-style modules). Names only: a residual dropout (GPT-Neo's
# ``resid_dropout``) sits next to the attention dropout and is hidden-state dropout.
_QUERY_KEY = (("query", "key"), ("q_lin", "k_lin"), ("q_proj", "k_proj"))
_ATTENTION_DROPOUT = ("dropout", "attn_dropout", "attention_dropout")


def _attention_dropouts(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """``(owner, attribute)`` of every attention-probability dropout of ``model``: an ``nn.Dropout`` (its ``p``)
    or a float probability, on the modules that own query and key projections."""
    found = []
    for module in model.modules():
        if not any(hasattr(module, q) and hasattr(module, k) for q, k in _QUERY_KEY):
            continue
        for name in _ATTENTION_DROPOUT:
            value = getattr(module, name, None)
            if isinstance(value, nn.Dropout):
                found.append((value, "p"))
            elif isinstance(value, float) and not isinstance(value, bool):
                found.append((module, name))
    return found


def _configured_attention_dropout(model: nn.Module) -> float:
    cfg = getattr(model, "config", None)
    for name in ("attention_probs_dropout_prob", "attention_dropout"):
        value = getattr(cfg, name, None)
        if isinstance(value, (int, float)):
            return float(value)
    return 0.0


@contextlib.contextmanager
def attention_dropout_off(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, ``model``'s attention-probability dropout is ``p = 0``; everything else is unchanged.

    Eager attention computes ``A = dropout(softmax(Q K^T / sqrt(d) + mask), p)`` and ``output_attentions=True``
    returns that ``A``: in train mode its rows no longer sum to 1 (entries zeroed, the rest scaled by
    ``1 / (1 - p)``), so a KL between attention maps (MiniLM, Wang et al., 2020) measures dropout noise. Inside
    this block a train-mode forward returns the attention probabilities themselves, with gradients, while
    hidden-state dropout (embeddings, attention output, feed-forward) still regularises the student. The
    dropout probabilities are restored on exit, also after an exception. Not for use with activation (gradient)
    checkpointing, which recomputes the forward during ``backward()``, outside the block.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"attention_dropout_off needs a transformers model (an nn.Module), got {type(model).__name__}."
        )
    found = _attention_dropouts(model)
    saved = [getattr(owner, name) for owner, name in found]
    try:
        for owner, name in found:
            setattr(owner, name, 0.0)
        yield model
    finally:
        for (owner, name), value in zip(found, saved, strict=True):
            setattr(owner, name, value)


def _check_attention_rows(attn: torch.Tensor, real: torch.Tensor, who: str, layer: int) -> None:
    """The real query rows of an attention map ``(B, H, L, L)`` must be distributions over the keys (sum to 1),
    not rows after attention dropout; ``real`` ``(B, L)`` marks the real tokens."""
    sums = attn.detach().float().sum(-1).transpose(1, 2)[real].flatten()  # per real query row and head
    tol = 1e-3 if attn.dtype in (torch.float32, torch.float64) else 2e-2
    if sums.numel() and float((sums - 1).abs().max()) > tol:
        worst = float(sums[(sums - 1).abs().argmax()])
        raise ValueError(
            f"the {who}'s attention maps of layer {layer} are not distributions: a row sums to {worst:.4g}, not 1. "
            "They were returned after attention dropout (a train-mode forward): run the student's forward inside "
            "labkit.hf_trainer.attention_dropout_off(model) (DistillationTrainer does) and the teacher in eval()."
        )


def transformer_kd_loss(
    student_out,
    teacher_out,
    labels: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    temperature: float = 2.0,
    alpha: float = 0.5,
    hidden_weight: float = 0.0,
    attention_weight: float = 0.0,
    layer_map: Sequence[tuple[int, int]] = (),
    projections: Sequence[nn.Module] = (),
    objective: Callable | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The distillation loss of one batch and its parts ``{"logits", "hidden", "attention"}`` (floats).

    ``student_out`` / ``teacher_out``: model outputs with ``.logits`` ``(B, K)`` (the teacher may be given as its
    logits alone when no layer term is on), ``.hidden_states`` (tuples of ``(B, L, D)``) when ``hidden_weight > 0``
    and ``.attentions`` (``(B, H, L, L)``) when ``attention_weight > 0``. ``attention_mask`` ``(B, L)`` selects the
    real tokens. ``objective(student_logits, teacher_logits, labels, temperature, alpha)`` is the logit term
    (default: ``OBJECTIVES["hinton"]``).

    The attentions must be attention probabilities, rows summing to 1: a train-mode student's forward belongs
    inside ``attention_dropout_off(student)``, else attention dropout's zeroed and rescaled rows make the KL
    measure dropout noise (about 2.5 nats per layer between two identical BERTs at ``p = 0.1``). Rows that do
    not sum to 1 raise a ``ValueError``.
    """
    objective = objective or get_objective("hinton")
    t_logits = teacher_out if isinstance(teacher_out, torch.Tensor) else teacher_out.logits
    logit_term = objective(student_out.logits, t_logits, labels, temperature, alpha)
    loss, parts = logit_term, {"logits": float(logit_term.detach())}
    real = attention_mask.bool()  # (B, L): padding positions carry nothing to imitate
    if hidden_weight > 0:
        hidden = sum(  # HintLoss: MSE(W h_s, h_t) over (tokens, D_t)
            proj(student_out.hidden_states[i][real], teacher_out.hidden_states[j][real])
            for (i, j), proj in zip(layer_map, projections, strict=True)
        )
        loss, parts["hidden"] = loss + hidden_weight * hidden, float(hidden.detach())
    if attention_weight > 0:
        attention = loss.new_zeros(())
        pairs = [(i, j) for i, j in layer_map if i > 0 and j > 0]  # layer 0 (the embeddings) has no attention
        for i, j in pairs:
            a_s, a_t = student_out.attentions[i - 1], teacher_out.attentions[j - 1]  # (B, H, L, L)
            _check_attention_rows(a_s, real, "student", i)
            _check_attention_rows(a_t, real, "teacher", j)
            if a_s.shape[1] != a_t.shape[1]:  # different head counts: compare the heads' average distribution
                a_s, a_t = a_s.mean(1, keepdim=True), a_t.mean(1, keepdim=True)
            attention = attention + attention_rows_kl(a_s, a_t, attention_mask)  # real query rows only
        loss, parts["attention"] = loss + attention_weight * attention, float(attention.detach())
    return loss, parts


class LengthGroupedBatches(torch.utils.data.Sampler):
    """Indices in batches of texts of similar length, the batches in random order: each epoch shuffles the texts,
    sorts each window of ``50 * batch_size`` of them by length, cuts it into batches and shuffles all batches.

    Padding per batch then costs little (a batch of short phrases is not padded to a long review). Unlike
    ``transformers``' ``LengthGroupedSampler``, whose batches run from longest to shortest within each window, the
    order of the batches is random, so the end of training is not made of the shortest texts only. The order of
    epoch ``e`` depends only on ``(seed, e)``.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, window: int = 50) -> None:
        self.lengths, self.batch_size, self.seed, self.window = list(lengths), batch_size, seed, window
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(len(self.lengths), generator=g).tolist()
        size = self.window * self.batch_size
        batches = []
        for start in range(0, len(order), size):
            window = sorted(order[start : start + size], key=self.lengths.__getitem__)
            batches += [window[i : i + self.batch_size] for i in range(0, len(window), self.batch_size)]
        for b in torch.randperm(len(batches), generator=g).tolist():
            yield from batches[b]


class DistillationTrainer(Trainer):
    """A ``transformers.Trainer`` whose loss is ``transformer_kd_loss`` against ``teacher_model``.

    ``teacher_model=None`` trains with cross-entropy alone (the no-KD baseline). The teacher runs in ``eval()``
    under ``no_grad``; when the training set carries cached teacher logits (``TokenizedText.with_teacher_logits``)
    and no layer term is on, the teacher is not run at all. ``objective`` (a name in ``labkit.OBJECTIVES`` taking
    ``(student_logits, teacher_logits, labels, T, alpha)``, or such a callable) is the logit term. The hidden-state
    projections are trained with the student (an extra optimizer group) and are not part of ``save_model``.
    ``last_loss_parts`` holds the parts of the last training batch's loss.
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        args: DistillationTrainingArguments | None = None,
        teacher_model: nn.Module | None = None,
        objective: str | Callable = "hinton",
        **kwargs,
    ) -> None:
        if not isinstance(args, DistillationTrainingArguments):
            raise ValueError(
                "DistillationTrainer needs args=lk.DistillationTrainingArguments(output_dir=..., temperature=..., "
                f"alpha=...), got {type(args).__name__}."
            )
        if model is None:
            raise ValueError("DistillationTrainer needs the student as model=...")
        pad = getattr(kwargs.get("processing_class"), "pad_token_id", None)
        kwargs.setdefault("data_collator", TextCollator(pad or getattr(model.config, "pad_token_id", 0) or 0))
        layers_on = args.hidden_weight > 0 or args.attention_weight > 0
        if teacher_model is None and layers_on:
            raise ValueError("hidden_weight / attention_weight > 0 need a teacher_model to imitate.")
        super().__init__(model=model, args=args, **kwargs)
        if args.disable_tqdm and args.logging_strategy == "no":  # nothing asked to be logged: print nothing
            self.remove_callback(PrinterCallback)
        self.objective = get_objective(objective) if isinstance(objective, str) else objective
        self.teacher, self.layer_map, self.projections = teacher_model, [], nn.ModuleList()
        self.last_loss_parts: dict[str, float] = {}
        self._projections_in_optimizer = False
        if teacher_model is None:
            return
        check_pair(teacher_model, model)
        self.teacher = teacher_model.to(self.args.device).eval().requires_grad_(False)
        s_cfg, t_cfg = model.config, teacher_model.config
        if layers_on:
            pairs = args.layer_map or uniform_layer_map(s_cfg.num_hidden_layers, t_cfg.num_hidden_layers)
            self.layer_map = _check_layer_map(pairs, s_cfg.num_hidden_layers, t_cfg.num_hidden_layers)
        if args.attention_weight > 0:
            for who, m in (("student", model), ("teacher", teacher_model)):
                if getattr(m.config, "_attn_implementation", "eager") != "eager":
                    raise ValueError(
                        f"attention distillation needs the {who}'s attention maps, which only the eager attention "
                        "returns: load it with attn_implementation='eager' (load_pretrained does)."
                    )
            if _configured_attention_dropout(model) > 0 and not _attention_dropouts(model):
                raise ValueError(
                    f"the student's config has attention dropout {_configured_attention_dropout(model)}, but "
                    f"labkit cannot find it in this {type(model).__name__} to switch it off for the attention maps "
                    "(they would be dropped-out rows, not distributions): load the student with "
                    "attention_probs_dropout_prob=0.0."
                )
            checkpointing = getattr(args, "activation_checkpointing", None) or args.gradient_checkpointing
            if checkpointing or any(
                getattr(m, "gradient_checkpointing", False) is True for m in model.modules()
            ):
                raise ValueError(
                    "attention distillation runs the student's forward with attention dropout off, and activation "
                    "(gradient) checkpointing would recompute it during backward() with dropout on: set "
                    "activation_checkpointing=False (and do not call gradient_checkpointing_enable), or "
                    "attention_weight=0."
                )
        if args.hidden_weight > 0:
            # HintLoss: a learned linear map from the student's width to the teacher's, then MSE
            hint = get_objective("hint")
            self.projections = nn.ModuleList(
                hint(s_cfg.hidden_size, t_cfg.hidden_size, spatial=False) for _ in self.layer_map
            ).to(self.args.device)

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.length_grouped and isinstance(dataset, TokenizedText):
            batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
            return LengthGroupedBatches(dataset.lengths(), batch, seed=self.args.seed)
        return super()._get_train_sampler(train_dataset)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """``Trainer.save_model``: the student alone (weights, config, tokenizer), without progress bars."""
        with _quiet_transformers():
            super().save_model(output_dir, _internal_call)

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        params = list(self.projections.parameters())
        # added before the scheduler is built, so the projections follow the same schedule
        if params and not self._projections_in_optimizer:
            optimizer.add_param_group({"params": params, "weight_decay": 0.0})
            self._projections_in_optimizer = True
        return optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        labels, cached = inputs.pop("labels"), inputs.pop("teacher_logits", None)
        want_h = self.args.hidden_weight > 0 and model.training  # evaluation reports the logit loss only
        want_a = self.args.attention_weight > 0 and model.training
        # the attention term compares attention probabilities: no attention dropout in the forward that returns them
        with attention_dropout_off(model) if want_a else contextlib.nullcontext():
            out = model(**inputs, output_hidden_states=want_h, output_attentions=want_a)
        if self.teacher is None:
            loss = labelled_cross_entropy(out.logits, labels)
            parts = {"logits": float(loss.detach())}
        else:
            if cached is not None and not (want_h or want_a):
                t_out = cached.to(out.logits.device)  # (B, K) cached teacher logits
            else:
                with torch.no_grad():
                    t_out = self.teacher(**inputs, output_hidden_states=want_h, output_attentions=want_a)
            loss, parts = transformer_kd_loss(
                out, t_out, labels, inputs["attention_mask"],
                temperature=self.args.temperature, alpha=self.args.alpha,
                hidden_weight=self.args.hidden_weight if want_h else 0.0,
                attention_weight=self.args.attention_weight if want_a else 0.0,
                layer_map=self.layer_map, projections=self.projections, objective=self.objective,
            )  # fmt: skip
        if model.training:
            self.last_loss_parts = parts
        return (loss, SequenceClassifierOutput(loss=loss, logits=out.logits)) if return_outputs else loss


_KEY_ARGS = ("num_train_epochs", "max_steps", "learning_rate", "per_device_train_batch_size", "weight_decay",
             "warmup_steps", "lr_scheduler_type", "length_grouped", "seed")  # fmt: skip


def finetune_or_load(
    checkpoint: str | Path,
    train: TokenizedText,
    args: DistillationTrainingArguments,
    *,
    num_labels: int,
    name: str = "teacher",
    cache: str | Path | None = None,
):
    """``(model, tokenizer)``: ``checkpoint`` fine-tuned on ``train`` with cross-entropy, or the cached result.

    The cache key hashes the checkpoint's name, the token ids and labels of ``train`` and the training arguments
    that change the result, so any change retrains. The fine-tuned model is saved with ``save_pretrained`` and
    read back through ``load_pretrained``, the same path as any other checkpoint. ``num_train_epochs=0`` skips
    training (a checkpoint that is already fine-tuned on the task).
    """
    h = hashlib.sha1(
        json.dumps([str(checkpoint), train.encodings["input_ids"], train.labels.tolist()]).encode()
    )
    h.update(json.dumps({k: getattr(args, k) for k in _KEY_ARGS}, default=str).encode())
    folder = (Path(cache) if cache is not None else cache_dir() / "hf") / f"{name}-{h.hexdigest()[:10]}"
    if (folder / "labkit.json").is_file():
        print(f"[labkit] loaded cached {name} from {folder}")
        return load_pretrained(folder, verbose=False)
    model, tokenizer = load_pretrained(checkpoint, num_labels=num_labels)
    if args.num_train_epochs > 0 or args.max_steps > 0:
        DistillationTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer).train()
    save_checkpoint(
        model,
        tokenizer,
        folder,
        {"checkpoint": str(checkpoint), "args": {k: getattr(args, k) for k in _KEY_ARGS}},
    )
    model.eval()
    return model, tokenizer
