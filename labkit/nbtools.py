"""Small notebook helpers: stated expectations (what nbval compares), recorded results, source display, timing."""

from __future__ import annotations

import inspect
import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "RECORD_MIME",
    "Timer",
    "describe_record",
    "expect",
    "expect_between",
    "hardware",
    "read_records",
    "record",
    "redact_local_paths",
    "run_records",
    "show_source",
    "use_records",
]

# Key results travel inside the executed notebook (papermill/scrapbook-style): one display output per record
# with this MIME type next to a text/plain line. tools/run_course.py --record reads them back into
# results/<profile>/<notebook>.json, from which results/REFERENCE.md is generated.
RECORD_MIME = "application/vnd.kdlab.record+json"


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
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(tol) or tol < 0:
        raise ValueError(f"tol must be a finite number >= 0 (an absolute tolerance), got {tol!r}.")
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
    for name, bound in (("low", low), ("high", high)):
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or math.isnan(bound):
            raise ValueError(f"{name} must be a number (a bound of the expected band), got {bound!r}.")
    if low > high:
        raise ValueError(f"low must be <= high, got the band [{low}, {high}]: swap the bounds.")
    if not (low <= value <= high):
        raise AssertionError(f"expectation failed: {what} = {value:.4f}, expected within [{low}, {high}]")
    print(f"OK  {what} within [{low}, {high}]")


def show_source(obj: Any) -> None:
    """Print the source of a labkit function or class, so a lesson shows the code it uses without copying it."""
    if not (
        inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj) or inspect.ismodule(obj)
    ):
        raise TypeError(f"show_source needs a function, class, method or module, got {type(obj).__name__}.")
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


def _number(value: Any, what: str) -> float:
    if isinstance(value, (bool, str, bytes)):
        raise ValueError(f"{what} must be a number, got {value!r}.")
    if not isinstance(value, (int, float)):
        try:  # numpy / torch scalars
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be a number, got {value!r}.") from None
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value}.")
    return value


def record(name: str, value: Any, unit: str = "", headline: bool = False) -> None:
    """Record one key result of this notebook and show it on one line.

    ``value``: a plain number (a teacher's accuracy, a run time), or an ``lk.Verdict`` from
    ``Comparison.verdict``: then the record carries the metric, its direction (``better``), the difference,
    its 95 % interval, the number of paired seeds and test examples, and the effect, all from the course's one
    verdict rule. ``headline=True`` marks the comparison the lesson exists to show (the findings page lists
    headlines first). Run by ``make results``, every record lands in ``results/<profile>/<notebook>.json``.
    """
    from .verdicts import Verdict

    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a record needs a non-empty name, got {name!r}.")
    if not isinstance(unit, str):
        raise ValueError(f"unit must be a string such as '%' or 'points', got {unit!r}.")
    if not isinstance(headline, bool):
        raise ValueError(f"headline must be True or False, got {headline!r}.")
    if isinstance(value, Verdict):
        rec: dict[str, Any] = {"name": name.strip(), **value.to_dict(), "value": value.diff}
        del rec["diff"]
        rec["unit"] = unit or value.unit
    else:
        rec = {"name": name.strip(), "value": _number(value, f"record {name!r}: value"), "unit": unit}
    rec["headline"] = headline
    _RUN_RECORDS[rec["name"]] = {k: v for k, v in rec.items() if k != "name"}
    value_text, interval, shows = describe_record(rec)
    text = f"recorded  {rec['name']}: {value_text}" + (f" ({interval}: {shows})" if shows else "")
    try:
        from IPython import get_ipython

        in_kernel = get_ipython() is not None
    except ImportError:
        in_kernel = False
    if in_kernel:
        from IPython.display import display

        display({RECORD_MIME: rec, "text/plain": text}, raw=True)
    else:
        print(text)


_RUN_RECORDS: dict[str, dict] = {}  # what lk.record recorded in this process, by name (the last value wins)


def run_records() -> dict[str, dict]:
    """The records this kernel made with ``lk.record``, by name (a copy): what the reading exercises
    (``lk.checks.check_reading``) grade against. Each is a dict with ``value`` and ``unit`` and, for a
    comparison, its ``effect``, interval (``low``, ``high``), ``better``, arms ``a`` and ``b``, ``metric``."""
    import copy

    return copy.deepcopy(_RUN_RECORDS)


def use_records(source: Any) -> dict[str, dict]:
    """Replace this kernel's records by those of ``source``: a results file (``results/<profile>/<notebook>.json``),
    an executed notebook, or a dict name -> record. For grading reading answers against a recorded run, as the
    tests do with ``results/default/``. Returns the records now in use."""
    if isinstance(source, Mapping):
        found = dict(source)
    elif isinstance(source, (str, os.PathLike)) and str(source).endswith(".json"):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(
                f"source {path} does not exist: pass a results/<profile>/<notebook>.json file."
            )
        try:
            found = json.loads(path.read_text())["records"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(
                f"source {path} is not a results file (a JSON object with a 'records' entry), as `make results` "
                "writes."
            ) from None
    elif isinstance(source, (str, os.PathLike)) or hasattr(source, "cells"):
        found = read_records(source)
    else:
        raise TypeError(
            f"source must be a results .json file, an executed notebook or a dict, got {type(source).__name__}."
        )
    if not all(isinstance(k, str) and isinstance(v, Mapping) and "value" in v for k, v in found.items()):
        raise ValueError("source: every record must be a dict with a 'value', keyed by its name.")
    _RUN_RECORDS.clear()
    _RUN_RECORDS.update({k: dict(v) for k, v in found.items()})
    return run_records()


def describe_record(rec: dict) -> tuple[str, str, str]:
    """``(value, interval, what the run shows)`` of one record as text, as the record's own line and the
    results tables (``tools/run_course.py``) print it; the last two are empty for a plain number."""
    unit = rec.get("unit", "")
    if "effect" not in rec:
        return f"{rec['value']:.4g}{'' if unit in ('', '%', 'x') else ' '}{unit}", "", ""
    shows = {"gain": "a gain", "loss": "a loss", "none": "no measurable effect"}[rec["effect"]]
    if rec.get("low") is None:
        interval = "one seed: no interval"
    else:
        interval = f"95% interval {rec['low']:+.2f} to {rec['high']:+.2f}, {rec['n_seeds']} seeds"
    lower = ", lower is better" if rec.get("better") == "lower" else ""
    return f"{rec['metric']} {rec['value']:+.2f} {unit}".rstrip(), interval + lower, shows


def read_records(notebook: Any) -> dict[str, dict]:
    """The records of an executed notebook (a path or an ``nbformat`` node), by name, in cell order.
    A name recorded twice keeps its last value."""
    import nbformat

    if hasattr(notebook, "cells"):
        nb = notebook
    else:
        if not isinstance(notebook, (str, os.PathLike)):
            raise TypeError(
                f"notebook must be a path or an nbformat notebook, got {type(notebook).__name__}."
            )
        path = Path(notebook)
        if not path.is_file():
            raise FileNotFoundError(
                f"notebook {path} does not exist (or is not a file): pass an executed .ipynb."
            )
        try:
            nb = nbformat.read(str(path), as_version=4)
        except Exception as err:  # nbformat's NotJSONError, a validation error, a decoding error
            raise ValueError(
                f"notebook {path} is not a readable Jupyter notebook ({type(err).__name__}): pass an executed .ipynb."
            ) from None
    found: dict[str, dict] = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            rec = out.get("data", {}).get(RECORD_MIME)
            if isinstance(rec, dict) and "name" in rec:
                found[rec["name"]] = {k: v for k, v in rec.items() if k != "name"}
    return found


def redact_local_paths(text: str, root: str | Path | None = None) -> str:
    """``text`` with the machine's own folders replaced by the names a reader knows them by: the data dir as
    ``$LABKIT_DATA_DIR``, the cache as ``$LABKIT_CACHE_DIR`` (when those variables are set) and ``root`` (the
    repository) as ``<repo>``. Anything committed (results digests, BENCH.md) goes through it, so no path of
    the machine that ran it lands in the repository."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}.")
    for var in ("LABKIT_DATA_DIR", "LABKIT_CACHE_DIR"):
        value = os.environ.get(var)
        if value:
            for form in {value, str(Path(value).expanduser().resolve())}:
                if form.rstrip("/"):
                    text = text.replace(form.rstrip("/"), f"${var}")
    if root is not None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a folder path (str or Path) or None, got {type(root).__name__}.")
        text = text.replace(str(Path(root).resolve()), "<repo>")
    return text
