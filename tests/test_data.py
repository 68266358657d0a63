"""Tests for labkit.data: loading (local, download, fallback), normalisation, batching and splits."""

from __future__ import annotations

import socket
import sys
import types
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_data_dir

from labkit.data import (
    DATASETS,
    DataSplits,
    ImageData,
    batches,
    cache_dir,
    concat,
    few_labels_split,
    load_dataset,
    num_batches,
    train_val_split,
)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test sees the caller's data dir, and nothing is written into the repo's cache."""
    monkeypatch.delenv("LABKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("LABKIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    return load_dataset("digits", verbose=False)


@pytest.fixture(scope="module")
def real_data_dir() -> Path:
    """The course's offline data: $LABKIT_DATA_DIR, else ../shared/data beside the repo."""
    return shared_data_dir("cifar10/cifar10.npz")


def _write_npz(root: Path, name: str, image_shape: tuple[int, ...], n_train=40, n_test=20, k=4) -> Path:
    """A tiny dataset in the course layout: <root>/<name>/<name>.npz with uint8 images."""
    rng = np.random.default_rng(0)
    folder = root / name
    folder.mkdir(parents=True)
    np.savez(
        folder / f"{name}.npz",
        x_train=rng.integers(0, 256, (n_train, *image_shape), dtype=np.uint8),
        y_train=np.arange(n_train) % k,
        x_test=rng.integers(0, 256, (n_test, *image_shape), dtype=np.uint8),
        y_test=np.arange(n_test) % k,
        classes=np.array([f"class{i}" for i in range(k)]),
    )
    return folder / f"{name}.npz"


def _fake_torchvision(monkeypatch, error: Exception, seen_timeouts: list) -> None:
    """torchvision is importable, but every dataset download fails like an offline machine."""

    class FailingDataset:
        def __init__(self, root, train=True, download=False):
            seen_timeouts.append(socket.getdefaulttimeout())
            raise error

    fake = types.ModuleType("torchvision")
    fake.datasets = types.SimpleNamespace(CIFAR10=FailingDataset, FashionMNIST=FailingDataset)
    monkeypatch.setitem(sys.modules, "torchvision", fake)


# ---------------------------------------------------------------- digits


def test_digits_shapes_dtypes_and_split_sizes(digits):
    assert (len(digits.train), len(digits.test)) == (1347, 450)
    assert digits.train.x.shape == (1347, 1, 8, 8) and digits.train.x.dtype == torch.float32
    assert digits.train.y.dtype == torch.int64 and digits.in_shape == (1, 8, 8)
    assert digits.num_classes == 10 and digits.classes == [str(i) for i in range(10)]
    assert digits.name == "digits" and not digits.fell_back
    # stratified: every class is in both splits in about the same proportion (~25 % test)
    share = digits.test.y.bincount(minlength=10) / (
        digits.test.y.bincount(minlength=10) + digits.train.y.bincount()
    )
    assert torch.all((share - 0.25).abs() < 0.02)


def test_digits_normalised_with_train_statistics(digits):
    x = digits.train.x
    assert x.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert (x.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-3
    # the test split uses the train statistics, so it is close to, but not exactly, standardised
    assert digits.test.x.mean().abs() < 0.2


def test_digits_split_is_deterministic(digits):
    again = load_dataset("digits", verbose=False)
    assert torch.equal(again.train.x, digits.train.x) and torch.equal(again.test.y, digits.test.y)


def test_max_train_is_stratified_and_seeded(capsys):
    a = load_dataset("digits", max_train=200, max_test=100, seed=3)
    assert "digits: 200 train / 100 test, 1x8x8, 10 classes" in capsys.readouterr().out
    counts = a.train.y.bincount(minlength=10)
    assert counts.sum() == 200 and counts.min() >= 19 and counts.max() <= 21
    b = load_dataset("digits", max_train=200, max_test=100, seed=3, verbose=False)
    c = load_dataset("digits", max_train=200, max_test=100, seed=4, verbose=False)
    assert torch.equal(a.train.x, b.train.x) and not torch.equal(a.train.x, c.train.x)
    assert a.train.x.mean(dim=(0, 2, 3)).abs().max() < 1e-4  # statistics of the subsample


def test_registry_and_bad_arguments():
    assert set(DATASETS) == {"digits", "fashion_mnist", "cifar10"}
    with pytest.raises(ValueError, match="choose one of: cifar10, digits, fashion_mnist"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="max_train"):
        load_dataset("digits", max_train=0)
    with pytest.raises(ValueError, match="timeout"):
        load_dataset("digits", timeout=0)


# ---------------------------------------------------------------- local data dir


def test_explicit_data_dir_without_file_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar10[/\\]cifar10\.npz") as info:
        load_dataset("cifar10", data_dir=tmp_path)
    assert str(tmp_path) in str(info.value) and "fashion_mnist/fashion_mnist.npz" in str(info.value)


def test_local_npz_hwc_and_hw_layouts(tmp_path, capsys):
    path = _write_npz(tmp_path, "cifar10", (6, 5, 3))
    _write_npz(tmp_path, "fashion_mnist", (7, 7))
    data = load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert data.train.x.shape == (40, 3, 6, 5) and data.test.x.shape == (20, 3, 6, 5)
    assert data.classes == ["class0", "class1", "class2", "class3"] and not data.fell_back
    assert data.source == f"local: {path}"
    assert f"cifar10: 40 train / 20 test, 3x6x5, 4 classes (local: {path})" in capsys.readouterr().out
    # uint8 -> [0, 1] -> standardised: check against a by-hand computation on channel 0
    with np.load(path) as raw:
        ch0 = torch.from_numpy(raw["x_train"][..., 0]).double() / 255
    assert torch.allclose(data.train.x[:, 0].double(), (ch0 - ch0.mean()) / ch0.std(), atol=1e-5)
    fashion = load_dataset("fashion_mnist", data_dir=tmp_path, max_train=8, max_test=4, verbose=False)
    assert fashion.train.x.shape == (8, 1, 7, 7) and fashion.test.x.shape == (4, 1, 7, 7)
    assert fashion.train.y.bincount().tolist() == [2, 2, 2, 2]


def test_env_data_dir_is_used(tmp_path, monkeypatch):
    _write_npz(tmp_path, "cifar10", (4, 4, 3))
    monkeypatch.setenv("LABKIT_DATA_DIR", str(tmp_path))
    data = load_dataset("cifar10", download=False, verbose=False)
    assert data.name == "cifar10" and data.train.x.shape == (40, 3, 4, 4)


def test_env_data_dir_without_file_moves_on(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_DATA_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.warns(UserWarning, match="scikit-learn digits"):
        data = load_dataset("cifar10")
    out = capsys.readouterr().out
    assert "has no cifar10" in out and "DATASET FALLBACK" in out and data.fell_back


# ---------------------------------------------------------------- fallback


def test_fallback_without_torchvision(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # `import torchvision` raises ImportError
    with pytest.warns(UserWarning, match="cifar10 could not be loaded"):
        data = load_dataset("cifar10")
    assert data.fell_back and data.name == "digits" and data.in_shape == (1, 8, 8)
    assert data.source == "scikit-learn digits (fallback for cifar10)"
    out = capsys.readouterr().out
    assert out.count("#" * 100) == 2 and "'cifar10' could not be loaded" in out
    assert "ImportError" in out or "ModuleNotFoundError" in out  # the actual reason is shown
    assert "LABKIT_DATA_DIR" in out and "pip install torchvision" in out


@pytest.mark.parametrize(
    "error", [urllib.error.URLError("[Errno -3] Temporary failure in name resolution"), OSError("timed out")]
)
def test_fallback_when_download_fails(monkeypatch, capsys, error):
    seen: list = []
    _fake_torchvision(monkeypatch, error, seen)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(7.0)
    try:
        with pytest.warns(UserWarning, match="fashion_mnist"):
            data = load_dataset("fashion_mnist", timeout=3.0, max_train=100)
        assert socket.getdefaulttimeout() == 7.0  # restored after the failed download
    finally:
        socket.setdefaulttimeout(previous)
    assert seen == [3.0]  # the download ran under the requested timeout
    assert data.fell_back and len(data.train) == 100
    assert data.source == "scikit-learn digits (fallback for fashion_mnist)"
    out = capsys.readouterr().out
    assert "DATASET FALLBACK" in out and str(error.args[0]) in out


def test_real_network_failure_is_bounded_by_the_timeout(monkeypatch, capsys):
    """A real socket to an unroutable address (TEST-NET-1, RFC 5737), as a download on a machine without
    network: the loader's timeout bounds it and the lesson falls back instead of hanging."""
    import time
    import urllib.request

    class RealNetworkDataset:
        def __init__(self, root, train=True, download=False):
            urllib.request.urlopen("http://192.0.2.1/train-images-idx3-ubyte.gz")  # real connect attempt

    fake = types.ModuleType("torchvision")
    fake.datasets = types.SimpleNamespace(FashionMNIST=RealNetworkDataset, CIFAR10=RealNetworkDataset)
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    t0 = time.perf_counter()
    with pytest.warns(UserWarning, match="fashion_mnist"):
        data = load_dataset("fashion_mnist", timeout=1.0, max_train=50)
    assert time.perf_counter() - t0 < 30  # bounded (connect timeout 1 s, or refused at once), never a hang
    assert data.fell_back and "DATASET FALLBACK" in capsys.readouterr().out


def test_labkit_offline_skips_downloads(monkeypatch, capsys):
    seen: list = []
    _fake_torchvision(monkeypatch, OSError("should not be called"), seen)
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    monkeypatch.delenv("LABKIT_DATA_DIR", raising=False)
    with pytest.warns(UserWarning, match="LABKIT_OFFLINE"):
        data = load_dataset("cifar10", max_train=50)
    assert seen == [] and data.fell_back
    assert "LABKIT_OFFLINE is set" in capsys.readouterr().out


def test_successful_download_uses_torchvision_arrays(monkeypatch, tmp_path):
    """torchvision's FashionMNIST keeps uint8 tensors (N, 28, 28) in .data and a tensor in .targets."""
    roots: list = []

    class FakeFashion:
        classes = ["a", "b"]

        def __init__(self, root, train=True, download=False):
            roots.append(Path(root))
            n = 6 if train else 4
            self.data = torch.arange(n * 9, dtype=torch.uint8).view(n, 3, 3)
            self.targets = torch.arange(n) % 2

    fake = types.ModuleType("torchvision")
    fake.datasets = types.SimpleNamespace(FashionMNIST=FakeFashion)
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    data = load_dataset("fashion_mnist", verbose=False)
    assert not data.fell_back and data.name == "fashion_mnist" and data.train.x.shape == (6, 1, 3, 3)
    assert data.source.startswith("torchvision download") and data.classes == ["a", "b"]
    assert roots == [tmp_path / "cache" / "downloads"] * 2


def test_download_false_falls_back_without_importing(monkeypatch, capsys):
    seen: list = []
    _fake_torchvision(monkeypatch, OSError("should not be called"), seen)
    with pytest.warns(UserWarning):
        data = load_dataset("cifar10", download=False, verbose=False)
    assert data.fell_back and seen == [] and "download=False" in capsys.readouterr().out


def test_cache_dir_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_CACHE_DIR", str(tmp_path / "a" / "b"))
    assert cache_dir() == tmp_path / "a" / "b" and cache_dir().is_dir()


# ---------------------------------------------------------------- real data (../shared/data)


@pytest.mark.realdata
def test_real_cifar10(real_data_dir):
    data = load_dataset("cifar10", data_dir=real_data_dir, max_train=500, max_test=200, verbose=False)
    assert data.train.x.shape == (500, 3, 32, 32) and data.test.x.shape == (200, 3, 32, 32)
    assert data.classes[:3] == ["airplane", "automobile", "bird"] and data.num_classes == 10
    assert data.train.y.bincount().tolist() == [50] * 10
    assert data.train.x.mean(dim=(0, 2, 3)).abs().max() < 1e-4


@pytest.mark.realdata
def test_real_fashion_mnist(real_data_dir):
    data = load_dataset("fashion_mnist", data_dir=real_data_dir, max_train=300, max_test=100, verbose=False)
    assert data.in_shape == (1, 28, 28) and data.classes[0] == "T-shirt/top"
    assert len(data.train) == 300 and len(data.test) == 100


# ---------------------------------------------------------------- batches


def test_batches_cover_every_index_once_per_epoch():
    idx = torch.arange(103)
    got = [b for (b,) in batches(idx, batch_size=10, shuffle=True, seed=1)]
    assert [len(b) for b in got] == [10] * 10 + [3] and len(got) == num_batches(103, 10)
    assert torch.equal(torch.cat(got).sort().values, idx)
    assert not torch.equal(torch.cat(got), idx)  # actually shuffled


def test_batches_seed_controls_order_and_keeps_tensors_aligned():
    x, y = torch.arange(50).float().unsqueeze(1), torch.arange(50)
    order = lambda s: torch.cat([yb for _, yb in batches(x, y, batch_size=8, shuffle=True, seed=s)])  # noqa: E731
    assert torch.equal(order(5), order(5)) and not torch.equal(order(5), order(6))
    for xb, yb in batches(x, y, batch_size=8, shuffle=True, seed=5):
        assert torch.equal(xb[:, 0].long(), yb)
    assert torch.equal(order(None), order(0))  # shuffle without a seed uses 0


def test_batches_in_order_and_drop_last():
    x = torch.arange(10)
    assert [b.tolist() for (b,) in batches(x, batch_size=4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [b.tolist() for (b,) in batches(x, batch_size=4, drop_last=True)] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(list(batches(x, batch_size=4, shuffle=True, drop_last=True))) == num_batches(10, 4, True) == 2
    assert num_batches(10, 4) == 3 and num_batches(0, 4) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batches_stay_on_the_gpu():
    x, y = torch.arange(20, device="cuda").float(), torch.arange(20, device="cuda")
    cpu_order = torch.cat([b for (b,) in batches(torch.arange(20), batch_size=6, shuffle=True, seed=2)])
    got = list(batches(x, y, batch_size=6, shuffle=True, seed=2))
    assert all(xb.is_cuda and yb.is_cuda for xb, yb in got)
    assert torch.equal(torch.cat([yb for _, yb in got]).cpu(), cpu_order)  # same order on every device


def test_batches_errors_are_raised_immediately():
    with pytest.raises(ValueError, match="first dimension"):
        batches(torch.zeros(5), torch.zeros(6), batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        batches(torch.zeros(5), batch_size=0)
    with pytest.raises(ValueError, match="at least one tensor"):
        batches(batch_size=2)


# ---------------------------------------------------------------- splits


def test_image_data_helpers(digits):
    sub = digits.train.subset([3, 1, 2])
    assert torch.equal(sub.y, digits.train.y[[3, 1, 2]]) and sub.name == "digits"
    assert (sub.unlabelled().y == -1).all() and (sub.y >= 0).all()  # unlabelled() copies
    assert sub.to("cpu").x.device.type == "cpu" and "n=3" in repr(sub)
    with pytest.raises(ValueError, match="indices"):
        digits.train.subset([len(digits.train)])
    with pytest.raises(ValueError, match="labels"):
        ImageData(torch.zeros(2, 1, 2, 2), torch.tensor([0, 5]), ["a", "b"], "toy", "test")


def test_subset_reads_a_boolean_mask_and_refuses_floats(digits):
    # a mask is the positions where it is True (not the indices 0 and 1); floats are never truncated
    train = digits.train
    mask = train.y != 3
    sub = train.subset(mask)
    assert len(sub) == int(mask.sum()) and not (sub.y == 3).any()
    assert torch.equal(sub.x, train.subset(mask.nonzero().flatten()).x)
    assert len(train.subset(mask.numpy())) == len(train.subset(mask.tolist())) == len(sub)
    with pytest.raises(ValueError, match="one entry per example"):
        train.subset(mask[:-1])
    for bad in ([0.5, 1.7], torch.tensor([0.0, 1.0]), np.array([1.0]), ["a", "b"]):
        with pytest.raises(ValueError, match="integer positions or a boolean mask"):
            train.subset(bad)
    with pytest.raises(ValueError, match="1-D"):
        train.subset(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="indices must lie in"):
        train.subset([-1])
    assert len(train.subset([])) == 0 and len(train.subset(range(5))) == 5


def test_truncated_or_empty_npz_is_a_clear_error(tmp_path):
    folder = tmp_path / "fashion_mnist"
    folder.mkdir()
    path = folder / "fashion_mnist.npz"
    x, y = np.zeros((4, 28, 28), np.uint8), np.arange(4) % 2
    np.savez(path, x_train=x, y_train=y, x_test=x, y_test=y, classes=np.array(["a", "b"]))
    whole = path.read_bytes()
    for content in (b"", whole[: len(whole) // 2], b"not an archive at all"):
        path.write_bytes(content)
        with pytest.raises(ValueError, match="not a readable .npz archive") as err:
            load_dataset("fashion_mnist", data_dir=tmp_path, verbose=False)
        assert str(path) in str(err.value)
    np.savez(path, x_train=x, y_train=y, x_test=x, y_test=y)  # complete, but without "classes"
    with pytest.raises(ValueError, match=r"lacks the keys \['classes'\]"):
        load_dataset("fashion_mnist", data_dir=tmp_path, verbose=False)


def _float_npz(root: Path, name: str = "fashion_mnist", bad=None) -> Path:
    """A float-pixel .npz (values in [0, 255]) in the course layout; ``bad``: (split, index, value) to plant."""
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.random((30, 6, 6)).astype(np.float32) * 255,
        "y_train": np.arange(30) % 3,
        "x_test": rng.random((9, 6, 6)).astype(np.float32) * 255,
        "y_test": np.arange(9) % 3,
        "classes": np.array(["a", "b", "c"]),
    }
    if bad is not None:
        split, index, value = bad
        arrays[f"x_{split}"][index] = value
    (root / name).mkdir(parents=True, exist_ok=True)
    np.savez(root / name / f"{name}.npz", **arrays)
    return root / name / f"{name}.npz"


@pytest.mark.parametrize(
    "bad, words",
    [
        (
            ("train", (0, 0, 0), np.nan),
            r"x_train has 1 non-finite value\(s\) \(1 NaN, 0 \+-inf\); first bad rows \[0\]",
        ),
        (
            ("train", (slice(5, 30, 10), 2), np.inf),
            r"x_train has 18 non-finite .*\(0 NaN, 18 \+-inf\); first bad rows \[5, 15, 25\]",
        ),
        (("test", (8, 5, 5), -np.inf), r"x_test has 1 non-finite .*first bad rows \[8\]"),
    ],
)
def test_a_non_finite_pixel_under_labkit_data_dir_is_an_error_not_a_nan_dataset(
    tmp_path, monkeypatch, bad, words
):
    """One NaN pixel used to make the whole normalised set NaN (the mean and std of the channel are NaN). Under
    $LABKIT_DATA_DIR the error names the file, the array, the count and the rows; it does not fall back quietly."""
    path = _float_npz(tmp_path, bad=bad)
    monkeypatch.setenv("LABKIT_DATA_DIR", str(tmp_path))
    with pytest.raises(ValueError, match=words) as err:
        load_dataset("fashion_mnist", verbose=False)
    assert str(path) in str(err.value) and "Fix or regenerate" in str(err.value)


def test_float_pixels_still_load_and_integer_pixels_cost_no_finiteness_pass(tmp_path, monkeypatch):
    _float_npz(tmp_path)
    data = load_dataset("fashion_mnist", data_dir=tmp_path, verbose=False)
    assert data.in_shape == (1, 6, 6) and torch.isfinite(data.train.x).all()
    import labkit.data as module

    seen = []
    real = module._check_finite

    def spy(a, *args, **kw):
        seen.append((str(a.dtype), a.size if isinstance(a, np.ndarray) else a.numel()))
        return real(a, *args, **kw)

    monkeypatch.setattr(module, "_check_finite", spy)
    _write_npz(tmp_path / "u", "cifar10", (8, 8, 3))
    load_dataset("cifar10", data_dir=tmp_path / "u", verbose=False)
    assert {d for d, _ in seen} <= {"uint8"}  # only the (skipped) integer arrays: no pass over float pixels


def test_check_finite_fast_path_is_exact():
    """The one-sum fast path never hides a bad value, and a sum that overflows on finite values is not an error."""
    from labkit.data import _check_finite

    huge = torch.full((4, 1, 2, 2), 3e38)  # finite, but its float32 sum is inf
    _check_finite(huge, "x")
    ImageData(huge, torch.zeros(4, dtype=torch.long), ["a"], "n", "s")
    for value in (float("nan"), float("inf"), float("-inf")):
        x = torch.zeros(4, 1, 2, 2)
        x[2, 0, 1, 1] = value
        with pytest.raises(ValueError, match=r"x has 1 non-finite value\(s\).*first bad rows \[2\]"):
            _check_finite(x, "x")
        with pytest.raises(ValueError, match=r"first bad rows \[2\]"):
            _check_finite(x.numpy(), "x")
    mixed = torch.tensor([[float("inf"), -float("inf")], [float("nan"), 1.0]])  # inf + -inf: NaN in the sum
    with pytest.raises(ValueError, match=r"3 non-finite value\(s\) \(1 NaN, 2 \+-inf\)"):
        _check_finite(mixed, "x")


def test_image_data_validates_cheaply_and_through_replace(digits):
    import dataclasses

    x, y = digits.train.x, digits.train.y
    made = ImageData(x, y, digits.classes, "d", "s")
    assert made.x is x and made.y is y  # no copy
    moved = made.to("cpu")
    assert moved.x.data_ptr() == x.data_ptr() and made.unlabelled().x.data_ptr() == x.data_ptr()
    with pytest.raises(ValueError, match="1347 examples but y has 1346 labels"):
        dataclasses.replace(made, y=y[1:])
    with pytest.raises(ValueError, match="float64"):
        dataclasses.replace(made, x=x.double())
    with pytest.raises(ValueError, match=r"0\.\.4 for 5 classes"):
        dataclasses.replace(made, classes=digits.classes[:5])
    with pytest.raises(ValueError, match="train images are .* but test images"):
        DataSplits(digits.train, ImageData(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long),
                                           digits.classes, "t", "s"))  # fmt: skip
    with pytest.raises(TypeError, match="fell_back must be True or False"):
        DataSplits(digits.train, digits.test, fell_back="no")


def _indexed(n: int = 60, k: int = 3) -> ImageData:
    """A toy set whose image i is filled with the value i, so splits can be traced back to indices."""
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    y = torch.tensor([i % k if i < n - 6 else 0 for i in range(n)])  # class 0 is the largest
    return ImageData(x, y, [f"c{i}" for i in range(k)], "toy", "test")


def _ids(data: ImageData) -> set[int]:
    return set(data.x[:, 0, 0, 0].long().tolist())


def test_few_labels_split():
    data = _indexed()
    labelled, transfer = few_labels_split(data, n_per_class=4, seed=0)
    assert labelled.y.bincount().tolist() == [4, 4, 4] and (transfer.y == -1).all()
    assert _ids(labelled).isdisjoint(_ids(transfer)) and _ids(labelled) | _ids(transfer) == set(range(60))
    assert all(data.y[i] == labelled.y[j] for j, i in enumerate(labelled.x[:, 0, 0, 0].long()))
    again, _ = few_labels_split(data, n_per_class=4, seed=0)
    other, _ = few_labels_split(data, n_per_class=4, seed=1)
    assert _ids(again) == _ids(labelled) and _ids(other) != _ids(labelled)
    _, kept = few_labels_split(data, n_per_class=4, seed=0, keep_labels=True)
    assert torch.equal(
        kept.y, data.y[kept.x[:, 0, 0, 0].long()]
    )  # the true labels, for pseudo-label accuracy
    with pytest.raises(ValueError, match="maximum is 18"):
        few_labels_split(data, n_per_class=19)


def test_train_val_split_is_stratified_and_disjoint(digits):
    train, val = train_val_split(digits.train, val_fraction=0.2, seed=1)
    assert len(val) == round(0.2 * len(digits.train)) and len(train) + len(val) == len(digits.train)
    share = val.y.bincount(minlength=10) / digits.train.y.bincount(minlength=10)
    assert torch.all((share - 0.2).abs() < 0.02)
    toy_train, toy_val = train_val_split(_indexed(), val_fraction=0.25)
    assert _ids(toy_train).isdisjoint(_ids(toy_val)) and len(toy_val) == 15
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(digits.train, val_fraction=1.0)


def test_concat(digits):
    both = concat(digits.train, digits.test)
    assert len(both) == 1797 and torch.equal(both.y[-450:], digits.test.y)
    toy = ImageData(torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.long), ["a", "b"], "toy", "test")
    with pytest.raises(ValueError, match="different classes"):
        concat(digits.train, toy)
    wide = ImageData(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long), digits.classes, "toy", "t")
    with pytest.raises(ValueError, match="shape"):
        concat(digits.train, wide)


def test_per_class_budget_caps_at_the_smallest_class(digits):
    import labkit as lk

    smallest = int(digits.train.y.bincount().min())
    assert lk.per_class_budget(digits.train, 500) == 50
    assert lk.per_class_budget(digits.train, 20_000) == smallest  # a default-profile size on the fallback
    assert lk.per_class_budget(digits.train, None) == smallest
    assert lk.per_class_budget(digits.train, 3) == 1
    with pytest.raises(ValueError, match="no labelled"):
        lk.per_class_budget(digits.train.unlabelled(), 100)


def test_random_crop_flip_takes_a_window_of_the_padded_image():
    from labkit.data import random_crop_flip

    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8) + 1  # no zeros inside the image
    out = random_crop_flip(x, padding=2, flip=False, generator=g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for b in range(2):
        windows = [padded[b, :, i : i + 8, j : j + 8] for i in range(5) for j in range(5)]
        assert any(torch.equal(out[b], w) for w in windows)  # the same crop for every channel
    assert torch.equal(random_crop_flip(x, padding=0, flip=False), x)
    flipped = random_crop_flip(x.repeat(50, 1, 1, 1), padding=0, flip=True, generator=g)
    n_flipped = sum(torch.equal(f, x[i % 2].flip(-1)) for i, f in enumerate(flipped))
    assert 25 <= n_flipped <= 75  # about half of 100 images
    a = random_crop_flip(x, generator=torch.Generator().manual_seed(1))
    b = random_crop_flip(x, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_random_crop_flip_rejects_vectors_and_non_batches():
    from labkit.data import random_crop_flip

    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        random_crop_flip(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="at least 8x8"):
        random_crop_flip(torch.zeros(2, 1, 1, 50))


def test_fit_with_augmentation_runs_the_teacher_on_augmented_batches(digits):
    import labkit as lk

    train = digits.train.subset(range(64))
    teacher = lk.build_model("mlp", train.in_shape, 10, hidden=(8,))
    calls = []
    teacher.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    cfg = lk.TrainConfig(epochs=2, batch_size=32, augment=True, progress=False)
    init = lk.build_model("mlp", train.in_shape, 10, hidden=(8,))
    runs = [lk.clone_init(init), lk.clone_init(init)]
    for student in runs:
        lk.fit(student, train, method="kd", teacher=teacher, config=cfg)
    assert calls.count(32) == 2 * 2 * 2  # every step of both runs: no cached logits with augmentation
    assert all(
        torch.equal(a, b) for a, b in zip(runs[0].state_dict().values(), runs[1].state_dict().values())
    )
    with pytest.raises(ValueError, match="cannot follow augment=True"):
        lk.fit(init, train, method="kd", teacher=teacher, teacher_logits=torch.zeros(64, 10), config=cfg)
