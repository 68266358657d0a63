"""labkit.checks: every check passes a correct answer, fails a blank one with the "not implemented" hint, and
names each mistake it claims to recognise when given code that makes exactly that mistake, written the way a
learner would write it, and refuses a function that hands back labkit's own answer (in every way a learner could
reach it: the function itself, a partial, lk.<name>, the module path, a name imported before the check, or
another labkit function that calls it)."""

from __future__ import annotations

import functools
import inspect
import re
import sys

import pytest
import torch
import torch.nn.functional as F

import labkit
from labkit import _grading, checks
from labkit.pitfalls import kd_kl_on_raw_logits, kd_mean_reduction, kd_missing_t2, kd_wrong_direction


def kd(s, t, T):
    return F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction="batchmean") * T**2


def ce_labelled(z, y):
    keep = y >= 0
    return F.cross_entropy(z[keep], y[keep]) if keep.any() else z.sum() * 0.0


def att(f, p=2, dim=1):
    return F.normalize(f.abs().pow(p).mean(1).flatten(1), dim=dim)


def unnormalised(f):
    return f.pow(2).mean(1).flatten(1)


def pseudo(z, t):
    conf, labels = F.softmax(z, dim=1).max(dim=1)
    labels = labels.clone()
    labels[conf < t] = -1
    return labels


def unseen(src, tgt):
    vocab = (src != 0).sum(0) > 0  # (D,) features the source shows
    occurrences = tgt != 0  # (M, D)
    return (occurrences & ~vocab).float().sum() / occurrences.float().sum()


def attention_kl(s, t, mask):
    """MiniLM's attention term written from scratch: per real query row of every head, KL(A_t || A_s)."""
    keep = mask.bool()[:, None, :].expand(-1, s.shape[1], -1)  # (B, H, L): real query rows
    kl = (t * (t.clamp_min(1e-12).log() - s.clamp_min(1e-12).log())).sum(-1)  # (B, H, L)
    return kl[keep].mean()


def blank(*args):
    raise NotImplementedError()


# check name -> a correct answer written from scratch (not labkit's own function)
def _rkl(s, t, m):
    """The reverse KL(p_S || p_T) per position, averaged over the real tokens of mask m."""
    ls, lt = F.log_softmax(s, -1), F.log_softmax(t, -1)
    return ((ls.exp() * (ls - lt)).sum(-1) * m).sum() / m.sum()


def _jsd(s, t, beta, weights=None):
    ps, pt = F.softmax(s, -1), F.softmax(t, -1)
    lm = (beta * pt + (1 - beta) * ps).log()
    wt, ws = weights or (beta, 1 - beta)
    return (wt * (pt * (pt.log() - lm)).sum(-1) + ws * (ps * (ps.log() - lm)).sum(-1)).mean()


def _policy_step(student, teacher, gens, opt, late=False, teacher_grad=False, forward=False):
    p = gens.prompt_length + (1 if late else 0)
    with torch.set_grad_enabled(teacher_grad):
        t = teacher(gens.sequences).logits[:, p - 1 : (None if late else -1)]
    s = student(gens.sequences).logits[:, p - 1 : (None if late else -1)]
    m = gens.completion_mask.float()
    loss = _rkl(t, s, m) if forward else _rkl(s, t, m)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.detach()


CORRECT = {
    "check_masked_reverse_kl": _rkl,
    "check_generalized_jsd": _jsd,
    "check_on_policy_step": _policy_step,
    "check_expert_mixture": lambda z, w: (w.T[:, :, None] * z.softmax(-1)).sum(0).log(),
    "check_accuracy": lambda z, y: (z.argmax(1) == y).float().mean().item(),
    "check_count_parameters": lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad),
    "check_soft_targets": lambda z, T: F.softmax(z / T, dim=-1),
    "check_kd_loss": kd,
    "check_hinton_loss": lambda s, t, y, T, a: (1 - a) * F.cross_entropy(s, y) + a * kd(s, t, T),
    "check_labelled_ce": ce_labelled,
    "check_attention_map": att,
    "check_attention_transfer": lambda fs, ft: (att(fs) - att(ft)).pow(2).sum(1).mean(),
    "check_prob_fusion": lambda z: z.softmax(-1).mean(1).log(),
    "check_prob_mse": lambda s, t, T: (F.softmax(s / T, -1) - F.softmax(t / T, -1)).pow(2).sum(1).mean(),
    "check_accuracy_weights": lambda a: torch.as_tensor(a) / sum(a),
    "check_multi_teacher_kd": lambda s, z, w, T: sum(w[k] * kd(s, z[:, k], T) for k in range(len(w))),
    "check_pseudo_label": pseudo,
    "check_hard_label_loss": lambda s, t: -F.log_softmax(s, 1).gather(1, t.argmax(1, keepdim=True)).mean(),
    "check_unseen_share": unseen,
    "check_mean_std": lambda v: torch.stack([v.mean(), v.std()]),
    "check_effect": lambda lo, hi, b: 0 if lo <= 0 <= hi else (1 if (lo > 0) == (b == "higher") else -1),
    "check_attention_kl": attention_kl,
}

# (check, a learner's mistake, words the hint must contain)
MISTAKES = [
    ("check_masked_reverse_kl", lambda s, t, m: _rkl(s, t, torch.ones_like(m)), "padding included"),
    ("check_masked_reverse_kl", lambda s, t, m: _rkl(t, s, m), "forward KL"),
    ("check_masked_reverse_kl", lambda s, t, m: _rkl(s, t, m) * m.sum() / m.shape[0], "number of sequences"),
    (
        "check_masked_reverse_kl",
        lambda s, t, m: _rkl(s, t, m) * m.sum() / m.numel(),
        "divided by all positions",
    ),
    ("check_generalized_jsd", lambda s, t, b: _jsd(s, t, 1 - b), "swapped beta"),
    (
        "check_generalized_jsd",
        lambda s, t, b: _jsd(s, t, b, weights=(0.5, 0.5)),
        "weighted the two KL terms equally",
    ),
    ("check_generalized_jsd", lambda s, t, b: _jsd(s, t, b) * len(s), "summed over the rows"),
    (
        "check_expert_mixture",
        lambda z, w: (w.T[:, :, None] * z).sum(0).log_softmax(-1),
        "averaged the logits",
    ),
    (
        "check_expert_mixture",
        lambda z, w: (w.T[:, :, None] * z.log_softmax(-1)).sum(0),
        "averaged the log-probabilities",
    ),
    ("check_expert_mixture", lambda z, w: z.softmax(-1).mean(0).log(), "ignored the weights"),
    ("check_expert_mixture", lambda z, w: (w.T[:, :, None] * z.softmax(-1)).sum(0), "returned probabilities"),
    ("check_on_policy_step", lambda *a: _policy_step(*a, late=True), "one position late"),
    ("check_on_policy_step", lambda *a: _policy_step(*a, teacher_grad=True), "reached the teacher"),
    ("check_on_policy_step", lambda *a: _policy_step(*a, forward=True), "forward KL"),
    ("check_accuracy", lambda z, y: (z.argmax(1) == y).sum().item(), "not a count"),
    ("check_accuracy", lambda z, y: 100 * (z.argmax(1) == y).float().mean().item(), "not a percentage"),
    ("check_count_parameters", lambda m: len(list(m.parameters())), "p.numel()"),
    ("check_count_parameters", lambda m: sum(p.numel() for p in m.parameters()), "frozen"),
    ("check_soft_targets", lambda z, T: F.softmax(z, dim=-1), "did not divide the logits by the temperature"),
    ("check_soft_targets", lambda z, T: F.softmax(z * T, dim=-1), "multiplied the logits by T"),
    ("check_soft_targets", lambda z, T: F.log_softmax(z / T, dim=-1), "log-probabilities"),
    ("check_soft_targets", lambda z, T: F.softmax(z / T, dim=0), "dim=0"),
    ("check_soft_targets", lambda z, T: F.softmax(z / T, dim=-1).detach(), "no gradient"),
    ("check_kd_loss", kd_missing_t2, "forgot the T^2 factor"),
    ("check_kd_loss", kd_mean_reduction, 'reduction="mean"'),
    (
        "check_kd_loss",
        lambda s, t, T: F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction="mean"),
        '1/T^2; and used reduction="mean"',
    ),
    (
        "check_kd_loss",
        lambda s, t, T: F.kl_div(F.softmax(s / T, -1), F.softmax(t / T, -1), reduction="batchmean") * T**2,
        "passed probabilities",
    ),
    ("check_kd_loss", kd_kl_on_raw_logits, "raw logits into F.kl_div"),
    ("check_kd_loss", kd_wrong_direction, "wrong direction"),
    (
        "check_kd_loss",
        lambda s, t, T: (
            F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), reduction="batchmean") * T**2
        ),
        "log_target=True",
    ),
    (
        "check_kd_loss",
        lambda s, t, T: F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction="sum") * T**2,
        'reduction="sum"',
    ),
    (
        "check_kd_loss",
        lambda s, t, T: F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction="none") * T**2,
        "0-dim tensor",
    ),
    ("check_kd_loss", lambda s, t, T: kd(s, t, T).item(), "return a torch.Tensor"),
    ("check_kd_loss", lambda s, t, T: None, "forget the `return`"),
    (
        "check_hinton_loss",
        lambda s, t, y, T, a: a * F.cross_entropy(s, y) + (1 - a) * kd(s, t, T),
        "swapped the weights",
    ),
    (
        "check_hinton_loss",
        lambda s, t, y, T, a: F.cross_entropy(s, y) + a * kd(s, t, T),
        "weights that do not sum to one",
    ),
    (
        "check_hinton_loss",
        lambda s, t, y, T, a: (1 - a) * F.cross_entropy(s, y) + a * kd(s, t, T) / T**2,
        "forgot the T^2 factor",
    ),
    (
        "check_hinton_loss",
        lambda s, t, y, T, a: (1 - a) * F.cross_entropy(s / T, y) + a * kd(s, t, T),
        "plain logits (T = 1)",
    ),
    (
        "check_hinton_loss",
        lambda s, t, y, T, a: (1 - a) * F.cross_entropy(s, y) + a * kd_mean_reduction(s, t, T),
        'reduction="mean"',
    ),
    ("check_labelled_ce", lambda z, y: F.cross_entropy(z, y), "label -1"),
    (
        "check_labelled_ce",
        lambda z, y: F.cross_entropy(z, y, ignore_index=-1, reduction="sum") / len(y),
        "labelled rows only",
    ),
    ("check_labelled_ce", lambda z, y: F.cross_entropy(z, y, ignore_index=-1), "NaN"),
    ("check_attention_map", lambda f: f.pow(2).mean(1).flatten(1), "not normalised"),
    ("check_attention_map", lambda f: F.normalize(f.abs().mean(1).flatten(1), dim=1), "|A|^2"),
    ("check_attention_map", lambda f: F.normalize(f.pow(2).mean(1).flatten(1), dim=0), "dim=1"),
    ("check_attention_map", lambda f: F.normalize(f.pow(2).sum(1), dim=(1, 2)), "(B, H*W)"),
    ("check_attention_transfer", lambda fs, ft: (fs - ft).pow(2).mean(), "not the raw features"),
    ("check_attention_transfer", lambda fs, ft: (att(fs) - att(ft)).norm(dim=1).mean(), "squared distance"),
    (
        "check_attention_transfer",
        lambda fs, ft: (att(fs) - att(ft)).pow(2).sum(),
        "average over the examples",
    ),
    (
        "check_attention_transfer",
        lambda fs, ft: (unnormalised(fs) - unnormalised(ft)).pow(2).sum(1).mean(),
        "not normalised",
    ),
    (
        "check_attention_transfer",
        lambda fs, ft: F.mse_loss(unnormalised(fs), unnormalised(ft)),
        "not normalised",
    ),
    ("check_attention_transfer", lambda fs, ft: (att(fs, p=1) - att(ft, p=1)).pow(2).sum(1).mean(), "|A|^2"),
    ("check_attention_transfer", lambda fs, ft: F.mse_loss(att(fs, p=1), att(ft, p=1)), "|A|^2"),
    (
        "check_attention_transfer",
        lambda fs, ft: (att(fs, dim=0) - att(ft, dim=0)).pow(2).sum(1).mean(),
        "dim=1",
    ),
    (
        "check_attention_transfer",
        lambda fs, ft: (att(fs) - att(ft)).pow(2).mean(1).sum(),
        "average over the examples",
    ),
    (
        "check_attention_transfer",
        lambda fs, ft: 1000 * F.mse_loss(att(fs), att(ft)),
        "1000 x labkit's value / (H*W)",
    ),
    (
        "check_attention_transfer",
        lambda fs, ft: 0.5 * (att(fs) - att(ft)).norm(dim=1).mean(),
        "squared distance",
    ),
    ("check_prob_fusion", lambda z: F.log_softmax(z.mean(1), -1), "averaged the logits"),
    ("check_prob_fusion", lambda z: F.log_softmax(z, -1).mean(1), "geometric mean"),
    ("check_prob_fusion", lambda z: z.softmax(-1).mean(1), "returned probabilities"),
    (
        "check_prob_mse",
        lambda s, t, T: F.mse_loss(F.softmax(s / T, -1), F.softmax(t / T, -1)),
        "averages over the classes too",
    ),
    ("check_prob_mse", lambda s, t, T: (s / T - t / T).pow(2).sum(1).mean(), "compared logits"),
    (
        "check_prob_mse",
        lambda s, t, T: (F.softmax(s / T, -1) - F.softmax(t / T, -1)).pow(2).sum(1).mean() * T**2,
        "added a T^2 factor",
    ),
    ("check_accuracy_weights", lambda a: torch.as_tensor(a), "weights that do not sum to one"),
    ("check_accuracy_weights", lambda a: torch.as_tensor(a).softmax(0), "softmax(accuracies)"),
    (
        "check_multi_teacher_kd",
        lambda s, z, w, T: sum(w[k] * kd_missing_t2(s, z[:, k], T) for k in range(len(w))),
        "forgot the T^2 factor",
    ),
    (
        "check_multi_teacher_kd",
        lambda s, z, w, T: sum(kd(s, z[:, k], T) for k in range(len(w))) / len(w),
        "ignored the weights",
    ),
    (
        "check_multi_teacher_kd",
        lambda s, z, w, T: kd(s, (T * (w[None, :, None] * (z / T).softmax(-1)).sum(1).log()), T),
        "weighted average of the teachers' probabilities",
    ),
    (
        "check_pseudo_label",
        lambda z, t: torch.where(z.max(-1).values >= t, z.argmax(-1), -1),
        "compared the threshold with the raw logits",
    ),
    (
        "check_pseudo_label",
        lambda z, t: torch.where(z.softmax(0).max(-1).values >= t, z.argmax(-1), -1),
        "dim=0",
    ),
    (
        "check_pseudo_label",
        lambda z, t: torch.where(z.softmax(-1).max(-1).values < t, z.argmax(-1), -1),
        "marked confident rows -1",
    ),
    ("check_hard_label_loss", lambda s, t: F.cross_entropy(s, F.softmax(t, -1)), "teacher's probabilities"),
    ("check_hard_label_loss", lambda s, t: -F.cross_entropy(s, t.argmax(-1)), "negated"),
    (
        "check_hard_label_loss",
        lambda s, t: F.cross_entropy(F.softmax(s, -1), t.argmax(-1)),
        "passed probabilities",
    ),
    (
        "check_unseen_share",
        lambda s, t: ((t > 0).any(0) & ~(s > 0).any(0)).float().sum() / (t > 0).any(0).float().sum(),
        "counted features",
    ),
    ("check_unseen_share", lambda s, t: unseen(t, s), "swapped the roles"),
    ("check_unseen_share", lambda s, t: 1 - unseen(s, t), "1 minus the answer"),
    ("check_mean_std", lambda v: torch.stack([v.mean(), v.std(unbiased=False)]), "population std"),
    ("check_mean_std", lambda v: torch.stack([v.mean(), v.var()]), "variance"),
    ("check_effect", lambda lo, hi, b: 1 if lo > 0 else (-1 if hi < 0 else 0), "ignored the direction"),
    ("check_effect", lambda lo, hi, b: 1 if lo + hi > 0 else -1, "read the midpoint"),
    (
        "check_effect",
        lambda lo, hi, b: (1 if lo >= 0 else (-1 if hi <= 0 else 0)) * (1 if b == "higher" else -1),
        "touches 0",
    ),
    ("check_attention_kl", lambda s, t, m: attention_kl(s, t, torch.ones_like(m)), "padding included"),
    ("check_attention_kl", lambda s, t, m: attention_kl(s.mT, t.mT, m), "compared columns instead of rows"),
    ("check_attention_kl", lambda s, t, m: attention_kl(t, s, m), "wrong direction"),
    ("check_attention_kl", lambda s, t, m: attention_kl(s, t, m) / s.shape[-1], 'reduction="mean"'),
    (
        "check_attention_kl",
        lambda s, t, m: (
            F.kl_div(s.transpose(1, 2)[m.bool()], t.transpose(1, 2)[m.bool()], reduction="sum")
            / (m.sum() * s.shape[1])
        ),
        "passed probabilities",
    ),
]


def test_every_check_has_a_correct_answer_and_mistakes_here():
    assert set(CORRECT) == set(checks.CHECKS)
    assert {name for name, _, _ in MISTAKES} == set(checks.CHECKS)


@pytest.mark.parametrize("name", sorted(checks.CHECKS))
def test_check_passes_a_correct_answer(name, capsys):
    checks.CHECKS[name](CORRECT[name])
    assert capsys.readouterr().out.startswith(f"OK  {name}: ")


@pytest.mark.parametrize("name", sorted(checks.CHECKS))
def test_check_fails_a_blank_answer_with_the_not_implemented_hint(name):
    with pytest.raises(checks.ExerciseError, match="not implemented yet"):
        checks.CHECKS[name](blank)


@pytest.mark.parametrize(
    "name, mistake, hint", MISTAKES, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(MISTAKES)]
)
def test_check_names_the_mistake(name, mistake, hint):
    with pytest.raises(checks.ExerciseError) as err:
        checks.CHECKS[name](mistake)
    assert hint in str(err.value), str(err.value)


def test_unrecognised_mistake_says_what_differs_and_passing_something_else_is_explained():
    with pytest.raises(checks.ExerciseError, match="values differ"):
        checks.check_kd_loss(lambda s, t, T: kd(s, t, T) + 0.5)
    with pytest.raises(checks.ExerciseError, match="shape"):
        checks.check_soft_targets(lambda z, T: F.softmax(z / T, -1)[:, :3])
    with pytest.raises(checks.ExerciseError, match="pass your function itself"):
        checks.check_kd_loss(kd(torch.zeros(2, 3), torch.zeros(2, 3), 1.0))
    assert issubclass(checks.ExerciseError, AssertionError)  # nbgrader and pytest count it as a failed test


# Zagoruyko & Komodakis (2017) as published, each labkit's value times a factor fixed by the map size
AT_PUBLISHED = {
    # eq. (2), beta/2 * ||Q_s - Q_t||^2 averaged over the batch, with the 1/2 inside
    "paper's 1/2": (lambda fs, ft: 0.5 * (att(fs) - att(ft)).pow(2).sum(1).mean(), "labkit's value / 2"),
    # github.com/szagoruyko/attention-transfer: at_loss = (at(x) - at(y)).pow(2).mean()
    "authors' code": (lambda fs, ft: (att(fs) - att(ft)).pow(2).mean(), "labkit's value / (H*W)"),
    "F.mse_loss": (lambda fs, ft: F.mse_loss(att(fs), att(ft)), "labkit's value / (H*W)"),
    # eq. (2)'s beta/2 with beta divided by the map's elements and the batch size; channel sum, not mean
    "paper's text": (
        lambda fs, ft: (
            0.5
            * (F.normalize(fs.pow(2).sum(1).flatten(1)) - F.normalize(ft.pow(2).sum(1).flatten(1)))
            .pow(2)
            .mean()
        ),
        "labkit's value / (2*H*W)",
    ),
}


@pytest.mark.parametrize("form", sorted(AT_PUBLISHED))
def test_attention_transfer_accepts_the_published_conventions_with_a_note(form, capsys):
    fn, factor = AT_PUBLISHED[form]
    checks.check_attention_transfer(fn)
    out = capsys.readouterr().out
    assert out.startswith("OK  check_attention_transfer: "), out
    assert f"note: yours is {factor}" in out and "on lk.attention_transfer_loss" in out, out


def test_attention_transfer_conventions_are_exact_factors_of_the_map_size():
    """The accepted factors are 1/2, 1/(H*W) and 1/(2*H*W) of labkit's value, on any input: checked here on
    inputs other than the check's, of two map sizes and two batch sizes; the beta the notes quote maps as stated
    (the authors' beta = 1000 on their mean is weight 1000 / (H*W) on labkit's sum)."""
    from labkit.losses import attention_transfer_loss

    g = torch.Generator().manual_seed(5)
    for b, h, w in [(2, 8, 8), (5, 3, 7)]:
        fs, ft = torch.randn(b, 4, h, w, generator=g), torch.randn(b, 7, h, w, generator=g)
        ref = attention_transfer_loss(fs, ft)
        factors = [c.factor(h * w) for c in checks.AT_CONVENTIONS]
        assert factors == pytest.approx([0.5, 1 / (h * w), 0.5 / (h * w)])
        for (fn, _), factor in zip(
            [AT_PUBLISHED[k] for k in ("paper's 1/2", "authors' code", "paper's text")], factors
        ):
            torch.testing.assert_close(fn(fs, ft), factor * ref)
        torch.testing.assert_close(1000 * AT_PUBLISHED["authors' code"][0](fs, ft), 1000 / (h * w) * ref)


# ------------------------------------------------------------------------ labkit's own answers are refused
# check name -> a learner's function that returns the right answer by calling labkit's first refused function
# (``check.refuses[0]``, written {ref}): each test below writes {ref} the ways a learner would reach it
CHEATS = {
    "check_accuracy": "lambda z, y: {ref}(z, y)",
    "check_count_parameters": "lambda m: {ref}(m, trainable_only=True)",
    "check_soft_targets": "lambda z, T: {ref}(z, T)",
    "check_kd_loss": "lambda s, t, T: {ref}(s, t, T)",
    "check_hinton_loss": "lambda s, t, y, T, a: {ref}(s, t, y, T, a)",
    "check_labelled_ce": "lambda z, y: {ref}(z, y)",
    "check_attention_map": "lambda f: {ref}(f)",
    "check_attention_transfer": "lambda fs, ft: {ref}(fs, ft)",
    "check_prob_fusion": 'lambda z: {ref}(z, space="prob")',
    "check_prob_mse": "lambda s, t, T: {ref}(s, t, T)",
    "check_accuracy_weights": "lambda a: {ref}(len(a), accuracies=a).w",
    "check_multi_teacher_kd": (
        "lambda s, z, w, T: {ref}(s, z, torch.full((len(s),), -1), w.expand(len(s), -1), T, alpha=1.0)"
    ),
    "check_attention_kl": "lambda s, t, m: {ref}(s, t, m)",
    "check_pseudo_label": "lambda z, t: torch.where({ref}(z, t).keep, {ref}(z, t).labels, -1)",
    "check_hard_label_loss": "lambda s, t: F.cross_entropy(s, {ref}(t).labels)",
    "check_unseen_share": "lambda s, t: {ref}(s, t)",
    "check_mean_std": "lambda v: torch.tensor({ref}(v))",
    "check_effect": 'lambda lo, hi, b: {"gain": 1, "loss": -1, "none": 0}[{ref}(lo, hi, b)]',
    "check_masked_reverse_kl": 'lambda s, t, m: {ref}(s, t, m, direction="reverse")',
    "check_generalized_jsd": "lambda s, t, b: {ref}(s[:, None], t[:, None], beta=b)",
    "check_on_policy_step": "lambda st, te, gens, opt: torch.tensor({ref}(st, te, gens, opt, beta=1.0)['loss'])",
    "check_expert_mixture": "lambda z, w: {ref}([zk[:, None] for zk in z], w)[:, 0]",
}


def _defined_checks() -> dict:
    """Every ``check_*`` function defined in labkit's check modules, found by walking them (not from CHECKS)."""
    from labkit import _checks_lm, _checks_transfer, _checks_transformer

    found = {}
    for module in (checks, _checks_lm, _checks_transfer, _checks_transformer):
        for name, obj in vars(module).items():
            if (
                name.startswith("check_")
                and name != "check_function"
                and inspect.isfunction(obj)
                and obj.__module__ == module.__name__
            ):
                found[name] = obj
    return found


DEFINED = _defined_checks()


def _public(ref) -> str:
    return _grading._public_name(ref.__module__, ref.__qualname__)


def _cheat(name: str, form: str):
    """The check's cheat in one form: labkit's function ``itself``, a ``partial`` of it, a lambda through
    ``lk.<name>`` (``lk``), through the full module path (``module``), or through a name imported before the
    check (``imported``, which no patching of labkit's modules could reach)."""
    ref = DEFINED[name].refuses[0]
    if form == "itself":
        return ref
    if form == "partial":
        return functools.partial(ref)
    ns = {"lk": labkit, "labkit": labkit, "torch": torch, "F": F}
    spelled = {"lk": _public(ref), "module": f"{ref.__module__}.{ref.__qualname__}", "imported": ref.__name__}
    if form == "imported":
        exec(f"from {ref.__module__} import {ref.__name__}", ns)
    return eval(CHEATS[name].replace("{ref}", spelled[form]), ns)


def test_every_check_lists_the_labkit_functions_it_refuses():
    """A check added without ``@refuses(...)`` (or without a cheat here) fails this test."""
    assert set(DEFINED) == set(checks.CHECKS), "a check_* function is missing from checks.CHECKS"
    for name, check in DEFINED.items():
        assert getattr(check, "refuses", None), f"{name} has no @refuses(...) list of labkit's own answers"
        assert name in CHEATS, f"add {name}'s cheat to CHEATS"


@pytest.mark.parametrize("form", ["itself", "partial", "lk", "module", "imported"])
@pytest.mark.parametrize("name", sorted(DEFINED))
def test_check_refuses_a_function_that_uses_labkits_reference(name, form):
    cheat = _cheat(name, form)
    with pytest.raises(checks.ExerciseError) as err:
        DEFINED[name](cheat)
    message = str(err.value)
    assert message.startswith(f"{name}: your function ") and "labkit's own" in message, message
    assert _public(DEFINED[name].refuses[0]) in message, message
    assert "Write the computation yourself" in message, message


@pytest.mark.parametrize("name", sorted(DEFINED))
def test_the_refused_cheat_would_pass_without_the_refusal(name, capsys):
    """The cheats are real: the check without its refusal (``__wrapped__``) accepts them, so the refusal, not a
    wrong value, is what rejects them."""
    DEFINED[name].__wrapped__(_cheat(name, "lk"))
    assert capsys.readouterr().out.startswith(f"OK  {name}: ")


@pytest.mark.parametrize(
    "name, ref",
    [(name, ref) for name in sorted(DEFINED) for ref in DEFINED[name].refuses],
    ids=[f"{name}-{_public(ref)}" for name in sorted(DEFINED) for ref in DEFINED[name].refuses],
)
def test_check_refuses_every_listed_function_passed_as_the_answer(name, ref):
    with pytest.raises(
        checks.ExerciseError, match=f"your function is labkit's own {re.escape(_public(ref))}"
    ):
        DEFINED[name](ref)


# (check, a learner's function reaching the refused one through another labkit function, words of the message)
THROUGH = [
    (
        "check_kd_loss",
        lambda s, t, T: labkit.hinton_kd_loss(s, t, torch.zeros(len(s), dtype=torch.long), T, alpha=1.0),
        "calls labkit's own lk.hinton_kd_loss, which calls lk.kd_kl_loss",
    ),
    (
        "check_kd_loss",
        lambda s, t, T: (
            labkit.attention_rows_kl(  # one query row (B, 1, 1, K) per example: the KL at T, times T^2
                F.softmax(s / T, -1)[:, None, None],
                F.softmax(t / T, -1)[:, None, None],
                torch.ones(len(s), 1),
            )
            * T**2
        ),
        "calls labkit's own lk.attention_rows_kl, which calls lk.kd_kl_loss",
    ),
    (
        "check_labelled_ce",
        lambda z, y: labkit.hinton_kd_loss(z, z, y, 1.0, alpha=0.0),
        "calls labkit's own lk.hinton_kd_loss, which calls lk.losses._labelled_ce",
    ),
    (
        "check_prob_mse",
        lambda s, t, T: labkit.label_distillation_loss(s, t, torch.full((len(s),), -1), T, alpha=1.0),
        "calls labkit's own lk.label_distillation_loss, which calls lk.prob_mse_loss",
    ),
    (
        "check_accuracy_weights",
        lambda a: labkit.make_weighting("accuracy", len(a), accuracies=a).w,
        "calls labkit's own lk.make_weighting, which calls lk.multiteacher.AccuracyWeights",
    ),
]


@pytest.mark.parametrize("name, fn, words", THROUGH, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(THROUGH)])
def test_check_refuses_labkits_answer_reached_through_another_labkit_function(name, fn, words, capsys):
    with pytest.raises(checks.ExerciseError) as err:
        checks.CHECKS[name](fn)
    assert words in str(err.value), str(err.value)
    checks.CHECKS[name].__wrapped__(fn)  # a working answer: the refusal is what rejects it
    assert capsys.readouterr().out.startswith(f"OK  {name}: ")


def test_the_refusal_holds_while_the_learner_runs_only_and_restores_everything():
    """Caught even when the learner's function swallows labkit's error; afterwards labkit's functions are the same
    objects and run normally, a profile function installed before is back, and tools a check does not list
    (lk.soft_targets in the KD loss, lk.labelled_cross_entropy for Hinton's CE term) stay allowed."""

    def swallowing(s, t, T):
        try:
            labkit.kd_kl_loss(s, t, "not a temperature")
        except (TypeError, ValueError):
            pass
        return kd(s, t, T)

    original = labkit.kd_kl_loss
    calls = []

    def profiler(frame, event, arg):
        calls.append(event)

    sys.setprofile(profiler)
    try:
        with pytest.raises(checks.ExerciseError, match="calls labkit's own lk.kd_kl_loss"):
            checks.check_kd_loss(swallowing)
        assert sys.getprofile() is profiler
    finally:
        sys.setprofile(None)
    assert labkit.kd_kl_loss is original and labkit.losses.kd_kl_loss is original
    z = torch.randn(4, 3)
    assert float(labkit.kd_kl_loss(z, z)) == 0.0
    checks.check_kd_loss(
        lambda s, t, T: (
            F.kl_div(labkit.soft_targets(s, T).log(), labkit.soft_targets(t, T), reduction="batchmean") * T**2
        )
    )
    checks.check_hinton_loss(
        lambda s, t, y, T, a: (1 - a) * labkit.labelled_cross_entropy(s, y) + a * kd(s, t, T)
    )
