"""Grading with otter-grader, the path that works on Colab and on a server without containers: every lesson's
exercises become an Otter Assign master (tools/course_tools.py otter_version), ``otter assign`` makes the student
notebook and the autograder zip, and ``otter run`` grades a submission in the course's environment. Here on two
lessons (01, and 02 with its reading exercise): the generated student notebooks score 0 with the checks' hints in
the report, the solution scores full marks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import kernel_ipc
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import course_tools as ct  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
GRADED = ["01_soft_targets", "02_response_kd"]
# otter's own CLI, its kernels over IPC like every kernel of this suite (tests/kernel_ipc.py)
OTTER = "import sys, kernel_ipc; kernel_ipc.patch(); from otter.cli import cli; sys.argv[0] = 'otter'; sys.exit(cli())"


def otter(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = kernel_ipc.env(LABKIT_PROFILE="smoke", MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, "-c", OTTER, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_lesson_has_an_otter_master_with_one_question_per_exercise(path):
    source = nbformat.read(path, as_version=4)
    master = ct.otter_version(nbformat.read(path, as_version=4), path.stem)
    raw = [c.source.splitlines()[0] for c in master.cells if c.cell_type == "raw"]
    n = len(ct.exercises(source))
    assert raw[0] == "# ASSIGNMENT CONFIG" and f"name: {path.stem}" in master.cells[0].source
    assert raw.count("# BEGIN QUESTION") == raw.count("# END QUESTION") == n
    assert raw.count("# BEGIN SOLUTION") == raw.count("# BEGIN TESTS") == n
    code = [c.source for c in master.cells if c.cell_type == "code"]
    assert not [s for s in code if ct.BEGIN in s], "nbgrader's ### markers are otter's # markers here"
    tests = [s for s in code if s.startswith(f"def test_{path.stem}_ex".replace("-", "_"))]
    assert len(tests) == n and all("lk.checks.check_" in t for t in tests)
    install = next(i for i, c in enumerate(master.cells) if ct.INSTALL_TAG in c.metadata.get("tags", []))
    assert 'grader = otter.Notebook("' in master.cells[install + 1].source, (
        "the grader starts after the install"
    )
    lesson = [c.source for c in source.cells if c.cell_type == "code" and not ct.has_solution(c)]
    kept = [c.source for c in master.cells if c.cell_type == "code"]
    checks = [s for s in lesson if ct.CHECK_CALL in s]
    assert [s for s in lesson if s not in checks] == [s for s in kept if s in lesson], (
        "lesson cells unchanged"
    )


def test_otter_version_refuses_a_notebook_without_exercises():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    with pytest.raises(ValueError, match="has no checked exercises"):
        ct.otter_version(nb, "99_empty")


def _score(results: Path) -> dict[str, tuple[float, str]]:
    tests = json.loads(results.read_text())["tests"]
    return {t["name"]: (t.get("score"), t.get("output", "")) for t in tests if "score" in t}


@pytest.fixture(scope="module")
def assigned(tmp_path_factory):
    out = tmp_path_factory.mktemp("otter")
    assert ct.cmd_otter([ROOT / "notebooks" / f"{stem}.ipynb" for stem in GRADED], out) == 0
    return out


@pytest.mark.notebooks
@pytest.mark.timeout(900)
@pytest.mark.xdist_group("otter")
@pytest.mark.parametrize("stem", GRADED)
def test_otter_grades_the_generated_student_notebook_zero_with_the_checks_hints(stem, assigned, tmp_path):
    (zipfile,) = (assigned / stem / "autograder").glob("*-autograder_*.zip")
    student = assigned / stem / "student" / f"{stem}.ipynb"
    assert "grader.check(" in student.read_text() and ct.BEGIN not in student.read_text()
    proc = otter("run", "-a", str(zipfile), "-o", str(tmp_path), str(student), cwd=ROOT / "notebooks")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    scores = _score(tmp_path / "results.json")
    n = len(ct.exercises(nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)))
    assert sorted(scores) == [f"{stem}-ex{k}" for k in range(1, n + 1)]
    for name, (score, output) in scores.items():
        assert score == 0, f"{name}: the blank scored {score}"
        assert "ExerciseError: check_" in output and "did you forget the `return`?" in output, output


@pytest.mark.notebooks
@pytest.mark.timeout(900)
@pytest.mark.xdist_group("otter")
def test_otter_gives_the_solution_full_marks(assigned, tmp_path):
    stem = "02_response_kd"  # its reading exercise is graded against the run's own records
    (zipfile,) = (assigned / stem / "autograder").glob("*-autograder_*.zip")
    solution = assigned / stem / "autograder" / f"{stem}.ipynb"
    proc = otter("run", "-a", str(zipfile), "-o", str(tmp_path), str(solution), cwd=ROOT / "notebooks")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    scores = _score(tmp_path / "results.json")
    assert len(scores) == 3 and all(score == 1 for score, _ in scores.values()), scores
