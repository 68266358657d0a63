"""Course delivery from one source (tools/course_tools.py): every notebook has the Colab badge and an install
cell that does nothing off Colab, the repository URL is written once, at least two checked exercises end every
notebook, the student version (solutions blanked) runs in the smoke profile up to its exercises, each check
fails on the blank and passes on the solution, and every slide deck renders offline in headless Chromium
with its slides, its math typeset and no broken image. A new notebook in notebooks/ is picked up automatically
(run `make badges` on it and give it two exercises; see docs/NOTEBOOKS.md)."""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import nbformat
import pytest
from conftest import execute_notebook

import labkit as lk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import course_tools as ct  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FIND_SPEC = importlib.util.find_spec
ARTIFACTS = ROOT / "build" / "ci"  # kept after the run: decks, the probe reports and one screenshot


def read(path: Path):
    return nbformat.read(path, as_version=4)


# ------------------------------------------------------------------------------------------------ Colab
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_colab_badge_and_install_cell(path):
    nb = read(path)
    badge, install = ct._tagged(nb, ct.BADGE_TAG), ct._tagged(nb, ct.INSTALL_TAG)
    fix = f"run `python tools/course_tools.py badges {path.relative_to(ROOT)}` (or `make badges`)"
    assert badge is not None and install is not None, f"{path.name} lacks the Colab cells: {fix}"
    assert nb.cells.index(badge) == 0, f"{path.name}: the badge is the first cell"
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert first_code is install, f"{path.name}: the install cell runs before any other code"
    colab = f"https://colab.research.google.com/github/{ct.repo_url().removeprefix('https://github.com/')}"
    assert f"({colab}/blob/{ct.BRANCH}/notebooks/{path.name})" in badge.source
    fresh = ct.dumps(ct.clean(ct.add_badges(copy.deepcopy(nb), path.name, ct.repo_url())))
    assert fresh == path.read_text(), f"{path.name}: badge or install cell is stale: {fix}"


def _run_install_cell(
    monkeypatch, on_colab: bool, installed: bool, url: str | None = None, wheels=()
) -> list:
    """Execute the install cell as IPython would, with a stand-in get_ipython recording magics (IPython expands
    ``{wheels[-1]}`` in a magic from the cell's variables: the stand-in records the calls with it expanded)."""
    import glob

    from IPython.core.inputtransformer2 import TransformerManager

    calls: list = []
    namespace: dict = {}

    def magic(name, line):
        if "{wheels[-1]}" in line:
            line = line.replace("{wheels[-1]}", namespace["wheels"][-1])
        calls.append((name, line))

    shell = types.SimpleNamespace(run_line_magic=magic)
    namespace["get_ipython"] = lambda: shell
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: FIND_SPEC(name, *a) if installed else None
    )
    monkeypatch.setattr(
        glob, "glob", lambda pattern: list(wheels) if pattern == "/content/kdlab-*.whl" else []
    )
    code = TransformerManager().transform_cell(ct.install_source(url or ct.repo_url()))
    exec(compile(code, "<install cell>", "exec"), namespace)
    return calls


MOVED = "https://github.com/example-org/kd-lab"


def test_install_cell_installs_only_on_colab_without_labkit(monkeypatch):
    assert _run_install_cell(monkeypatch, on_colab=False, installed=False) == []  # laptop, CI, papermill
    assert _run_install_cell(monkeypatch, on_colab=True, installed=True) == []  # Colab, already installed
    (call,) = _run_install_cell(monkeypatch, on_colab=True, installed=False, url=MOVED)
    assert call[0] == "pip" and f"git+{MOVED}" in call[1] and "kdlab[vision]" in call[1]


def test_install_cell_prefers_an_uploaded_wheel(monkeypatch):
    wheel = "/content/kdlab-0.9.0-py3-none-any.whl"
    for url in (None, MOVED):  # the placeholder too: a wheel needs no repository
        (call,) = _run_install_cell(monkeypatch, on_colab=True, installed=False, url=url, wheels=[wheel])
        assert call == ("pip", f'install --quiet "{wheel}[vision]"')


def test_install_cell_with_the_placeholder_url_says_what_to_change(monkeypatch):
    assert "/YOUR-ORG/" in ct.repo_url()  # this repository is not published yet: its cells carry the message
    with pytest.raises(RuntimeError) as info:
        _run_install_cell(monkeypatch, on_colab=True, installed=False)
    message = str(info.value)
    for words in (
        "placeholder",
        ct.repo_url(),
        "[project.urls] Repository in pyproject.toml",
        "make badges",
        "wheel",
    ):
        assert words in message, words
    assert "raise RuntimeError" not in ct.install_source(MOVED)  # a published fork's cell just installs


def test_repository_url_lives_in_pyproject_only_and_badges_follow_it():
    url = ct.repo_url()
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    written = [
        f
        for f in files
        if not f.endswith(".ipynb") and (ROOT / f).is_file() and url in (ROOT / f).read_text(errors="ignore")
    ]
    assert written == ["pyproject.toml"], (
        f"the repository URL must be written only in pyproject.toml: {written}"
    )
    moved = MOVED
    for path in NOTEBOOKS:
        nb = ct.add_badges(read(path), path.name, moved)
        text = "\n".join(c.source for c in nb.cells)
        assert url not in text and "colab.research.google.com/github/example-org/kd-lab/blob/" in text
        assert f"git+{moved}" in text


def test_time_tables_in_the_docs_are_the_manifests_measurements():
    for path, text in ct.render_tables().items():
        assert path.read_text() == text, f"{path.name}: run `python tools/course_tools.py times`"
    manifest = json.loads((ROOT / "notebooks" / "manifest.json").read_text())
    seconds = manifest["01_soft_targets.ipynb"]["durations"]["default"]["seconds"]
    row = next(ln for ln in ct.module_table().splitlines() if "`01_soft_targets.ipynb`" in ln)
    assert f"| {seconds:.0f} s |" in row or f"| {seconds / 60:.1f} min |" in row


# ------------------------------------------------------------------------------------------- exercises
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_ends_with_checked_exercises(path):
    nb = read(path)
    pairs = ct.exercises(nb)
    assert len(pairs) >= 2, (
        f"{path.name} needs at least two exercises: a code cell with `{ct.BEGIN}` ... `{ct.END}` followed by a "
        "code cell calling lk.checks.check_*(...) (docs/NOTEBOOKS.md)"
    )
    exercises_heading = max(
        i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "## Exercises" in c.source
    )
    tail = nb.cells[pairs[0][0] :]
    assert pairs[0][0] > exercises_heading, f"{path.name}: exercises come after the ## Exercises section"
    assert all(c.cell_type == "markdown" or ct.has_solution(c) or ct.CHECK_CALL in c.source for c in tail), (
        f"{path.name}: only exercise prompts, solutions and checks may follow the first solution"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_check_fails_on_the_blank_with_its_hint_and_passes_on_the_solution(path):
    nb = read(path)
    solved, blank = {"lk": lk}, {"lk": lk}  # exercises run in order: a later one may use an earlier one
    recorded = ROOT / "results" / "default" / f"{path.stem}.json"
    if (
        recorded.is_file()
    ):  # the reading exercise grades against a run's records: here, the recorded default run
        lk.use_records(recorded)
    pairs = ct.exercises(nb)
    assert pairs, f"{path.name} has no exercises (docs/NOTEBOOKS.md, item 8)"
    for i, j in pairs:
        solution, check = nb.cells[i].source, nb.cells[j].source
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(solution, solved)
            exec(check, solved)
        assert out.getvalue().startswith("OK  "), f"{path.name} cell {j}: {out.getvalue()!r}"
        exec(ct.blank_solution(solution), blank)
        with pytest.raises(
            lk.checks.ExerciseError, match="not implemented yet: replace `raise NotImplementedError"
        ):
            exec(check, blank)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_version_blanks_solutions_and_keeps_everything_else(path):
    nb = read(path)
    student = ct.student_version(read(path))
    assert len(student.cells) == len(nb.cells)
    for cell, blank in zip(nb.cells, student.cells):
        if not ct.has_solution(cell):
            assert blank.source == cell.source  # lesson cells and checks unchanged
            continue
        assert ct.BEGIN not in blank.source and ct.END not in blank.source
        assert "raise NotImplementedError()" in blank.source
        region = cell.source.split(ct.BEGIN, 1)[1].split(ct.END, 1)[0]
        hidden = [ln.strip() for ln in region.splitlines() if ln.strip()]
        assert not [ln for ln in hidden if ln in blank.source.splitlines()], "a solution line leaked"


def test_blank_solution_keeps_the_markers_indentation_like_nbgrader():
    src = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n\n\ny = 1"
    assert (
        ct.blank_solution(src)
        == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\n\ny = 1"
    )
    assert ct.blank_solution("### BEGIN SOLUTION\nT^2\n### END SOLUTION", markdown=True) == "YOUR ANSWER HERE"
    with pytest.raises(ValueError, match="without"):
        ct.blank_solution("### BEGIN SOLUTION\nx = 1")


def test_nbgrader_sources_mark_solutions_and_locked_checks():
    path = NOTEBOOKS[0]
    nb = ct.nbgrader_version(read(path), path.stem)
    marked = {i: c.metadata["nbgrader"] for i, c in enumerate(nb.cells) if "nbgrader" in c.metadata}
    for i, j in ct.exercises(nb):
        assert marked.pop(i)["solution"] is True
        check = marked.pop(j)
        assert check["grade"] is True and check["locked"] is True and check["points"] == 1
    assert marked == {}
    ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids))


# ------------------------------------------------------------------------------ student runs and slides
def _setup_and_exercises(nb, first_solution: int):
    """The notebook's setup (every cell up to its parameters cell) and its exercise part (from the first solution
    on): the lesson cells between them are the source's, which the source's own smoke run executes."""
    params = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    trimmed = copy.deepcopy(nb)
    trimmed.cells = nb.cells[: params + 1] + nb.cells[first_solution:]
    return trimmed


@pytest.fixture(scope="session")
def student_run():
    """``student_run(path)``: the notebook's student version, setup and exercises, executed in the smoke profile,
    once per session (and per pytest-xdist worker, each in its own folder): ``(executed notebook, the error or
    None)``. It must stop at its first check (the checks take only the learner's function, never a lesson
    variable)."""
    import papermill as pm

    out = ARTIFACTS / "student" / os.environ.get("PYTEST_XDIST_WORKER", "main")
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, tuple[Path, BaseException | None]] = {}

    def run(path):
        if path.name not in runs:
            src = out / f"{path.stem}.student.ipynb"
            student = ct.student_version(read(path))
            src.write_text(ct.dumps(_setup_and_exercises(student, ct.exercises(read(path))[0][0])))
            executed, error = out / path.name, None
            try:
                execute_notebook(src, executed, "smoke", path.parent)
            except pm.PapermillExecutionError as err:
                error = err
            runs[path.name] = (executed, error)
        return runs[path.name]

    return run


@pytest.mark.notebooks
@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
@pytest.mark.xdist_group("student_run")  # one worker runs each notebook once for all of them
def test_student_version_runs_in_smoke_up_to_its_exercises(path, student_run):
    executed, error = student_run(path)
    pairs = ct.exercises(read(path))
    assert pairs, f"{path.name} has no exercises to stop at (docs/NOTEBOOKS.md, item 8)"
    first_solution, first_check = pairs[0]
    assert error is not None, f"{path.name}: the student version ran past its blank exercises"
    assert error.ename == "ExerciseError" and "not implemented yet" in error.evalue, (
        f"{path.name}: the student version failed before its exercises: {error.ename}: {error.evalue}"
    )
    ran = read(executed)
    failed = [
        c.get("id") for c in ran.cells if any(o.get("output_type") == "error" for o in c.get("outputs", []))
    ]
    assert failed == [read(path).cells[first_check].get("id")], "the first check is where the run stops"
    before = [
        c for c in ran.cells[: [c.get("id") for c in ran.cells].index(failed[0])] if c.cell_type == "code"
    ]
    assert before and all(c.execution_count for c in before), "every setup and exercise cell before it ran"
    # the lesson cells the trimmed run leaves out are the source's own, which its smoke run executes
    source, student = read(path), ct.student_version(read(path))
    assert [c.source for c in student.cells[:first_solution] if c.cell_type == "code"] == [
        c.source for c in source.cells[:first_solution] if c.cell_type == "code"
    ], "the student version changes only the exercises"


def render_problems(report: dict, executed, raw_tex: list) -> list[str]:
    """What a browser probe's ``report`` of a page built from ``executed`` shows wrong (the slide and site tests):
    math not typeset although the notebook has some, MathJax errors, ``raw_tex`` left untypeset, images that did
    not load, figures missing although the notebook has some."""
    has_math = any(c.cell_type == "markdown" and "$" in c.source for c in executed.cells)
    has_figures = any("image/png" in o.get("data", {}) for c in executed.cells for o in c.get("outputs", []))
    wrong = [
        "math not typeset" if has_math and report["math"] == 0 else "",
        f"{report['math_errors']} MathJax errors" if report["math_errors"] else "",
        f"math left as TeX: {raw_tex[:3]}" if raw_tex else "",
        f"images not loaded: {report['broken'][:3]}" if report["broken"] else "",
        "figures missing" if has_figures and report["images"] == 0 else "",
    ]
    return [w for w in wrong if w]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if IN_CI:
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium before `make test`")
        pytest.skip("chromium not installed (apt-get install chromium); CI requires it")
    return found


def _chromium_run(chromium: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


PROBE = """<script>
window.addEventListener("load", function () {
  MathJax.startup.promise.then(function () {
    var raw = [], walker = document.createTreeWalker(document.querySelector(".slides"), NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
      var node = walker.currentNode;
      if (!node.parentElement.closest("pre, code, mjx-container") && node.textContent.indexOf("$") >= 0)
        raw.push(node.textContent.slice(0, 80));
    }
    var report = {
      slides: Reveal.getTotalSlides(),
      math: document.querySelectorAll("mjx-container svg").length,
      math_errors: document.querySelectorAll("mjx-merror, [data-mjx-error]").length,
      images: document.images.length,
      broken: Array.from(document.images).filter(function (i) { return !i.complete || i.naturalWidth === 0; })
        .map(function (i) { return i.src.slice(0, 60); }),
      raw_math: raw
    };
    var out = document.createElement("pre");
    out.id = "render-report";
    out.textContent = JSON.stringify(report);
    document.body.appendChild(out);
  });
});
</script>"""


@pytest.mark.notebooks
@pytest.mark.timeout(900)
@pytest.mark.xdist_group("smoke_run")  # one worker runs each notebook once for all of them
def test_slides_build_and_render_offline_in_headless_chromium(smoke_run):
    """Decks from the executed smoke runs, as `make slides` builds them from build/<profile>/ (the lesson cells and
    their figures; exercises' solutions and checks are never on slides), rendered with reveal.js and MathJax from
    build/ only: no network at render time."""
    chromium = _chromium()
    if shutil.which("npm") is None and not ct.VENDOR_DIR.exists():
        if IN_CI:
            pytest.fail("npm is missing: `make slides-vendor` installs reveal.js and MathJax with it")
        pytest.skip("npm not installed: reveal.js and MathJax come from npm (make slides-vendor)")
    subprocess.run(["make", "-s", "slides-vendor"], cwd=ROOT, check=True)
    out = ARTIFACTS / "slides"
    shutil.rmtree(out, ignore_errors=True)
    runs = [smoke_run(p) for p in NOTEBOOKS]
    assert all(error is None for _, error in runs), [str(e)[:300] for _, e in runs if e is not None]
    executed = [path for path, _ in runs]
    ct.cmd_slides(executed, out, ct.VENDOR_DIR)
    problems = {}
    for run in executed:
        deck = out / f"{run.stem}.html"
        probe = deck.with_name(f"{run.stem}.probe.html")
        probe.write_text(deck.read_text().replace("</body>", PROBE + "\n</body>"))
        proc = _chromium_run(chromium, "--dump-dom", probe.as_uri())
        found = re.search(r'<pre id="render-report">(.*?)</pre>', proc.stdout)
        assert found, f"{deck.name}: no render report (chromium rc {proc.returncode}): {proc.stderr[-2000:]}"
        report = json.loads(found.group(1))
        (out / f"{run.stem}.report.json").write_text(json.dumps(report, indent=1))
        wrong = ["fewer than 3 slides"] if report["slides"] < 3 else []
        wrong += render_problems(report, read(run), report["raw_math"])
        if wrong:
            problems[deck.name] = wrong
    assert not problems, problems
    shot = out / "screenshot_01_title.png"
    deck = out / "01_soft_targets.html"
    assert deck.exists(), "lesson 01's deck is the one kept as a screenshot"
    _chromium_run(
        chromium, f"--screenshot={shot}", "--window-size=1280,800", "--hide-scrollbars", deck.as_uri()
    )
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[:2] == (800, 1280) and pixels.std() > 0.02, "the screenshot is blank"
