"""Bad inputs to the distillation objectives (labkit.losses), the multi-teacher objective and weightings
(labkit.multiteacher) and the distillers of ``lk.fit`` (labkit.methods), issue #15: each row is what a learner
did, the call, the error it must raise and words its message must contain. Never a bare traceback from torch or
numpy, never a NaN or a silently wrong number. The module tests (test_losses.py, test_multiteacher.py) check
the values in depth.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_clear_labkit_error

import labkit as lk
from labkit import methods

NAN, INF = float("nan"), float("inf")
G = torch.Generator().manual_seed(0)
Z = torch.randn(4, 5, generator=G)  # (batch, classes)
Y = torch.tensor([0, 1, -1, 4])  # -1 = unlabelled
STACK = torch.randn(4, 2, 5, generator=G)  # (batch, teachers, classes)
W = torch.full((4, 2), 0.5)
ATTN = torch.softmax(torch.randn(2, 2, 3, 3, generator=G), -1)  # (batch, heads, queries, keys)
MASK = torch.ones(2, 3)


def _with(value: float, row: int = 1, col: int = 2, z: torch.Tensor = Z) -> torch.Tensor:
    out = z.clone()
    out[row, col] = value
    return out


def _stack_with(value: float, teacher: int = 1, row: int = 2, col: int = 3) -> torch.Tensor:
    out = STACK.clone()
    out[row, teacher, col] = value
    return out


def _dead_row_stack() -> torch.Tensor:
    out = STACK.clone()
    out[1, 1] = -INF  # teacher 1 knows no class of example 1
    return out


def _cfg(**fields):
    cfg = lk.TrainConfig(epochs=1, progress=False)
    for name, value in fields.items():
        object.__setattr__(cfg, name, value)  # past TrainConfig's own checks: the distiller must catch it
    return cfg


def _cnn():
    return lk.build_model("cnn", (1, 8, 8), 10, width=4, stages=2)


BAD = [
    # ---------------------------------------------------------------- kd_kl_loss
    (
        "kd: logits as a list",
        lambda: lk.kd_kl_loss([[0.0, 1.0]], Z),
        TypeError,
        "student_logits must be a torch",
    ),
    ("kd: integer logits", lambda: lk.kd_kl_loss(Z.long(), Z), ValueError, "floating-point"),
    ("kd: 3-D logits", lambda: lk.kd_kl_loss(Z[None], Z[None]), ValueError, r"\(batch, num_classes\)"),
    ("kd: empty batch", lambda: lk.kd_kl_loss(Z[:0], Z[:0]), ValueError, "empty batch"),
    ("kd: zero classes", lambda: lk.kd_kl_loss(Z[:, :0], Z[:, :0]), ValueError, "0 classes"),
    ("kd: NaN teacher logit", lambda: lk.kd_kl_loss(Z, _with(NAN)), ValueError, r"teacher_logits .*1 NaN"),
    ("kd: +inf teacher logit", lambda: lk.kd_kl_loss(Z, _with(INF)), ValueError, r"teacher_logits .*1 \+inf"),
    ("kd: NaN student logit", lambda: lk.kd_kl_loss(_with(NAN), Z), ValueError, r"student_logits .*NaN"),
    ("kd: +inf student logit", lambda: lk.kd_kl_loss(_with(INF), Z), ValueError, r"student_logits .*\+inf"),
    (
        "kd: -inf student where the teacher has mass",
        lambda: lk.kd_kl_loss(_with(-INF), Z),
        ValueError,
        r"student_logits is -inf at row 1, class 2",
    ),
    (
        "kd: a teacher row of all -inf",
        lambda: lk.kd_kl_loss(Z, torch.cat([torch.full((1, 5), -INF), Z[1:]])),
        ValueError,
        "row 0 is -inf for every class",
    ),
    ("kd: T = 1e6", lambda: lk.kd_kl_loss(Z, Z, 1e6), ValueError, "at most 100"),
    (
        "kd: T as a string",
        lambda: lk.kd_kl_loss(Z, Z, "4"),
        ValueError,
        "temperature must be a finite number",
    ),
    ("kd: T as a tensor", lambda: lk.kd_kl_loss(Z, Z, torch.tensor(4.0)), ValueError, "temperature"),
    ("kd: T = inf", lambda: lk.kd_kl_loss(Z, Z, INF), ValueError, "temperature"),
    # ---------------------------------------------------------------- soft_targets
    ("soft_targets: NaN logit", lambda: lk.soft_targets(_with(NAN)), ValueError, r"logits must hold .*NaN"),
    ("soft_targets: list", lambda: lk.soft_targets([[1.0, 2.0]]), TypeError, "torch.Tensor"),
    ("soft_targets: T = 0", lambda: lk.soft_targets(Z, 0), ValueError, "> 0"),
    (
        "soft_targets: a row of all -inf",
        lambda: lk.soft_targets(torch.full((2, 3), -INF)),
        ValueError,
        "-inf for every class",
    ),
    # ---------------------------------------------------------------- hinton_kd_loss / labelled_cross_entropy
    ("hinton: bool targets", lambda: lk.hinton_kd_loss(Z, Z, Y > 0), ValueError, "torch.bool"),
    (
        "hinton: float targets",
        lambda: lk.hinton_kd_loss(Z, Z, Y.float()),
        ValueError,
        "integer class indices",
    ),
    ("hinton: targets as a list", lambda: lk.hinton_kd_loss(Z, Z, [0, 1, 2, 3]), ValueError, "got list"),
    ("hinton: numpy targets", lambda: lk.hinton_kd_loss(Z, Z, np.array([0, 1, 2, 3])), ValueError, "ndarray"),
    ("hinton: 2-D targets", lambda: lk.hinton_kd_loss(Z, Z, Y[None]), ValueError, r"got \(1, 4\)"),
    (
        "hinton: PyTorch's ignore_index -100",
        lambda: lk.hinton_kd_loss(Z, Z, torch.tensor([0, -100, 1, 2])),
        ValueError,
        "marks an unlabelled example with -1",
    ),
    ("hinton: alpha as a string", lambda: lk.hinton_kd_loss(Z, Z, Y, 4.0, "0.5"), ValueError, "alpha"),
    ("hinton: empty batch", lambda: lk.hinton_kd_loss(Z[:0], Z[:0], Y[:0]), ValueError, "empty batch"),
    ("hinton: NaN teacher", lambda: lk.hinton_kd_loss(Z, _with(NAN), Y), ValueError, "teacher_logits"),
    ("hinton: T = 1e6", lambda: lk.hinton_kd_loss(Z, Z, Y, 1e6), ValueError, "at most 100"),
    ("CE: float targets", lambda: lk.labelled_cross_entropy(Z, Y.float()), ValueError, "integer class"),
    (
        "CE: label 5 of 5 classes",
        lambda: lk.labelled_cross_entropy(Z, torch.tensor([0, 1, 2, 5])),
        ValueError,
        "0..4",
    ),
    ("CE: label -2", lambda: lk.labelled_cross_entropy(Z, torch.tensor([0, 1, 2, -2])), ValueError, "-1"),
    ("CE: logits as a list", lambda: lk.labelled_cross_entropy([[0.0]], Y), TypeError, "torch.Tensor"),
    ("CE: empty batch", lambda: lk.labelled_cross_entropy(Z[:0], Y[:0]), ValueError, "empty batch"),
    ("CE: 3 targets for 4 rows", lambda: lk.labelled_cross_entropy(Z, Y[:3]), ValueError, "3 entries"),
    ("CE: NaN logit", lambda: lk.labelled_cross_entropy(_with(NAN), Y), ValueError, "NaN"),
    (
        "CE: -inf at the row's own label",
        lambda: lk.labelled_cross_entropy(_with(-INF, 0, 0), Y),
        ValueError,
        "row 0 is -inf at its own label 0",
    ),
    # ---------------------------------------------------------------- prob_mse / label_distillation / dml
    ("mse: empty batch", lambda: lk.prob_mse_loss(Z[:0], Z[:0]), ValueError, "empty batch"),
    ("mse: +inf teacher", lambda: lk.prob_mse_loss(Z, _with(INF)), ValueError, r"teacher_logits .*\+inf"),
    ("mse: NaN student", lambda: lk.prob_mse_loss(_with(NAN), Z), ValueError, "student_logits"),
    ("label distillation: bool targets", lambda: lk.label_distillation_loss(Z, Z, Y > 0), ValueError, "bool"),
    (
        "label distillation: empty",
        lambda: lk.label_distillation_loss(Z[:0], Z[:0], Y[:0]),
        ValueError,
        "empty",
    ),
    ("dml: one peer", lambda: lk.dml_loss([Z], Y), ValueError, "at least two peers"),
    ("dml: a tensor, not a list", lambda: lk.dml_loss(Z, Y), ValueError, "got Tensor"),
    (
        "dml: NaN in peer 1",
        lambda: lk.dml_loss([Z, _with(NAN)], Y),
        ValueError,
        r"logits\[1\] must hold finite",
    ),
    ("dml: -inf in a peer", lambda: lk.dml_loss([Z, _with(-INF)], Y), ValueError, r"logits\[1\].*-inf"),
    (
        "dml: lists as peers",
        lambda: lk.dml_loss([[1.0], [2.0]], Y),
        TypeError,
        r"logits\[0\] must be a torch",
    ),
    ("dml: empty batch", lambda: lk.dml_loss([Z[:0], Z[:0]], Y[:0]), ValueError, "empty batch"),
    ("dml: T = 1e6", lambda: lk.dml_loss([Z, Z], Y, 1e6), ValueError, "at most 100"),
    (
        "dml: peers of different batch sizes",
        lambda: lk.dml_loss([Z, Z[:3]], Y),
        ValueError,
        r"logits\[0\] is \(4, 5\), logits\[1\] is \(3, 5\)",
    ),
    # ---------------------------------------------------------------- feature objectives
    (
        "hint: a list as feature",
        lambda: lk.HintLoss(4, 8)([1], torch.randn(2, 8, 3, 3)),
        TypeError,
        "student_feat",
    ),
    (
        "hint: vectors into a spatial hint",
        lambda: lk.HintLoss(4, 8)(torch.randn(2, 4), torch.randn(2, 8)),
        ValueError,
        "spatial=True",
    ),
    (
        "hint: NaN feature",
        lambda: lk.HintLoss(4, 8)(torch.full((2, 4, 3, 3), NAN), torch.randn(2, 8, 3, 3)),
        ValueError,
        "student_feat must hold finite",
    ),
    (
        "hint: empty batch",
        lambda: lk.HintLoss(4, 8)(torch.randn(0, 4, 3, 3), torch.randn(0, 8, 3, 3)),
        ValueError,
        "empty batch",
    ),
    ("hint: channels as a string", lambda: lk.HintLoss("4", 8), ValueError, "student_channels"),
    ("hint: spatial='yes'", lambda: lk.HintLoss(4, 8, spatial="yes"), ValueError, "spatial must be True"),
    ("attention map: a list", lambda: lk.attention_map([1]), ValueError, r"\(B, C, H, W\)"),
    ("attention map: p = 0", lambda: lk.attention_map(torch.randn(2, 3, 4, 4), p=0), ValueError, "p must be"),
    (
        "attention map: p as a string",
        lambda: lk.attention_map(torch.randn(2, 3, 4, 4), p="2"),
        ValueError,
        "p must",
    ),
    (
        "attention map: NaN",
        lambda: lk.attention_map(torch.full((2, 3, 4, 4), NAN)),
        ValueError,
        "feat must hold",
    ),
    ("AT: lists of lists", lambda: lk.attention_transfer_loss([[1]], [[1]]), TypeError, "student_feats"),
    ("AT: None", lambda: lk.attention_transfer_loss(None, None), TypeError, "NoneType"),
    (
        "AT: empty batch",
        lambda: lk.attention_transfer_loss(torch.randn(0, 3, 4, 4), torch.randn(0, 3, 4, 4)),
        ValueError,
        "empty batch",
    ),
    (
        "AT: NaN teacher feature",
        lambda: lk.attention_transfer_loss(torch.randn(2, 3, 4, 4), torch.full((2, 3, 4, 4), NAN)),
        ValueError,
        "NaN",
    ),
    ("attention KL: a list", lambda: lk.attention_rows_kl([1], ATTN, MASK), TypeError, "student_attn"),
    (
        "attention KL: mask as a list",
        lambda: lk.attention_rows_kl(ATTN, ATTN, [[1, 1, 1]]),
        TypeError,
        "attention_mask",
    ),
    (
        "attention KL: scores, not probabilities",
        lambda: lk.attention_rows_kl(torch.randn(2, 2, 3, 3, generator=G), ATTN, MASK),
        ValueError,
        r"probabilities in \[0, 1\]",
    ),
    (
        "attention KL: NaN",
        lambda: lk.attention_rows_kl(ATTN * NAN, ATTN, MASK),
        ValueError,
        "student_attn must hold",
    ),
    (
        "attention KL: mask of 2s",
        lambda: lk.attention_rows_kl(ATTN, ATTN, MASK * 2),
        ValueError,
        "1 .token. and 0",
    ),
    (
        "attention KL: integer mask of 2s",
        lambda: lk.attention_rows_kl(ATTN, ATTN, MASK.long() * 2),
        ValueError,
        r"1 .token. and 0 .padding. only, got values in \[2, 2\]",
    ),
    (
        "attention KL: integer maps",
        lambda: lk.attention_rows_kl(ATTN.long(), ATTN.long(), MASK),
        ValueError,
        "floats",
    ),
    # ---------------------------------------------------------------- multi-teacher objective (item 4)
    (
        "multi: NaN teacher logit (was read as 'class unknown')",
        lambda: lk.multi_teacher_kd_loss(Z, _stack_with(NAN), Y, W),
        ValueError,
        "teacher 1 has a NaN logit at example 2, class 3",
    ),
    (
        "multi: +inf teacher logit",
        lambda: lk.multi_teacher_kd_loss(Z, _stack_with(INF), Y, W),
        ValueError,
        r"teacher 1 has a \+inf logit at example 2.*finite, or -inf",
    ),
    (
        "multi: a teacher that knows no class of an example",
        lambda: lk.multi_teacher_kd_loss(Z, _dead_row_stack(), Y, W),
        ValueError,
        "teacher 1 knows no class for example 1",
    ),
    (
        "multi: NaN student",
        lambda: lk.multi_teacher_kd_loss(_with(NAN), STACK, Y, W),
        ValueError,
        "student_logits",
    ),
    ("multi: -inf student", lambda: lk.multi_teacher_kd_loss(_with(-INF), STACK, Y, W), ValueError, "-inf"),
    ("multi: T = 1e6", lambda: lk.multi_teacher_kd_loss(Z, STACK, Y, W, 1e6), ValueError, "at most 100"),
    (
        "multi: empty batch",
        lambda: lk.multi_teacher_kd_loss(Z[:0], STACK[:0], Y[:0], W[:0]),
        ValueError,
        "empty",
    ),
    (
        "multi: student as a list",
        lambda: lk.multi_teacher_kd_loss([[0.0]], STACK, Y, W),
        TypeError,
        "student_logits",
    ),
    (
        "multi: weights as a list",
        lambda: lk.multi_teacher_kd_loss(Z, STACK, Y, [[0.5, 0.5]] * 4),
        ValueError,
        "got list",
    ),
    (
        "multi: integer weights",
        lambda: lk.multi_teacher_kd_loss(Z, STACK, Y, torch.ones(4, 2, dtype=torch.long)),
        ValueError,
        "must be floats",
    ),
    (
        "multi: NaN weights",
        lambda: lk.multi_teacher_kd_loss(Z, STACK, Y, W * NAN),
        ValueError,
        "teacher weights",
    ),
    (
        "multi: integer stack",
        lambda: lk.multi_teacher_kd_loss(Z, STACK.long(), Y, W),
        ValueError,
        "float stack",
    ),
    (
        "multi: a list, not a stack",
        lambda: lk.multi_teacher_kd_loss(Z, [Z, Z], Y, W),
        ValueError,
        "stack_teacher",
    ),
    ("multi: -100 targets", lambda: lk.multi_teacher_kd_loss(Z, STACK, Y * 100, W), ValueError, "-1"),
    ("fuse: NaN teacher", lambda: lk.fuse_teachers(_stack_with(NAN)), ValueError, "teacher 1 has a NaN"),
    ("fuse: unknown space", lambda: lk.fuse_teachers(STACK, space="geo"), ValueError, "logprob"),
    (
        "fuse: weights for 3 teachers",
        lambda: lk.fuse_teachers(STACK, torch.ones(4, 3) / 3),
        ValueError,
        r"\(4, 2\)",
    ),
    ("expand: NaN logit", lambda: lk.expand_logits(torch.tensor([[NAN, 1.0]]), [0, 1], 5), ValueError, "NaN"),
    ("expand: class map 'ab'", lambda: lk.expand_logits(torch.randn(2, 2), "ab", 5), ValueError, "class_map"),
    ("expand: class map 3", lambda: lk.expand_logits(torch.randn(2, 2), 3, 5), ValueError, "class_map"),
    (
        "expand: ragged class map",
        lambda: lk.expand_logits(torch.randn(2, 2), [[0], [1, 2]], 5),
        ValueError,
        "class_map",
    ),
    (
        "expand: float class map",
        lambda: lk.expand_logits(torch.randn(2, 2), [0.0, 1.0], 5),
        ValueError,
        "integer",
    ),
    (
        "expand: no classes",
        lambda: lk.expand_logits(torch.randn(2, 0), [], 5),
        ValueError,
        "at least one class",
    ),
    (
        "stack: NaN in teacher 1",
        lambda: lk.stack_teacher_logits([Z, _with(NAN)]),
        ValueError,
        "teacher 1's logits",
    ),
    (
        "stack: class_maps=3",
        lambda: lk.stack_teacher_logits([Z], class_maps=3),
        ValueError,
        "class_maps must be a list",
    ),
    (
        "teacher_accuracies: label -5",
        lambda: lk.teacher_accuracies(STACK, torch.tensor([0, -5, 1, 2])),
        ValueError,
        "-1",
    ),
    ("teacher_accuracies: NaN stack", lambda: lk.teacher_accuracies(STACK * NAN, Y), ValueError, "NaN logit"),
    # ---------------------------------------------------------------- weightings
    (
        "weighting: tau for uniform",
        lambda: lk.make_weighting("uniform", 2, tau=3),
        ValueError,
        "does not take tau",
    ),
    (
        "weighting: accuracies for confidence",
        lambda: lk.make_weighting("confidence", 2, accuracies=[1, 1]),
        ValueError,
        "it takes: tau",
    ),
    (
        "weighting: accuracies=0.5",
        lambda: lk.make_weighting("accuracy", 2, accuracies=0.5),
        ValueError,
        "a list",
    ),
    (
        "weighting: accuracies strings",
        lambda: lk.make_weighting("accuracy", 2, accuracies=["a", "b"]),
        ValueError,
        "a list",
    ),
    ("weighting: zero teachers", lambda: lk.make_weighting("uniform", 0), ValueError, "num_teachers"),
    *[
        row
        for name in ("uniform", "confidence", "label", "learned")
        for row in (
            (
                f"weighting {name}: NaN teacher",
                lambda n=name: lk.make_weighting(n, 2)(_stack_with(NAN), Y),
                ValueError,
                "NaN logit",
            ),
            (
                f"weighting {name}: built for 3, given 2",
                lambda n=name: lk.make_weighting(n, 3)(STACK, Y),
                ValueError,
                "built for 3",
            ),
            (
                f"weighting {name}: a list",
                lambda n=name: lk.make_weighting(n, 2)([[1.0]], Y),
                ValueError,
                "stack",
            ),
            (
                f"weighting {name}: 2 targets for 4",
                lambda n=name: lk.make_weighting(n, 2)(STACK, Y[:2]),
                ValueError,
                "2 entries",
            ),
        )
    ],
    (
        "ensemble: one model, not a list",
        lambda: lk.TeacherEnsemble(torch.nn.Linear(2, 2), 10),
        ValueError,
        "\\[teacher\\]",
    ),
    (
        "ensemble: class map past the classes",
        lambda: lk.TeacherEnsemble([torch.nn.Linear(2, 2)], 10, class_maps=[[0, 99]]),
        ValueError,
        "0..9",
    ),
    (
        "ensemble: unknown weighting option",
        lambda: lk.TeacherEnsemble([torch.nn.Linear(2, 10)], 10, foo=1),
        ValueError,
        "does not take foo",
    ),
    (
        "ensemble: input of the wrong width",
        lambda: lk.TeacherEnsemble([torch.nn.Linear(2, 10)], 10)(torch.randn(3, 7)),
        ValueError,
        r"teacher 0 \(Linear\) cannot run",
    ),
    (
        "ensemble: input as a list",
        lambda: lk.TeacherEnsemble([torch.nn.Linear(2, 10)], 10)([1, 2]),
        ValueError,
        "x must be a tensor",
    ),
    (
        "ensemble: NaN teacher output",
        lambda: lk.TeacherEnsemble([torch.nn.Linear(2, 10)], 10)(torch.full((3, 2), NAN)),
        ValueError,
        "teacher 0's logits",
    ),
    # ---------------------------------------------------------------- distillers (labkit.methods)
    ("distiller: config None", lambda: methods.Hinton(None, _cnn(), _cnn()), TypeError, "lk.TrainConfig"),
    (
        "distiller: no teacher",
        lambda: methods.Hint(_cfg(), _cnn(), None),
        TypeError,
        "teacher must be an nn.Module",
    ),
    (
        "hint: hint_layer 7 of 2 stages",
        lambda: methods.Hint(_cfg(hint_layer=7), _cnn(), _cnn()),
        ValueError,
        r"-2\.\.1",
    ),
    (
        "hint: hint_layer '1'",
        lambda: methods.Hint(_cfg(hint_layer="1"), _cnn(), _cnn()),
        ValueError,
        "hint_layer",
    ),
    (
        "hint: a student without features",
        lambda: methods.Hint(_cfg(), torch.nn.Linear(64, 10), _cnn()),
        ValueError,
        "feature_channels",
    ),
    (
        "hint: no features passed",
        lambda: methods.Hint(_cfg(), _cnn(), _cnn())(Z, Y, Z),
        ValueError,
        "s_feats",
    ),
    (
        "attention: no features passed",
        lambda: methods.Attention(_cfg(), _cnn(), _cnn())(Z, Y, Z),
        ValueError,
        "per-stage",
    ),
    (
        "kd distiller: no teacher logits",
        lambda: methods.Hinton(_cfg(), _cnn(), _cnn())(Z, Y, None),
        TypeError,
        "teacher_logits",
    ),
    (
        "mse distiller: NaN student",
        lambda: methods.LabelMSE(_cfg(), _cnn(), _cnn())(_with(NAN), Y, Z),
        ValueError,
        "student_logits",
    ),
]


@pytest.mark.parametrize("call, error, words", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_gives_a_clear_labkit_error(call, error, words):
    with pytest.raises(error, match=words) as info:
        call()
    assert_clear_labkit_error(info)


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32, torch.uint8, torch.int64])
def test_every_integer_target_dtype_is_accepted_and_gives_the_int64_value(dtype):
    y = Y.clamp_min(0)  # uint8 cannot hold -1
    ref = lk.hinton_kd_loss(Z, STACK[:, 0], y, 2.0, 0.5)
    assert lk.hinton_kd_loss(Z, STACK[:, 0], y.to(dtype), 2.0, 0.5).item() == ref.item()
    assert lk.labelled_cross_entropy(Z, y.to(dtype)).item() == lk.labelled_cross_entropy(Z, y).item()
    assert lk.label_distillation_loss(Z, Z, y.to(dtype)).item() == lk.label_distillation_loss(Z, Z, y).item()
    assert lk.dml_loss([Z, Z * 2], y.to(dtype)).tolist() == lk.dml_loss([Z, Z * 2], y).tolist()
    multi = lk.multi_teacher_kd_loss(Z, STACK, y.to(dtype), W)
    assert multi.item() == lk.multi_teacher_kd_loss(Z, STACK, y, W).item()
    for name in ("uniform", "confidence", "label", "learned"):
        torch.testing.assert_close(
            lk.make_weighting(name, 2)(STACK, y.to(dtype)), lk.make_weighting(name, 2)(STACK, y)
        )
    assert lk.teacher_accuracies(STACK, y.to(dtype)) == lk.teacher_accuracies(STACK, y)


# ------------------------------------------------------------------------- the shared checks (labkit._validate)
def test_check_index_refuses_a_ragged_list_with_a_labkit_error():
    from labkit._validate import check_index

    with pytest.raises(ValueError, match=r"idx must be a flat 1-D sequence .*ragged.*lengths \[2, 1\]"):
        check_index([[1, 2], [3]], 10)
    data = lk.load_dataset("digits", verbose=False).train
    with pytest.raises(ValueError, match="ragged"):
        data.subset([[1, 2], [3]])
    assert check_index([3, 1], 10).tolist() == [3, 1]  # valid input unchanged


def test_check_finite_names_the_argument_counts_and_locates():
    from labkit._validate import check_finite

    t = torch.zeros(2, 3)
    assert check_finite(t, "x") is t  # returned unchanged
    t[1, 2], t[0, 1] = NAN, -INF
    with pytest.raises(
        ValueError,
        match=r"x must hold finite numbers, got 1 NaN, 1 -inf among 6 entries \(first at index \(0, 1\)\)",
    ):
        check_finite(t, "x")
    with pytest.raises(
        ValueError, match=r"finite numbers or -inf .*got 1 NaN among 6 entries \(first at index \(1, 2\)\)"
    ):
        check_finite(t, "x", allow_neg_inf=True)
    assert check_finite(torch.tensor([0.0, -INF]), "x", allow_neg_inf=True) is not None
    with pytest.raises(ValueError, match=r"a must hold finite numbers, got 1 \+inf"):
        check_finite(np.array([1.0, np.inf]), "a")
    with pytest.raises(ValueError, match="NaN"):
        check_finite(torch.tensor([NAN], dtype=torch.bfloat16), "low precision")
    with pytest.raises(ValueError, match="NaN"):
        check_finite(NAN, "a number")
    for fine in (np.arange(3), torch.arange(3), [1.0, 2.0], ["a"], torch.empty(0)):
        check_finite(fine, "fine")  # integers, strings and empty data cannot be non-finite


def test_check_targets_converts_every_integer_dtype_to_int64():
    from labkit._validate import check_targets

    for dtype in (torch.int8, torch.int16, torch.int32, torch.uint8, torch.int64):
        out = check_targets(torch.tensor([0, 2, 1], dtype=dtype), 3, 3)
        assert out.dtype == torch.int64 and out.tolist() == [0, 2, 1]
    with pytest.raises(ValueError, match="Every example needs a label"):
        check_targets(torch.tensor([0, -1]), 2, 3, allow_unlabelled=False)


def test_check_temperature_maximum_only_where_asked():
    from labkit._validate import check_temperature

    assert check_temperature(1e6) == 1e6  # the plain check (calibration, plots) has no maximum
    assert check_temperature(100.0, maximum=100.0) == 100.0
    with pytest.raises(ValueError, match=r"at most 100 .*4e-7 \* T\^2"):
        check_temperature(100.5, maximum=100.0)
