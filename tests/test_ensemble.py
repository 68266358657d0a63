"""Ensemble distillation: the MSE objective and the DML loss against hand-derived values, the ensemble module
against fuse_teachers, a born-again run and a mutual-learning run on digits with tiny models, clear errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import labkit as lk


# ----------------------------------------------------------------------------------- label distillation
def test_prob_mse_by_hand():
    # p_s = (1/2, 1/2), p_t = (3/4, 1/4): (1/4)^2 + (1/4)^2 = 1/8
    z_s = torch.tensor([[0.0, 0.0]])
    z_t = torch.tensor([[math.log(3.0), 0.0]])
    assert lk.prob_mse_loss(z_s, z_t).item() == pytest.approx(0.125, abs=1e-7)
    # T = 2 on logits (2 ln 3, 0) gives the same probabilities again
    assert lk.prob_mse_loss(z_s, 2 * z_t, temperature=2.0).item() == pytest.approx(0.125, abs=1e-7)


def test_prob_mse_is_zero_for_identical_outputs_and_averages_over_the_batch():
    z = torch.randn(6, 10)
    assert lk.prob_mse_loss(z, z).item() == pytest.approx(0.0, abs=1e-8)
    z_s, z_t = torch.randn(4, 5), torch.randn(4, 5)
    ref = ((F.softmax(z_s, 1) - F.softmax(z_t, 1)) ** 2).sum(1).mean()
    assert torch.allclose(lk.prob_mse_loss(z_s, z_t), ref)


def test_prob_mse_gradient_reaches_the_student_only():
    z_s, z_t = torch.randn(3, 4, requires_grad=True), torch.randn(3, 4, requires_grad=True)
    lk.prob_mse_loss(z_s, z_t).backward()
    assert z_s.grad is not None and z_s.grad.abs().sum() > 0
    assert z_t.grad is None


def test_label_distillation_limits():
    z_s, z_t, y = torch.randn(8, 5), torch.randn(8, 5), torch.randint(0, 5, (8,))
    at0 = lk.label_distillation_loss(z_s, z_t, y, alpha=0.0)
    assert torch.allclose(at0, F.cross_entropy(z_s, y))
    at1 = lk.label_distillation_loss(z_s, z_t, y, alpha=1.0)
    assert torch.allclose(at1, lk.prob_mse_loss(z_s, z_t))
    # unlabelled rows: the CE term uses the labelled rows only
    y_part = y.clone()
    y_part[:4] = -1
    half = lk.label_distillation_loss(z_s, z_t, y_part, alpha=0.5)
    expected = 0.5 * F.cross_entropy(z_s[4:], y[4:]) + 0.5 * lk.prob_mse_loss(z_s, z_t)
    assert torch.allclose(half, expected)


def test_mse_method_is_registered():
    assert "mse" in lk.METHODS


# ---------------------------------------------------------------------------------- mutual learning
def test_dml_loss_on_fixed_tensors():
    z1 = torch.tensor([[0.0, 0.0]])
    z2 = torch.tensor([[math.log(3.0), 0.0]])  # p2 = (3/4, 1/4)
    y = torch.tensor([0])
    kl_21 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)  # KL(p2 || p1)
    kl_12 = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)  # KL(p1 || p2)
    losses = lk.dml_loss([z1, z2], y)
    assert losses[0].item() == pytest.approx(math.log(2.0) + kl_21, abs=1e-6)
    assert losses[1].item() == pytest.approx(-math.log(0.75) + kl_12, abs=1e-6)


def test_dml_loss_identical_peers_is_cross_entropy_and_three_peers_average():
    z, y = torch.randn(5, 4), torch.randint(0, 4, (5,))
    losses = lk.dml_loss([z, z.clone()], y)
    assert torch.allclose(losses, F.cross_entropy(z, y).expand(2))
    za, zb, zc = torch.randn(5, 4), torch.randn(5, 4), torch.randn(5, 4)
    three = lk.dml_loss([za, zb, zc], y)
    expected = F.cross_entropy(za, y) + 0.5 * (lk.kd_kl_loss(za, zb, 1.0) + lk.kd_kl_loss(za, zc, 1.0))
    assert torch.allclose(three[0], expected)


def test_dml_loss_detaches_the_other_peer():
    z1, z2 = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3, requires_grad=True)
    y = torch.randint(0, 3, (4,))
    lk.dml_loss([z1, z2], y)[0].backward()  # peer 0's loss: no gradient may reach peer 1
    assert z1.grad.abs().sum() > 0
    assert z2.grad is None or z2.grad.abs().sum() == 0


@pytest.mark.parametrize("peers", [[], [torch.randn(2, 3)]])
def test_dml_loss_needs_two_peers(peers):
    with pytest.raises(ValueError, match="at least two peers"):
        lk.dml_loss(peers, torch.tensor([0, 1]))


def test_dml_loss_mismatched_classes():
    with pytest.raises(ValueError, match="classes"):
        lk.dml_loss([torch.randn(2, 3), torch.randn(2, 4)], torch.tensor([0, 1]))


# ------------------------------------------------------------------------------------------ the ensemble
def _members(in_shape=(1, 8, 8), k=3):
    torch.manual_seed(0)
    return [lk.build_model("cnn", in_shape, 10, width=2, stages=2) for _ in range(k)]


@pytest.mark.parametrize("space", ["prob", "logit", "logprob"])
def test_ensemble_teacher_matches_fuse_teachers(space):
    members, x = _members(), torch.randn(5, 1, 8, 8)
    ens = lk.EnsembleTeacher(members, space=space).eval()
    with torch.no_grad():
        stack = torch.stack([m.eval()(x) for m in members], dim=1)  # (B, K, C)
        out = ens(x)
    assert out.shape == (5, 10)
    assert torch.allclose(out, lk.fuse_teachers(stack, space=space), atol=1e-6)
    assert torch.allclose(out.exp().sum(1), torch.ones(5), atol=1e-5)


def test_logit_and_logprob_fusion_agree_for_full_label_spaces():
    stack = 3 * torch.randn(7, 4, 6)
    a, b = lk.fuse_teachers(stack, space="logit"), lk.fuse_teachers(stack, space="logprob")
    assert torch.allclose(a, b, atol=1e-5)


def test_ensemble_teacher_features_and_members_stay_in_eval():
    members = _members()
    ens = lk.EnsembleTeacher(members, feature_member=1)
    ens.train()
    assert all(not m.training for m in members)
    fused, feats = ens(torch.randn(2, 1, 8, 8), return_features=True)
    assert fused.shape == (2, 10) and len(feats) == len(members[1].feature_channels)
    with pytest.raises(ValueError, match="feature_member"):
        lk.EnsembleTeacher(members)(torch.randn(2, 1, 8, 8), return_features=True)


def test_ensemble_teacher_weights():
    members, x = _members(k=2), torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        only_first = lk.EnsembleTeacher(members, space="logit", weights=[1.0, 0.0])(x)
        expected = F.log_softmax(members[0].eval()(x), dim=1)
    assert torch.allclose(only_first, expected, atol=1e-5)


def test_ensemble_teacher_bad_inputs():
    with pytest.raises(ValueError, match="at least one member"):
        lk.EnsembleTeacher([])
    torch.manual_seed(0)
    mixed = [lk.build_model("mlp", (4,), 3, hidden=(2,)), lk.build_model("mlp", (4,), 5, hidden=(2,))]
    with pytest.raises(ValueError, match="same num_classes"):
        lk.EnsembleTeacher(mixed)
    with pytest.raises(ValueError, match="fusion space"):
        lk.EnsembleTeacher(_members(), space="median")
    with pytest.raises(ValueError, match="weights"):
        lk.EnsembleTeacher(_members(k=2), weights=[1.0])
    with pytest.raises(ValueError, match="feature_member"):
        lk.EnsembleTeacher(_members(k=2), feature_member=5)


# -------------------------------------------------------------------------------- training on digits
@pytest.fixture(scope="module")
def digits():
    data = lk.load_dataset("digits")
    return data.train.subset(torch.arange(512)), data.test


def _cfg(**kw):
    return lk.TrainConfig(epochs=3, batch_size=32, lr=1e-2, device="cpu", progress=False, **kw)


def _tiny(seed):
    torch.manual_seed(seed)
    return lk.build_model("mlp", (1, 8, 8), 10, hidden=(16,))


def test_born_again_on_digits(digits):
    train, test = digits
    gen0 = _tiny(0)
    lk.fit(gen0, train, config=_cfg())
    students, histories = lk.born_again(_tiny, train, gen0, generations=2, config=_cfg())
    assert len(students) == len(histories) == 2
    assert students[0] is not students[1] and students[0] is not gen0
    assert all(len(h.records) == 3 for h in histories)
    assert all(lk.evaluate(s, test)["accuracy"] > 0.3 for s in students)  # chance is 0.1


def test_born_again_bad_inputs(digits):
    train, _ = digits
    gen0 = _tiny(0)
    with pytest.raises(ValueError, match="generations"):
        lk.born_again(_tiny, train, gen0, generations=0)
    with pytest.raises(ValueError, match="earlier generation"):
        lk.born_again(lambda g: gen0, train, gen0, generations=1, config=_cfg())
    wrong = lambda g: lk.build_model("mlp", (1, 8, 8), 3, hidden=(4,))  # noqa: E731
    with pytest.raises(ValueError, match="classes"):
        lk.born_again(wrong, train, gen0, generations=1, config=_cfg())


def test_mutual_learning_on_digits(digits):
    train, test = digits
    peers = [_tiny(1), _tiny(2)]
    histories = lk.mutual_learning(peers, train, _cfg(), val=test)
    assert len(histories) == 2 and all(len(h.records) == 3 for h in histories)
    assert histories[0].last["train_loss"] < histories[0].records[0]["train_loss"]
    assert "val_accuracy" in histories[1].last
    assert all(lk.evaluate(p, test)["accuracy"] > 0.3 for p in peers)
    assert all(not p.training for p in peers)


def test_mutual_learning_bad_inputs(digits):
    train, _ = digits
    with pytest.raises(ValueError, match="at least 2 students, got 0"):
        lk.mutual_learning([], train, _cfg())
    with pytest.raises(ValueError, match="at least 2 students, got 1"):
        lk.mutual_learning([_tiny(0)], train, _cfg())
    peer = _tiny(0)
    with pytest.raises(ValueError, match="distinct"):
        lk.mutual_learning([peer, peer], train, _cfg())
    odd = lk.build_model("mlp", (1, 8, 8), 3, hidden=(4,))
    with pytest.raises(ValueError, match="3 outputs but the data have 10 classes"):
        lk.mutual_learning([_tiny(0), odd], train, _cfg())


def test_fit_with_mse_and_with_ensemble_teacher(digits):
    train, test = digits
    members = [_tiny(3), _tiny(4)]
    for m in members:
        lk.fit(m, train, config=_cfg())
    ens = lk.EnsembleTeacher(members, space="prob")
    fused = lk.predict_logits(ens, train.x)  # (N, C) log-probabilities
    student = _tiny(5)
    lk.fit(student, train, method="mse", teacher=ens, config=_cfg(temperature=1.0), teacher_logits=fused)
    assert lk.evaluate(student, test)["accuracy"] > 0.3


def test_inference_ms(digits):
    _, test = digits
    model = _tiny(0).train()
    ms = lk.inference_ms(model, test.x[:32], repeats=3)
    assert ms > 0 and model.training  # mode restored
    with pytest.raises(ValueError, match="non-empty batch"):
        lk.inference_ms(model, test.x[:0])
