"""One small, fixed training problem shared by tests/test_accelerate.py and the worker it launches: an MLP
student (no batch norm, no dropout, so one process and several see exactly the same computation) on random
images whose count is not a multiple of the batch size (an uneven last batch)."""

from __future__ import annotations

import torch

import labkit as lk


def problem(accelerate: bool | None = None):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(150, 1, 8, 8, generator=g)
    y = torch.randint(0, 4, (150,), generator=g)
    train = lk.ImageData(x, y, classes=[f"c{i}" for i in range(4)], name="accelerate-test", source="random")
    lk.seed_everything(1)
    teacher = lk.build_model("mlp", (1, 8, 8), 4, hidden=(32,))
    student = lk.build_model("mlp", (1, 8, 8), 4, hidden=(16,))
    cfg = lk.TrainConfig(
        epochs=3, batch_size=32, lr=1e-2, device="cpu", progress=False, accelerate=accelerate
    )
    return student, teacher, train, cfg
