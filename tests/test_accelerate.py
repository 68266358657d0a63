"""labkit's training loop under Hugging Face accelerate: one process gives the same weights as the plain loop,
and two CPU processes started by a launcher (gloo) give the weights of one process, up to float rounding; the
command-line entry point for multi-GPU runs (`python -m labkit.distill`) works and refuses bad input clearly."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate_problem import problem

import labkit as lk

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


@pytest.fixture
def fresh_accelerate_state():
    """accelerate keeps one state per process; reset it so later tests (Hugging Face Trainer) start clean."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    yield
    AcceleratorState._reset_state(True)


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("method", ["ce", "kd"])
def test_one_process_through_accelerate_equals_the_plain_loop(method, fresh_accelerate_state):
    plain, teacher, train, cfg = problem(accelerate=False)
    h_plain = lk.fit(plain, train, method=method, teacher=teacher, config=cfg)
    via, teacher2, train2, cfg2 = problem(accelerate=True)
    h_via = lk.fit(via, train2, method=method, teacher=teacher2, config=cfg2)
    for k, v in _weights(plain).items():
        assert torch.equal(v, _weights(via)[k]), k
    assert [r["train_loss"] for r in h_plain.records] == [r["train_loss"] for r in h_via.records]


def test_hint_regressor_trains_through_accelerate(fresh_accelerate_state):
    """A distiller with parameters of its own (the FitNets regressor) is prepared next to the student."""
    g = torch.Generator().manual_seed(0)
    train = lk.ImageData(
        torch.randn(64, 1, 8, 8, generator=g),
        torch.randint(0, 3, (64,), generator=g),
        ["a", "b", "c"],
        "t",
        "random",
    )
    out = {}
    for use in (False, True):
        lk.seed_everything(0)
        teacher = lk.build_model("cnn", (1, 8, 8), 3, width=8)
        student = lk.build_model("cnn", (1, 8, 8), 3, width=4)
        cfg = lk.TrainConfig(epochs=2, batch_size=16, device="cpu", progress=False, accelerate=use)
        lk.fit(student, train, method="hint", teacher=teacher, config=cfg)
        out[use] = _weights(student)
    for k in out[False]:
        assert torch.equal(out[False][k], out[True][k]), k


def test_config_rejects_a_bad_accelerate_value():
    with pytest.raises(ValueError, match="accelerate must be True or False or None"):
        lk.TrainConfig(accelerate="yes")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(launcher: str, n: int, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    """n CPU processes (gloo) under ``accelerate launch`` (what the docs tell GPU users to run; its multi-GPU
    launcher is torchrun, which falls back to gloo without GPUs) or under plain ``torchrun``. accelerate's
    Accelerator reads the launcher's environment (WORLD_SIZE, RANK, ...) in both cases."""
    env = dict(
        os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    )
    env.pop("CUDA_VISIBLE_DEVICES", None)
    port = str(_free_port())
    if launcher == "accelerate":
        head = ["accelerate.commands.launch", "--multi_gpu", "--num_processes", str(n), "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", port]  # fmt: skip
    else:
        head = ["torch.distributed.run", "--nproc_per_node", str(n), "--master_port", port]
    cmd = [sys.executable, "-m", *head, *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("launcher, method", [("accelerate", "kd"), ("torchrun", "ce")])
def test_two_processes_train_the_weights_of_one(launcher, method, tmp_path, fresh_accelerate_state):
    """Each process takes half of every global batch (150 images, batch 32: the last batch is uneven) and DDP
    averages the gradients, weighted so that the step is the step of the whole batch."""
    out = tmp_path / "two.pt"
    proc = _launch(launcher, 2, str(TESTS / "accelerate_worker.py"), str(out), method)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert proc.stdout.count("saved") == 1, "only the process of rank 0 writes"
    # each process trained on its half of every batch: 3 epochs x 150 images in all, 225 each
    assert "rank 0 trained on 225 examples" in proc.stdout and "rank 1 trained on 225 examples" in proc.stdout
    saved = torch.load(out, weights_only=True)
    one, teacher, train, cfg = problem(accelerate=False)
    history = lk.fit(one, train, method=method, teacher=teacher, config=cfg)
    for k, v in _weights(one).items():
        assert torch.allclose(v, saved["state"][k], atol=1e-5), (k, (v - saved["state"][k]).abs().max())
    two_loss = [r["train_loss"] for r in saved["history"]]  # totals over both processes
    assert two_loss == pytest.approx([r["train_loss"] for r in history.records], rel=1e-4)


def _cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, LABKIT_OFFLINE="1")
    env.pop("LABKIT_PROFILE", None)
    return subprocess.run([sys.executable, "-m", "labkit.distill", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


@pytest.mark.timeout(300)
def test_cli_compares_methods_and_writes_json(tmp_path):
    out = tmp_path / "r.json"
    proc = _cli("--profile", "smoke", "--dataset", "digits", "--methods", "ce,kd", "--epochs", "2",
                "--teacher-epochs", "2", "--max-train", "400", "--max-test", "200", "--out", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["processes"] == 1 and result["dataset"] == "digits"
    assert {r["arm"] for r in result["table"]} == {"teacher", "student: ce", "student: kd"}
    assert {(v["a"], v["b"], v["metric"]) for v in result["verdicts"]} == {
        ("student: kd", "student: ce", "accuracy"),
        ("student: kd", "student: ce", "ece"),
    }
    assert all(v["effect"] in ("gain", "loss", "none") and v["n_seeds"] == 2 for v in result["verdicts"])
    assert "student: kd" in proc.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (("--methods", "ce,distil"), "unknown method 'distil'"),
        (("--dataset", "imagenet"), "invalid choice: 'imagenet'"),
        (("--temperature", "0", "--max-train", "100"), "temperature"),
        (("--seeds", "a,b"), "comma-separated ints"),
    ],
)
def test_cli_refuses_bad_input_in_one_line(args, message):
    proc = _cli("--profile", "smoke", *args, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
