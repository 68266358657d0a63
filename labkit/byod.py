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
from .byod_text import _read_table
from .compare import Arm, Comparison, compare
from .data import (
    DataSplits,
    ImageData,
    _bad_rows,
    _check_kind,
    _check_path,
    _check_seed,
    _stratified_choice,
    concat,
    few_labels_split,
    train_val_split,
)
from .ensemble import inference_ms
from .metrics import predict_logits
from .models import count_parameters, size_on_disk_mb
from .training import METHODS, TrainConfig, seed_everything

__all__ = ["compare_objectives", "load_csv", "load_image_folder", "tune_objective"]

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def _check_split_args(test_fraction: Any, seed: Any) -> int:
    if not 0 < check_fraction(test_fraction, "test_fraction") < 1:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction!r}.")
    return _check_seed(seed)


def _split_indices(
    y: np.ndarray, test_fraction: float, seed: int, where: str
) -> tuple[np.ndarray, np.ndarray]:
    if len(y) < 4:
        raise ValueError(f"{where} has {len(y)} example(s); need at least 4 to split into train and test.")
    k = min(max(round(test_fraction * len(y)), 1), len(y) - 1)
    test = _stratified_choice(y, k, np.random.default_rng(seed))
    return np.setdiff1d(np.arange(len(y)), test), test


def _standardise(train: torch.Tensor, test: torch.Tensor, dims: tuple[int, ...], where: str) -> None:
    """In place, with the training split's mean/std. A constant training feature (std < 1e-6) is only centred
    (scale 1, as scikit-learn's StandardScaler): dividing by ~0 would blow its test values up to ~1e6."""
    if len(train) < 2:
        raise ValueError(
            f"{where}: the training split has {len(train)} example(s); standardising needs at least 2."
        )
    std, mean = torch.std_mean(train, dim=dims, keepdim=True)
    std = torch.where(std < 1e-6, torch.ones_like(std), std)
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
    root = _check_path(root, "root")
    if root.is_file():
        raise ValueError(f"root: {root} is a file; pass the folder that holds one sub-folder per class.")
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} not found (expected {root}/<class>/<image files>).")
    if isinstance(channels, bool) or channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}.")
    if not (isinstance(size, (tuple, list)) and len(size) == 2):
        raise ValueError(f"size must be (height, width), e.g. (32, 32), got {size!r}.")
    size = (check_positive_int(size[0], "size[0]"), check_positive_int(size[1], "size[1]"))
    given = (root / "train").is_dir() and (root / "test").is_dir()  # the splits as they are: no fraction
    seed = _check_seed(seed) if given else _check_split_args(test_fraction, seed)
    if given:
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
        train, test = _split_indices(y, test_fraction, seed, str(root))
        (x_tr, y_tr), (x_te, y_te) = (x[train], y[train]), (x[test], y[test])
    _standardise(x_tr, x_te, (0, 2, 3), str(root))
    source = f"local image folder: {root}"
    return DataSplits(
        ImageData(x_tr, torch.from_numpy(y_tr), classes, root.name, source),
        ImageData(x_te, torch.from_numpy(y_te), classes, root.name, source),
    )


def _read_csv(path: Any, encoding: str):
    """A CSV file as a pandas frame; every way it can be unreadable becomes a ValueError naming the file."""
    path = _check_path(path, "path")
    if path.is_dir():
        raise ValueError(
            f"path: {path} is a folder, not a CSV file (for a folder of images: lk.load_image_folder)."
        )
    if not path.is_file():
        raise FileNotFoundError(f"CSV file {path} not found.")
    frame = _read_table(path, encoding, "CSV", "Quote fields that contain commas.")
    return path, frame


def _where(path: Path, column: Any, bad: np.ndarray, values: Any = None) -> str:
    """``'column 'a' of f.csv: 3 row(s), first rows [4, 9] (file lines 6, 11)'`` for a boolean ``bad`` (N,)."""
    rows = _bad_rows(bad)
    shown = (
        f" ({', '.join(repr(v) for v in np.asarray(values)[rows].tolist())})" if values is not None else ""
    )
    lines = ", ".join(str(r + 2) for r in rows)  # line 1 is the header
    return (
        f"column {column!r} of {path}: {int(bad.sum())} row(s), first rows {rows}{shown} (file lines {lines})"
    )


def _csv_features(path: Path, frame: Any, label_column: str) -> np.ndarray:
    """The feature columns as float32 (N, D); non-numeric, missing and infinite cells are errors with their rows."""
    import pandas as pd

    features = frame.drop(columns=[label_column])
    if features.shape[1] == 0:
        raise ValueError(
            f"{path} has only the label column {label_column!r}; it needs at least one feature column."
        )
    for c in features.columns:
        col = features[c]
        if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            continue
        numbers = pd.to_numeric(col, errors="coerce")
        text = (numbers.isna() & col.notna()).to_numpy()
        if text.all():
            raise ValueError(
                f"feature columns must be numeric; [{c!r}] is not ({_where(path, c, text, col.to_numpy())}). "
                "Encode it as numbers (e.g. pd.get_dummies), or drop it first."
            )
        raise ValueError(
            f"feature columns must be numeric; {_where(path, c, text, col.to_numpy())} are not numbers. "
            "Fix those cells, or drop the rows."
        )
    missing = [c for c in frame.columns if frame[c].isna().any()]
    if missing:
        parts = "; ".join(_where(path, c, frame[c].isna().to_numpy()) for c in missing)
        raise ValueError(
            f"{path} has missing values in {missing} ({parts}). labkit does not impute: fill them "
            "(frame.fillna(...)) or drop those rows (frame.dropna()) and save the file again."
        )
    x = features.to_numpy(dtype=np.float64)
    for j, c in enumerate(features.columns):
        bad = ~np.isfinite(x[:, j]) | (np.abs(x[:, j]) > np.finfo(np.float32).max)
        if bad.any():
            raise ValueError(
                f"{_where(path, c, bad, x[:, j])} are infinite or too large for float32: standardising would "
                "turn the whole column into NaN. Replace them with finite values, or drop those rows."
            )
    return x.astype(np.float32)


def load_csv(
    path: str | Path,
    label_column: str = "label",
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    encoding: str = "utf-8",
) -> DataSplits:
    """A CSV file with numeric feature columns and one label column (any values: classes are the sorted
    distinct labels) as ``DataSplits`` of ``(N, 1, 1, D)`` features standardised with training statistics.

    Missing, non-numeric or infinite feature cells and missing labels are errors that name the column and the
    first rows (no silent imputation): fill or drop them first. A constant training column is centred only."""
    seed = _check_split_args(test_fraction, seed)
    path, frame = _read_csv(path, encoding)
    if label_column not in frame.columns:
        other = next(
            (sep for sep in (";", "\t", "|") if len(frame.columns) == 1 and sep in str(frame.columns[0])),
            None,
        )
        hint = f" It looks {other!r}-separated: load_csv reads commas; save it with sep=','." if other else ""
        raise ValueError(
            f"{path} has no label column {label_column!r}; its columns are {list(frame.columns)}.{hint}"
        )
    x = _csv_features(path, frame, label_column)
    labels = frame[label_column]
    classes = sorted(labels.unique().tolist(), key=str)
    if len(classes) < 2:
        raise ValueError(
            f"the label column {label_column!r} of {path} has {len(classes)} distinct value(s) "
            f"({classes[:1]}); need at least 2 classes."
        )
    if len(classes) > 20 and len(classes) > len(frame) // 2:
        raise ValueError(
            f"the label column {label_column!r} of {path} has {len(classes)} distinct values in {len(frame)} rows: "
            f"that looks like an id or a measurement, not a class label (first values {classes[:3]}). Pick the "
            "label column with label_column=..., or bin the values into classes first."
        )
    index = {c: i for i, c in enumerate(classes)}
    y = labels.map(index).to_numpy(dtype=np.int64)
    x = torch.from_numpy(x).view(len(frame), 1, 1, -1)
    train, test = _split_indices(y, test_fraction, seed, str(path))
    x_tr, x_te = x[train].clone(), x[test].clone()
    _standardise(x_tr, x_te, (0,), str(path))
    names, source = [str(c) for c in classes], f"local CSV: {path}"
    if len(set(names)) != len(names):
        raise ValueError(
            f"the labels of {path} differ only in type ({classes}); make them one kind (all str or numbers)."
        )
    return DataSplits(
        ImageData(x_tr, torch.from_numpy(y[train]), names, path.stem, source),
        ImageData(x_te, torch.from_numpy(y[test]), list(names), path.stem, source),
    )


def _names(methods: Any, arg: str) -> tuple[str, ...]:
    if isinstance(methods, str) or not isinstance(methods, (list, tuple)):
        raise ValueError(f"{arg} must be a list of method names, e.g. ('ce', 'kd'), got {methods!r}.")
    return tuple(methods)


def _seeds(seeds: Any) -> tuple[int, ...]:
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (list, tuple, range)):
        raise ValueError(f"seeds must be a list of integer seeds, e.g. (0, 1, 2), got {seeds!r}.")
    return tuple(_check_seed(s, "seeds[i]") for s in seeds)


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
    _check_kind(teacher, nn.Module, "teacher", "a trained nn.Module")
    _check_kind(
        data, DataSplits, "data", "a DataSplits (lk.load_dataset / lk.load_csv / lk.load_image_folder)"
    )
    methods, seeds = _names(methods, "methods"), _seeds(seeds)
    for m in methods:
        check_choice(m, METHODS, "method")
    if not methods or not seeds:
        raise ValueError("compare_objectives needs at least one method and one seed.")
    if not callable(make_student):
        raise ValueError("make_student must be a function that returns a new student model.")
    check_positive_int(latency_batch, "latency_batch")
    label_seed = _check_seed(label_seed, "label_seed")
    if method_config is not None and not (
        isinstance(method_config, Mapping) and all(isinstance(v, Mapping) for v in method_config.values())
    ):
        raise ValueError(
            f"method_config must map method names to dicts of TrainConfig fields, e.g. {{'kd': {{'temperature': 4}}}}, "
            f"got {method_config!r:.80}."
        )
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
    if teacher is not None:
        _check_kind(teacher, nn.Module, "teacher", "a trained nn.Module or None")
    _check_kind(train, ImageData, "train", "an ImageData (e.g. data.train)")
    _check_kind(config, TrainConfig, "config", "an lk.TrainConfig")
    check_choice(method, METHODS, "method")
    seed = _check_seed(seed)
    lists = (list, tuple, range, np.ndarray)
    if (
        not isinstance(grid, Mapping)
        or not grid
        or any(not isinstance(v, lists) or len(v) == 0 for v in grid.values())
    ):
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
