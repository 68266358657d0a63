"""labkit.text: text datasets (local files, downloads, the synthetic fallback) and TF-IDF features."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch
from conftest import shared_data_dir

import labkit as lk
from labkit.text import TEXT_DATASETS, TextData


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    monkeypatch.delenv("LABKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("LABKIT_CACHE_DIR", str(tmp_path / "cache"))


def _write_domain(root: Path, name: str, rows: list[tuple[str, int]]) -> None:
    folder = root / "amazon_multidomain"
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["sentence\tlabel", *(f"{text}\t{label}" for text, label in rows)]
    (folder / f"{name}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_toy_domains_are_deterministic_balanced_and_distinct():
    a, b = lk.load_text_dataset("toy_books", verbose=False), lk.load_text_dataset("toy_books", verbose=False)
    assert a.train.texts == b.train.texts and torch.equal(a.train.y, b.train.y)
    assert (len(a.train), len(a.test)) == (1_600, 400)
    assert 0.4 < a.train.y.float().mean().item() < 0.6
    kitchen = lk.load_text_dataset("toy_kitchen", verbose=False)
    vocab = lambda d: {w for t in d.train.texts for w in t.split()}  # noqa: E731
    assert "sturdy" in vocab(kitchen) and "sturdy" not in vocab(a)  # domain-specific words
    assert "great" in vocab(kitchen) and "great" in vocab(a)  # shared generic words


def test_offline_fallback_is_loud(monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    with pytest.warns(UserWarning, match="toy_kitchen"):
        splits = lk.load_text_dataset("kitchen")
    out = capsys.readouterr().out
    assert splits.fell_back and splits.name == "toy_kitchen"
    assert "DATASET FALLBACK" in out and "LABKIT_DATA_DIR" in out and "NOT a kitchen result" in out


def test_local_domain_file_is_read_and_split_80_20(tmp_path):
    rows = [(f'review "{i}" with\ttab-free text', i % 2) for i in range(50)]
    rows = [(t.replace("\t", " "), y) for t, y in rows]
    _write_domain(tmp_path, "dvd", rows)
    splits = lk.load_text_dataset("dvd", data_dir=tmp_path, verbose=False)
    assert not splits.fell_back and splits.source.startswith("local:")
    assert (len(splits.train), len(splits.test)) == (40, 10)
    assert sorted(splits.train.texts + splits.test.texts) == sorted(t for t, _ in rows)
    assert int(splits.test.y.sum()) == 5  # stratified


def test_env_data_dir_without_the_file_falls_through(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("LABKIT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    with pytest.warns(UserWarning):
        splits = lk.load_text_dataset("books")
    assert splits.fell_back and "has no" in capsys.readouterr().out


def test_bad_header_is_a_clear_error(tmp_path):
    folder = tmp_path / "amazon_multidomain"
    folder.mkdir()
    (folder / "books.tsv").write_text("text\ty\nfine\t1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="sentence<TAB>label"):
        lk.load_text_dataset("books", data_dir=tmp_path)


def test_max_train_is_stratified():
    splits = lk.load_text_dataset("toy_movies", max_train=100, max_test=50, verbose=False)
    assert (len(splits.train), len(splits.test)) == (100, 50)
    assert abs(int(splits.train.y.sum()) - 50) <= 2


def test_text_data_rejects_misaligned_labels():
    with pytest.raises(ValueError, match="2 texts but 3 labels"):
        TextData(["a", "b"], torch.zeros(3, dtype=torch.int64), ["neg", "pos"], "x", "y")
    with pytest.raises(ValueError, match="-1 \\(unlabelled\\) or 0..1"):
        TextData(["a"], torch.tensor([2]), ["neg", "pos"], "x", "y")


def test_features_are_image_data_that_fit_and_evaluate_use():
    books = lk.load_text_dataset("toy_books", verbose=False)
    feats = lk.TextFeatures(max_features=500).fit(books.train)
    train, test = feats.transform(books.train), feats.transform(books.test)
    assert train.in_shape == (1, 1, feats.dim) and feats.dim <= 500
    norms = train.x.flatten(1).norm(dim=1)
    assert torch.allclose(norms[norms > 0], torch.ones_like(norms[norms > 0]), atol=1e-5)  # TF-IDF rows, L2
    model = lk.build_model("mlp", train.in_shape, 2, hidden=())
    lk.fit(model, train, config=lk.TrainConfig(epochs=3, lr=2e-2, batch_size=64, progress=False))
    assert lk.evaluate(model, test)["accuracy"] > 0.75  # the toy task is learnable by logistic regression


def test_features_need_fitting_and_text_data():
    feats = lk.TextFeatures()
    with pytest.raises(ValueError, match="not fitted"):
        feats.transform(lk.load_text_dataset("toy_dvd", verbose=False).train)
    with pytest.raises(TypeError, match="TextData"):
        feats.fit(["just", "strings"])
    with pytest.raises(ValueError, match="ngram_range"):
        lk.TextFeatures(ngram_range=(2, 1))


def test_source_only_vocabulary_misses_target_words():
    books = lk.load_text_dataset("toy_books", verbose=False)
    kitchen = lk.load_text_dataset("toy_kitchen", verbose=False)
    src_only = lk.TextFeatures(ngram_range=(1, 1)).fit(books.train)
    shared = lk.TextFeatures(ngram_range=(1, 1)).fit(books.train, kitchen.train)
    assert "sturdy" not in src_only.vectorizer.vocabulary_ and "sturdy" in shared.vectorizer.vocabulary_
    assert shared.coverage(kitchen.test) >= src_only.coverage(kitchen.test)


def test_every_name_is_loadable_offline(monkeypatch):
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    for name in TEXT_DATASETS:
        with pytest.warns(UserWarning) if not name.startswith("toy_") else contextlib.nullcontext():
            splits = lk.load_text_dataset(name, verbose=False)
        assert splits.classes == ["negative", "positive"] and len(splits.train) > 0


@pytest.mark.realdata
def test_real_text_data_matches_its_documented_counts():
    root = shared_data_dir("amazon_multidomain/books.tsv")
    sst2 = lk.load_text_dataset("sst2", data_dir=root, verbose=False)
    assert (len(sst2.train), len(sst2.test)) == (67_349, 872)
    for name, total in (("books", 1_956), ("dvd", 1_954), ("kitchen", 1_977)):
        d = lk.load_text_dataset(name, data_dir=root, verbose=False)
        assert len(d.train) + len(d.test) == total and not d.fell_back
        assert not set(d.train.texts) & set(d.test.texts)  # no leakage between the fixed splits


def test_text_subset_reads_a_boolean_mask_and_refuses_floats():
    data = TextData(["a b", "c", "d e f", "g"], torch.tensor([0, 1, 1, 0]), ["neg", "pos"], "toy", "test")
    sub = data.subset(data.y == 1)
    assert sub.texts == ["c", "d e f"] and sub.y.tolist() == [1, 1]
    assert data.subset([3, 0]).texts == ["g", "a b"]
    with pytest.raises(ValueError, match="integer positions or a boolean mask"):
        data.subset([0.5])
    with pytest.raises(ValueError, match="one entry per example"):
        data.subset([True, False])
    with pytest.raises(ValueError, match="indices must lie in"):
        data.subset([4])


@pytest.mark.parametrize(
    "label, words",
    [
        (
            "",
            r"books\.tsv: column 'label' must be 0 \(negative\) or 1 \(positive\) in every row; 1 row\(s\).*\[7\]",
        ),
        ("2", r"1 row\(s\) are not \(first data rows \[7\]: \[2\]\)"),
        ("positive", r"first data rows \[7\]: \['positive'\]"),
        ("0.5", r"first data rows \[7\]"),
        ("nan", r"first data rows \[7\]"),
    ],
)
def test_a_bad_label_under_labkit_data_dir_names_file_column_and_row(tmp_path, monkeypatch, label, words):
    """A course TSV with one bad label: an error naming the file, the column and the row, never a bare pandas /
    numpy traceback (an empty cell used to fail inside to_numpy) nor a quiet fallback to the toy data."""
    rows = [(f"review {i}", i % 2) for i in range(12)]
    _write_domain(tmp_path, "books", rows)
    path = tmp_path / "amazon_multidomain" / "books.tsv"
    lines = path.read_text().splitlines()
    lines[8] = f"review 7\t{label}"  # data row 7 (line 1 is the header)
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("LABKIT_DATA_DIR", str(tmp_path))
    with pytest.raises(ValueError, match=words):
        lk.load_text_dataset("books", verbose=False)


def test_valid_tsv_loads_as_before(tmp_path):
    rows = [(f"review {i}", i % 2) for i in range(20)]
    _write_domain(tmp_path, "dvd", rows)
    data = lk.load_text_dataset("dvd", data_dir=tmp_path, verbose=False)
    got = sorted(zip(data.train.texts + data.test.texts, (data.train.y.tolist() + data.test.y.tolist())))
    assert got == sorted(rows) and data.train.y.dtype == torch.int64


def test_text_splits_need_text_data_with_the_same_classes():
    books = lk.load_text_dataset("toy_books", verbose=False)
    with pytest.raises(TypeError, match=r"TextSplits\.test must be a TextData"):
        lk.TextSplits(books.train, lk.load_dataset("digits", verbose=False).test)
    swapped = TextData(books.test.texts, books.test.y, ["positive", "negative"], "b", "s")
    with pytest.raises(ValueError, match="same classes in the same order"):
        lk.TextSplits(books.train, swapped)
