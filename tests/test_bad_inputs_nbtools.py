"""Bad inputs of the notebook helpers and widgets (lk.expect, lk.read_records, lk.show_source, ...), and the
rule that keeps the bad-input tables growing with the API: every public function or class of labkit is named in
at least one of tests/test_bad_inputs*.py, or listed below with the reason it takes no input to get wrong."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import torch
from conftest import assert_clear_labkit_error

import labkit as lk

TESTS = Path(__file__).resolve().parent

BAD = [
    ("a negative tolerance", lambda: lk.expect("x", 1.0, 1.0, tol=-1), ValueError, "tol must be a finite number >= 0"),
    ("a NaN tolerance", lambda: lk.expect("x", 1.0, 1.0, tol=float("nan")), ValueError, "tol must be"),
    ("a band given high, low", lambda: lk.expect_between("x", 0.5, 1.0, 0.0), ValueError, "low must be <= high"),
    ("a NaN bound", lambda: lk.expect_between("x", 0.5, float("nan"), 1.0), ValueError, "low must be a number"),
    ("records of a missing notebook", lambda: lk.read_records("/no/such.ipynb"), FileNotFoundError, "does not exist"),
    ("records of a markdown file", lambda: lk.read_records(TESTS.parent / "README.md"), ValueError,
     "not a readable Jupyter notebook"),
    ("records of a number", lambda: lk.read_records(3), TypeError, "notebook must be a path"),
    ("records from a missing results file", lambda: lk.use_records("/no/such.json"), FileNotFoundError,
     "does not exist"),
    ("records from a number", lambda: lk.use_records(3), TypeError, "source must be a results .json file"),
    ("records without values", lambda: lk.use_records({"x": {"unit": "%"}}), ValueError,
     "every record must be a dict with a 'value'"),
    ("redacting a number", lambda: lk.redact_local_paths(3), TypeError, "text must be a str"),
    ("the source of a number", lambda: lk.show_source(3), TypeError, "show_source needs a function"),
    ("a mixer of a string", lambda: lk.teacher_mixer("x"), ValueError, "teacher_stack must be numbers"),
    ("a mixer of a 2-D stack", lambda: lk.teacher_mixer(torch.randn(3, 4)), ValueError, r"\(examples, teachers, classes\)"),
    ("a mixer table of a string", lambda: lk.mixer_table("x"), ValueError, "teacher_logits must be numbers"),
    ("a softened table at T = 0", lambda: lk.softened_table(torch.randn(3), temperatures=(0, 2)), ValueError,
     "temperature must be a finite number > 0"),
    ("an explorer of a string", lambda: lk.temperature_explorer("x"), ValueError, "logits must be numbers"),
    ("a subset of classes out of range", lambda: lk.class_subset(lk.load_dataset("digits", verbose=False).train,
                                                                 [3, 12]), ValueError, "0..9"),
    ("parameters of a string", lambda: lk.count_parameters("m"), ValueError, "needs an nn.Module"),
    ("the size of a string", lambda: lk.size_on_disk_mb("m"), ValueError, "needs an nn.Module"),
    ("a clone of a string", lambda: lk.clone_init("m"), ValueError, "needs an nn.Module"),
    ("latency of a string", lambda: lk.inference_ms("m", torch.randn(2, 1, 8, 8)), ValueError, "needs an nn.Module"),
    ("per-teacher KL of a 2-D teacher", lambda: lk.per_teacher_kl(torch.randn(4, 3), torch.randn(4, 3), 2.0),
     ValueError, r"stack \(batch, teachers, classes\)"),
    ("pseudo-labels at threshold 2", lambda: lk.with_pseudo_labels(lk.load_dataset("digits", verbose=False).train,
                                                                    torch.randn(1347, 10), threshold=2),
     ValueError, r"threshold .* \[0, 1\]"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "call", "error", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_a_clear_labkit_error(what, call, error, words):
    with pytest.raises(error, match=words) as info:
        call()
    assert_clear_labkit_error(info, what)


# public names that take no input a learner could get wrong, or only another labkit object they built
NO_INPUT = {
    "Timer": "a context manager without arguments",
    "hardware": "no arguments",
    "run_records": "no arguments",
    "is_main_process": "no arguments",
    "launched_processes": "no arguments",
    "History": "built by fit, holds its records",
    "PseudoLabels": "built by lk.pseudo_labels, holds its result",
}


def test_every_public_function_has_rows_in_a_bad_input_table():
    text = "\n".join(p.read_text() for p in TESTS.glob("test_bad_inputs*.py"))
    public = sorted(
        n for n in dir(lk) if not n.startswith("_") and (inspect.isfunction(getattr(lk, n)) or inspect.isclass(getattr(lk, n)))
    )  # fmt: skip
    missing = [n for n in public if n not in NO_INPUT and not re.search(rf"\b{re.escape(n)}\b", text)]
    assert not missing, (
        f"public labkit names with no bad-input row (add rows, or a reason to NO_INPUT): {missing}"
    )
    assert not set(NO_INPUT) - set(public), "NO_INPUT lists names labkit no longer has"
