"""Bad inputs to the data side of labkit (labkit.data, .text, .byod, .byod_text, .vision): each row is what a careless
learner did, the call, the error it must raise and words its message must contain (the argument or file, and what
is allowed). No row may end in a bare traceback from torch, numpy, pandas, zipfile or json, or in a silently
NaN / wrong result. Deeper tests live in the module test files; this table is the contract in one place.

Each call takes ``tmp`` (a fresh folder) so that rows can write the broken file they need.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_clear_labkit_error

import labkit as lk
from labkit.data import DataSplits, ImageData, batches, num_batches, random_crop_flip
from labkit.text import TextData


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    monkeypatch.delenv("LABKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    monkeypatch.setenv("LABKIT_CACHE_DIR", str(tmp_path / "cache"))


_DIGITS = None


def _digits() -> DataSplits:
    global _DIGITS
    if _DIGITS is None:
        _DIGITS = lk.load_dataset("digits", verbose=False)
    return _DIGITS


def _small() -> ImageData:
    return ImageData(
        torch.zeros(6, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1, 2]), ["a", "b", "c"], "toy", "test"
    )


def _text() -> TextData:
    return TextData(
        ["good", "bad", "fine", "poor"], torch.tensor([1, 0, 1, 0]), ["neg", "pos"], "toy", "test"
    )


# ---- broken files -----------------------------------------------------------------------------------------
def _npz(tmp: Path, name: str = "cifar10", **change) -> Path:
    """A small, valid course .npz (float or uint8 images), with ``change`` replacing arrays; returns the data dir."""
    rng = np.random.default_rng(0)
    arrays = dict(
        x_train=rng.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8),
        y_train=np.arange(12) % 3,
        x_test=rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8),
        y_test=np.arange(6) % 3,
        classes=np.array(["a", "b", "c"]),
    )
    arrays.update(change)
    (tmp / name).mkdir(parents=True, exist_ok=True)
    np.savez(tmp / name / f"{name}.npz", **arrays)
    return tmp


def _float_images(n: int, bad: float, at: tuple[int, ...]) -> np.ndarray:
    x = np.random.default_rng(1).random((n, 8, 8, 3)).astype(np.float32)
    x[at] = bad
    return x


def _load_npz(tmp: Path, **change):
    return lk.load_dataset("cifar10", data_dir=_npz(tmp, **change), verbose=False)


def _csv(tmp: Path, text: str, name: str = "t.csv", encoding: str = "utf-8") -> Path:
    path = tmp / name
    path.write_bytes(text.encode(encoding))
    return path


_ROWS = "a,b,label\n" + "".join(f"{i},{i % 3},{'xy'[i % 2]}\n" for i in range(10))  # 10 valid rows


def _with_cell(row: int, column: str, value: str) -> str:
    lines = _ROWS.splitlines()
    header = lines[0].split(",")
    cells = lines[row + 1].split(",")
    cells[header.index(column)] = value
    lines[row + 1] = ",".join(cells)
    return "\n".join(lines) + "\n"


def _tsv(tmp: Path, body: bytes | str, name: str = "kitchen") -> Path:
    folder = tmp / "amazon_multidomain"
    folder.mkdir(parents=True, exist_ok=True)
    data = body.encode() if isinstance(body, str) else body
    (folder / f"{name}.tsv").write_bytes(data)
    return tmp


_REVIEWS = "sentence\tlabel\n" + "".join(f"review number {i}\t{i % 2}\n" for i in range(10))


def _load_tsv(tmp: Path, body) -> None:
    lk.load_text_dataset("kitchen", data_dir=_tsv(tmp, body), verbose=False)


def _own_text(tmp: Path, text: str, **kw):
    return lk.load_text_file(_csv(tmp, text, "reviews.csv"), verbose=False, **kw)


_REVIEW_CSV = "text,label\n" + "".join(f"text {i},{'pos' if i % 2 else 'neg'}\n" for i in range(10))


def _cache_is_a_file(tmp: Path) -> None:
    import os

    blocker = tmp / "blocker"
    blocker.write_text("a file, not a folder")
    old = os.environ.get("LABKIT_CACHE_DIR")
    os.environ["LABKIT_CACHE_DIR"] = str(blocker / "cache")
    try:
        lk.cache_dir()
    finally:
        os.environ.pop("LABKIT_CACHE_DIR") if old is None else os.environ.update(LABKIT_CACHE_DIR=old)


def _replace(**kw):
    return dataclasses.replace(_digits().train, **kw)


def _teacher():
    return lk.build_model("mlp", (1, 8, 8), 10, hidden=(4,))


def _student():
    return lk.build_model("mlp", (1, 8, 8), 10, hidden=())


BAD = [
    # ---- load_dataset: arguments
    ("dataset name as a number", lambda t: lk.load_dataset(10), TypeError, "name must be a dataset name"),
    (
        "seed as a string",
        lambda t: lk.load_dataset("digits", seed="0"),
        ValueError,
        "seed must be an integer",
    ),
    (
        "negative seed",
        lambda t: lk.load_dataset("digits", seed=-1),
        ValueError,
        "seed must be an integer >= 0",
    ),
    ("max_train 0", lambda t: lk.load_dataset("digits", max_train=0), ValueError, "max_train must be"),
    (
        "max_train a float",
        lambda t: lk.load_dataset("digits", max_train=1.5),
        ValueError,
        "max_train must be",
    ),
    ("timeout NaN", lambda t: lk.load_dataset("digits", timeout=float("nan")), ValueError, "timeout must be"),
    ("timeout inf", lambda t: lk.load_dataset("digits", timeout=float("inf")), ValueError, "finite number"),
    (
        "data_dir a number",
        lambda t: lk.load_dataset("cifar10", data_dir=3),
        TypeError,
        "data_dir must be a path",
    ),
    (
        "download as a string",
        lambda t: lk.load_dataset("digits", download="no"),
        TypeError,
        "download must be",
    ),
    # ---- load_dataset: broken .npz files under the data folder
    (
        "one NaN pixel in x_train",
        lambda t: _load_npz(t, x_train=_float_images(12, np.nan, (4, 1, 2, 0))),
        ValueError,
        r"cifar10\.npz: x_train has 1 non-finite value\(s\) \(1 NaN, 0 \+-inf\); first bad rows \[4\]",
    ),
    (
        "inf pixels in x_test",
        lambda t: _load_npz(t, x_test=_float_images(6, np.inf, (slice(2, 4), 0, 0, 0))),
        ValueError,
        r"x_test has 2 non-finite value\(s\) \(0 NaN, 2 \+-inf\); first bad rows \[2, 3\].*Fix or regenerate",
    ),
    (
        "truncated npz",
        lambda t: (
            _npz(t),
            (t / "cifar10/cifar10.npz").write_bytes(b"PK\x03\x04"),
            lk.load_dataset("cifar10", data_dir=t),
        ),
        ValueError,
        "not a readable .npz",
    ),  # fmt: skip
    (
        "a .npy saved as .npz",
        lambda t: (
            (t / "cifar10").mkdir(),
            np.save(t / "cifar10/x.npy", np.zeros(3)),
            (t / "cifar10/x.npy").rename(t / "cifar10/cifar10.npz"),
            lk.load_dataset("cifar10", data_dir=t),
        ),
        ValueError,
        r"not an \.npz archive",
    ),  # fmt: skip
    (
        "labels beyond the classes",
        lambda t: _load_npz(t, y_train=np.arange(12) % 4),
        ValueError,
        r"y_train must be class indices 0\.\.2.*3 label\(s\) outside.*first rows \[3, 7, 11\]",
    ),
    (
        "fractional labels",
        lambda t: _load_npz(t, y_test=np.arange(6) % 3 + 0.5),
        ValueError,
        "y_test holds labels that are not whole numbers",
    ),
    ("one label short", lambda t: _load_npz(t, y_train=np.arange(11) % 3), ValueError, "one label per image"),
    (
        "channels-first images",
        lambda t: _load_npz(t, x_train=np.zeros((12, 3, 8, 8), np.uint8)),
        ValueError,
        "channels-first",
    ),
    (
        "empty x_train",
        lambda t: _load_npz(t, x_train=np.zeros((0, 8, 8, 3), np.uint8), y_train=np.zeros(0, int)),
        ValueError,
        "x_train must be a non-empty array",
    ),  # fmt: skip
    ("string images", lambda t: _load_npz(t, x_train=np.full((12, 8, 8, 3), "a")), ValueError, "of numbers"),
    (
        "train and test of different sizes",
        lambda t: _load_npz(t, x_test=np.zeros((6, 4, 4, 3), np.uint8)),
        ValueError,
        "both splits need one image shape",
    ),
    ("one class name", lambda t: _load_npz(t, classes=np.array(["a"])), ValueError, "at least 2 distinct"),
    ("cache dir is a file", _cache_is_a_file, ValueError, "LABKIT_CACHE_DIR=.*cannot|cannot use"),
    # ---- ImageData / DataSplits construction and dataclasses.replace
    (
        "x as a numpy array",
        lambda t: ImageData(np.zeros((2, 1, 2, 2)), torch.zeros(2, dtype=torch.long), ["a"], "n", "s"),
        TypeError,
        r"torch\.from_numpy",
    ),  # fmt: skip
    (
        "x of feature vectors (N, D)",
        lambda t: ImageData(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long), ["a"], "n", "s"),
        ValueError,
        r"\(N, 1, 1, D\)",
    ),  # fmt: skip
    (
        "x as uint8 pixels",
        lambda t: ImageData(
            torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.zeros(2, dtype=torch.long), ["a"], "n", "s"
        ),
        ValueError,
        "floating tensor.*255",
    ),  # fmt: skip
    (
        "NaN in x",
        lambda t: _replace(x=_digits().train.x.clone().index_fill_(0, torch.tensor([7]), float("nan"))),
        ValueError,
        r"ImageData\.x has 64 non-finite value\(s\) \(64 NaN, 0 \+-inf\); first bad rows \[7\]",
    ),  # fmt: skip
    ("float labels", lambda t: _replace(y=_digits().train.y.float()), ValueError, "int64 class indices"),
    ("int32 labels", lambda t: _replace(y=_digits().train.y.int()), ValueError, r"y\.long\(\)"),
    ("y one label short (replace)", lambda t: _replace(y=_digits().train.y[:-1]), ValueError, "labels"),
    (
        "fewer classes than labels (replace)",
        lambda t: _replace(classes=["0", "1"]),
        ValueError,
        r"labels must be -1 \(unlabelled\) or 0\.\.1 for 2 classes",
    ),
    ("classes as one string", lambda t: _replace(classes="0123456789"), TypeError, "list of class names"),
    (
        "repeated class names",
        lambda t: _replace(classes=["0"] * 10),
        ValueError,
        r"distinct.*repeated \['0'\]",
    ),
    ("name as a number", lambda t: _replace(name=3), TypeError, "name must be a str"),
    ("y as a list", lambda t: _replace(y=[0] * len(_digits().train)), TypeError, "torch.Tensor"),
    ("to an unknown device", lambda t: _small().to("gpu"), ValueError, "not a torch device"),
    ("to a CUDA device that is not there", lambda t: _small().to("cuda:99"), ValueError, "cuda"),
    ("to a number", lambda t: _small().to(3), TypeError, "device must be"),
    ("splits of text and images", lambda t: DataSplits(_small(), _text()), TypeError, r"DataSplits\.test"),
    (
        "splits with different classes",
        lambda t: DataSplits(_digits().train, _small()),
        ValueError,
        "same classes in the same order",
    ),
    # ---- TextData
    (
        "texts as a tuple",
        lambda t: TextData(("a", "b"), torch.tensor([0, 1]), ["n", "p"], "n", "s"),
        TypeError,
        "list of str",
    ),  # fmt: skip
    (
        "a NaN among the texts",
        lambda t: TextData(["a", float("nan")], torch.tensor([0, 1]), ["n", "p"], "n", "s"),
        TypeError,
        r"texts\[1\] is a float",
    ),  # fmt: skip
    (
        "text labels as floats",
        lambda t: TextData(["a", "b"], torch.tensor([0.0, 1.0]), ["n", "p"], "n", "s"),
        ValueError,
        "int64",
    ),  # fmt: skip
    (
        "text label 2 of 2 classes",
        lambda t: dataclasses.replace(_text(), y=torch.tensor([0, 1, 2, 0])),
        ValueError,
        r"0\.\.1 for 2 classes.*first rows \[2\]",
    ),  # fmt: skip
    # ---- load_text_dataset and the course TSVs under the data folder
    ("text dataset name as a number", lambda t: lk.load_text_dataset(2), TypeError, "name must be"),
    (
        "text seed as a string",
        lambda t: lk.load_text_dataset("toy_books", seed="1"),
        ValueError,
        "seed must be",
    ),
    ("text timeout 0", lambda t: lk.load_text_dataset("toy_books", timeout=0), ValueError, "timeout must be"),
    ("empty TSV", lambda t: _load_tsv(t, b""), ValueError, r"kitchen\.tsv is empty"),
    ("TSV header only", lambda t: _load_tsv(t, "sentence\tlabel\n"), ValueError, "header but no rows"),
    (
        "TSV label 2",
        lambda t: _load_tsv(t, _REVIEWS.replace("number 3\t1", "number 3\t2")),
        ValueError,
        r"kitchen\.tsv: column 'label' must be 0 \(negative\) or 1 \(positive\).*1 row\(s\).*\[3\]",
    ),
    (
        "TSV with an empty label",
        lambda t: _load_tsv(t, _REVIEWS.replace("number 5\t1", "number 5\t")),
        ValueError,
        r"column 'label'.*first data rows \[5\]",
    ),
    (
        "TSV in latin-1",
        lambda t: _load_tsv(t, _REVIEWS.replace("review", "caf\xe9").encode("latin-1")),
        ValueError,
        "not a readable UTF-8 TSV",
    ),  # fmt: skip
    ("text data_dir a number", lambda t: lk.load_text_dataset("kitchen", data_dir=1), TypeError, "data_dir"),
    # ---- TextFeatures
    (
        "ngram_range as one number",
        lambda t: lk.TextFeatures(ngram_range=2),
        ValueError,
        "ngram_range must be",
    ),
    ("ngram_range of strings", lambda t: lk.TextFeatures(ngram_range=("1", "2")), ValueError, "ngram_range"),
    (
        "vocabulary from one text with min_df=2",
        lambda t: lk.TextFeatures().fit(_text().subset([0])),
        ValueError,
        "no word survives.*min_df=2",
    ),
    (
        "transform a list",
        lambda t: lk.TextFeatures(min_df=1).fit(_text()).transform(["a"]),
        TypeError,
        "TextData",
    ),
    (
        "coverage of a list",
        lambda t: lk.TextFeatures(min_df=1).fit(_text()).coverage(["a"]),
        TypeError,
        "TextData",
    ),
    # ---- splits, subsets, batches
    ("val_fraction 0", lambda t: lk.train_val_split(_small(), 0), ValueError, "strictly between 0 and 1"),
    ("val_fraction 1", lambda t: lk.train_val_split(_small(), 1.0), ValueError, "strictly between 0 and 1"),
    (
        "val_fraction 10 (percent)",
        lambda t: lk.train_val_split(_small(), 10),
        ValueError,
        r"val_fraction.*\[0, 1\]",
    ),
    ("val_fraction as a string", lambda t: lk.train_val_split(_small(), "0.1"), ValueError, "val_fraction"),
    ("val_fraction NaN", lambda t: lk.train_val_split(_small(), float("nan")), ValueError, "val_fraction"),
    (
        "split seed as a string",
        lambda t: lk.train_val_split(_small(), 0.5, seed="0"),
        ValueError,
        "seed must be",
    ),
    ("split the DataSplits", lambda t: lk.train_val_split(_digits()), TypeError, r"ImageData or TextData"),
    (
        "few labels of DataSplits",
        lambda t: lk.few_labels_split(_digits(), 2),
        TypeError,
        r"data must be an ImageData",
    ),
    (
        "few labels, seed a float",
        lambda t: lk.few_labels_split(_small(), 1, seed=0.5),
        ValueError,
        "seed must be",
    ),
    (
        "budget of DataSplits",
        lambda t: lk.per_class_budget(_digits(), 100),
        TypeError,
        "data must be an ImageData",
    ),
    ("concat text and images", lambda t: lk.concat(_small(), _text()), TypeError, "b must be an ImageData"),
    ("subset with float indices", lambda t: _small().subset(np.array([0.0, 1.0])), ValueError, "floats"),
    (
        "subset with a short mask",
        lambda t: _small().subset(torch.tensor([True, False])),
        ValueError,
        "one entry",
    ),
    (
        "shuffle seed as a string",
        lambda t: batches(torch.zeros(3), batch_size=2, shuffle=True, seed="1"),
        ValueError,
        "seed must be",
    ),  # fmt: skip
    ("batch_size 0", lambda t: batches(torch.zeros(3), batch_size=0), ValueError, "batch_size must be"),
    ("batches of a list", lambda t: batches([1, 2, 3], batch_size=2), ValueError, "torch.Tensors"),
    ("num_batches of -1", lambda t: num_batches(-1, 4), ValueError, "n must be"),
    ("crop a 3-D tensor", lambda t: random_crop_flip(torch.zeros(3, 32, 32)), ValueError, r"\(B, C, H, W\)"),
    (
        "crop with a seed as generator",
        lambda t: random_crop_flip(torch.zeros(2, 1, 8, 8), generator=0),
        TypeError,
        "generator must be a torch.Generator",
    ),  # fmt: skip
    # ---- load_csv (bring your own data)
    ("CSV missing", lambda t: lk.load_csv(t / "none.csv"), FileNotFoundError, "not found"),
    ("CSV path is a folder", lambda t: lk.load_csv(t), ValueError, "is a folder, not a CSV file"),
    ("CSV path a number", lambda t: lk.load_csv(5), TypeError, "path must be a path"),
    ("CSV empty", lambda t: lk.load_csv(_csv(t, "")), ValueError, r"t\.csv is empty"),
    ("CSV header only", lambda t: lk.load_csv(_csv(t, "a,label\n")), ValueError, "header.*but no rows"),
    (
        "CSV in latin-1",
        lambda t: lk.load_csv(_csv(t, _ROWS.replace("label", "lab\xe9l"), encoding="latin-1")),
        ValueError,
        "is not utf-8 text.*encoding=",
    ),  # fmt: skip
    (
        "CSV unknown encoding",
        lambda t: lk.load_csv(_csv(t, _ROWS), encoding="utf-9"),
        ValueError,
        "encoding='utf-9'",
    ),
    (
        "CSV without the label column",
        lambda t: lk.load_csv(_csv(t, _ROWS), "target"),
        ValueError,
        r"t\.csv has no label column 'target'.*\['a', 'b', 'label'\]",
    ),  # fmt: skip
    (
        "CSV with one class",
        lambda t: lk.load_csv(_csv(t, _ROWS.replace(",y\n", ",x\n"))),
        ValueError,
        r"label column 'label' of .*t\.csv has 1 distinct value",
    ),  # fmt: skip
    (
        "CSV text feature",
        lambda t: lk.load_csv(_csv(t, "c,label\n" + "red,0\nblue,1\n" * 3)),
        ValueError,
        r"numeric; \['c'\].*column 'c' of .*t\.csv: 6 row",
    ),  # fmt: skip
    (
        "CSV one text cell",
        lambda t: lk.load_csv(_csv(t, _with_cell(4, "a", "n/a?"))),
        ValueError,
        r"column 'a' of .*t\.csv: 1 row\(s\), first rows \[4\] \('n/a\?'\) \(file lines 6\) are not numbers",
    ),  # fmt: skip
    (
        "CSV empty feature cell",
        lambda t: lk.load_csv(_csv(t, _with_cell(2, "b", ""))),
        ValueError,
        r"missing values in \['b'\].*column 'b'.*first rows \[2\].*does not impute",
    ),  # fmt: skip
    (
        "CSV empty label cell",
        lambda t: lk.load_csv(_csv(t, _with_cell(9, "label", ""))),
        ValueError,
        r"missing values in \['label'\].*first rows \[9\]",
    ),  # fmt: skip
    (
        "CSV inf cell",
        lambda t: lk.load_csv(_csv(t, _with_cell(3, "a", "inf"))),
        ValueError,
        r"column 'a' of .*t\.csv: 1 row\(s\), first rows \[3\] \(inf\).*infinite",
    ),  # fmt: skip
    (
        "CSV -inf and huge cells",
        lambda t: lk.load_csv(_csv(t, _with_cell(1, "b", "-inf").replace("\n6,0", "\n6,1e300"))),
        ValueError,
        r"column 'b'.*2 row\(s\), first rows \[1, 6\].*too large for float32",
    ),  # fmt: skip
    (
        "CSV nan cell",
        lambda t: lk.load_csv(_csv(t, _with_cell(0, "a", "nan"))),
        ValueError,
        r"missing values in \['a'\]",
    ),
    (
        "CSV with no feature",
        lambda t: lk.load_csv(_csv(t, "label\n0\n1\n0\n1\n")),
        ValueError,
        "only the label column",
    ),
    (
        "CSV id as the label",
        lambda t: lk.load_csv(_csv(t, "a,id\n" + "".join(f"{i},{i}\n" for i in range(50))), "id"),
        ValueError,
        "looks like an id",
    ),  # fmt: skip
    (
        "CSV of 3 rows",
        lambda t: lk.load_csv(_csv(t, "a,label\n1,0\n2,1\n3,0\n")),
        ValueError,
        "need at least 4",
    ),
    (
        "CSV test_fraction 0",
        lambda t: lk.load_csv(_csv(t, _ROWS), test_fraction=0),
        ValueError,
        "test_fraction",
    ),
    ("CSV seed as a string", lambda t: lk.load_csv(_csv(t, _ROWS), seed="0"), ValueError, "seed must be"),
    # ---- load_image_folder
    ("image root is a file", lambda t: lk.load_image_folder(_csv(t, "x")), ValueError, "is a file"),
    (
        "image size as one int",
        lambda t: lk.load_image_folder(t, size=32),
        ValueError,
        r"size must be \(height",
    ),
    ("2 channels", lambda t: lk.load_image_folder(t, channels=2), ValueError, "channels must be 1"),
    (
        "image test_fraction 1",
        lambda t: lk.load_image_folder(t, test_fraction=1),
        ValueError,
        "test_fraction",
    ),
    ("image root None", lambda t: lk.load_image_folder(None), TypeError, "root must be a path"),
    # ---- load_text_file / load_hf_text
    ("text file is a folder", lambda t: lk.load_text_file(t), ValueError, "is a folder, not a text file"),
    ("text file missing", lambda t: lk.load_text_file(t / "no.csv"), FileNotFoundError, "not found"),
    (
        "text test_path missing",
        lambda t: _own_text(t, _REVIEW_CSV, test_path=t / "no.csv"),
        FileNotFoundError,
        "no.csv not found",
    ),  # fmt: skip
    (
        "text file unknown encoding",
        lambda t: _own_text(t, _REVIEW_CSV, encoding="utf-9"),
        ValueError,
        "is not a text encoding",
    ),  # fmt: skip
    ("text file seed as a string", lambda t: _own_text(t, _REVIEW_CSV, seed="0"), ValueError, "seed must be"),
    (
        "text file test_fraction 0",
        lambda t: _own_text(t, _REVIEW_CSV, test_fraction=0),
        ValueError,
        "test_fraction",
    ),
    ("text file empty sep", lambda t: _own_text(t, _REVIEW_CSV, sep=""), ValueError, "sep must be"),
    ("text file max_train 0", lambda t: _own_text(t, _REVIEW_CSV, max_train=0), ValueError, "max_train"),
    (
        "text label 'nan'",
        lambda t: _own_text(t, _REVIEW_CSV.replace("text 4,neg", "text 4,nan")),
        ValueError,
        r"NaN or infinite \(first rows \[4\]",
    ),  # fmt: skip
    (
        "missing label after a dropped empty text",
        lambda t: _own_text(t, _REVIEW_CSV.replace("text 1,pos", ",pos").replace("text 6,neg", "text 6,")),
        ValueError,
        r"1 row\(s\) have no label \(first rows \[6\]",  # the file's row, not its position after the drop
    ),
    (
        "hf timeout as a string",
        lambda t: lk.load_hf_text("imdb", timeout="60"),
        ValueError,
        "timeout must be",
    ),
    ("hf seed as a string", lambda t: lk.load_hf_text("imdb", seed="0"), ValueError, "seed must be"),
    ("hf config a number", lambda t: lk.load_hf_text("glue", 2), ValueError, "config must be"),
    # ---- torchvision teachers (checked before torchvision is imported)
    ("torchvision name a number", lambda t: lk.torchvision_model(18, 10), TypeError, "name must be"),
    (
        "torchvision in_shape (H, W)",
        lambda t: lk.torchvision_model("resnet18", 10, in_shape=(32, 32)),
        ValueError,
        r"in_shape must be \(channels, height, width\)",
    ),  # fmt: skip
    (
        "torchvision nodes one string",
        lambda t: lk.torchvision_model("resnet18", 10, nodes="layer1"),
        ValueError,
        "nodes must be a list",
    ),  # fmt: skip
    (
        "torchvision input_size one int",
        lambda t: lk.torchvision_model("resnet18", 10, input_size=64),
        ValueError,
        r"input_size must be \(height, width\)",
    ),  # fmt: skip
    (
        "torchvision pretrained 'yes'",
        lambda t: lk.torchvision_model("resnet18", 10, pretrained="yes"),
        TypeError,
        "pretrained must be",
    ),  # fmt: skip
    (
        "torchvision align_to a name",
        lambda t: lk.torchvision_model("resnet18", 10, align_to="cnn"),
        TypeError,
        "align_to must be",
    ),  # fmt: skip
    ("torchvision_nodes of a number", lambda t: lk.torchvision_nodes(3), TypeError, "model must be"),
    # ---- compare_objectives / tune_objective
    (
        "compare without a teacher",
        lambda t: lk.compare_objectives(None, _student, _digits()),
        TypeError,
        "teacher must be",
    ),  # fmt: skip
    (
        "compare on the train split",
        lambda t: lk.compare_objectives(_teacher(), _student, _digits().train),
        TypeError,
        "data must be a DataSplits",
    ),  # fmt: skip
    (
        "compare methods as one string",
        lambda t: lk.compare_objectives(_teacher(), _student, _digits(), methods="kd"),
        ValueError,
        "methods must be a list",
    ),  # fmt: skip
    (
        "compare seeds as a string",
        lambda t: lk.compare_objectives(_teacher(), _student, _digits(), seeds="012"),
        ValueError,
        "seeds must be a list",
    ),  # fmt: skip
    (
        "compare a string seed",
        lambda t: lk.compare_objectives(_teacher(), _student, _digits(), seeds=(0, "1")),
        ValueError,
        r"seeds\[i\] must be an integer",
    ),  # fmt: skip
    (
        "compare latency_batch 0",
        lambda t: lk.compare_objectives(_teacher(), _student, _digits(), latency_batch=0),
        ValueError,
        "latency_batch",
    ),  # fmt: skip
    (
        "tune with a scalar grid",
        lambda t: lk.tune_objective(
            _teacher(), _student, _digits().train, "kd", {"temperature": 4}, lk.TrainConfig()
        ),
        ValueError,
        "grid must map",
    ),  # fmt: skip
    (
        "tune without a config",
        lambda t: lk.tune_objective(_teacher(), _student, _digits().train, "kd", {"temperature": [4]}, None),
        TypeError,
        "config must be an lk.TrainConfig",
    ),  # fmt: skip
    (
        "tune on DataSplits",
        lambda t: lk.tune_objective(
            _teacher(), _student, _digits(), "kd", {"temperature": [4]}, lk.TrainConfig()
        ),
        TypeError,
        "train must be an ImageData",
    ),  # fmt: skip
]


@pytest.mark.parametrize("call, error, words", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_data_input_gives_a_clear_error(call, error, words, tmp_path):
    with pytest.raises(error, match=words) as info:
        call(tmp_path)
    assert_clear_labkit_error(info)


def test_the_table_covers_every_public_function_of_the_data_modules():
    """A new public function of these modules needs its rows here (the table grows with the API)."""
    import labkit.byod
    import labkit.byod_text
    import labkit.data
    import labkit.text
    import labkit.vision

    source = Path(__file__).read_text()
    covered = source[: source.index("@pytest.mark.parametrize")]  # the rows name the calls
    exempt = {"DATASETS", "TEXT_DATASETS", "TEXT_COLUMNS", "TextFileNotFoundError", "TorchvisionClassifier"}
    exempt |= {"DataSplits", "TextSplits"}  # covered through DataSplits(...) rows and the loaders
    missing = []
    for module in (labkit.data, labkit.text, labkit.byod, labkit.byod_text, labkit.vision):
        for name in module.__all__:
            if name not in exempt and name not in covered:
                missing.append(f"{module.__name__}.{name}")
    assert not missing, f"no bad-input row calls {missing}"
