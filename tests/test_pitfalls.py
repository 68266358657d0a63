"""Each reproduced bug in labkit.pitfalls really is wrong, in the way lesson 01 says."""

import pytest
import torch

from labkit.losses import kd_kl_loss
from labkit.pitfalls import (
    BUGS,
    CE_BUGS,
    NegatedCE,
    kd_kl_on_raw_logits,
    kd_mean_reduction,
    kd_missing_t2,
    kd_wrong_direction,
    negated_ce_loss,
)

g = torch.Generator().manual_seed(0)
S, T = torch.randn(32, 10, generator=g), torch.randn(32, 10, generator=g) * 2


def test_kl_on_raw_logits_is_not_a_divergence():
    # identical distributions must give 0; the buggy version does not
    assert abs(kd_kl_on_raw_logits(T, T, 4.0).item()) > 1e-2
    # and it depends on a constant shift of the student's logits, which leaves p_s unchanged
    assert kd_kl_on_raw_logits(S + 5, T).item() != pytest.approx(kd_kl_on_raw_logits(S, T).item())
    assert kd_kl_loss(S + 5, T).item() == pytest.approx(kd_kl_loss(S, T).item(), rel=1e-5)


def test_mean_reduction_is_k_times_too_small():
    assert kd_mean_reduction(S, T).item() * 10 == pytest.approx(kd_kl_loss(S, T).item(), rel=1e-5)


def test_missing_t2_is_t2_times_too_small():
    assert kd_missing_t2(S, T, 4.0).item() * 16 == pytest.approx(kd_kl_loss(S, T, 4.0).item(), rel=1e-5)


def test_wrong_direction_forgives_a_student_that_ignores_a_teacher_mode():
    # teacher: two plausible classes; student: only the first. Forward KL (Hinton's KD) punishes the missing
    # mode hard, the mode-seeking reverse KL barely notices it: ln 2 versus about 4.3 nats.
    teacher, student = torch.tensor([[5.0, 5.0, -5.0]]), torch.tensor([[5.0, -5.0, -5.0]])
    forward = kd_kl_loss(student, teacher, 1.0).item()
    reverse = kd_wrong_direction(student, teacher, 1.0).item()
    assert reverse == pytest.approx(0.6931, abs=1e-3)
    assert forward > 4.0


def test_wrong_direction_is_the_reverse_kl_a_real_divergence_and_documented_as_a_choice():
    """Swapped kl_div arguments compute KL(p_s || p_t): a true divergence (0 for identical inputs, >= 0, the
    forward KL with the roles exchanged), so the docs call it a different objective (MiniLLM, GKD), a bug only in
    place of Hinton's forward KL."""
    assert kd_wrong_direction(T, T).item() == pytest.approx(0.0, abs=1e-6)
    assert kd_wrong_direction(S, T).item() > 0
    assert kd_wrong_direction(S, T, 2.0).item() == pytest.approx(kd_kl_loss(T, S, 2.0).item(), rel=1e-5)
    _, diagnosis = BUGS["KL in the wrong direction"]
    for words in (
        "reverse KL(p_s||p_t)",
        "mode-seeking",
        "MiniLLM",
        "GKD",
        "when you meant Hinton's KL(p_t||p_s)",
    ):
        assert words in diagnosis, diagnosis
    doc = " ".join(kd_wrong_direction.__doc__.split())
    for words in ("mode-seeking", "Gu et al., 2024", "Agarwal et al., 2024", "a bug only when you meant"):
        assert words in doc, doc


def test_negated_ce_descends_towards_wrong_answers():
    logits = torch.zeros(1, 3, requires_grad=True)
    y = torch.tensor([0])
    opt = torch.optim.SGD([logits], lr=1.0)
    for _ in range(20):
        opt.zero_grad()
        negated_ce_loss(logits, y).backward()
        opt.step()
    assert logits.softmax(1)[0, 0] < 0.05  # the true class is pushed down


def test_bug_table_lists_diagnoses():
    assert len(BUGS) == 4 and all(callable(f) and isinstance(d, str) for f, d in BUGS.values())


def test_ce_bug_table_and_negated_ce_method_trains_towards_minus_infinity():
    import math

    import labkit as lk

    ((fn, diagnosis),) = CE_BUGS.values()
    y = torch.randint(0, 10, (32,), generator=g)
    assert fn(S, y).item() == pytest.approx(-torch.nn.functional.cross_entropy(S, y).item()) and diagnosis
    x = torch.randn(200, 1, 8, 8, generator=g)
    train = lk.ImageData(
        x, torch.randint(0, 10, (200,), generator=g), [str(i) for i in range(10)], "toy", "test"
    )
    model = lk.build_model("mlp", (1, 8, 8), 10, hidden=(8,))
    lk.METHODS["negated_ce"] = NegatedCE
    try:
        cfg = lk.TrainConfig(epochs=3, batch_size=50, lr=0.05, progress=False)
        history = lk.fit(model, train, method="negated_ce", config=cfg)
    finally:
        del lk.METHODS["negated_ce"]  # never leave the bug registered
    losses = [r["train_loss"] for r in history.records]
    assert losses[-1] < losses[0] and losses[-1] < -math.log(10)  # descends without bound
