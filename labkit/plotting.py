"""One plotting helper per kind of figure in the course. Each returns a ``matplotlib.figure.Figure``.

* ``plot_history`` - learning curves of several runs, one panel per metric.
* ``plot_temperature`` - how ``softmax(z / T)`` flattens as the temperature rises.
* ``plot_gradient_scale`` - a quantity (e.g. a gradient norm) against T on log-log axes, with a ``1/T**2`` guide.
* ``plot_comparison`` - mean ± std over seeds as bars with error bars, one bar per method.
* ``plot_reliability`` - reliability diagram with the ECE of each model in the legend.
* ``plot_attention_maps`` - input images next to the spatial attention maps of several models.
* ``plot_teacher_mix`` - several teachers' distributions for one example and their weighted fusions.

Showing figures in a notebook: end the cell with the call (``plot_history(histories)``) and the figure is
shown once. The helpers detach the figures they create from pyplot (``plt.close``), so nothing is shown
twice, nothing piles up in sweeps, and ``fig = plot_...(...)`` shows nothing until ``display(fig)`` or
``fig`` ends a cell. They never call ``plt.show()`` and never change matplotlib's global style, so they run
unchanged on a headless machine (``MPLBACKEND=Agg``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ._validate import check_finite, check_has_data, check_temperature
from .losses import attention_map
from .metrics import expected_calibration_error, reliability_bins, summarize
from .multiteacher import check_weights, fuse_teachers

__all__ = [
    "plot_attention_maps",
    "plot_comparison",
    "plot_gradient_scale",
    "plot_history",
    "plot_reliability",
    "plot_teacher_mix",
    "plot_temperature",
]

_LOWER_IS_BETTER = ("loss", "nll", "kl", "ece", "error", "seconds", "time")
_DIAGONAL_GID = "labkit-perfect-calibration"


def _new_axes(ax: Axes | None = None, **subplots_kw: Any) -> tuple[Figure, Any]:
    """``(fig, ax)``: the caller's axes, or a new figure detached from pyplot (shown once when returned)."""
    if ax is not None:
        if not isinstance(ax, Axes):
            raise TypeError(
                f"ax must be a matplotlib Axes (e.g. from plt.subplots()), got {type(ax).__name__}."
            )
        return ax.figure, ax
    fig, axes = plt.subplots(**subplots_kw)
    plt.close(fig)  # detach: the notebook shows the returned figure once, and sweeps do not leak figures
    return fig, axes


def _direction(metric: str) -> str:
    return "lower is better" if any(w in metric.lower() for w in _LOWER_IS_BETTER) else "higher is better"


def _is_number(v: Any) -> bool:
    if isinstance(v, torch.Tensor):
        return v.numel() == 1 and not v.dtype == torch.bool
    return isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))


def _records(history: Any, name: str) -> list[dict]:
    """Per-epoch records from a list of dicts, an object with ``.records`` (``History``) or a DataFrame."""
    history = getattr(history, "records", history)
    if hasattr(history, "to_dict") and hasattr(history, "columns"):
        history = history.to_dict("records")
    if not isinstance(history, Sequence) or not all(isinstance(r, Mapping) for r in history):
        raise ValueError(
            f"history {name!r} must be a list of per-epoch dicts (or a labkit History), got {type(history).__name__}."
        )
    return list(history)


def _as_float_tensor(values: Any, name: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A tensor, array or nested list of numbers -> a float CPU tensor, or a ValueError naming ``name``."""
    if isinstance(values, torch.Tensor):
        check_has_data(values, name)
        if values.is_complex() or values.dtype == torch.bool:
            raise ValueError(
                f"{name} must be real numbers, got a {values.dtype} tensor (a mask or complex values)."
            )
        return torch.as_tensor(values.detach().cpu(), dtype=dtype)
    try:
        return torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=dtype)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be numbers (a tensor, array or list), got {type(values).__name__} {values!r:.60}."
        ) from None


def _as_vector_logits(logits: Any) -> torch.Tensor:
    """One example's logits: ``(K,)`` or ``(1, K)`` (tensor, array or list) -> float tensor ``(1, K)``."""
    z = _as_float_tensor(logits, "logits")
    if z.dim() == 2 and z.shape[0] == 1:
        z = z[0]
    if z.dim() != 1 or z.numel() < 2:
        raise ValueError(
            f"logits must be one example's logits of shape (num_classes,) or (1, num_classes) with at least two "
            f"classes, got shape {tuple(z.shape)}. Pick one row, e.g. teacher_logits[0]."
        )
    if not torch.isfinite(z).all():
        raise ValueError("logits contain NaN or inf.")
    return z.unsqueeze(0)  # (1, K)


def _softened(logits: Any, temperatures: Any) -> tuple[list[float], np.ndarray, np.ndarray]:
    """Temperatures as floats, ``softmax(z / T)`` per temperature ``(len(T), K)`` and its entropy in nats."""
    z = _as_vector_logits(logits)  # (1, K)
    if isinstance(temperatures, (int, float, np.ndarray, torch.Tensor)):
        temperatures = np.asarray(temperatures, dtype=float).reshape(-1).tolist()
    if not isinstance(temperatures, Sequence) or len(temperatures) == 0:
        raise ValueError(f"temperatures must be a non-empty sequence of numbers > 0, got {temperatures!r}.")
    temps = [
        check_temperature(t.item() if isinstance(t, np.generic) else t, "each temperature")
        for t in temperatures
    ]
    log_p = torch.log_softmax(torch.cat([z.double() / t for t in temps]), dim=1)  # (len(T), K), stable
    probs = log_p.exp()  # softmax(z / T), each row sums to 1
    entropy = -(probs * log_p).sum(dim=1)  # (len(T),)
    return temps, probs.numpy(), entropy.numpy()


def _class_names(
    class_names: Sequence[str] | None, k: int, what: str = "class_names", of: str = "classes"
) -> list[str]:
    if class_names is None:
        return [str(i) for i in range(k)]
    if len(class_names) != k:
        raise ValueError(f"{what} has {len(class_names)} names but the logits have {k} {of}.")
    return [str(c) for c in class_names]


# -------------------------------------------------------------------------------------------- history
def plot_history(
    histories: Mapping[str, Any] | Any, metrics: Sequence[str] | str = ("train_loss", "val_accuracy")
) -> Figure:
    """Learning curves: one panel per metric, one line per run.

    ``histories``: ``{run name: history}`` where a history is a list of per-epoch dicts (keys such as
    ``epoch``, ``train_loss``, ``val_accuracy``) or an object with ``.records`` (``labkit.History``); a single
    history is accepted too. Epochs come from the ``epoch`` key (1, 2, ... when absent).
    """
    if not isinstance(histories, Mapping):
        histories = {"run": histories}
    if not histories:
        raise ValueError("plot_history needs at least one history, got an empty dict.")
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    if not metrics:
        raise ValueError("plot_history needs at least one metric name.")
    runs = {str(name): _records(h, str(name)) for name, h in histories.items()}
    available = sorted({k for recs in runs.values() for r in recs for k in r} - {"epoch"})
    missing = [m for m in metrics if m not in available]
    if missing:
        raise ValueError(
            f"metric(s) {missing} not in any history; available: {', '.join(available) or 'none'}."
        )

    fig, axes = _new_axes(
        ncols=len(metrics), figsize=(4.8 * len(metrics), 3.6), squeeze=False, layout="constrained"
    )
    for ax, metric in zip(axes[0], metrics):
        for name, recs in runs.items():
            bad = [r[metric] for r in recs if r.get(metric) is not None and not _is_number(r[metric])]
            if bad:
                raise ValueError(f"history {name!r}: {metric!r} must hold numbers, got {bad[:3]}.")
            points = [
                (r.get("epoch", i + 1), r[metric]) for i, r in enumerate(recs) if r.get(metric) is not None
            ]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o", markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} per epoch ({_direction(metric)})")
        ax.grid(alpha=0.3)
        if len(runs) > 1:
            ax.legend(fontsize="small")
    return fig


# ---------------------------------------------------------------------------------------- temperature
def plot_temperature(
    logits: Any,
    temperatures: Sequence[float] = (1, 2, 4, 8),
    class_names: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Grouped bars of ``softmax(z / T)`` for one example's logits ``(K,)`` (or ``(1, K)``), one colour per T.

    Raising T moves probability from the arg-max class onto the others (the "dark knowledge" a student
    learns from); the legend gives each distribution's entropy in nats (at most ``ln K``, the uniform).
    """
    temps, probs, entropy = _softened(logits, temperatures)  # len(T), (len(T), K), (len(T),)
    n_t, k = probs.shape
    names = _class_names(class_names, k)
    fig, ax = _new_axes(ax, figsize=(max(5.0, 0.55 * k * max(1, n_t) ** 0.5 + 2), 3.6), layout="constrained")
    width = 0.8 / n_t
    x = np.arange(k)
    for i, (t, p, h) in enumerate(zip(temps, probs, entropy)):
        ax.bar(x + (i - (n_t - 1) / 2) * width, p, width=width, label=f"T = {t:g} (entropy {h:.2f} nats)")
    ax.set_xticks(x, names, rotation=45 if max(map(len, names)) > 3 else 0)
    ax.set_xlabel("class")
    ax.set_ylabel("probability softmax(z / T)")
    ax.set_ylim(0, 1)
    ax.set_title("Higher temperature spreads probability onto the other classes")
    ax.legend(fontsize="small", title=f"max entropy ln K = {math.log(k):.2f}", title_fontsize="small")
    return fig


def plot_gradient_scale(
    table: Any,
    ylabel: str = "gradient norm w.r.t. student logits",
    slope: float = -2.0,
    ax: Axes | None = None,
) -> Figure:
    """Each column of ``table`` against the temperature on log-log axes, with a dashed ``T**slope`` guide.

    ``table``: a ``DataFrame`` whose index holds the temperatures (all > 0) and whose columns hold positive
    values, e.g. the gradient norm of ``kd_kl_loss`` and of the same loss without the ``T**2`` factor. On
    log-log axes a flat line does not depend on T and a line parallel to the guide falls as ``T**slope``
    (``1/T**2`` by default, Hinton et al., 2015, Sec. 2). The guide starts at the first point of the last column.
    """
    if not hasattr(table, "columns") or len(table.columns) == 0 or len(table.index) < 2:
        raise ValueError("table must be a DataFrame indexed by temperature with >= 2 rows and >= 1 column.")
    try:
        temps = np.array([float(t) for t in table.index])
        values = table.to_numpy(dtype=float)  # (len(T), columns)
    except (TypeError, ValueError):
        raise ValueError(
            "table must hold numbers: temperatures in the index, positive values in the columns, got index "
            f"{list(table.index)[:4]} and dtypes {list(map(str, table.dtypes))[:4]}."
        ) from None
    temps = np.array([check_temperature(float(t), "each temperature (the index)") for t in temps])
    if isinstance(slope, bool) or not isinstance(slope, (int, float)) or not math.isfinite(slope):
        raise ValueError(f"slope must be a finite number (the guide's power of T, e.g. -2), got {slope!r}.")
    if not (np.isfinite(values).all() and (values > 0).all()):
        raise ValueError("plot_gradient_scale needs finite values > 0 (they are drawn on a log scale).")
    fig, ax = _new_axes(ax, figsize=(5.4, 3.8), layout="constrained")
    for j, name in enumerate(table.columns):
        ax.plot(temps, values[:, j], marker="o", label=str(name))
    guide = values[0, -1] * (temps / temps[0]) ** slope
    ax.plot(temps, guide, ls="--", color="grey", lw=1, label=f"guide: proportional to T^{slope:g}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("temperature T (log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"Flat: independent of T; along the guide: T^{slope:g}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    return fig


# ----------------------------------------------------------------------------------------- comparison
def plot_comparison(
    table: Any,
    metric: str,
    by: str | Sequence[str],
    title: str | None = None,
    scale: float = 100,
    digits: int = 1,
    ax: Axes | None = None,
) -> Figure:
    """Bars of the mean of ``metric`` per group with ± sample-std error bars, annotated ``"mean ± std"``.

    ``table``: one row per run (a ``DataFrame`` or a list of dicts, e.g. columns ``method``, ``seed``,
    ``accuracy``), grouped by ``by`` (groups in order of first appearance). Values are multiplied by
    ``scale`` (100: fractions shown in percent; use 1 for losses). Bars start at 0, so read small
    differences from the annotations and the error bars, not from the bar heights.
    """
    if (
        isinstance(scale, bool)
        or not isinstance(scale, (int, float))
        or not math.isfinite(scale)
        or scale <= 0
    ):
        raise ValueError(
            f"scale must be a finite number > 0 (100: fractions shown in percent, 1: as they are), got {scale!r}."
        )
    if not isinstance(metric, str):
        raise ValueError(f"metric must be one column name such as 'accuracy', got {metric!r}.")
    summary = summarize(table, by, [metric], scale={metric: scale}, digits=digits)
    empty = [str(g) for g, m in zip(summary.index, summary[f"{metric}_mean"]) if math.isnan(m)]
    if empty:
        raise ValueError(
            f"{metric!r} has no values (only NaN) for group(s) {empty}: nothing to draw for them."
        )
    labels = [" / ".join(map(str, i)) if isinstance(i, tuple) else str(i) for i in summary.index]
    mean = summary[f"{metric}_mean"].to_numpy() * scale
    std = summary[f"{metric}_std"].to_numpy() * scale
    by_label = by if isinstance(by, str) else " / ".join(by)
    fig, ax = _new_axes(ax, figsize=(max(4.5, 1.1 * len(labels) + 2), 3.8), layout="constrained")
    x = np.arange(len(labels))
    ax.bar(x, mean, yerr=std, capsize=5, color=[f"C{i % 10}" for i in range(len(labels))], alpha=0.85)
    for xi, m, s, text in zip(x, mean, std, summary[metric]):
        ax.annotate(text, (xi, m + (0 if math.isnan(s) else s)), xytext=(0, 3), textcoords="offset points",
                    ha="center", va="bottom", fontsize="small")  # fmt: skip
    ax.set_xticks(x, labels, rotation=30 if max(map(len, labels)) > 10 else 0)
    ax.set_xlabel(by_label)
    unit = " (%)" if scale == 100 else (f" (x {scale:g})" if scale != 1 else "")
    ax.set_ylabel(f"{metric}{unit}")
    top = np.nanmax(mean + np.nan_to_num(std)) if len(mean) else 1.0
    if np.isfinite(top) and top > 0:
        ax.set_ylim(0, top * 1.15)  # room for the annotations
    n = summary["n"]
    runs = f"{n.iloc[0]} runs" if n.nunique() == 1 else f"{n.min()}-{n.max()} runs"
    ax.set_title(title or f"{metric} by {by_label} ({_direction(metric)}); error bars: ± std over {runs}")
    return fig


# ---------------------------------------------------------------------------------------- reliability
def plot_reliability(
    logits: torch.Tensor,
    targets: torch.Tensor,
    n_bins: int = 15,
    label: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Reliability diagram: accuracy against mean confidence per confidence bin, with the diagonal.

    Points below the diagonal are overconfident bins (confidence higher than accuracy). Shapes: ``logits``
    ``(N, K)``, ``targets`` ``(N,)`` (-1 ignored). Pass the same ``ax`` again to overlay several models; each
    line's legend entry carries its ECE. Returns the figure that holds ``ax``.
    """
    bins = reliability_bins(logits, targets, n_bins)
    ece = expected_calibration_error(logits, targets, n_bins)
    fig, ax = _new_axes(ax, figsize=(4.6, 4.4), layout="constrained")
    if not any(line.get_gid() == _DIAGONAL_GID for line in ax.get_lines()):
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfectly calibrated", gid=_DIAGONAL_GID)
    full = bins["counts"] > 0
    ax.plot(bins["confidence"][full], bins["accuracy"][full], marker="o", markersize=4,
            label=f"{label or 'model'} (ECE {ece:.3f})")  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("confidence (mean max-softmax probability per bin)")
    ax.set_ylabel("accuracy in bin")
    ax.set_title("Reliability: points below the diagonal are overconfident")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    return fig


# ------------------------------------------------------------------------------------------ attention
def _spatial_attention(maps: Any, name: str, n: int) -> np.ndarray:
    """``(N, C, h, w)`` features -> their attention maps ``(N, h, w)``; ``(N, h, w)`` maps pass through."""
    m = _as_float_tensor(maps, f"maps[{name!r}]")
    check_finite(m, f"maps[{name!r}]")
    if m.dim() == 4:
        m = attention_map(m).view(m.shape[0], *m.shape[2:])  # (N, h*w) -> (N, h, w), each L2-normalised
    if m.dim() != 3 or m.shape[0] < n:
        raise ValueError(
            f"maps[{name!r}] must be feature maps (N, C, h, w) or attention maps (N, h, w) with at least "
            f"{n} rows (one per image), got shape {tuple(m.shape)}."
        )
    return m[:n].numpy()


def plot_attention_maps(images: torch.Tensor, maps: Mapping[str, Any], title: str | None = None) -> Figure:
    """A grid with one row per image: the image, then one attention map per model (one column each).

    ``images``: ``(N, C, H, W)`` (normalised inputs are rescaled to [0, 1] per image for display).
    ``maps``: ``{column title: tensor}`` with feature maps ``(N, C_j, h, w)`` (turned into attention maps
    ``sum_c |A_c|^2``, L2-normalised, as in Zagoruyko & Komodakis, 2017) or ready maps ``(N, h, w)``.
    Each row shares one colour scale, so brighter means more attention *relative to the other models*.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[0] == 0:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a non-empty batch (N, C, H, W), got {shape}.")
    if not isinstance(maps, Mapping) or not maps:
        raise ValueError("maps must be a non-empty dict {column title: feature or attention maps}.")
    check_finite(images, "images")
    n = images.shape[0]
    cols = {str(k): _spatial_attention(v, str(k), n) for k, v in maps.items()}
    imgs = images.detach().cpu().float()
    lo = imgs.amin(dim=(1, 2, 3), keepdim=True)
    imgs = ((imgs - lo) / (imgs.amax(dim=(1, 2, 3), keepdim=True) - lo).clamp_min(1e-8)).permute(0, 2, 3, 1)
    fig, axes = _new_axes(nrows=n, ncols=len(cols) + 1, figsize=(1.9 * (len(cols) + 1), 1.9 * n + 0.6),
                          squeeze=False, layout="constrained")  # fmt: skip
    for i in range(n):
        img = imgs[i].numpy()
        axes[i, 0].imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray")
        axes[i, 0].set_ylabel(f"image {i}")
        vmax = max(float(c[i].max()) for c in cols.values())
        for j, c in enumerate(cols.values(), start=1):
            axes[i, j].imshow(c[i], cmap="inferno", vmin=0.0, vmax=vmax)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("input")
    for j, name in enumerate(cols, start=1):
        axes[0, j].set_title(name, fontsize="small")
    fig.suptitle(title or "Spatial attention maps (brighter = more activation energy; one scale per row)")
    return fig


# ---------------------------------------------------------------------------------------- teacher mix
_SPACES = {"prob": "mixture of probabilities", "logit": "average of logits"}


def _teacher_mix(
    teacher_logits: Any, weights: Any = None, temperature: float = 1.0
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """One example's stack ``(K, C)`` (or ``(1, K, C)``, ``-inf`` = a class the teacher does not know) ->
    normalised weights ``(K,)``, each teacher's ``softmax(z / T)`` ``(K, C)`` and the fusions ``{space: (C,)}``.
    ``weights`` (any non-negative numbers, not all 0) are divided by their sum; None = uniform."""
    z = _as_float_tensor(teacher_logits, "teacher_logits")
    z = z[0] if z.dim() == 3 and z.shape[0] == 1 else z
    if z.dim() != 2 or z.shape[1] < 2:
        raise ValueError(
            f"teacher_logits must be one example's stack (teachers, classes), got shape {tuple(z.shape)}; "
            "pick one row of a (N, K, C) stack, e.g. stack[0]."
        )
    check_finite(z, "teacher_logits", allow_neg_inf=True)  # -inf: a class that teacher does not know
    blind = torch.isneginf(z).all(dim=1).nonzero().flatten().tolist()
    if blind:
        raise ValueError(f"teacher_logits: teacher(s) {blind} are -inf for every class (they know no class).")
    k = z.shape[0]
    w = (
        torch.full((k,), 1.0 / k)
        if weights is None
        else _as_float_tensor(weights, "weights", torch.float64).reshape(-1)
    )
    if w.shape != (k,) or not torch.isfinite(w).all() or (w < 0).any() or float(w.sum()) <= 0:
        raise ValueError(
            f"weights must be {k} non-negative numbers, not all 0 (one per teacher), got {weights!r}."
        )
    w = (w / w.sum()).float().unsqueeze(0)  # (1, K)
    check_weights(w, 1, k)
    zt = z.unsqueeze(0) / check_temperature(temperature)  # (1, K, C)
    probs = torch.softmax(zt, dim=-1)[0].numpy()  # (K, C); 0 where a teacher does not know the class
    fused = {s: fuse_teachers(zt, w, space=s).exp()[0].numpy() for s in _SPACES}
    return w[0].numpy(), probs, fused


def plot_teacher_mix(
    teacher_logits: Any,
    weights: Any = None,
    class_names: Sequence[str] | None = None,
    teacher_names: Sequence[str] | None = None,
    temperature: float = 1.0,
    ax: Axes | None = None,
) -> Figure:
    """Bars: each teacher's ``softmax(z_k / T)`` for one example (``(K, C)``, ``-inf`` for classes a teacher
    does not know, drawn as 0); markers: the weighted fusions in probability space (``sum_k w_k p_k``) and in
    logit space (``softmax(sum_k w_k z_k)``, each class averaged over the teachers that know it)."""
    w, probs, fused = _teacher_mix(teacher_logits, weights, temperature)
    k, c = probs.shape
    names = _class_names(class_names, c)
    tnames = (
        _class_names(teacher_names, k, "teacher_names", "teachers")
        if teacher_names is not None
        else [f"teacher {i}" for i in range(k)]
    )
    fig, ax = _new_axes(ax, figsize=(max(6.0, 0.7 * c + 2), 3.8), layout="constrained")
    x, width = np.arange(c), 0.8 / k
    for i in range(k):
        ax.bar(
            x + (i - (k - 1) / 2) * width,
            probs[i],
            width=width,
            alpha=0.45,
            label=f"{tnames[i]} (w = {w[i]:.2f})",
        )
    for marker, (space, what) in zip(("o", "D"), _SPACES.items()):
        ax.plot(x, fused[space], ls="none", marker=marker, color="black" if space == "prob" else "crimson",
                markersize=7, label=f"fused: {what}")  # fmt: skip
    ax.set_xticks(x, names, rotation=45 if max(map(len, names)) > 3 else 0)
    ax.set_xlabel("class")
    ax.set_ylabel(f"probability (T = {temperature:g})")
    ax.set_ylim(0, 1.05)
    ax.set_title("Teachers (bars) and their weighted fusion (markers)")
    ax.legend(fontsize="small", loc="upper right")
    return fig
