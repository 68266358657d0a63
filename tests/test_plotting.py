"""Plotting helpers and widgets: each returns a labelled Figure / widget; the softened table is sound."""

import math

import matplotlib

matplotlib.use("Agg")

import ipywidgets as widgets  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from labkit.plotting import (
    plot_attention_maps,
    plot_comparison,
    plot_gradient_scale,
    plot_history,
    plot_reliability,
    plot_temperature,
)  # noqa: E402
from labkit.widgets import softened_table, temperature_explorer  # noqa: E402

LOGITS = torch.tensor([6.0, 2.0, 1.0, 0.5, -1.0])


def assert_labelled(fig):
    assert isinstance(fig, Figure)
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()


def test_figures_are_detached_from_pyplot():
    before = plt.get_fignums()
    plot_temperature(LOGITS)
    assert plt.get_fignums() == before  # a notebook shows the returned figure once; sweeps do not leak


class FakeHistory:
    def __init__(self, records):
        self.records = records


def test_plot_history_lists_and_history_objects():
    run = [{"epoch": e, "train_loss": 1 / e, "val_accuracy": 0.5 + 0.1 * e} for e in (1, 2, 3)]
    fig = plot_history({"scratch": run, "kd": FakeHistory(run)})
    assert_labelled(fig)
    assert len(fig.axes) == 2 and len(fig.axes[0].get_lines()) == 2
    assert "lower is better" in fig.axes[0].get_title() and "higher is better" in fig.axes[1].get_title()
    single = plot_history(run, metrics="train_loss")  # one history, one metric
    assert len(single.axes) == 1
    with pytest.raises(ValueError, match="available: train_loss, val_accuracy"):
        plot_history({"a": run}, metrics=("val_ece",))
    with pytest.raises(ValueError, match="per-epoch dicts"):
        plot_history({"a": 3.0})


def test_plot_temperature_bars_and_validation():
    temps = (1, 2, 4, 8)
    fig = plot_temperature(LOGITS, temps, class_names=list("abcde"))
    assert_labelled(fig)
    ax = fig.axes[0]
    assert len(ax.patches) == len(temps) * len(LOGITS)
    assert len(ax.get_legend().get_texts()) == len(temps)
    assert isinstance(plot_temperature(LOGITS[None].numpy(), (3.0,)), Figure)  # (1, K) arrays are fine
    with pytest.raises(ValueError, match="one example"):
        plot_temperature(torch.randn(2, 5))
    with pytest.raises(ValueError, match="temperature"):
        plot_temperature(LOGITS, (1, 0))
    with pytest.raises(ValueError, match="class_names"):
        plot_temperature(LOGITS, class_names=["a", "b"])


def test_plot_comparison_error_bars_and_annotations():
    table = pd.DataFrame(
        [
            {"method": m, "seed": s, "accuracy": base + 0.01 * s}
            for m, base in (("ce", 0.8), ("kd", 0.85))
            for s in range(3)
        ]
    )
    fig = plot_comparison(table, "accuracy", by="method")
    assert_labelled(fig)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["ce", "kd"]
    assert [t.get_text() for t in ax.texts] == ["81.0 ± 1.0", "86.0 ± 1.0"]
    assert ax.get_ylabel() == "accuracy (%)" and "3 runs" in ax.get_title()
    custom = plot_comparison(table.to_dict("records"), "accuracy", by=["method", "seed"], title="t", scale=1)
    assert custom.axes[0].get_title() == "t" and len(custom.axes[0].texts) == 6
    with pytest.raises(ValueError, match="not in the records"):
        plot_comparison(table, "agreement", by="method")


def test_plot_reliability_overlays_on_one_axis():
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 4, (300,), generator=g)
    sharp, soft = 4 * torch.randn(300, 4, generator=g), 0.5 * torch.randn(300, 4, generator=g)
    fig = plot_reliability(sharp, targets, label="sharp")
    assert_labelled(fig)
    plot_reliability(soft, targets, label="soft", ax=fig.axes[0])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0] == "perfectly calibrated" and len(labels) == 3  # one diagonal, two models
    assert labels[1].startswith("sharp (ECE ") and labels[2].startswith("soft (ECE ")
    with pytest.raises(ValueError, match="batch size"):
        plot_reliability(sharp, targets[:10])


def test_softened_table_rows_sum_to_one_and_entropy_grows():
    temps = (0.5, 1, 2, 4, 8, 100)
    table = softened_table(LOGITS, temps, class_names=list("abcde"))
    assert list(table.index) == list(temps) and table.index.name == "T"
    np.testing.assert_allclose(table[list("abcde")].sum(axis=1), 1.0, atol=1e-12)
    assert table["entropy"].is_monotonic_increasing
    assert table["entropy"].iloc[-1] == pytest.approx(math.log(5), abs=0.01)  # T -> inf: uniform
    t1 = table.loc[1, list("abcde")].to_numpy()
    np.testing.assert_allclose(t1, torch.softmax(LOGITS.double(), 0).numpy(), rtol=1e-6)
    assert list(softened_table(LOGITS[None]).columns) == ["0", "1", "2", "3", "4", "entropy"]


def test_temperature_explorer_builds_and_redraws():
    box = temperature_explorer(LOGITS, class_names=list("abcde"))
    assert isinstance(box, widgets.VBox)
    slider, out = box.children
    assert isinstance(slider, widgets.FloatLogSlider) and isinstance(out, widgets.Output)
    assert slider.value == pytest.approx(1.0)  # starts at the plain softmax
    assert [o["output_type"] for o in out.outputs] == ["stream", "display_data"]
    assert out.outputs[0]["text"].startswith("T = 1.00: entropy")
    slider.value = 4.0  # triggers a redraw
    assert slider.value == pytest.approx(4.0)
    assert len(out.outputs) == 2 and out.outputs[0]["text"].startswith("T = 4.00: entropy")
    assert out.msg_id == "", "drawn through the widget's state, never by capturing output (widgets._show)"
    with pytest.raises(ValueError, match="low < high"):
        temperature_explorer(LOGITS, temperatures=(5, 2))
    with pytest.raises(ValueError, match="one example"):
        temperature_explorer(torch.randn(3, 5))
    with pytest.raises(ValueError, match="class_names"):
        temperature_explorer(LOGITS, class_names=["a"])


def test_temperatures_as_arrays():
    table = softened_table(LOGITS, np.array([1, 2]))
    assert list(table.index) == [1.0, 2.0]
    assert len(softened_table(LOGITS, 3.0)) == 1
    assert len(softened_table(LOGITS, (np.float32(2.0), np.int64(4))).index) == 2


def test_plot_attention_maps_grid_from_features_and_maps():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(3, 1, 8, 8, generator=g)
    feats = torch.randn(5, 6, 4, 4, generator=g)  # more rows than images: the first 3 are used
    fig = plot_attention_maps(images, {"teacher": feats, "ready map": torch.rand(3, 4, 4, generator=g)})
    assert isinstance(fig, Figure) and fig.get_suptitle()
    assert len(fig.axes) == 3 * 3
    assert [fig.axes[j].get_title() for j in range(3)] == ["input", "teacher", "ready map"]
    assert [fig.axes[3 * i].get_ylabel() for i in range(3)] == ["image 0", "image 1", "image 2"]
    shown = fig.axes[1].images[0].get_array()  # the attention map of feats[0]: L2-normalised (4, 4)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(shown)), 1.0, rtol=1e-5)
    np.testing.assert_allclose(
        np.asarray(shown), feats[0].pow(2).mean(0).div(feats[0].pow(2).mean(0).norm()).numpy(), rtol=1e-5
    )
    rgb = plot_attention_maps(torch.randn(1, 3, 8, 8), {"m": torch.rand(1, 2, 2)}, title="t")
    assert rgb.get_suptitle() == "t"
    with pytest.raises(ValueError, match="at least 3 rows"):
        plot_attention_maps(images, {"short": torch.rand(2, 4, 4)})
    with pytest.raises(ValueError, match="non-empty dict"):
        plot_attention_maps(images, {})
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        plot_attention_maps(torch.randn(8, 8), {"m": torch.rand(1, 4, 4)})


def test_plot_gradient_scale_log_axes_guide_and_validation():
    table = pd.DataFrame(
        {"with T^2": [1.0, 1.1, 1.05], "without T^2": [1.0, 0.275, 0.066]},
        index=pd.Index([1, 2, 4], name="T"),
    )
    fig = plot_gradient_scale(table)
    assert_labelled(fig)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    lines = ax.get_lines()
    assert len(lines) == 3  # two columns + the guide
    # the guide falls as T^-2 from the first point of the last column
    np.testing.assert_allclose(lines[-1].get_ydata(), [1.0, 0.25, 0.0625])
    with pytest.raises(ValueError, match="> 0"):
        plot_gradient_scale(table * 0)
    with pytest.raises(ValueError, match=">= 2 rows"):
        plot_gradient_scale(table.iloc[:1])
