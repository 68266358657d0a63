r"""One verdict rule for every comparison in the course: a paired difference with a 95 % interval that holds both
the seed-to-seed and the test set's sampling variation.

Two arms A and B (say, a distilled student and its from-scratch twin) are trained as pairs: for each seed
:math:`s = 1..n` both start from the same initial weights and take the same number of steps, and both are scored
on the same :math:`N` test examples. For a metric :math:`M`:

.. math::  d_s = M(A_s) - M(B_s), \qquad \bar d = \frac1n \sum_s d_s, \qquad
           \bar d \pm \sqrt{t_{0.975,\,n-1}^2\, V_{seed} + z_{0.975}^2\, V_{test}}, \quad V_{seed} = s_d^2 / n

* :math:`s_d^2` is the sample variance of the paired differences over seeds (what training randomness does).
* :math:`V_{test}` is the test set's share: how much :math:`\bar d` would move on another test set from the same
  population, which no number of seeds reveals because every seed is scored on the same examples. For a metric
  that is a mean over examples (accuracy, agreement, NLL, KL) it comes from a two-way (seeds x examples)
  decomposition of the per-example differences (``interval_from_examples``); for ECE, which is not, from a
  paired bootstrap over test examples (the same resampled examples for both arms and every seed). A test split
  of 390 reviews carries about +-2 accuracy points of its own, whatever the seeds say.
* Each source of error gets its own quantile: Student's t with :math:`n - 1` degrees of freedom for the seeds
  (with 3 seeds :math:`t = 4.30`, not 2) and the normal one for the test set (hundreds of examples).

**The rule.** Every metric has a direction (``better="higher"`` for accuracy, ``"lower"`` for ECE). An arm
shows *a gain* when the whole interval lies on the better side of 0, *a loss* when it lies wholly on the worse
side, and *no measurable effect* otherwise. With one seed the seed term cannot be estimated and nothing is
called an effect. The old course rule, ``|mean_a - mean_b| > max(std_a, std_b)``, ignored the test set and used
no quantile; ``simulate_rule`` measures both rules' false-positive rates (lesson 02 shows them side by side).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "BETTER",
    "METRICS",
    "Metric",
    "Verdict",
    "effect_of",
    "interval_from_bootstrap",
    "interval_from_examples",
    "simulate_rule",
]

BETTER = ("higher", "lower")
LEVEL = 0.95
BOOTSTRAP = 400  # test-set resamples for metrics that are not a mean over examples (ECE)


def _real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _check_level(level: float) -> float:
    if not _real(level) or not 0 < level < 1:
        raise ValueError(
            f"level must be a probability strictly between 0 and 1 (0.95: a 95% interval), got {level!r}."
        )
    return float(level)


def _as_array(values, name: str) -> np.ndarray:
    """``values`` as a float64 array of finite numbers, or a ValueError naming ``name``."""
    try:
        a = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be numbers in a regular (rectangular) array, got {type(values).__name__}."
        ) from None
    if not np.isfinite(a).all():
        raise ValueError(
            f"{name} must be finite, got {int(np.isnan(a).sum())} NaN and {int(np.isinf(a).sum())} inf values: "
            "a run that diverged or a metric that is undefined has no difference to judge."
        )
    return a


def check_better(better: str) -> str:
    if not isinstance(better, str) or better not in BETTER:
        raise ValueError(f"better must be 'higher' or 'lower' (the direction of the metric), got {better!r}.")
    return better


@dataclass(frozen=True)
class Metric:
    """How a metric is read: its direction, display scale and unit, and whether it is a mean over examples."""

    better: str  # "higher" or "lower"
    scale: float = 100.0  # display units: 100 turns fractions into percentage points
    unit: str = "points"
    per_example: bool = True  # a mean over test examples (else: bootstrap over examples for V_test)
    needs_teacher: bool = False

    def __post_init__(self) -> None:
        check_better(self.better)
        if not _real(self.scale) or not math.isfinite(self.scale) or self.scale <= 0:
            raise ValueError(
                f"Metric scale must be a finite number > 0 (100: fractions in points), got {self.scale!r}."
            )
        if not isinstance(self.unit, str):
            raise ValueError(f"Metric unit must be a string such as 'points' or 'nats', got {self.unit!r}.")
        for name in ("per_example", "needs_teacher"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"Metric {name} must be True or False, got {getattr(self, name)!r}.")


METRICS: dict[str, Metric] = {
    "accuracy": Metric("higher"),
    "agreement": Metric("higher", needs_teacher=True),
    "ece": Metric("lower", per_example=False),
    "nll": Metric("lower", scale=1.0, unit="nats"),
    "kl_to_teacher": Metric("lower", scale=1.0, unit="nats", needs_teacher=True),
}
"""The course's metrics and their directions (``lk.Comparison`` takes more, e.g. lesson 03's attention gap)."""


def effect_of(low: float, high: float, better: str) -> str:
    """``"gain"``, ``"loss"`` or ``"none"`` from a difference's interval ``[low, high]`` and the metric's
    direction: an effect only when the whole interval lies on one side of 0."""
    check_better(better)
    if not (_real(low) and _real(high)) or math.isnan(low) or math.isnan(high) or low > high:
        raise ValueError(
            f"an interval needs numbers low <= high (infinite with one seed), got [{low!r}, {high!r}]."
        )
    if not (math.isfinite(low) and math.isfinite(high)):
        return "none"
    if low > 0:
        return "gain" if better == "higher" else "loss"
    if high < 0:
        return "loss" if better == "higher" else "gain"
    return "none"


def _interval(mean, v_seed, v_test, n: int, level: float, floor=0.0) -> dict:
    """``mean -+ sqrt((t_{n-1} se_seed)^2 + (z se_test)^2)``: each source of error with its own quantile; never
    narrower than ``z sqrt(floor + V_test)`` (``floor``: the runs' own sampling noise, known precisely)."""
    from scipy import stats

    if n < 2:
        inf = np.full(np.shape(mean), np.inf)
        low, high, se_seed = -inf, inf, inf
    else:
        t, z = stats.t.ppf(0.5 + level / 2, n - 1), stats.norm.ppf(0.5 + level / 2)
        half = np.sqrt(np.maximum(t**2 * v_seed + z**2 * v_test, z**2 * (floor + v_test)))
        low, high, se_seed = mean - half, mean + half, np.sqrt(v_seed)
    out = {"diff": mean, "low": low, "high": high, "se_seed": se_seed, "se_test": np.sqrt(v_test)}
    return {k: (float(x) if np.ndim(x) == 0 else x) for k, x in out.items()}


def interval_from_examples(diffs: np.ndarray, level: float = LEVEL) -> dict:
    r"""The interval of the mean paired difference of a metric that is a mean over test examples.

    ``diffs``: :math:`D_{si} = m_i(A_s) - m_i(B_s)`, shape ``(..., n_seeds, N)`` (leading axes are independent
    comparisons, as in a simulation). A two-way random-effects model of :math:`D` (seeds x examples) splits the
    variance of the mean difference into

    .. math::  V_{seed} = \frac{s_d^2}{n}, \qquad
               V_{test} = \frac{\max(\mathrm{var}_i(e_i) - MS_{res}/n,\ 0)}{N}

    where :math:`s_d^2` is the variance of the per-seed differences (it already holds each run's own sampling
    noise), :math:`e_i` the per-example difference averaged over seeds and :math:`MS_{res}` the seed x example
    residual mean square: :math:`V_{test}` is the part of the test set's sampling error that every seed shares,
    counted once. The interval is never narrower than :math:`\pm z \sqrt{MS_{res}/(nN) + V_{test}}`, the runs' own
    sampling noise alone, which a few seeds can underestimate by chance. The 95 % interval is :math:`\bar d \pm \sqrt{t_{0.975, n-1}^2 V_{seed} + z_{0.975}^2
    V_{test}}`. Returns ``diff``, ``low``, ``high``, ``se_seed``, ``se_test`` (floats for one comparison). With
    one seed the interval is infinite: nothing is called an effect.
    """
    d = _as_array(diffs, "diffs")
    level = _check_level(level)
    if d.ndim < 2 or d.shape[-1] == 0 or d.shape[-2] == 0:
        raise ValueError(
            f"diffs must have shape (..., seeds, examples) with seeds and examples, got {d.shape}."
        )
    n, big_n = d.shape[-2], d.shape[-1]
    per_seed = d.mean(axis=-1)  # (..., n)
    mean = per_seed.mean(axis=-1)
    e = d.mean(axis=-2)  # (..., N)
    v_e = e.var(axis=-1, ddof=1) if big_n > 1 else np.zeros_like(mean)
    if n < 2:
        return _interval(mean, None, v_e / big_n, n, level)
    resid = d - per_seed[..., None] - e[..., None, :] + mean[..., None, None]
    ms_res = (resid**2).sum(axis=(-2, -1)) / max((n - 1) * (big_n - 1), 1)
    v_seed = per_seed.var(axis=-1, ddof=1) / n
    # Each run's own sampling noise (MS_res / N per seed) is known precisely from the examples; a few seeds can
    # still, by chance, give per-seed differences that agree better than it allows (two seeds equal to the last
    # example: variance 0), so the interval is never narrower than that noise alone with a normal quantile.
    return _interval(
        mean, v_seed, np.maximum(v_e - ms_res / n, 0.0) / big_n, n, level, floor=ms_res / (n * big_n)
    )


def interval_from_bootstrap(per_seed: np.ndarray, test_var: float, level: float = LEVEL) -> dict:
    """The interval of a mean paired difference for a metric that is not a mean over examples (ECE):
    ``V_seed = s_d^2 / n`` and ``V_test`` the variance of the mean difference over paired bootstrap resamples of
    the test set (which counts each run's own sampling noise a second time: conservative)."""
    d = _as_array(per_seed, "per_seed")
    level = _check_level(level)
    if d.ndim < 1 or d.shape[-1] == 0:
        raise ValueError(f"per_seed must hold one difference per seed, at least one, got shape {d.shape}.")
    v = _as_array(test_var, "test_var")
    if (v < 0).any():
        raise ValueError(f"test_var is a variance and must be >= 0, got {test_var!r}.")
    n = d.shape[-1]
    v_seed = d.var(axis=-1, ddof=1) / n if n > 1 else None
    return _interval(d.mean(axis=-1), v_seed, np.asarray(test_var, dtype=np.float64), n, level)


@dataclass(frozen=True)
class Verdict:
    """The course's verdict on ``a`` minus ``b`` for one metric, in display units (``str()`` words it)."""

    a: str
    b: str
    metric: str
    better: str
    diff: float
    low: float
    high: float
    n_seeds: int
    n_test: int
    se_seed: float
    se_test: float
    unit: str = "points"
    level: float = LEVEL

    def __post_init__(self) -> None:
        for name in ("a", "b", "metric", "unit"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"Verdict {name} must be a string, got {getattr(self, name)!r}.")
        check_better(self.better)
        for name in ("diff", "low", "high", "se_seed", "se_test"):
            if not _real(getattr(self, name)) or math.isnan(getattr(self, name)):
                raise ValueError(f"Verdict {name} must be a number, got {getattr(self, name)!r}.")
        if not math.isfinite(self.diff) or not self.low <= self.diff <= self.high:
            raise ValueError(
                f"Verdict diff must be finite and lie in its interval [low, high], got {self.diff!r} in "
                f"[{self.low!r}, {self.high!r}]."
            )
        if self.se_seed < 0 or self.se_test < 0:
            raise ValueError(
                f"standard errors must be >= 0, got se_seed={self.se_seed!r}, se_test={self.se_test!r}."
            )
        for name in ("n_seeds", "n_test"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"Verdict {name} must be an integer >= 1, got {value!r}.")
        _check_level(self.level)

    @property
    def effect(self) -> str:
        """``"gain"``, ``"loss"`` or ``"none"`` (from the interval and the direction only)."""
        return effect_of(self.low, self.high, self.better)

    @property
    def words(self) -> str:
        return {"gain": "a gain", "loss": "a loss", "none": "no measurable effect"}[self.effect]

    def interval(self, digits: int = 2) -> str:
        if not math.isfinite(self.low):
            return "interval undefined with one seed"
        return f"{int(100 * self.level)}% interval {self.low:+.{digits}f} to {self.high:+.{digits}f}"

    def __str__(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        lower = "; lower is better" if self.better == "lower" else ""
        return (
            f"{self.words}: {self.metric} {self.diff:+.2f}{unit} ({self.interval()}; {self.n_seeds} paired "
            f"seed{'s' if self.n_seeds != 1 else ''}, {self.n_test:,} test examples{lower})"
        )

    def to_dict(self) -> dict:
        out = asdict(self)
        for k in ("low", "high", "se_seed"):  # JSON has no infinity
            out[k] = out[k] if math.isfinite(out[k]) else None
        return {**out, "effect": self.effect}


# ------------------------------------------------------------------------------------------ simulation
def _old_rule(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The course's former rule: ``|mean_a - mean_b| > max(std_a, std_b)``, signs as 'gain'/'loss'."""
    diff = a.mean(-1) - b.mean(-1)
    noise = np.maximum(a.std(-1, ddof=1), b.std(-1, ddof=1))
    return np.where(diff > noise, 1, np.where(diff < -noise, -1, 0))


def simulate_rule(
    n_seeds: int = 3,
    n_test: int = 1000,
    effect: float = 0.0,
    n_sims: int = 2000,
    seed_sd: float = 0.05,
    example_sd: float = 1.0,
    seed: int = 0,
) -> dict[str, float]:
    r"""How often each rule calls "a gain" or "a loss" on simulated paired runs, scored by accuracy.

    Each simulation draws a fresh test set of ``n_test`` examples from a population (per-example difficulty
    :math:`z_i \sim N(1.5, 1)` on the logit scale, about 78 % accuracy) and trains ``n_seeds`` pairs of runs: run
    ``(arm, s)`` gets example ``i`` right with probability :math:`\sigma(z_i \pm w_i/2 + g_s + h_{arm,s} +
    \delta_{arm})`. :math:`w_i \sim N(0, \text{example\_sd})` is which examples each method happens to get right
    (symmetric, so it moves no population mean), :math:`g_s` the initial weights both arms of seed ``s`` share,
    :math:`h` each run's own randomness (sd ``seed_sd``), and :math:`\delta` the true ``effect`` on arm A's logit.
    With ``effect=0`` both arms are equally good on the population and any called effect is a false positive.

    Returns the rate at which the course's rule (``interval_from_examples``) and the old rule
    (``|difference| > max std``) call an effect of either sign, how often each calls the right one (``power``, for
    ``effect != 0``), and the mean simulated difference in accuracy points.
    """
    for name, value, low in (("n_seeds", n_seeds, 2), ("n_test", n_test, 1), ("n_sims", n_sims, 1)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    for name, value in (("effect", effect), ("seed_sd", seed_sd), ("example_sd", example_sd)):
        if not _real(value) or not math.isfinite(value) or (name != "effect" and value < 0):
            what = "a finite number" if name == "effect" else "a finite standard deviation >= 0"
            raise ValueError(f"{name} must be {what}, got {value!r}.")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}.")
    rng = np.random.default_rng(seed)
    z = rng.normal(1.5, 1.0, (n_sims, 1, n_test))
    w = rng.normal(0.0, example_sd, (n_sims, 1, n_test))
    g = rng.normal(0.0, seed_sd, (n_sims, n_seeds, 1))
    h_a, h_b = (rng.normal(0.0, seed_sd, (n_sims, n_seeds, 1)) for _ in range(2))
    sig: Callable[[np.ndarray], np.ndarray] = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    correct_a = rng.random((n_sims, n_seeds, n_test)) < sig(z + w / 2 + g + h_a + effect)
    correct_b = rng.random((n_sims, n_seeds, n_test)) < sig(z - w / 2 + g + h_b)
    acc_a, acc_b = correct_a.mean(-1), correct_b.mean(-1)  # (sims, seeds)
    res = interval_from_examples(correct_a.astype(np.float64) - correct_b)
    new = np.where(res["low"] > 0, 1, np.where(res["high"] < 0, -1, 0))
    old = _old_rule(acc_a, acc_b)
    sign = int(np.sign(effect))
    out = {
        "course rule: effect called": float((new != 0).mean()),
        "old rule: effect called": float((old != 0).mean()),
        "mean difference (points)": float(100 * (acc_a - acc_b).mean()),
    }
    if sign:
        out["course rule: power"] = float((new == sign).mean())
        out["old rule: power"] = float((old == sign).mean())
    return out
