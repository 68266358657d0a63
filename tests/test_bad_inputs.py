"""One table of the bad inputs learners actually pass, across the public API: each must raise an error that
names what was wrong (and usually what is allowed), never a bare traceback from deep inside torch.

The module tests check their own functions in more depth; this table is the reliability contract in one place.
"""

from __future__ import annotations

import pytest
import torch
from conftest import assert_clear_labkit_error

import labkit as lk


def _digits():
    return lk.load_dataset("digits", verbose=False)


def _fit_with_teacher(teacher_classes: int, student_classes: int):
    import dataclasses

    full = _digits().train
    keep = torch.nonzero(full.y < student_classes).squeeze(1)[:32]  # a dataset with the student's classes
    data = dataclasses.replace(full.subset(keep), classes=full.classes[:student_classes])
    teacher = lk.build_model("mlp", data.in_shape, teacher_classes, hidden=(4,))
    student = lk.build_model("mlp", data.in_shape, student_classes, hidden=(4,))
    lk.fit(student, data, method="kd", teacher=teacher, config=lk.TrainConfig(epochs=1, progress=False))


def _hint_mismatch():
    lk.HintLoss(4, 8)(torch.randn(2, 4, 8, 8), torch.randn(2, 8, 4, 4))  # spatial sizes differ


z = torch.randn(4, 10)
y = torch.randint(0, 10, (4,))

BAD = [
    # (what a learner did, call, error type, words the message must contain)
    ("temperature 0", lambda: lk.kd_kl_loss(z, z, temperature=0), ValueError, "temperature must be"),
    ("negative temperature", lambda: lk.soft_targets(z, temperature=-2), ValueError, "> 0"),
    ("temperature as a string", lambda: lk.TrainConfig(temperature="4"), ValueError, "temperature"),
    ("alpha 1.5", lambda: lk.hinton_kd_loss(z, z, y, alpha=1.5), ValueError, r"alpha must be in \[0, 1\]"),
    ("alpha NaN", lambda: lk.TrainConfig(alpha=float("nan")), ValueError, "alpha"),
    (
        "10-class teacher, 5-class student",
        lambda: _fit_with_teacher(10, 5),
        ValueError,
        "teacher has 10 classes but student has 5",
    ),
    (
        "logits of different widths",
        lambda: lk.kd_kl_loss(torch.randn(4, 10), torch.randn(4, 5)),
        ValueError,
        "classes",
    ),
    ("labels out of range", lambda: lk.hinton_kd_loss(z, z, torch.full((4,), 12)), ValueError, "0..9"),
    (
        "1-D logits",
        lambda: lk.kd_kl_loss(torch.randn(10), torch.randn(10)),
        ValueError,
        r"\(batch, num_classes\)",
    ),
    ("mismatched feature shapes", _hint_mismatch, ValueError, "student feature"),
    ("unknown dataset", lambda: lk.load_dataset("mnist-fashion"), ValueError, "fashion_mnist"),
    (
        "missing data dir",
        lambda: lk.load_dataset("cifar10", data_dir="/no/such/dir"),
        FileNotFoundError,
        "cifar10.npz",
    ),
    ("unknown profile", lambda: lk.get_profile("fast"), ValueError, "smoke"),
    ("unknown profile field", lambda: lk.get_profile("smoke", epochs=3), ValueError, "student_epochs"),
    ("unknown model", lambda: lk.build_model("vit", (1, 8, 8), 10), ValueError, "resnet"),
    ("unknown method", lambda: lk.fit(None, _digits().train, method="distil"), ValueError, "kd"),
    ("unknown objective", lambda: lk.get_objective("kl"), ValueError, "hinton"),
    (
        "weights that do not sum to 1",
        lambda: lk.check_weights(torch.tensor([[0.2, 0.2]]), 1, 2),
        ValueError,
        "sum to 1",
    ),
    (
        "negative teacher weights",
        lambda: lk.check_weights(torch.tensor([[-1.0, 2.0]]), 1, 2),
        ValueError,
        ">= 0",
    ),
    ("zero teachers", lambda: lk.TeacherEnsemble([], num_classes=10), ValueError, "zero"),
    ("unknown weighting", lambda: lk.make_weighting("vote", 2), ValueError, "uniform"),
    ("few labels > class size", lambda: lk.few_labels_split(_digits().train, 10_000), ValueError, "maximum"),
    (
        "missing weights file",
        lambda: lk.load_weights(torch.nn.Linear(2, 2), "/no/such.safetensors"),
        FileNotFoundError,
        "no weights",
    ),
    ("zero epochs", lambda: lk.TrainConfig(epochs=0), ValueError, "epochs"),
    (
        "pseudo-label threshold 1.5",
        lambda: lk.pseudo_labels(z, threshold=1.5),
        ValueError,
        r"threshold.*\[0, 1\]",
    ),
    ("pseudo-label threshold -0.1", lambda: lk.pseudo_labels(z, threshold=-0.1), ValueError, r"\[0, 1\]"),
    ("unknown text dataset", lambda: lk.load_text_dataset("imdb"), ValueError, "sst2"),
    (
        "domains with different label spaces",
        lambda: lk.domain_pair(_digits(), lk.load_text_dataset("toy_books", verbose=False)),
        ValueError,
        "label spaces differ",
    ),
    (
        "missing text data dir",
        lambda: lk.load_text_dataset("kitchen", data_dir="/no/such/dir"),
        FileNotFoundError,
        "kitchen.tsv",
    ),
]


@pytest.mark.parametrize("call, error, words", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_gives_a_clear_error(call, error, words):
    with pytest.raises(error, match=words) as info:
        call()
    assert_clear_labkit_error(info)


def test_counts_accept_numpy_integers_and_name_what_else_came():
    import numpy as np

    from labkit._validate import check_positive_int

    assert check_positive_int(np.int64(3), "n") == 3 and type(check_positive_int(np.int64(3), "n")) is int
    with pytest.raises(ValueError, match=r"n must be an integer >= 1, got 2.0 \(a float\)"):
        check_positive_int(2.0, "n")
    with pytest.raises(ValueError, match=r"n must be an integer >= 1, got True"):
        check_positive_int(True, "n")
