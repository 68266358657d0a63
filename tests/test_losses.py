"""Distillation objectives against hand-derived values, PyTorch references and gradient checks."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.losses import (
    MAX_TEMPERATURE,
    OBJECTIVES,
    HintLoss,
    attention_map,
    attention_transfer_loss,
    get_objective,
    hinton_kd_loss,
    kd_kl_loss,
    labelled_cross_entropy,
    prob_mse_loss,
    soft_targets,
)

LN3 = math.log(3.0)


def test_kd_kl_hand_derived_value():
    # p_t = softmax([ln 3, 0]) = [0.75, 0.25], p_s = [0.5, 0.5]
    # KL = 0.75 ln(0.75/0.5) + 0.25 ln(0.25/0.5)
    expected = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    s, t = torch.tensor([[0.0, 0.0]]), torch.tensor([[LN3, 0.0]])
    assert kd_kl_loss(s, t, temperature=1.0).item() == pytest.approx(expected, abs=1e-6)
    # at T=2 the teacher logits 2*ln3 soften to the same p_t; the loss carries T^2 = 4
    assert kd_kl_loss(s, 2 * t, temperature=2.0).item() == pytest.approx(4 * expected, abs=1e-6)


def test_kd_kl_matches_pytorch_reference_and_batchmean():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(16, 10, generator=g), torch.randn(16, 10, generator=g) * 3
    T = 3.0
    ref = torch.nn.KLDivLoss(reduction="batchmean")(F.log_softmax(s / T, 1), F.softmax(t / T, 1)) * T * T
    assert kd_kl_loss(s, t, T).item() == pytest.approx(ref.item(), rel=1e-5)
    manual = (F.softmax(t / T, 1) * (F.log_softmax(t / T, 1) - F.log_softmax(s / T, 1))).sum(1).mean() * T * T
    assert kd_kl_loss(s, t, T).item() == pytest.approx(manual.item(), rel=1e-5)


def test_kd_gradient_is_T_times_probability_gap():
    g = torch.Generator().manual_seed(1)
    s = torch.randn(8, 5, generator=g, requires_grad=True)
    t = torch.randn(8, 5, generator=g)
    T = 4.0
    kd_kl_loss(s, t, T).backward()
    expected = T * (F.softmax(s.detach() / T, 1) - F.softmax(t / T, 1)) / 8
    torch.testing.assert_close(s.grad, expected, atol=1e-6, rtol=1e-5)


def test_t_squared_keeps_gradient_scale_roughly_constant():
    g = torch.Generator().manual_seed(2)
    s0, t = torch.randn(64, 10, generator=g), torch.randn(64, 10, generator=g)

    def grad_norm(T, with_t2):
        s = s0.clone().requires_grad_(True)
        loss = kd_kl_loss(s, t, T)
        (loss if with_t2 else loss / T**2).backward()
        return s.grad.norm().item()

    ratio_with = grad_norm(10.0, True) / grad_norm(20.0, True)
    ratio_without = grad_norm(10.0, False) / grad_norm(20.0, False)
    assert ratio_with == pytest.approx(1.0, abs=0.1)
    assert ratio_without == pytest.approx(4.0, rel=0.1)


def test_gradcheck_double_precision():
    g = torch.Generator().manual_seed(3)
    s = torch.randn(4, 6, dtype=torch.float64, generator=g, requires_grad=True)
    t = torch.randn(4, 6, dtype=torch.float64, generator=g)
    y = torch.tensor([0, 5, -1, 2])

    # the objectives compute in float32 by design; gradcheck the same formula in float64
    def f64(s):
        T, a = 2.0, 0.7
        kl = F.kl_div(
            F.log_softmax(s / T, 1), F.log_softmax(t / T, 1), reduction="batchmean", log_target=True
        )
        ce = F.cross_entropy(s[y >= 0], y[y >= 0])
        return (1 - a) * ce + a * T * T * kl

    assert torch.autograd.gradcheck(f64, (s,))
    s32 = s.detach().float().requires_grad_(True)
    s64 = s.detach().clone().requires_grad_(True)
    hinton_kd_loss(s32, t.float(), y, 2.0, 0.7).backward()
    f64(s64).backward()
    torch.testing.assert_close(s32.grad.double(), s64.grad, atol=1e-5, rtol=1e-4)


def test_hinton_combines_ce_and_kd():
    g = torch.Generator().manual_seed(4)
    s, t = torch.randn(8, 10, generator=g), torch.randn(8, 10, generator=g)
    y = torch.randint(0, 10, (8,), generator=g)
    T, a = 4.0, 0.3
    expected = (1 - a) * F.cross_entropy(s, y) + a * kd_kl_loss(s, t, T)
    assert hinton_kd_loss(s, t, y, T, a).item() == pytest.approx(expected.item(), rel=1e-6)
    assert hinton_kd_loss(s, t, y, T, 0.0).item() == pytest.approx(F.cross_entropy(s, y).item(), rel=1e-6)
    assert hinton_kd_loss(s, t, y, T, 1.0).item() == pytest.approx(kd_kl_loss(s, t, T).item(), rel=1e-6)


def test_hinton_unlabelled_examples_only_in_kd_term():
    g = torch.Generator().manual_seed(5)
    s, t = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    y = torch.tensor([1, -1, 3, -1, -1, 0])
    m = y >= 0
    expected = 0.5 * F.cross_entropy(s[m], y[m]) + 0.5 * kd_kl_loss(s, t, 2.0)
    assert hinton_kd_loss(s, t, y, 2.0, 0.5).item() == pytest.approx(expected.item(), rel=1e-6)
    all_unlabelled = torch.full((6,), -1)
    assert hinton_kd_loss(s, t, all_unlabelled, 2.0, 0.5).item() == pytest.approx(
        0.5 * kd_kl_loss(s, t, 2.0).item(), rel=1e-6
    )


def test_uniform_guess_cross_entropy_is_log_k():
    s = torch.zeros(5, 10)
    y = torch.arange(5)
    assert hinton_kd_loss(s, s, y, 1.0, 0.0).item() == pytest.approx(math.log(10), abs=1e-6)


def test_teacher_gets_no_gradient():
    s = torch.randn(3, 4, requires_grad=True)
    t = torch.randn(3, 4, requires_grad=True)
    kd_kl_loss(s, t, 2.0).backward()
    assert t.grad is None and s.grad is not None


def test_soft_targets_sum_to_one_and_soften():
    z = torch.tensor([[5.0, 1.0, 0.0]])
    p1, p8 = soft_targets(z, 1.0), soft_targets(z, 8.0)
    torch.testing.assert_close(p1.sum(1), torch.ones(1))
    assert p8.max() < p1.max()  # higher T, flatter distribution


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.lists(st.floats(-30, 30), min_size=3, max_size=3),
    st.lists(st.floats(-30, 30), min_size=3, max_size=3),
    st.floats(0.5, 20.0),
    st.floats(-100, 100),
)
def test_kl_properties(s_vals, t_vals, T, shift):
    s, t = torch.tensor([s_vals]), torch.tensor([t_vals])
    kl = kd_kl_loss(s, t, T).item()
    assert kl >= 0.0  # never negative: rows that round below 0 read 0
    assert kd_kl_loss(t, t, T).item() == pytest.approx(0.0, abs=1e-5)
    assert kd_kl_loss(s + shift, t - shift, T).item() == pytest.approx(kl, rel=1e-3, abs=1e-3)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("T", [0.5, 1.0, 4.0, 20.0])
def test_finite_in_low_precision_with_extreme_logits(dtype, T):
    s = torch.tensor([[1e4, -1e4, 0.0], [-6e4, 6e4, 0.0]]).to(dtype)
    t = torch.tensor([[-1e4, 1e4, 0.0], [6e4, -6e4, 0.0]]).to(dtype)
    y = torch.tensor([0, 1])
    assert torch.isfinite(kd_kl_loss(s, t, T))
    assert torch.isfinite(hinton_kd_loss(s, t, y, T, 0.5))


def test_hint_loss_regressor_and_mse():
    torch.manual_seed(0)
    hint = HintLoss(4, 8)
    fs, ft = torch.randn(2, 4, 5, 5), torch.randn(2, 8, 5, 5)
    expected = F.mse_loss(hint.regressor(fs), ft)
    assert hint(fs, ft).item() == pytest.approx(expected.item(), rel=1e-6)
    hint(fs, ft).backward()
    assert hint.regressor.weight.grad is not None
    vec = HintLoss(4, 8, spatial=False)
    assert vec(torch.randn(3, 4), torch.randn(3, 8)).dim() == 0


def test_attention_map_normalised_and_at_zero_for_same_maps():
    f = torch.randn(2, 3, 4, 4)
    am = attention_map(f)
    assert am.shape == (2, 16)
    torch.testing.assert_close(am.norm(dim=1), torch.ones(2))
    # channel counts may differ: a map with the same per-position energy gives zero loss
    assert attention_transfer_loss([f], [torch.cat([f, f], 1)]).item() == pytest.approx(0.0, abs=1e-6)
    assert attention_transfer_loss(f, torch.randn(2, 7, 4, 4)).item() > 0


def test_registry():
    assert set(OBJECTIVES) >= {"kd", "hinton", "hint", "attention"}
    assert get_objective("kd") is kd_kl_loss
    with pytest.raises(ValueError, match="unknown objective 'fitnet'; choose one of"):
        get_objective("fitnet")


# ----------------------------------------------------------------------------------------- bad inputs
S, T5 = torch.randn(4, 10), torch.randn(4, 10)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: kd_kl_loss(S, T5, temperature=0), "temperature must be a finite number > 0"),
        (lambda: kd_kl_loss(S, T5, temperature=-1.0), "temperature must be a finite number > 0"),
        (lambda: kd_kl_loss(S, T5, temperature=float("nan")), "temperature"),
        (
            lambda: hinton_kd_loss(S, T5, torch.zeros(4, dtype=torch.long), alpha=1.5),
            r"alpha must be in \[0, 1\]",
        ),
        (
            lambda: hinton_kd_loss(S, T5, torch.zeros(4, dtype=torch.long), alpha=-0.1),
            r"alpha must be in \[0, 1\]",
        ),
        (
            lambda: kd_kl_loss(torch.randn(4, 5), torch.randn(4, 10)),
            "teacher has 10 classes but student has 5",
        ),
        (lambda: kd_kl_loss(torch.randn(3, 10), T5), "different batch sizes"),
        (lambda: kd_kl_loss(torch.randn(10), T5), r"shape \(batch, num_classes\)"),
        (lambda: hinton_kd_loss(S, T5, torch.tensor([0, 1, 2, 10])), "class indices"),
        (lambda: hinton_kd_loss(S, T5, torch.zeros(3, dtype=torch.long)), "3 entries"),
        (lambda: hinton_kd_loss(S, T5, torch.zeros(4)), "integer class indices"),
        (
            lambda: HintLoss(4, 8)(torch.randn(2, 4, 5, 5), torch.randn(2, 8, 3, 3)),
            "hint layers do not line up",
        ),
        (lambda: HintLoss(4, 8)(torch.randn(2, 6, 5, 5), torch.randn(2, 8, 5, 5)), "built for 4 student"),
        (
            lambda: attention_transfer_loss([torch.randn(2, 3, 4, 4)], [torch.randn(2, 3, 8, 8)]),
            "same batch and spatial",
        ),
        (lambda: attention_transfer_loss([torch.randn(2, 3, 4, 4)], []), "one to one"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_non_tensor_logits_type_error():
    with pytest.raises(TypeError, match="torch.Tensor"):
        kd_kl_loss([[0.0, 1.0]], T5)


# ------------------------------------------------------------------------------ edge cases of issue #15
NEG_INF = float("-inf")


def test_kd_with_an_unknown_teacher_class_is_the_kl_over_the_known_classes():
    # labkit's convention: a -inf teacher logit is a class the teacher does not know, probability 0, term 0.
    # p_t = softmax([ln 3, 0, -inf]) = [0.75, 0.25, 0]; p_s = softmax([0, 0, 0]) = 1/3 each (over ALL classes)
    s, t = torch.zeros(1, 3, requires_grad=True), torch.tensor([[LN3, 0.0, NEG_INF]])
    expected = 0.75 * math.log(0.75 * 3) + 0.25 * math.log(0.25 * 3)
    loss = kd_kl_loss(s, t, temperature=1.0)
    assert loss.item() == pytest.approx(expected, abs=1e-6)  # was NaN
    loss.backward()
    # gradient T (p_s - p_t) / B, with p_t = 0 on the unknown class
    torch.testing.assert_close(s.grad, torch.tensor([[1 / 3 - 0.75, 1 / 3 - 0.25, 1 / 3]]), atol=1e-6, rtol=0)
    # at T = 2 the same p_t comes from 2 * [ln 3, 0, -inf]; the loss carries T^2 = 4
    assert kd_kl_loss(torch.zeros(1, 3), 2 * t, 2.0).item() == pytest.approx(4 * expected, abs=1e-5)
    # a very negative finite logit is (numerically) the same teacher
    almost = torch.tensor([[LN3, 0.0, -1e4]])
    assert kd_kl_loss(torch.zeros(1, 3), almost, 1.0).item() == pytest.approx(expected, abs=1e-6)
    # mixed batch: rows with and without unknown classes
    s2, t2 = torch.randn(3, 4), torch.randn(3, 4)
    t2[1, 3] = NEG_INF
    ref = torch.stack([kd_kl_loss(s2[i : i + 1], t2[i : i + 1], 3.0) for i in range(3)]).mean()
    assert kd_kl_loss(s2, t2, 3.0).item() == pytest.approx(ref.item(), rel=1e-6)
    assert math.isfinite(hinton_kd_loss(s2, t2, torch.tensor([0, 1, -1]), 3.0, 0.5).item())


def test_kd_student_minus_inf_is_allowed_only_where_the_teacher_is():
    s, t = torch.tensor([[0.0, 0.0, NEG_INF]]), torch.tensor([[LN3, 0.0, NEG_INF]])
    # both -inf on class 2: the student's p_s = [0.5, 0.5, 0]
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert kd_kl_loss(s, t, 1.0).item() == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="student_logits is -inf at row 0, class 1, where the teacher gives"):
        kd_kl_loss(torch.tensor([[0.0, NEG_INF, 0.0]]), t, 1.0)  # KL would be +inf, not NaN


def test_kd_is_never_negative_and_keeps_its_gradient_at_the_largest_temperature():
    g = torch.Generator().manual_seed(7)
    s0 = torch.randn(256, 10, generator=g)
    t = s0 + 1e-3 * torch.randn(256, 10, generator=g)  # nearly equal: float32 rounding dominates the KL
    for T in (10.0, 50.0, MAX_TEMPERATURE):
        s = s0.clone().requires_grad_(True)
        loss = kd_kl_loss(s, t, T)
        assert loss.item() >= 0.0  # unclamped, this batch gives negative "KL" rows
        loss.backward()
        expected = T * (F.softmax(s0 / T, 1) - F.softmax(t / T, 1)) / 256  # the clamp is straight-through
        torch.testing.assert_close(s.grad, expected, atol=1e-7, rtol=1e-3)
    with pytest.raises(ValueError, match="temperature must be at most 100"):
        kd_kl_loss(s0, t, 1e6)  # was a "KL" of about -3.8e5


def test_large_temperature_limit_is_logit_matching():
    # Hinton et al. (2015), Sec. 2.1: T^2 KL -> (1 / 2K) sum_c (dz_c - mean dz)^2 as T grows (zero-mean logits)
    g = torch.Generator().manual_seed(8)
    s, t = torch.randn(64, 10, generator=g), torch.randn(64, 10, generator=g)
    d = (t - s) - (t - s).mean(1, keepdim=True)
    limit = (d.pow(2).sum(1) / (2 * 10)).mean()
    assert kd_kl_loss(s, t, MAX_TEMPERATURE).item() == pytest.approx(limit.item(), rel=0.05)


def test_empty_batches_are_errors_not_nan():
    for call in (
        lambda: kd_kl_loss(torch.zeros(0, 3), torch.zeros(0, 3)),
        lambda: hinton_kd_loss(torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)),
        lambda: labelled_cross_entropy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)),
        lambda: prob_mse_loss(torch.zeros(0, 3), torch.zeros(0, 3)),
    ):
        with pytest.raises(ValueError, match="empty batch"):
            call()
    assert soft_targets(torch.zeros(0, 3)).shape == (0, 3)  # a transform, not a mean: empty in, empty out


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("who", ["student_logits", "teacher_logits"])
def test_nan_and_plus_inf_logits_name_the_argument(bad, who):
    s, t = torch.randn(3, 4), torch.randn(3, 4)
    (s if who == "student_logits" else t)[2, 1] = bad
    kind = "NaN" if bad != bad else r"\+inf"
    for fn in (
        lambda: kd_kl_loss(s, t, 2.0),
        lambda: hinton_kd_loss(s, t, torch.tensor([0, 1, 2]), 2.0, 0.5),
        lambda: prob_mse_loss(s, t, 2.0),
    ):
        with pytest.raises(ValueError, match=rf"{who} must hold .*1 {kind} .*first at index \(2, 1\)"):
            fn()


def test_labelled_cross_entropy_validates_its_labels():
    z = torch.randn(4, 3)
    y = torch.tensor([0, 2, -1, 1])
    ref = F.cross_entropy(z[y >= 0], y[y >= 0])
    assert labelled_cross_entropy(z, y).item() == pytest.approx(ref.item(), rel=1e-6)
    assert labelled_cross_entropy(z, y.to(torch.int32)).item() == pytest.approx(ref.item(), rel=1e-6)
    with pytest.raises(
        ValueError, match=r"-1 \(unlabelled\) or 0..2, got values in \[-100, 2\].*not PyTorch's ignore_index"
    ):
        labelled_cross_entropy(z, torch.tensor([0, 2, -100, 1]))
    with pytest.raises(ValueError, match=r"0..2, got values in \[0, 3\]"):
        labelled_cross_entropy(z, torch.tensor([0, 3, 1, 1]))
    with pytest.raises(ValueError, match="integer class indices, got dtype torch.float32"):
        labelled_cross_entropy(z, y.float())
    with pytest.raises(ValueError, match="3 entries but the logits have batch size 4"):
        labelled_cross_entropy(z, y[:3])
    masked = z.clone()
    masked[1, 0] = NEG_INF  # a masked class that is not the label: fine
    assert math.isfinite(labelled_cross_entropy(masked, y).item())
    masked[1, 2] = NEG_INF  # row 1's label is 2
    with pytest.raises(ValueError, match="row 1 is -inf at its own label 2"):
        labelled_cross_entropy(masked, y)
    zero = labelled_cross_entropy(z.requires_grad_(True), torch.full((4,), -1))
    assert zero.item() == 0.0 and zero.requires_grad  # a batch without labels: 0 that keeps the graph


def test_soft_targets_minus_inf_is_probability_zero():
    p = soft_targets(torch.tensor([[0.0, 0.0, NEG_INF]]), 3.0)
    torch.testing.assert_close(p, torch.tensor([[0.5, 0.5, 0.0]]))
    with pytest.raises(ValueError, match="-inf for every class"):
        soft_targets(torch.full((1, 3), NEG_INF))


def test_logits_that_overflow_when_divided_by_t_are_an_error_not_nan():
    huge, zero = torch.tensor([[3e38, 0.0]]), torch.zeros(1, 2)
    for call, who in (
        (lambda: kd_kl_loss(huge, zero, 0.5), "student_logits"),
        (lambda: kd_kl_loss(zero, huge, 0.5), "teacher_logits"),
        (lambda: soft_targets(huge, 0.5), "logits"),
        (lambda: prob_mse_loss(zero, huge, 0.5), "teacher_logits"),
    ):
        with pytest.raises(ValueError, match=rf"{who} / temperature overflows float32: .*T=0.5"):
            call()  # was NaN
    assert kd_kl_loss(huge, zero, 1.0).item() == pytest.approx(1.5e38, rel=1e-3)  # finite and right: no error


def test_attention_map_of_overflowing_features_is_an_error_not_nan():
    with pytest.raises(ValueError, match=r"\|A\|\^p overflows float32 .*p=2"):
        attention_map(torch.full((1, 2, 2, 2), 1e20))  # (1e20)^2 = inf: the normalised map was NaN
    with pytest.raises(ValueError, match="feat must hold finite numbers, got 1 NaN"):
        attention_map(torch.tensor([float("nan"), 1.0, 1.0, 1.0]).view(1, 1, 2, 2))
