"""One training loop for a student, with or without a teacher.

``fit(student, train, method="kd", teacher=teacher, config=TrainConfig(...))`` trains ``student`` with one of
the methods in ``METHODS`` (a registry of small distiller modules):

* ``ce``        - from scratch: cross-entropy on the labelled examples only.
* ``kd``        - Hinton et al. (2015): ``(1 - alpha) CE + alpha T^2 KL(p_t^T || p_s^T)``.
* ``hint``      - ``kd`` + ``beta`` x FitNets hint MSE through a learned regressor (Romero et al., 2015).
* ``attention`` - ``kd`` + ``beta`` x attention transfer on every stage (Zagoruyko & Komodakis, 2017).
* ``multi``     - many teachers (``teacher=lk.TeacherEnsemble([...], weighting=...)``):
  ``(1 - alpha) CE + alpha T^2 sum_k w_k KL(p_k^T || p_s^T)``, see ``labkit.multiteacher``.
* ``mse``       - "label distillation": ``(1 - alpha) CE + alpha sum_c (p_s^T - p_t^T)^2``, see ``labkit.ensemble``.

The teacher always runs in ``eval()`` under ``torch.no_grad()``. Its logits, and for feature methods the
features the method needs (the hint stage; the attention maps), are computed once and cached
(``TrainConfig.cache_teacher``, up to ``FEATURE_CACHE_BYTES``), exact because the images are then not augmented;
with ``TrainConfig(augment=True)`` (random crop + flip on the device) the teacher sees every augmented batch.
Batches come from ``labkit.data.batches`` over tensors that live on the training device. The batch order of
epoch ``e`` depends only on ``(seed, e)``, and each epoch ends with a checkpoint, so a killed run resumes
and finishes with the same weights as an uninterrupted one.

Several GPUs: the same loop runs under Hugging Face ``accelerate`` (``accelerate launch script.py``, or
``torchrun``). ``TrainConfig(accelerate=None)`` (the default) switches to it by itself when the launcher started
more than one process; then every process holds the data, takes its share of each global batch of
``batch_size`` examples, and ``accelerate`` wraps the student in DistributedDataParallel, so the gradient is that
of the whole batch, as in one process (batch norm aside: each process normalises its own share). See
docs/ARCHITECTURE.md, "Several GPUs".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ._validate import (
    check_alpha,
    check_choice,
    check_class_counts,
    check_finite,
    check_has_data,
    check_positive_int,
    check_temperature,
    checked_upstream,
)
from .config import TrainConfigChecks
from .data import ImageData, batches, cache_dir, random_crop_flip
from .distributed import is_main_process, launched_processes, make_accelerator, shard_batch
from .methods import METHODS
from .metrics import evaluate

__all__ = [
    "METHODS",
    "History",
    "TrainConfig",
    "fit",
    "get_device",
    "is_main_process",
    "launched_processes",
    "load_weights",
    "save_weights",
    "seed_everything",
    "train_or_load",
]


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch (all devices); with ``deterministic`` also pin cuDNN's algorithms.

    ``seed``: an integer in ``[0, 2**32)`` (NumPy's range; numpy integers too)."""
    seed = _check_seed(seed)
    if not isinstance(deterministic, (bool, np.bool_)):
        raise TypeError(f"deterministic must be True or False, got {deterministic!r}.")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA and MPS generators too
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def _check_seed(seed: object, name: str = "seed") -> int:
    if isinstance(seed, np.integer):
        seed = int(seed)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"{name} must be an integer in [0, 2**32), got {seed!r} ({type(seed).__name__}).")
    return seed


def get_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then the CPU; an explicit choice is checked to exist."""
    if isinstance(device, torch.device):
        device, given = str(device), device
    elif isinstance(device, str):
        given = None
    else:
        raise TypeError(
            f"device must be a str ('auto', 'cpu', 'cuda', 'cuda:1', 'mps') or a torch.device, got {device!r}."
        )
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind, _, index = device.partition(":")
    check_choice(kind, ("auto", "cpu", "cuda", "mps"), "device")
    if index and (not index.isdigit() or kind == "auto"):
        raise ValueError(f"device {device!r}: the part after ':' must be a device number, e.g. 'cuda:0'.")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} was asked for but no CUDA GPU is available; use 'auto' or 'cpu'."
        )
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise ValueError(
            f"device {device!r} was asked for but this machine has {torch.cuda.device_count()} CUDA GPU(s), "
            f"numbered from 0."
        )
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"device {device!r} was asked for but Apple MPS is not available; use 'auto' or 'cpu'."
        )
    return given if given is not None else torch.device(device)


@dataclass
class TrainConfig(TrainConfigChecks):
    """Hyper-parameters of one training run. Field names match the notebooks' parameters."""

    epochs: int = 10
    # Total optimisation steps. None: epochs * batches per epoch. Set, it overrides epochs: training stops after
    # exactly `steps` batches (the last pass may be partial), so runs on data of different sizes get the same
    # budget (lk.compare sets it for every arm).
    steps: int | None = None
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 5e-4
    optimizer: str = "adamw"  # a key of OPTIMIZERS
    schedule: str = "cosine"  # "cosine" or "constant"
    temperature: float = 4.0
    alpha: float = 0.9
    beta: float = 1.0  # weight of the feature term (hint / attention)
    hint_layer: int = -1  # which stage pairs for FitNets hints (student and teacher stage index)
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # autocast on CUDA only: bf16 on compute capability >= 8.0, else fp16 with a grad scaler
    cache_teacher: bool = True  # teacher logits (and the features a method needs) once, not with augment
    augment: bool = False  # random crop + flip on the device each step (labkit.data.random_crop_flip)
    progress: bool = True
    # Hugging Face accelerate: None = only when a launcher (accelerate launch, torchrun) started several
    # processes; True = always (one process too); False = never. The weights do not depend on it (up to float
    # rounding), so train_or_load's cache key leaves it out.
    accelerate: bool | None = None

    def __post_init__(self) -> None:
        check_positive_int(self.epochs, "epochs")
        if self.steps is not None:
            check_positive_int(self.steps, "steps")
        check_positive_int(self.batch_size, "batch_size")
        check_temperature(self.temperature)
        check_alpha(self.alpha)
        check_choice(self.optimizer, OPTIMIZERS, "optimizer")
        check_choice(self.schedule, ("cosine", "constant"), "schedule")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be a number > 0, got {self.lr!r}.")
        if not (isinstance(self.beta, (int, float)) and self.beta >= 0):
            raise ValueError(f"beta (feature-loss weight) must be a number >= 0, got {self.beta!r}.")
        if self.accelerate not in (None, True, False):
            raise ValueError(f"accelerate must be None (auto), True or False, got {self.accelerate!r}.")


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adamw": lambda params, cfg: torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay),
    "sgd": lambda params, cfg: torch.optim.SGD(
        params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay
    ),
}


@dataclass
class History:
    """Per-epoch records (``epoch``, ``train_loss``, ``train_accuracy``, ``val_accuracy``, ``seconds`` ...)."""

    records: list[dict] = field(default_factory=list)

    @property
    def last(self) -> dict:
        return self.records[-1] if self.records else {}

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.records)


# --------------------------------------------------------------------------------------------- the loop
def _amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype on CUDA: bf16 on compute capability 8.0 and above (Ampere on), where it runs at full
    speed and needs no loss scaling; fp16 below (e.g. a T4, 7.5), where recent torch reports bf16 as supported
    but emulates it, slower than fp32. None off CUDA (no autocast there)."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if tuple(torch.cuda.get_device_capability(device)) >= (8, 0) else torch.float16


def _use_scaler(device: torch.device, amp: bool) -> bool:
    """fp16 needs a GradScaler (small gradients underflow to 0 in fp16); bf16 has fp32's range and needs none."""
    return bool(amp) and _amp_dtype(device) == torch.float16


def _autocast(device: torch.device, enabled: bool):
    dtype = _amp_dtype(device) if enabled else None
    if dtype is not None:
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast(device.type, enabled=False)


def _check_pair(student: nn.Module, teacher: nn.Module | None, method: str, train: ImageData) -> None:
    k_s = getattr(student, "num_classes", None)
    if k_s is not None and k_s != train.num_classes:
        raise ValueError(f"student has {k_s} outputs but the data have {train.num_classes} classes.")
    if teacher is None:
        if METHODS[method].needs_teacher:
            raise ValueError(
                f"method {method!r} distils from a teacher: pass teacher=... (or use method='ce')."
            )
        return
    k_t = getattr(teacher, "num_classes", None)
    if k_s is not None and k_t is not None:
        check_class_counts(k_t, k_s)
    if METHODS[method].needs_features:
        for who, m in (("student", student), ("teacher", teacher)):
            if not hasattr(m, "feature_channels"):
                raise ValueError(
                    f"method {method!r} needs the {who} to return features (a labkit.models model)."
                )


# What a checkpoint belongs to: the fields of TrainConfig that change the weights it holds (progress, device,
# accelerate and cache_teacher change them by float rounding at most, so a run may resume with other values).
_RUN_FIELDS = ("epochs", "steps", "batch_size", "lr", "weight_decay", "optimizer", "schedule", "temperature",
               "alpha", "beta", "hint_layer", "seed", "amp", "augment")  # fmt: skip


def _shapes(module: nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


def _run_record(student, distiller, opt, cfg, method, train, teacher, teacher_logits, steps) -> dict:
    """Everything a resumed run must share with the run that wrote the checkpoint (JSON-able)."""
    return {
        "student": type(student).__name__,
        "student tensors": _shapes(student),
        "distiller tensors": _shapes(distiller),
        "optimizer": type(opt).__name__,
        "method": method,
        **{f"config.{k}": getattr(cfg, k) for k in _RUN_FIELDS},
        "total steps": steps,
        "data": f"{train.name}, {len(train)} examples, content {_fingerprint(train)}",
        "teacher": None if teacher is None else f"{type(teacher).__name__} weights {_state_hash(teacher)}",
        "teacher_logits": None if teacher_logits is None else _tensor_hash(teacher_logits),
    }


def _check_run(path: Path, saved: str | None, now: dict) -> None:
    fresh = f"To start fresh, delete {path} or pass another checkpoint= path."
    if saved is None:
        raise ValueError(
            f"checkpoint {path} was written by an older labkit and does not record which run it belongs to, so it "
            f"cannot be resumed safely. {fresh}"
        )
    old = json.loads(saved)
    now = json.loads(json.dumps(now))  # tuples -> lists, as stored
    diff = [k for k in sorted(set(old) | set(now)) if old.get(k) != now.get(k)]
    if diff:
        lines = "; ".join(_difference(k, old.get(k), now.get(k)) for k in diff)
        raise ValueError(
            f"checkpoint {path} belongs to another run; it differs in {lines}. Resuming it would train a mix of "
            f"two runs. {fresh}"
        )


def _difference(key: str, old: object, now: object) -> str:
    if isinstance(old, dict) and isinstance(now, dict):  # tensor shapes: the tensors that differ
        names = [k for k in {**old, **now} if old.get(k) != now.get(k)]
        parts = [f"{k} {old.get(k, 'absent')} vs {now.get(k, 'absent')}" for k in names[:3]]
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        return f"{key} (checkpoint vs now): {', '.join(parts)}{more}"
    return f"{key}: {_short(old)} (checkpoint) vs {_short(now)} (now)"


def _short(value: object, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _checkpoint_state(student, distiller, opt, sched, epoch, history, run: dict) -> dict:
    return {
        "student": student.state_dict(),
        "distiller": distiller.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "epoch": epoch,
        "history": json.dumps(history.records),
        "run": json.dumps(run),
        "rng_cpu": torch.get_rng_state(),
        # one state per GPU (dropout, random layers on the device); [] on a machine without CUDA
        "rng_cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
    }


def _restore_rng(state: dict) -> None:
    torch.set_rng_state(state["rng_cpu"])
    cuda = state.get("rng_cuda") or []
    if cuda and torch.cuda.is_available():  # a checkpoint from another machine may have more GPUs
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])


def _load_checkpoint(path: Path) -> dict:
    if path.is_dir():
        raise ValueError(f"checkpoint {path} is a directory; pass a file path, e.g. {path / 'run.pt'}.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated or foreign file: never a silent partial load
        raise RuntimeError(
            f"checkpoint {path} is corrupted or not a labkit training checkpoint ({type(err).__name__}: {err}). "
            "Delete it to train from scratch."
        ) from None
    if not isinstance(state, dict):
        raise RuntimeError(
            f"checkpoint {path} is not a labkit training checkpoint (it holds a {type(state).__name__}, not a "
            "dict). Delete it or pass another checkpoint= path to train from scratch."
        )
    missing = {"student", "distiller", "optimizer", "scheduler", "epoch", "history", "rng_cpu"} - set(state)
    if missing:
        raise RuntimeError(
            f"checkpoint {path} lacks {sorted(missing)}; delete it or pass another checkpoint= path to train from "
            "scratch."
        )
    return state


def _check_writable(
    path: Path, what: str, is_dir: bool = False, example: str = "run.pt", when: str = "training"
) -> None:
    """Fail before training, not after it, when ``path`` (a file, or a folder with ``is_dir``) cannot be written:
    a parent that is a file, a folder without write permission, a read-only file system. Creates the folders."""
    folder = path if is_dir else path.parent
    if not is_dir and path.is_dir():
        raise ValueError(f"{what} {path} is a directory; pass a file path inside it, e.g. {path / example}.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".labkit-write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ValueError(
            f"{what} {path} cannot be written ({type(err).__name__}: {err.strerror or err}); found before "
            f"{when}. Pass a path in a folder you can write to."
        ) from None


def fit(
    student: nn.Module,
    train: ImageData,
    *,
    method: str = "ce",
    teacher: nn.Module | None = None,
    config: TrainConfig | None = None,
    val: ImageData | None = None,
    teacher_logits: torch.Tensor | None = None,
    checkpoint: str | Path | None = None,
    callbacks: Sequence[Callable[[int, dict], None]] = (),
) -> History:
    """Train ``student`` in place on ``train`` and return its per-epoch ``History``.

    ``teacher_logits`` (``(N, K)``, aligned with ``train``) skips the teacher's forward passes entirely.
    ``checkpoint``: a path written after every epoch; if it exists, training resumes from it.
    ``callbacks`` are called as ``cb(epoch, record)`` after each epoch (raise to stop); under a multi-process
    launcher they run in every process, and ``record`` holds the totals over all processes.
    """
    cfg = _check_fit_inputs(
        student, train, method, teacher, config, val, teacher_logits, checkpoint, callbacks
    )
    _check_pair(student, teacher, method, train)
    ckpt = Path(checkpoint).expanduser() if checkpoint is not None else None
    acc = make_accelerator(cfg)
    device = acc.device if acc is not None else get_device(cfg.device)
    main = acc is None or acc.is_main_process
    if ckpt is not None and main:  # found now, not after the first epoch's training
        _check_writable(ckpt, "checkpoint")
    Method = METHODS[method]
    seed_everything(cfg.seed)

    student.to(device)
    if teacher is not None:
        teacher.to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    distiller = Method(cfg, student, teacher).to(device)

    if cfg.augment and teacher_logits is not None:
        raise ValueError(
            "teacher_logits were computed on un-augmented images, so they cannot follow augment=True; pass "
            "teacher= instead (the teacher then sees each augmented batch)."
        )
    if cfg.augment and min(train.in_shape[1:]) < 8:
        raise ValueError(f"augment=True needs images of at least 8x8 pixels; this data is {train.in_shape}.")
    given_logits = teacher_logits  # what the learner passed (part of the run a checkpoint belongs to)
    # Teacher logits once, when the method needs only logits and there is no augmentation.
    if (
        Method.needs_teacher
        and not Method.needs_features
        and teacher_logits is None
        and cfg.cache_teacher
        and not cfg.augment
    ):
        teacher_logits = _memo(teacher, train.x, device, (method, "logits"),
                               lambda: Method.teacher_outputs(teacher, train.x, device))  # fmt: skip
    feature_cache: list[torch.Tensor | None] | None = None  # the teacher's per-stage features, computed once
    if Method.needs_features and teacher_logits is None and cfg.cache_teacher and not cfg.augment:
        teacher_logits, feature_cache = _memo(teacher, train.x, device, (method, cfg.hint_layer, FEATURE_CACHE_BYTES),
                                              lambda: _teacher_feature_cache(distiller, teacher, train.x, device))  # fmt: skip
    if teacher_logits is not None:
        expected = Method.teacher_shape(train, teacher)
        if tuple(teacher_logits.shape) != expected:
            raise ValueError(
                f"teacher_logits must have shape {expected} (one row per training example), got "
                f"{tuple(teacher_logits.shape)}."
            )
        if given_logits is None:  # computed here: checked once, since the steps below skip value checks
            check_finite(teacher_logits, "the teacher's logits on the training set", allow_neg_inf=True)
        teacher_logits = teacher_logits.to(device)

    x, y = train.x.to(device), train.y.to(device)
    params = list(student.parameters()) + list(distiller.parameters())
    opt = OPTIMIZERS[cfg.optimizer](params, cfg)
    per_epoch = max(1, -(-len(train) // cfg.batch_size))
    steps = cfg.steps if cfg.steps is not None else cfg.epochs * per_epoch
    epochs = -(-steps // per_epoch)  # passes over the data; the last one may stop early
    lr_lambda = (
        (lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
        if cfg.schedule == "cosine"
        else None
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda or (lambda s: 1.0))
    if acc is None:
        scaler = torch.amp.GradScaler("cuda", enabled=_use_scaler(device, cfg.amp))
        s_model, d_model = student, distiller
        autocast = lambda: _autocast(device, cfg.amp)  # noqa: E731
        backward = lambda loss: scaler.scale(loss).backward()  # noqa: E731

        def step() -> None:
            scaler.step(opt)
            scaler.update()
    else:  # accelerate: DDP wrappers (several processes), its autocast and loss scaling; one sched step a batch
        if any(p.requires_grad for p in distiller.parameters()):  # e.g. the FitNets regressor
            s_model, d_model, opt = acc.prepare(student, distiller, opt)
        else:  # DDP refuses a module with nothing to train
            (s_model, opt), d_model = acc.prepare(student, opt), distiller
        autocast, backward, step = acc.autocast, acc.backward, opt.step

    history, start = History(), 0
    run = None
    if ckpt is not None:  # what the checkpoint belongs to: a resumed run must be this very run
        run = _run_record(student, distiller, opt, cfg, method, train, teacher, given_logits, steps)
    if ckpt is not None and ckpt.exists():
        state = _load_checkpoint(ckpt)
        _check_run(ckpt, state.get("run"), run)
        student.load_state_dict(state["student"])
        distiller.load_state_dict(state["distiller"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        _restore_rng(state)
        history, start = History(json.loads(state["history"])), int(state["epoch"])
        print(f"[labkit] resumed from {ckpt} after epoch {start}/{epochs}")

    from tqdm.auto import tqdm

    aug_gen = torch.Generator(device=device) if cfg.augment else None
    bar = tqdm(
        range(start, epochs), desc=f"{method} student", disable=not (cfg.progress and main), leave=False
    )
    for epoch in bar:
        student.train()
        t0, seen = time.perf_counter(), 0
        # Sums over the epoch, on the device: no host sync per step, one at the epoch's end (.tolist below)
        total = torch.zeros((), dtype=torch.float64, device=device)  # sum of loss x batch size
        correct = torch.zeros((), dtype=torch.int64, device=device)  # labelled examples predicted right
        labelled_seen = torch.zeros((), dtype=torch.int64, device=device)
        part_sums: dict[str, torch.Tensor] = {}  # weighted loss parts x batch size
        epoch_steps = min(per_epoch, steps - epoch * per_epoch)
        tensors = (x, y) if teacher_logits is None else (x, y, teacher_logits)
        if feature_cache is not None:
            tensors = (*tensors, *(f for f in feature_cache if f is not None))
        if aug_gen is not None:
            aug_gen.manual_seed(
                cfg.seed * 100_003 + epoch
            )  # per epoch, so a resumed run draws the same crops
        # inside the loop the losses skip their value checks (each reads a device value back to the host):
        # the data, labels and teacher logits were checked above, a NaN/inf loss is caught below
        with checked_upstream():
            for i, batch in enumerate(
                batches(*tensors, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed * 100_003 + epoch)
            ):
                if i == epoch_steps:  # the step budget ends inside this pass
                    break
                if cfg.augment:  # on the whole batch, so every process count draws the same crops
                    batch = (random_crop_flip(batch[0], generator=aug_gen), *batch[1:])
                share = 1.0
                if acc is not None:
                    batch, share = shard_batch(batch, acc)
                    if batch is None:
                        continue
                xb, yb = batch[0], batch[1]
                with autocast():
                    s_out = s_model(xb, return_features=True) if Method.needs_features else s_model(xb)
                    s_logits, s_feats = s_out if Method.needs_features else (s_out, None)
                    t_logits, t_feats = (batch[2] if teacher_logits is not None else None), None
                    if feature_cache is not None:  # the cached features of this batch, None where unused
                        rest = iter(batch[3:])
                        t_feats = [next(rest) if f is not None else None for f in feature_cache]
                    elif Method.needs_teacher and t_logits is None:
                        with torch.no_grad():
                            t_out = (
                                teacher(xb, return_features=True) if Method.needs_features else teacher(xb)
                            )
                        t_logits, t_feats = t_out if Method.needs_features else (t_out, None)
                        if Method.needs_features:
                            t_feats = distiller.teacher_features(t_feats)
                    loss = d_model(s_logits, yb, t_logits, s_feats, t_feats)
                opt.zero_grad(set_to_none=True)
                backward(loss * share)  # share = 1 in one process
                bad = ~torch.isfinite(
                    loss.detach()
                )  # on the device: a NaN/inf loss steps with zero gradients, so the
                for p in params:  # weights stay finite until the epoch's end reports it (no host sync here)
                    if p.grad is not None:
                        p.grad.masked_fill_(bad, 0.0)
                step()
                sched.step()
                for name, part in distiller.parts.items():
                    part_sums[name] = part_sums.get(name, 0.0) + part.float() * len(xb)
                total += loss.detach().double() * len(xb)  # NaN / inf propagate: checked once, below
                correct += (s_logits.detach().argmax(1) == yb).sum()  # unlabelled rows (-1) never match
                labelled_seen += (yb >= 0).sum()
                seen += len(xb)
        sums = torch.stack(
            [total, correct.double(), labelled_seen.double(), *(torch.as_tensor(v).double() for v in part_sums.values())]
        )  # fmt: skip
        sums = torch.cat([sums.to(device), torch.tensor([float(seen)], dtype=torch.float64, device=device)])
        if acc is not None and acc.num_processes > 1:  # totals over every process's share
            sums = acc.reduce(sums)
        total, correct, labelled_seen, *parts, seen = sums.tolist()  # the epoch's one host sync
        if not math.isfinite(total):  # a NaN or inf loss at any step makes the epoch's sum NaN or inf
            raise FloatingPointError(
                f"loss became {total / max(seen, 1)} at epoch {epoch + 1}: lower the learning rate ({cfg.lr}) "
                "or check the inputs for NaN/inf (see the README's Troubleshooting section). Its steps with a "
                "non-finite loss took zero gradients, so the student's weights stay finite"
                + (f"; the checkpoint {ckpt} keeps the last good epoch." if ckpt is not None else ".")
            )
        seen = int(seen)
        record = {
            "epoch": epoch + 1,
            "train_loss": total / max(seen, 1),
            "train_accuracy": correct / labelled_seen if labelled_seen else float("nan"),
            **{f"loss_{name}": v / max(seen, 1) for name, v in zip(part_sums, parts)},
            "seconds": time.perf_counter() - t0,
        }
        if val is not None:
            record.update({f"val_{k}": v for k, v in evaluate(student, val).items()})
        history.records.append(record)
        bar.set_postfix(
            loss=f"{record['train_loss']:.3f}", val=f"{record.get('val_accuracy', float('nan')):.3f}"
        )
        if ckpt is not None and main:  # atomic: a kill mid-write never leaves a half checkpoint
            state = _checkpoint_state(student, distiller, opt, sched, epoch + 1, history, run)
            _atomic_write(ckpt, partial(torch.save, state))
        if acc is not None:
            acc.wait_for_everyone()
        for cb in callbacks:
            cb(epoch + 1, record)
    student.eval()
    return history


def _check_fit_inputs(
    student, train, method, teacher, config, val, teacher_logits, checkpoint, callbacks, who="student"
):
    """The arguments of ``fit`` (and ``train_or_load``), checked before anything trains: the config, re-checked
    (a field set after construction skips the constructor's checks)."""
    check_choice(method, METHODS, "method")
    if not isinstance(student, nn.Module):
        raise TypeError(
            f"{who} must be a torch nn.Module (e.g. lk.build_model(...)), got {type(student).__name__}."
        )
    if not isinstance(train, ImageData):
        hint = (
            " (a tuple (x, y)? wrap it: lk.ImageData(x, y, classes, name, source))"
            if isinstance(train, tuple)
            else ""
        )
        raise TypeError(f"train must be an lk.ImageData, got {type(train).__name__}{hint}.")
    if len(train) == 0:
        raise ValueError(f"train ({train.name!r}) has no examples: there is nothing to train on.")
    if config is not None and not isinstance(config, TrainConfig):
        hint = ": use lk.TrainConfig(**config)" if isinstance(config, dict) else ""
        raise TypeError(f"config must be an lk.TrainConfig, got {type(config).__name__}{hint}.")
    cfg = config or TrainConfig()
    cfg.__post_init__()  # fields may have been set after construction
    if teacher is not None and not isinstance(teacher, nn.Module):
        raise TypeError(f"teacher must be a torch nn.Module or None, got {type(teacher).__name__}.")
    _check_weights_have_data(student, who)
    if teacher is not None:
        _check_weights_have_data(teacher, "teacher")
    if not any(p.requires_grad for p in student.parameters()):
        raise ValueError(
            f"student ({type(student).__name__}) has no trainable parameters: there is nothing to fit."
        )
    if not METHODS[method].needs_teacher and not bool((train.y >= 0).any()):
        raise ValueError(
            f"method {method!r} learns from labels, but every example of train ({train.name!r}) is unlabelled "
            "(y == -1): use a distillation method (e.g. method='kd' with a teacher) or labelled data."
        )
    if val is not None:
        if not isinstance(val, ImageData):
            raise TypeError(f"val must be an lk.ImageData or None, got {type(val).__name__}.")
        if val.in_shape != train.in_shape or val.num_classes != train.num_classes:
            raise ValueError(
                f"val must look like train: images {val.in_shape} vs {train.in_shape}, {val.num_classes} vs "
                f"{train.num_classes} classes."
            )
        if len(val) == 0:
            raise ValueError("val has no examples; pass val=None to train without validation.")
    if teacher_logits is not None:
        if not isinstance(teacher_logits, torch.Tensor) or not teacher_logits.is_floating_point():
            what = (
                teacher_logits.dtype
                if isinstance(teacher_logits, torch.Tensor)
                else type(teacher_logits).__name__
            )
            raise TypeError(
                f"teacher_logits must be a floating torch.Tensor (one row of logits per training example), got {what}."
            )
        check_has_data(teacher_logits, "teacher_logits")
        flat = teacher_logits.detach().reshape(len(teacher_logits), -1)
        bad = (torch.isnan(flat) | torch.isposinf(flat)).any(1)  # (N,); -inf alone marks an unknown class
        if bool(bad.any()):
            raise ValueError(
                f"teacher_logits hold NaN or +inf in {int(bad.sum())} row(s) (first {bad.nonzero().flatten()[:5].tolist()}):"
                " a distillation target must be finite (-inf alone marks a class a teacher does not know)."
            )
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(
            f"checkpoint must be a path (str or pathlib.Path) or None, got {type(checkpoint).__name__}."
        )
    try:
        ok = (
            not callable(callbacks)
            and not isinstance(callbacks, (str, bytes))
            and all(map(callable, callbacks))
        )
    except TypeError:  # not iterable
        ok = False
    if not ok:
        hint = f": pass [{getattr(callbacks, '__name__', 'fn')}]" if callable(callbacks) else ""
        raise TypeError(
            f"callbacks must be a list of functions cb(epoch, record), got {callbacks!r:.80}{hint}."
        )
    return cfg


_MEMO: list = []  # the last teacher outputs computed for a training set, newest first (MEMO_ENTRIES at most)
MEMO_ENTRIES = 2  # e.g. a hint arm and an attention arm of one lk.compare, alternating over its seeds


def _memo(teacher: nn.Module, x: torch.Tensor, device: torch.device, what: tuple, compute: Callable):
    """``compute()``, or its result from the previous call for the same teacher object with unchanged weights
    and buffers (every in-place update bumps a tensor's version), the same training images (same tensor,
    unchanged) and the same device and method: the paired arms of ``lk.compare`` share one teacher pass per
    training set instead of one each. ``MEMO_ENTRIES`` entries, the least recently used one replaced first."""
    state = tuple((t.data_ptr(), t._version) for t in (*teacher.parameters(), *teacher.buffers()))
    settings = tuple(  # plain attributes of the teacher and its parts (e.g. an ensemble's fusion space)
        (name, k, repr(v)) for name, m in teacher.named_modules() for k, v in sorted(vars(m).items())
        if not k.startswith("_") and k != "training"
    )  # fmt: skip
    key = (state, settings, x._version, tuple(x.shape), str(device), what)
    for i, hit in enumerate(_MEMO):
        if hit["teacher"]() is teacher and hit["x"] is x and hit["key"] == key:
            _MEMO.insert(0, _MEMO.pop(i))  # the most recently used entry first
            return hit["value"]
    value = compute()
    _MEMO.insert(0, {"teacher": weakref.ref(teacher), "x": x, "key": key, "value": value})
    del _MEMO[MEMO_ENTRIES:]
    return value


FEATURE_CACHE_BYTES = 2**30  # at most 1 GiB of cached teacher features; above, the teacher runs every step


def _teacher_feature_cache(
    distiller: nn.Module, teacher: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 512
) -> tuple[torch.Tensor | None, list[torch.Tensor | None] | None]:
    """The teacher's logits ``(N, K)`` and the features ``distiller.teacher_features`` keeps, for all of
    ``x`` (un-augmented images, so the teacher's outputs never change): ``(None, None)`` when they would take
    more than ``FEATURE_CACHE_BYTES``. Exact: the same eval-mode forward pass as at every step."""
    with torch.no_grad():
        z, feats = teacher.eval()(x[:2].to(device), return_features=True)
        kept = distiller.teacher_features(feats)
        per_row = z[0].numel() + sum(f[0].numel() for f in kept if f is not None)
        if per_row * 4 * len(x) > FEATURE_CACHE_BYTES:
            return None, None
        logits, parts = [], []
        for i in range(0, len(x), batch_size):
            z, feats = teacher(x[i : i + batch_size].to(device), return_features=True)
            logits.append(z.float())
            parts.append(distiller.teacher_features(feats))
    cache = [None if f is None else torch.cat([p[j] for p in parts]) for j, f in enumerate(kept)]
    return torch.cat(logits), cache


# ------------------------------------------------------------------------------------ weights and caching
def _check_weights_have_data(model: nn.Module, who: str) -> None:
    """A model built on the ``meta`` device (``with torch.device("meta"):``) has shapes but no weights."""
    meta = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if meta:
        raise ValueError(
            f"{who} ({type(model).__name__}) has weights on the 'meta' device, which hold no values ({meta[0]!r} "
            f"and {len(meta) - 1} more): build it on the CPU, or call .to_empty(device='cpu') and load weights."
        )


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """Save a model's weights as safetensors (no pickle, safe to share); written whole, then renamed (atomic)."""
    from safetensors.torch import save_file

    if not isinstance(model, nn.Module):
        raise TypeError(f"save_weights needs an nn.Module, got {type(model).__name__}.")
    _check_weights_have_data(model, "model")
    path = _check_path(path, "path")
    _check_writable(path, "weights file", example="model.safetensors", when="writing")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    try:
        _atomic_write(path, lambda tmp: save_file(state, str(tmp)))
    except Exception as err:  # e.g. tensors that share memory (tied weights)
        raise ValueError(f"cannot save the weights of {type(model).__name__} to {path}: {err}") from None
    return path


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load safetensors weights into ``model``; a corrupted or mismatched file raises a clear error."""
    from safetensors.torch import load_file

    if not isinstance(model, nn.Module):
        raise TypeError(f"load_weights needs an nn.Module to load into, got {type(model).__name__}.")
    path = _check_path(path, "path")
    if path.is_dir():
        raise ValueError(f"weights path {path} is a directory; pass the .safetensors file inside it.")
    if not path.exists():
        raise FileNotFoundError(f"no weights file at {path}.")
    try:
        state = load_file(str(path))
    except Exception as err:
        raise RuntimeError(f"weights file {path} is corrupted ({err}); delete it to retrain.") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        lines = [line.strip() for line in str(err).splitlines()[1:4] if line.strip()]
        raise RuntimeError(
            f"weights in {path} do not fit this {type(model).__name__}: {'; '.join(lines) or err}"
        ) from None
    return model


def _check_path(value: object, name: str) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise TypeError(f"{name} must be a file path (str or pathlib.Path), got {value!r:.80}.")
    return Path(value).expanduser()


def _fingerprint(data: ImageData) -> str:
    """A short hash of every pixel (rounded to 4 decimals) and label, and the shape: the same data read from
    another folder or machine gives the same cache key; different data does not."""
    flat = data.x.detach().reshape(-1)
    h = hashlib.sha1(str(tuple(data.x.shape)).encode())
    chunk = 1 << 22  # 4M values at a time: no full-size copy of a large data set
    for i in range(0, flat.numel(), chunk):
        h.update(torch.round(flat[i : i + chunk].float().cpu(), decimals=4).numpy().tobytes())
    h.update(data.y.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _tensor_hash(t: torch.Tensor) -> str:
    """Exact content (bytes, dtype, shape) of one tensor."""
    t = t.detach().cpu().contiguous()
    h = hashlib.sha1(f"{t.dtype} {tuple(t.shape)}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _state_hash(module: nn.Module) -> str:
    """The exact weights and buffers of ``module`` now (names, shapes, dtypes, bytes): e.g. a student's initial
    weights, so students that start from different weights never share a cache entry."""
    h = hashlib.sha1()
    for k, v in module.state_dict().items():
        h.update(f"{k}={_tensor_hash(v)};".encode())
    return h.hexdigest()[:16]


def _settings(module: nn.Module) -> list:
    """Plain attributes of a module and its parts (e.g. an ensemble's weighting): repr() values that are
    stable across sessions (no object addresses)."""
    out = []
    for name, m in module.named_modules():
        for k, v in sorted(vars(m).items()):
            if not k.startswith("_") and k != "training" and " at 0x" not in (r := repr(v)):
                out.append((name, k, r))
    return out


def _cache_key(model, train, method, teacher, cfg, val) -> str:
    """Everything that determines what ``train_or_load`` returns, hashed: the architecture and the *initial*
    weights of ``model``, the data (content, not path), the method, the teacher (architecture and weights), the
    validation data (the history holds its metrics) and every TrainConfig field that changes the weights."""
    Method = METHODS[method]
    conf = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("progress", "accelerate")}
    conf["device"] = get_device(cfg.device).type  # "auto" and "cpu" are the same run on a CPU
    src = [
        "v2",
        type(model).__qualname__, repr(model), _settings(model), _state_hash(model),
        train.name, _fingerprint(train), len(train),
        method, f"{Method.__module__}.{Method.__qualname__}",
        None if teacher is None else [type(teacher).__qualname__, repr(teacher), _settings(teacher), _state_hash(teacher)],
        None if val is None else [val.name, _fingerprint(val), len(val)],
        conf,
    ]  # fmt: skip
    return hashlib.sha1(json.dumps(src, sort_keys=True, default=str).encode()).hexdigest()[:10]


def train_or_load(
    model: nn.Module,
    train: ImageData,
    *,
    name: str,
    method: str = "ce",
    teacher: nn.Module | None = None,
    config: TrainConfig | None = None,
    val: ImageData | None = None,
    cache: str | Path | None = None,
) -> History:
    """``fit`` unless a checkpoint for exactly this run is cached; then load it.

    The cache key hashes everything that determines the result: the model's architecture and its weights at
    call time (its initial weights: build it after ``lk.seed_everything(seed)`` to get the same entry again),
    the data (name, size, content), the method, the teacher (architecture and weights), ``val`` and the config;
    changing any of them trains again. Weights are stored as safetensors next to a JSON history.
    """
    cfg = _check_fit_inputs(model, train, method, teacher, config, val, None, None, (), who="model")
    if not isinstance(name, str) or not name.strip() or any(c in name for c in "/\\") or name.startswith("."):
        raise ValueError(
            f"name must be a short file-name prefix such as 'teacher' (no '/', '\\', no leading '.'), got {name!r}."
        )
    key = _cache_key(model, train, method, teacher, cfg, val)
    if cache is not None:
        folder = _check_path(cache, "cache")
    else:
        try:
            folder = cache_dir() / "checkpoints"
        except OSError as err:
            raise ValueError(
                f"the labkit cache folder cannot be created ({type(err).__name__}: {err}); set LABKIT_CACHE_DIR "
                "to a folder you can write to, or pass cache=..."
            ) from None
    weights, meta = folder / f"{name}-{key}.safetensors", folder / f"{name}-{key}.json"
    if weights.exists() and meta.exists():
        try:
            records = json.loads(meta.read_text())
            load_weights(model, weights)
        except (ValueError, RuntimeError, OSError) as err:  # a truncated or corrupted file
            print(f"[labkit] WARNING: the cached {name} ({weights.name}, {meta.name} in {folder}) is unreadable "
                  f"({type(err).__name__}: {err}); training it again and replacing it.")  # fmt: skip
        else:
            model.to(get_device(cfg.device)).eval()
            print(f"[labkit] loaded cached {name} from {weights}")
            return History(records)
    if is_main_process():  # found now, not after training
        _check_writable(folder, "cache folder", is_dir=True)
        for path in (weights, meta):
            if path.is_dir():
                raise ValueError(
                    f"cache file {path} is a directory; remove it or pass another cache= folder."
                )
    history = fit(model, train, method=method, teacher=teacher, config=cfg, val=val)
    if is_main_process():  # under a multi-process launcher, one process writes the cache
        # each file is written whole under a temporary name and then renamed (atomic): a killed run leaves the
        # previous entry or none, never half a file; the weights go first, so a history always has its weights
        save_weights(model, weights)
        _atomic_write(meta, lambda tmp: tmp.write_text(json.dumps(history.records)))
    return history


def _atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` to a temporary file beside ``path``, then rename it onto ``path`` (atomic on one file system):
    readers see the old file or the new one, never half of one; the temporary file never outlives the call."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
