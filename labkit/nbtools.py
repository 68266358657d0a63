"""Small notebook helpers: stated expectations (what nbval compares), source display, timing."""

from __future__ import annotations

import inspect
import math
import time
from typing import Any

__all__ = ["Timer", "expect", "expect_between", "hardware", "show_source"]


def _fmt(value: Any, digits: int) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def expect(what: str, value: Any, expected: Any, tol: float = 1e-6, digits: int = 4) -> None:
    """State an expectation and check it: prints ``OK  what: expected`` or raises with the measured value.

    Numbers compare within ``tol`` (absolute); anything else compares with ``==`` (shapes, strings).
    The printed line depends only on ``expected`` and ``what`` when the check passes, so nbval can compare
    it across machines and profiles. Returns nothing, so an expectation cell shows only the OK lines.
    """
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        ok = isinstance(value, (int, float)) and math.isclose(float(value), float(expected), abs_tol=tol)
    else:
        ok = value == expected
    if not ok:
        raise AssertionError(f"expectation failed: {what}: got {_fmt(value, digits)}, expected {expected}")
    print(
        f"OK  {what}: {_fmt(expected, digits)} (tolerance {tol:g})"
        if isinstance(expected, float)
        else f"OK  {what}: {expected}"
    )


def expect_between(what: str, value: float, low: float, high: float) -> None:
    """Check that a measured number lies in ``[low, high]`` (e.g. a teacher's accuracy band)."""
    if not (low <= value <= high):
        raise AssertionError(f"expectation failed: {what} = {value:.4f}, expected within [{low}, {high}]")
    print(f"OK  {what} within [{low}, {high}]")


def show_source(obj: Any) -> None:
    """Print the source of a labkit function or class, so a lesson shows the code it uses without copying it."""
    try:
        from IPython.display import Markdown, display

        display(Markdown(f"```python\n{inspect.getsource(obj)}```"))
    except ImportError:  # plain Python
        print(inspect.getsource(obj))


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    def __enter__(self) -> Timer:
        self._t0 = time.perf_counter()
        self.seconds = float("nan")
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._t0


def hardware() -> str:
    """One line naming the machine a number was measured on (CPU model and cores, GPU if any)."""
    import os
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    text = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"
    if torch.cuda.is_available():
        text = f"{torch.cuda.get_device_name(0)} GPU; " + text
    return text
