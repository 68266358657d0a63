"""labkit.transfer: pseudo-labels (lesson 05) and domain pairs (lesson 06)."""

from __future__ import annotations

import math

import pytest
import torch

import labkit as lk


def _logits():
    # rows: confident class 0, unsure class 1 (softmax max ~0.5), confident class 2
    return torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 6.0]])


def test_pseudo_labels_by_hand():
    pl = lk.pseudo_labels(_logits(), threshold=0.9)
    assert pl.labels.tolist() == [0, 1, 2]
    p0 = math.exp(4) / (math.exp(4) + 2)
    assert pl.confidence[0].item() == pytest.approx(p0, rel=1e-6)
    assert pl.keep.tolist() == [True, False, True]
    assert lk.pseudo_labels(_logits(), threshold=0.0).keep.all()
    assert not lk.pseudo_labels(_logits(), threshold=1.0).keep.any()


@pytest.mark.parametrize("threshold", [1.5, -0.1, float("nan"), "0.5"])
def test_threshold_outside_unit_interval_is_rejected(threshold):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        lk.pseudo_labels(_logits(), threshold=threshold)


def _data(y):
    return lk.ImageData(torch.randn(len(y), 1, 2, 2), torch.tensor(y), ["a", "b", "c"], "toy", "test")


def test_with_pseudo_labels_keeps_true_labels_and_drops_unsure_rows():
    data = _data([2, -1, -1])  # row 0 is labelled 2, but the teacher says 0: the true label must win
    out = lk.with_pseudo_labels(data, _logits(), threshold=0.9)
    assert out.y.tolist() == [2, 2]  # row 0 (true label kept), row 2 (teacher's 2); row 1 dropped (unsure)
    assert torch.equal(out.x, data.x[[0, 2]])
    assert lk.with_pseudo_labels(data, _logits()).y.tolist() == [2, 1, 2]  # no threshold: every row


def test_with_pseudo_labels_checks_shapes():
    with pytest.raises(ValueError, match=r"\(N, K\) = \(2, 3\)"):
        lk.with_pseudo_labels(_data([-1, -1]), _logits())
    with pytest.raises(ValueError, match="ImageData"):
        lk.with_pseudo_labels(torch.zeros(3, 3), _logits())


def test_pseudo_label_quality_table():
    truth = torch.tensor([0, 0, 2])
    q = lk.pseudo_label_quality(_logits(), truth, thresholds=(0.0, 0.9, 1.0))
    assert q.loc[0.0, "coverage"] == 1.0 and q.loc[0.0, "accuracy"] == pytest.approx(2 / 3)
    assert q.loc[0.9, "coverage"] == pytest.approx(2 / 3) and q.loc[0.9, "accuracy"] == 1.0
    assert q.loc[1.0, "kept"] == 0 and math.isnan(q.loc[1.0, "accuracy"])
    with pytest.raises(ValueError, match="one label per row"):
        lk.pseudo_label_quality(_logits(), torch.tensor([0, 1]))


def test_domain_pair_checks_label_spaces():
    books = lk.load_text_dataset("toy_books", verbose=False)
    kitchen = lk.load_text_dataset("toy_kitchen", verbose=False)
    pair = lk.domain_pair(books, kitchen)
    assert pair.names == ("toy_books", "toy_kitchen") and pair.classes == ["negative", "positive"]
    swapped = lk.TextSplits(
        *(
            lk.TextData(d.texts, d.y, ["positive", "negative"], d.name, d.source)
            for d in (kitchen.train, kitchen.test)
        )
    )
    with pytest.raises(ValueError, match="different order"):
        lk.domain_pair(books, swapped)
    digits = lk.load_dataset("digits", verbose=False)
    with pytest.raises(ValueError, match="2 source classes vs 10 target classes"):
        lk.domain_pair(books, digits)
    with pytest.raises(ValueError, match=".train and .test"):
        lk.domain_pair(books, kitchen.train)


def test_domain_shift_is_real_on_the_toy_domains():
    """The synthetic fallback must make a genuine shift: a model trained on one toy domain loses accuracy
    on another (lesson 06 runs on it offline)."""
    books = lk.load_text_dataset("toy_books", verbose=False)
    kitchen = lk.load_text_dataset("toy_kitchen", verbose=False)
    feats = lk.TextFeatures(max_features=2_000).fit(books.train, kitchen.train)
    model = lk.build_model("mlp", (1, 1, feats.dim), 2, hidden=())
    cfg = lk.TrainConfig(epochs=5, lr=2e-2, batch_size=64, progress=False)
    lk.fit(model, feats.transform(books.train), config=cfg)
    shift = lk.domain_shift(model, feats.transform(books.test), feats.transform(kitchen.test))
    assert shift["source"] > 0.8 and shift["drop"] > 0.1


# ------------------------------------------------------------------------------- careless inputs (#15)
def test_pseudo_labels_refuse_nan_and_probabilities():
    z = _logits()
    with pytest.raises(ValueError, match="teacher_logits.*NaN"):
        lk.pseudo_labels(torch.where(z > 1, float("nan"), z))
    with pytest.raises(ValueError, match="probabilities"):
        lk.pseudo_labels(z.softmax(1), threshold=0.5)  # softmax(probabilities) would keep almost nothing
    unknown = z.clone()
    unknown[:, 0] = float("-inf")  # a class the teacher does not know: still a valid teacher output
    assert (lk.pseudo_labels(unknown).labels != 0).all()


def test_pseudo_label_quality_takes_one_threshold_and_needs_the_truth():
    z = _logits()
    truth = z.argmax(1)
    table = lk.pseudo_label_quality(z, truth, thresholds=0.0)
    assert list(table.index) == [0.0] and table.loc[0.0, "accuracy"] == 1.0
    with pytest.raises(ValueError, match="true_labels must be the known classes"):
        lk.pseudo_label_quality(z, torch.full_like(truth, -1))


def test_domain_pair_checks_its_splits_when_built_directly():
    a = lk.load_text_dataset("toy_books", verbose=False)
    pair = lk.DomainPair(a.train, a.test, a.train, a.test)
    assert pair.classes == list(a.train.classes)
    with pytest.raises(ValueError, match="source_train must be a dataset with .classes"):
        lk.DomainPair(1, 2, 3, 4)
    digits = lk.load_dataset("digits", verbose=False)
    with pytest.raises(ValueError, match="label spaces differ"):
        lk.DomainPair(a.train, a.test, digits.train, digits.test)
