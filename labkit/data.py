"""Datasets as in-memory tensors, batching on any device, and the splits that distillation lessons need.

Every dataset comes back as float32 images ``(N, C, H, W)`` normalised with the *training* split's
per-channel mean/std, and int64 labels ``(N,)`` where ``-1`` marks an unlabelled transfer-set example.

``load_dataset`` looks for ``fashion_mnist`` / ``cifar10`` in this order: a local data folder (``data_dir`` or
``$LABKIT_DATA_DIR``, layout ``<dir>/cifar10/cifar10.npz``), a torchvision download (time-bounded), and
finally scikit-learn's bundled 8x8 digits, announced with a loud banner and a warning so that nobody
mistakes digits results for CIFAR-10 results. ``digits`` itself is always available offline.
"""

from __future__ import annotations

import os
import socket
import tarfile
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch

from ._validate import check_choice, check_fraction, check_has_data, check_index, check_positive_int

__all__ = [
    "DATASETS",
    "DataSplits",
    "ImageData",
    "batches",
    "cache_dir",
    "concat",
    "few_labels_split",
    "per_class_budget",
    "random_crop_flip",
    "load_dataset",
    "num_batches",
    "train_val_split",
]

_DIGITS_SPLIT_SEED = 0  # the digits train/test split is fixed, the same on every machine
_DIGITS_TEST_SIZE = 450  # 1,797 images -> 1,347 train / 450 test
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test", "classes")


def _bad_rows(bad: np.ndarray | torch.Tensor) -> list[int]:
    """The first (at most 5) row indices where the boolean ``bad`` (N, ...) is True anywhere in the row."""
    if bad.ndim == 0:
        return []
    rows = bad.reshape(len(bad), -1).any(1) if bad.ndim > 1 else bad
    first = rows.nonzero()[0][:5] if isinstance(rows, np.ndarray) else rows.nonzero().flatten()[:5]
    return [int(i) for i in first]


def _check_finite(a: np.ndarray | torch.Tensor, name: str, where: str = "", hint: str = "") -> None:
    """Raise a ValueError saying how many values of ``a`` are NaN or +-inf and in which rows (dim 0), if any.

    Integer arrays are skipped (always finite); for floats one sum is the fast path (NaN and inf propagate
    through it), so clean data costs one pass and no copy; only a non-finite sum looks at every value."""
    if isinstance(a, torch.Tensor):
        if not (a.is_floating_point() or a.is_complex()) or a.numel() == 0:
            return
        a = a.detach()  # no autograd graph for a check
        if bool(torch.isfinite(a.sum())):
            return
        bad = ~torch.isfinite(a)
        n_nan, n_bad = int(torch.isnan(a).sum()), int(bad.sum())
    else:
        if a.dtype.kind not in "fc" or a.size == 0:
            return
        with np.errstate(all="ignore"):
            if np.isfinite(a.sum(dtype=np.float64 if a.dtype.kind == "f" else None)):
                return
        bad = ~np.isfinite(a)
        n_nan, n_bad = int(np.isnan(a).sum()), int(bad.sum())
    if n_bad == 0:  # the sum overflowed, every value is finite
        return
    rows = _bad_rows(bad)
    raise ValueError(
        f"{where + ': ' if where else ''}{name} has {n_bad:,} non-finite value(s) ({n_nan:,} NaN, "
        f"{n_bad - n_nan:,} +-inf); first bad rows {rows}. {hint}".rstrip()
    )


def _check_labels(y: Any, n: int, classes: Any, owner: str, device: torch.device | None = None) -> None:
    """``y``: int64 (N,) class indices in ``[0, len(classes))`` or -1 (unlabelled), on ``device``."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(
            f"{owner}.y must be an int64 torch.Tensor (N,) of class indices, got {type(y).__name__}."
        )
    if y.dim() != 1:
        raise ValueError(f"{owner}.y must have shape (N,), got shape {tuple(y.shape)}.")
    check_has_data(y, f"{owner}.y")
    if y.dtype != torch.int64:
        fix = "y.long()" if not (y.is_floating_point() or y.dtype == torch.bool) else "integer class indices"
        raise ValueError(f"{owner}.y must be int64 class indices, got dtype {y.dtype}; use {fix}.")
    if len(y) != n:
        raise ValueError(f"{owner} has {n} examples but y has {len(y)} labels; they must match one to one.")
    if device is not None and y.device != device:
        raise ValueError(f"{owner}.x is on {device} but y on {y.device}; move both with .to(device).")
    k = len(classes) if isinstance(classes, (list, tuple)) else 0
    if len(y):
        bad = (y < -1) | (y >= k)
        if bool(bad.any()):
            raise ValueError(
                f"{owner}.y: labels must be -1 (unlabelled) or 0..{k - 1} for {k} classes, got "
                f"{int(bad.sum())} label(s) outside that range (values in [{int(y.min())}, {int(y.max())}], "
                f"first rows {_bad_rows(bad)})."
            )


def _check_meta(classes: Any, name: Any, source: Any, owner: str) -> tuple[list[str], str, str]:
    """``classes``: a non-empty list (or tuple) of distinct str; ``name``, ``source``: str."""
    if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes):
        raise TypeError(f"{owner}.classes must be a list of class names (str), got {classes!r:.80}.")
    if not classes or len(set(classes)) != len(classes):
        dup = sorted({c for c in classes if classes.count(c) > 1})
        raise ValueError(
            f"{owner}.classes must be non-empty and distinct, got {len(classes)} names, repeated {dup}."
        )
    for value, arg in ((name, "name"), (source, "source")):
        if not isinstance(value, str):
            raise TypeError(f"{owner}.{arg} must be a str, got {type(value).__name__}.")
    return (classes if isinstance(classes, list) else list(classes)), name, source


def _check_seed(seed: Any, name: str = "seed") -> int:
    """A seed is an int >= 0 (numpy integers too); a string or a float is an error, not a surprise."""
    if isinstance(seed, np.integer):
        seed = int(seed)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {seed!r} ({type(seed).__name__}).")
    return seed


def _check_kind(value: Any, kinds: type | tuple[type, ...], name: str, what: str) -> None:
    if not isinstance(value, kinds):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}.")


def _check_path(value: Any, name: str) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise TypeError(f"{name} must be a path (str or pathlib.Path), got {value!r:.80}.")
    return Path(value).expanduser()


def _check_flag(value: Any, name: str) -> bool:
    """True/False (or 1/0); a string such as "no" would silently count as True."""
    if not (isinstance(value, (bool, np.bool_)) or (isinstance(value, int) and value in (0, 1))):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


@dataclass(eq=False, repr=False)
class ImageData:
    """A labelled (or unlabelled) image set held in memory.

    ``x``: float32 ``(N, C, H, W)``, normalised. ``y``: int64 ``(N,)``, class index or ``-1`` (unlabelled).
    """

    x: torch.Tensor
    y: torch.Tensor
    classes: list[str]
    name: str
    source: str

    def __post_init__(self) -> None:
        x = self.x
        if not isinstance(x, torch.Tensor):
            hint = " (from numpy: torch.from_numpy(a).float())" if isinstance(x, np.ndarray) else ""
            raise TypeError(f"ImageData.x must be a torch.Tensor (N, C, H, W), got {type(x).__name__}{hint}.")
        if x.dim() != 4:
            raise ValueError(
                f"ImageData.x must have shape (N, C, H, W), got shape {tuple(x.shape)}. Feature vectors are "
                "(N, 1, 1, D): x.view(len(x), 1, 1, -1)."
            )
        if not x.is_floating_point():
            raise ValueError(
                f"ImageData.x must be a floating tensor, got dtype {x.dtype}: scale and convert first, e.g. "
                "x.float() / 255 for uint8 pixels."
            )
        if (
            x.dtype == torch.float64
        ):  # numpy's default: every labkit model is float32 and would fail inside torch
            raise ValueError(
                "ImageData.x is float64 (numpy's default dtype) but labkit's models compute in float32: "
                "convert it once with x.float()."
            )
        self.classes, self.name, self.source = _check_meta(self.classes, self.name, self.source, "ImageData")
        _check_labels(self.y, len(x), self.classes, "ImageData", x.device)
        _check_finite(x, "ImageData.x", hint="Find and fix the source of the bad values before training.")

    def __len__(self) -> int:
        return len(self.y)

    def __repr__(self) -> str:
        labelled = int((self.y >= 0).sum())
        return (
            f"ImageData(name={self.name!r}, n={len(self)}, shape={self.in_shape}, classes={self.num_classes}, "
            f"labelled={labelled}, device={self.x.device}, source={self.source!r})"
        )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        c, h, w = self.x.shape[1:]
        return (int(c), int(h), int(w))

    @classmethod
    def _trusted(
        cls, x: torch.Tensor, y: torch.Tensor, classes: list[str], name: str, source: str
    ) -> ImageData:
        """Construction without the checks, for data valid by construction (the same tensors on another device,
        other labels of a checked set, integer pixels after normalisation): no pass over the pixels."""
        obj = cls.__new__(cls)
        obj.x, obj.y, obj.classes, obj.name, obj.source = x, y, classes, name, source
        return obj

    def _replace(self, x: torch.Tensor, y: torch.Tensor) -> ImageData:
        return ImageData(x, y, list(self.classes), self.name, self.source)

    def subset(self, idx: torch.Tensor | np.ndarray | Sequence[int]) -> ImageData:
        """The images at the integer indices ``idx`` (any 1-D sequence, array or tensor), in that order, or where
        the boolean mask ``idx`` (one entry per image, e.g. ``data.y != 3``) is True."""
        idx = check_index(idx, len(self))
        return self._replace(
            self.x.index_select(0, idx.to(self.x.device)), self.y.index_select(0, idx.to(self.y.device))
        )

    def to(self, device: torch.device | str) -> ImageData:
        """The same data on ``device`` (no copy when already there)."""
        device = _check_device(device)
        return ImageData._trusted(
            self.x.to(device), self.y.to(device), list(self.classes), self.name, self.source
        )

    def unlabelled(self) -> ImageData:
        """A copy whose labels are all ``-1``: a transfer set that only a teacher can label."""
        return ImageData._trusted(
            self.x, torch.full_like(self.y, -1), list(self.classes), self.name, self.source
        )


@dataclass(eq=False)
class _Splits:
    """Train and test splits with the same classes; the shared part of ``DataSplits`` and ``TextSplits``."""

    train: Any
    test: Any
    fell_back: bool = False

    _kind: ClassVar[type | None] = None  # the data type both splits hold (set by each subclass)

    def __post_init__(self) -> None:
        kind = self._kind or ImageData
        owner = type(self).__name__
        for split in ("train", "test"):
            _check_kind(getattr(self, split), kind, f"{owner}.{split}", f"a {kind.__name__}")
        if self.train.classes != self.test.classes:
            raise ValueError(
                f"{owner}: train and test must have the same classes in the same order, got "
                f"{self.train.classes} and {self.test.classes}."
            )
        self.fell_back = _check_flag(self.fell_back, f"{owner}.fell_back")

    @property
    def classes(self) -> list[str]:
        return self.train.classes

    @property
    def num_classes(self) -> int:
        return self.train.num_classes

    @property
    def name(self) -> str:
        return self.train.name

    @property
    def source(self) -> str:
        return self.train.source


@dataclass(eq=False)
class DataSplits(_Splits):
    """The train and test splits of one dataset; ``fell_back`` is True when digits replaced the request."""

    train: ImageData
    test: ImageData

    _kind: ClassVar[type | None] = ImageData

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.train.in_shape != self.test.in_shape:
            raise ValueError(
                f"DataSplits: train images are {self.train.in_shape} but test images {self.test.in_shape}; "
                "both splits need one image shape (C, H, W)."
            )

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return self.train.in_shape


class _Raw(NamedTuple):
    """A dataset as numpy arrays, before subsampling and conversion: images (N, H, W) or (N, H, W, C)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    source: str
    scale: float  # divide by this to get [0, 1]


class _Unavailable(Exception):
    """A dataset could not be obtained; the message says why (shown in the fallback banner)."""


def cache_dir() -> Path:
    """Where downloads and checkpoints go: ``$LABKIT_CACHE_DIR``, else ``<repo>/data/cache``, else
    ``~/.cache/labkit`` (when labkit is installed outside the repo). Created if missing."""
    root = Path(__file__).resolve().parents[1]
    default = (
        root / "data" / "cache" if (root / "pyproject.toml").is_file() else Path.home() / ".cache/labkit"
    )
    env = os.environ.get("LABKIT_CACHE_DIR")
    path = Path(env).expanduser() if env else default
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file in the way, no permission, a read-only disk
        where = f"LABKIT_CACHE_DIR={env}" if env else f"the default cache folder {path}"
        raise ValueError(
            f"cannot use {where} as labkit's cache folder ({type(err).__name__}: {err.strerror or err}). Set "
            "LABKIT_CACHE_DIR to a folder you can write to (it is created if missing)."
        ) from None
    if not path.is_dir():
        raise ValueError(f"LABKIT_CACHE_DIR={env} is not a folder; point it to a folder you can write to.")
    return path


def _check_device(device: Any) -> torch.device:
    """A device that torch knows and this machine has; a clear error instead of torch's."""
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a str such as 'cpu' or 'cuda', or a torch.device, got {device!r}.")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(
            f"device {device!r} is not a torch device ('cpu', 'cuda', 'cuda:0', 'mps'): {err}"
        ) from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(dev.type, True):
        raise ValueError(
            f"device {device!r}: this machine has no {dev.type} device (torch sees none); use 'cpu'."
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here.")
    return dev


def _digits(**_: Any) -> _Raw:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x, y = bunch.images.astype(np.float32), bunch.target.astype(np.int64)  # (1797, 8, 8) in 0..16
    test = _stratified_choice(y, _DIGITS_TEST_SIZE, np.random.default_rng(_DIGITS_SPLIT_SEED))
    train = np.setdiff1d(np.arange(len(y)), test)
    classes = [str(c) for c in bunch.target_names]
    return _Raw(x[train], y[train], x[test], y[test], classes, "scikit-learn digits", 16.0)


def _local_npz(name: str, data_dir: str | Path | None, verbose: bool) -> Path | None:
    """The local ``<dir>/<name>/<name>.npz``, or None when only ``$LABKIT_DATA_DIR`` was given and lacks it."""
    rel = Path(name) / f"{name}.npz"
    if data_dir is not None:
        path = Path(data_dir).expanduser() / rel
        if not path.is_file():
            is_file = " (data_dir is a file, not a folder)" if Path(data_dir).expanduser().is_file() else ""
            raise FileNotFoundError(
                f"{path} not found{is_file}. data_dir must hold the course's offline data folder, laid out as "
                "<data_dir>/cifar10/cifar10.npz and <data_dir>/fashion_mnist/fashion_mnist.npz (keys "
                f"{', '.join(_NPZ_KEYS)}; uint8 images HWC or HW). Pass data_dir=None to download instead."
            )
        return path
    env = os.environ.get("LABKIT_DATA_DIR")
    if env:
        path = Path(env).expanduser() / rel
        if path.is_file():
            return path
        if verbose:
            print(f"LABKIT_DATA_DIR={env} has no {rel}; trying other sources.")
    return None


def _read_npz(path: Path) -> _Raw:
    try:
        data = np.load(path)
        if not isinstance(data, np.lib.npyio.NpzFile):  # a bare .npy array saved under the .npz name
            raise ValueError(
                f"it holds one {type(data).__name__} (a .npy file), not an .npz archive of named arrays"
            )
        with data:  # each member is decompressed when indexed (uint8, so still compact)
            arrays = {k: data[k] for k in _NPZ_KEYS if k in data.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:  # not an archive, truncated, empty
        raise _unreadable_npz(path, err) from None
    missing = [k for k in _NPZ_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{path} lacks the keys {missing}; expected {', '.join(_NPZ_KEYS)}.")
    classes = [str(c) for c in np.asarray(arrays["classes"]).reshape(-1)]
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ValueError(f"{path}: 'classes' must hold at least 2 distinct class names, got {classes[:10]}.")
    for split in ("train", "test"):
        _check_npz_split(path, split, arrays[f"x_{split}"], arrays[f"y_{split}"], len(classes))
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise ValueError(
            f"{path}: x_train images are {arrays['x_train'].shape[1:]} but x_test images "
            f"{arrays['x_test'].shape[1:]}; both splits need one image shape."
        )
    y_train, y_test = arrays["y_train"].astype(np.int64), arrays["y_test"].astype(np.int64)
    return _Raw(arrays["x_train"], y_train, arrays["x_test"], y_test, classes, f"local: {path}", 255.0)


def _check_npz_split(path: Path, split: str, x: np.ndarray, y: np.ndarray, k: int) -> None:
    """One split of a course .npz: images (N, H, W) or (N, H, W, C) of real numbers, finite; labels (N,) whole
    numbers in [0, k). Integer images (the course's uint8) cost no finiteness pass."""
    fix = f"Fix or regenerate {path} (keys {', '.join(_NPZ_KEYS)}; uint8 images HWC or HW)."
    if x.dtype.kind not in "uif" or x.ndim not in (3, 4) or len(x) == 0:
        raise ValueError(
            f"{path}: x_{split} must be a non-empty array of images (N, H, W) or (N, H, W, C) of numbers, got "
            f"dtype {x.dtype}, shape {x.shape}. {fix}"
        )
    if x.ndim == 4 and x.shape[-1] not in (1, 3, 4) and x.shape[1] in (1, 3, 4):
        raise ValueError(f"{path}: x_{split} looks channels-first {x.shape}; images are stored HWC. {fix}")
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(
            f"{path}: y_{split} must hold one label per image ({len(x)}), got shape {y.shape}. {fix}"
        )
    if y.dtype.kind == "f":
        _check_finite(y, f"y_{split}", str(path), fix)
        if not np.array_equal(y, np.round(y)):
            raise ValueError(
                f"{path}: y_{split} holds labels that are not whole numbers (e.g. {y[y != np.round(y)][:3]}). {fix}"
            )
    elif y.dtype.kind not in "iu":
        raise ValueError(f"{path}: y_{split} must hold integer class indices, got dtype {y.dtype}. {fix}")
    bad = (y < 0) | (y >= k)
    if bad.any():
        raise ValueError(
            f"{path}: y_{split} must be class indices 0..{k - 1} (one per name in 'classes'), got "
            f"{int(bad.sum())} label(s) outside (values in [{y.min()}, {y.max()}]), first rows {_bad_rows(bad)}. {fix}"
        )
    _check_finite(x, f"x_{split}", str(path), f"{fix} Normalising would turn every image into NaN.")


def _unreadable_npz(path: Path, err: BaseException) -> ValueError:
    size = path.stat().st_size if path.is_file() else 0
    return ValueError(
        f"{path} ({size:,} bytes) is not a readable .npz archive ({type(err).__name__}: {err}). It may be truncated "
        f"or still being copied: replace it with a complete file (keys {', '.join(_NPZ_KEYS)}), or unset "
        "LABKIT_DATA_DIR / pass another data_dir to use another source."
    )


def _download(name: str, tv_class: str, timeout: float, why_not_local: str) -> _Raw:
    """Download with torchvision under a socket timeout; any failure becomes ``_Unavailable``."""
    root = cache_dir() / "downloads"
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # bounds each network read, so an offline machine fails fast
    try:
        import torchvision

        cls = getattr(torchvision.datasets, tv_class)
        train, test = (cls(root=str(root), train=split, download=True) for split in (True, False))
    except (ImportError, OSError, RuntimeError, EOFError, tarfile.TarError) as err:  # URLError is an OSError
        why = f"{why_not_local}; torchvision download of {name} failed: {type(err).__name__}: {err}"
        raise _Unavailable(why) from err
    finally:
        socket.setdefaulttimeout(previous)
    # .data: (N, 32, 32, 3) numpy array for CIFAR10, (N, 28, 28) uint8 tensor for FashionMNIST
    (xa, ya), (xb, yb) = ((np.asarray(d.data), np.asarray(d.targets, dtype=np.int64)) for d in (train, test))
    return _Raw(xa, ya, xb, yb, [str(c) for c in train.classes], f"torchvision download ({root})", 255.0)


def _vision(
    name: str, tv_class: str, *, data_dir: str | Path | None, download: bool, timeout: float, verbose: bool
) -> _Raw:
    path = _local_npz(name, data_dir, verbose)
    if path is not None:
        return _read_npz(path)
    return _download(name, tv_class, timeout, _may_download(download))


def _may_download(download: bool) -> str:
    """Why there is no local copy, for messages; raises ``_Unavailable`` when downloads are off (``download=False``
    or ``$LABKIT_OFFLINE``). Shared by the image and text loaders."""
    env = "has no such file" if os.environ.get("LABKIT_DATA_DIR") else "is not set"
    if not download:
        raise _Unavailable(f"no local copy (LABKIT_DATA_DIR {env}) and download=False.")
    if os.environ.get("LABKIT_OFFLINE", "") not in ("", "0"):
        raise _Unavailable(f"no local copy (LABKIT_DATA_DIR {env}) and LABKIT_OFFLINE is set (no downloads).")
    return f"no local copy (LABKIT_DATA_DIR {env})"


DATASETS: dict[str, Callable[..., _Raw]] = {
    "digits": _digits,
    "fashion_mnist": partial(_vision, "fashion_mnist", "FashionMNIST"),
    "cifar10": partial(_vision, "cifar10", "CIFAR10"),
}


def _fallback_banner(name: str, reason: str) -> str:
    bar = "#" * 100
    lines = [
        f"DATASET FALLBACK: {name!r} could not be loaded.",
        f"Why: {reason}",
        "Using scikit-learn's 8x8 digits instead (1,797 images, 1 channel, 10 classes).",
        f"Every number below is a digits result, NOT a {name} result.",
        f"To get the real data: set LABKIT_DATA_DIR to a folder holding {name}/{name}.npz,",
        "or `pip install torchvision` and run with internet access (downloads go to the labkit cache).",
    ]
    return "\n".join([bar, *(f"#  {line}" for line in lines), bar])


def _stratified_choice(y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` sorted indices whose class mix matches ``y``'s (largest-remainder allocation per class)."""
    values, counts = np.unique(y, return_counts=True)
    quota = k * counts / len(y)
    take = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - take), kind="stable")  # classes with the largest remainders get one more
    take[order[: k - int(take.sum())]] += 1
    chosen = [rng.choice(np.flatnonzero(y == v), size=t, replace=False) for v, t in zip(values, take)]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def _to_tensor(x: np.ndarray, scale: float) -> torch.Tensor:
    """uint8/float images (N, H, W) or (N, H, W, C) -> float32 (N, C, H, W) in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    t = t.unsqueeze(1) if t.dim() == 3 else t.permute(0, 3, 1, 2)  # HW -> 1HW, HWC -> CHW
    return t.contiguous().to(torch.float32).div_(scale)


def _prepare(raw: _Raw, split: str, limit: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Subsample (stratified) before converting, so only the kept images become float32."""
    y = raw.y_train if split == "train" else raw.y_test
    x = raw.x_train if split == "train" else raw.x_test
    if limit is not None and limit < len(y):
        idx = _stratified_choice(y, limit, np.random.default_rng(seed))
        x, y = x[idx], y[idx]
    if x.ndim not in (3, 4) or len(x) != len(y):
        raise ValueError(
            f"{split} images must be (N, H, W) or (N, H, W, C) with one label each, got {x.shape}."
        )
    return _to_tensor(x, raw.scale), torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    download: bool = True,
    max_train: int | None = None,
    max_test: int | None = None,
    seed: int = 0,
    timeout: float = 20.0,
    verbose: bool = True,
) -> DataSplits:
    """Load ``name`` ("digits", "fashion_mnist", "cifar10") as normalised ``(N, C, H, W)`` float32 tensors.

    Sources, in order: ``data_dir`` (a missing file is an error) or ``$LABKIT_DATA_DIR`` (a missing file is
    skipped), a torchvision download bounded by ``timeout`` seconds per network read, and finally the
    digits fallback (banner printed even when ``verbose=False``, a warning, ``fell_back=True``). ``max_train`` / ``max_test`` keep a
    class-stratified random subsample drawn with ``seed``. Images are scaled to [0, 1], then standardised
    per channel with the mean/std of the (subsampled) training split; both splits use those statistics.
    """
    if not isinstance(name, str):
        raise TypeError(
            f"name must be a dataset name (str), one of {', '.join(sorted(DATASETS))}; got {name!r}."
        )
    check_choice(name, DATASETS, "dataset")
    for value, arg in ((max_train, "max_train"), (max_test, "max_test")):
        if value is not None:
            check_positive_int(value, arg)
    seed = _check_seed(seed)
    _check_timeout(timeout)
    data_dir = None if data_dir is None else _check_path(data_dir, "data_dir")
    download, verbose = _check_flag(download, "download"), _check_flag(verbose, "verbose")
    fell_back = False
    try:
        raw = DATASETS[name](data_dir=data_dir, download=download, timeout=timeout, verbose=verbose)
    except _Unavailable as err:
        print(_fallback_banner(name, str(err)))
        warnings.warn(
            f"{name} could not be loaded ({err}); using scikit-learn digits instead. "
            "Set LABKIT_DATA_DIR or install torchvision and go online for the real data.",
            stacklevel=2,
        )
        raw = _digits()._replace(source=f"scikit-learn digits (fallback for {name})")
        name, fell_back = "digits", True

    x_train, y_train = _prepare(raw, "train", max_train, seed)
    x_test, y_test = _prepare(raw, "test", max_test, seed + 1)
    # Per-channel statistics of the training split only: the test split must not leak into preprocessing.
    std, mean = torch.std_mean(x_train, dim=(0, 2, 3), keepdim=True)  # (1, C, 1, 1) each
    std = std.clamp_min(1e-6)
    x_train.sub_(mean).div_(std)
    x_test.sub_(mean).div_(std)
    # Integer pixels (the course's uint8) minus a finite mean, over a std >= 1e-6, are finite: no pass needed.
    # Float images were checked when read; they are checked again after normalisation (an overflow is caught).
    make = (
        ImageData._trusted if raw.x_train.dtype.kind in "iu" and raw.x_test.dtype.kind in "iu" else ImageData
    )
    if make is ImageData._trusted:
        _check_labels(y_train, len(x_train), raw.classes, f"{name} train")
        _check_labels(y_test, len(x_test), raw.classes, f"{name} test")
    splits = DataSplits(
        make(x_train, y_train, list(raw.classes), name, raw.source),
        make(x_test, y_test, list(raw.classes), name, raw.source),
        fell_back=fell_back,
    )
    if verbose:
        shape, k = "x".join(map(str, splits.in_shape)), splits.num_classes
        print(f"{name}: {len(x_train):,} train / {len(x_test):,} test, {shape}, {k} classes ({raw.source})")
    return splits


def _check_timeout(timeout: Any) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
        raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}.")
    return float(timeout)


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """How many batches ``batches`` yields for ``n`` examples."""
    check_positive_int(n, "n", minimum=0)
    check_positive_int(batch_size, "batch_size")
    drop_last = _check_flag(drop_last, "drop_last")
    return n // batch_size if drop_last else -(-n // batch_size)


def batches(
    *tensors: torch.Tensor,
    batch_size: int,
    shuffle: bool = False,
    seed: int | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Iterate over aligned tensors in batches, e.g. ``for xb, yb in batches(x, y, batch_size=128)``.

    All tensors share dim 0 (N) and stay on their own device; each batch is a tuple of ``(B, ...)``
    tensors. With ``shuffle`` the order is ``torch.randperm`` from a CPU generator seeded with ``seed``
    (0 if None), so the same seed gives the same batches on every device. No per-sample Python work.
    """
    if not tensors:
        raise ValueError("batches needs at least one tensor.")
    sizes = [int(t.shape[0]) if isinstance(t, torch.Tensor) and t.dim() else None for t in tensors]
    if None in sizes or len(set(sizes)) != 1:
        raise ValueError(f"all tensors must be torch.Tensors with the same first dimension, got {sizes}.")
    check_positive_int(batch_size, "batch_size")
    shuffle, drop_last = _check_flag(shuffle, "shuffle"), _check_flag(drop_last, "drop_last")
    if seed is not None:
        seed = _check_seed(seed)
    n = sizes[0]
    perm = None
    if shuffle:
        generator = torch.Generator(device="cpu").manual_seed(0 if seed is None else seed)
        perm = torch.randperm(n, generator=generator)
    return _batch_iter(tensors, n, batch_size, perm, drop_last)


def _batch_iter(
    tensors: tuple[torch.Tensor, ...], n: int, batch_size: int, perm: torch.Tensor | None, drop_last: bool
) -> Iterator[tuple[torch.Tensor, ...]]:
    perms = {t.device: perm.to(t.device) for t in tensors} if perm is not None else {}  # one copy per device
    for start in range(0, num_batches(n, batch_size, drop_last) * batch_size, batch_size):
        if perm is None:
            yield tuple(t[start : start + batch_size] for t in tensors)  # views, no copy
        else:
            yield tuple(t.index_select(0, perms[t.device][start : start + batch_size]) for t in tensors)


def random_crop_flip(
    x: torch.Tensor, padding: int = 4, flip: bool = True, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random-crop (zero padding, ``padding`` pixels per side) and random horizontal flip of a batch, as
    whole-batch tensor operations on ``x``'s own device: no per-image Python, no CPU round trip, so GPU training
    on CIFAR-sized images is not input bound. ``x``: ``(B, C, H, W)`` -> a new ``(B, C, H, W)``. Zero is the
    padding value, which for standardised images is the training mean. ``generator`` (on ``x``'s device) makes
    the draws reproducible."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"random_crop_flip needs a batch of images (B, C, H, W), got {got}.")
    check_positive_int(padding, "padding", minimum=0)
    flip = _check_flag(flip, "flip")
    if generator is not None:
        _check_kind(generator, torch.Generator, "generator", "a torch.Generator or None")
        if generator.device.type != x.device.type:
            raise ValueError(
                f"generator is on {generator.device} but x on {x.device}: make it with "
                "torch.Generator(device=x.device)."
            )
    b, _, h, w = x.shape
    if min(h, w) < 8:
        raise ValueError(
            f"random_crop_flip is for images of at least 8x8 pixels, got {h}x{w} (feature vectors?)."
        )
    if padding >= min(h, w):
        raise ValueError(
            f"padding={padding} is not smaller than the {h}x{w} images: most crops would be padding only (zeros). "
            "Use a few pixels (4 for 32x32 images)."
        )
    out = x
    if padding:
        padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))  # (B, C, H+2p, W+2p)
        oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=x.device)
        ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=x.device)
        rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
        cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
        batch = torch.arange(b, device=x.device)[:, None, None, None]
        chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        out = padded[batch, chans, rows, cols]  # (B, C, H, W): each image's own window
    if flip:
        mirror = torch.rand(b, generator=generator, device=x.device) < 0.5  # (B,)
        out = torch.where(mirror[:, None, None, None], out.flip(-1), out)
    return out


def few_labels_split(
    data: ImageData, n_per_class: int, seed: int = 0, keep_labels: bool = False
) -> tuple[ImageData, ImageData]:
    """Split into ``(labelled, transfer)``: ``n_per_class`` labelled examples of every class, and the rest.

    The transfer set has ``y = -1`` (unlabelled) unless ``keep_labels``, which keeps the true labels so
    that the accuracy of a teacher's pseudo-labels can be measured. Unlabelled input rows go to transfer.
    """
    _check_kind(data, ImageData, "data", "an ImageData (e.g. splits.train)")
    check_positive_int(n_per_class, "n_per_class")
    seed = _check_seed(seed)
    keep_labels = _check_flag(keep_labels, "keep_labels")
    labels = data.y.cpu().numpy()
    groups = [np.flatnonzero(labels == c) for c in range(data.num_classes)]
    smallest = min(len(g) for g in groups)
    if n_per_class > smallest:
        raise ValueError(
            f"n_per_class={n_per_class} but the smallest class has {smallest} labelled examples; "
            f"the maximum is {smallest}."
        )
    rng = np.random.default_rng(seed)
    chosen = np.sort(np.concatenate([rng.choice(g, size=n_per_class, replace=False) for g in groups]))
    rest = np.setdiff1d(np.arange(len(data)), chosen)
    transfer = data.subset(rest)
    return data.subset(chosen), transfer if keep_labels else transfer.unlabelled()


def per_class_budget(data: ImageData, total: int | None) -> int:
    """Labelled examples per class for a class-balanced subset of about ``total`` images (``None``: as many
    as possible), capped by the smallest class, so that a profile sized for Fashion-MNIST still runs on the
    small digits fallback."""
    _check_kind(data, ImageData, "data", "an ImageData (e.g. splits.train)")
    labels = data.y[data.y >= 0]
    if labels.numel() == 0:
        raise ValueError("the data have no labelled examples to draw a balanced subset from.")
    smallest = int(torch.bincount(labels, minlength=data.num_classes).min())
    if total is None:
        return smallest
    check_positive_int(total, "total")
    return max(1, min(total // data.num_classes, smallest))


def train_val_split(data: ImageData, val_fraction: float = 0.1, seed: int = 0) -> tuple[ImageData, ImageData]:
    """Stratified ``(train, val)`` split; ``val`` holds ``round(val_fraction * N)`` examples, same class mix.
    ``data`` is an ``ImageData`` (or a ``TextData``)."""
    if not (isinstance(data, ImageData) or type(data).__name__ == "TextData"):
        raise TypeError(
            f"data must be an ImageData or TextData (e.g. splits.train), got {type(data).__name__}."
        )
    seed = _check_seed(seed)
    if not 0 < check_fraction(val_fraction, "val_fraction") < 1:
        raise ValueError(f"val_fraction must be strictly between 0 and 1, got {val_fraction!r}.")
    if len(data) < 2:
        raise ValueError(f"need at least 2 examples to split, got {len(data)}.")
    k = min(max(round(val_fraction * len(data)), 1), len(data) - 1)
    val = _stratified_choice(data.y.cpu().numpy(), k, np.random.default_rng(seed))
    return data.subset(np.setdiff1d(np.arange(len(data)), val)), data.subset(val)


def concat(a: ImageData, b: ImageData) -> ImageData:
    """``a`` followed by ``b``; both need the same classes, image shape and device."""
    for arg, value in (("a", a), ("b", b)):
        _check_kind(value, ImageData, arg, "an ImageData")
    if a.classes != b.classes:
        raise ValueError(f"cannot concat datasets with different classes: {a.classes} vs {b.classes}.")
    if a.in_shape != b.in_shape:
        raise ValueError(f"cannot concat images of shape {a.in_shape} and {b.in_shape}.")
    if a.x.device != b.x.device:
        raise ValueError(f"cannot concat data on {a.x.device} and {b.x.device}; move one with .to(device).")
    name = a.name if a.name == b.name else f"{a.name}+{b.name}"
    source = a.source if a.source == b.source else f"{a.source} + {b.source}"
    return ImageData(torch.cat([a.x, b.x]), torch.cat([a.y, b.y]), list(a.classes), name, source)
