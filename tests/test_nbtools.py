from pathlib import Path

import pytest

import labkit as lk
from labkit.nbtools import (
    RECORD_MIME,
    Timer,
    expect,
    expect_between,
    hardware,
    read_records,
    record,
)


def test_expect_prints_the_expectation_not_the_measurement(capsys):
    expect("KD loss of identical logits", 3e-8, 0.0, tol=1e-6)
    expect("shape", (2, 3), (2, 3))
    out = capsys.readouterr().out
    assert "OK  KD loss of identical logits: 0.0000 (tolerance 1e-06)" in out and "3e-08" not in out
    assert "OK  shape: (2, 3)" in out


def test_expect_raises_on_failure():
    with pytest.raises(AssertionError, match="got 0.5000, expected 0.0"):
        expect("loss", 0.5, 0.0)
    with pytest.raises(AssertionError, match="expected within"):
        expect_between("teacher accuracy", 0.3, 0.8, 1.0)


def test_timer_and_hardware():
    with Timer() as t:
        sum(range(1000))
    assert t.seconds >= 0
    assert "cores" in hardware()


# ----------------------------------------------------------------------------------- recorded results
def _write_notebook(path: Path, code: str) -> Path:
    """A two-cell notebook at ``path``: the parameters cell and ``code``."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell('PROFILE = "default"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(code),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _verdict(diff=3.2, low=1.1, high=5.3, metric="accuracy", better="higher"):
    import labkit as lk

    return lk.Verdict("KD", "scratch", metric, better, diff, low, high, 3, 1000, 0.4, 0.3)


def test_record_outside_a_kernel_prints_one_line(capsys):
    record("KD vs scratch", _verdict(), headline=True)
    record("teacher test accuracy", 87.123, unit="%")
    record("noise only", _verdict(-0.4, -1.5, 0.7))
    record("ECE", _verdict(-6.8, -9.0, -4.6, "ece", "lower"))
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "recorded  KD vs scratch: accuracy +3.20 points (95% interval +1.10 to +5.30, 3 seeds: a gain)",
        "recorded  teacher test accuracy: 87.12%",
        "recorded  noise only: accuracy -0.40 points (95% interval -1.50 to +0.70, 3 seeds: no measurable effect)",
        "recorded  ECE: ece -6.80 points (95% interval -9.00 to -4.60, 3 seeds, lower is better: a gain)",
    ]


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (("", 1.0), {}, "non-empty name"),
        (("x", float("nan")), {}, "finite"),
        (("x", "3"), {}, "must be a number"),
        (("x", True), {}, "must be a number"),
        (("x", 1.0, 5), {}, "unit must be a string"),
        (("x", 1.0), {"headline": "yes"}, "headline must be True or False"),
    ],
)
def test_record_rejects_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        record(*args, **kwargs)


def test_records_travel_in_the_executed_notebook_to_the_results_json(tmp_path, monkeypatch):
    """A notebook's lk.record outputs survive papermill, read_records gets them back, and run_course turns them
    into results/<profile>/<nb>.json and a table on the findings page."""
    import json
    import sys

    import nbformat
    from conftest import execute_notebook

    root = Path(__file__).resolve().parents[1]
    src = _write_notebook(
        tmp_path / "99_demo.ipynb",
        "import labkit as lk\n"
        'lk.record("teacher test accuracy", 91.5, unit="%")\n'
        'v = lambda d: lk.Verdict("KD", "scratch", "accuracy", "higher", d, d - 1.2, d + 1.2, 3, 500, 0.3, 0.2)\n'
        'lk.record("KD vs scratch", v(0.4))\n'
        'lk.record("KD vs scratch", v(2.5), headline=True)  # the last value of a name wins',
    )
    out = tmp_path / "run" / "99_demo.ipynb"
    out.parent.mkdir()
    execute_notebook(src, out, "smoke", tmp_path)
    executed = nbformat.read(out, as_version=4)
    shown = [o for c in executed.cells for o in c.get("outputs", []) if RECORD_MIME in o.get("data", {})]
    assert len(shown) == 3 and "recorded  teacher test accuracy: 91.5%" in shown[0]["data"]["text/plain"]
    records = read_records(out)
    assert records["teacher test accuracy"] == {"value": 91.5, "unit": "%", "headline": False}
    kd = records["KD vs scratch"]
    assert (
        kd["value"] == 2.5 and kd["low"] == pytest.approx(1.3) and kd["effect"] == "gain" and kd["headline"]
    )
    assert (
        kd["better"] == "higher" and kd["n_seeds"] == 3 and kd["n_test"] == 500 and kd["metric"] == "accuracy"
    )

    sys.path.insert(0, str(root / "tools"))
    import run_course

    monkeypatch.setattr(run_course, "ROOT", tmp_path)
    # before any run, the page says so instead of showing numbers
    assert (
        "**The `full` profile has not been run yet** on a GPU"
        in run_course.summarize_results("full").read_text()
    )
    path = run_course.export_records(out, "full", "Test GPU", 12.0)
    assert path == tmp_path / "results" / "full" / "99_demo.json"
    payload = json.loads(path.read_text())
    assert payload["hardware"] == "Test GPU" and payload["records"] == records
    path.with_suffix(".md").write_text("*Profile `full`, executed on Test GPU in 12 s, today.*\n")
    page = run_course.summarize_results("full").read_text()
    assert "## Headline findings" in page and page.index("Headline") < page.index("Every finding")
    row = "| accuracy +2.50 points | 95% interval +1.30 to +3.70, 3 seeds | 500 | **a gain** |"
    assert page.count(row) == 2  # in the headline table and in the notebook's own
    assert "teacher test accuracy" not in page  # findings only: plain numbers stay in the JSON
    assert "has not been run yet" not in page


def test_a_run_on_fallback_data_is_not_recorded(tmp_path, monkeypatch, capsys):
    """`make results` refuses to turn a run on substitute data (the digits fallback, a tiny model) into a
    digest, a results JSON or REFERENCE.md: those would pass off digits as CIFAR-10."""
    import sys

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "tools"))
    import run_course

    src = _write_notebook(
        tmp_path / "98_fallback.ipynb",
        "print(\"DATASET FALLBACK: 'cifar10' could not be loaded.\")\n"
        "import labkit as lk\n"
        'lk.record("teacher test accuracy", 97.0, unit="%")',
    )
    assert run_course.fell_back(src) == ""  # not executed yet: no banner in any output
    monkeypatch.setattr(run_course, "ROOT", tmp_path)
    assert run_course.run([src], "full", record=True) == 1
    out = capsys.readouterr().out
    assert "ran on a dataset fallback; not recorded as a 'full' result" in out
    assert run_course.fell_back(tmp_path / "build" / "full" / src.name) == "a dataset fallback"
    assert not (tmp_path / "results").exists()


def test_redact_local_paths_names_the_folders_a_reader_knows(tmp_path, monkeypatch):
    data, cache, repo = tmp_path / "data", tmp_path / "cache", tmp_path / "repo"
    monkeypatch.setenv("LABKIT_DATA_DIR", str(data) + "/")
    monkeypatch.setenv("LABKIT_CACHE_DIR", str(cache))
    text = f"local: {data}/fashion_mnist.npz; cache {cache}/checkpoints; notebook {repo}/notebooks/02.ipynb"
    out = lk.redact_local_paths(text, repo)
    assert out == (
        "local: $LABKIT_DATA_DIR/fashion_mnist.npz; cache $LABKIT_CACHE_DIR/checkpoints; "
        "notebook <repo>/notebooks/02.ipynb"
    )
    assert str(tmp_path) not in out
    monkeypatch.delenv("LABKIT_DATA_DIR")
    assert lk.redact_local_paths(f"{data}/x", None) == f"{data}/x"  # unset: nothing to replace
