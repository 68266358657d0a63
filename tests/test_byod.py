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


def _wine_csv(path):
    from sklearn.datasets import load_wine

    bunch = load_wine(as_frame=True)
    frame = bunch.frame.rename(columns={"target": "cultivar"})
    frame["cultivar"] = frame["cultivar"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    frame.to_csv(path, index=False)
    return path


def test_csv_loads_with_string_labels(tmp_path):
    data = lk.load_csv(_wine_csv(tmp_path / "wine.csv"), label_column="cultivar")
    assert data.classes == ["barbera", "barolo", "grignolino"]
    assert data.in_shape == (1, 1, 13) and len(data.train) + len(data.test) == 178
    assert torch.allclose(data.train.x.flatten(1).mean(0), torch.zeros(13), atol=1e-4)


def test_csv_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        lk.load_csv(tmp_path / "none.csv")
    path = _wine_csv(tmp_path / "wine.csv")
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


def test_compare_objectives_report(tmp_path):
    data = lk.load_csv(_wine_csv(tmp_path / "wine.csv"), label_column="cultivar")
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


def test_few_labels_regime_and_tuning_on_validation(tmp_path, monkeypatch):
    data = lk.load_csv(_wine_csv(tmp_path / "wine.csv"), label_column="cultivar")
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
