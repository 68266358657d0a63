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
from typing import Any, NamedTuple

import numpy as np
import torch

from ._validate import check_choice, check_fraction, check_index, check_positive_int

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
        if not isinstance(self.x, torch.Tensor) or self.x.dim() != 4 or not self.x.is_floating_point():
            got = tuple(self.x.shape) if isinstance(self.x, torch.Tensor) else type(self.x).__name__
            raise ValueError(f"x must be a floating tensor of shape (N, C, H, W), got {got}.")
        if not isinstance(self.y, torch.Tensor) or self.y.dim() != 1 or self.y.dtype != torch.int64:
            got = (self.y.dtype, tuple(self.y.shape)) if isinstance(self.y, torch.Tensor) else type(self.y)
            raise ValueError(f"y must be an int64 tensor of shape (N,), got {got}.")
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} images but y has {len(self.y)} labels.")
        k = len(self.classes)
        if len(self.y) and (int(self.y.min()) < -1 or int(self.y.max()) >= k):
            raise ValueError(f"labels must be -1 (unlabelled) or 0..{k - 1} for {k} classes.")

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
        return self._replace(self.x.to(device), self.y.to(device))

    def unlabelled(self) -> ImageData:
        """A copy whose labels are all ``-1``: a transfer set that only a teacher can label."""
        return self._replace(self.x, torch.full_like(self.y, -1))


@dataclass(eq=False)
class _Splits:
    """Train and test splits with the same classes; the shared part of ``DataSplits`` and ``TextSplits``."""

    train: Any
    test: Any
    fell_back: bool = False

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
    path = Path(env).expanduser() if (env := os.environ.get("LABKIT_CACHE_DIR")) else default
    path.mkdir(parents=True, exist_ok=True)
    return path


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
            raise FileNotFoundError(
                f"{path} not found. data_dir must hold the course's offline data folder, laid out as "
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
        with np.load(path) as data:  # each member is decompressed when indexed (uint8, so still compact)
            arrays = {k: data[k] for k in _NPZ_KEYS if k in data.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:  # not an archive, truncated, empty
        raise _unreadable_npz(path, err) from None
    missing = [k for k in _NPZ_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{path} lacks the keys {missing}; expected {', '.join(_NPZ_KEYS)}.")
    classes = [str(c) for c in arrays["classes"]]
    y_train, y_test = arrays["y_train"].astype(np.int64), arrays["y_test"].astype(np.int64)
    return _Raw(arrays["x_train"], y_train, arrays["x_test"], y_test, classes, f"local: {path}", 255.0)


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
    check_choice(name, DATASETS, "dataset")
    for value, arg in ((max_train, "max_train"), (max_test, "max_test")):
        if value is not None:
            check_positive_int(value, arg)
    check_positive_int(seed, "seed", minimum=0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}.")
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
    splits = DataSplits(
        ImageData(x_train, y_train, raw.classes, name, raw.source),
        ImageData(x_test, y_test, raw.classes, name, raw.source),
        fell_back=fell_back,
    )
    if verbose:
        shape, k = "x".join(map(str, splits.in_shape)), splits.num_classes
        print(f"{name}: {len(x_train):,} train / {len(x_test):,} test, {shape}, {k} classes ({raw.source})")
    return splits


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """How many batches ``batches`` yields for ``n`` examples."""
    check_positive_int(n, "n", minimum=0)
    check_positive_int(batch_size, "batch_size")
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
    b, _, h, w = x.shape
    if min(h, w) < 8:
        raise ValueError(
            f"random_crop_flip is for images of at least 8x8 pixels, got {h}x{w} (feature vectors?)."
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
    check_positive_int(n_per_class, "n_per_class")
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
    labels = data.y[data.y >= 0]
    if labels.numel() == 0:
        raise ValueError("the data have no labelled examples to draw a balanced subset from.")
    smallest = int(torch.bincount(labels, minlength=data.num_classes).min())
    if total is None:
        return smallest
    check_positive_int(total, "total")
    return max(1, min(total // data.num_classes, smallest))


def train_val_split(data: ImageData, val_fraction: float = 0.1, seed: int = 0) -> tuple[ImageData, ImageData]:
    """Stratified ``(train, val)`` split; ``val`` holds ``round(val_fraction * N)`` examples, same class mix."""
    if not 0 < check_fraction(val_fraction, "val_fraction") < 1:
        raise ValueError(f"val_fraction must be strictly between 0 and 1, got {val_fraction!r}.")
    if len(data) < 2:
        raise ValueError(f"need at least 2 examples to split, got {len(data)}.")
    k = min(max(round(val_fraction * len(data)), 1), len(data) - 1)
    val = _stratified_choice(data.y.cpu().numpy(), k, np.random.default_rng(seed))
    return data.subset(np.setdiff1d(np.arange(len(data)), val)), data.subset(val)


def concat(a: ImageData, b: ImageData) -> ImageData:
    """``a`` followed by ``b``; both need the same classes, image shape and device."""
    if a.classes != b.classes:
        raise ValueError(f"cannot concat datasets with different classes: {a.classes} vs {b.classes}.")
    if a.in_shape != b.in_shape:
        raise ValueError(f"cannot concat images of shape {a.in_shape} and {b.in_shape}.")
    if a.x.device != b.x.device:
        raise ValueError(f"cannot concat data on {a.x.device} and {b.x.device}; move one with .to(device).")
    name = a.name if a.name == b.name else f"{a.name}+{b.name}"
    source = a.source if a.source == b.source else f"{a.source} + {b.source}"
    return ImageData(torch.cat([a.x, b.x]), torch.cat([a.y, b.y]), list(a.classes), name, source)
