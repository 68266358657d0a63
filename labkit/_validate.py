"""Input checks shared by every public labkit function.

Each check raises a ``ValueError`` (or ``TypeError`` for the wrong kind of object) whose message names the
argument, the value it got and what is allowed, so a learner never has to read a traceback from deep
inside torch to find out what went wrong.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch

__all__ = [
    "all_finite",
    "checked_upstream",
    "check_alpha",
    "check_choice",
    "check_class_counts",
    "check_finite",
    "check_has_data",
    "check_input_batch",
    "check_fraction",
    "check_index",
    "check_logit_values",
    "check_logits",
    "check_logits_pair",
    "check_positive_int",
    "check_targets",
    "check_temperature",
]


def _is_number(value: Any) -> bool:
    """A real number: int, float or a NumPy integer/float scalar (``np.float32(2.0)``, what indexing an array
    gives); bools, complex numbers, strings, tensors and arrays are not."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def check_has_data(value: Any, name: str) -> Any:
    """A tensor on PyTorch's ``meta`` device has a shape but no values (``torch.empty(..., device="meta")``, a
    model built under ``torch.device("meta")``): nothing can be computed from it. Returns ``value`` unchanged."""
    if isinstance(value, torch.Tensor) and value.is_meta:
        raise ValueError(
            f"{name} is a tensor on the 'meta' device (shape {tuple(value.shape)}, no values): labkit computes on "
            "real data. Build it on the CPU or a GPU, e.g. .to_empty(device='cpu') then load weights, or torch.tensor(...)."
        )
    return value


_UPSTREAM: contextvars.ContextVar[bool] = contextvars.ContextVar("labkit_checked_upstream", default=False)


@contextlib.contextmanager
def checked_upstream() -> Iterator[None]:
    """Inside this block the *value* checks of the losses are skipped: ``lk.fit`` enters it around its training
    loop, after it has checked its data, labels and teacher logits once, because each value check reads a
    device value back to the host (on a GPU, a stall every step). Shapes, dtypes and arguments are still checked
    (they cost no sync), the losses take their branch-free paths (a -inf teacher logit is masked, not looked
    for), and a NaN/inf that appears during training is caught by ``fit`` from the epoch's loss sum."""
    token = _UPSTREAM.set(True)
    try:
        yield
    finally:
        _UPSTREAM.reset(token)


def values_checked_upstream() -> bool:
    """True inside ``checked_upstream()`` (``lk.fit``'s training loop): skip checks that sync the host."""
    return _UPSTREAM.get()


def all_finite(*tensors: torch.Tensor) -> bool:
    """True when every entry of every (floating) tensor is finite: one reduction per tensor and a single host
    sync, the fast path of the value checks in a training step (the detailed checks run only when it is False).
    Inside ``checked_upstream()`` it returns True without looking (no sync)."""
    if _UPSTREAM.get():
        return True
    flags = [torch.isfinite(t.detach()).all() for t in tensors if t.is_floating_point() and t.numel()]
    return not flags or bool(torch.stack([f.to(flags[0].device) for f in flags]).all())


def check_finite(value: Any, name: str, *, allow_neg_inf: bool = False) -> Any:
    """Every entry of a tensor or array (or a number) must be finite; returns ``value`` unchanged.

    One NaN pixel or logit silently turns a mean, a normalisation or a loss into NaN, so it is caught where it
    enters. ``allow_neg_inf=True`` accepts -inf (labkit's mark for "class unknown" in teacher logits) but still
    refuses NaN and +inf. Integer and boolean data are always finite. The message names ``name``, how many
    entries are bad, what they are and where the first one is."""
    if isinstance(value, torch.Tensor):
        check_has_data(value, name)
        if not value.is_floating_point() or _UPSTREAM.get():  # integers cannot hold NaN; fit checked upstream
            return value
        t = value.detach()
        ok = ~(torch.isnan(t) | torch.isposinf(t)) if allow_neg_inf else torch.isfinite(t)
        if bool(ok.all()):  # the common case: one reduction on the tensor's device, no copy
            return value
        a = t.cpu().float().numpy()
    else:
        a = np.asarray(value)
        if a.dtype.kind == "O":
            try:
                a = a.astype(np.float64)
            except (TypeError, ValueError):
                return value  # not numbers at all: the caller's type check says so
        if a.dtype.kind != "f" or (not allow_neg_inf and np.isfinite(a).all()):
            return value
    nan, pos, neg = np.isnan(a), np.isposinf(a), np.isneginf(a)
    bad = nan | pos if allow_neg_inf else nan | pos | neg
    if not bad.any():
        return value
    counts = [(int(m.sum()), label) for m, label in ((nan, "NaN"), (pos, "+inf"), (neg, "-inf"))]
    kinds = ", ".join(f"{c} {label}" for c, label in counts if c and (label != "-inf" or not allow_neg_inf))
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    where = f" (first at index {first[0] if len(first) == 1 else first})" if first else ""
    allowed = (
        "finite numbers or -inf (probability 0: a class that is masked or unknown)"
        if allow_neg_inf
        else "finite numbers"
    )
    raise ValueError(
        f"{name} must hold {allowed}, got {kinds} among {a.size} entries{where}. "
        "Look for a division by zero, a log of 0 or an overflow where it was computed."
    )


def check_input_batch(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """A batch of model inputs (images, features) holds real numbers: float tensors (uint8 pixels and integer
    token ids are data that a model converts itself, so they pass too). Bool and complex tensors, and tensors on
    the ``meta`` device, are errors naming ``name``."""
    check_has_data(x, name)
    if x.dtype == torch.bool or x.is_complex():
        raise ValueError(
            f"{name} must hold the model's input values (float images or features), got a {x.dtype} tensor: a "
            "mask or complex numbers. Convert real inputs with .float()."
        )
    return x


def check_index(idx: Any, n: int, name: str = "idx") -> torch.Tensor:
    """Integer positions into ``n`` examples -> a 1-D int64 tensor. ``idx`` is a 1-D sequence, array or tensor of
    integers in ``[0, n)``, or a boolean mask with one entry per example (``data.y != 3``), read as the positions
    where it is True. Floats, strings, other shapes and out-of-range positions are errors, never truncated."""
    if isinstance(idx, torch.Tensor):
        t = check_has_data(idx, name).detach().cpu()
    else:
        try:
            a = np.asarray(list(idx) if isinstance(idx, range) else idx)
        except ValueError:  # numpy: "setting an array element with a sequence ... inhomogeneous shape"
            lengths = [len(r) if hasattr(r, "__len__") else "a number" for r in list(idx)[:5]]
            raise ValueError(
                f"{name} must be a flat 1-D sequence of positions (or a boolean mask), got a ragged nested "
                f"sequence whose entries have lengths {lengths}. Flatten it first (e.g. sum(lists, []))."
            ) from None
        if a.size == 0:
            a = a.astype(np.int64)
        if a.dtype.kind not in "biu":
            kind = "floats" if a.dtype.kind == "f" else f"values of type {a.dtype}"
            raise ValueError(
                f"{name} must hold integer positions or a boolean mask, got {kind} (e.g. {a.reshape(-1)[:3].tolist()})."
                " Convert with .long() / .astype(int) only if those values really are positions."
            )
        t = torch.from_numpy(np.ascontiguousarray(a))
    if t.dim() != 1:
        raise ValueError(f"{name} must be 1-D (positions or a boolean mask), got shape {tuple(t.shape)}.")
    if t.dtype == torch.bool:
        if len(t) != n:
            raise ValueError(f"a boolean mask {name} needs one entry per example ({n}), got {len(t)}.")
        return t.nonzero().flatten()
    if t.is_floating_point() or t.is_complex():
        raise ValueError(f"{name} must hold integer positions or a boolean mask, got a {t.dtype} tensor.")
    t = t.long()
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n):
        bad = t[(t < 0) | (t >= n)][:5].tolist()
        raise ValueError(f"{name}: indices must lie in [0, {n}), got {bad}.")
    return t


def check_temperature(temperature: float, name: str = "temperature", maximum: float | None = None) -> float:
    """A softmax temperature must be a finite number > 0 (T = 1 is the plain softmax), and at most ``maximum``
    where one is given (the distillation losses: see ``labkit.losses.MAX_TEMPERATURE``)."""
    if not _is_number(temperature) or not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(
            f"{name} must be a finite number > 0 (typical values 1-20; T=1 is the plain softmax), "
            f"got {temperature!r}. A temperature of 0 would divide the logits by zero."
        )
    if maximum is not None and temperature > maximum:
        raise ValueError(
            f"{name} must be at most {maximum:g} in a distillation loss (typical values 1-20), got {temperature!r}. "
            "The T^2-scaled KL is a difference of nearly equal numbers at large T: in float32 its rounding error "
            "grows like 4e-7 * T^2 and exceeds the loss itself (it even turns negative). For the T -> infinity "
            "limit, match centred logits with a squared error (Hinton et al., 2015, Sec. 2.1)."
        )
    return float(temperature)


def check_fraction(value: float, name: str) -> float:
    """A weight in the closed interval [0, 1]."""
    if not _is_number(value) or not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}.")
    return float(value)


def check_alpha(alpha: float, name: str = "alpha") -> float:
    """The KD weight alpha mixes (1 - alpha) * CE + alpha * T^2 * KL, so it lives in [0, 1]."""
    if not _is_number(alpha) or not math.isfinite(alpha) or not 0.0 <= alpha <= 1.0:
        raise ValueError(
            f"{name} must be in [0, 1] (the loss is (1 - alpha) * CE + alpha * T^2 * KL; "
            f"alpha=0 is plain cross-entropy, alpha=1 pure distillation), got {alpha!r}."
        )
    return float(alpha)


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (a NumPy integer too, returned as ``int``); bools and floats are refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = f" (a {type(value).__name__})" if not isinstance(value, (int, np.integer)) else ""
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}{kind}.")
    return int(value)


def check_choice(value: str, choices: Iterable[str] | Mapping[str, Any], name: str) -> str:
    """``value`` must be one of ``choices`` (a registry's keys); the message lists them."""
    options = sorted(choices.keys() if isinstance(choices, Mapping) else choices)
    if value not in options:
        raise ValueError(f"unknown {name} {value!r}; choose one of: {', '.join(options)}.")
    return value


def check_logits(logits: Any, name: str = "logits", allow_empty: bool = True) -> torch.Tensor:
    """Logits are a floating tensor of shape (batch, num_classes); ``allow_empty=False`` (the losses) refuses a
    batch of 0 examples, whose mean would be NaN."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (batch, num_classes), got {type(logits).__name__}."
        )
    check_has_data(logits, name)
    if logits.dim() != 2:
        raise ValueError(f"{name} must have shape (batch, num_classes), got shape {tuple(logits.shape)}.")
    if not logits.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {logits.dtype}.")
    if logits.shape[1] == 0:
        raise ValueError(
            f"{name} has 0 classes (shape {tuple(logits.shape)}): a distribution needs at least one."
        )
    if not allow_empty and logits.shape[0] == 0:
        raise ValueError(
            f"{name} is an empty batch (shape {tuple(logits.shape)}): a loss averages over the examples, and the "
            "mean of none is undefined. Check the subset or mask that selected the batch."
        )
    return logits


def check_logit_values(
    logits: torch.Tensor, name: str = "logits", allow_neg_inf: bool = True
) -> torch.Tensor:
    """Logit values: NaN and +inf are errors; -inf (probability 0: a class that is masked or unknown) is allowed
    when ``allow_neg_inf``, but not in every class of a row, which would leave no distribution (softmax of
    all -inf is NaN). ``logits`` is a float tensor ``(..., num_classes)`` (already shape-checked)."""
    if all_finite(logits):  # the common case: one host sync
        return logits
    check_finite(logits, name, allow_neg_inf=allow_neg_inf)
    if allow_neg_inf and logits.numel():
        dead = torch.isneginf(logits).all(dim=-1)  # (...,)
        if bool(dead.any()):
            first = tuple(int(i) for i in dead.nonzero()[0])
            raise ValueError(
                f"{name}: row {first[0] if len(first) == 1 else first} is -inf for every class, which gives "
                "no class any probability (its softmax is NaN). -inf may mark some classes, never all."
            )
    return logits


def check_logits_pair(student_logits: Any, teacher_logits: Any, allow_empty: bool = True) -> None:
    """Student and teacher logits must describe the same batch over the same classes."""
    check_logits(student_logits, "student_logits", allow_empty)
    check_logits(teacher_logits, "teacher_logits", allow_empty)
    (bs, ks), (bt, kt) = student_logits.shape, teacher_logits.shape
    if ks != kt:
        raise ValueError(
            f"teacher has {kt} classes but student has {ks}: distillation compares distributions over the same "
            "label space. Map the teacher's classes onto the student's first (or give the student "
            f"{kt} outputs)."
        )
    if bs != bt:
        raise ValueError(
            f"student_logits and teacher_logits have different batch sizes ({bs} vs {bt}); "
            "they must come from the same inputs."
        )


def check_targets(targets: Any, batch: int, num_classes: int, allow_unlabelled: bool = True) -> torch.Tensor:
    """Integer class indices of shape (batch,) -> an int64 tensor (use the returned tensor: int32, int16, uint8
    ... are accepted and converted, as torch's losses need int64); -1 marks an unlabelled transfer-set example."""
    if not isinstance(targets, torch.Tensor) or targets.dim() != 1:
        shape = tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
        raise ValueError(f"targets must be a 1-D tensor of class indices (batch,), got {shape}.")
    check_has_data(targets, "targets")
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise ValueError(
            f"targets must hold integer class indices, got dtype {targets.dtype}. Labels read as floats: convert "
            "with .long() only if they are whole numbers; a boolean tensor is a mask, not labels."
        )
    if targets.numel() != batch:
        raise ValueError(f"targets has {targets.numel()} entries but the logits have batch size {batch}.")
    targets = targets.long()  # int32 / int16 / uint8 -> int64, what F.cross_entropy and gather need
    if _UPSTREAM.get():  # inside fit: its data's labels were range-checked once (ImageData)
        return targets
    low = -1 if allow_unlabelled else 0
    lo, hi = (
        torch.stack([targets.min(), targets.max()]).tolist() if targets.numel() else (low, low)
    )  # one sync
    if lo < low or hi >= num_classes:
        allowed = f"-1 (unlabelled) or 0..{num_classes - 1}" if allow_unlabelled else f"0..{num_classes - 1}"
        hint = ""
        if lo < low:
            hint = (
                " labkit marks an unlabelled example with -1 (not PyTorch's ignore_index -100)."
                if allow_unlabelled
                else " Every example needs a label here."
            )
        raise ValueError(f"targets must be class indices in {allowed}, got values in [{lo}, {hi}].{hint}")
    return targets


def check_class_counts(teacher_classes: int, student_classes: int) -> None:
    """A teacher and a student built for different numbers of classes cannot be distilled directly."""
    if teacher_classes != student_classes:
        raise ValueError(
            f"teacher has {teacher_classes} classes but student has {student_classes}: distillation compares "
            "distributions over the same label space."
        )
