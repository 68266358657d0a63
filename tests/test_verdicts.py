"""The course's one verdict rule (labkit.verdicts): its false-positive rate on simulated no-effect data, its power
on a real effect, the direction of every metric, and every recorded result in results/ read against its own
interval."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import labkit as lk
from labkit.verdicts import effect_of, interval_from_bootstrap, interval_from_examples, simulate_rule

ROOT = Path(__file__).resolve().parents[1]
SEEDS = len(lk.get_profile("default").seeds)  # the documented seed count of every lesson's comparisons


@pytest.mark.parametrize("n_test", [390, 2000])
def test_false_positive_rate_below_five_percent_at_the_documented_seed_count(n_test):
    """Both arms equally good on the population (each gets other examples right): the course rule calls an
    effect in under 5% of 2,000 simulated comparisons; the old rule (|diff| > max std) in far more."""
    rates = simulate_rule(n_seeds=SEEDS, n_test=n_test, effect=0.0, n_sims=2000, seed=1)
    print(f"\nno effect, {SEEDS} seeds, {n_test} test examples: {rates}")
    assert rates["course rule: effect called"] < 0.05
    assert rates["old rule: effect called"] > 0.10  # what the issue measured (~21%)


def test_false_positive_rate_holds_when_seeds_dominate_and_with_more_seeds():
    for kw in ({"seed_sd": 0.15}, {"n_seeds": 5}):
        rates = simulate_rule(n_test=1000, n_sims=2000, seed=2, **kw)
        assert rates["course rule: effect called"] < 0.06, (kw, rates)  # 5% nominal, +-0.5% Monte-Carlo error


def test_power_on_a_real_effect_is_reported_and_grows_with_the_effect():
    small = simulate_rule(n_seeds=SEEDS, n_test=2000, effect=0.15, n_sims=1000, seed=3)
    large = simulate_rule(n_seeds=SEEDS, n_test=2000, effect=0.6, n_sims=1000, seed=3)
    print(f"\npower, {SEEDS} seeds, 2000 test examples: effect 0.15 -> {small}, effect 0.6 -> {large}")
    assert 0 < small["course rule: power"] < large["course rule: power"]
    assert large["course rule: power"] > 0.9


def test_verdict_rule_page_script_runs():
    """tools/verdict_rule.py (results/VERDICT_RULE.md) at --quick sizes: a table with both rules' rates."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "verdict_rule.py"), "--quick"], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| 3 | 200 |" in proc.stdout and "false positives: old rule" in proc.stdout


def test_effect_follows_the_interval_and_the_direction():
    assert effect_of(0.1, 2.0, "higher") == "gain" and effect_of(0.1, 2.0, "lower") == "loss"
    assert effect_of(-3.0, -0.2, "higher") == "loss" and effect_of(-3.0, -0.2, "lower") == "gain"
    assert effect_of(-1.0, 1.0, "higher") == "none" and effect_of(0.0, 1.0, "higher") == "none"
    assert effect_of(-math.inf, math.inf, "lower") == "none"
    with pytest.raises(ValueError, match="better must be 'higher' or 'lower'"):
        effect_of(0.1, 0.2, "up")


def test_interval_from_examples_by_hand():
    """Two seeds, four examples: the seed term is the variance of the per-seed differences / n, the test term
    the example share counted once; the half-width combines t(n-1) and z quantiles."""
    from scipy import stats

    d = np.array([[1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])  # (seeds, examples)
    res = interval_from_examples(d)
    per_seed = d.mean(1)  # [0.5, 0.5]
    assert res["diff"] == pytest.approx(0.5) and res["se_seed"] == pytest.approx(
        per_seed.std(ddof=1) / math.sqrt(2)
    )
    e = d.mean(0)  # [1, .5, .5, 0]
    resid = d - per_seed[:, None] - e[None, :] + d.mean()
    ms = (resid**2).sum() / (1 * 3)
    v_test = max(e.var(ddof=1) - ms / 2, 0) / 4
    z, t1 = stats.norm.ppf(0.975), stats.t.ppf(0.975, 1)
    # the seeds agree exactly (variance 0): the floor, the runs' own noise ms / (n N), keeps the interval open
    half = math.sqrt(max(t1**2 * 0 + z**2 * v_test, z**2 * (ms / (2 * 4) + v_test)))
    assert half > 0
    assert res["low"] == pytest.approx(0.5 - half) and res["high"] == pytest.approx(0.5 + half)


def test_seeds_that_agree_by_chance_do_not_give_a_zero_width_interval():
    """Two seeds whose differences are equal (each run 8 of 450 worse, on other examples): the seed variance is 0,
    but the interval keeps the runs' own sampling noise."""
    d = np.zeros((2, 450))
    d[0, :8] = d[1, 100:108] = -1.0
    res = interval_from_examples(d)
    assert res["se_seed"] == 0 and res["high"] - res["low"] > 0.01


def test_one_seed_never_calls_an_effect():
    res = interval_from_examples(np.ones((1, 50)))
    assert math.isinf(res["low"]) and effect_of(res["low"], res["high"], "higher") == "none"
    assert math.isinf(interval_from_bootstrap(np.array([3.0]), 0.1)["high"])
    with pytest.raises(ValueError, match="seeds, examples"):
        interval_from_examples(np.ones(5))


def test_verdict_words_and_record_agree_with_the_interval():
    v = lk.Verdict("KD", "scratch", "ece", "lower", diff=-6.8, low=-9.0, high=-4.6, n_seeds=3, n_test=1000,
                   se_seed=0.5, se_test=0.4)  # fmt: skip
    assert v.effect == "gain" and str(v).startswith("a gain: ece -6.80 points (95% interval -9.00 to -4.60")
    assert "lower is better" in str(v)
    d = v.to_dict()
    assert d["effect"] == "gain" and d["better"] == "lower" and d["n_seeds"] == 3


def _recorded_results() -> list[tuple[str, str, dict]]:
    out = []
    for path in sorted((ROOT / "results").glob("*/[0-9][0-9]_*.json")):
        for name, rec in json.loads(path.read_text())["records"].items():
            out.append((f"{path.parent.name}/{path.name}", name, rec))
    return out


def test_every_recorded_verdict_matches_its_direction_and_interval():
    """Over every results/<profile>/*.json: a comparison record names its metric, direction, interval, seeds
    and test examples, and its effect is exactly what its interval and direction say; nothing else is
    recorded in the old form (a bare seed spread)."""
    records = _recorded_results()
    assert records, "results/ holds no recorded results"
    comparisons = 0
    for where, name, rec in records:
        assert "noise" not in rec, f"{where}: {name!r} uses the old rule (a seed spread, no interval)"
        if "effect" not in rec:
            assert math.isfinite(rec["value"]) and set(rec) <= {"value", "unit", "headline"}, (where, name)
            continue
        comparisons += 1
        assert rec["better"] in ("higher", "lower") and rec["metric"], (where, name)
        assert isinstance(rec["n_seeds"], int) and rec["n_seeds"] >= 1 and rec["n_test"] > 0, (where, name)
        low = -math.inf if rec["low"] is None else rec["low"]
        high = math.inf if rec["high"] is None else rec["high"]
        assert low <= rec["value"] <= high, (where, name, rec)
        assert rec["effect"] == effect_of(low, high, rec["better"]), (where, name, rec)
        if rec["metric"] in lk.METRICS:
            assert rec["better"] == lk.METRICS[rec["metric"]].better, (where, name, rec)
    assert comparisons > 0


# ------------------------------------------------------------------------------- careless inputs (#15)
def test_verdict_and_metric_refuse_what_no_rule_can_read():
    ok = dict(a="KD", b="scratch", metric="accuracy", better="higher", diff=1.0, low=0.2, high=1.8, n_seeds=3,
              n_test=500, se_seed=0.3, se_test=0.2)  # fmt: skip
    assert lk.Verdict(**ok).effect == "gain"
    assert (
        lk.Verdict(**{**ok, "n_seeds": 1, "low": -math.inf, "high": math.inf, "se_seed": math.inf}).effect
        == "none"
    )
    for bad, match in [({"diff": float("nan")}, "diff must be a number"), ({"low": 1.5}, r"\[low, high\]"),
                       ({"better": "up"}, "better must be"), ({"n_seeds": 0}, "n_seeds"), ({"se_test": -1.0}, ">= 0")]:  # fmt: skip
        with pytest.raises(ValueError, match=match):
            lk.Verdict(**{**ok, **bad})
    with pytest.raises(ValueError, match="better must be"):
        lk.Metric("up")
    with pytest.raises(ValueError, match="scale"):
        lk.Metric("lower", scale=float("nan"))


def test_intervals_refuse_nan_and_impossible_levels():
    d = np.random.default_rng(0).normal(size=(3, 50))
    assert interval_from_examples(d)["diff"] == pytest.approx(d.mean())
    bad = d.copy()
    bad[1, 4] = np.nan
    with pytest.raises(ValueError, match="diffs must be finite"):
        interval_from_examples(bad)
    with pytest.raises(ValueError, match="level"):
        interval_from_examples(d, level=1.0)
    with pytest.raises(ValueError, match="test_var is a variance"):
        interval_from_bootstrap(d[:, 0], -0.1)
    with pytest.raises(ValueError, match=r"low <= high"):
        effect_of(0.5, -0.5, "higher")
    with pytest.raises(ValueError, match="n_seeds must be an integer >= 2"):
        simulate_rule(n_seeds=1, n_sims=5, n_test=10)
