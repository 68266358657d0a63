"""labkit.vision: torchvision models with per-stage features (torchvision's feature extraction) for hints and
attention. No download: every model is built with weights=None, on small inputs."""

from __future__ import annotations

import pytest
import torch

import labkit as lk

tv = pytest.importorskip("torchvision")


def test_resnet18_stages_and_logits():
    model = lk.torchvision_model("resnet18", 5, pretrained=False, in_shape=(3, 32, 32))
    assert model.nodes == ["layer1", "layer2", "layer3", "layer4"]  # the four residual groups
    assert model.feature_channels == [64, 128, 256, 512]
    assert model.stage_sizes == [(8, 8), (4, 4), (2, 2), (1, 1)]  # 1/4 ... 1/32 of the input
    x = torch.randn(2, 3, 32, 32)
    logits, feats = model(x, return_features=True)
    assert logits.shape == (2, 5) and [tuple(f.shape) for f in feats] == [
        (2, 64, 8, 8), (2, 128, 4, 4), (2, 256, 2, 2), (2, 512, 1, 1)]  # fmt: skip
    model.eval()
    assert torch.allclose(model(x), model(x, return_features=True)[0])  # one graph, the same logits


def test_features_match_the_torchvision_model():
    lk.seed_everything(0)
    raw = tv.models.resnet18(weights=None, num_classes=4).eval()
    reference = {}
    hook = raw.layer2.register_forward_hook(lambda m, i, o: reference.update(layer2=o))
    x = torch.randn(2, 3, 32, 32)
    expected = raw(x)
    hook.remove()
    wrapped = lk.TorchvisionClassifier(raw, 4, (3, 32, 32)).eval()
    logits, feats = wrapped(x, return_features=True)
    assert torch.allclose(logits, expected, atol=1e-5)
    assert torch.allclose(feats[1], reference["layer2"], atol=1e-5)  # stage 1 is layer2's output


def test_input_size_grey_images_and_chosen_nodes():
    model = lk.torchvision_model(
        "resnet18", 3, pretrained=False, in_shape=(1, 16, 16), input_size=(64, 64), nodes=["layer1", "layer2"]
    )
    assert model.stage_sizes == [(16, 16), (8, 8)] and model.feature_channels == [64, 128]
    _, feats = model(torch.randn(2, 1, 16, 16), return_features=True)  # grey -> 3 channels, resized
    assert tuple(feats[0].shape) == (2, 64, 16, 16)
    mobile = lk.torchvision_model("mobilenet_v3_small", 3, pretrained=False, in_shape=(3, 32, 32))
    assert all(n.startswith("features.") for n in mobile.nodes)  # the last block at each resolution
    assert [s[0] for s in mobile.stage_sizes] == sorted({s[0] for s in mobile.stage_sizes}, reverse=True)
    with pytest.raises(ValueError, match="nodes: .*'layer9'.*not nodes of resnet18"):
        lk.torchvision_model("resnet18", 3, pretrained=False, in_shape=(3, 16, 16), nodes=["layer9"])
    with pytest.raises(ValueError, match="torchvision model"):
        lk.torchvision_model("resnet1800", 3, pretrained=False)
    assert "layer1.0.conv1" in lk.torchvision_nodes("resnet18")


@pytest.mark.parametrize("method", ["attention", "hint"])
def test_feature_methods_train_a_labkit_student_from_a_torchvision_teacher(method):
    # 16x16 images; the teacher sees them at 64x64, so layer1..layer3 (16, 8, 4) line up with the student's
    # three stages (16, 8, 4)
    lk.seed_everything(0)
    x, y = torch.randn(16, 3, 16, 16), torch.arange(16) % 4
    train = lk.ImageData(x, y, ["a", "b", "c", "d"], "tiny", "test")
    teacher = lk.torchvision_model("resnet18", 4, pretrained=False, in_shape=(3, 16, 16), input_size=(64, 64),
                                   nodes=["layer1", "layer2", "layer3"])  # fmt: skip
    student = lk.build_model("cnn", (3, 16, 16), 4, width=4, stages=3)
    assert [tuple(f.shape[2:]) for f in student(x[:2], return_features=True)[1]] == teacher.stage_sizes
    before = [p.detach().clone() for p in student.parameters()]
    cfg = lk.TrainConfig(steps=1, batch_size=8, beta=1.0, progress=False)
    history = lk.fit(student, train, method=method, teacher=teacher, config=cfg)
    assert f"loss_{method}" in history.last and history.last[f"loss_{method}"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters()))  # a step was taken


def test_align_to_a_student_picks_the_scale_and_the_stages():
    student = lk.build_model("cnn", (1, 28, 28), 10, width=4, stages=3)  # stages 28, 14, 7 (Fashion-MNIST)
    teacher = lk.torchvision_model("resnet18", 10, pretrained=False, in_shape=(1, 28, 28), align_to=student)
    assert teacher.input_size == (112, 112) and teacher.nodes == ["layer1", "layer2", "layer3"]
    assert teacher.stage_sizes == [(28, 28), (14, 14), (7, 7)]
    with pytest.raises(ValueError, match="align_to: the student must return"):
        lk.torchvision_model("resnet18", 10, pretrained=False, in_shape=(1, 28, 28),
                             align_to=lk.build_model("mlp", (1, 28, 28), 10))  # fmt: skip


def test_a_torchvision_student_clones_and_trains():
    model = lk.torchvision_model("resnet18", 4, pretrained=False, in_shape=(3, 16, 16))
    copy = lk.clone_init(model)  # the comparison engine's paired initial weights
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), copy.state_dict().values()))
    train = lk.ImageData(torch.randn(8, 3, 16, 16), torch.arange(8) % 4, list("abcd"), "tiny", "test")
    lk.fit(copy, train, config=lk.TrainConfig(steps=1, batch_size=4, progress=False))
