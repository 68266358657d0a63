"""labkit.lm_trl: the CharTokenizer as a Hugging Face tokenizer, TRL's GKD trainer on a tiny GPT-2 pair (on-
and off-policy), its logged loss against lk.lm.generalized_jsd by hand, and errors on careless input."""

from __future__ import annotations

import copy
import math
import os
import random
import tempfile

import pytest
import torch
from conftest import assert_clear_labkit_error

from labkit import lm
from labkit.lm_train import CharTokenizer, build_gpt
from labkit.lm_trl import hf_tokenizer, trl_distill

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # trl.experimental warns on import
pytest.importorskip("trl")

TEXTS = ["the cat sat on the mat.", "a dog ran far away!", "hello world, it is me."]
PROMPTS = ["the c", "a dog", "hello"]  # one length: no left padding in the on-policy batches
COMPLETIONS = ["at sat\n", " ran far", " world"]  # "\n" is the EOS: the first one teaches stopping


@pytest.fixture
def tok() -> CharTokenizer:
    return CharTokenizer.from_texts(TEXTS)


def _pair(tok: CharTokenizer, student_vocab: int | None = None):
    student = build_gpt(student_vocab or len(tok), 32, 1, 16, 2, seed=0)
    return student, build_gpt(len(tok), 32, 1, 32, 2, seed=1)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---- the tokenizer -----------------------------------------------------------------------------------------
def test_hf_tokenizer_has_the_char_tokenizer_ids(tok):
    hf = hf_tokenizer(tok)
    assert (hf.pad_token_id, hf.unk_token_id, hf.eos_token_id) == (0, 1, 2) and hf.bos_token_id is None
    assert hf.get_vocab() == tok.get_vocab() and len(hf) == len(tok)
    assert lm.check_same_vocab(tok, hf) == len(tok)  # the course's one-vocabulary check agrees
    texts = [
        *TEXTS,
        "",
        "the cat\nsat",
        "  two  spaces\t",
        "é, ü and 😀 are unknown",
        "<pad> and <unk> as text\r\n",
    ]
    for text in texts:
        ids = tok.encode(text)
        assert hf.encode(text) == ids == hf(text, add_special_tokens=False)["input_ids"], text
        assert hf.decode(ids) == tok.decode(ids, stop_at_eos=False), text  # "?" for <unk>, padding dropped
    for text in [*TEXTS, "the cat\nsat on\n"]:  # known characters round-trip exactly, "\n" included
        assert hf.decode(hf.encode(text)) == text
    assert hf.decode([0, 0, *tok.encode("hi")]) == "hi"
    batch = hf(["at", "cat"], padding=True)  # left padding with id 0, as generation needs
    assert batch["input_ids"] == [[0, *tok.encode("at")], tok.encode("cat")]
    assert batch["attention_mask"] == [[0, 1, 1], [1, 1, 1]]


# ---- TRL's trainer on the tiny pair ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "lmbda,completions", [(1.0, None), (0.0, COMPLETIONS)], ids=["on-policy", "off-policy"]
)
def test_trl_distill_trains_the_student_only(tok, lmbda, completions, tmp_path, monkeypatch):
    student, teacher = _pair(tok)
    student.eval()  # modes, devices, config and attributes come back as they were
    s0, t0 = copy.deepcopy(student.state_dict()), copy.deepcopy(teacher.state_dict())
    keys, use_cache = set(vars(student)), student.config.use_cache
    # the default output_dir is made (and removed) in tmp_path
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    torch.manual_seed(7)
    random.seed(7)
    expected = torch.rand(3), random.random()
    torch.manual_seed(7)
    random.seed(7)
    logs = trl_distill(
        student, teacher, tok, PROMPTS, completions, steps=4, lmbda=lmbda, beta=0.5, max_new_tokens=12,
        lr=1e-2, batch_size=2,
    )  # fmt: skip
    assert [r["step"] for r in logs] == [1, 2, 3, 4]
    assert all(math.isfinite(r["loss"]) and r["loss"] > 0 and math.isfinite(r["grad_norm"]) for r in logs)
    assert not _same(student.state_dict(), s0), "the student did not change"
    assert _same(teacher.state_dict(), t0), "the teacher changed"
    assert not student.training and teacher.training
    assert set(vars(student)) == keys and "forward" not in vars(student)  # no TRL patch or tag left behind
    assert student.config.use_cache == use_cache
    assert torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1]  # global RNG untouched
    assert list(tmp_path.iterdir()) == []  # the temporary output_dir is gone


def test_trl_distill_is_reproducible_and_saves_nothing(tok, tmp_path):
    """The same seed gives the same run, through the CharTokenizer or its Hugging Face twin."""
    runs = []
    for i, tokenizer in enumerate([tok, hf_tokenizer(tok)]):
        student, teacher = _pair(tok)
        out = tmp_path / str(i)
        logs = trl_distill(
            student, teacher, tokenizer, PROMPTS, COMPLETIONS, steps=3, lmbda=0.5, max_new_tokens=8, lr=1e-3,
            batch_size=2, seed=3, output_dir=out,
        )  # fmt: skip
        runs.append(([r["loss"] for r in logs], student.state_dict()))
        assert not list(out.glob("checkpoint-*"))
    assert runs[0][0] == runs[1][0] and _same(runs[0][1], runs[1][1])


def _by_hand(student, teacher, tok, prompts, completions):
    """The batch TRL's collator builds from prompts + completions (left-padded, -100 on prompt and padding),
    run the way GKDTrainer.compute_loss runs it: input_ids and attention_mask, no position_ids."""
    seqs = [tok.encode(p) + tok.encode(c) for p, c in zip(prompts, completions)]
    width = max(map(len, seqs))
    ids = torch.tensor([[0] * (width - len(s)) + s for s in seqs])
    attn = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs])
    target = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in map(tok.encode, completions)])
    with torch.no_grad():
        zs, zt = (m(input_ids=ids, attention_mask=attn).logits for m in (student, teacher))
    return zs[:, :-1], zt[:, :-1], target[:, 1:].bool()  # position i predicts token i + 1


@pytest.mark.parametrize("beta,temperature", [(0.0, 1.0), (0.5, 1.0), (1.0, 1.0), (0.5, 2.5)])
def test_logged_loss_equals_generalized_jsd(tok, beta, temperature):
    """lmbda=0, one step on one batch of all prompts (uneven lengths, so left padding is included): TRL's
    logged loss is the per-token mean of lk.lm.generalized_jsd over the completion tokens, at temperature 1
    whatever the temperature (GKDTrainer samples at it but does not pass it to its loss)."""
    prompts, completions = ["the c", "a do", "hello w"], ["at sat\n", "g ran far", "orld"]
    student, teacher = _pair(tok)
    zs, zt, mask = _by_hand(student, teacher, tok, prompts, completions)
    ref = lm.generalized_jsd(zs, zt, mask, beta=beta, temperature=1.0).item()
    logs = trl_distill(
        student, teacher, tok, prompts, completions, steps=1, lmbda=0.0, beta=beta, temperature=temperature,
        max_new_tokens=8, lr=1e-3, batch_size=3,
    )  # fmt: skip
    assert math.isclose(logs[0]["loss"], ref, rel_tol=1e-5, abs_tol=1e-9), (logs[0]["loss"], ref)
    if temperature != 1.0:  # the test can tell the two temperatures apart
        assert (
            abs(lm.generalized_jsd(zs, zt, mask, beta=beta, temperature=temperature).item() - ref) > 0.1 * ref
        )


def test_on_policy_loss_is_a_mean_over_the_sampled_tokens(tok, monkeypatch):
    """Without completions TRL would divide by the dataset's 0 completion tokens; trl_distill makes each
    on-policy step's loss the per-token mean over the student's own samples, what it logs."""
    from trl.experimental.gkd import GKDTrainer

    seen, compute_loss = [], GKDTrainer.compute_loss

    def spy(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = compute_loss(self, model, inputs, return_outputs, num_items_in_batch)
        with torch.no_grad():
            ids, attn = inputs["input_ids"], inputs["attention_mask"]
            zs, zt = (m(input_ids=ids, attention_mask=attn).logits for m in (model, self.teacher_model))
        mask = inputs["labels"][:, 1:] != -100
        seen.append((loss.item(), lm.generalized_jsd(zs[:, :-1], zt[:, :-1], mask, beta=1.0).item()))
        return loss

    monkeypatch.setattr(GKDTrainer, "compute_loss", spy)
    student, teacher = _pair(tok)
    logs = trl_distill(student, teacher, tok, PROMPTS, steps=2, max_new_tokens=10, lr=1e-2, batch_size=3)
    assert len(seen) == len(logs) == 2
    for (loss, ref), log in zip(seen, logs):
        assert math.isclose(loss, ref, rel_tol=1e-5, abs_tol=1e-9) and log["loss"] == loss


# ---- careless input ----------------------------------------------------------------------------------------
def _call(tok, **change):
    student, teacher = change.pop("models", None) or _pair(tok)
    kw = dict(
        prompts=PROMPTS, completions=COMPLETIONS, steps=2, lmbda=0.5, max_new_tokens=8, lr=1e-3, batch_size=2
    )
    return trl_distill(student, teacher, change.pop("tokenizer", tok), **{**kw, **change})


# fmt: off
BAD = [
    ("a str for tok", lambda tok: hf_tokenizer("abc"), TypeError, "tok must be an lk.lm.CharTokenizer"),
    ("an HF tokenizer for tok", lambda tok: hf_tokenizer(hf_tokenizer(tok)), TypeError, "tok must be"),
    ("not a tokenizer", lambda tok: _call(tok, tokenizer="abc"), TypeError, "tokenizer must be"),
    ("steps 0", lambda tok: _call(tok, steps=0), ValueError, "steps must be an integer >= 1"),
    ("steps 2.0", lambda tok: _call(tok, steps=2.0), ValueError, "steps must be"),
    ("lmbda 1.5", lambda tok: _call(tok, lmbda=1.5), ValueError, "lmbda must be a number in [0, 1]"),
    ("lmbda -0.1", lambda tok: _call(tok, lmbda=-0.1), ValueError, "lmbda must be"),
    ("lmbda True", lambda tok: _call(tok, lmbda=True), ValueError, "lmbda must be"),
    ("beta 2", lambda tok: _call(tok, beta=2), ValueError, "beta must be a number in [0, 1]"),
    ("temperature 0", lambda tok: _call(tok, temperature=0), ValueError, "temperature must be"),
    ("lr 0", lambda tok: _call(tok, lr=0), ValueError, "lr must be"),
    ("batch_size 0", lambda tok: _call(tok, batch_size=0), ValueError, "batch_size must be"),
    ("max_new_tokens 0", lambda tok: _call(tok, max_new_tokens=0), ValueError, "max_new_tokens must be"),
    ("bigger student vocabulary", lambda tok: _call(tok, models=_pair(tok, len(tok) + 3)), ValueError,
     "same vocab_size"),
    ("smaller student vocabulary", lambda tok: _call(tok, models=_pair(tok, len(tok) - 2)), ValueError,
     "the student has"),
    ("same model twice", lambda tok: _call(tok, models=(_pair(tok)[0],) * 2), ValueError, "same model"),
    ("not a causal LM", lambda tok: _call(tok, models=(torch.nn.Linear(2, 2), _pair(tok)[1])), TypeError,
     "student must be"),
    ("off-policy without completions", lambda tok: _call(tok, completions=None), ValueError,
     "pass completions="),
    ("one completion short", lambda tok: _call(tok, completions=COMPLETIONS[:2]), ValueError,
     "one per prompt"),
    ("an empty prompt", lambda tok: _call(tok, prompts=["", "a", "b"]), ValueError, "prompts[0] is empty"),
    ("prompts not a list", lambda tok: _call(tok, prompts="the cat"), ValueError, "prompts must be"),
    ("prompt + max_new_tokens over the context", lambda tok: _call(tok, prompts=["x" * 30] * 3), ValueError,
     "max_new_tokens=8 exceeds"),
    ("prompt + completion over the context", lambda tok: _call(tok, completions=["y" * 30] * 3), ValueError,
     "context of 32"),
]
# fmt: on


@pytest.mark.parametrize("case,call,error,message", BAD, ids=[b[0] for b in BAD])
def test_bad_inputs_name_the_argument(tok, case, call, error, message):
    with pytest.raises(error, match=None) as info:
        call(tok)
    assert message in str(info.value), f"{case}: {info.value}"
    assert_clear_labkit_error(info, case)
