"""``python -m labkit.distill``: a seeded teacher (the one the notebooks load from the shared cache, whatever ran
before), only the methods it can run, and bad arguments (an unwritable --out included) refused before any training.

(tests/test_accelerate.py runs the command end to end under launchers.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import labkit as lk
from labkit import distill

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--profile", "smoke", "--dataset", "digits", "--methods", "ce", "--seeds", "0", "--epochs", "1",
        "--teacher-epochs", "2", "--max-train", "300", "--max-test", "100"]  # fmt: skip


class _Stop(Exception):
    pass


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    monkeypatch.setenv("LABKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LABKIT_PROFILE", raising=False)
    return tmp_path


def _refused(capsys, argv) -> str:
    """Run the command in this process; it must exit with argparse's status 2. Returns its stderr."""
    with pytest.raises(SystemExit) as info:
        distill.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def _no_training(monkeypatch):
    """Make any data loading or training in the command fail the test: a refusal must come first."""

    def reached(*_, **__):
        raise AssertionError("the command loaded data or trained before refusing its arguments")

    for name in ("load_dataset", "train_or_load", "fit", "compare_objectives"):
        monkeypatch.setattr(distill, name, reached)


# --------------------------------------------------------------------------------------------- item 1: seeding
def test_the_teacher_is_seeded_as_the_notebooks_build_it(offline, monkeypatch):
    """Whatever drew random numbers before, the teacher starts from lk.seed_everything(0) + lk.build_model, as in
    the notebooks; an unseeded teacher would write weights of its own under the cache entry they load."""
    seen = {}

    def capture(model, train, *, name, config, **_):
        seen[name] = {k: v.clone() for k, v in model.state_dict().items()}
        seen["config"] = config
        raise _Stop

    monkeypatch.setattr(distill, "train_or_load", capture)
    P = lk.get_profile("smoke")
    for junk in (1234, 99):  # two different RNG states before the command
        torch.manual_seed(junk)
        torch.rand(17)
        with pytest.raises(_Stop):
            distill.run(distill.parser().parse_args(TINY))
        lk.seed_everything(0)
        data = lk.load_dataset("digits", max_train=300, max_test=100, verbose=False)
        expected = lk.build_model(
            P.teacher_model, data.in_shape, data.num_classes, **P.teacher_kwargs
        ).state_dict()
        assert seen["teacher"].keys() == expected.keys()
        assert all(torch.equal(seen["teacher"][k], expected[k]) for k in expected), f"RNG state {junk}"
        assert seen["config"].seed == 0


def _fresh_run(cache: Path, out: Path, draw_first: bool) -> subprocess.CompletedProcess:
    env = dict(os.environ, LABKIT_OFFLINE="1", LABKIT_CACHE_DIR=str(cache), OMP_NUM_THREADS="1")
    env.pop("LABKIT_PROFILE", None)
    argv = [*TINY, "--out", str(out)]
    if (
        draw_first
    ):  # a fresh process that used torch's RNG before the command ran (as a notebook or script would)
        code = ("import sys, torch; torch.rand(5); from labkit.distill import main; "
                f"sys.exit(main({argv!r}))")  # fmt: skip
        cmd = [sys.executable, "-c", code]
    else:
        cmd = [sys.executable, "-m", "labkit.distill", *argv]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.timeout(600)
def test_two_fresh_runs_give_the_same_teacher(tmp_path):
    runs = []
    for i, draw_first in enumerate((False, True)):
        cache, out = tmp_path / f"cache{i}", tmp_path / f"r{i}.json"
        proc = _fresh_run(cache, out, draw_first)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        (weights,) = (cache / "checkpoints").glob("teacher-*.safetensors")
        table = {r["arm"]: r for r in json.loads(out.read_text())["table"]}
        runs.append((weights.name, load_file(weights), table["teacher"]["accuracy"]))
    (name_a, w_a, acc_a), (name_b, w_b, acc_b) = runs
    assert name_a == name_b  # one cache entry ...
    assert w_a.keys() == w_b.keys() and all(torch.equal(w_a[k], w_b[k]) for k in w_a)  # ... with one teacher
    assert acc_a == acc_b


# --------------------------------------------------------------------------------------------- item 4: methods
def test_help_lists_only_the_methods_it_can_run():
    text = distill.parser().format_help()
    assert (
        "attention, ce, hint, kd, mse" in text and "multi" not in text.split("--methods", 1)[1].split("--")[0]
    )
    assert "multi" not in distill.CLI_METHODS and set(distill.CLI_METHODS) < set(lk.METHODS)


@pytest.mark.parametrize(
    "methods, words",
    [
        ("ce,multi", "method 'multi' needs several teachers (lk.TeacherEnsemble, lesson 08)"),
        ("ce,distil", "unknown method 'distil'"),
        ("kd,kd", "each value once"),
        (",", "expected at least one value"),
    ],
)
def test_a_method_it_cannot_run_is_an_argparse_error(capsys, monkeypatch, methods, words):
    _no_training(monkeypatch)
    err = _refused(capsys, ["--methods", methods])
    assert "argument --methods" in err and words in err
    if "distil" in methods or "multi" in methods:
        assert "choose from: attention, ce, hint, kd, mse" in err


# --------------------------------------------------------------------------------------------- item 7: --out
def test_an_out_path_under_a_file_is_refused_before_training(capsys, monkeypatch, tmp_path, offline):
    _no_training(monkeypatch)
    blocker = tmp_path / "results"
    blocker.write_text("a file, not a folder")
    out = blocker / "run" / "r.json"
    err = _refused(capsys, [*TINY, "--out", str(out)])
    assert f"--out {out} cannot be written: {blocker} is a file, not a folder" in err


def test_an_out_path_that_is_a_folder_is_refused(capsys, monkeypatch, tmp_path, offline):
    _no_training(monkeypatch)
    err = _refused(capsys, [*TINY, "--out", str(tmp_path)])
    assert f"--out {tmp_path} is a folder" in err


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")
def test_an_out_path_in_a_read_only_folder_is_refused(capsys, monkeypatch, tmp_path, offline):
    _no_training(monkeypatch)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        err = _refused(capsys, [*TINY, "--out", str(locked / "new" / "r.json")])
    finally:
        locked.chmod(0o755)
    assert f"no permission to write in {locked}" in err


def test_a_missing_out_folder_is_fine(tmp_path):
    distill.check_writable(tmp_path / "a" / "b" / "r.json")  # created when the results are written


# --------------------------------------------------------------------------------------------- before the teacher
def test_a_student_that_cannot_take_hints_is_refused_before_the_teacher_trains(capsys, monkeypatch, offline):
    """An MLP student has one stage; hints pair the teacher's three stages one to one. The one-step dry run with a
    copy of the untrained teacher finds it before the teacher's (possibly long) training."""

    def no_teacher_training(*_, **__):
        raise AssertionError("the teacher trained before the method was found not to fit")

    monkeypatch.setattr(distill, "train_or_load", no_teacher_training)
    err = _refused(capsys, [*TINY, "--student", "mlp", "--methods", "ce,hint"])
    assert "method 'hint' pairs stages one to one" in err
    assert not list((offline / "cache").glob("checkpoints/teacher-*"))


@pytest.mark.parametrize("device, words", [("gpu", "unknown device 'gpu'"), ("cuda:x", "device")])
def test_a_bad_device_is_refused_before_any_data(capsys, monkeypatch, offline, device, words):
    _no_training(monkeypatch)
    assert words in _refused(capsys, [*TINY, "--device", device])


def test_a_missing_data_dir_is_refused_with_its_path(capsys, monkeypatch, offline, tmp_path):
    _no_training(monkeypatch)
    missing = tmp_path / "no-such-folder"
    assert f"--data-dir {missing} is not a folder" in _refused(capsys, [*TINY, "--data-dir", str(missing)])
