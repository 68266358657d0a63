"""The comparison engine (labkit.compare): paired runs really share initial weights and step counts, the run
table holds every metric, wall time and loss part, verdicts pair by seed and follow each metric's direction, and
bad input gets a clear error."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import labkit as lk
from labkit.verdicts import Metric


@pytest.fixture(scope="module")
def setup():
    data = lk.load_dataset("digits", max_train=400, max_test=200)
    teacher = lk.build_model("mlp", data.in_shape, data.num_classes, hidden=(64,))
    lk.fit(teacher, data.train, config=lk.TrainConfig(epochs=5, progress=False))
    make = lambda: lk.build_model("mlp", data.in_shape, data.num_classes, hidden=(16,))  # noqa: E731
    cfg = lk.TrainConfig(epochs=2, batch_size=64, progress=False)
    return data, teacher, make, cfg


def test_paired_runs_share_initial_weights_and_step_counts(setup, monkeypatch):
    data, teacher, make, cfg = setup
    few, transfer = lk.few_labels_split(data.train, 3, seed=0)
    seen = []  # (arm, seed, initial state, steps) as lk.fit receives them
    real_fit = lk.compare.__globals__["fit"]

    def spy(student, train, **kw):
        seen.append(
            (kw["config"].seed, {k: v.clone() for k, v in student.state_dict().items()}, kw["config"].steps)
        )
        return real_fit(student, train, **kw)

    monkeypatch.setitem(lk.compare.__globals__, "fit", spy)
    arms = [lk.Arm("scratch", train=few), lk.Arm("KD", "kd", teacher=teacher, train=lk.concat(few, transfer))]
    cmp = lk.compare(arms, train=data.train, test=data.test, make_student=make, config=cfg, seeds=(0, 1))
    assert len(seen) == 4
    steps = 2 * lk.num_batches(len(data.train), 64)
    assert {s for _, _, s in seen} == {steps}  # 30 labelled images and 400 images: the same budget
    for i in (0, 2):  # the two arms of one seed start from the same weights; other seeds differ
        (seed_a, w_a, _), (seed_b, w_b, _) = seen[i], seen[i + 1]
        assert seed_a == seed_b and all(torch.equal(w_a[k], w_b[k]) for k in w_a)
    first = next(iter(seen[0][1]))
    assert not torch.equal(seen[0][1][first], seen[2][1][first])  # seed 0 and seed 1 draw different weights
    runs = cmp.runs
    assert list(runs.arm) == ["scratch", "KD", "scratch", "KD"] and (runs.steps == steps).all()


def test_fit_takes_exactly_the_step_budget(setup):
    data, _, make, _ = setup
    counted = []
    student = make()
    student.register_forward_hook(lambda *a: counted.append(1))
    lk.fit(student, data.train, config=lk.TrainConfig(steps=11, batch_size=64, progress=False))
    assert len(counted) == 11  # 7 batches per pass: one pass and 4 batches of the second
    with pytest.raises(ValueError, match="steps must be"):
        lk.TrainConfig(steps=0)


def test_run_table_has_metrics_time_and_loss_parts(setup):
    data, teacher, make, cfg = setup
    t_logits = lk.predict_logits(teacher, data.test.x)
    arms = [lk.Arm("scratch"), lk.Arm("KD", "kd", teacher=teacher, config={"temperature": 2.0, "alpha": 0.5})]
    cmp = lk.compare(arms, train=data.train, test=data.test, make_student=make, config=cfg, seeds=(0, 1),
                     teacher_logits=t_logits, keep=True)  # fmt: skip
    cmp.add_fixed("teacher", t_logits)
    runs = cmp.runs.set_index(["arm", "seed"])
    for col in (
        "accuracy",
        "ece",
        "nll",
        "agreement",
        "kl_to_teacher",
        "seconds",
        "steps",
        "loss_ce",
        "loss_kd",
    ):
        assert col in runs.columns, col
    # the table's numbers are lk.evaluate's for the kept model
    model = cmp.models[("KD", 1)]
    ref = lk.evaluate(model, data.test, teacher_logits=t_logits)
    for k, v in ref.items():
        assert runs.loc[("KD", 1), k] == pytest.approx(v, abs=1e-9), k
    assert np.isnan(runs.loc[("scratch", 0), "loss_kd"]) and runs.loc[("KD", 0), "loss_kd"] > 0
    summary = cmp.summary(["accuracy", "ece"])
    assert list(summary.columns) == ["n", "accuracy", "ece"] and summary.loc["KD", "n"] == 2


def test_verdict_pairs_by_seed_and_follows_the_metric_direction(setup):
    data, _, _, _ = setup
    y = data.test.y
    cmp = lk.Comparison(data.test)
    eye = torch.eye(data.num_classes)
    good, bad = 8 * eye[y], 8 * eye[(y + 1) % data.num_classes]  # right everywhere, wrong everywhere
    rng = torch.Generator().manual_seed(0)
    for seed in range(3):
        keep = torch.rand(len(y), generator=rng) < 0.9
        cmp.add("A", seed, torch.where(keep[:, None], good, bad))
        cmp.add("B", seed, torch.where((torch.rand(len(y), generator=rng) < 0.5)[:, None], good, bad))
    acc = cmp.verdict("A", "B")
    assert acc.effect == "gain" and acc.better == "higher" and acc.n_seeds == 3 and acc.n_test == len(y)
    assert acc.low < acc.diff < acc.high
    nll = cmp.verdict("A", "B", "nll")
    assert nll.better == "lower" and nll.diff < 0 and nll.effect == "gain"  # lower NLL is a gain
    assert cmp.verdict("B", "A", "nll").effect == "loss"
    assert cmp.verdict("A", "B", "ece").better == "lower"
    with pytest.raises(ValueError, match="two different arms"):
        cmp.verdict("A", "A")


def test_no_effect_between_two_runs_of_the_same_model_family(setup):
    data, _, make, cfg = setup
    arms = [lk.Arm("a"), lk.Arm("b", config={"lr": cfg.lr * 1.0001})]  # practically the same training
    cmp = lk.compare(arms, train=data.train, test=data.test, make_student=make, config=cfg, seeds=(0, 1, 2))
    assert cmp.verdict("a", "b").effect == "none"


def test_extra_metric_and_fixed_reference(setup):
    data, teacher, make, cfg = setup
    metric = {"margin": Metric(better="lower", scale=1.0, unit="")}
    extra = {"margin": lambda m: lk.predict_logits(m, data.test.x).max(1).values}
    cmp = lk.compare([lk.Arm("scratch")], train=data.train, test=data.test, make_student=make, config=cfg,
                     seeds=(0, 1), metrics=metric, extra=extra)  # fmt: skip
    cmp.add_fixed(
        "teacher", lk.predict_logits(teacher, data.test.x), extra={"margin": torch.zeros(len(data.test))}
    )
    v = cmp.verdict("scratch", "teacher", "margin")
    assert v.better == "lower" and v.n_seeds == 2 and v.diff > 0
    cmp.add_fixed(
        "teacher 2", lk.predict_logits(teacher, data.test.x), extra={"margin": torch.zeros(len(data.test))}
    )
    with pytest.raises(ValueError, match="both fixed references"):
        cmp.verdict("teacher", "teacher 2")


@pytest.mark.parametrize(
    "make_arm, match",
    [
        (lambda t: lk.Arm(""), "non-empty name"),
        (lambda t: lk.Arm("x", method="bogus"), "method"),
        (lambda t: lk.Arm("x", method="kd"), "needs teacher"),
        (lambda t: lk.Arm("x", config={"epoch": 3}), "unknown TrainConfig field"),
        (lambda t: lk.Arm("x", config={"seed": 3}), "seed comes from the comparison"),
    ],
)
def test_bad_arms_are_refused(setup, make_arm, match):
    with pytest.raises(ValueError, match=match):
        make_arm(setup[1])


def test_bad_comparisons_are_refused(setup):
    data, _, make, cfg = setup
    kw = dict(train=data.train, test=data.test, make_student=make, config=cfg)
    with pytest.raises(ValueError, match="unique"):
        lk.compare([lk.Arm("a"), lk.Arm("a")], seeds=(0,), **kw)
    with pytest.raises(ValueError, match="seeds must be distinct"):
        lk.compare([lk.Arm("a")], seeds=(0, 0), **kw)
    with pytest.raises(ValueError, match="config must be an lk.TrainConfig"):
        lk.compare([lk.Arm("a")], seeds=(0,), **{**kw, "config": {"epochs": 1}})
    with pytest.raises(ValueError, match="same test examples"):
        lk.compare([lk.Arm("a")], seeds=(0,), **{**kw, "into": lk.Comparison(data.train)})
    cmp = lk.Comparison(data.test)
    with pytest.raises(ValueError, match="logits must have shape"):
        cmp.add("a", 0, torch.zeros(3, 10))
    with pytest.raises(ValueError, match="NaN or inf"):
        cmp.add("a", 0, torch.full((len(data.test), 10), float("nan")))
    cmp.add("a", 0, torch.zeros(len(data.test), 10))
    cmp.add("b", 1, torch.zeros(len(data.test), 10))
    with pytest.raises(ValueError, match="share no seed"):
        cmp.verdict("a", "b")
    with pytest.raises(ValueError, match="no arm 'c'"):
        cmp.verdict("a", "c")
    with pytest.raises(ValueError, match="unknown metric"):
        cmp.verdict("a", "b", "f1")
    with pytest.raises(ValueError, match="fully labelled"):
        lk.Comparison(
            lk.ImageData(data.test.x[:4], torch.tensor([0, 1, -1, 2]), data.test.classes, "x", "test")
        )


def test_no_import_circle_between_training_methods_and_ensemble():
    """Losses live in losses.py: methods.py imports no procedure module, and every module imports on its own."""
    import labkit.methods as methods

    src = open(methods.__file__).read()
    assert "from .ensemble" not in src and "from .training import" not in src.replace(
        "    from .training", ""
    )
    for mod in ("labkit.ensemble", "labkit.methods", "labkit.training", "labkit.compare", "labkit.losses"):
        proc = subprocess.run([sys.executable, "-c", f"import {mod}"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]


# ------------------------------------------------------------------------------- careless inputs (#15)
def test_arm_config_values_are_checked_when_the_arm_is_built():
    with pytest.raises(ValueError, match=r"arm 'x': config \{'epochs': 0\}: epochs must be an integer >= 1"):
        lk.Arm("x", config={"epochs": 0})
    with pytest.raises(ValueError, match="lr must be a number > 0"):
        lk.Arm("x", config={"lr": -1.0})
    assert lk.Arm("x", config={"temperature": 2}).config == {"temperature": 2}
    for budget in ({"steps": 5}, {"epochs": 3}):  # it would silently override the comparison's equal budget
        with pytest.raises(ValueError, match=r"arm 'x': config sets \['(steps|epochs)'\], but every arm"):
            lk.Arm("x", config={"temperature": 2, **budget})


def test_compare_checks_every_arm_before_training_any(setup, monkeypatch):
    data, teacher, make, cfg = setup
    trained = []
    monkeypatch.setattr(sys.modules["labkit.compare"], "fit", lambda *a, **k: trained.append(1))
    five = lk.build_model("mlp", data.in_shape, 5, hidden=(4,))
    arms = [lk.Arm("scratch"), lk.Arm("KD", method="kd", teacher=five)]  # the bad arm comes second
    with pytest.raises(ValueError, match="arm 'KD': teacher has 5 classes"):
        lk.compare(arms, train=data.train, test=data.test, make_student=make, config=cfg, seeds=(0,))
    other = lk.ImageData(data.test.x, data.test.y, [*data.test.classes[:-1], "ten"], "digits", "x")
    with pytest.raises(ValueError, match="different classes"):
        lk.compare(arms[:1], train=data.train, test=other, make_student=make, config=cfg, seeds=(0,))
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        lk.compare(
            arms[:1], train=data.train, test=data.test, make_student=make, config=cfg, seeds=(0,), steps=0
        )
    assert trained == []


def test_comparison_kl_with_unknown_teacher_classes_and_replaced_runs(setup):
    data = setup[0]
    n = len(data.test)
    t = torch.randn(n, 10, generator=torch.Generator().manual_seed(0))
    t[:, 3] = float("-inf")  # a class the teacher does not know
    z = torch.randn(n, 10, generator=torch.Generator().manual_seed(1))
    cmp = lk.Comparison(data.test, teacher_logits=t)
    row = cmp.add("a", 0, z)
    assert row["kl_to_teacher"] == pytest.approx(lk.kl_to_teacher(z, t), rel=1e-6)
    row = cmp.add("a", 0, t.clamp_min(-30))  # the same (arm, seed) again replaces the run (a re-run cell)
    assert len(cmp.runs) == 1 and cmp.runs.loc[0, "agreement"] == row["agreement"] == 1.0
    with pytest.raises(ValueError, match="logits have 12 classes but teacher_logits 10"):
        cmp.add("b", 0, torch.zeros(n, 12))
    cmp.add("b", 0, z)
    cmp.add("b", 1, z)
    cmp.add("a", 1, z)
    table = cmp.verdicts([("a", "b")], "accuracy")  # one metric's name, not its letters
    assert list(table.index) == [("a vs b", "accuracy")]
