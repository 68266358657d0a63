"""Bring your own text (the capstone): a CSV/TSV file of sentences and labels, or a Hugging Face ``datasets``
name, as ``TextSplits`` that every text student of the course takes (``TextFeatures`` + an MLP as in lesson 06,
``lk.tokenize`` + a transformer as in lesson 04).

* ``load_text_file(path)``: one text column (``text``, ``sentence``, ``review``, ... by default) and one label
  column (``label``); ``.tsv``/``.tab`` files are tab-separated, everything else comma-separated. A second file
  (``test_path``) is the test split, otherwise a class-stratified ``test_fraction`` is held out.
* ``load_hf_text(name, config)``: ``datasets.load_dataset(name, config)`` (needs internet the first time, then
  the Hugging Face cache); its ``test`` split (``validation`` when the test labels are hidden, as in GLUE), else
  a held-out fraction of ``train``. ``ClassLabel`` names become the class names.

``lk.load_text_dataset("reviews.csv")`` and ``lk.load_text_dataset("hf:imdb")`` (``"hf:glue:sst2"`` for a
configuration) go through these loaders with the default column names, so lessons 04 and 06 run on your text
by changing their dataset parameter. Labels may be class names or integers; the classes are their sorted
distinct values. Every bad input is a ``ValueError`` that names the argument and what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._validate import check_fraction, check_positive_int
from .data import _check_flag, _check_path, _check_seed, _check_timeout, _stratified_choice, cache_dir
from .text import TextData, TextSplits, _limit

__all__ = ["TEXT_COLUMNS", "TextFileNotFoundError", "load_hf_text", "load_text_file"]

TEXT_COLUMNS = ("text", "sentence", "review", "content", "document")  # tried in order when text_column=None
_INT = re.compile(r"[-+]?\d+(\.0*)?")


class TextFileNotFoundError(FileNotFoundError, ValueError):
    """A text file that is not there: a ``FileNotFoundError`` and, like every bad argument here, a ``ValueError``."""


def _text_column(columns: Sequence[str], text_column: str | None, where: str) -> str:
    if text_column is None:
        found = [c for c in TEXT_COLUMNS if c in columns]
        if not found:
            raise ValueError(
                f"text_column: {where} has none of the default text columns {list(TEXT_COLUMNS)}; its columns "
                f"are {list(columns)}. Pass text_column=<the column that holds the sentences>."
            )
        return found[0]
    if text_column not in columns:
        raise ValueError(
            f"text_column={text_column!r} is not a column of {where}; the columns found are {list(columns)}."
        )
    return text_column


def _check_label_column(columns: Sequence[str], label_column: str, where: str) -> None:
    if label_column not in columns:
        raise ValueError(
            f"label_column={label_column!r} is not a column of {where}; the columns found are {list(columns)}."
        )


def _encode_labels(
    values: Sequence[Any],
    label_column: str,
    where: str,
    names: list[str] | None = None,
    rows: Sequence[int] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Raw labels (class names, integers, or ``ClassLabel`` ids with ``names``) -> ``(y (N,) int64, classes)``.
    ``rows``: the data row (0-based, after the header) of each value in its file, for messages."""
    raw = ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip() for v in values]
    rows = list(range(len(raw))) if rows is None else list(rows)
    missing = [rows[i] for i, v in enumerate(raw) if v == ""]
    if missing:
        raise ValueError(
            f"label_column={label_column!r} of {where}: {len(missing)} row(s) have no label (first rows "
            f"{missing[:5]}, counting data rows from 0 after the header); every row needs one. Drop those rows, "
            "or keep them apart as unlabelled text."
        )
    odd = [i for i, v in enumerate(raw) if v.lower().lstrip("+-") in ("nan", "inf", "infinity")]
    if odd:
        raise ValueError(
            f"label_column={label_column!r} of {where}: {len(odd)} label(s) are NaN or infinite (first rows "
            f"{[rows[i] for i in odd[:5]]}: {[raw[i] for i in odd[:5]]}); a label is a class name or an integer."
        )
    if names is not None:  # ClassLabel ids 0..K-1 (-1 = a hidden label, e.g. GLUE's test split)
        ids = np.asarray([int(v) for v in raw], dtype=np.int64)
        if ids.min() < 0:
            raise ValueError(
                f"label_column={label_column!r} of {where}: {int((ids < 0).sum())} label(s) are -1 (hidden, as in "
                "GLUE's test split); use a split with labels (test_split='validation')."
            )
        return ids, list(names)
    if all(_INT.fullmatch(v) for v in raw):
        distinct = sorted({int(float(v)) for v in raw})  # integers in numeric order: 2 < 10
        classes = [str(c) for c in distinct]
        index = {c: i for i, c in enumerate(distinct)}
        y = np.asarray([index[int(float(v))] for v in raw], dtype=np.int64)
    else:
        try:
            numbers = [float(v) for v in raw]
        except ValueError:
            numbers = None
        if numbers is not None:
            frac = next(v for v in raw if not _INT.fullmatch(v))
            raise ValueError(
                f"label_column={label_column!r} of {where} holds numbers that are not whole (e.g. {frac!r}): a "
                "classification label is a class name or an integer. Bin a score into classes first."
            )
        classes = sorted(set(raw))
        index = {c: i for i, c in enumerate(classes)}
        y = np.asarray([index[v] for v in raw], dtype=np.int64)
    if len(classes) < 2:
        raise ValueError(
            f"label_column={label_column!r} of {where} has a single class ({classes[0]!r} in all {len(raw)} rows); "
            "a classifier needs at least 2 classes."
        )
    if len(classes) > 20 and len(classes) > len(raw) // 2:
        raise ValueError(
            f"label_column={label_column!r} of {where} has {len(classes)} distinct values in {len(raw)} rows: that "
            f"looks like an id or free text, not a class label (first values: {classes[:3]}). Pick the label "
            "column with label_column=..."
        )
    return y, classes


def _read_table(path: Path, encoding: str, what: str, advice: str, **read_csv: Any):
    """``pd.read_csv(path, encoding=encoding, **read_csv)``; every way the file can be unreadable (empty, a
    parser error, another encoding, an unknown encoding, an OS error, a header without rows) becomes a ValueError
    naming it. ``what`` names the format in the parser's message and ``advice`` says how to mend it."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, encoding=encoding, **read_csv)
    except pd.errors.EmptyDataError:
        raise ValueError(f"path: {path} is empty (no header, no rows).") from None
    except pd.errors.ParserError as err:
        raise ValueError(f"path: cannot read {path} as {what}: {err}. {advice}") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"path: {path} is not {encoding} text ({err.reason}); pass encoding=...") from None
    except LookupError:
        raise ValueError(
            f"encoding={encoding!r} is not a text encoding Python knows (e.g. 'utf-8', 'latin-1', 'cp1252')."
        ) from None
    except OSError as err:
        raise ValueError(f"path: cannot read {path}: {err.strerror or err}.") from None
    if len(frame) == 0:
        raise ValueError(f"path: {path} has a header ({list(frame.columns)}) but no rows.")
    return frame


def _read_frame(path: Path, sep: str, encoding: str):
    kind = "TSV" if sep == "\t" else "CSV"
    # every column as text, so labels are parsed here (never a float 1.0 or NaN from pandas' guessing)
    return _read_table(path, encoding, f"{kind} (sep={sep!r})",
                      "A text that contains the separator must be quoted, or pass sep=... for another separator.",
                      sep=sep, dtype=str, keep_default_na=False)  # fmt: skip


def _file_rows(path, text_column, label_column, sep, encoding, verbose, arg="path"):
    path = _check_path(path, arg)
    if path.is_dir():
        raise ValueError(
            f"{arg}: {path} is a folder, not a text file (a .csv or .tsv file with a header row)."
        )
    if not path.is_file():
        raise TextFileNotFoundError(
            f"path: text file {path} not found (a .csv or .tsv file with a header row: a text and a label column)."
        )
    sep = sep if sep is not None else ("\t" if path.suffix.lower() in (".tsv", ".tab") else ",")
    frame = _read_frame(path, sep, encoding)
    columns = [str(c) for c in frame.columns]
    column = _text_column(columns, text_column, str(path))
    _check_label_column(columns, label_column, str(path))
    texts = [str(t).strip() for t in frame[column]]
    keep = [i for i, t in enumerate(texts) if t]
    if not keep:
        raise ValueError(f"text_column={column!r} of {path} is empty in every row.")
    if len(keep) < len(texts) and verbose:
        print(f"{path.name}: dropped {len(texts) - len(keep)} row(s) with an empty {column!r}.")
    return path, [texts[i] for i in keep], [frame[label_column].iloc[i] for i in keep], keep


def _split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < check_fraction(test_fraction, "test_fraction") < 1:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction!r}.")
    if len(y) < 4:
        raise ValueError(f"need at least 4 labelled texts to split into train and test, got {len(y)}.")
    k = min(max(round(test_fraction * len(y)), 1), len(y) - 1)
    test = _stratified_choice(y, k, np.random.default_rng(seed))
    return np.setdiff1d(np.arange(len(y)), test), test


def _check_limits(max_train: Any, max_test: Any) -> None:
    for value, arg in ((max_train, "max_train"), (max_test, "max_test")):
        if value is not None:
            check_positive_int(value, arg)


def _splits(train_rows, test_rows, classes, name, source, max_train, max_test, seed, verbose) -> TextSplits:
    _check_limits(max_train, max_test)
    (tr, ytr), (te, yte) = _limit(*train_rows, max_train, seed), _limit(*test_rows, max_test, seed + 1)
    out = TextSplits(
        TextData(list(tr), torch.from_numpy(np.asarray(ytr, dtype=np.int64)), list(classes), name, source),
        TextData(list(te), torch.from_numpy(np.asarray(yte, dtype=np.int64)), list(classes), name, source),
    )
    if verbose:
        counts = np.bincount(out.train.y.numpy(), minlength=len(classes)).tolist()
        print(f"{name}: {len(tr):,} train / {len(te):,} test texts, {len(classes)} classes {classes} "
              f"(train counts {counts}; {source})")  # fmt: skip
    return out


def load_text_file(
    path: str | Path,
    *,
    text_column: str | None = None,
    label_column: str = "label",
    sep: str | None = None,
    test_path: str | Path | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    max_train: int | None = None,
    max_test: int | None = None,
    encoding: str = "utf-8",
    verbose: bool = True,
) -> TextSplits:
    """Sentences and labels from a CSV/TSV file with a header row, as ``TextSplits``.

    ``text_column``: the sentences (``None``: the first of ``TEXT_COLUMNS`` present); ``label_column``: class
    names or integers; ``sep``: the separator (``None``: tab for ``.tsv``/``.tab``, else comma); ``test_path``:
    a second file with the same columns as the test split, else ``test_fraction`` is held out, stratified, with
    ``seed``; ``max_train``/``max_test``: stratified subsamples. Rows with an empty text are dropped (announced).
    """
    if sep is not None and (not isinstance(sep, str) or not sep):
        raise ValueError(f"sep must be a separator string such as ',' or '\\t', got {sep!r}.")
    if not isinstance(encoding, str):
        raise TypeError(f"encoding must be the name of a text encoding (str), got {encoding!r}.")
    if test_path is None and not (0 < check_fraction(test_fraction, "test_fraction") < 1):
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction!r}.")
    seed, verbose = _check_seed(seed), _check_flag(verbose, "verbose")
    _check_limits(max_train, max_test)
    path, texts, labels, rows = _file_rows(path, text_column, label_column, sep, encoding, verbose)
    if test_path is not None:
        test_path, test_texts, test_labels, _ = _file_rows(
            test_path, text_column, label_column, sep, encoding, verbose, arg="test_path"
        )
        y, classes = _encode_labels([*labels, *test_labels], label_column, f"{path} + {test_path}")
        train_rows, test_rows = (texts, y[: len(texts)]), (test_texts, y[len(texts) :])
        source = f"local files: {path.name} + {test_path.name}"
    else:
        y, classes = _encode_labels(labels, label_column, str(path), rows=rows)
        train, test = _split(y, test_fraction, seed)
        train_rows, test_rows = ([texts[i] for i in train], y[train]), ([texts[i] for i in test], y[test])
        source = f"local file: {path.name}"
    return _splits(train_rows, test_rows, classes, path.stem, source, max_train, max_test, seed, verbose)


def _hf_load(name: str, config: str | None, cache: str | None, timeout: float):
    try:
        import datasets  # Hugging Face datasets, an optional dependency
    except ImportError as err:
        raise ImportError(
            f"name={name!r}: loading a Hugging Face dataset needs the `datasets` package: `pip install datasets` "
            "(Colab has it). Offline, export the data to a CSV/TSV file and use lk.load_text_file."
        ) from err
    import socket

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        return datasets.load_dataset(name, config, cache_dir=cache or str(cache_dir() / "hf_datasets"))
    except Exception as err:  # ConnectionError offline, DatasetNotFoundError, a missing config, ...
        call = repr(name) if config is None else f"{name!r}, {config!r}"
        raise ValueError(
            f"name={name!r}: datasets.load_dataset({call}) failed: {type(err).__name__}: {err}. "
            "A Hub dataset needs internet access the first time (later runs read the Hugging Face cache); check "
            "the name and configuration on huggingface.co/datasets. Offline, export the splits to CSV/TSV files "
            "and use lk.load_text_file(path, test_path=...)."
        ) from err
    finally:
        socket.setdefaulttimeout(previous)


def load_hf_text(
    name: str,
    config: str | None = None,
    *,
    text_column: str | None = None,
    label_column: str = "label",
    train_split: str = "train",
    test_split: str | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    max_train: int | None = None,
    max_test: int | None = None,
    cache: str | None = None,
    timeout: float = 60.0,
    verbose: bool = True,
) -> TextSplits:
    """A Hugging Face dataset (``datasets.load_dataset(name, config)``) as ``TextSplits``.

    ``test_split``: ``None`` takes ``test`` when its labels are given, else ``validation``, else holds out
    ``test_fraction`` of ``train_split`` (stratified, ``seed``). Columns as in ``load_text_file``. Fails with
    a ``ValueError`` that says why when the dataset cannot be loaded (offline, a wrong name): no fallback.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a Hugging Face dataset name such as 'imdb', got {name!r}.")
    if config is not None and not isinstance(config, str):
        raise ValueError(f"config must be a configuration name (str) or None, got {config!r}.")
    if test_split is None and not (0 < check_fraction(test_fraction, "test_fraction") < 1):
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction!r}.")
    seed, verbose = _check_seed(seed), _check_flag(verbose, "verbose")
    _check_timeout(timeout)
    _check_limits(max_train, max_test)
    ds = _hf_load(name, config, cache, timeout)
    splits = list(ds.keys()) if hasattr(ds, "keys") else []
    where = name if config is None else f"{name}/{config}"
    if train_split not in splits:
        raise ValueError(f"train_split={train_split!r} is not a split of {where}; its splits are {splits}.")
    columns = list(ds[train_split].column_names)
    column = _text_column(columns, text_column, f"{where}[{train_split!r}]")
    _check_label_column(columns, label_column, f"{where}[{train_split!r}]")
    feature = ds[train_split].features.get(label_column)
    names = list(feature.names) if hasattr(feature, "names") else None

    def labelled(split: str) -> bool:
        return names is None or min(ds[split][label_column], default=-1) >= 0

    if test_split is None:
        test_split = next((s for s in ("test", "validation") if s in splits and labelled(s)), None)
    elif test_split not in splits:
        raise ValueError(f"test_split={test_split!r} is not a split of {where}; its splits are {splits}.")
    texts = [str(t).strip() for t in ds[train_split][column]]
    labels = list(ds[train_split][label_column])
    if test_split is not None:
        test_texts = [str(t).strip() for t in ds[test_split][column]]
        y, classes = _encode_labels(
            [*labels, *ds[test_split][label_column]],
            label_column,
            f"{where}[{train_split!r}, {test_split!r}]",
            names,
        )
        train_rows, test_rows = (texts, y[: len(texts)]), (test_texts, y[len(texts) :])
        source = f"Hugging Face datasets: {where} ({train_split} / {test_split})"
    else:
        y, classes = _encode_labels(labels, label_column, f"{where}[{train_split!r}]", names)
        train, test = _split(y, test_fraction, seed)
        train_rows, test_rows = ([texts[i] for i in train], y[train]), ([texts[i] for i in test], y[test])
        source = f"Hugging Face datasets: {where} ({train_split}, {test_fraction:.0%} held out)"
    if len(set(y.tolist())) < 2:
        raise ValueError(f"label_column={label_column!r} of {where} has a single class; need at least 2.")
    return _splits(
        train_rows, test_rows, classes, where.replace("/", "_"), source, max_train, max_test, seed, verbose
    )
