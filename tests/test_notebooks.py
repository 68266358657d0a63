"""Every notebook runs top to bottom under papermill in the smoke profile, and nbval checks the cells that
state expectations. A new notebook in notebooks/ is picked up automatically."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import kernel_ipc
import nbformat
import pytest
from conftest import execute_notebook

from labkit.nbtools import read_records

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
FRAME = ("What you will learn", "Prerequisites", "Summary", "Exercises", "References")

pytestmark = pytest.mark.notebooks


def test_manifest_lists_every_notebook():
    """notebooks/manifest.json (module, topic, GPU, measured times) and the notebooks folder agree; entries
    marked ``"planned": true`` are allowed to have no notebook yet."""
    manifest = json.loads((ROOT / "notebooks" / "manifest.json").read_text())
    names = {p.name for p in NOTEBOOKS}
    assert names - set(manifest) == set(), "register new notebooks in notebooks/manifest.json"
    missing = {n for n, e in manifest.items() if not e.get("planned") and n not in names}
    assert missing == set(), f"manifest entries without a notebook: {sorted(missing)}"
    assert {
        "00_setup_and_tour.ipynb",
        "01_soft_targets.ipynb",
        "02_response_kd.ipynb",
        "03_feature_kd.ipynb",
    } <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_frame_and_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    missing = [h for h in FRAME if h not in text]
    assert not missing, f"{path.name} lacks the house frame sections {missing}"
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    assert "PROFILE" in params[0].source
    checks = [c for c in nb.cells if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source]
    assert checks and all(c.outputs for c in checks), (
        f"{path.name}: expectation cells must exist and carry their expected output "
        "(run `python tools/nbclean.py --adopt build/smoke/<nb> notebooks/<nb>`)"
    )


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name >= "02"], ids=lambda p: p.name)
def test_comparisons_go_through_the_engine(path):
    """From lesson 02 on, students are compared through lk.compare / lk.Comparison (paired runs, one verdict
    rule), not through a notebook's own training helpers or the old mean/std rule."""
    import re

    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    own = re.findall(r"^def (make_student|train_student)\b", code, flags=re.M)
    assert not own, f"{path.name} defines its own {own}: use lk.compare(arms, make_student=...) instead"
    assert re.search(r"lk\.(compare|Comparison(\.of_examples)?|compare_objectives)\(", code), (
        f"{path.name} compares nothing"
    )
    assert not re.search(r"lk\.(gap|verdict|record_gap)\(", code), f"{path.name} uses the removed old rule"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
@pytest.mark.xdist_group("smoke_run")  # one worker runs each notebook once for all of them
def test_notebook_runs_under_papermill_smoke(path, smoke_run):
    executed, error = smoke_run(path)  # its time is reported at the end of the log, not asserted
    if error is not None:
        raise error
    # every lesson records its key results (lk.record), which `make results` turns into results/<profile>/*.json
    records = read_records(executed)
    assert records, (
        f"{path.name} records no key results: add lk.record(...) calls to its 'Recorded results' cell"
    )
    for name, rec in records.items():
        assert math.isfinite(rec["value"]), (name, rec)
        assert "noise" not in rec, f"{path.name}: {name!r} is judged by the old rule; record a Verdict"
        if "effect" in rec:  # a comparison: the verdict of the course's rule, its direction and interval
            assert rec["effect"] in ("gain", "loss", "none") and rec["better"] in ("higher", "lower"), (
                name,
                rec,
            )
    comparisons = [r for r in records.values() if "effect" in r]
    if path.name >= "02":  # every lesson from 02 on judges comparisons and marks the one it exists to show
        assert comparisons, f"{path.name} records no comparison (lk.record(name, cmp.verdict(a, b)))"
        assert 1 <= sum(r["headline"] for r in comparisons) <= 2, f"{path.name}: mark one headline comparison"


@pytest.mark.timeout(600)
def test_hand_given_settings_off_the_tuning_grid(tmp_path):
    """A learner who sets lesson 05's parameters by hand, to values no grid contains, gets the lesson run with
    them (the coverage of the chosen threshold is computed for it, not looked up in the grid's table)."""
    path = ROOT / "notebooks" / "05_pseudo_label_kd.ipynb"
    out = tmp_path / path.name
    execute_notebook(path, out, "smoke", path.parent, THRESHOLD=0.93, TEMPERATURE=3.0, ALPHA=0.7)
    records = read_records(out)
    assert records["chosen confidence threshold"]["value"] == pytest.approx(0.93)
    assert records["chosen temperature"]["value"] == pytest.approx(3.0)
    assert records["chosen alpha"]["value"] == pytest.approx(0.7)


@pytest.mark.xdist_group("smoke_run")  # one worker runs each notebook once for all of them
def test_language_model_lesson_runs_a_pretrained_pair(smoke_run):
    """Lesson 09's last section (a Hub pair in the full profile) on a local pretrained pair saved with
    save_pretrained (the smoke run passes it as HUB_TEACHER / HUB_STUDENT): the same from_pretrained path, the
    policy steps on subword tokens, and its verdict recorded."""
    out, error = smoke_run(ROOT / "notebooks" / "09_language_model_kd.ipynb")
    if error is not None:
        raise error
    rec = read_records(out)["Hub pair: on-policy vs off-policy KD, KL to teacher on own samples"]
    assert (
        rec["effect"] in ("gain", "loss", "none") and rec["better"] == "lower" and math.isfinite(rec["value"])
    )


@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_nbval_expectations(path):
    # -p kernel_ipc: nbval's kernel over IPC, as every kernel in this suite (tests/kernel_ipc.py)
    env = kernel_ipc.env(LABKIT_PROFILE="smoke", MPLBACKEND="Agg")
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "kernel_ipc",
        "--nbval-lax",
        "--nbval-current-env",
    ]
    proc = subprocess.run([*cmd, str(path)], cwd=path.parent, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_default_profile_completes_offline(path, tmp_path, monkeypatch):
    """No network and no data dir: the *default* profile (what a learner runs) still completes, on the loud
    digits fallback, instead of hanging on a download or crashing on sizes meant for Fashion-MNIST."""
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    monkeypatch.delenv("LABKIT_DATA_DIR", raising=False)
    monkeypatch.delenv("LABKIT_PROFILE", raising=False)
    out = tmp_path / path.name
    execute_notebook(path, out, "default", path.parent)
    text = json.dumps([c.get("outputs", []) for c in nbformat.read(out, as_version=4).cells])
    assert "DATASET FALLBACK" in text, f"{path.name}: the fallback must be announced in the notebook's output"


def test_suite_kernels_talk_over_ipc(tmp_path):
    """Both ways this suite starts kernels (papermill via conftest, nbval via the kernel_ipc plugin) give kernels
    on Unix sockets at an absolute address of their own (tests/kernel_ipc.py)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import os, ipykernel\n"
            "info = ipykernel.get_connection_info(unpack=True)\n"
            "assert info['transport'] == 'ipc' and os.path.isabs(info['ip']), info\n"
            "print(info['ip'])"
        )
    ]
    nbformat.write(nb, tmp_path / "probe.ipynb")
    execute_notebook(tmp_path / "probe.ipynb", tmp_path / "ran.ipynb", "smoke", tmp_path)
    first = nbformat.read(tmp_path / "ran.ipynb", as_version=4).cells[-1].outputs[0]["text"].strip()
    execute_notebook(tmp_path / "probe.ipynb", tmp_path / "again.ipynb", "smoke", tmp_path)
    second = nbformat.read(tmp_path / "again.ipynb", as_version=4).cells[-1].outputs[0]["text"].strip()
    assert first != second, "two kernels were given the same socket address"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "kernel_ipc", "--nbval-lax",
         "--nbval-current-env", "probe.ipynb"],
        cwd=tmp_path, env=kernel_ipc.env(), capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
