"""The training loop: determinism, teacher handling, cached logits, resume, checkpoints, bad inputs."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

import labkit as lk
import labkit.training
from labkit.data import load_dataset
from labkit.models import build_model, clone_init
from labkit.training import (
    TrainConfig,
    fit,
    get_device,
    load_weights,
    save_weights,
    seed_everything,
    train_or_load,
)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", verbose=False)


@pytest.fixture(scope="module")
def teacher(digits):
    torch.manual_seed(0)
    t = build_model("resnet", digits.in_shape, digits.num_classes, width=8, blocks=(1, 1, 1))
    fit(t, digits.train, config=TrainConfig(epochs=3, batch_size=64, progress=False))
    return t


def student(digits, seed=0, name="cnn", **kw):
    torch.manual_seed(seed)
    kw = kw or ({"width": 4, "stages": 3} if name == "cnn" else {})
    return build_model(name, digits.in_shape, digits.num_classes, **kw)


def cfg(**kw):
    base = {"epochs": 2, "batch_size": 64, "progress": False}
    return TrainConfig(**(base | kw))


def weights(m):
    return torch.cat([p.detach().flatten() for p in m.state_dict().values() if p.is_floating_point()])


def test_scratch_training_learns(digits):
    s = student(digits)
    h = fit(s, digits.train, config=cfg(epochs=4), val=digits.test)
    assert h.records[-1]["train_loss"] < h.records[0]["train_loss"]
    assert h.records[-1]["val_accuracy"] > 0.5  # 10 classes: chance is 0.1
    assert [r["epoch"] for r in h.records] == [1, 2, 3, 4]


def test_same_seed_same_metrics_on_cpu(digits, teacher):
    runs = []
    for _ in range(2):
        s = student(digits, seed=3)
        h = fit(s, digits.train, method="kd", teacher=teacher, config=cfg(seed=7), val=digits.test)
        runs.append((weights(s), [(r["train_loss"], r["val_accuracy"]) for r in h.records]))
    assert torch.equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    s = student(digits, seed=3)
    fit(s, digits.train, method="kd", teacher=teacher, config=cfg(seed=8))
    assert not torch.equal(runs[0][0], weights(s))  # the seed matters


def test_teacher_untouched_and_in_eval(digits, teacher):
    before = weights(teacher).clone()
    fit(
        student(digits), digits.train, method="kd", teacher=teacher, config=cfg(epochs=1, cache_teacher=False)
    )
    assert torch.equal(before, weights(teacher))
    assert not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())


def test_cached_and_uncached_teacher_logits_agree(digits, teacher):
    a, b = student(digits), student(digits)
    fit(a, digits.train, method="kd", teacher=teacher, config=cfg(cache_teacher=True))
    fit(b, digits.train, method="kd", teacher=teacher, config=cfg(cache_teacher=False))
    torch.testing.assert_close(weights(a), weights(b), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("method", ["hint", "attention"])
def test_cached_teacher_features_match_a_teacher_pass_per_step(digits, teacher, method, monkeypatch):
    # The feature cache (teacher features computed once) trains the same student as a teacher pass per step,
    # and a cache over the memory cap falls back to the per-step pass instead of failing.
    runs = {}
    for name, cache, limit in (("cached", True, 2**30), ("per step", False, 2**30), ("over cap", True, 1)):
        monkeypatch.setattr(lk.training, "FEATURE_CACHE_BYTES", limit)
        calls = []
        hook = teacher.register_forward_hook(lambda m, i, o, calls=calls: calls.append(len(i[0])))
        s = student(digits)
        fit(
            s,
            digits.train,
            method=method,
            teacher=teacher,
            config=cfg(epochs=2, beta=0.5, cache_teacher=cache),
        )
        hook.remove()
        runs[name] = (weights(s), len(calls))
    n_batches = -(-len(digits.train) // cfg().batch_size)
    assert runs["cached"][1] < n_batches  # the teacher ran over the training set once, not per batch
    assert runs["per step"][1] == 2 * n_batches
    assert runs["over cap"][1] == 2 * n_batches + 1  # a 2-image probe of the sizes, then a pass per batch
    torch.testing.assert_close(runs["cached"][0], runs["per step"][0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(runs["over cap"][0], runs["per step"][0], atol=0, rtol=0)


def test_attention_loss_takes_precomputed_teacher_maps():
    g = torch.Generator().manual_seed(0)
    fs = [torch.randn(4, 3, 6, 6, generator=g), torch.randn(4, 5, 3, 3, generator=g)]
    ft = [torch.randn(4, 7, 6, 6, generator=g), torch.randn(4, 2, 3, 3, generator=g)]
    maps = [lk.attention_map(f) for f in ft]
    torch.testing.assert_close(lk.attention_transfer_loss(fs, maps), lk.attention_transfer_loss(fs, ft))
    with pytest.raises(ValueError, match="precomputed map must be"):
        lk.attention_transfer_loss(fs, [maps[0][:, :5], maps[1]])


@pytest.mark.parametrize("method", ["hint", "attention"])
def test_feature_methods_train_their_extra_parameters(digits, teacher, method):
    s = student(digits)
    h = fit(s, digits.train, method=method, teacher=teacher, config=cfg(epochs=3, beta=0.1), val=digits.test)
    assert h.records[-1]["val_accuracy"] > 0.2


def test_transfer_set_labels_minus_one_are_ignored_by_ce(digits):
    train = digits.train
    y = train.y.clone()
    y[20:] = -1
    h = fit(student(digits), dataclasses.replace(train, y=y), config=cfg(epochs=1))
    assert h.records[-1]["train_loss"] > 0


def test_interrupted_run_resumes_to_the_same_weights(digits, teacher, tmp_path):
    full = student(digits, seed=1)
    fit(full, digits.train, method="kd", teacher=teacher, config=cfg(epochs=4))

    class Killed(Exception):
        pass

    def kill_after_two(epoch, record):
        if epoch == 2:
            raise Killed

    ckpt = tmp_path / "run.pt"
    s = student(digits, seed=1)
    with pytest.raises(Killed):
        fit(
            s,
            digits.train,
            method="kd",
            teacher=teacher,
            config=cfg(epochs=4),
            checkpoint=ckpt,
            callbacks=[kill_after_two],
        )
    resumed = student(digits, seed=5)  # a fresh process would build the model again; weights come from disk
    h = fit(resumed, digits.train, method="kd", teacher=teacher, config=cfg(epochs=4), checkpoint=ckpt)
    assert [r["epoch"] for r in h.records] == [1, 2, 3, 4]
    assert torch.equal(weights(full), weights(resumed))


def test_corrupted_checkpoint_is_a_clear_error(digits, tmp_path):
    ckpt = tmp_path / "run.pt"
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="corrupted or not a labkit training checkpoint"):
        fit(student(digits), digits.train, config=cfg(), checkpoint=ckpt)


def test_safetensors_roundtrip_and_corruption(digits, tmp_path):
    a, b = student(digits, seed=0), student(digits, seed=1)
    path = save_weights(a, tmp_path / "w.safetensors")
    load_weights(b, path)
    assert torch.equal(weights(a), weights(b))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(RuntimeError, match="corrupted"):
        load_weights(b, path)
    with pytest.raises(RuntimeError, match="do not fit this model"):
        load_weights(student(digits, name="mlp"), save_weights(a, tmp_path / "x.safetensors"))
    with pytest.raises(FileNotFoundError):
        load_weights(b, tmp_path / "missing.safetensors")


def test_train_or_load_skips_training_when_cached(digits, tmp_path, capsys):
    a = student(digits, seed=0)
    h1 = train_or_load(a, digits.train, name="t", config=cfg(), cache=tmp_path)
    b = clone_init(student(digits, seed=9))
    h2 = train_or_load(b, digits.train, name="t", config=cfg(), cache=tmp_path)
    assert "loaded cached t" in capsys.readouterr().out
    assert torch.equal(weights(a), weights(b)) and h1.records == h2.records
    c = student(digits, seed=0)
    train_or_load(c, digits.train, name="t", config=cfg(epochs=1), cache=tmp_path)  # new config: retrains
    assert len(list(tmp_path.glob("t-*.safetensors"))) == 2


def test_seed_everything_repeats_random_draws():
    seed_everything(11)
    a = torch.rand(3)
    seed_everything(11)
    assert torch.equal(a, torch.rand(3))


# ----------------------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"temperature": 0}, "temperature must be a finite number > 0"),
        ({"alpha": 1.5}, r"alpha must be in \[0, 1\]"),
        ({"epochs": 0}, "epochs must be an integer >= 1"),
        ({"lr": -1.0}, "lr must be a number > 0"),
        ({"optimizer": "adamx"}, "unknown optimizer 'adamx'"),
        ({"beta": -1.0}, "beta"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_teacher_student_class_mismatch(digits):
    torch.manual_seed(0)
    t5 = build_model("mlp", digits.in_shape, 5)
    with pytest.raises(ValueError, match="teacher has 5 classes but student has 10"):
        fit(student(digits), digits.train, method="kd", teacher=t5, config=cfg())


def test_kd_without_teacher_and_unknown_method(digits):
    with pytest.raises(ValueError, match="pass teacher="):
        fit(student(digits), digits.train, method="kd", config=cfg())
    with pytest.raises(ValueError, match="unknown method 'distill'"):
        fit(student(digits), digits.train, method="distill", config=cfg())


def test_wrong_teacher_logits_shape(digits, teacher):
    with pytest.raises(ValueError, match="one row per training example"):
        fit(
            student(digits),
            digits.train,
            method="kd",
            teacher=teacher,
            teacher_logits=torch.zeros(3, 10),
            config=cfg(),
        )


def test_devices():
    assert get_device("cpu").type == "cpu"
    assert get_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU is available"):
            get_device("cuda")


def test_train_or_load_cache_key_follows_data_content_not_path(digits, tmp_path, capsys):
    import dataclasses

    a = student(digits, seed=0)
    train_or_load(a, digits.train, name="t", config=cfg(epochs=1), cache=tmp_path)
    moved = dataclasses.replace(
        digits.train, source="local: /elsewhere/digits.npz"
    )  # same data, other folder
    train_or_load(student(digits, seed=0), moved, name="t", config=cfg(epochs=1), cache=tmp_path)
    assert "loaded cached t" in capsys.readouterr().out
    changed = dataclasses.replace(digits.train, x=digits.train.x.flip(-1))  # same size, other content
    train_or_load(student(digits, seed=0), changed, name="t", config=cfg(epochs=1), cache=tmp_path)
    assert len(list(tmp_path.glob("t-*.safetensors"))) == 2


def test_paired_runs_share_one_teacher_pass_until_the_teacher_changes(digits, teacher):
    # lk.compare's arms call fit with the same teacher and training set: the teacher runs over it once, and a
    # changed teacher (weights updated in place, or a different setting) is run again, never served stale.
    teacher = copy.deepcopy(teacher)  # changed below: not the module's shared fixture
    calls = []
    hook = teacher.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    a, b = student(digits), student(digits)
    fit(a, digits.train, method="kd", teacher=teacher, config=cfg(epochs=1))
    first = len(calls)
    fit(b, digits.train, method="kd", teacher=teacher, config=cfg(epochs=1))
    assert first > 0 and len(calls) == first  # the second run reused the first run's teacher logits
    with torch.no_grad():
        next(teacher.parameters()).add_(0.01)  # an in-place change of the teacher's weights
    c = student(digits)
    fit(c, digits.train, method="kd", teacher=teacher, config=cfg(epochs=1))
    assert len(calls) > first
    teacher.some_setting = "changed"  # a plain attribute that may change what the teacher returns
    n = len(calls)
    fit(student(digits), digits.train, method="kd", teacher=teacher, config=cfg(epochs=1))
    assert len(calls) > n
    hook.remove()


def test_alternating_feature_arms_keep_their_teacher_passes(digits, teacher):
    # lk.compare runs its arms seed by seed: hint, attention, hint, attention... Each method's teacher pass is kept
    # (labkit.training.MEMO_ENTRIES entries), so the second seed runs the teacher no more; a third method evicts
    # the least recently used one, which then runs again.
    from labkit import training

    teacher = copy.deepcopy(teacher)
    calls = []
    hook = teacher.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    methods = ("hint", "attention")
    for m in methods:
        fit(student(digits), digits.train, method=m, teacher=teacher, config=cfg(epochs=1, beta=0.1))
    first = len(calls)
    for m in methods:
        fit(student(digits), digits.train, method=m, teacher=teacher, config=cfg(epochs=1, beta=0.1))
    assert first > 0 and len(calls) == first
    assert training.MEMO_ENTRIES == 2
    fit(student(digits), digits.train, method="kd", teacher=teacher, config=cfg(epochs=1))  # evicts "hint"
    n = len(calls)
    fit(student(digits), digits.train, method="attention", teacher=teacher, config=cfg(epochs=1, beta=0.1))
    assert len(calls) == n  # still kept
    fit(student(digits), digits.train, method="hint", teacher=teacher, config=cfg(epochs=1, beta=0.1))
    assert len(calls) > n  # evicted, run again
    hook.remove()


def test_a_truncated_cache_entry_is_trained_again_not_a_crash(digits, tmp_path, capsys):
    # a run killed while writing the cache (or a corrupted file) must not break every later train_or_load
    import json

    c = cfg(epochs=1)
    lk.train_or_load(student(digits), digits.train, name="t", config=c, cache=tmp_path)
    meta, weights = next(tmp_path.glob("t-*.json")), next(tmp_path.glob("t-*.safetensors"))
    for broken, keep in ((meta, meta.read_text()[:5]), (weights, None)):
        if keep is None:
            broken.write_bytes(broken.read_bytes()[:100])
        else:
            broken.write_text(keep)
        capsys.readouterr()
        history = lk.train_or_load(student(digits), digits.train, name="t", config=c, cache=tmp_path)
        out = capsys.readouterr().out
        assert "unreadable" in out and "training it again" in out
        assert json.loads(meta.read_text()) == json.loads(json.dumps(history.records))  # written whole again
        lk.train_or_load(student(digits), digits.train, name="t", config=c, cache=tmp_path)
        assert "loaded cached t" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [meta.name, weights.name]
    )  # no temporary files
