"""Interactive explorers for the lessons (ipywidgets), each with a static twin for headless runs.

``temperature_explorer`` is a slider over T that redraws a teacher's softened distribution
``softmax(z / T)``; ``softened_table`` gives the same numbers as a table, which is what a CI run or a
rendered notebook without a kernel shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import pandas as pd
from IPython.display import display

from ._validate import check_temperature
from .plotting import _as_vector_logits, _class_names, _softened, plot_temperature

__all__ = ["softened_table", "temperature_explorer"]


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
        fig = plot_temperature(z, (t,), names)
        with out:
            out.clear_output(wait=True)
            print(
                f"T = {t:.2f}: entropy {entropy[0]:.3f} nats (uniform: ln K = {max_entropy:.3f}); "
                f"top class {names[probs[0].argmax()]!r} has p = {probs[0].max():.3f}"
            )
            display(fig)

    slider.observe(lambda change: redraw(change["new"]), names="value")
    redraw(start)
    return widgets.VBox([slider, out])
