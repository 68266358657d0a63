"""labkit.byod_text: your own text (a CSV/TSV file, a Hugging Face dataset) as TextSplits for the text students."""

from __future__ import annotations

import sys
import types

import pandas as pd
import pytest
import torch

import labkit as lk

SENTENCES = [
    "a gripping, moving film",
    'the "best" plot i have seen',
    "dull and predictable",
    "boring; i left early",
    "wonderful cast\twith tabs",
    "a waste of time",
]


def _frame(n=30, text="text", label="label", labels=("neg", "pos")):
    rows = [(f"{SENTENCES[i % len(SENTENCES)]} #{i}", labels[i % len(labels)]) for i in range(n)]
    return pd.DataFrame(rows, columns=[text, label])


def test_csv_round_trip(tmp_path):
    frame = _frame(40)
    frame.to_csv(tmp_path / "reviews.csv", index=False)
    data = lk.load_text_file(tmp_path / "reviews.csv", test_fraction=0.25, seed=0, verbose=False)
    assert isinstance(data, lk.TextSplits) and data.classes == ["neg", "pos"]
    assert (len(data.train), len(data.test)) == (30, 10)
    assert torch.bincount(data.test.y).tolist() == [5, 5]  # stratified
    texts = dict(zip(frame["text"], frame["label"]))
    for split in (data.train, data.test):  # every text, commas, quotes and tabs included, keeps its label
        assert all(texts[t] == data.classes[int(y)] for t, y in zip(split.texts, split.y))
    assert sorted(data.train.texts + data.test.texts) == sorted(frame["text"])


def test_tsv_round_trip_with_sentence_column_and_integer_labels(tmp_path):
    frame = _frame(24, text="sentence", labels=(0, 1, 2))
    frame.to_csv(tmp_path / "three.tsv", sep="\t", index=False)
    data = lk.load_text_file(tmp_path / "three.tsv", verbose=False)  # tab-separated by its suffix
    assert data.classes == ["0", "1", "2"] and len(data.train) + len(data.test) == 24
    same = lk.load_text_dataset(str(tmp_path / "three.tsv"), verbose=False)  # what lessons 04 and 06 call
    assert same.train.texts == data.train.texts and torch.equal(same.train.y, data.train.y)
    features = lk.TextFeatures(max_features=50, min_df=1).fit(
        data.train
    )  # a text student's input (lesson 06)
    assert features.transform(data.test).x.shape == (len(data.test), 1, 1, features.dim)


def test_separate_test_file_columns_and_limits(tmp_path):
    _frame(20, text="review", label="stars", labels=(1, 5)).to_csv(tmp_path / "a.csv", index=False)
    _frame(8, text="review", label="stars", labels=(5, 1)).to_csv(tmp_path / "b.csv", index=False)
    data = lk.load_text_file(tmp_path / "a.csv", label_column="stars", test_path=tmp_path / "b.csv",
                             max_train=10, verbose=False)  # fmt: skip
    assert data.classes == ["1", "5"] and (len(data.train), len(data.test)) == (10, 8)
    assert torch.bincount(data.train.y).tolist() == [5, 5]


def test_file_errors_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match="path: text file .*none.csv not found"):
        lk.load_text_file(tmp_path / "none.csv")
    with pytest.raises(FileNotFoundError):  # also a FileNotFoundError
        lk.load_text_file(tmp_path / "none.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        lk.load_text_file(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("text,label\n")
    with pytest.raises(ValueError, match="no rows"):
        lk.load_text_file(tmp_path / "header.csv")
    _frame(10, text="body").to_csv(tmp_path / "cols.csv", index=False)
    with pytest.raises(ValueError, match=r"text_column: .*columns are \['body', 'label'\]"):
        lk.load_text_file(tmp_path / "cols.csv")
    with pytest.raises(ValueError, match=r"text_column='txt' is not a column.*\['body', 'label'\]"):
        lk.load_text_file(tmp_path / "cols.csv", text_column="txt")
    with pytest.raises(ValueError, match=r"label_column='y' is not a column.*\['body', 'label'\]"):
        lk.load_text_file(tmp_path / "cols.csv", text_column="body", label_column="y")


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (("pos",), "single class .*'pos' in all 10 rows"),
        ((0.5, 1.0), "not whole .*'0.5'"),
        (("pos", ""), "have no label"),
    ],
)
def test_label_errors(tmp_path, labels, message):
    _frame(10, labels=labels).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match=f"label_column='label'.*{message}"):
        lk.load_text_file(tmp_path / "bad.csv")


def test_ids_are_not_labels(tmp_path):
    frame = _frame(60)
    frame["label"] = [f"id-{i}" for i in range(60)]
    frame.to_csv(tmp_path / "ids.csv", index=False)
    with pytest.raises(ValueError, match="looks like an id"):
        lk.load_text_file(tmp_path / "ids.csv")


def test_unparseable_file(tmp_path):
    (tmp_path / "ragged.csv").write_text("text,label\na,1\nb,0,extra,fields\n")
    with pytest.raises(ValueError, match="cannot read .*ragged.csv as CSV"):
        lk.load_text_file(tmp_path / "ragged.csv")
    (tmp_path / "latin.csv").write_bytes("text,label\ncaf\xe9,1\nbad,0\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not utf-8 text .*pass encoding"):
        lk.load_text_file(tmp_path / "latin.csv")


# ---- Hugging Face datasets: the real call, with a stand-in module (no network in tests) -------------------
class _ClassLabel:
    def __init__(self, names):
        self.names = names


class _Split:
    def __init__(self, columns, features=None):
        self._columns, self.features = columns, features or {}
        self.column_names = list(columns)

    def __getitem__(self, column):
        return list(self._columns[column])


def _fake_datasets(monkeypatch, load):
    module = types.ModuleType("datasets")
    module.load_dataset = load
    monkeypatch.setitem(sys.modules, "datasets", module)
    return module


def test_hf_dataset_with_class_names_and_hidden_test_labels(monkeypatch):
    calls = []

    def load_dataset(name, config=None, cache_dir=None):
        calls.append((name, config))
        feat = {"label": _ClassLabel(["negative", "positive"])}
        texts = [f"sentence {i}" for i in range(20)]
        return {
            "train": _Split({"sentence": texts, "label": [i % 2 for i in range(20)], "idx": range(20)}, feat),
            "validation": _Split({"sentence": texts[:6], "label": [0, 1] * 3, "idx": range(6)}, feat),
            "test": _Split({"sentence": texts[:4], "label": [-1] * 4, "idx": range(4)}, feat),  # hidden
        }

    _fake_datasets(monkeypatch, load_dataset)
    data = lk.load_hf_text("glue", "sst2", verbose=False)
    assert calls == [("glue", "sst2")]  # datasets.load_dataset(name, config) is what runs
    assert data.classes == ["negative", "positive"] and (len(data.train), len(data.test)) == (20, 6)
    assert "validation" in data.source  # GLUE's test labels are hidden: validation is the test split
    same = lk.load_text_dataset("hf:glue:sst2", verbose=False)
    assert torch.equal(same.test.y, data.test.y)
    with pytest.raises(
        ValueError, match=r"train_split='training' is not a split.*\['train', 'validation', 'test'\]"
    ):
        lk.load_hf_text("glue", "sst2", train_split="training")
    with pytest.raises(
        ValueError, match=r"label_column='stars' is not a column.*\['sentence', 'label', 'idx'\]"
    ):
        lk.load_hf_text("glue", "sst2", label_column="stars")
    with pytest.raises(ValueError, match="-1 \\(hidden"):
        lk.load_hf_text("glue", "sst2", test_split="test")


def test_hf_dataset_without_test_split_is_held_out(monkeypatch):
    def load_dataset(name, config=None, cache_dir=None):
        return {"train": _Split({"text": [f"t{i}" for i in range(30)], "label": ["a", "b", "c"] * 10})}

    _fake_datasets(monkeypatch, load_dataset)
    data = lk.load_hf_text("someone/reviews", test_fraction=0.2, verbose=False)
    assert data.classes == ["a", "b", "c"] and (len(data.train), len(data.test)) == (24, 6)
    with pytest.raises(ValueError, match=r"text_column='review' is not a column.*\['text', 'label'\]"):
        lk.load_hf_text("someone/reviews", text_column="review")


def test_hf_offline_fails_loudly(monkeypatch):
    def load_dataset(name, config=None, cache_dir=None):
        raise ConnectionError("Couldn't reach 'imdb' on the Hub (LocalEntryNotFoundError)")

    _fake_datasets(monkeypatch, load_dataset)
    with pytest.raises(
        ValueError, match=r"(?s)name='imdb'.*ConnectionError.*internet access.*load_text_file"
    ):
        lk.load_hf_text("imdb")
    with pytest.raises(ValueError, match="name='imdb'"):
        lk.load_text_dataset("hf:imdb")  # never the toy fallback: your data or a clear error


def test_hf_without_the_datasets_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(ImportError, match="pip install datasets"):
        lk.load_hf_text("imdb")


def test_arguments_that_do_not_apply_are_not_checked_and_flags_accept_0_1(tmp_path):
    """test_fraction is unused when test_path gives the test split (so 0 is fine there); verbose=0 is False, but a
    string such as 'no' (which Python reads as True) is an error."""
    _frame(20).to_csv(tmp_path / "a.csv", index=False)
    _frame(8).to_csv(tmp_path / "b.csv", index=False)
    data = lk.load_text_file(tmp_path / "a.csv", test_path=tmp_path / "b.csv", test_fraction=0, verbose=0)
    assert (len(data.train), len(data.test)) == (20, 8)
    with pytest.raises(ValueError, match="test_fraction must be strictly between 0 and 1"):
        lk.load_text_file(tmp_path / "a.csv", test_fraction=0, verbose=False)
    with pytest.raises(TypeError, match="verbose must be True or False, got 'no'"):
        lk.load_text_file(tmp_path / "a.csv", verbose="no")


def test_a_missing_label_is_reported_at_its_row_in_the_file(tmp_path):
    """Rows with an empty text are dropped first; the message must still name the file's row, not the position
    among the rows that were kept (which pointed at the wrong line before)."""
    frame = _frame(12)
    frame.loc[[1, 2], "text"] = ""
    frame.loc[9, "label"] = ""
    frame.to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(ValueError, match=r"1 row\(s\) have no label \(first rows \[9\]"):
        lk.load_text_file(tmp_path / "r.csv", verbose=False)
