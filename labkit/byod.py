"""Bring your own data and teachers (the capstone): a local image folder or CSV file as ``DataSplits``, a
torchvision model as a teacher or student, and one call that compares distillation objectives over seeds.

* ``load_image_folder(root)``: ``root/<class>/<image>`` (or ``root/train/<class>`` + ``root/test/<class>``),
  resized to one size, standardised with the training split's per-channel statistics.
* ``load_csv(path, label_column)``: numeric feature columns + one label column, standardised with the training
  split's statistics, as ``ImageData`` of shape ``(N, 1, 1, D)`` (an MLP flattens it).
* own text (``labkit.byod_text``) and torchvision teachers with per-stage features (``labkit.vision``) live in
  their own modules.
* ``compare_objectives(...)``: the same initial student trained with each method of ``METHODS``, over seeds,
  into one report table (accuracy, agreement with the teacher, calibration, size, latency).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._validate import check_choice, check_fraction, check_positive_int
from .compare import Arm, Comparison, compare
from .data import DataSplits, ImageData, _stratified_choice, concat, few_labels_split, train_val_split
from .ensemble import inference_ms
from .metrics import predict_logits
from .models import count_parameters, size_on_disk_mb
from .training import METHODS, TrainConfig, seed_everything

__all__ = ["compare_objectives", "load_csv", "load_image_folder", "tune_objective"]

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def _split_indices(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < check_fraction(test_fraction, "test_fraction") < 1:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction!r}.")
    k = min(max(round(test_fraction * len(y)), 1), len(y) - 1)
    test = _stratified_choice(y, k, np.random.default_rng(seed))
    return np.setdiff1d(np.arange(len(y)), test), test


def _standardise(train: torch.Tensor, test: torch.Tensor, dims: tuple[int, ...]) -> None:
    std, mean = torch.std_mean(train, dim=dims, keepdim=True)
    std = std.clamp_min(1e-6)
    for t in (train, test):
        t.sub_(mean).div_(std)


def _class_folders(root: Path) -> list[Path]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) < 2:
        raise ValueError(
            f"{root} must hold one sub-folder per class (at least 2), e.g. {root}/cat/001.png and "
            f"{root}/dog/002.png; found {len(folders)} folder(s)."
        )
    return folders


def _read_images(root: Path, classes: list[str], size: tuple[int, int], channels: int):
    from PIL import Image

    xs, ys = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
        if not files:
            raise ValueError(
                f"class folder {root / name} has no images ({', '.join(sorted(_IMAGE_SUFFIXES))})."
            )
        for f in files:
            try:
                with Image.open(f) as img:
                    img = img.convert("L" if channels == 1 else "RGB").resize(size[::-1])
                    xs.append(np.asarray(img, dtype=np.uint8))
            except OSError as err:
                raise ValueError(f"cannot read image {f}: {err}") from err
            ys.append(label)
    x = torch.from_numpy(np.stack(xs)).float().div_(255.0)
    x = x.unsqueeze(1) if channels == 1 else x.permute(0, 3, 1, 2)
    return x.contiguous(), np.asarray(ys, dtype=np.int64)


def load_image_folder(
    root: str | Path,
    *,
    size: tuple[int, int] = (32, 32),
    channels: int = 3,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> DataSplits:
    """Images in ``root/<class>/...`` (any depth below the class folder) as ``DataSplits``.

    With ``root/train/<class>`` and ``root/test/<class>`` those splits are used as they are (same class
    folders in both); otherwise a class-stratified ``test_fraction`` is held out with ``seed``. Images are
    converted to ``channels`` (1 = grey, 3 = RGB), resized to ``size`` (H, W), scaled to [0, 1] and
    standardised with the training split's per-channel mean/std.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} not found (expected {root}/<class>/<image files>).")
    check_choice(str(channels), ("1", "3"), "channels")
    size = (check_positive_int(size[0], "size[0]"), check_positive_int(size[1], "size[1]"))
    if (root / "train").is_dir() and (root / "test").is_dir():
        classes = [p.name for p in _class_folders(root / "train")]
        test_classes = [p.name for p in _class_folders(root / "test")]
        if test_classes != classes:
            raise ValueError(f"train and test class folders differ: {classes} vs {test_classes}.")
        (x_tr, y_tr), (x_te, y_te) = (
            _read_images(root / s, classes, size, channels) for s in ("train", "test")
        )
    else:
        classes = [p.name for p in _class_folders(root)]
        x, y = _read_images(root, classes, size, channels)
        train, test = _split_indices(y, test_fraction, seed)
        (x_tr, y_tr), (x_te, y_te) = (x[train], y[train]), (x[test], y[test])
    _standardise(x_tr, x_te, (0, 2, 3))
    source = f"local image folder: {root}"
    return DataSplits(
        ImageData(x_tr, torch.from_numpy(y_tr), classes, root.name, source),
        ImageData(x_te, torch.from_numpy(y_te), classes, root.name, source),
    )


def load_csv(
    path: str | Path, label_column: str = "label", *, test_fraction: float = 0.2, seed: int = 0
) -> DataSplits:
    """A CSV file with numeric feature columns and one label column (any values: classes are the sorted
    distinct labels) as ``DataSplits`` of ``(N, 1, 1, D)`` features standardised with training statistics."""
    import pandas as pd

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"CSV file {path} not found.")
    frame = pd.read_csv(path)
    if label_column not in frame.columns:
        raise ValueError(
            f"{path} has no label column {label_column!r}; its columns are {list(frame.columns)}."
        )
    features = frame.drop(columns=[label_column])
    bad = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if bad:
        raise ValueError(f"feature columns must be numeric; {bad} are not (encode them, or drop them first).")
    if features.isna().any().any() or frame[label_column].isna().any():
        missing = [c for c in frame.columns if frame[c].isna().any()]
        raise ValueError(f"{path} has missing values in {missing}; fill or drop them first.")
    classes = sorted(frame[label_column].unique().tolist(), key=str)
    if len(classes) < 2:
        raise ValueError(
            f"the label column {label_column!r} has {len(classes)} distinct value(s); need at least 2."
        )
    index = {c: i for i, c in enumerate(classes)}
    y = frame[label_column].map(index).to_numpy(dtype=np.int64)
    x = torch.from_numpy(features.to_numpy(dtype=np.float32)).view(len(frame), 1, 1, -1)
    train, test = _split_indices(y, test_fraction, seed)
    x_tr, x_te = x[train].clone(), x[test].clone()
    _standardise(x_tr, x_te, (0,))
    names, source = [str(c) for c in classes], f"local CSV: {path}"
    return DataSplits(
        ImageData(x_tr, torch.from_numpy(y[train]), names, path.stem, source),
        ImageData(x_te, torch.from_numpy(y[test]), list(names), path.stem, source),
    )


def _student_sets(train: ImageData, labels_per_class: int | None, label_seed: int):
    """``(labelled, labelled + transfer set)``: ``labels_per_class`` labels per class, the rest unlabelled."""
    if labels_per_class is None:
        return train, train
    labelled, transfer = few_labels_split(train, labels_per_class, seed=label_seed)
    return labelled, concat(labelled, transfer)


def compare_objectives(
    teacher: nn.Module,
    make_student: Callable[[], nn.Module],
    data: DataSplits,
    methods: Sequence[str] = ("ce", "kd"),
    seeds: Sequence[int] = (0, 1, 2),
    config: TrainConfig | None = None,
    latency_batch: int = 64,
    *,
    labels_per_class: int | None = None,
    label_seed: int = 0,
    method_config: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[Comparison, Any]:
    """One student per (seed, method) through the course's comparison engine (``lk.compare``: the same initial
    weights per seed, the same steps) and return ``(comparison, report)``: the ``lk.Comparison`` (runs table,
    verdicts) and a report table with accuracy, agreement with the teacher, ECE (all %, mean ± std over seeds),
    parameters, size on disk and measured latency per batch, with the teacher's row.

    Arms are named ``"student: <method>"``, the teacher ``"teacher"`` (a fixed reference), so
    ``comparison.verdict("student: kd", "student: ce")`` is the course's verdict on KD against no teacher.
    ``make_student()`` builds a fresh student; ``config`` sets everything but the seed (``TrainConfig()`` if None);
    ``method_config``: per-method overrides of it, e.g. ``{"kd": {"temperature": 1.0}, "hint": {"beta": 10.0}}``
    (settings tuned on validation, ``tune_objective``). ``labels_per_class``: the students keep that many labels
    per class (``lk.few_labels_split`` with ``label_seed``) and the rest of the training split is a transfer set
    without labels: ``ce`` learns from the labelled examples alone, every teacher method from labelled + transfer
    set, with the same number of steps (Hinton et al. 2015's transfer set; lesson 05). ``None``: every label.
    """
    for m in methods:
        check_choice(m, METHODS, "method")
    if not methods or not seeds:
        raise ValueError("compare_objectives needs at least one method and one seed.")
    if not callable(make_student):
        raise ValueError("make_student must be a function that returns a new student model.")
    overrides = dict(method_config or {})
    for m in overrides:
        check_choice(m, methods, "method of method_config (one of methods)")
    base = config or TrainConfig()
    labelled, both = _student_sets(data.train, labels_per_class, label_seed)
    t_logits = predict_logits(teacher, data.test.x)
    arms = [
        Arm(f"student: {m}", method=m, teacher=None if m == "ce" else teacher,
            train=labelled if m == "ce" else both, config=dict(overrides.get(m, {})))
        for m in methods
    ]  # fmt: skip
    cmp = compare(arms, train=both, test=data.test, make_student=make_student, config=base, seeds=seeds,
                  teacher_logits=t_logits)  # fmt: skip
    cmp.add_fixed("teacher", t_logits)
    report = cmp.summary(["accuracy", "agreement", "ece"])
    seed_everything(seeds[0])
    init = make_student()  # one architecture for all methods
    xb = data.test.x[:latency_batch]
    sizes = {"teacher": teacher, **{f"student: {m}": init for m in methods}}
    report["params"] = [count_parameters(sizes[i]) for i in report.index]
    report["size (MB)"] = [round(size_on_disk_mb(sizes[i]), 3) for i in report.index]
    report["ms / batch"] = [round(inference_ms(sizes[i], xb), 2) for i in report.index]
    return cmp, report[["n", "accuracy", "agreement", "ece", "params", "size (MB)", "ms / batch"]]


def tune_objective(
    teacher: nn.Module | None,
    make_student: Callable[[], nn.Module],
    train: ImageData,
    method: str,
    grid: Mapping[str, Sequence[Any]],
    config: TrainConfig,
    *,
    labels_per_class: int | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[dict[str, Any], Any]:
    """Choose ``method``'s settings on validation data only: every combination of ``grid`` (``TrainConfig``
    fields, e.g. ``{"temperature": [1, 4], "alpha": [0.5, 0.9]}``) trains one student from the same initial
    weights on ``train`` minus a stratified ``val_fraction`` (``lk.train_val_split`` with ``seed``), in the
    regime of ``compare_objectives`` (``labels_per_class``), with ``config``'s full budget, and is scored on the
    held-out part. Returns ``(best settings, table)``: the table has one row per setting with its validation
    accuracy (%), best first. The test split plays no part.
    """
    check_choice(method, METHODS, "method")
    if not grid or any(len(v) == 0 for v in grid.values()):
        raise ValueError(f"grid must map TrainConfig fields to non-empty lists of values, got {grid!r}.")
    import itertools

    import pandas as pd

    fit_part, val = train_val_split(train, val_fraction, seed=seed)
    labelled, both = _student_sets(fit_part, labels_per_class, seed)
    settings = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    names = [", ".join(f"{k}={v}" for k, v in s.items()) for s in settings]
    arms = [Arm(n, method=method, teacher=teacher, train=labelled if method == "ce" else both, config=s)
            for n, s in zip(names, settings)]  # fmt: skip
    cmp = compare(arms, train=both, test=val, make_student=make_student, config=config, seeds=(seed,))
    runs = cmp.runs.set_index("arm")
    table = pd.DataFrame(settings, index=pd.Index(names, name="setting"))
    table["val accuracy (%)"] = [round(100 * runs.loc[n, "accuracy"], 2) for n in names]
    table = table.sort_values("val accuracy (%)", ascending=False, kind="stable")
    return settings[names.index(table.index[0])], table
