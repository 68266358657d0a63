"""Model families: shapes, features, matching stage resolutions, sizes, seeded init and clear errors."""

import math

import pytest
import torch

from labkit.models import (
    MLP,
    MODELS,
    ResNetTeacher,
    SmallCNN,
    build_model,
    clone_init,
    count_parameters,
    model_table,
    size_on_disk_mb,
)

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]
# small sizes keep the suite fast; the defaults are covered by the parameter-count tests
SMALL = {
    "resnet": {"width": 4, "blocks": (1, 1, 1)},
    "cnn": {"width": 4, "stages": 3},
    "mlp": {"hidden": (8, 6)},
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_logits_and_features_shapes(name, shape):
    torch.manual_seed(0)
    model = build_model(name, shape, 10, **SMALL[name]).eval()
    x = torch.randn(3, *shape)
    assert model(x).shape == (3, 10)
    logits, feats = model(x, return_features=True)
    assert logits.shape == (3, 10)
    assert torch.allclose(logits, model(x))  # same logits with and without features
    assert isinstance(feats, list) and len(feats) == len(model.feature_channels)
    assert [f.shape[1] for f in feats] == model.feature_channels
    assert all(f.shape[0] == 3 for f in feats)
    assert model.num_classes == 10 and model.in_shape == shape
    expected_dim = 2 if name == "mlp" else 4
    assert all(f.dim() == expected_dim for f in feats)
    assert model.spatial_features == (name != "mlp")


@pytest.mark.parametrize("shape", SHAPES)
def test_stage_resolutions_match_between_resnet_and_cnn(shape):
    teacher = ResNetTeacher(shape, 10, width=8, blocks=(1, 1, 1))
    student = SmallCNN(shape, 10, width=4, stages=3)
    x = torch.randn(2, *shape)
    _, t_feats = teacher(x, return_features=True)
    _, s_feats = student(x, return_features=True)
    h = shape[1]
    expected = [h, math.ceil(h / 2), math.ceil(h / 4)]  # 32 -> 32, 16, 8 and 28 -> 28, 14, 7
    assert [f.shape[2] for f in t_feats] == expected
    assert [f.shape[2:] for f in s_feats] == [f.shape[2:] for f in t_feats]
    assert student.feature_channels == [4, 8, 16] and teacher.feature_channels == [8, 16, 32]


def test_odd_and_rectangular_inputs():
    teacher, student = ResNetTeacher((2, 9, 13), 3, width=4), SmallCNN((2, 9, 13), 3, width=4, stages=3)
    x = torch.randn(2, 2, 9, 13)
    t_feats, s_feats = teacher(x, return_features=True)[1], student(x, return_features=True)[1]
    assert [tuple(f.shape[2:]) for f in t_feats] == [(9, 13), (5, 7), (3, 4)]
    assert [f.shape[2:] for f in s_feats] == [f.shape[2:] for f in t_feats]


def test_default_parameter_ordering_on_fashion_mnist():
    # defaults on 1x28x28: the ResNet teacher is largest; the MLP's 784 -> 256 layer outweighs the small CNN
    sizes = {name: count_parameters(build_model(name, (1, 28, 28), 10)) for name in MODELS}
    assert sizes["resnet"] > sizes["mlp"] > sizes["cnn"]
    # hand count for the CNN: conv 1->16 (144) + BN (32) + conv 16->32 (4608) + BN (64) + fc 32*10+10
    assert sizes["cnn"] == 144 + 32 + 4608 + 64 + 330
    assert sizes["mlp"] == 784 * 256 + 256 + 256 * 10 + 10


def test_count_parameters_trainable_only():
    model = build_model("mlp", (1, 8, 8), 10, hidden=(4,))
    total = count_parameters(model)
    model.fc.weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == total - 40
    assert count_parameters(model) == total


def test_size_on_disk_is_about_four_bytes_per_value():
    model = build_model("cnn", (1, 28, 28), 10, width=16, stages=3)
    n_values = sum(t.numel() for t in model.state_dict().values())  # params + BN buffers
    size_bytes = size_on_disk_mb(model) * 1e6
    assert 4 * count_parameters(model) < size_bytes
    assert size_bytes == pytest.approx(4 * n_values, rel=0.05)  # plus a small header


def test_model_table_columns_and_ratio():
    models = {
        "teacher": build_model("resnet", (1, 8, 8), 10, width=8),
        "student": build_model("cnn", (1, 8, 8), 10),
    }
    table = model_table(models)
    assert list(table.columns) == ["params", "size_mb", "params_ratio"]
    assert list(table.index) == ["teacher", "student"]
    assert table.loc["teacher", "params_ratio"] == 1.0
    assert table.loc["student", "params_ratio"] == pytest.approx(
        count_parameters(models["student"]) / count_parameters(models["teacher"])
    )
    with pytest.raises(ValueError, match="reference model"):
        model_table(models, reference="nope")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_seeded_construction_is_deterministic(name):
    torch.manual_seed(0)
    a = build_model(name, (3, 32, 32), 10, **SMALL[name])
    torch.manual_seed(0)
    b = build_model(name, (3, 32, 32), 10, **SMALL[name])
    torch.manual_seed(1)
    c = build_model(name, (3, 32, 32), 10, **SMALL[name])
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_clone_init_equal_but_independent():
    torch.manual_seed(0)
    model = build_model("cnn", (1, 8, 8), 10, width=4)
    twin = clone_init(model)
    assert twin is not model
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), twin.parameters()))
    with torch.no_grad():
        next(twin.parameters()).add_(1.0)
    assert not torch.equal(next(model.parameters()), next(twin.parameters()))
    with pytest.raises(ValueError, match="nn.Module"):
        clone_init("not a model")


@pytest.mark.parametrize("name", ["cnn", "resnet"])
def test_pooled_head_reads_a_grid(name):
    # pool=k: the head reads a k x k grid of the last stage (k*k times the weights); the stages are unchanged
    torch.manual_seed(0)
    flat = build_model(name, (1, 28, 28), 10, **SMALL[name])
    grid = build_model(name, (1, 28, 28), 10, **SMALL[name], pool=4)
    c = flat.feature_channels[-1]
    assert flat.fc.in_features == c and grid.fc.in_features == 16 * c
    assert count_parameters(grid) - count_parameters(flat) == 15 * c * 10
    x = torch.randn(2, 1, 28, 28)
    logits, feats = grid(x, return_features=True)
    assert logits.shape == (2, 10)
    assert [f.shape for f in feats] == [f.shape for f in flat(x, return_features=True)[1]]
    # global pooling cannot tell a last-stage map from its mirror image; the 4x4 grid head can
    flat.eval(), grid.eval()
    f = torch.rand(1, c, 7, 7)
    heads = {m: m.fc(m.pool(f).flatten(1)) for m in (flat, grid)}
    mirrored = {m: m.fc(m.pool(f.flip(-1)).flatten(1)) for m in (flat, grid)}
    assert torch.allclose(heads[flat], mirrored[flat], atol=1e-6)
    assert not torch.allclose(heads[grid], mirrored[grid], atol=1e-3)


def test_build_model_errors():
    with pytest.raises(ValueError, match="choose one of: cnn, mlp, resnet"):
        build_model("vgg", (1, 28, 28), 10)
    for bad in (1, 0, 2.0, True):
        with pytest.raises(ValueError, match="num_classes"):
            build_model("cnn", (1, 28, 28), bad)
    for bad in ((28, 28), (1, 4, 4), (1, 28, -1), "1x28x28", (1, 28.0, 28)):
        with pytest.raises(ValueError, match="in_shape"):
            build_model("resnet", bad, 10)
    with pytest.raises(ValueError, match="accepts: width, stages, pool"):
        build_model("cnn", (1, 28, 28), 10, depth=3)
    with pytest.raises(ValueError, match="blocks"):
        build_model("resnet", (1, 28, 28), 10, blocks=())
    for name in ("cnn", "resnet"):
        for bad in (0, -2, 1.5, True):
            with pytest.raises(ValueError, match="pool"):
                build_model(name, (1, 28, 28), 10, pool=bad)
    with pytest.raises(ValueError, match="dropout"):
        build_model("mlp", (1, 28, 28), 10, dropout=1.0)
    assert (
        build_model("mlp", [64], 10, hidden=()).feature_channels == []
    )  # vectors and lists are fine for the MLP
    assert isinstance(build_model("cnn", torch.Size([1, 8, 8]), 10), SmallCNN)
    assert isinstance(build_model("mlp", (1, 4, 4), 2), MLP)  # no minimum image size for the MLP


def test_forward_rejects_wrong_input():
    model = build_model("cnn", (1, 28, 28), 10, width=4)
    with pytest.raises(ValueError, match="unsqueeze"):
        model(torch.randn(1, 28, 28))
    with pytest.raises(ValueError, match="1 input channel"):
        model(torch.randn(2, 3, 28, 28))


# ------------------------------------------------------------------------------- careless inputs (#15)
def test_pool_is_at_most_the_last_map():
    assert (
        build_model("cnn", (1, 8, 8), 10, width=4, stages=3, pool=2).fc.in_features == 16 * 4
    )  # 2x2 map, 2x2 grid
    assert (
        build_model("cnn", (1, 28, 28), 10, width=8, stages=3, pool=4).fc.in_features == 32 * 16
    )  # 7x7 map: fine
    # a grid finer than the map would only upsample it: the whole map is read, with a warning (a profile's pool=4,
    # chosen for 28x28 images, on the 8x8 digits fallback still builds)
    with pytest.warns(UserWarning, match=r"pool=3 is larger than the last stage's 2x2 map.*pool=2"):
        clamped = build_model("cnn", (1, 8, 8), 10, width=4, stages=3, pool=3)
    assert clamped.fc.in_features == 16 * 4 and clamped(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    with pytest.warns(UserWarning, match=r"pool=5 .* 4x4 map"):
        assert build_model("resnet", (1, 8, 8), 10, width=4, blocks=(1, 1), pool=5).fc.in_features == 8 * 16
    model = build_model("cnn", (1, 28, 28), 10, width=4, stages=3, pool=4)
    with pytest.raises(ValueError, match="smaller than the model was built for"):
        model(torch.zeros(2, 1, 8, 8))  # last map 2x2 < the 4x4 grid: it would be upsampled, not pooled


def test_forward_refuses_other_dtypes_and_shapes_before_torch():
    cnn, mlp = build_model("cnn", (1, 8, 8), 10, width=4), build_model("mlp", (1, 8, 8), 10, hidden=(4,))
    with pytest.raises(ValueError, match=r"x.to\(torch.float32\)"):
        cnn(torch.zeros(2, 1, 8, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="floating-point"):
        mlp(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"built for examples of shape \(1, 8, 8\)"):
        mlp(torch.zeros(2, 1, 9, 9))
    assert cnn(torch.zeros(2, 1, 12, 12)).shape == (2, 10)  # conv families still take other sizes >= 8
    assert (
        build_model("mlp", (1, 8, 8), 10).double()(torch.zeros(2, 1, 8, 8, dtype=torch.float64)).dtype
        == torch.float64
    )
    with pytest.raises(ValueError, match="no parameters"):
        model_table({"relu": torch.nn.ReLU(), "cnn": cnn})
