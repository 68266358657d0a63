"""Shared test hooks: the smoke run time of every notebook is printed at the end of the session, so CI's log
shows how long the course takes (measured, never asserted: run times belong to benchmarks)."""

from __future__ import annotations

import pytest

NOTEBOOK_SECONDS: dict[str, float] = {}


def assert_clear_labkit_error(info, what: str = "") -> None:
    """The bad-input tables' contract (tests/test_bad_inputs*.py): the message is a sentence, not a bare code, and
    labkit's own check raised it (the traceback ends in labkit/), before torch, numpy, pandas or zipfile failed."""
    assert len(str(info.value)) > 20, f"{what}: {info.value!r} is not a sentence"
    raised_in = str(info.traceback[-1].path).replace("\\", "/")
    assert "/labkit/" in raised_in, f"{what} raised in {raised_in}, not by labkit"


def shared_data_dir(required: str):
    """The course's offline data folder ($LABKIT_DATA_DIR, else ../shared/data beside the repo), or skip the test
    when ``required`` (a path inside it) is missing."""
    import os
    from pathlib import Path

    import pytest

    env = os.environ.get("LABKIT_DATA_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (path / required).is_file():
        pytest.skip(f"{required} not found in {path}; set LABKIT_DATA_DIR to the course's data folder")
    return path


def execute_notebook(source, out, profile: str, cwd, **parameters) -> None:
    """Run a notebook under papermill as the course runner does: ``PROFILE`` (and any other ``parameters``)
    injected, run from ``cwd``. The kernel talks over IPC (tests/kernel_ipc.py), and a cell that runs 10 minutes
    fails naming that cell."""
    import kernel_ipc
    import papermill as pm

    kernel_ipc.patch()

    pm.execute_notebook(
        str(source),
        str(out),
        parameters={"PROFILE": profile, **parameters},
        cwd=str(cwd),
        kernel_name="python3",
        progress_bar=False,
        execution_timeout=600,
    )


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """``smoke_run(path)``: the source notebook executed in the smoke profile under papermill, once per session
    (its time goes to the run-time table): ``(executed notebook, the error or None)``. The papermill test reads
    its records; the slide test builds decks from its outputs, as ``make slides`` does from build/<profile>/.
    Lesson 09 runs with a tiny local pretrained pair as its Hub pair (HUB_TEACHER / HUB_STUDENT), so that one run
    also covers its last section's from_pretrained path (the nbval and offline runs cover the run without one)."""
    import time

    out = tmp_path_factory.mktemp("smoke_runs")
    done: dict[str, tuple] = {}

    def parameters(path) -> dict:
        if path.name != "09_language_model_kd.ipynb":
            return {}
        from test_lm_train import save_tiny_causal_pair

        teacher, student = save_tiny_causal_pair(out / "hub_pair")
        return {"HUB_TEACHER": str(teacher), "HUB_STUDENT": str(student)}

    def run(path):
        if path.name not in done:
            t0, error = time.perf_counter(), None
            try:
                execute_notebook(path, out / path.name, "smoke", path.parent, **parameters(path))
            except Exception as err:  # reported by the test that asks for this notebook
                error = err
            NOTEBOOK_SECONDS[path.name] = time.perf_counter() - t0
            done[path.name] = (out / path.name, error)
        return done[path.name]

    return run


def pytest_sessionfinish(session):
    """On a pytest-xdist worker: hand this worker's notebook run times to the controller, which prints them."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["notebook_seconds"] = dict(NOTEBOOK_SECONDS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):  # the controller side of pytest-xdist (a hook only it calls)
    NOTEBOOK_SECONDS.update(getattr(node, "workeroutput", {}).get("notebook_seconds", {}))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not NOTEBOOK_SECONDS:
        return
    from labkit.nbtools import hardware

    tr = terminalreporter
    tr.section(f"notebook run times, smoke profile, papermill ({hardware()})")
    for name, seconds in sorted(NOTEBOOK_SECONDS.items()):
        tr.write_line(f"{name:45s} {seconds:7.1f} s")
    tr.write_line(f"{'whole course':45s} {sum(NOTEBOOK_SECONDS.values()):7.1f} s")
