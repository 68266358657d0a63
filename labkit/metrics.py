"""How good is a student, and how close to its teacher? Plus mean +- std over seeds.

* ``accuracy`` against labels; ``agreement`` (top-1 fidelity) and ``kl_to_teacher`` against the teacher:
  a distilled student can agree with its teacher more than its accuracy alone suggests (Stanton et al.,
  2021, "Does Knowledge Distillation Really Work?").
* ``expected_calibration_error`` and ``reliability_bins`` (Guo et al., 2017, "On Calibration of Modern
  Neural Networks"): soft targets tend to make students better calibrated.
* ``predict_logits`` / ``evaluate``: batched, ``eval()`` mode, ``no_grad``, the model's mode restored.
* ``mean_std`` / ``format_mean_std`` / ``summarize``: results over seeds are reported as mean +- sample std.
  Whether a difference is an effect is decided by ``labkit.verdicts`` (``lk.compare`` / ``Comparison.verdict``).

All metrics ignore examples whose target is ``-1`` (unlabelled transfer-set examples).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._validate import (
    check_finite,
    check_has_data,
    check_input_batch,
    check_logits,
    check_logits_pair,
    check_positive_int,
    check_targets,
    check_temperature,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "accuracy",
    "agreement",
    "batched_outputs",
    "evaluate",
    "expected_calibration_error",
    "format_mean_std",
    "kl_to_teacher",
    "mean_std",
    "predict_logits",
    "reliability_bins",
    "summarize",
]


def _check_scores(logits: torch.Tensor, name: str = "logits", probabilities_ok: bool = True) -> torch.Tensor:
    """Logits ``(N, K)`` with N >= 1, K >= 2, no NaN or +inf (-inf is a class of probability 0, but not every class
    of a row), and, where a softmax of them is taken (``probabilities_ok=False``), not probabilities."""
    check_logits(logits, name)
    n, k = logits.shape
    if n == 0:
        raise ValueError(
            f"{name} is empty (shape {tuple(logits.shape)}): a metric needs at least one example."
        )
    if k < 2:
        raise ValueError(
            f"{name} has {k} class column(s); a classifier's logits have one column per class, >= 2."
        )
    check_finite(logits, name, allow_neg_inf=True)
    z = logits.detach()
    if bool(torch.isneginf(z).all(dim=1).any()):
        raise ValueError(f"{name}: a row is -inf for every class, so no class has any probability.")
    if not probabilities_ok and bool(((z >= 0) & (z <= 1)).all()):
        if bool(((z.double().sum(dim=1) - 1).abs() < 1e-4).all()):
            raise ValueError(
                f"{name} look like probabilities (every row in [0, 1] and summing to 1), but labkit's metrics take "
                "logits and apply the softmax themselves: pass the logits, or log-probabilities (probs.log())."
            )
    return logits


def _labelled(
    logits: torch.Tensor, targets: torch.Tensor, probabilities_ok: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated logits ``(N, K)`` and targets ``(N,)`` restricted to the labelled rows, on the CPU."""
    _check_scores(logits, "logits", probabilities_ok)
    targets = check_targets(targets, logits.shape[0], logits.shape[1])  # int64, any integer dtype in
    logits, targets = logits.detach().cpu(), targets.detach().cpu()
    keep = targets >= 0  # (N,) -1 = unlabelled
    return logits[keep], targets[keep]


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of labelled examples whose arg-max logit is the target (``nan`` if none is labelled).

    Shapes: ``logits`` ``(N, K)``, ``targets`` ``(N,)`` with ``-1`` for unlabelled examples (ignored).
    """
    logits, targets = _labelled(logits, targets)
    if targets.numel() == 0:
        return float("nan")
    return (logits.argmax(dim=1) == targets).double().mean().item()


def agreement(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> float:
    """Top-1 agreement ("fidelity"): fraction of examples where student and teacher predict the same class.

    Shapes: both ``(N, K)``. Needs no labels, so it also works on unlabelled transfer data.
    """
    check_logits_pair(student_logits, teacher_logits)
    if student_logits.shape[0] == 0:
        raise ValueError("agreement needs at least one example, got empty logits.")
    _check_scores(student_logits, "student_logits")
    _check_scores(teacher_logits, "teacher_logits")
    s, t = student_logits.detach().cpu().argmax(1), teacher_logits.detach().cpu().argmax(1)  # (N,)
    return (s == t).double().mean().item()


def kl_to_teacher(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0
) -> float:
    r"""Mean KL divergence from the teacher to the student, in nats: :math:`\frac1N \sum_n KL(p_t^T \| p_s^T)`.

    Shapes: both ``(N, K)``. Computed in float64 from log-probabilities on both sides (stable for extreme
    logits). Unlike the training loss ``kd_kl_loss`` there is no ``T**2`` factor: this is a measurement,
    0 exactly when the two softened distributions coincide.
    """
    check_logits_pair(student_logits, teacher_logits)
    t = check_temperature(temperature)
    if student_logits.shape[0] == 0:
        raise ValueError("kl_to_teacher needs at least one example, got empty logits.")
    _check_scores(student_logits, "student_logits", probabilities_ok=False)
    _check_scores(teacher_logits, "teacher_logits", probabilities_ok=False)
    log_p_s = F.log_softmax(student_logits.detach().cpu().double() / t, dim=1)  # (N, K)
    log_p_t = F.log_softmax(teacher_logits.detach().cpu().double() / t, dim=1)  # (N, K)
    if bool(torch.isneginf(log_p_t).any()):  # a class of teacher probability 0 adds 0 (not 0 * inf = NaN)
        terms = log_p_t.exp() * (log_p_t - log_p_s)
        return torch.where(torch.isneginf(log_p_t), torch.zeros_like(terms), terms).sum(1).mean().item()
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True).item()


def reliability_bins(logits: torch.Tensor, targets: torch.Tensor, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Per-bin accuracy and confidence for a reliability diagram (equal-width bins ``(lo, hi]`` on [0, 1]).

    Confidence is the max softmax probability. Returns numpy arrays of length ``n_bins``: ``centers``,
    ``accuracy`` and ``confidence`` (mean per bin, ``nan`` for empty bins), ``counts``; plus ``edges``
    (``n_bins + 1``). Unlabelled examples (target ``-1``) are ignored.
    """
    check_positive_int(n_bins, "n_bins")
    logits, targets = _labelled(logits, targets, probabilities_ok=False)
    probs = F.softmax(logits.double(), dim=1)  # (N, K)
    conf, pred = probs.max(dim=1)  # (N,), (N,)
    correct = (pred == targets).double()  # (N,)
    # bin b holds confidences in (b / n_bins, (b + 1) / n_bins]; confidence >= 1/K > 0, so b >= 0
    idx = (torch.ceil(conf * n_bins).long() - 1).clamp(0, n_bins - 1)  # (N,)
    counts = torch.bincount(idx, minlength=n_bins).double()  # (n_bins,)
    sum_acc = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, idx, correct)
    sum_conf = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, idx, conf)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = (sum_acc / counts).numpy()  # nan where the bin is empty
        mean_conf = (sum_conf / counts).numpy()
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return {
        "centers": (edges[:-1] + edges[1:]) / 2,
        "accuracy": acc,
        "confidence": mean_conf,
        "counts": counts.numpy().astype(np.int64),
        "edges": edges,
    }


def expected_calibration_error(logits: torch.Tensor, targets: torch.Tensor, n_bins: int = 15) -> float:
    r"""Expected calibration error :math:`\sum_b \frac{n_b}{N} |acc_b - conf_b|` (Guo et al., 2017).

    Equal-width confidence bins, weighted by the number of examples in each; 0 means that whenever the
    model says 80 % it is right 80 % of the time. Shapes: ``logits`` ``(N, K)``, ``targets`` ``(N,)``.
    Returns ``nan`` when no example is labelled.
    """
    bins = reliability_bins(logits, targets, n_bins)
    counts, n = bins["counts"], bins["counts"].sum()
    if n == 0:
        return float("nan")
    full = counts > 0
    gap = np.abs(bins["accuracy"][full] - bins["confidence"][full])
    return float((counts[full] / n * gap).sum())


# ----------------------------------------------------------------------------------------- inference
def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def batched_outputs(
    model: nn.Module, x: torch.Tensor, batch_size: int = 1024, device: str | torch.device | None = None
) -> torch.Tensor:
    """``model`` applied to ``x`` ``(N, ...)`` in batches, concatenated along dim 0, float32 on the CPU.

    Runs in ``eval()`` mode (BatchNorm uses running statistics, dropout is off) under ``no_grad``, and restores
    every submodule's previous train/eval mode afterwards. ``device=None`` uses the device the model's
    parameters are on; otherwise the model is moved to ``device``. Hugging Face style outputs give their
    ``.logits``; a tuple gives its first element.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"predictions need a model (an nn.Module), got {type(model).__name__}.")
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[0] == 0:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a non-empty batch tensor (N, ...), got {shape}.")
    check_input_batch(x, "x")
    check_positive_int(batch_size, "batch_size")
    dev = torch.device(device) if device is not None else _model_device(model)
    model.to(dev)
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        out = []
        for start in range(0, x.shape[0], batch_size):
            xb = x[start : start + batch_size].to(dev)
            try:
                res = model(xb)
            except (RuntimeError, TypeError) as err:  # e.g. integer pixels into a Linear: say what went in
                if start:  # the first batch ran: a failure later is the model's own, not the input's kind
                    raise
                raise ValueError(
                    f"{type(model).__name__} cannot take x (dtype {x.dtype}, shape {tuple(x.shape)}): "
                    f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}. Pass the inputs it was "
                    "built for (images as float32, e.g. data.x of an ImageData)."
                ) from err
            res = getattr(res, "logits", res)  # Hugging Face style outputs
            res = res[0] if isinstance(res, (tuple, list)) else res
            out.append(res.float().cpu())  # (b, ...)
    finally:
        for m, mode in modes.items():
            m.training = mode
    return torch.cat(out)


def predict_logits(
    model: nn.Module, x: torch.Tensor, batch_size: int = 1024, device: str | torch.device | None = None
) -> torch.Tensor:
    """Logits of ``model`` on ``x`` ``(N, ...)`` -> ``(N, K)`` float32 on the CPU (``batched_outputs``: eval
    mode, no gradients, batches of ``batch_size``, previous train/eval modes restored)."""
    return check_logits(batched_outputs(model, x, batch_size, device))


def evaluate(
    model: nn.Module,
    data: Any,
    teacher: nn.Module | None = None,
    teacher_logits: torch.Tensor | None = None,
    batch_size: int = 1024,
) -> dict[str, float]:
    """``accuracy``, ``ece`` and ``nll`` of ``model`` on ``data`` (anything with ``.x`` ``(N, ...)`` and ``.y``
    ``(N,)``, e.g. an ``ImageData``); with ``teacher`` or precomputed ``teacher_logits`` ``(N, K)`` also
    ``agreement`` and ``kl_to_teacher`` (T = 1). ``nll`` is the mean cross-entropy on labelled examples.
    """
    if not (hasattr(data, "x") and hasattr(data, "y")):
        raise ValueError(
            f"data must have .x (inputs) and .y (labels), like an ImageData; got {type(data).__name__}."
        )
    if teacher is not None and teacher_logits is not None:
        raise ValueError("pass either teacher or teacher_logits, not both.")
    logits = predict_logits(model, data.x, batch_size)  # (N, K)
    lab_logits, lab_y = _labelled(logits, data.y, probabilities_ok=False)
    nll = F.cross_entropy(lab_logits.double(), lab_y).item() if lab_y.numel() else float("nan")
    result = {
        "accuracy": accuracy(logits, data.y),
        "ece": expected_calibration_error(logits, data.y),
        "nll": nll,
    }
    if teacher is not None:
        teacher_logits = predict_logits(teacher, data.x, batch_size)
    if teacher_logits is not None:
        check_logits_pair(logits, teacher_logits)
        result["agreement"] = agreement(logits, teacher_logits)
        result["kl_to_teacher"] = kl_to_teacher(logits, teacher_logits)
    return result


# -------------------------------------------------------------------------------------- over seeds
def mean_std(values: Sequence[float] | np.ndarray | torch.Tensor) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``) of repeated runs; the std of a single run is 0.0."""
    if isinstance(values, (str, bytes, Mapping)):
        raise ValueError(f"values must be a sequence of numbers (one per run), got {type(values).__name__}.")
    raw = check_has_data(values, "values").detach().cpu() if isinstance(values, torch.Tensor) else values
    if np.asarray(raw).dtype.kind not in "biuf":
        raise ValueError(
            f"values must be numbers (one per run), got {list(np.asarray(raw, dtype=object).reshape(-1))[:5]}."
        )
    if np.asarray(raw).dtype.kind == "b":
        raise ValueError(
            "values must be numbers (one per run), got booleans: average correct/incorrect flags with accuracy, "
            "or pass one score per run."
        )
    if np.asarray(raw).ndim > 1:
        raise ValueError(
            f"values must be flat, one number per run, got shape {np.asarray(raw).shape}: pick the column or "
            "average each run first (mean_std of a table would mix runs and rows)."
        )
    arr = np.asarray(raw, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError("mean_std needs at least one value, got none.")
    check_finite(arr, "values (one per run)")
    return float(arr.mean()), (float(arr.std(ddof=1)) if arr.size > 1 else 0.0)


def format_mean_std(
    values: Sequence[float] | np.ndarray | torch.Tensor, scale: float = 100, digits: int = 1
) -> str:
    """``"91.2 ± 0.3"``: mean ± sample std of ``values`` times ``scale`` (100 turns fractions into percent)."""
    if (
        isinstance(scale, bool)
        or not isinstance(scale, (int, float))
        or not math.isfinite(scale)
        or scale == 0
    ):
        raise ValueError(
            f"scale must be a finite, non-zero number (100 turns fractions into percent), got {scale!r}."
        )
    _check_digits(digits)
    m, s = mean_std(values)
    return f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}"


def _check_digits(digits: Any) -> int:
    if isinstance(digits, (bool, np.bool_)) or not isinstance(digits, (int, np.integer)) or digits < 0:
        raise ValueError(f"digits must be an integer >= 0 (decimal places), got {digits!r}.")
    return int(digits)


def summarize(
    records: Any,
    by: str | Sequence[str],
    metrics: str | Sequence[str],
    scale: float | Mapping[str, float] = 100,
    digits: int = 1,
) -> pd.DataFrame:
    """Mean ± std over seeds, one row per group.

    ``records``: a list of dicts or a ``DataFrame`` with one row per run (e.g. columns ``method``, ``seed``,
    ``accuracy``). Returns a ``DataFrame`` indexed by ``by`` (groups in order of first appearance) with,
    for each metric ``m``: ``m_mean``, ``m_std`` (raw units, sample std, 0.0 for a single run) and ``m``, the
    text ``"mean ± std"`` multiplied by ``scale`` (a number, or a dict ``{metric: scale}`` where missing
    metrics use 1); plus ``n``, the number of runs per group.
    """
    import pandas as pd

    _check_digits(digits)
    if isinstance(records, (str, bytes)) or not isinstance(records, (pd.DataFrame, Mapping, Sequence)):
        raise TypeError(
            f"records must be a DataFrame or a list of dicts (one per run), got {type(records).__name__}; read a "
            "file with pandas first."
        )
    if isinstance(records, pd.DataFrame):
        frame = records
    elif isinstance(records, Mapping):  # {column: values}
        frame = pd.DataFrame(records)
    else:
        if not all(isinstance(r, Mapping) for r in records):
            raise TypeError(
                "records must be a list of dicts (one per run, e.g. {'method': 'kd', 'accuracy': 0.9})."
            )
        frame = pd.DataFrame(list(records))
    by_cols = [by] if isinstance(by, str) else list(by)
    metric_cols = [metrics] if isinstance(metrics, str) else list(metrics)
    if frame.empty:
        raise ValueError("summarize needs at least one record, got none.")
    if not by_cols or not metric_cols:
        raise ValueError("summarize needs at least one `by` column and one metric.")
    missing = [c for c in by_cols + metric_cols if c not in frame.columns]
    if missing:
        raise ValueError(
            f"column(s) {missing} not in the records; available: {', '.join(map(str, frame.columns))}."
        )
    for m in metric_cols:
        if not pd.api.types.is_numeric_dtype(frame[m]) or pd.api.types.is_bool_dtype(frame[m]):
            raise ValueError(
                f"metric column {m!r} must hold numbers, got dtype {frame[m].dtype} (e.g. {frame[m].iloc[0]!r})."
            )
        if np.isinf(frame[m].to_numpy(dtype=float)).any():
            raise ValueError(
                f"metric column {m!r} holds inf values: a run diverged or the metric is undefined."
            )
    factors = [scale.get(m, 1.0) if isinstance(scale, Mapping) else scale for m in metric_cols]
    if not all(
        isinstance(f, (int, float)) and not isinstance(f, bool) and math.isfinite(f) and f != 0
        for f in factors
    ):
        raise ValueError(
            f"scale must be a finite, non-zero number or a dict {{metric: number}} (0 would print every value "
            f"as 0), got {scale!r}."
        )
    groups = frame.groupby(by_cols if len(by_cols) > 1 else by_cols[0], sort=False)
    for m in metric_cols:  # a missing value in some runs of a group would be skipped while n counts it
        counts, sizes = groups[m].count(), groups.size()
        partial = [g for g in counts.index if 0 < counts[g] < sizes[g]]
        if partial:
            raise ValueError(
                f"metric {m!r} is missing (NaN) in some runs of group(s) {partial}: the mean would silently use fewer "
                "runs than n says. Drop or fill those runs first."
            )
    out = pd.DataFrame({"n": groups.size()})
    for m in metric_cols:
        factor = scale.get(m, 1.0) if isinstance(scale, Mapping) else scale
        mean = groups[m].mean().astype(float)
        std = groups[m].std(ddof=1).astype(float).where(groups[m].count() > 1, 0.0)  # one run: std 0.0
        out[f"{m}_mean"], out[f"{m}_std"] = mean, std
        out[m] = [
            "nan" if math.isnan(a) else f"{a * factor:.{digits}f} ± {b * factor:.{digits}f}"
            for a, b in zip(mean, std)
        ]
    return out
