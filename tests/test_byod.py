"""labkit.byod: the capstone's own-data loaders (image folder, CSV), torchvision teachers, and the report."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import torch

import labkit as lk


def _write_folder(root, per_class=6, classes=("cat", "dog", "fish"), size=(10, 12)):
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            arr = (rng.random((*size, 3)) * 60 + 60 * k).astype(np.uint8)  # class k is brighter
            Image.fromarray(arr).save(root / name / f"{i}.png")
    return root


def test_image_folder_loads_resizes_and_splits(tmp_path):
    data = lk.load_image_folder(_write_folder(tmp_path / "pets"), size=(8, 8), test_fraction=1 / 3)
    assert data.classes == ["cat", "dog", "fish"] and data.in_shape == (3, 8, 8)
    assert (len(data.train), len(data.test)) == (12, 6)
    assert torch.bincount(data.test.y).tolist() == [2, 2, 2]  # stratified
    mean = data.train.x.mean(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.zeros(3), atol=1e-5)  # standardised with training statistics
    grey = lk.load_image_folder(tmp_path / "pets", size=(8, 8), channels=1)
    assert grey.in_shape == (1, 8, 8)


def test_image_folder_with_train_test_subfolders(tmp_path):
    _write_folder(tmp_path / "d" / "train", per_class=4, classes=("a", "b"))
    _write_folder(tmp_path / "d" / "test", per_class=2, classes=("a", "b"))
    data = lk.load_image_folder(tmp_path / "d", size=(6, 6))
    assert (len(data.train), len(data.test)) == (8, 4)


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        lk.load_image_folder(tmp_path / "nowhere")
    (tmp_path / "one" / "only").mkdir(parents=True)
    with pytest.raises(ValueError, match="one sub-folder per class"):
        lk.load_image_folder(tmp_path / "one")
    _write_folder(tmp_path / "e", per_class=2, classes=("a",))
    (tmp_path / "e" / "b").mkdir()
    with pytest.raises(ValueError, match="has no images"):
        lk.load_image_folder(tmp_path / "e")
    (tmp_path / "e" / "b" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image"):
        lk.load_image_folder(tmp_path / "e")


@pytest.fixture
def wine_csv(tmp_path):
    """scikit-learn's wine table (178 rows, 13 numeric features) as a CSV with string labels in 'cultivar'."""
    from sklearn.datasets import load_wine

    bunch = load_wine(as_frame=True)
    frame = bunch.frame.rename(columns={"target": "cultivar"})
    frame["cultivar"] = frame["cultivar"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    path = tmp_path / "wine.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def wine(wine_csv):
    return lk.load_csv(wine_csv, label_column="cultivar")


def test_csv_loads_with_string_labels(wine):
    data = wine
    assert data.classes == ["barbera", "barolo", "grignolino"]
    assert data.in_shape == (1, 1, 13) and len(data.train) + len(data.test) == 178
    assert torch.allclose(data.train.x.flatten(1).mean(0), torch.zeros(13), atol=1e-4)


def test_csv_errors(tmp_path, wine_csv):
    with pytest.raises(FileNotFoundError, match="not found"):
        lk.load_csv(tmp_path / "none.csv")
    path = wine_csv
    with pytest.raises(ValueError, match="no label column 'label'.*cultivar"):
        lk.load_csv(path)
    pd.DataFrame({"colour": ["red", "white"] * 5, "label": [0, 1] * 5}).to_csv(
        tmp_path / "s.csv", index=False
    )
    with pytest.raises(ValueError, match=r"numeric; \['colour'\]"):
        lk.load_csv(tmp_path / "s.csv")
    pd.DataFrame({"a": [1.0, None, 3.0, 4.0], "label": [0, 1, 0, 1]}).to_csv(tmp_path / "n.csv", index=False)
    with pytest.raises(ValueError, match="missing values"):
        lk.load_csv(tmp_path / "n.csv")


def _edit(path, row, column, value):
    frame = pd.read_csv(path)
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "value, words",
    [
        (
            "inf",
            r"column 'magnesium' of .*wine\.csv: 1 row\(s\), first rows \[17\] \(inf\) \(file lines 19\) are infinite",
        ),
        ("-inf", r"'magnesium'.*first rows \[17\] \(-inf\)"),
        ("", r"missing values in \['magnesium'\] \(column 'magnesium' .*first rows \[17\]"),
        ("NaN", r"missing values in \['magnesium'\]"),
        ("1e39", r"'magnesium'.*too large for float32"),
        ("12,5", r"column 'magnesium' .*first rows \[17\] \('12,5'\).*are not numbers"),
    ],
)
def test_a_bad_cell_names_file_column_and_row(wine_csv, value, words):
    """One bad cell among 178 rows: an error naming the file, the column, the row (and its line), never a NaN
    column. Before, inf passed as a number and standardising made the whole column NaN."""
    _edit(wine_csv, 17, "magnesium", value)
    with pytest.raises(ValueError, match=words):
        lk.load_csv(wine_csv, label_column="cultivar")


def test_bad_cells_are_counted_per_column(wine_csv):
    for row in (3, 40, 41):
        _edit(wine_csv, row, "alcohol", "")
    _edit(wine_csv, 5, "cultivar", "")
    with pytest.raises(
        ValueError, match=r"\['alcohol', 'cultivar'\].*'alcohol'.*3 row\(s\), first rows \[3, 40, 41\]"
    ):
        lk.load_csv(wine_csv, label_column="cultivar")


def test_valid_csv_loads_exactly_as_before(wine_csv, wine):
    """The checks change no tensor: the splits equal, bit for bit, the computation load_csv made before them
    (pandas -> float32, stratified split with the seed, training mean/std)."""
    from labkit.data import _stratified_choice

    frame = pd.read_csv(wine_csv)
    classes = sorted(frame["cultivar"].unique().tolist(), key=str)
    y = frame["cultivar"].map({c: i for i, c in enumerate(classes)}).to_numpy(dtype=np.int64)
    x = torch.from_numpy(frame.drop(columns=["cultivar"]).to_numpy(dtype=np.float32)).view(
        len(frame), 1, 1, -1
    )
    test = _stratified_choice(y, round(0.2 * len(y)), np.random.default_rng(0))
    train = np.setdiff1d(np.arange(len(y)), test)
    x_tr, x_te = x[train].clone(), x[test].clone()
    std, mean = torch.std_mean(x_tr, dim=(0,), keepdim=True)
    std = std.clamp_min(1e-6)
    for got, want in ((wine.train.x, (x_tr - mean) / std), (wine.test.x, (x_te - mean) / std)):
        assert torch.equal(got, want)
    assert torch.equal(wine.train.y, torch.from_numpy(y[train])) and torch.equal(
        wine.test.y, torch.from_numpy(y[test])
    )


def test_a_constant_column_is_centred_not_blown_up(tmp_path):
    """std 0 on the training split: centred with scale 1 (as scikit-learn), not divided by ~0 into ~1e6."""
    rows = [{"a": float(i % 5), "const": 7.0, "label": i % 2} for i in range(20)]
    rows[3]["const"] = 8.0  # one different value, which the stratified split may send to test
    path = tmp_path / "c.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    for seed in range(6):
        data = lk.load_csv(path, test_fraction=0.25, seed=seed)
        assert data.train.x.abs().max() < 10 and data.test.x.abs().max() < 10


def test_a_semicolon_file_gets_a_hint(tmp_path):
    path = tmp_path / "eu.csv"
    path.write_text("a;label\n1;0\n2;1\n3;0\n4;1\n")
    with pytest.raises(ValueError, match="';'-separated"):
        lk.load_csv(path)


def test_torchvision_model_is_clear_about_what_it_needs():
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install"):
            lk.torchvision_model("resnet18", 10, pretrained=False)
        return
    with pytest.raises(ValueError, match="torchvision model"):
        lk.torchvision_model("resnet1800", 10, pretrained=False)
    model = lk.torchvision_model("resnet18", 7, pretrained=False)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)


def test_compare_objectives_report(wine):
    data = wine
    teacher = lk.build_model("mlp", data.in_shape, 3, hidden=(32,))
    cfg = lk.TrainConfig(epochs=20, lr=1e-2, batch_size=32, progress=False)
    lk.fit(teacher, data.train, config=cfg)

    def make_student():
        return lk.build_model("mlp", data.in_shape, 3, hidden=())

    cmp, report = lk.compare_objectives(
        teacher, make_student, data, methods=("ce", "kd"), seeds=(0, 1), config=cfg
    )
    runs = cmp.runs
    assert list(report.index) == ["student: ce", "student: kd", "teacher"]
    assert report.loc["student: kd", "n"] == 2 and len(runs) == 5
    assert cmp.verdict("student: kd", "student: ce").n_seeds == 2  # the course's verdict, paired by seed
    assert report.loc["teacher", "params"] > report.loc["student: ce", "params"]
    assert report.loc["teacher", "agreement"] == "100.00 (fixed)"  # the teacher agrees with itself
    again, _ = lk.compare_objectives(teacher, make_student, data, methods=("kd",), seeds=(0,), config=cfg)
    assert again.runs.accuracy[0] == runs.accuracy[1]  # same seed, same initial weights, same result
    with pytest.raises(ValueError, match="method"):
        lk.compare_objectives(teacher, make_student, data, methods=("distil",))


def test_few_labels_regime_and_tuning_on_validation(wine, monkeypatch):
    data = wine
    teacher = lk.build_model("mlp", data.in_shape, 3, hidden=(32,))
    cfg = lk.TrainConfig(steps=20, lr=1e-2, batch_size=32, progress=False)
    lk.fit(teacher, data.train, config=cfg)

    def make_student():
        return lk.build_model("mlp", data.in_shape, 3, hidden=())

    best, table = lk.tune_objective(
        teacher, make_student, data.train, "kd", {"temperature": [1.0, 4.0], "alpha": [0.5]}, cfg,
        labels_per_class=5,
    )  # fmt: skip
    assert len(table) == 2 and set(best) == {"temperature", "alpha"}
    assert table["val accuracy (%)"].is_monotonic_decreasing  # best first
    assert best["temperature"] == table["temperature"].iloc[0]
    seen = []
    engine = sys.modules["labkit.compare"]
    real_fit = engine.fit

    def spy(student, train, **kw):
        seen.append((kw["method"], len(train), int((train.y >= 0).sum()), kw["config"].temperature))
        return real_fit(student, train, **kw)

    monkeypatch.setattr(engine, "fit", spy)
    cmp, report = lk.compare_objectives(teacher, make_student, data, methods=("ce", "kd"), seeds=(0,), config=cfg,
                                        labels_per_class=5, method_config={"kd": best})  # fmt: skip
    n = len(data.train)
    assert seen == [
        ("ce", 15, 15, cfg.temperature),
        ("kd", n, 15, best["temperature"]),
    ]  # labels vs transfer set
    assert list(report.index) == ["student: ce", "student: kd", "teacher"]
    with pytest.raises(ValueError, match="method_config"):
        lk.compare_objectives(teacher, make_student, data, methods=("ce",), method_config={"kd": {}})
