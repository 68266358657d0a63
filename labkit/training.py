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

from ._validate import check_alpha, check_choice, check_class_counts, check_positive_int, check_temperature
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
    """Seed Python, NumPy and torch (all devices); with ``deterministic`` also pin cuDNN's algorithms."""
    check_positive_int(seed, "seed", minimum=0)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA and MPS generators too
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def get_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple MPS, then the CPU; an explicit choice is checked to exist."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = device.split(":")[0]
    check_choice(kind, ("auto", "cpu", "cuda", "mps"), "device")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} was asked for but no CUDA GPU is available; use 'auto' or 'cpu'."
        )
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"device {device!r} was asked for but Apple MPS is not available; use 'auto' or 'cpu'."
        )
    return torch.device(device)


@dataclass
class TrainConfig:
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
    amp: bool = True  # autocast on CUDA only (bf16 where supported, else fp16 with a grad scaler)
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
def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
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


def _checkpoint_state(student, distiller, opt, sched, epoch, history) -> dict:
    return {
        "student": student.state_dict(),
        "distiller": distiller.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "epoch": epoch,
        "history": json.dumps(history.records),
        "rng_cpu": torch.get_rng_state(),
    }


def _load_checkpoint(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated or foreign file: never a silent partial load
        raise RuntimeError(
            f"checkpoint {path} is corrupted or not a labkit training checkpoint ({type(err).__name__}: {err}). "
            "Delete it to train from scratch."
        ) from None
    missing = {"student", "optimizer", "epoch", "history"} - set(state)
    if missing:
        raise RuntimeError(f"checkpoint {path} lacks {sorted(missing)}; delete it to train from scratch.")
    return state


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
    cfg = config or TrainConfig()
    check_choice(method, METHODS, "method")
    _check_pair(student, teacher, method, train)
    acc = make_accelerator(cfg)
    device = acc.device if acc is not None else get_device(cfg.device)
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
        use_scaler = cfg.amp and device.type == "cuda" and not torch.cuda.is_bf16_supported()
        scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
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
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.exists():
        state = _load_checkpoint(ckpt)
        student.load_state_dict(state["student"])
        distiller.load_state_dict(state["distiller"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng_cpu"])
        history, start = History(json.loads(state["history"])), int(state["epoch"])
        print(f"[labkit] resumed from {ckpt} after epoch {start}/{epochs}")

    from tqdm.auto import tqdm

    aug_gen = torch.Generator(device=device) if cfg.augment else None
    main = acc is None or acc.is_main_process
    bar = tqdm(
        range(start, epochs), desc=f"{method} student", disable=not (cfg.progress and main), leave=False
    )
    for epoch in bar:
        student.train()
        t0, total, correct, seen, labelled_seen = time.perf_counter(), 0.0, 0, 0, 0
        part_sums: dict[str, torch.Tensor] = {}  # weighted loss parts, summed on the device (no host sync)
        epoch_steps = min(per_epoch, steps - epoch * per_epoch)
        tensors = (x, y) if teacher_logits is None else (x, y, teacher_logits)
        if feature_cache is not None:
            tensors = (*tensors, *(f for f in feature_cache if f is not None))
        if aug_gen is not None:
            aug_gen.manual_seed(
                cfg.seed * 100_003 + epoch
            )  # per epoch, so a resumed run draws the same crops
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
                        t_out = teacher(xb, return_features=Method.needs_features)
                    t_logits, t_feats = t_out if Method.needs_features else (t_out, None)
                    if Method.needs_features:
                        t_feats = distiller.teacher_features(t_feats)
                loss = d_model(s_logits, yb, t_logits, s_feats, t_feats)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss became {loss.item()} at epoch {epoch + 1}: lower the learning rate ({cfg.lr}) or "
                    "check the inputs for NaN/inf (see the README's Troubleshooting section)."
                )
            opt.zero_grad(set_to_none=True)
            backward(loss * share)  # share = 1 in one process
            step()
            sched.step()
            mask = yb >= 0
            for name, part in distiller.parts.items():
                part_sums[name] = part_sums.get(name, 0.0) + part.float() * len(xb)
            total += loss.item() * len(xb)
            correct += int((s_logits.argmax(1)[mask] == yb[mask]).sum())
            seen, labelled_seen = seen + len(xb), labelled_seen + int(mask.sum())
        if acc is not None and acc.num_processes > 1:  # totals over every process's share
            sums = acc.reduce(
                torch.tensor([total, correct, seen, labelled_seen], device=device, dtype=torch.float64)
            )
            total, correct, seen, labelled_seen = sums[0].item(), *(int(v) for v in sums[1:].tolist())
            part_sums = {
                k: acc.reduce(torch.as_tensor(v, device=device, dtype=torch.float64))
                for k, v in part_sums.items()
            }
        record = {
            "epoch": epoch + 1,
            "train_loss": total / max(seen, 1),
            "train_accuracy": correct / labelled_seen if labelled_seen else float("nan"),
            **{f"loss_{name}": float(v) / max(seen, 1) for name, v in part_sums.items()},
            "seconds": time.perf_counter() - t0,
        }
        if val is not None:
            record.update({f"val_{k}": v for k, v in evaluate(student, val).items()})
        history.records.append(record)
        bar.set_postfix(
            loss=f"{record['train_loss']:.3f}", val=f"{record.get('val_accuracy', float('nan')):.3f}"
        )
        if ckpt is not None and main:  # atomic: a kill mid-write never leaves a half checkpoint
            state = _checkpoint_state(student, distiller, opt, sched, epoch + 1, history)
            _atomic_write(ckpt, partial(torch.save, state))
        if acc is not None:
            acc.wait_for_everyone()
        for cb in callbacks:
            cb(epoch + 1, record)
    student.eval()
    return history


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
def save_weights(model: nn.Module, path: str | Path) -> Path:
    """Save a model's weights as safetensors (no pickle, safe to share)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load safetensors weights into ``model``; a corrupted or mismatched file raises a clear error."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no weights file at {path}.")
    try:
        state = load_file(str(path))
    except Exception as err:
        raise RuntimeError(f"weights file {path} is corrupted ({err}); delete it to retrain.") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise RuntimeError(f"weights in {path} do not fit this model: {str(err).splitlines()[0]}") from None
    return model


def _fingerprint(data: ImageData) -> str:
    """A short hash of the images and labels (a strided sample of pixels, all labels): the same data read
    from another folder or machine gives the same cache key; different data does not."""
    flat = data.x.detach().reshape(-1)
    step = max(1, flat.numel() // 1_000_000)
    h = hashlib.sha1(flat[::step].float().cpu().numpy().round(4).tobytes())
    h.update(data.y.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


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
    """``fit`` unless a checkpoint for exactly this model, data and config is cached; then load it.

    The cache key hashes the model's architecture, the data (name, size, content) and the config, so changing
    any of them retrains. Weights are stored as safetensors next to a JSON history.
    """
    cfg = config or TrainConfig()
    key_src = json.dumps(
        [
            repr(model),
            train.name,
            _fingerprint(train),  # the data's content, not where it was read from
            len(train),
            method,
            # augment=False and steps=None are left out so that caches made before the fields existed stay valid;
            # progress and accelerate do not change the weights
            {
                k: v
                for k, v in dataclasses.asdict(cfg).items()
                if (k, v) not in (("augment", False), ("steps", None)) and k != "accelerate"
            }
            | {"progress": None},
        ],
        sort_keys=True,
        default=str,
    )
    key = hashlib.sha1(key_src.encode()).hexdigest()[:10]
    folder = Path(cache) if cache is not None else cache_dir() / "checkpoints"
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
    history = fit(model, train, method=method, teacher=teacher, config=cfg, val=val)
    if is_main_process():  # under a multi-process launcher, one process writes the cache
        # each file is written whole under a temporary name and then renamed (atomic): a killed run leaves the
        # previous entry or none, never half a file; the weights go first, so a history always has its weights
        _atomic_write(weights, lambda tmp: save_weights(model, tmp))
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
