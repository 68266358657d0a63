"""Multi-teacher distillation: weighting strategies against hand-computed weights, the objective against the
single-teacher one, partial label spaces, clear errors, and cached == uncached training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import labkit as lk
from labkit.multiteacher import WEIGHTINGS


def _stack(*rows_per_teacher):
    # each argument: logits (B, C) of one teacher -> (B, K, C)
    return torch.stack([torch.tensor(r, dtype=torch.float32) for r in rows_per_teacher], dim=1)


# ------------------------------------------------------------------------------- weights by hand
def test_uniform_weights():
    z = torch.randn(4, 3, 5)
    w = lk.make_weighting("uniform", 3)(z, torch.zeros(4, dtype=torch.long))
    assert torch.allclose(w, torch.full((4, 3), 1 / 3))


def test_accuracy_weights_are_normalised_accuracies():
    w = lk.make_weighting("accuracy", 2, accuracies=[0.8, 0.6])(torch.randn(3, 2, 4), torch.zeros(3).long())
    assert torch.allclose(w, torch.tensor([[4 / 7, 3 / 7]] * 3))


def test_confidence_weights_by_hand():
    # teacher 0 is one-hot-ish (normalised entropy 0), teacher 1 uniform over its 2 classes (ln 2 / ln 2 = 1)
    z = _stack([[0.0, 0.0]], [[0.0, 0.0]])
    z[0, 0] = torch.tensor([20.0, -20.0])
    w = lk.make_weighting("confidence", 2, tau=0.5)(z, torch.tensor([0]))
    expected = torch.tensor([math.exp(-0.0 / 0.5), math.exp(-1.0 / 0.5)])
    assert torch.allclose(w[0], expected / expected.sum(), atol=1e-6)
    # a 4-class teacher at p = (0.7, 0.1, 0.1, 0.1) against a uniform 4-class one, by hand
    p = torch.tensor([0.7, 0.1, 0.1, 0.1])
    h = float(-(p * p.log()).sum()) / math.log(4)
    w = lk.make_weighting("confidence", 2)(_stack([p.log().tolist()], [[0.0] * 4]), torch.tensor([0]))
    expected = torch.tensor([math.exp(-h), math.exp(-1.0)])
    assert torch.allclose(w[0], expected / expected.sum(), atol=1e-6)


def test_confidence_normalises_entropy_by_the_size_of_each_label_space():
    # maximally unsure generalist (10 classes) and maximally unsure expert (5 classes): the same weight,
    # although their raw entropies are ln 10 and ln 5
    unsure = lk.stack_teacher_logits(
        [torch.zeros(3, 10), torch.zeros(3, 5)], class_maps=[None, [5, 6, 7, 8, 9]], num_classes=10
    )
    w = lk.make_weighting("confidence", 2)(unsure, torch.tensor([0, 5, -1]))
    assert torch.allclose(w, torch.full((3, 2), 0.5), atol=1e-6)
    # a confident teacher beats an unsure one, whichever label space each has
    confident_expert = torch.zeros(3, 5)
    confident_expert[:, 0] = 12.0
    z = lk.stack_teacher_logits(
        [torch.zeros(3, 10), confident_expert], class_maps=[None, [5, 6, 7, 8, 9]], num_classes=10
    )
    w = lk.make_weighting("confidence", 2)(z, torch.tensor([0, 5, -1]))
    assert (w[:, 1] > w[:, 0]).all()
    confident_generalist = torch.zeros(3, 10)
    confident_generalist[:, 3] = 12.0
    z = lk.stack_teacher_logits(
        [confident_generalist, torch.zeros(3, 5)], class_maps=[None, [5, 6, 7, 8, 9]], num_classes=10
    )
    w = lk.make_weighting("confidence", 2)(z, torch.tensor([0, 5, -1]))
    assert (w[:, 0] > w[:, 1]).all()
    # a teacher of one class is certain: normalised entropy 0, no division by log 1 = 0
    one = lk.stack_teacher_logits(
        [torch.zeros(2, 1), torch.zeros(2, 2)], class_maps=[[0], None], num_classes=2
    )
    w = lk.make_weighting("confidence", 2, tau=1.0)(one, torch.tensor([0, 1]))
    assert torch.isfinite(w).all() and torch.allclose(
        w[0], torch.tensor([1.0, math.exp(-1.0)]) / (1 + math.exp(-1))
    )


def test_teacher_accuracies_measure_each_expert_on_its_own_classes():
    y = torch.tensor([0, 1, 2, 3, 0, 3, -1])
    gen = F.one_hot(torch.tensor([0, 1, 2, 2, 0, 3, 0]), 4).float() * 5  # right on 5 of the 6 labelled
    expert = torch.tensor([[9.0, 0.0]] * 7)  # knows classes 2 and 3, always says 2: right on 1 of its 3
    expert[3] = torch.tensor([0.0, 9.0])  # ... and right on example 3: 2 of 3
    perfect = torch.tensor(
        [[5.0, 0.0], [0.0, 5.0], [5.0, 0.0], [0.0, 5.0], [5.0, 0.0], [0.0, 5.0], [1.0, 0.0]]
    )
    z = lk.stack_teacher_logits([gen, expert, perfect], class_maps=[None, [2, 3], [0, 1]], num_classes=4)
    acc = lk.teacher_accuracies(z, y)
    assert acc == pytest.approx([5 / 6, 2 / 3, 1.0])
    # all-class accuracy would cap the perfect expert on 2 of the 4 classes: 3 of the 6 labelled rows
    assert lk.accuracy(z[y >= 0, 2], y[y >= 0]) == pytest.approx(0.5)
    # an arg-max among the teacher's own classes even when another class has a larger finite logit elsewhere
    z2 = z.clone()
    z2[:, 1, :2] = float("-inf")
    assert lk.teacher_accuracies(z2, y)[1] == pytest.approx(2 / 3)


def test_teacher_accuracies_of_an_ensemble_on_data(digits_and_teachers):
    train, teachers = digits_and_teachers
    ens = lk.TeacherEnsemble(teachers, 10, class_maps=[None, None, [5, 6, 7, 8, 9]])
    acc = lk.teacher_accuracies(ens, train)
    stack = ens.predict_stack(train.x)
    assert acc[0] == pytest.approx(lk.accuracy(stack[:, 0], train.y))
    own = train.y >= 5
    assert acc[2] == pytest.approx(lk.accuracy(stack[own, 2], train.y[own]))
    assert acc == pytest.approx(lk.teacher_accuracies(stack, train.y))


def test_teacher_accuracies_errors():
    z = lk.stack_teacher_logits(
        [torch.randn(3, 4), torch.randn(3, 2)], class_maps=[None, [2, 3]], num_classes=4
    )
    with pytest.raises(ValueError, match="no labelled example"):
        lk.teacher_accuracies(z, torch.tensor([0, 1, -1]))
    with pytest.raises(ValueError, match="3 examples"):
        lk.teacher_accuracies(z, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="integer labels"):
        lk.teacher_accuracies(z, torch.zeros(3))
    with pytest.raises(ValueError, match="stack"):
        lk.teacher_accuracies(torch.randn(3, 4), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="4 classes"):
        lk.teacher_accuracies(z, torch.tensor([0, 1, 7]))


def test_label_agreement_weights_match_ca_mkd_by_hand():
    # p_0(y) = 0.9, p_1(y) = 0.5 -> exp(CE_k) = 1 / p_k -> w_k = 1 - (1/p_k) / sum_j (1/p_j)  (K = 2)
    z = _stack([[math.log(0.9), math.log(0.1)]], [[0.0, 0.0]])
    w = lk.make_weighting("label", 2)(z, torch.tensor([0]))
    inv = torch.tensor([1 / 0.9, 2.0])
    assert torch.allclose(w[0], 1 - inv / inv.sum(), atol=1e-6)
    # three teachers: (1 - softmax(CE)) / (K - 1)
    z3 = torch.randn(5, 3, 4)
    y = torch.tensor([0, 1, 2, 3, 0])
    ce = -F.log_softmax(z3, -1).gather(-1, y.view(5, 1, 1).expand(5, 3, 1)).squeeze(-1)
    w3 = lk.make_weighting("label", 3)(z3, y)
    assert torch.allclose(w3, (1 - F.softmax(ce, 1)) / 2, atol=1e-6)


def test_label_agreement_is_uniform_for_unlabelled_rows():
    w = lk.make_weighting("label", 2)(torch.randn(2, 2, 3), torch.tensor([-1, 1]))
    assert torch.allclose(w[0], torch.tensor([0.5, 0.5]))
    assert not torch.allclose(w[1], torch.tensor([0.5, 0.5]))


def test_learned_weights_start_uniform_and_move_to_the_teacher_that_predicts_labels():
    torch.manual_seed(0)
    y = torch.randint(0, 4, (64,))
    good = F.one_hot(y, 4).float() * 6  # teacher 0 always right
    bad = F.one_hot((y + 1) % 4, 4).float() * 6  # teacher 1 always wrong
    z = torch.stack([good, bad], 1)
    weighting = lk.make_weighting("learned", 2)
    assert torch.allclose(weighting(z, y), torch.full((64, 2), 0.5))
    opt = torch.optim.SGD(weighting.parameters(), lr=1.0)
    for _ in range(50):
        weighting(z, y)
        opt.zero_grad()
        weighting.aux_loss.backward()
        opt.step()
    assert float(weighting(z, y)[0, 0].detach()) > 0.9


@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_every_strategy_gives_valid_weights(name):
    torch.manual_seed(1)
    z = torch.randn(7, 3, 5) * 4
    z[:, 2, :2] = float("-inf")  # teacher 2 knows classes 2..4 only
    y = torch.tensor([0, 1, 2, 3, 4, -1, 2])
    kwargs = {"accuracies": [0.9, 0.5, 0.7]} if name == "accuracy" else {}
    w = lk.make_weighting(name, 3, **kwargs)(z, y)
    assert w.shape == (7, 3)
    assert (w >= 0).all()
    assert torch.allclose(w.sum(1), torch.ones(7), atol=1e-6)
    lk.check_weights(w, 7, 3)


# ---------------------------------------------------------------------------------- the objective
def test_one_teacher_equals_hinton():
    torch.manual_seed(0)
    s, t, y = torch.randn(6, 5), torch.randn(6, 5) * 3, torch.tensor([0, 1, 2, 3, 4, -1])
    multi = lk.multi_teacher_kd_loss(s, t.unsqueeze(1), y, torch.ones(6, 1), temperature=3.0, alpha=0.7)
    single = lk.hinton_kd_loss(s, t, y, temperature=3.0, alpha=0.7)
    assert torch.allclose(multi, single, atol=1e-6)


def test_weighted_sum_of_teacher_kls_by_hand():
    torch.manual_seed(0)
    s, t1, t2 = torch.randn(4, 3), torch.randn(4, 3), torch.randn(4, 3)
    w = torch.tensor([[0.25, 0.75]] * 4)
    y = torch.zeros(4, dtype=torch.long)
    got = lk.multi_teacher_kd_loss(s, torch.stack([t1, t2], 1), y, w, temperature=2.0, alpha=1.0)
    want = 0.25 * lk.kd_kl_loss(s, t1, 2.0) + 0.75 * lk.kd_kl_loss(s, t2, 2.0)
    assert torch.allclose(got, want, atol=1e-6)


def test_partial_teacher_kl_uses_the_student_renormalised_over_its_classes():
    s = torch.tensor([[1.0, 2.0, 0.5, -1.0]])
    expert = torch.tensor([[3.0, 0.0]])  # knows classes 1 and 3
    z = lk.stack_teacher_logits([expert], class_maps=[[1, 3]], num_classes=4)
    assert torch.isinf(z[0, 0, [0, 2]]).all()
    got = lk.per_teacher_kl(s, z, temperature=1.0)[0, 0]
    p_t = F.softmax(expert[0], -1)
    p_s = F.softmax(s[0, [1, 3]], -1)
    assert torch.allclose(got, (p_t * (p_t / p_s).log()).sum(), atol=1e-6)


def test_partial_teachers_have_finite_gradients():
    s = torch.randn(5, 6, requires_grad=True)
    z = lk.stack_teacher_logits(
        [torch.randn(5, 3), torch.randn(5, 3)], class_maps=[[0, 1, 2], [3, 4, 5]], num_classes=6
    )
    loss = lk.multi_teacher_kd_loss(s, z, torch.tensor([0, 4, -1, 2, 5]), torch.full((5, 2), 0.5), 4.0, 0.5)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()


def test_fusion_spaces():
    torch.manual_seed(0)
    z = torch.randn(3, 2, 4)
    p = F.softmax(z, -1).mean(1)
    assert torch.allclose(lk.fuse_teachers(z, space="prob").exp(), p, atol=1e-6)
    assert torch.allclose(lk.fuse_teachers(z, space="logit"), F.log_softmax(z.mean(1), -1), atol=1e-6)
    geo = F.log_softmax(F.log_softmax(z, -1).mean(1), -1)
    assert torch.allclose(lk.fuse_teachers(z, space="logprob"), geo, atol=1e-6)
    # experts on disjoint halves: in logit space each class takes its only expert's logit
    e = lk.stack_teacher_logits([z[:, 0, :2], z[:, 1, 2:]], class_maps=[[0, 1], [2, 3]], num_classes=4)
    fused = lk.fuse_teachers(e, space="logit")
    assert torch.allclose(fused, F.log_softmax(torch.cat([z[:, 0, :2], z[:, 1, 2:]], 1), -1), atol=1e-6)


# ------------------------------------------------------------------------------------- clear errors
@pytest.mark.parametrize(
    "weights, match",
    [
        (torch.tensor([[-0.5, 1.5]]), ">= 0"),
        (torch.tensor([[float("nan"), 1.0]]), "NaN"),
        (torch.tensor([[0.3, 0.3]]), "sum to 1"),
        (torch.tensor([[1.0]]), "shape"),
    ],
)
def test_bad_weights(weights, match):
    with pytest.raises(ValueError, match=match):
        lk.multi_teacher_kd_loss(torch.randn(1, 3), torch.randn(1, 2, 3), torch.tensor([0]), weights)


def test_bad_teacher_stacks_and_label_spaces():
    with pytest.raises(ValueError, match="zero"):
        lk.stack_teacher_logits([])
    with pytest.raises(ValueError, match="class_maps"):
        lk.stack_teacher_logits([torch.randn(2, 10), torch.randn(2, 5)], num_classes=10)
    with pytest.raises(ValueError, match="same student class"):
        lk.expand_logits(torch.randn(2, 2), [1, 1], 4)
    with pytest.raises(ValueError, match="0..3"):
        lk.expand_logits(torch.randn(2, 2), [1, 7], 4)
    with pytest.raises(ValueError, match="names 3 classes"):
        lk.expand_logits(torch.randn(2, 2), [0, 1, 2], 4)
    with pytest.raises(ValueError, match="student needs shape"):
        lk.multi_teacher_kd_loss(
            torch.randn(2, 5), torch.randn(2, 2, 3), torch.zeros(2).long(), torch.ones(2, 2) / 2
        )
    with pytest.raises(ValueError, match="stack"):
        lk.multi_teacher_kd_loss(
            torch.randn(2, 3), torch.randn(2, 3), torch.zeros(2).long(), torch.ones(2, 1)
        )


def test_bad_strategies_and_ensembles():
    with pytest.raises(ValueError, match="weighting"):
        lk.make_weighting("vote", 2)
    with pytest.raises(ValueError, match="accuracies"):
        lk.make_weighting("accuracy", 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        lk.make_weighting("accuracy", 2, accuracies=[0.5, -0.1])
    with pytest.raises(ValueError, match="zero"):
        lk.TeacherEnsemble([], num_classes=10)
    t5 = lk.build_model("mlp", (1, 8, 8), 5, hidden=(4,))
    with pytest.raises(ValueError, match="class_maps"):
        lk.TeacherEnsemble([t5], num_classes=10)
    with pytest.raises(ValueError, match="TeacherEnsemble"):
        data = lk.load_dataset("digits", verbose=False).train.subset(range(64))
        t10 = lk.build_model("mlp", (1, 8, 8), 10, hidden=(4,))
        lk.fit(lk.build_model("mlp", (1, 8, 8), 10, hidden=(4,)), data, method="multi", teacher=t10)


# -------------------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def digits_and_teachers():
    data = lk.load_dataset("digits", verbose=False)
    train = data.train.subset(range(256))
    teachers = []
    for seed in (0, 1):
        lk.seed_everything(seed)
        t = lk.build_model("mlp", data.in_shape, 10, hidden=(16,))
        lk.fit(t, train, config=lk.TrainConfig(epochs=2, batch_size=64, seed=seed, progress=False))
        teachers.append(t)
    lk.seed_everything(2)
    expert = lk.build_model("mlp", data.in_shape, 5, hidden=(16,))  # a teacher for classes 5..9 only
    teachers.append(expert)
    return train, teachers


@pytest.mark.parametrize("weighting", ["uniform", "label", "learned"])
def test_cached_and_uncached_multi_teacher_training_are_identical(digits_and_teachers, weighting):
    train, teachers = digits_and_teachers
    ens = lk.TeacherEnsemble(teachers, 10, class_maps=[None, None, [5, 6, 7, 8, 9]], weighting=weighting)
    lk.seed_everything(3)
    init = lk.build_model("mlp", train.in_shape, 10, hidden=(8,))
    results = []
    for cache in (True, False, True):
        s = lk.clone_init(init)
        cfg = lk.TrainConfig(epochs=2, batch_size=64, seed=0, cache_teacher=cache, progress=False)
        hist = lk.fit(s, train, method="multi", teacher=ens, config=cfg)
        results.append((hist.last["train_loss"], [p.detach().clone() for p in s.parameters()]))
    for loss, params in results[1:]:
        assert loss == pytest.approx(results[0][0], rel=1e-5, abs=1e-6)
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(params, results[0][1]))
    assert results[2][0] == results[0][0]  # same seed twice: identical on CPU


def test_precomputed_stack_shape_is_checked(digits_and_teachers):
    train, teachers = digits_and_teachers
    ens = lk.TeacherEnsemble(teachers[:2], 10)
    s = lk.build_model("mlp", train.in_shape, 10, hidden=(8,))
    with pytest.raises(ValueError, match=r"\(256, 2, 10\)"):
        lk.fit(s, train, method="multi", teacher=ens, teacher_logits=torch.zeros(256, 10))


# ---------------------------------------------------------------------------------- expert training sets
def test_class_subset_keeps_and_relabels_the_classes_in_order():
    data = lk.load_dataset("digits", verbose=False).train
    sub = lk.class_subset(data, [7, 3, 5])
    assert sub.classes == ["7", "3", "5"] and sub.num_classes == 3
    mask = (data.y == 7) | (data.y == 3) | (data.y == 5)
    assert len(sub) == int(mask.sum())
    assert torch.equal(torch.tensor([7, 3, 5])[sub.y], data.y[mask])  # the class map undoes the relabelling
    assert torch.equal(sub.x, data.x[mask])
    half = data.subset(range(40)).unlabelled()
    assert len(lk.class_subset(lk.concat(data.subset(range(40)), half), [0, 1])) == int(
        (data.y[:40] < 2).sum()
    )


def test_class_subset_errors():
    data = lk.load_dataset("digits", verbose=False).train
    with pytest.raises(ValueError, match="same student class"):
        lk.class_subset(data, [1, 1])
    with pytest.raises(ValueError, match="0..9"):
        lk.class_subset(data, [0, 10])
    with pytest.raises(ValueError, match="at least 2"):
        lk.class_subset(data, [4])
    with pytest.raises(ValueError, match="ImageData"):
        lk.class_subset(data.x, [0, 1])


# ------------------------------------------------------------------------------- the mixer (no display)
def _expert_stack():
    g = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    e = torch.tensor([[0.0, 3.0]])  # knows classes 2 and 3
    return lk.stack_teacher_logits([g, e], class_maps=[None, [2, 3]], num_classes=4)  # (1, 2, 4)


def test_mixer_table_rows_by_hand():
    z = _expert_stack()
    table = lk.mixer_table(z[0], [3, 1], class_names=list("abcd"), teacher_names=["gen", "expert"])
    assert list(table.index) == ["gen", "expert", "fused (prob)", "fused (logit)"]
    probs = table[list("abcd")]
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert probs.loc["expert", "a"] == 0 and probs.loc["expert", "b"] == 0  # outside its classes
    p_gen, p_exp = F.softmax(z[0, 0], -1), F.softmax(z[0, 1], -1)
    assert np.allclose(probs.loc["fused (prob)"], (0.75 * p_gen + 0.25 * p_exp).numpy(), atol=1e-6)
    mixed = torch.tensor(
        [2.0, 1.0, 0.75 * 0 + 0.25 * 0.0, 0.75 * -1.0 + 0.25 * 3.0]
    )  # per class, known teachers
    assert np.allclose(probs.loc["fused (logit)"], F.softmax(mixed, -1).numpy(), atol=1e-6)
    assert table["weight"].iloc[:2].tolist() == [0.75, 0.25] and table["weight"].iloc[2:].isna().all()
    with pytest.raises(ValueError, match="non-negative"):
        lk.mixer_table(z[0], [0, 0])
    with pytest.raises(ValueError, match="one example"):
        lk.mixer_table(torch.randn(3, 2, 4))


def test_teacher_mixer_builds_and_redraws():
    import ipywidgets as widgets
    import matplotlib

    matplotlib.use("Agg")
    stack = torch.cat([_expert_stack(), _expert_stack() * 2])  # (2, 2, 4)
    box = lk.teacher_mixer(stack, class_names=list("abcd"), teacher_names=["gen", "expert"])
    assert isinstance(box, widgets.VBox)
    example, sliders, out = box.children
    assert isinstance(out, widgets.Output) and len(sliders.children) == 2
    example.value = 1
    sliders.children[0].value = 0.0
    sliders.children[1].value = 0.0  # all zero: falls back to uniform, no error
    assert [o["output_type"] for o in out.outputs] == ["stream", "display_data"]
    assert "every weight is 0: showing uniform weights" in out.outputs[0]["text"] and out.msg_id == ""
    fig = lk.plot_teacher_mix(stack[1], [1, 0], list("abcd"))
    assert fig.axes[0].get_title() and fig.axes[0].get_ylabel()
    with pytest.raises(ValueError, match="stack"):
        lk.teacher_mixer(torch.randn(4, 10))
    with pytest.raises(ValueError, match="class_names"):
        lk.teacher_mixer(stack, class_names=["a"])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("T", [0.5, 20.0])
def test_multi_teacher_loss_finite_in_low_precision_with_extreme_logits(dtype, T):
    s = (torch.randn(8, 10) * 3e3).to(dtype).requires_grad_(True)
    z = lk.stack_teacher_logits(
        [(torch.randn(8, 10) * 3e3).to(dtype), (torch.randn(8, 5) * 3e3).to(dtype)],
        class_maps=[None, [0, 2, 4, 6, 8]],
        num_classes=10,
    )
    for name in ("uniform", "confidence", "label"):
        w = lk.make_weighting(name, 2)(z, torch.arange(8) % 10)
        loss = lk.multi_teacher_kd_loss(s, z, torch.arange(8) % 10, w, temperature=T, alpha=0.5)
        (grad,) = torch.autograd.grad(loss, s)
        assert torch.isfinite(loss) and torch.isfinite(grad).all(), name


# -------------------------------------------------------------- issue #15 item 4: NaN / +inf are not "unknown"
@pytest.mark.parametrize("bad, kind", [(float("nan"), "NaN"), (float("inf"), r"\+inf")])
def test_nan_or_plus_inf_teacher_logit_is_an_error_naming_teacher_and_example(bad, kind):
    s, y, w = torch.randn(3, 4), torch.tensor([0, 1, -1]), torch.full((3, 2), 0.5)
    z = torch.randn(3, 2, 4)
    z[2, 1, 3] = bad  # teacher 1, example 2, class 3
    message = rf"teacher 1 has a {kind} logit at example 2, class 3 .*finite, or -inf for a class the teacher"
    with pytest.raises(ValueError, match=message):
        lk.multi_teacher_kd_loss(s, z, y, w)  # was a finite loss, the class read as unknown
    with pytest.raises(ValueError, match=message):
        lk.per_teacher_kl(s, z, 4.0)
    with pytest.raises(ValueError, match=message):
        lk.fuse_teachers(z)
    with pytest.raises(ValueError, match=message):
        lk.make_weighting("confidence", 2)(z, y)
    # before the stack: the list of teacher logits names the teacher too
    with pytest.raises(ValueError, match=rf"teacher 1's logits must hold .*{kind}"):
        lk.stack_teacher_logits([z[:, 0], z[:, 1]])


def test_a_teacher_row_of_all_minus_inf_is_an_error_not_a_zero_weight():
    # A teacher that knows no class of an example has no distribution to distil; giving it weight 0 would silently
    # renormalise the strategy's weights. Every expert knows at least one class, so such a row is a bug upstream.
    s, y, w = torch.randn(3, 4), torch.tensor([0, 1, -1]), torch.full((3, 2), 0.5)
    z = torch.randn(3, 2, 4)
    z[1, 0] = float("-inf")
    with pytest.raises(ValueError, match="teacher 0 knows no class for example 1 .*all -inf"):
        lk.multi_teacher_kd_loss(s, z, y, w)
    with pytest.raises(ValueError, match="at least one class"):
        lk.expand_logits(torch.randn(3, 0), [], 4)  # a teacher of no classes cannot be built either


def test_minus_inf_still_means_unknown_and_valid_stacks_are_unchanged():
    s = torch.tensor([[1.0, 2.0, 0.5, -1.0]])
    z = lk.stack_teacher_logits([torch.tensor([[3.0, 0.0]])], class_maps=[[1, 3]], num_classes=4)
    p_t, p_s = F.softmax(torch.tensor([3.0, 0.0]), -1), F.softmax(s[0, [1, 3]], -1)
    kl = lk.per_teacher_kl(s, z, 1.0)[0, 0]
    assert kl.item() == pytest.approx((p_t * (p_t / p_s).log()).sum().item(), abs=1e-6)


def test_per_teacher_kl_is_never_negative_and_temperature_is_bounded():
    g = torch.Generator().manual_seed(3)
    s = torch.randn(128, 10, generator=g)
    z = torch.stack([s + 1e-3 * torch.randn(128, 10, generator=g) for _ in range(2)], 1)  # near copies
    z[:, 1, 5:] = float("-inf")  # teacher 1 knows classes 0-4
    for t in (20.0, 100.0):
        assert (lk.per_teacher_kl(s, z, t) >= 0).all()
    with pytest.raises(ValueError, match="at most 100"):
        lk.multi_teacher_kd_loss(s, z, torch.full((128,), -1), torch.full((128, 2), 0.5), temperature=1e6)


def test_weightings_check_their_stack_and_targets():
    z, y = torch.randn(4, 2, 5), torch.tensor([0, 4, -1, 2])
    for name in ("uniform", "confidence", "label", "learned"):
        with pytest.raises(ValueError, match="built for 3 teachers, got a stack of 2"):
            lk.make_weighting(name, 3)(z, y)
        with pytest.raises(ValueError, match=r"-1 \(unlabelled\) or 0..4"):
            lk.make_weighting(name, 2)(z, torch.tensor([0, 9, -1, 2]))
        torch.testing.assert_close(lk.make_weighting(name, 2)(z, y.int()), lk.make_weighting(name, 2)(z, y))
    with pytest.raises(ValueError, match="weighting 'uniform' does not take tau; it takes: no options"):
        lk.make_weighting("uniform", 2, tau=2.0)
    with pytest.raises(ValueError, match="weighting 'confidence' does not take accuracies; it takes: tau"):
        lk.TeacherEnsemble([torch.nn.Linear(2, 5)] * 2, 5, weighting="confidence", accuracies=[0.5, 0.5])


def test_a_teacher_logit_that_overflows_at_low_t_is_not_an_unknown_class():
    z = torch.zeros(1, 2, 2)
    z[0, 1, 0] = 3e38  # finite, but 3e38 / 0.5 = inf: it must not pass for "class unknown"
    with pytest.raises(ValueError, match="teacher 1's logits / temperature overflows float32"):
        lk.per_teacher_kl(torch.zeros(1, 2), z, 0.5)
    with pytest.raises(ValueError, match="student_logits / temperature overflows"):
        lk.per_teacher_kl(torch.tensor([[3e38, 0.0]]), torch.zeros(1, 1, 2), 0.5)
