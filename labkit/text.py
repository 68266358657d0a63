"""Text datasets (sentiment) for the transformer, pseudo-label and cross-domain lessons, and bag-of-words features.

``load_text_dataset`` knows SST-2 movie-review snippets (``"sst2"``) and the Blitzer et al. (2007) Amazon
product reviews (``"books"``, ``"dvd"``, ``"kitchen"``), all binary (0 = negative, 1 = positive). Sources, in
order: a local data folder (``data_dir`` or ``$LABKIT_DATA_DIR``: ``sst2/train.tsv`` + ``sst2/validation.tsv``,
``amazon_multidomain/<domain>.tsv``), a time-bounded download (SST-2 through Hugging Face ``datasets``, the
Amazon reviews from the public GitHub copy used by Ryu & Lee 2020), and finally a synthetic review set that
this module generates (``toy_movies``, ``toy_books``, ``toy_dvd``, ``toy_kitchen``), announced with the same
loud ``DATASET FALLBACK`` banner as the image loader. The toy domains share generic sentiment words and each
has its own, so a model trained on one domain really does lose accuracy on another (a genuine domain shift).

``TextFeatures`` turns texts into TF-IDF vectors stored as ``ImageData`` of shape ``(N, 1, 1, D)``, so that
``fit``, ``evaluate`` and ``batches`` work on text exactly as on images (an MLP flattens its input).
"""

from __future__ import annotations

import csv
import html
import io
import os
import re
import urllib.request
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ._validate import check_index, check_positive_int
from .data import (
    ImageData,
    _bad_rows,
    _check_flag,
    _check_kind,
    _check_labels,
    _check_meta,
    _check_path,
    _check_seed,
    _check_timeout,
    _may_download,
    _Splits,
    _stratified_choice,
    _Unavailable,
    cache_dir,
)

__all__ = ["TEXT_DATASETS", "TextData", "TextFeatures", "TextSplits", "load_text_dataset"]

CLASSES = ["negative", "positive"]
_AMAZON = ("books", "dvd", "kitchen")
_AMAZON_URL = "https://raw.githubusercontent.com/bzantium/bert-AAD/cbe2e0cac6564dfbc6234882a73ca78020ac0d22/data/{domain}/{polarity}.review"
_SPLIT_SEED = 0  # the Amazon domains have no official split: a fixed, stratified 80/20 split on every machine


@dataclass(eq=False, repr=False)
class TextData:
    """Texts with int64 labels ``y`` (``-1`` = unlabelled), the class names, and where they came from."""

    texts: list[str]
    y: torch.Tensor
    classes: list[str]
    name: str
    source: str

    def __post_init__(self) -> None:
        if not isinstance(self.texts, list):
            raise TypeError(f"TextData.texts must be a list of str, got {type(self.texts).__name__}.")
        wrong = next((i for i, t in enumerate(self.texts) if not isinstance(t, str)), None)
        if wrong is not None:
            raise TypeError(
                f"TextData.texts must be a list of str; texts[{wrong}] is a {type(self.texts[wrong]).__name__} "
                f"({self.texts[wrong]!r:.40}). A NaN here is usually an empty cell of a table: drop or fill it."
            )
        if isinstance(self.y, torch.Tensor) and self.y.dim() == 1 and len(self.texts) != len(self.y):
            raise ValueError(f"{len(self.texts)} texts but {len(self.y)} labels; they must match one to one.")
        self.classes, self.name, self.source = _check_meta(self.classes, self.name, self.source, "TextData")
        _check_labels(self.y, len(self.texts), self.classes, "TextData")

    def __len__(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:
        return f"TextData(name={self.name!r}, n={len(self)}, classes={self.classes}, source={self.source!r})"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, idx: Sequence[int] | np.ndarray | torch.Tensor) -> TextData:
        """The examples at the integer indices ``idx``, in that order, or where the boolean mask ``idx`` (one entry
        per example) is True."""
        idx = check_index(idx, len(self))
        y = self.y[idx]
        return TextData([self.texts[i] for i in idx.tolist()], y, list(self.classes), self.name, self.source)

    def unlabelled(self) -> TextData:
        """A copy whose labels are all ``-1`` (a transfer set only a teacher can label)."""
        return TextData(
            list(self.texts), torch.full_like(self.y, -1), list(self.classes), self.name, self.source
        )


@dataclass(eq=False)
class TextSplits(_Splits):
    """Train and test splits of one text dataset; ``fell_back`` is True when the toy data replaced it."""

    train: TextData
    test: TextData

    _kind: ClassVar[type | None] = TextData


# ---- synthetic reviews: shared sentiment words plus words that only one domain uses ------------------------
_GENERIC = {
    1: "great excellent wonderful love perfect recommend best enjoyed fantastic happy".split(),
    0: "terrible awful disappointing worst waste poor hate bad useless regret".split(),
}
_MOVIE_NOUNS = "film movie director actor scene plot script cast ending soundtrack".split()
_TOY = {
    "toy_movies": (
        _MOVIE_NOUNS,
        "gripping hilarious moving masterpiece riveting heartfelt stunning charming".split(),
        "boring predictable dull overlong wooden cliched pointless forgettable".split(),
    ),
    "toy_books": (
        "book novel author chapter story character writer prose pages series".split(),
        "page-turner insightful compelling well-written engrossing thoughtful informative captivating".split(),
        "tedious shallow poorly-written dragged repetitive confusing preachy bland".split(),
    ),
    "toy_dvd": (
        _MOVIE_NOUNS[:6] + "dvd disc extras edition".split(),
        "gripping hilarious moving remastered crisp riveting bonus-features charming".split(),
        "boring predictable dull scratched skips wooden grainy forgettable".split(),
    ),
    "toy_kitchen": (
        "blender knife pan toaster kettle pot handle lid mixer skillet".split(),
        "sturdy durable sharp easy-to-clean heats-evenly reliable solid spotless".split(),
        "flimsy rusted leaks broke cracked wobbly stopped-working melted".split(),
    ),
}
_FILLER = "the this it was is and i a very really my with for of after one week bought use to".split()
_TOY_SIZES = {"toy_movies": (6_000, 872)}  # (train, test); the review domains mimic Blitzer's 1,600 / 400


def _toy(name: str, split_seed: int = 1234) -> tuple[TextData, TextData]:
    """A deterministic synthetic review set: each review mixes filler, domain nouns and 1-3 sentiment words,
    30% of them generic (shared by all domains) and 15% of the opposite polarity (ambiguous reviews)."""
    nouns, pos, neg = _TOY[name]
    n_train, n_test = _TOY_SIZES.get(name, (1_600, 400))
    rng = np.random.default_rng(split_seed + sorted(_TOY).index(name))
    texts, labels = [], []
    for _ in range(n_train + n_test):
        label = int(rng.integers(2))
        words = list(rng.choice(_FILLER, size=rng.integers(4, 9))) + list(rng.choice(nouns, size=2))
        for _ in range(int(rng.integers(1, 4))):
            polarity = label if rng.random() > 0.15 else 1 - label
            own = pos if polarity == 1 else neg
            words.append(str(rng.choice(_GENERIC[polarity] if rng.random() < 0.3 else own)))
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    y = torch.tensor(labels, dtype=torch.int64)
    source = "synthetic reviews generated by labkit.text"
    return (
        TextData(texts[:n_train], y[:n_train], list(CLASSES), name, source),
        TextData(texts[n_train:], y[n_train:], list(CLASSES), name, source),
    )


# ---- real data: local files, then downloads ---------------------------------------------------------------
def _read_tsv(path: Path) -> tuple[list[str], np.ndarray]:
    """A course TSV (``sentence<TAB>label``, labels 0/1): a clear error naming the file, the column and the first
    bad rows for an empty, unreadable or malformed file, a missing/non-integer label or one outside 0/1."""
    import pandas as pd

    fix = "Replace it with a complete copy of the course's data folder, or unset LABKIT_DATA_DIR."
    try:
        frame = pd.read_csv(path, sep="\t", keep_default_na=False, quoting=csv.QUOTE_MINIMAL)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty (0 bytes or no header). {fix}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as err:
        raise ValueError(f"{path} is not a readable UTF-8 TSV ({type(err).__name__}: {err}). {fix}") from None
    if list(frame.columns[:2]) != ["sentence", "label"]:
        raise ValueError(f"{path} must have the header 'sentence<TAB>label', got {list(frame.columns)}.")
    if len(frame) == 0:
        raise ValueError(f"{path} has a header but no rows. {fix}")
    labels = pd.to_numeric(frame["label"], errors="coerce").to_numpy(
        dtype=np.float64
    )  # NaN: empty / not a number
    bad = ~np.isin(labels, (0.0, 1.0))
    if bad.any():
        first = _bad_rows(bad)
        raise ValueError(
            f"{path}: column 'label' must be 0 (negative) or 1 (positive) in every row; {int(bad.sum())} row(s) are "
            f"not (first data rows {first}: {frame['label'].iloc[first].tolist()}). {fix}"
        )
    return [str(t) for t in frame["sentence"]], labels.astype(np.int64)


def _local_files(name: str, data_dir: str | Path | None, verbose: bool) -> list[Path] | None:
    rel = (
        [Path("sst2/train.tsv"), Path("sst2/validation.tsv")]
        if name == "sst2"
        else [Path(f"amazon_multidomain/{name}.tsv")]
    )
    root = data_dir if data_dir is not None else os.environ.get("LABKIT_DATA_DIR")
    if not root:
        return None
    paths = [Path(root).expanduser() / r for r in rel]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing and data_dir is not None:
        is_file = " (data_dir is a file, not a folder)" if Path(root).expanduser().is_file() else ""
        raise FileNotFoundError(
            f"{', '.join(missing)} not found{is_file}. data_dir must hold the course's offline data folder "
            "(sst2/train.tsv + sst2/validation.tsv, amazon_multidomain/<domain>.tsv with a 'sentence<TAB>label' "
            "header). Pass data_dir=None to download instead."
        )
    if missing:
        if verbose:
            print(f"LABKIT_DATA_DIR={root} has no {', '.join(map(str, rel))}; trying other sources.")
        return None
    return paths


def _split(
    texts: list[str], y: np.ndarray
) -> tuple[tuple[list[str], np.ndarray], tuple[list[str], np.ndarray]]:
    test = _stratified_choice(y, round(0.2 * len(y)), np.random.default_rng(_SPLIT_SEED))
    train = np.setdiff1d(np.arange(len(y)), test)
    return ([texts[i] for i in train], y[train]), ([texts[i] for i in test], y[test])


def _download_amazon(domain: str, timeout: float) -> tuple[list[str], np.ndarray]:
    """The 1,000 + 1,000 labelled reviews of one domain, parsed as in shared/data's conversion, cached."""
    cached = cache_dir() / "text" / f"{domain}.tsv"
    if cached.is_file():
        return _read_tsv(cached)
    rows = {}
    for label, polarity in ((1, "positive"), (0, "negative")):
        with urllib.request.urlopen(
            _AMAZON_URL.format(domain=domain, polarity=polarity), timeout=timeout
        ) as r:
            raw = r.read().decode("utf-8", errors="replace")
        for block in re.findall(r"<review_text>(.*?)</review_text>", raw, flags=re.S):
            rows.setdefault(" ".join(html.unescape(block).split()), label)  # dedupe, keep the first
    texts = list(rows)
    np.random.default_rng(0).shuffle(texts)
    cached.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t")
    writer.writerow(["sentence", "label"])
    writer.writerows((t, rows[t]) for t in texts)
    cached.write_text(buf.getvalue(), encoding="utf-8")
    return texts, np.array([rows[t] for t in texts], dtype=np.int64)


def _download_sst2(timeout: float) -> tuple[tuple[list[str], np.ndarray], tuple[list[str], np.ndarray]]:
    import datasets  # Hugging Face datasets; GLUE's test labels are hidden, so validation is the test split

    glue = datasets.load_dataset("glue", "sst2", cache_dir=str(cache_dir() / "hf_datasets"))
    return tuple(
        ([s.strip() for s in glue[split]["sentence"]], np.asarray(glue[split]["label"], dtype=np.int64))
        for split in ("train", "validation")
    )


def _real(name: str, data_dir, download: bool, timeout: float, verbose: bool):
    paths = _local_files(name, data_dir, verbose)
    if paths is not None:
        if name == "sst2":
            return _read_tsv(paths[0]), _read_tsv(paths[1]), f"local: {paths[0].parent}"
        return (*_split(*_read_tsv(paths[0])), f"local: {paths[0]}")
    why_not_local = _may_download(download)
    import socket

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        if name == "sst2":
            return (*_download_sst2(timeout), "Hugging Face datasets: glue/sst2")
        return (*_split(*_download_amazon(name, timeout)), "download: github.com/bzantium/bert-AAD")
    except Exception as err:  # ImportError, URLError/OSError, datasets' ConnectionError, parse errors
        raise _Unavailable(
            f"{why_not_local}; download of {name} failed: {type(err).__name__}: {err}"
        ) from err
    finally:
        socket.setdefaulttimeout(previous)


TEXT_DATASETS = ("sst2", *_AMAZON, *_TOY)
_OWN = (".csv", ".tsv", ".tab")  # own text files (labkit.byod_text)
_FALLBACK = {"sst2": "toy_movies", "books": "toy_books", "dvd": "toy_dvd", "kitchen": "toy_kitchen"}


def _banner(name: str, toy: str, reason: str) -> str:
    bar = "#" * 100
    lines = [
        f"DATASET FALLBACK: {name!r} could not be loaded.",
        f"Why: {reason}",
        f"Using {toy!r} instead: synthetic reviews generated by labkit (a genuine but artificial domain shift).",
        f"Every number below is a {toy} result, NOT a {name} result.",
        "To get the real data: set LABKIT_DATA_DIR to the course's data folder (sst2/, amazon_multidomain/),",
        "or run with internet access (`pip install datasets` for SST-2).",
    ]
    return "\n".join([bar, *(f"#  {line}" for line in lines), bar])


def _limit(texts: list[str], y: np.ndarray, limit: int | None, seed: int) -> tuple[list[str], np.ndarray]:
    if limit is None or limit >= len(y):
        return texts, y
    idx = _stratified_choice(y, limit, np.random.default_rng(seed))
    return [texts[i] for i in idx], y[idx]


def load_text_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    download: bool = True,
    max_train: int | None = None,
    max_test: int | None = None,
    seed: int = 0,
    timeout: float = 20.0,
    verbose: bool = True,
) -> TextSplits:
    """Load a binary sentiment dataset (a name in ``TEXT_DATASETS``) as ``TextSplits``.

    ``max_train`` / ``max_test`` keep a class-stratified random subsample drawn with ``seed``. SST-2's test
    split is GLUE's validation set (872 sentences; GLUE hides its test labels); the Amazon domains are split
    80/20 with a fixed seed. When a real dataset cannot be had, its toy counterpart replaces it (banner,
    warning, ``fell_back=True``).

    Your own text: a ``.csv``/``.tsv`` path (``lk.load_text_file``) or ``"hf:<name>"`` / ``"hf:<name>:<config>"``
    (``lk.load_hf_text``), with the default columns (``text`` or ``sentence``, and ``label``) and no fallback.
    """
    if isinstance(name, (str, Path)) and (str(name).startswith("hf:") or Path(name).suffix.lower() in _OWN):
        from .byod_text import load_hf_text, load_text_file

        own = dict(max_train=max_train, max_test=max_test, seed=seed, verbose=verbose)
        if str(name).startswith("hf:"):
            hf_name, _, config = str(name)[3:].partition(":")
            return load_hf_text(hf_name, config or None, timeout=timeout, **own)
        return load_text_file(name, **own)
    if not isinstance(name, str):
        raise TypeError(
            f"name must be a text dataset name or a path (str), got {type(name).__name__}: {name!r:.60}."
        )
    if name not in TEXT_DATASETS:
        raise ValueError(
            f"unknown text dataset {name!r}; choose one of: {', '.join(sorted(TEXT_DATASETS))}, or your own "
            "text: a path to a .csv/.tsv file, or 'hf:<Hugging Face dataset name>'."
        )
    for value, arg in ((max_train, "max_train"), (max_test, "max_test")):
        if value is not None:
            check_positive_int(value, arg)
    seed = _check_seed(seed)
    _check_timeout(timeout)
    data_dir = None if data_dir is None else _check_path(data_dir, "data_dir")
    download, verbose = _check_flag(download, "download"), _check_flag(verbose, "verbose")
    fell_back = False
    if name in _TOY:
        train, test = _toy(name)
        (tr, ytr), (te, yte), source = (
            (train.texts, train.y.numpy()),
            (test.texts, test.y.numpy()),
            train.source,
        )
    else:
        try:
            (tr, ytr), (te, yte), source = _real(name, data_dir, download, timeout, verbose)
        except _Unavailable as err:
            toy = _FALLBACK[name]
            print(_banner(name, toy, str(err)))
            warnings.warn(f"{name} could not be loaded ({err}); using {toy} instead.", stacklevel=2)
            train, test = _toy(toy)
            (tr, ytr), (te, yte) = (train.texts, train.y.numpy()), (test.texts, test.y.numpy())
            name, source, fell_back = toy, f"{train.source} (fallback for {name})", True
    tr, ytr = _limit(tr, ytr, max_train, seed)
    te, yte = _limit(te, yte, max_test, seed + 1)
    splits = TextSplits(
        TextData(list(tr), torch.tensor(np.array(ytr, dtype=np.int64)), list(CLASSES), name, source),
        TextData(list(te), torch.tensor(np.array(yte, dtype=np.int64)), list(CLASSES), name, source),
        fell_back=fell_back,
    )
    if verbose:
        print(f"{name}: {len(tr):,} train / {len(te):,} test texts, 2 classes ({source})")
    return splits


class TextFeatures:
    """TF-IDF bag-of-words features (scikit-learn), returned as ``ImageData`` of shape ``(N, 1, 1, D)``.

    ``fit`` learns the vocabulary and IDF weights from the texts of any number of datasets (labels are not
    used, so an unlabelled target domain may take part); ``transform`` keeps each dataset's labels.
    """

    def __init__(self, max_features: int = 5_000, ngram_range: tuple[int, int] = (1, 2), min_df: int = 2):
        check_positive_int(max_features, "max_features")
        check_positive_int(min_df, "min_df")
        ok = isinstance(ngram_range, (tuple, list)) and len(ngram_range) == 2
        ok = ok and all(isinstance(n, int) and not isinstance(n, bool) for n in ngram_range)
        if not (ok and 1 <= ngram_range[0] <= ngram_range[1]):
            raise ValueError(f"ngram_range must be (low, high) with 1 <= low <= high, got {ngram_range!r}.")
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer = TfidfVectorizer(
            max_features=max_features, ngram_range=tuple(ngram_range), min_df=min_df, sublinear_tf=True
        )
        self.fitted_on: list[str] = []

    def fit(self, *datasets: TextData) -> TextFeatures:
        if not datasets or not all(isinstance(d, TextData) for d in datasets):
            got = [type(d).__name__ for d in datasets]
            raise TypeError(f"fit needs one or more TextData (e.g. splits.train), got {got}.")
        texts = [t for d in datasets for t in d.texts]
        try:
            self.vectorizer.fit(texts)
        except ValueError as err:  # sklearn: "empty vocabulary", "After pruning, no terms remain"
            raise ValueError(
                f"TextFeatures.fit: no word survives in {len(texts)} text(s) of {[d.name for d in datasets]} "
                f"(min_df={self.vectorizer.min_df}: a word must occur in that many texts; scikit-learn says: {err}). "
                "Fit on more (non-empty) texts or lower min_df."
            ) from None
        self.fitted_on = [d.name for d in datasets]
        return self

    @property
    def dim(self) -> int:
        if not self.fitted_on:
            raise ValueError("TextFeatures is not fitted yet: call .fit(train_texts, ...) first.")
        return len(self.vectorizer.vocabulary_)

    def transform(self, data: TextData) -> ImageData:
        _check_kind(data, TextData, "transform's data", "a TextData (e.g. splits.test)")
        dim = self.dim
        x = torch.from_numpy(self.vectorizer.transform(data.texts).astype(np.float32).toarray())
        return ImageData(
            x.view(len(data), 1, 1, dim), data.y.clone(), list(data.classes), data.name, data.source
        )

    def coverage(self, data: TextData) -> float:
        """Fraction of ``data``'s texts with at least one known feature (0 for a vocabulary from elsewhere)."""
        _check_kind(data, TextData, "coverage's data", "a TextData (e.g. splits.test)")
        self.dim  # noqa: B018 - raises when not fitted
        return float((self.vectorizer.transform(data.texts).getnnz(axis=1) > 0).mean())
