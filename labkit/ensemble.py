"""Ensembles as teachers, and distillation without a fixed teacher: mutual learning and born-again networks.

* ``EnsembleTeacher`` - K trained members presented as one teacher module: ``forward(x)`` returns the fused
  log-probabilities ``(B, C)`` (``labkit.multiteacher.fuse_teachers``: averaged probabilities, averaged logits
  or a log-space mixture), so ``lk.evaluate``, ``lk.count_parameters`` and ``lk.fit(..., teacher=ensemble)``
  treat the ensemble like any model. With ``feature_member=k`` it also returns member ``k``'s stage features,
  so FitNets hints (method ``hint``) can distil from the ensemble's outputs plus one member's features.
* ``prob_mse_loss`` / ``label_distillation_loss`` - "label distillation": the squared error between student
  and teacher *probabilities* (method ``mse`` of ``lk.fit``). Ba & Caruana (2014) regressed the *logits*
  instead; Hinton et al. (2015, Sec. 2.1) show that KD at high temperature approaches that logit regression.
* ``dml_loss`` / ``mutual_learning`` - deep mutual learning (Zhang et al., 2018): K peers trained together,
  each on its labels plus the KL to the other peers' predictions, with no pre-trained teacher.
* ``born_again`` - born-again networks (Furlanello et al., 2018): generation ``g`` is a student of the same
  architecture distilled from generation ``g - 1``.
* ``inference_ms`` - measured forward time of one batch, for the size and cost columns of a results table.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ._validate import (
    check_choice,
    check_input_batch,
    check_positive_int,
    check_temperature,
)
from .data import ImageData, batches
from .losses import dml_loss, label_distillation_loss, prob_mse_loss  # re-exported (lesson 07)
from .methods import METHODS
from .metrics import batched_outputs, evaluate
from .multiteacher import FUSIONS, fuse_teachers
from .training import (
    OPTIMIZERS,
    History,
    TrainConfig,
    _autocast,
    _use_scaler,
    fit,
    get_device,
    seed_everything,
)

__all__ = [
    "EnsembleTeacher",
    "born_again",
    "dml_loss",
    "inference_ms",
    "label_distillation_loss",
    "mutual_learning",
    "prob_mse_loss",
]


# ------------------------------------------------------------------------------------------ the ensemble
class EnsembleTeacher(nn.Module):
    """K trained classifiers as one model: ``forward(x)`` -> fused log-probabilities ``(B, C)``.

    ``space``: ``"prob"`` (average the probabilities, a mixture), ``"logit"`` (average the logits) or
    ``"logprob"`` (normalised geometric mixture; for members over the same classes it equals ``"logit"``, since
    ``mean_k log p_k`` and ``mean_k z_k`` differ by a constant per example). ``weights``: one per member
    (default uniform). ``feature_member``: index of the member whose stage features
    ``forward(x, return_features=True)`` returns, next to the fused output; needed for method ``hint``.
    Members are put in ``eval()`` mode and stay there whatever the ensemble's mode (trained members are not
    trained further: their BatchNorm statistics and dropout stay frozen).
    """

    def __init__(
        self,
        members: Sequence[nn.Module],
        space: str = "prob",
        weights: Sequence[float] | None = None,
        feature_member: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(members, (list, tuple)):
            raise TypeError(f"members must be a list of trained models, got {type(members).__name__}.")
        if len(members) == 0:
            raise ValueError("an ensemble needs at least one member, got zero.")
        if not all(isinstance(m, nn.Module) for m in members):
            raise ValueError("every ensemble member must be an nn.Module.")
        widths = [getattr(m, "num_classes", None) for m in members]
        if None in widths or len(set(widths)) != 1:
            raise ValueError(
                f"ensemble members must all have the same num_classes attribute, got {widths}; fuse members "
                "with different label spaces with lk.stack_teacher_logits(..., class_maps=...)."
            )
        shapes = {tuple(m.in_shape) for m in members if hasattr(m, "in_shape")}
        if len(shapes) > 1:
            raise ValueError(
                f"ensemble members must read the same input shape, got in_shape {sorted(shapes)}."
            )
        self.members = nn.ModuleList(members)
        self.num_classes = int(widths[0])
        self.space = check_choice(space, FUSIONS, "fusion space")
        w = None
        if weights is not None:
            try:
                w = torch.as_tensor([float(v) for v in weights], dtype=torch.float32)
            except (TypeError, ValueError):
                raise ValueError(
                    f"weights must be a list of {len(members)} numbers >= 0 (one per member), got {weights!r}."
                ) from None
            if len(w) != len(members) or not torch.isfinite(w).all() or (w < 0).any() or float(w.sum()) <= 0:
                raise ValueError(
                    f"weights must be {len(members)} numbers >= 0, not all 0; got {list(weights)}."
                )
            w = w / w.sum()
        self.register_buffer("weights", w, persistent=False)
        self.feature_member = feature_member
        if feature_member is not None:
            if (
                isinstance(feature_member, bool)
                or not isinstance(feature_member, int)
                or not 0 <= feature_member < len(members)
            ):
                raise ValueError(
                    f"feature_member must index a member (0..{len(members) - 1}), got {feature_member!r}."
                )
            source = members[feature_member]
            if not hasattr(source, "feature_channels"):
                raise ValueError(f"member {feature_member} returns no features (not a labkit.models model).")
            self.feature_channels = list(source.feature_channels)
            self.spatial_features = getattr(source, "spatial_features", True)
        self.members.eval()

    def train(self, mode: bool = True) -> EnsembleTeacher:
        super().train(mode)
        self.members.eval()  # BatchNorm statistics and dropout of trained members stay frozen
        return self

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        feats = None
        logits = []
        for k, member in enumerate(self.members):
            if return_features and k == self.feature_member:
                z, feats = member(x, return_features=True)
            else:
                z = member(x)
            logits.append(z.float())  # (B, C)
        if return_features and feats is None:
            raise ValueError("this ensemble returns no features: build it with feature_member=<index>.")
        stack = torch.stack(logits, dim=1)  # (B, K, C)
        w = None if self.weights is None else self.weights.to(x.device).expand(stack.shape[0], -1)
        fused = fuse_teachers(stack, w, self.space)  # (B, C) log-probabilities
        return (fused, feats) if return_features else fused


# ---------------------------------------------------------------------------------- training without a teacher
def _check_students(students: Sequence[nn.Module], train: ImageData, minimum: int, what: str) -> None:
    if not isinstance(train, ImageData):
        raise TypeError(f"{what}: train must be an lk.ImageData, got {type(train).__name__}.")
    if len(train) == 0:
        raise ValueError(f"{what}: train is empty; it needs at least one example.")
    if not isinstance(students, (list, tuple)) or len(students) < minimum:
        n = len(students) if isinstance(students, (list, tuple)) else type(students).__name__
        raise ValueError(f"{what} needs at least {minimum} students, got {n}.")
    if len({id(s) for s in students}) != len(students):
        raise ValueError(f"{what} needs distinct student modules; the same module was passed twice.")
    for i, s in enumerate(students):
        if not isinstance(s, nn.Module):
            raise ValueError(f"student {i} must be an nn.Module, got {type(s).__name__}.")
        k = getattr(s, "num_classes", None)
        if k is not None and k != train.num_classes:
            raise ValueError(f"student {i} has {k} outputs but the data have {train.num_classes} classes.")
        shape = getattr(s, "in_shape", None)
        if shape is not None and tuple(shape) != train.in_shape:
            raise ValueError(
                f"student {i} was built for in_shape {tuple(shape)} but the images are {train.in_shape}."
            )


def _check_config(config, val, what: str) -> TrainConfig:
    if config is not None and not isinstance(config, TrainConfig):
        raise TypeError(f"{what}: config must be an lk.TrainConfig (or None), got {type(config).__name__}.")
    if val is not None and not isinstance(val, ImageData):
        raise TypeError(f"{what}: val must be an lk.ImageData (or None), got {type(val).__name__}.")
    return config or TrainConfig()


def mutual_learning(
    students: Sequence[nn.Module],
    train: ImageData,
    config=None,
    *,
    temperature: float = 1.0,
    val: ImageData | None = None,
) -> list:
    """Train K peers together with ``dml_loss`` (deep mutual learning); returns one ``History`` per peer.

    Same loop as ``lk.fit`` (optimiser, schedule, batch order from ``config``; the ``temperature`` of the
    KL terms is separate because the paper uses 1, not the KD default of 4): every batch, all peers predict,
    each peer's loss uses the others' predictions detached, and one optimiser step updates all peers. No
    checkpointing. Peers are left in ``eval()`` mode.
    """
    _check_students(students, train, 2, "mutual learning")
    cfg = _check_config(config, val, "mutual_learning")
    t = check_temperature(temperature)
    device = get_device(cfg.device)
    seed_everything(cfg.seed)
    for s in students:
        s.to(device)
    params = [p for s in students for p in s.parameters()]
    opt = OPTIMIZERS[cfg.optimizer](params, cfg)
    per_epoch = max(1, math.ceil(len(train) / cfg.batch_size))
    steps = cfg.steps if cfg.steps is not None else cfg.epochs * per_epoch  # as in lk.fit
    cosine = lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))  # noqa: E731
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine if cfg.schedule == "cosine" else (lambda s: 1.0))
    scaler = torch.amp.GradScaler(
        "cuda", enabled=_use_scaler(device, cfg.amp)
    )  # fp16 below CC 8.0, as in fit
    x, y = train.x.to(device), train.y.to(device)
    histories = [History() for _ in students]
    for epoch in range(-(-steps // per_epoch)):
        for s in students:
            s.train()
        t0, seen = time.perf_counter(), 0
        totals, correct = [0.0] * len(students), [0] * len(students)
        epoch_batches = batches(
            x, y, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed * 100_003 + epoch
        )
        for b, (xb, yb) in enumerate(epoch_batches):
            if b == steps - epoch * per_epoch:  # the step budget ends inside this pass
                break
            with _autocast(device, cfg.amp):
                logits = [s(xb) for s in students]  # K x (B, C)
                losses = dml_loss(logits, yb, t)  # (K,)
            if not torch.isfinite(losses).all():
                raise FloatingPointError(
                    f"mutual learning loss became {losses.tolist()} at epoch {epoch + 1}."
                )
            opt.zero_grad(set_to_none=True)
            scaler.scale(losses.sum()).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            mask = yb >= 0
            for i, z in enumerate(logits):
                totals[i] += losses[i].item() * len(xb)
                correct[i] += int((z.argmax(1)[mask] == yb[mask]).sum())
            seen += len(xb)
        labelled = int((y >= 0).sum())
        for i, s in enumerate(students):
            record = {
                "epoch": epoch + 1,
                "train_loss": totals[i] / max(seen, 1),
                "train_accuracy": correct[i] / labelled if labelled else float("nan"),
                "seconds": time.perf_counter() - t0,
            }
            if val is not None:
                record.update({f"val_{k}": v for k, v in evaluate(s, val).items()})
            histories[i].records.append(record)
    for s in students:
        s.eval()
    return histories


def born_again(
    make_student: Callable[[int], nn.Module],
    train: ImageData,
    teacher: nn.Module,
    generations: int,
    config=None,
    *,
    method: str = "kd",
    val: ImageData | None = None,
) -> tuple[list[nn.Module], list]:
    """Born-again networks (Furlanello et al., 2018): ``make_student(g)`` builds generation ``g = 1..G``, which
    is distilled (``lk.fit(..., method=method)``) from generation ``g - 1``; generation 0 is ``teacher``,
    usually a model of the same architecture trained from labels. Returns ``(students, histories)``, one per
    generation. Every generation uses ``config`` unchanged (the same batch order).
    """
    check_positive_int(generations, "generations")
    if not callable(make_student) or isinstance(make_student, nn.Module):
        raise ValueError("make_student must be a function generation -> a fresh nn.Module (not a model).")
    if not isinstance(teacher, nn.Module):
        raise ValueError(f"born_again needs a trained teacher (generation 0), got {type(teacher).__name__}.")
    if not isinstance(train, ImageData):
        raise TypeError(f"born_again: train must be an lk.ImageData, got {type(train).__name__}.")
    check_choice(method, METHODS, "method")
    if not METHODS[method].needs_teacher:
        raise ValueError(
            f"born_again distils each generation from the previous one; method {method!r} ignores the teacher "
            "(choose a distillation method such as 'kd')."
        )
    k = getattr(teacher, "num_classes", None)
    if isinstance(k, int) and k != train.num_classes:
        raise ValueError(
            f"the teacher has {k} classes but the data {train.num_classes}: distil over one label space."
        )
    cfg = _check_config(config, val, "born_again")
    students, histories, previous = [], [], teacher
    for g in range(1, generations + 1):
        student = make_student(g)
        if not isinstance(student, nn.Module):
            raise TypeError(f"make_student({g}) must return a new nn.Module, got {type(student).__name__}.")
        _check_students([student], train, 1, "born_again")
        if any(student is m for m in (teacher, *students)):
            raise ValueError(
                f"make_student({g}) returned a model of an earlier generation; build a fresh one."
            )
        histories.append(fit(student, train, method=method, teacher=previous, config=cfg, val=val))
        students.append(student)
        previous = student
    return students, histories


# ------------------------------------------------------------------------------------------------ cost
@torch.inference_mode()
def inference_ms(model: nn.Module, x: torch.Tensor, repeats: int = 5) -> float:
    """Median wall time in milliseconds of ``model(x)`` for one batch ``x`` ``(B, ...)``, in ``eval()`` mode
    after one warm-up call, on the device the model's parameters are on. The model's modes are restored.
    A measurement on this machine: it moves with the hardware and with whatever else is running."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"inference_ms needs an nn.Module, got {type(model).__name__}.")
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[0] == 0:
        raise ValueError("x must be a non-empty batch tensor (B, ...).")
    check_input_batch(x, "x")
    check_positive_int(repeats, "repeats")
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    x = x.to(device)
    modes = {m: m.training for m in model.modules()}
    model.eval()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    try:
        batched_outputs(model, x, len(x))  # warm-up (first-call allocations, kernels); a clear error on bad x
        model.eval()
        times = []
        for _ in range(repeats):
            sync()
            t0 = time.perf_counter()
            model(x)
            sync()
            times.append(time.perf_counter() - t0)
    finally:
        for m, mode in modes.items():
            m.training = mode
    return 1000.0 * statistics.median(times)
