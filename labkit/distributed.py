"""Several processes (one per GPU) through Hugging Face ``accelerate``; labkit has no distributed code of its own.

``lk.fit`` calls ``make_accelerator(cfg)``: ``None`` for the plain single-device loop, else an
``accelerate.Accelerator`` (when a launcher such as ``accelerate launch`` or ``torchrun`` started several
processes, or always with ``TrainConfig(accelerate=True)``). Every process holds the in-memory data and draws the
same batch order; ``shard_batch`` cuts each global batch into one contiguous share per process. See
docs/ARCHITECTURE.md, "Several GPUs".
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .training import TrainConfig

__all__ = ["is_main_process", "launched_processes", "make_accelerator", "shard_batch"]


def launched_processes() -> int:
    """How many processes a launcher (``accelerate launch``, ``torchrun``) started: ``WORLD_SIZE``, else 1."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def is_main_process() -> bool:
    """True in a plain run and in the launcher's process of rank 0 (the one that writes files and prints)."""
    return os.environ.get("RANK", "0") == "0"


def make_accelerator(cfg: TrainConfig):
    """An ``accelerate.Accelerator`` when ``cfg.accelerate`` asks for one (None: only under a launcher that
    started several processes), else None: the plain single-device loop."""
    use = cfg.accelerate if cfg.accelerate is not None else launched_processes() > 1
    if not use:
        return None
    try:
        from accelerate import Accelerator
    except ImportError:  # a dependency of the course, so only a broken environment lands here
        raise ImportError(
            "TrainConfig(accelerate=...) needs Hugging Face accelerate: pip install accelerate"
        ) from None
    cpu, precision = _precision(cfg)
    try:
        return Accelerator(cpu=cpu, mixed_precision=precision)
    except ValueError as err:  # accelerate's state is per process and keeps its first settings
        raise ValueError(
            f"accelerate is already set up in this process with other settings ({err}); use the same device and "
            "amp setting for every run of this process, or restart it."
        ) from None


def _precision(cfg) -> tuple[bool, str]:
    """(cpu, accelerate's mixed_precision) for ``cfg``: the same rule as ``lk.fit`` without accelerate, bf16 only
    on compute capability 8.0 and above, fp16 (which accelerate scales) below, "no" on a CPU or with amp off."""
    from .training import _amp_dtype, get_device  # here, not at the top: training imports this module

    device = get_device("cpu" if cfg.device == "cpu" else "auto")
    cpu = device.type == "cpu"
    if cpu or not cfg.amp or device.type != "cuda":
        return cpu, "no"
    return cpu, "bf16" if _amp_dtype(device) == torch.bfloat16 else "fp16"


def shard_batch(batch: tuple[torch.Tensor, ...], acc) -> tuple[tuple[torch.Tensor, ...] | None, float]:
    """This process's contiguous share of a global batch, and the factor that makes DDP's average of the
    processes' mean losses equal the mean loss of the whole batch. ``None`` when the batch has fewer examples
    than processes (then every process skips it)."""
    world, n = acc.num_processes, len(batch[0])
    if world == 1:
        return batch, 1.0
    if n < world:
        return None, 0.0
    lo, hi = acc.process_index * n // world, (acc.process_index + 1) * n // world
    return tuple(t[lo:hi] for t in batch), (hi - lo) * world / n
