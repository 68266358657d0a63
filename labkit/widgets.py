"""Interactive explorers for the lessons (ipywidgets), each with a static twin for headless runs.

``temperature_explorer`` is a slider over T that redraws a teacher's softened distribution
``softmax(z / T)``; ``softened_table`` gives the same numbers as a table, which is what a CI run or a
rendered notebook without a kernel shows. ``teacher_mixer`` has one slider per teacher weight and redraws the
fused distribution of several teachers on a chosen example; ``mixer_table`` is its static twin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

from ._validate import check_temperature
from .plotting import (
    _SPACES,
    _as_float_tensor,
    _as_vector_logits,
    _class_names,
    _softened,
    _teacher_mix,
    plot_teacher_mix,
    plot_temperature,
)

__all__ = ["mixer_table", "softened_table", "teacher_mixer", "temperature_explorer"]


def softened_table(
    logits: Any, temperatures: Sequence[float] = (1, 2, 4, 8), class_names: Sequence[str] | None = None
) -> pd.DataFrame:
    """``softmax(z / T)`` of one example's logits ``(K,)`` or ``(1, K)``, one row per temperature.

    Columns: one per class (each row sums to 1) and ``entropy`` in nats (grows with T towards ``ln K``,
    the entropy of the uniform distribution). Index: ``T``.
    """
    temps, probs, entropy = _softened(logits, temperatures)  # len(T), (len(T), K), (len(T),)
    table = pd.DataFrame(
        probs, columns=_class_names(class_names, probs.shape[1]), index=pd.Index(temps, name="T")
    )
    table["entropy"] = entropy
    return table


def _show(out: widgets.Output, lines: list[str], fig: Any) -> None:
    """Make ``out`` show ``lines`` and then ``fig``, by setting the widget's ``outputs`` (its state), not by
    capturing printed output into it (``with out:`` and ``clear_output(wait=True)``). A headless runner
    (papermill, nbconvert, an autograder) answers captured output by sending the widget's new state back to the
    kernel while the cell runs, and that exchange can leave the cell waiting forever (nbclient#312,
    nbconvert#2029): this course's CI saw it. A live notebook shows the same thing either way."""
    out.outputs = ()
    if lines:
        out.append_stdout("\n".join(lines) + "\n")
    out.append_display_data(fig)


def temperature_explorer(
    logits: Any, class_names: Sequence[str] | None = None, temperatures: tuple[float, float] = (0.5, 20)
) -> widgets.VBox:
    """A log-scale slider for T over ``temperatures = (low, high)`` and a bar chart of ``softmax(z / T)``.

    ``logits``: one example's teacher logits, ``(K,)`` or ``(1, K)``. Each move of the slider redraws the
    chart and prints the entropy (nats) and the arg-max probability. Returns a ``VBox`` whose children are
    the slider and the output area; for a static view use ``softened_table``.
    """
    z = _as_vector_logits(logits)  # (1, K), validated
    names = _class_names(class_names, z.shape[1])
    if not isinstance(temperatures, Sequence) or len(temperatures) != 2:
        raise ValueError(f"temperatures must be a (low, high) pair, e.g. (0.5, 20), got {temperatures!r}.")
    low, high = (check_temperature(t, "each bound of temperatures") for t in temperatures)
    if not low < high:
        raise ValueError(f"temperatures must be (low, high) with low < high, got {temperatures!r}.")
    start = 1.0 if low <= 1.0 <= high else math.sqrt(low * high)  # T = 1, the plain softmax, when in range
    slider = widgets.FloatLogSlider(
        value=start,
        base=10,
        min=math.log10(low),
        max=math.log10(high),
        step=0.01,
        description="T",
        readout_format=".2f",
        continuous_update=False,
    )
    out = widgets.Output()
    max_entropy = math.log(z.shape[1])

    def redraw(t: float) -> None:
        _, probs, entropy = _softened(z, (t,))  # (1, K), (1,)
        line = (
            f"T = {t:.2f}: entropy {entropy[0]:.3f} nats (uniform: ln K = {max_entropy:.3f}); "
            f"top class {names[probs[0].argmax()]!r} has p = {probs[0].max():.3f}"
        )
        _show(out, [line], plot_temperature(z, (t,), names))

    slider.observe(lambda change: redraw(change["new"]), names="value")
    redraw(start)
    return widgets.VBox([slider, out])


def _teacher_names(teacher_names: Sequence[str] | None, k: int) -> list[str]:
    return _class_names(teacher_names, k) if teacher_names is not None else [f"teacher {i}" for i in range(k)]


def mixer_table(
    teacher_logits: Any,
    weights: Any = None,
    class_names: Sequence[str] | None = None,
    teacher_names: Sequence[str] | None = None,
    temperature: float = 1.0,
) -> pd.DataFrame:
    """One example's teachers and their fusions as a table: one row per teacher (``softmax(z_k / T)``, 0 for
    classes it does not know) and one per fusion space (``fused (prob)``, ``fused (logit)``); each row sums to
    1. Columns: the classes, then ``weight`` (the normalised teacher weight; NaN on the fused rows).
    ``teacher_logits``: ``(K, C)`` or ``(1, K, C)``; ``weights``: K non-negative numbers (None = uniform)."""
    w, probs, fused = _teacher_mix(teacher_logits, weights, temperature)
    k, c = probs.shape
    rows = np.vstack([probs, *fused.values()])
    index = _teacher_names(teacher_names, k) + [f"fused ({s})" for s in fused]
    table = pd.DataFrame(rows, columns=_class_names(class_names, c), index=index)
    table["weight"] = [*w, *([float("nan")] * len(fused))]
    return table


def teacher_mixer(
    teacher_stack: Any,
    class_names: Sequence[str] | None = None,
    teacher_names: Sequence[str] | None = None,
    temperature: float = 1.0,
) -> widgets.VBox:
    """Mix K teachers by hand: an example slider, one weight slider per teacher (0..1, normalised to sum 1)
    and a chart of every teacher's distribution with the fused ones (probability and logit space).

    ``teacher_stack``: ``(N, K, C)`` teacher logits in the student's label space, e.g. from
    ``TeacherEnsemble.predict_stack`` (``-inf`` for classes a teacher does not know). Returns a ``VBox``
    (children: example slider, a box of weight sliders, the output area); ``mixer_table`` is the static view.
    """
    z = _as_float_tensor(teacher_stack, "teacher_stack")
    if z.dim() != 3 or z.shape[0] == 0 or z.shape[1] == 0:
        raise ValueError(
            f"teacher_stack must be a (examples, teachers, classes) stack, got shape {tuple(z.shape)}; "
            "build it with TeacherEnsemble.predict_stack(x) or lk.stack_teacher_logits."
        )
    n, k, c = z.shape
    names, tnames = _class_names(class_names, c), _teacher_names(teacher_names, k)
    check_temperature(temperature)
    example = widgets.IntSlider(value=0, min=0, max=n - 1, description="example", continuous_update=False)
    sliders = [
        widgets.FloatSlider(
            value=1.0, min=0.0, max=1.0, step=0.05, description=t[:12], continuous_update=False
        )
        for t in tnames
    ]
    out = widgets.Output()

    def redraw(_: Any = None) -> None:
        raw = [s.value for s in sliders]
        weights = raw if sum(raw) > 0 else None  # all sliders at 0: uniform, said so below
        table = mixer_table(z[example.value], weights, names, tnames, temperature)
        lines = []
        for space, what in _SPACES.items():
            row = table.loc[f"fused ({space})", names]
            lines.append(f"{what}: top class {row.idxmax()!r} with p = {row.max():.3f}")
        if weights is None:
            lines.append("every weight is 0: showing uniform weights")
        _show(out, lines, plot_teacher_mix(z[example.value], weights, names, tnames, temperature))

    for w in (example, *sliders):
        w.observe(redraw, names="value")
    redraw()
    return widgets.VBox([example, widgets.VBox(sliders), out])
