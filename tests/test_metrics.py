"""Metrics against hand computations and numpy references; inference helpers; mean ± std summaries."""

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labkit.metrics import (
    accuracy,
    agreement,
    evaluate,
    expected_calibration_error,
    format_mean_std,
    kl_to_teacher,
    mean_std,
    predict_logits,
    reliability_bins,
    summarize,
)


def binary_logits(confidences, predicted):
    """Two-class logits whose softmax gives ``confidence`` to class ``predicted``: z = [logit(p), 0]."""
    rows = []
    for p, c in zip(confidences, predicted):
        z = [math.log(p / (1 - p)), 0.0]
        rows.append(z if c == 0 else z[::-1])
    return torch.tensor(rows, dtype=torch.float64)


# ----------------------------------------------------------------------------------------- accuracy
def test_accuracy_ignores_unlabelled():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 5.0]])
    assert accuracy(logits, torch.tensor([0, 0, -1, 1])) == pytest.approx(2 / 3)
    assert accuracy(logits, torch.tensor([0, 1, 0, 1])) == 1.0
    assert math.isnan(accuracy(logits, torch.full((4,), -1)))


def test_agreement():
    s = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 2.0, 0.0]])
    t = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 9.0], [0.0, 1.0, 0.0]])
    assert agreement(s, t) == 0.75
    assert agreement(t, t) == 1.0


# --------------------------------------------------------------------------------------------- KL
def test_kl_to_teacher_matches_numpy():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(8, 5, generator=g), 3 * torch.randn(8, 5, generator=g)
    for temperature in (1.0, 4.0):
        zs, zt = s.double().numpy() / temperature, t.double().numpy() / temperature
        p_s = np.exp(zs) / np.exp(zs).sum(1, keepdims=True)
        p_t = np.exp(zt) / np.exp(zt).sum(1, keepdims=True)
        expected = (p_t * (np.log(p_t) - np.log(p_s))).sum(1).mean()
        assert kl_to_teacher(s, t, temperature) == pytest.approx(expected, rel=1e-9)


def test_kl_to_teacher_zero_for_identical_and_finite_for_extreme():
    z = torch.randn(4, 10)
    assert kl_to_teacher(z, z) == pytest.approx(0.0, abs=1e-12)
    assert kl_to_teacher(z, z + 7.0) == pytest.approx(0.0, abs=1e-12)  # softmax is shift invariant
    extreme = torch.tensor([[1000.0, -1000.0, 0.0]])
    value = kl_to_teacher(torch.zeros(1, 3), extreme)
    assert math.isfinite(value) and value == pytest.approx(math.log(3), rel=1e-6)  # KL(one-hot || uniform)
    with pytest.raises(ValueError, match="temperature"):
        kl_to_teacher(z, z, temperature=0)


# -------------------------------------------------------------------------------------- calibration
def test_ece_hand_computed_overconfident():
    # 3 examples at confidence 0.9 (1 right) and 2 at 0.7 (1 right):
    # ECE = 3/5 * |1/3 - 0.9| + 2/5 * |1/2 - 0.7| = 0.34 + 0.08 = 0.42
    logits = binary_logits([0.9, 0.9, 0.9, 0.7, 0.7], [0, 0, 0, 1, 1])
    targets = torch.tensor([0, 1, 1, 1, 0])
    assert expected_calibration_error(logits, targets) == pytest.approx(0.42, abs=1e-9)
    assert expected_calibration_error(logits, targets, n_bins=1) == pytest.approx(abs(2 / 5 - 0.82), abs=1e-9)


def test_ece_zero_when_perfectly_calibrated():
    # 4 examples at 0.75 with 3 right, 10 at 0.9 with 9 right: every bin's accuracy equals its confidence
    logits = binary_logits([0.75] * 4 + [0.9] * 10, [0] * 14)
    targets = torch.tensor([0, 0, 0, 1] + [0] * 9 + [1])
    assert expected_calibration_error(logits, targets) == pytest.approx(0.0, abs=1e-9)


def test_ece_small_for_sampled_calibrated_predictions():
    g = torch.Generator().manual_seed(0)
    conf = 0.5 + 0.49 * torch.rand(20_000, generator=g, dtype=torch.float64)  # (N,) in [0.5, 0.99]
    correct = torch.rand(20_000, generator=g, dtype=torch.float64) < conf  # right with probability conf
    logits = binary_logits(conf.tolist(), [0] * len(conf))
    assert expected_calibration_error(logits, (~correct).long()) < 0.02


def test_reliability_bins_match_manual_binning():
    g = torch.Generator().manual_seed(1)
    logits, targets = 2 * torch.randn(500, 4, generator=g), torch.randint(0, 4, (500,), generator=g)
    targets[:50] = -1  # unlabelled rows are ignored
    bins = reliability_bins(logits, targets, n_bins=10)
    assert set(bins) >= {"centers", "accuracy", "confidence", "counts"}
    assert bins["counts"].sum() == 450
    probs = torch.softmax(logits[50:].double(), 1).numpy()
    conf, right = probs.max(1), probs.argmax(1) == targets[50:].numpy()
    for b in range(10):
        in_bin = (conf > b / 10) & (conf <= (b + 1) / 10)
        assert bins["counts"][b] == in_bin.sum()
        if in_bin.any():
            assert bins["accuracy"][b] == pytest.approx(right[in_bin].mean())
            assert bins["confidence"][b] == pytest.approx(conf[in_bin].mean())
        else:
            assert np.isnan(bins["accuracy"][b])
    np.testing.assert_allclose(bins["centers"], np.arange(10) / 10 + 0.05)


# ---------------------------------------------------------------------------------------- inference
def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 3))


def test_predict_logits_eval_mode_batched_and_restores_mode():
    model, x = small_model(), torch.randn(10, 6)
    model.train()
    model[1].eval()  # a submodule frozen in eval mode stays that way
    out = predict_logits(model, x, batch_size=3)
    assert out.shape == (10, 3) and out.device.type == "cpu" and not out.requires_grad
    assert model.training and not model[1].training and model[2].training
    model.eval()
    torch.testing.assert_close(out, model(x).detach())  # BN running stats, no dropout
    torch.testing.assert_close(out, predict_logits(model, x, batch_size=1024))
    assert not model.training  # eval stays eval


def test_predict_logits_errors():
    with pytest.raises(ValueError, match="non-empty batch"):
        predict_logits(small_model(), torch.randn(0, 6))
    with pytest.raises(ValueError, match="batch_size"):
        predict_logits(small_model(), torch.randn(4, 6), batch_size=0)


def test_evaluate_with_and_without_teacher():
    model = small_model().eval()
    data = SimpleNamespace(x=torch.randn(20, 6), y=torch.tensor([0, 1, 2, -1] * 5))
    result = evaluate(model, data)
    assert set(result) == {"accuracy", "ece", "nll"}
    logits = model(data.x).detach()
    assert result["accuracy"] == pytest.approx(accuracy(logits, data.y))
    keep = data.y >= 0
    assert result["nll"] == pytest.approx(F.cross_entropy(logits[keep], data.y[keep]).item(), rel=1e-5)
    with_teacher = evaluate(model, data, teacher=model)
    assert with_teacher["agreement"] == 1.0 and with_teacher["kl_to_teacher"] == pytest.approx(0.0, abs=1e-9)
    other = torch.randn(20, 3)
    with_logits = evaluate(model, data, teacher_logits=other)
    assert with_logits["agreement"] == pytest.approx(agreement(logits, other))
    with pytest.raises(ValueError, match="not both"):
        evaluate(model, data, teacher=model, teacher_logits=other)
    with pytest.raises(ValueError, match="different batch sizes"):
        evaluate(model, data, teacher_logits=other[:5])
    with pytest.raises(ValueError, match=r"\.x"):
        evaluate(model, data.x)


# ------------------------------------------------------------------------------------------- errors
def test_bad_shapes_give_clear_errors():
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"\(batch, num_classes\)"):
        accuracy(torch.randn(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="batch size 4"):
        accuracy(z, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="class indices"):
        expected_calibration_error(z, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="classes"):
        agreement(z, torch.randn(4, 5))
    with pytest.raises(ValueError, match="batch sizes"):
        kl_to_teacher(z, torch.randn(3, 3))
    with pytest.raises(ValueError, match="n_bins"):
        reliability_bins(z, torch.zeros(4, dtype=torch.long), n_bins=0)


# ------------------------------------------------------------------------------------------ summaries
def test_mean_std_and_format():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)  # sample std (ddof=1)
    assert mean_std([0.5]) == (0.5, 0.0)
    assert mean_std(torch.tensor([1.0, 3.0])) == pytest.approx((2.0, math.sqrt(2)))
    assert format_mean_std([0.91, 0.92, 0.93]) == "92.0 ± 1.0"
    assert format_mean_std([1.234], scale=1, digits=2) == "1.23 ± 0.00"
    with pytest.raises(ValueError, match="at least one"):
        mean_std([])


def test_summarize_groups_in_order_with_formatted_column():
    records = [
        {"method": "kd", "seed": 0, "accuracy": 0.90, "nll": 0.30},
        {"method": "ce", "seed": 0, "accuracy": 0.80, "nll": 0.50},
        {"method": "kd", "seed": 1, "accuracy": 0.92, "nll": 0.32},
        {"method": "ce", "seed": 1, "accuracy": 0.82, "nll": 0.60},
        {"method": "at", "seed": 0, "accuracy": 0.85, "nll": 0.40},
    ]
    table = summarize(records, "method", ["accuracy", "nll"], scale={"accuracy": 100}, digits=1)
    assert list(table.index) == ["kd", "ce", "at"]  # first appearance, not alphabetical
    assert list(table["n"]) == [2, 2, 1]
    assert table.loc["kd", "accuracy_mean"] == pytest.approx(0.91)
    assert table.loc["kd", "accuracy_std"] == pytest.approx(np.std([0.90, 0.92], ddof=1))
    assert table.loc["at", "accuracy_std"] == 0.0
    assert table.loc["kd", "accuracy"] == format_mean_std([0.90, 0.92])
    assert table.loc["ce", "nll"] == "0.6 ± 0.1"  # scale 1 for metrics missing from the dict
    same = summarize(pd.DataFrame(records), ["method"], "accuracy")
    assert list(same["accuracy"]) == list(table["accuracy"])
    two_keys = summarize(records, ["method", "seed"], ["accuracy"])
    assert len(two_keys) == 5 and (two_keys["n"] == 1).all()


def test_summarize_errors():
    with pytest.raises(ValueError, match="available: method, accuracy"):
        summarize([{"method": "kd", "accuracy": 0.9}], "method", ["agreement"])
    with pytest.raises(ValueError, match="at least one record"):
        summarize([], "method", ["accuracy"])


# ------------------------------------------------------------------------------- careless inputs (#15)
def test_kl_to_teacher_with_unknown_teacher_classes_counts_only_known_ones():
    # -inf = a class of teacher probability 0: it adds 0 to the KL, not 0 * inf = NaN
    s = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]])
    t = torch.tensor([[2.0, float("-inf"), 0.0], [0.0, 1.0, float("-inf")]])
    p_t, log_s = torch.softmax(t.double(), 1), torch.log_softmax(s.double(), 1)
    known = torch.isfinite(t)
    hand = (p_t[known] * (p_t[known].log() - log_s[known])).sum() / 2
    assert kl_to_teacher(s, t) == pytest.approx(hand.item(), rel=1e-12)
    finite = torch.randn(5, 4)  # without -inf the value is F.kl_div's, as before
    ref = F.kl_div(F.log_softmax(finite.double(), 1), F.log_softmax(finite.double().flip(0), 1),
                   reduction="batchmean", log_target=True)  # fmt: skip
    assert kl_to_teacher(finite, finite.flip(0)) == ref.item()


def test_metrics_refuse_nan_and_probabilities_but_take_log_probabilities():
    z = torch.randn(30, 4, generator=torch.Generator().manual_seed(1))
    y = torch.arange(30) % 4
    with pytest.raises(ValueError, match="NaN"):
        accuracy(torch.where(torch.arange(4) == 2, float("nan"), z), y)
    with pytest.raises(ValueError, match="look like probabilities"):
        expected_calibration_error(z.softmax(1), y)
    assert accuracy(z.softmax(1), y) == accuracy(z, y)  # the arg-max of probabilities is fine
    assert expected_calibration_error(z.log_softmax(1), y) == pytest.approx(expected_calibration_error(z, y))
    with pytest.raises(ValueError, match="every class"):
        accuracy(torch.full((2, 4), float("-inf")), y[:2])
    assert math.isnan(accuracy(z, torch.full((30,), -1)))  # nothing labelled: nan, as documented
    with pytest.raises(ValueError, match="at least one example"):
        accuracy(z[:0], y[:0])


def test_summarize_refuses_partly_missing_values_and_reads_a_dict_of_columns():
    from labkit.metrics import summarize

    with pytest.raises(ValueError, match=r"missing \(NaN\) in some runs of group\(s\) \['b'\]"):
        summarize(
            [{"arm": "a", "acc": 0.5}, {"arm": "b", "acc": 0.6}, {"arm": "b", "acc": float("nan")}],
            "arm",
            "acc",
        )
    # a metric that a group never has (a fixed reference's training time) stays "nan", as before
    table = summarize([{"arm": "t", "acc": 0.9, "s": float("nan")}, {"arm": "a", "acc": 0.5, "s": 2.0}], "arm",
                      ["acc", "s"], scale=1)  # fmt: skip
    assert table.loc["t", "s"] == "nan" and table.loc["a", "s"] == "2.0 ± 0.0"
    cols = summarize({"arm": ["a", "a"], "acc": [0.5, 0.7]}, "arm", "acc")
    assert cols.loc["a", "acc"] == "60.0 ± 14.1"
