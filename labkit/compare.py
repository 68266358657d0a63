"""The comparison engine: arms trained as paired runs, a tidy per-run table, and the course's verdict rule.

Every comparison in the course (scratch vs KD, hints vs attention, an ensemble's student vs its best member,
one teacher vs many) goes through here::

    arms = [lk.Arm("scratch"), lk.Arm("KD", method="kd", teacher=teacher, config={"temperature": 4})]
    cmp = lk.compare(arms, train=data.train, test=data.test, make_student=make_student, config=cfg, seeds=(0, 1, 2))
    cmp.summary()                             # mean ± std per arm, every metric
    print(cmp.verdict("KD", "scratch"))       # "a gain: accuracy +2.31 points (95% interval +0.85 to +3.77; ...)"
    cmp.verdict("KD", "scratch", "ece")       # lower is better: the direction comes with the metric

**Paired runs.** For every seed, each student family (``make_student``, or an arm's own ``student``) is built
once after ``seed_everything(seed)``, and every arm of that family trains a copy of those weights
(``lk.clone_init``). Every arm takes the same number of optimisation steps (``TrainConfig.steps``), whatever the
size of its training set: a transfer set of 20,000 images and 200 labelled ones get the same budget.

**The verdict** (``labkit.verdicts``): the mean paired difference with a 95 % interval that holds both the
seed-to-seed and the test set's sampling variation; "a gain" / "a loss" only when the interval excludes 0 on
the metric's better / worse side. Runs trained elsewhere (a Hugging Face ``Trainer``, scikit-learn) join a
``Comparison`` with ``add``, and fixed references (the teacher) with ``add_fixed``.
"""

from __future__ import annotations

import dataclasses
import numbers
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._validate import check_choice, check_finite, check_has_data, check_logits
from .data import ImageData
from .methods import METHODS
from .metrics import expected_calibration_error, predict_logits, summarize
from .models import clone_init
from .training import TrainConfig, fit, seed_everything
from .verdicts import (
    BOOTSTRAP,
    METRICS,
    Metric,
    Verdict,
    check_better,
    interval_from_bootstrap,
    interval_from_examples,
)

__all__ = ["Arm", "Comparison", "compare"]


@dataclass
class Arm:
    """One arm of a comparison: how a student is trained.

    ``method``: a key of ``lk.METHODS``; ``teacher``: the teacher module (or a ``TeacherEnsemble``) for methods
    that need one; ``train``: this arm's training set (default: the comparison's); ``config``: ``TrainConfig``
    fields that differ from the comparison's base config (e.g. ``{"temperature": 2, "alpha": 0.5}``);
    ``student``: another student family, ``student() -> nn.Module`` (default: the comparison's
    ``make_student``); ``teacher_logits``: precomputed teacher outputs aligned with ``train``;
    ``procedure``: a training procedure other than ``lk.fit``, ``procedure(student, train, config) -> History``
    (e.g. one peer of mutual learning); it must honour ``config.steps``, and ``method`` is then a free label.
    """

    name: str
    method: str = "ce"
    teacher: nn.Module | None = None
    train: ImageData | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    student: Callable[[], nn.Module] | None = None
    teacher_logits: torch.Tensor | None = None
    procedure: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"an arm needs a non-empty name, got {self.name!r}.")
        uses = {
            "student": "student() builds a new model",
            "procedure": "procedure(student, train, config) trains one",
        }
        for what, value in (("student", self.student), ("procedure", self.procedure)):
            if value is not None and (not callable(value) or isinstance(value, nn.Module)):
                raise TypeError(
                    f"arm {self.name!r}: {what} must be a function ({uses[what]}), got {type(value).__name__}."
                )
        if self.teacher is not None and not isinstance(self.teacher, nn.Module):
            raise TypeError(
                f"arm {self.name!r}: teacher must be a trained nn.Module (or an lk.EnsembleTeacher), got "
                f"{type(self.teacher).__name__}."
            )
        if self.train is not None and self.procedure is None and not isinstance(self.train, ImageData):
            raise TypeError(
                f"arm {self.name!r}: train must be an lk.ImageData, got {type(self.train).__name__}."
            )
        if self.teacher_logits is not None:
            t = self.teacher_logits  # (N, K), or a multi-teacher stack (N, M, K): lk.fit checks the shape
            if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.dim() not in (2, 3):
                got = f"{t.dtype} {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
                raise TypeError(
                    f"arm {self.name!r}: teacher_logits must be a floating torch.Tensor (N, K) (or a stack of teachers "
                    f"(N, M, K)), got {got}."
                )
            check_finite(self.teacher_logits, f"arm {self.name!r}: teacher_logits", allow_neg_inf=True)
            if self.train is not None and len(self.teacher_logits) != len(self.train):
                raise ValueError(
                    f"arm {self.name!r}: teacher_logits has {len(self.teacher_logits)} rows but its train set "
                    f"{len(self.train)} examples; compute them on the same rows, in the same order."
                )
        if self.procedure is not None:  # the method is then only a label of the run table (e.g. "mutual")
            if not isinstance(self.method, str) or not self.method:
                raise ValueError(f"arm {self.name!r}: method must be a non-empty label, got {self.method!r}.")
        else:
            check_choice(self.method, METHODS, "method")
            if METHODS[self.method].needs_teacher and self.teacher is None:
                raise ValueError(f"arm {self.name!r}: method {self.method!r} needs teacher=...")
        if not isinstance(self.config, Mapping):
            raise TypeError(
                f"arm {self.name!r}: config must be a dict of TrainConfig fields such as {{'temperature': 2}}, got "
                f"{type(self.config).__name__}."
            )
        bad = set(self.config) - {f.name for f in dataclasses.fields(TrainConfig)}
        if bad:
            raise ValueError(
                f"arm {self.name!r}: config has unknown TrainConfig field(s) {sorted(bad)}; allowed: "
                f"{', '.join(f.name for f in dataclasses.fields(TrainConfig))}."
            )
        if "seed" in self.config:
            raise ValueError(
                f"arm {self.name!r}: the seed comes from the comparison's seeds, not the arm's config."
            )
        try:  # the values too, now, not after the other arms have trained
            dataclasses.replace(TrainConfig(), **self.config)
        except (TypeError, ValueError) as err:
            raise ValueError(f"arm {self.name!r}: config {dict(self.config)}: {err}") from None
        budget = sorted({"steps", "epochs"} & set(self.config))
        if budget:
            raise ValueError(
                f"arm {self.name!r}: config sets {budget}, but every arm of a comparison takes the same number of "
                "steps (lk.compare(..., steps=N)), so that a difference comes from the method, not from a longer "
                "run. Compare budgets in separate comparisons, or pass steps= to lk.compare."
            )


def _per_example(
    logits: torch.Tensor, y: torch.Tensor, t_logits: torch.Tensor | None
) -> dict[str, np.ndarray]:
    """Per-example values whose mean over the labelled rows is each metric of ``lk.evaluate``: ``(N,)``."""
    z = logits.double()
    out = {
        "accuracy": (z.argmax(1) == y).double().numpy(),
        "nll": F.cross_entropy(z, y, reduction="none").numpy(),
    }
    if t_logits is not None:
        tz = t_logits.double()
        out["agreement"] = (z.argmax(1) == tz.argmax(1)).double().numpy()
        log_s, log_t = F.log_softmax(z, 1), F.log_softmax(tz, 1)
        terms = log_t.exp() * (log_t - log_s)  # (N, K)
        if bool(
            torch.isneginf(log_t).any()
        ):  # a class the teacher gives probability 0 adds 0, not 0 * inf = NaN
            terms = torch.where(torch.isneginf(log_t), torch.zeros_like(terms), terms)
        out["kl_to_teacher"] = terms.sum(1).numpy()
    return out


def _ece_resamples(conf: np.ndarray, correct: np.ndarray, idx: np.ndarray, n_bins: int = 15) -> np.ndarray:
    """ECE of each run on each bootstrap resample: ``conf``/``correct`` ``(R, N)``, ``idx`` ``(B, N)`` ->
    ``(B, R)``, with ``lk.expected_calibration_error``'s bins ``(lo, hi]``."""
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)  # (R, N)
    out = np.empty((idx.shape[0], conf.shape[0]))
    for r in range(conf.shape[0]):
        b, c, k = bins[r][idx], conf[r][idx], correct[r][idx]  # (B, N)
        flat = b + n_bins * np.arange(idx.shape[0])[:, None]
        size = n_bins * idx.shape[0]
        gap = np.bincount(flat.ravel(), weights=(k - c).ravel(), minlength=size)
        out[:, r] = np.abs(gap).reshape(idx.shape[0], n_bins).sum(1) / idx.shape[1]
    return out


def _check_arm_seed(arm: Any, seed: Any) -> None:
    """A run's arm is a non-empty name; its seed an integer, or None for a fixed reference."""
    if not isinstance(arm, str) or not arm:
        raise ValueError(f"arm must be a non-empty name, got {arm!r}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise ValueError(
            f"arm {arm!r}: seed must be an integer (or None for a fixed reference), got {seed!r}."
        )


class Comparison:
    """Paired runs scored on one test set: ``add`` a run per (arm, seed), then ``runs``, ``summary``, ``verdict``.

    ``test``: anything with labelled ``.y`` (an ``ImageData``; ``.x`` too for ``add_model``); ``teacher_logits``: the teacher's
    ``(N, K)`` logits on it, for ``agreement`` and ``kl_to_teacher``; ``metrics``: extra per-example metrics,
    ``{name: lk.verdicts.Metric(better=..., scale=..., unit=...)}``, whose values ``add(..., extra=...)`` gives.
    """

    def __init__(
        self,
        test: Any,
        teacher_logits: torch.Tensor | None = None,
        metrics: Mapping[str, Metric] | None = None,
    ) -> None:
        if not hasattr(test, "y"):
            raise ValueError(
                f"test must have .y, the labels (an ImageData, or any object with .y for runs added with add), "
                f"got {type(test).__name__}."
            )
        if not isinstance(test.y, torch.Tensor) or test.y.dim() != 1 or test.y.is_floating_point():
            got = (
                f"{test.y.dtype} {tuple(test.y.shape)}"
                if isinstance(test.y, torch.Tensor)
                else type(test.y).__name__
            )
            raise ValueError(f"test.y must be a 1-D integer tensor of class indices, got {got}.")
        self.y = test.y.detach().cpu().long()
        if len(self.y) == 0 or bool((self.y < 0).any()):
            raise ValueError("the test set must be non-empty and fully labelled (no -1 targets).")
        self.test = test
        if teacher_logits is not None:
            check_logits(teacher_logits, "teacher_logits")
            check_finite(teacher_logits, "teacher_logits", allow_neg_inf=True)
        self.teacher_logits = None if teacher_logits is None else teacher_logits.detach().cpu().float()
        if self.teacher_logits is not None and self.teacher_logits.shape[0] != len(self.y):
            raise ValueError(
                f"teacher_logits has {self.teacher_logits.shape[0]} rows but the test set {len(self.y)} examples."
            )
        self.metrics: dict[str, Metric] = dict(METRICS)
        for name, spec in (metrics or {}).items():
            if name in METRICS or name in ("seconds", "steps", "arm", "seed", "method"):
                raise ValueError(
                    f"extra metric {name!r} would replace a column labkit computes itself; give it another name."
                )
            if not isinstance(spec, Metric):
                raise ValueError(f"metric {name!r} must be an lk.verdicts.Metric(better=...), got {spec!r}.")
            check_better(spec.better)
            self.metrics[name] = spec
        self.extra = set(metrics or {})
        self._runs: dict[tuple[str, int | None], dict[str, Any]] = {}
        self.models: dict[tuple[str, int | None], nn.Module] = {}

    @classmethod
    def of_examples(cls, n: int, metrics: Mapping[str, Metric]) -> Comparison:
        """A comparison of per-example metrics only, for runs that have no class logits: a language model scored
        per held-out sequence (its mean next-token NLL), or per generation (the teacher's NLL of it). ``n``: the
        number of test examples; ``metrics``: ``{name: lk.verdicts.Metric(better=..., scale=..., unit=...)}``,
        each a mean over those examples. Runs come from ``add_values``; ``summary``, ``verdict`` and ``runs``
        work as for classifiers, with the same verdict rule (seed spread and the test set's sampling error)."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 2:
            raise ValueError(f"n must be the number of test examples, an integer >= 2, got {n!r}.")
        if not isinstance(metrics, Mapping) or not metrics:
            raise ValueError(
                "metrics must be a non-empty {name: lk.verdicts.Metric(better=...)} mapping, "
                f"got {metrics!r}."
            )
        for name, spec in metrics.items():
            if not isinstance(name, str) or not name or name in ("seconds", "steps", "arm", "seed", "method"):
                raise ValueError(f"metric names must be non-empty and not a run-table column, got {name!r}.")
            if not isinstance(spec, Metric) or not spec.per_example:
                raise ValueError(
                    f"metric {name!r} must be an lk.verdicts.Metric(better=...) that is a mean over examples, "
                    f"got {spec!r}."
                )
        self = cls.__new__(cls)
        self.y = torch.zeros(int(n), dtype=torch.long)
        self.test, self.teacher_logits = None, None
        self.metrics = dict(metrics)
        self.extra = set(metrics)
        self._runs, self.models = {}, {}
        return self

    def add_values(
        self, arm: str, seed: int | None, values: Mapping[str, Any], **info: Any
    ) -> dict[str, Any]:
        """One run of a comparison made by ``of_examples``: ``values`` gives each declared metric's per-example
        values ``(n,)``; ``seed=None`` is a fixed reference (the teacher). Returns the run's row."""
        if self.test is not None:
            raise ValueError(
                "add_values is for comparisons made by Comparison.of_examples; this one scores logits: use add(...)."
            )
        _check_arm_seed(arm, seed)
        if not isinstance(values, Mapping) or set(values) != self.extra:
            got = sorted(values) if isinstance(values, Mapping) else type(values).__name__
            raise ValueError(
                f"arm {arm!r}: values must give exactly the metrics {sorted(self.extra)}, got {got}."
            )
        if (arm, None) in self._runs or (seed is None and any(a == arm for a, _ in self._runs)):
            raise ValueError(f"arm {arm!r} is a fixed reference and cannot also have seeded runs.")
        per = {}
        for name, v in values.items():
            try:
                a = np.asarray(torch.as_tensor(v).detach().cpu(), dtype=np.float64).reshape(-1)
            except (TypeError, ValueError, RuntimeError) as err:
                raise ValueError(
                    f"arm {arm!r}: values[{name!r}] must be numbers, one per test example ({err})."
                ) from None
            if a.shape != (len(self.y),) or not np.isfinite(a).all():
                raise ValueError(
                    f"arm {arm!r}: values[{name!r}] must be {len(self.y)} finite values (one per test example), "
                    f"got shape {a.shape} with {int((~np.isfinite(a)).sum())} NaN or inf."
                )
            per[name] = a
        row = {"arm": arm, "seed": seed, **{k: float(v.mean()) for k, v in per.items()}, **info}
        self._runs[(arm, seed)] = {"row": row, "per": per, "conf": None, "conf_k": None}
        return row

    # ------------------------------------------------------------------------------------------ adding runs
    def add(
        self,
        arm: str,
        seed: int | None,
        logits: torch.Tensor,
        extra: Mapping[str, Any] | None = None,
        model: nn.Module | None = None,
        **info: Any,
    ) -> dict[str, Any]:
        """One run's test logits ``(N, K)``; ``extra``: per-example values ``(N,)`` of the extra metrics;
        ``info``: anything else for the run table (wall time, steps, loss parts). ``seed=None`` is a fixed
        reference (``add_fixed``). Returns the run's row. Adding the same (arm, seed) again replaces that run (so a
        notebook cell can be run twice)."""
        if self.test is None:
            raise ValueError(
                "this comparison was made by Comparison.of_examples and has no labels to score logits against: "
                "use add_values(arm, seed, {metric: per-example values})."
            )
        _check_arm_seed(arm, seed)
        if not isinstance(logits, torch.Tensor):
            raise TypeError(
                f"arm {arm!r}: logits must be a torch.Tensor (N, classes), got {type(logits).__name__}."
            )
        z = check_has_data(logits, f"arm {arm!r}: logits").detach().cpu().float()
        if z.dim() != 2 or z.shape[0] != len(self.y):
            raise ValueError(f"logits must have shape (N={len(self.y)}, classes), got {tuple(z.shape)}.")
        k, top = z.shape[1], int(self.y.max())
        if k <= top:
            raise ValueError(
                f"arm {arm!r}: logits have {k} classes but the test labels go up to {top}; score a model built for "
                "this test set's classes."
            )
        widths = [("teacher_logits", self.teacher_logits.shape[1])] if self.teacher_logits is not None else []
        widths += [(f"arm {a!r}", r["conf_k"]) for (a, _), r in list(self._runs.items())[:1]]
        for what, kk in widths:  # one label space: the teacher's, then the first run's
            if kk != k:
                raise ValueError(
                    f"arm {arm!r}: logits have {k} classes but {what} {kk}: one label space per comparison."
                )
        if not bool(torch.isfinite(z).all()):
            raise ValueError(f"arm {arm!r}, seed {seed}: logits contain NaN or inf.")
        if (arm, None) in self._runs or (seed is None and any(a == arm for a, _ in self._runs)):
            raise ValueError(
                f"arm {arm!r} is a fixed reference (add_fixed) and cannot also have seeded runs."
            )
        per = _per_example(z, self.y, self.teacher_logits)
        for name in self.extra:
            if extra is None or name not in extra:
                raise ValueError(f"arm {arm!r}: the extra metric {name!r} needs extra={{{name!r}: values}}.")
        for name, values in (extra or {}).items():
            if name not in self.extra:
                raise ValueError(
                    f"extra metric {name!r} was not declared; Comparison(metrics={{...}}) first."
                )
            v = np.asarray(torch.as_tensor(values).detach().cpu(), dtype=np.float64).reshape(-1)
            if v.shape != (len(self.y),) or not np.isfinite(v).all():
                raise ValueError(
                    f"extra metric {name!r} must be {len(self.y)} finite values (one per test example), got shape "
                    f"{v.shape} with {int((~np.isfinite(v)).sum())} NaN or inf."
                )
            per[name] = v
        conf = F.softmax(z.double(), 1).max(1).values.numpy()
        row = {
            "arm": arm,
            "seed": seed,
            **{k: float(v.mean()) for k, v in per.items()},
            "ece": expected_calibration_error(z, self.y),
            **info,
        }
        self._runs[(arm, seed)] = {"row": row, "per": per, "conf": conf, "conf_k": k}
        if model is not None:
            self.models[(arm, seed)] = model
        return row

    def add_fixed(self, arm: str, logits: torch.Tensor, extra: Mapping[str, Any] | None = None, **info: Any):
        """A fixed reference (the teacher, an ensemble): one evaluation that pairs with every seed of the
        other arm, with no seed-to-seed variation of its own."""
        return self.add(arm, None, logits, extra, **info)

    def add_model(self, arm: str, seed: int | None, model: nn.Module, keep: bool = False, **info: Any):
        """``add`` with the test logits of ``model``; a comparison with extra metrics needs ``add(..., extra=...)``."""
        if not hasattr(self.test, "x"):
            raise ValueError(
                "add_model needs a test set with .x; pass the model's logits to add(...) instead."
            )
        logits = predict_logits(model, self.test.x)
        return self.add(arm, seed, logits, model=model if keep else None, **info)

    # ------------------------------------------------------------------------------------------ reading
    @property
    def arms(self) -> list[str]:
        return list(dict.fromkeys(a for a, _ in self._runs))

    def seeds(self, arm: str) -> list[int | None]:
        if not isinstance(arm, str) or arm not in self.arms:
            raise ValueError(f"no arm {arm!r} in this comparison; arms: {self.arms}.")
        return [s for a, s in self._runs if a == arm]

    @property
    def runs(self):
        """The tidy table: one row per run (arm, seed, every metric, wall time, steps, loss parts ...)."""
        import pandas as pd

        if not self._runs:
            raise ValueError(
                "this comparison has no runs yet: add(...), add_model(...) or lk.compare(..., into=cmp)."
            )
        frame = pd.DataFrame([r["row"] for r in self._runs.values()])
        frame["seed"] = frame["seed"].astype("Int64")  # a fixed reference (the teacher) has no seed
        return frame

    def summary(self, metrics: Sequence[str] | None = None, digits: int = 2, raw: bool = False):
        """Mean ± sample std over seeds per arm, in display units (accuracy, agreement and ECE in %, NLL and
        KL in nats; ``seconds`` of training too): columns ``n`` and one text column per metric, or with
        ``raw=True`` also ``<metric>_mean`` / ``<metric>_std`` in raw units (``lk.summarize``)."""
        if isinstance(digits, bool) or not isinstance(digits, int) or digits < 0:
            raise ValueError(f"digits must be an integer >= 0, got {digits!r}.")
        metrics = [metrics] if isinstance(metrics, str) else metrics
        runs = self.runs
        names = list(metrics) if metrics is not None else [m for m in (*self.metrics, "seconds") if m in runs]
        for m in names:
            check_choice(m, list(runs.columns), "metric")
        scale = {m: (self.metrics[m].scale if m in self.metrics else 1.0) for m in names}
        table = summarize(runs, by="arm", metrics=names, scale=scale, digits=digits)
        for arm in table.index:  # a fixed reference is one evaluation: no spread to show
            if self.seeds(arm) == [None]:
                for m in names:
                    value = table.loc[arm, f"{m}_mean"] * scale[m]
                    table.loc[arm, m] = "nan" if np.isnan(value) else f"{value:.{digits}f} (fixed)"
        return table if raw else table[["n", *names]]

    def verdict(self, a: str, b: str, metric: str = "accuracy", better: str | None = None) -> Verdict:
        """``a`` minus ``b`` on ``metric`` under the course's rule (see ``labkit.verdicts``), paired by seed.
        ``better`` defaults to the metric's own direction (``"lower"`` for ``ece``, ``nll``, ``kl_to_teacher``)."""
        if not isinstance(metric, str):
            raise ValueError(f"metric must be one metric's name such as 'accuracy', got {metric!r}.")
        spec = self.metrics.get(metric)
        if spec is None and better is None:
            raise ValueError(
                f"unknown metric {metric!r}: pass better='higher' or 'lower'; known: {list(self.metrics)}."
            )
        direction = check_better(better if better is not None else spec.better)
        seeds_a, seeds_b = self.seeds(a), self.seeds(b)
        if a == b:
            raise ValueError(f"compare two different arms, got {a!r} twice.")
        if None in seeds_a and None in seeds_b:
            raise ValueError(f"{a!r} and {b!r} are both fixed references: there is nothing to pair.")
        if None in seeds_a:
            pairs = [(None, s) for s in seeds_b]
        elif None in seeds_b:
            pairs = [(s, None) for s in seeds_a]
        else:
            pairs = [(s, s) for s in seeds_a if s in seeds_b]
        if not pairs:
            raise ValueError(f"{a!r} (seeds {seeds_a}) and {b!r} (seeds {seeds_b}) share no seed to pair.")
        scale = spec.scale if spec is not None else 1.0
        runs_a = [self._runs[(a, sa)] for sa, _ in pairs]
        runs_b = [self._runs[(b, sb)] for _, sb in pairs]
        if metric == "ece":
            per_seed = np.array([ra["row"]["ece"] - rb["row"]["ece"] for ra, rb in zip(runs_a, runs_b)])
            res = interval_from_bootstrap(per_seed * scale, self._ece_test_var(runs_a, runs_b) * scale**2)
        else:
            if metric not in runs_a[0]["per"]:
                raise ValueError(
                    f"metric {metric!r} was not measured in this comparison (no teacher_logits?)."
                )
            diffs = np.stack([ra["per"][metric] - rb["per"][metric] for ra, rb in zip(runs_a, runs_b)])
            res = interval_from_examples(diffs * scale)
        return Verdict(
            a=a,
            b=b,
            metric=metric,
            better=direction,
            diff=res["diff"],
            low=res["low"],
            high=res["high"],
            n_seeds=len(pairs),
            n_test=len(self.y),
            se_seed=res["se_seed"],
            se_test=res["se_test"],
            unit=spec.unit if spec is not None else "",
        )

    def _ece_test_var(self, runs_a: list[dict], runs_b: list[dict]) -> float:
        """Variance of the mean ECE difference over paired bootstrap resamples of the test set."""
        runs = runs_a + runs_b
        conf = np.stack([r["conf"] for r in runs])
        correct = np.stack([r["per"]["accuracy"] for r in runs])
        idx = np.random.default_rng(0).integers(0, len(self.y), (BOOTSTRAP, len(self.y)))
        ece = _ece_resamples(conf, correct, idx)  # (B, 2n)
        k = len(runs_a)
        return float((ece[:, :k] - ece[:, k:]).mean(1).var(ddof=1))

    def verdicts(self, pairs: Sequence[tuple[str, str]], metrics: Sequence[str] = ("accuracy",)):
        """A table of verdicts, one row per (pair, metric): difference, interval, effect, seeds."""
        import pandas as pd

        pairs = list(pairs) if isinstance(pairs, (list, tuple)) else pairs
        if (
            not isinstance(pairs, list)
            or not pairs
            or not all(
                isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(x, str) for x in p)
                for p in pairs
            )
        ):
            raise ValueError(f"pairs must be a non-empty list of (arm a, arm b) name pairs, got {pairs!r}.")
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        if not metrics:
            raise ValueError("metrics must name at least one metric, e.g. ('accuracy',).")
        rows = []
        for a, b in pairs:
            for m in metrics:
                v = self.verdict(a, b, m)
                rows.append({"comparison": f"{a} vs {b}", "metric": m, "better": v.better,
                             "difference": round(v.diff, 2), "low": round(v.low, 2), "high": round(v.high, 2),
                             "seeds": v.n_seeds, "verdict": v.words})  # fmt: skip
        return pd.DataFrame(rows).set_index(["comparison", "metric"])


def _check_data(arms: Sequence[Arm], train: Any, test: Any) -> None:
    """Every arm's training set and the test set describe the same inputs and classes (before any training)."""
    if not isinstance(train, ImageData):
        raise TypeError(f"train must be an lk.ImageData, got {type(train).__name__}.")
    if not (hasattr(test, "x") and hasattr(test, "y")):
        raise TypeError(f"test must be an lk.ImageData (with .x and .y), got {type(test).__name__}.")
    for arm in arms:
        data = arm.train if arm.train is not None else train
        where = f"arm {arm.name!r}" + ("'s train" if arm.train is not None else ": train")
        if isinstance(data, ImageData) and isinstance(test, ImageData):
            if data.in_shape != test.in_shape:
                raise ValueError(
                    f"{where} has images of shape {data.in_shape} but test {test.in_shape}: a student reads one shape."
                )
            if list(data.classes) != list(test.classes):
                raise ValueError(
                    f"{where} and test have different classes ({list(data.classes)} vs {list(test.classes)}): "
                    "a test score means something only over the classes the student was trained on."
                )
        if arm.teacher_logits is not None and len(arm.teacher_logits) != len(data):
            raise ValueError(
                f"arm {arm.name!r}: teacher_logits has {len(arm.teacher_logits)} rows but its training set "
                f"{len(data)} examples; compute them on the same rows, in the same order."
            )
        k = getattr(arm.teacher, "num_classes", None)
        if isinstance(data, ImageData) and isinstance(k, int) and k != data.num_classes:
            raise ValueError(
                f"arm {arm.name!r}: teacher has {k} classes but the training data {data.num_classes}: distillation "
                "compares distributions over the same label space."
            )


def compare(
    arms: Sequence[Arm],
    *,
    train: ImageData,
    test: ImageData,
    make_student: Callable[[], nn.Module],
    config: TrainConfig,
    seeds: Sequence[int],
    steps: int | None = None,
    teacher_logits: torch.Tensor | None = None,
    metrics: Mapping[str, Metric] | None = None,
    extra: Mapping[str, Callable[[nn.Module], Any]] | None = None,
    keep: bool = False,
    into: Comparison | None = None,
) -> Comparison:
    """Train every arm once per seed as paired runs and score them on ``test``; returns the ``Comparison``.

    ``config``: the base ``TrainConfig`` (its seed is replaced by each seed); ``steps``: optimisation steps of
    every run (default ``config.steps`` or ``config.epochs`` passes over ``train``); ``teacher_logits``: the
    teacher's logits on ``test`` (for agreement / KL to the teacher); ``metrics`` + ``extra``: extra per-example
    metrics, ``extra[name](student) -> (N,)`` values on ``test``; ``keep``: keep every trained student in
    ``.models[(arm, seed)]``; ``into``: add the runs to an existing comparison (same test set).
    """
    if not isinstance(arms, (list, tuple)):
        raise TypeError(f"arms must be a list of lk.Arm(...), got {type(arms).__name__}; one arm is [arm].")
    if not arms or not all(isinstance(a, Arm) for a in arms):
        raise ValueError("arms must be a non-empty list of lk.Arm(...).")
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise ValueError(f"arm names must be unique, got {names}.")
    if not isinstance(seeds, (list, tuple, range)):
        raise TypeError(f"seeds must be a list or tuple of integers such as (0, 1, 2), got {seeds!r}.")
    bad = [
        s for s in seeds if isinstance(s, bool) or not isinstance(s, numbers.Integral) or not 0 <= s < 2**32
    ]
    if bad:
        raise ValueError(f"seeds must be integers in [0, 2**32), got {bad} in {list(seeds)}.")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct integers, at least one, got {list(seeds)}.")
    if steps is not None and (
        isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1
    ):
        raise ValueError(f"steps must be an integer >= 1 (or None: the config's budget), got {steps!r}.")
    if not isinstance(keep, bool):
        raise TypeError(f"keep must be True or False (keep every trained student), got {keep!r}.")
    if not callable(make_student) or isinstance(make_student, nn.Module):
        raise ValueError("make_student must be a function that returns a new student model (not a model).")
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be an lk.TrainConfig, got {type(config).__name__}.")
    if into is not None and not isinstance(into, Comparison):
        raise TypeError(f"into must be an lk.Comparison to add the runs to, got {type(into).__name__}.")
    if set(extra or {}) != set(metrics or {}):
        raise ValueError(
            "metrics and extra must name the same extra metrics (a direction and a function each)."
        )
    for name, fn in (extra or {}).items():
        if not callable(fn):
            raise TypeError(f"extra[{name!r}] must be a function student -> (N,) values on test, got {fn!r}.")
    _check_data(arms, train, test)
    from .data import num_batches

    total = steps or config.steps or config.epochs * num_batches(len(train), config.batch_size)
    if into is not None and not (
        len(test.y) == len(into.y) and torch.equal(test.y.detach().cpu().long(), into.y)
    ):
        raise ValueError(
            "into= adds runs to a comparison over the same test examples, but this test set's labels differ from "
            "its; build another lk.Comparison for another test set."
        )
    cmp = into if into is not None else Comparison(test, teacher_logits, metrics)
    for seed in seeds:
        inits: dict[Callable, nn.Module] = {}
        for arm in arms:
            family = arm.student or make_student
            if family not in inits:
                seed_everything(seed)
                inits[family] = family()
                if not isinstance(inits[family], nn.Module):
                    what = "make_student" if family is make_student else f"arm {arm.name!r}: student"
                    raise TypeError(
                        f"{what}() must return a new nn.Module, got {type(inits[family]).__name__}."
                    )
            student = clone_init(inits[family])
            cfg = dataclasses.replace(config, **{"steps": total, **arm.config, "seed": seed})
            data = arm.train if arm.train is not None else train
            t0 = time.perf_counter()
            if arm.procedure is not None:
                history = arm.procedure(student, data, cfg)
            else:
                history = fit(student, data, method=arm.method, teacher=arm.teacher, config=cfg,
                              teacher_logits=arm.teacher_logits)  # fmt: skip
            seconds = time.perf_counter() - t0
            last = getattr(history, "last", {}) or {}
            parts = {k: v for k, v in last.items() if k.startswith("loss_")}
            values = {name: fn(student) for name, fn in (extra or {}).items()}
            cmp.add(arm.name, seed, predict_logits(student, test.x), extra=values or None,
                    model=student if keep else None, method=arm.method, steps=cfg.steps, seconds=seconds,
                    **parts)  # fmt: skip
    return cmp
