"""labkit.lm: token-level divergences against TRL and by hand, top-k storage, the one-vocabulary check,
generations, sequence-level data and the on-policy step, and their errors on careless input."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from labkit import lm

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # trl.experimental warns on import
transformers = pytest.importorskip("transformers")


def _logits(seed: int, shape=(3, 7, 11), scale=2.0, dtype=torch.float32) -> torch.Tensor:
    return (
        torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale
    ).to(dtype)


def _labels() -> torch.Tensor:
    labels = torch.randint(0, 11, (3, 7), generator=torch.Generator().manual_seed(9))
    labels[0, 4:] = -100  # a short sequence, right-padded
    labels[2, :2] = -100  # a prompt that is not trained on
    return labels


BETAS = [0.0, 0.1, 0.5, 0.9, 1.0]


# ---- equality with TRL ----------------------------------------------------------------------------------
@pytest.mark.parametrize("temperature", [1.0, 2.5])
@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
def test_generalized_jsd_equals_trl_gkd(beta, temperature, dtype, tol):
    from trl.experimental.gkd import GKDTrainer

    s, t, labels = _logits(0, dtype=dtype), _logits(1, dtype=dtype), _labels()
    ours = lm.generalized_jsd(s, t, labels != -100, beta=beta, temperature=temperature)
    theirs = GKDTrainer.generalized_jsd_loss(s, t, labels=labels, beta=beta, temperature=temperature)
    torch.testing.assert_close(ours, theirs, rtol=tol, atol=tol)
    # without labels TRL's "batchmean" divides the token sum by the batch size, not by the token count
    ours_sum = lm.generalized_jsd(s, t, beta=beta, temperature=temperature, reduction="sum") / s.shape[0]
    theirs = GKDTrainer.generalized_jsd_loss(s, t, beta=beta, temperature=temperature)
    torch.testing.assert_close(ours_sum, theirs, rtol=tol, atol=tol)


@pytest.mark.parametrize("beta", BETAS)
def test_generalized_jsd_equals_trl_distillation_trainer(beta):
    """TRL 1.13's DistillationTrainer computes the same divergence from hidden states and lm_head weights."""
    from trl.trainer.distillation_trainer import _chunked_divergence_loss

    g = torch.Generator().manual_seed(3)
    hs, ht = torch.randn(3, 7, 5, generator=g), torch.randn(3, 7, 6, generator=g)  # widths may differ
    ws, wt = torch.randn(11, 5, generator=g), torch.randn(11, 6, generator=g)
    mask = (_labels() != -100).long()
    theirs, _, n = _chunked_divergence_loss(hs, ht, ws, wt, mask, beta, 4, temperature=2.0)
    ours = lm.generalized_jsd(hs @ ws.T, ht @ wt.T, mask, beta=beta, temperature=2.0)
    assert int(n) == int(mask.sum())
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)


# ---- by hand and against plain PyTorch ---------------------------------------------------------------------
def test_token_kl_by_hand_two_tokens():
    # teacher (0.75, 0.25), student (0.5, 0.5) on one token
    t = torch.log(torch.tensor([0.75, 0.25])).view(1, 1, 2)
    s = torch.zeros(1, 1, 2)
    forward = 0.75 * torch.log(torch.tensor(1.5)) + 0.25 * torch.log(torch.tensor(0.5))
    reverse = 0.5 * torch.log(torch.tensor(0.5 / 0.75)) + 0.5 * torch.log(torch.tensor(0.5 / 0.25))
    torch.testing.assert_close(lm.token_kl(s, t), forward)
    torch.testing.assert_close(lm.token_kl(s, t, direction="reverse"), reverse)
    assert abs(float(forward - reverse)) > 0.01  # KL is not symmetric
    m = torch.tensor([0.625, 0.375])  # beta = 0.5 mixture
    jsd = 0.5 * (torch.tensor([0.75, 0.25]) * torch.log(torch.tensor([0.75, 0.25]) / m)).sum()
    jsd = jsd + 0.5 * (0.5 * torch.log(0.5 / m)).sum()
    torch.testing.assert_close(lm.generalized_jsd(s, t, beta=0.5), jsd)


def test_token_kl_matches_pytorch_and_averages_over_tokens():
    s, t, mask = _logits(0), _logits(1), _labels() != -100
    ref = F.kl_div(F.log_softmax(s[mask], -1), F.log_softmax(t[mask], -1), reduction="sum", log_target=True)
    torch.testing.assert_close(lm.token_kl(s, t, mask), ref / mask.sum())
    torch.testing.assert_close(lm.token_kl(s, t, mask.long()), ref / mask.sum())  # 0/1 masks too
    ref_r = F.kl_div(F.log_softmax(t[mask], -1), F.log_softmax(s[mask], -1), reduction="sum", log_target=True)
    torch.testing.assert_close(lm.token_kl(s, t, mask, direction="reverse"), ref_r / mask.sum())
    # the endpoints of the generalized JSD are these two KLs
    torch.testing.assert_close(lm.generalized_jsd(s, t, mask, beta=0.0), lm.token_kl(s, t, mask))
    torch.testing.assert_close(
        lm.generalized_jsd(s, t, mask, beta=1.0), lm.token_kl(s, t, mask, direction="reverse")
    )


def test_padding_does_not_count_and_identical_logits_give_zero():
    s, t, mask = _logits(0), _logits(1), _labels() != -100
    base = lm.token_kl(s, t, mask)
    s2, t2 = s.clone(), t.clone()
    s2[~mask], t2[~mask] = 1e4, -1e4  # garbage at padding positions
    torch.testing.assert_close(lm.token_kl(s2, t2, mask), base)
    for beta in BETAS:
        assert float(lm.generalized_jsd(s, s.clone(), mask, beta=beta)) == pytest.approx(0.0, abs=1e-6)


def test_generalized_jsd_is_small_near_the_endpoints():
    """JSD(beta) -> 0 as beta -> 0 (about beta * forward KL): the loss scale jumps at beta = 0, as in TRL."""
    s, t = _logits(0, dtype=torch.float64), _logits(1, dtype=torch.float64)
    forward, reverse = lm.token_kl(s, t), lm.token_kl(s, t, direction="reverse")
    torch.testing.assert_close(lm.generalized_jsd(s, t, beta=1e-6) / 1e-6, forward, rtol=1e-3, atol=0)
    torch.testing.assert_close(lm.generalized_jsd(s, t, beta=1 - 1e-6) / 1e-6, reverse, rtol=1e-3, atol=0)
    assert float(lm.generalized_jsd(s, t, beta=1e-6)) < 1e-4 * float(lm.generalized_jsd(s, t, beta=0.0))


def test_gradients_are_exact_and_reach_the_student_only():
    s = _logits(0, (2, 3, 5), dtype=torch.float64).requires_grad_()
    t = _logits(1, (2, 3, 5), dtype=torch.float64).requires_grad_()
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    for fn in (
        lambda a: lm.generalized_jsd(a, t, mask, beta=0.3, temperature=2.0),
        lambda a: lm.token_kl(a, t, mask, direction="reverse"),
        lambda a: lm.topk_kl(a, lm.topk_teacher_logprobs(t, 3), mask),
    ):
        assert torch.autograd.gradcheck(fn, (s,))
    lm.generalized_jsd(s, t, mask).backward()
    assert t.grad is None and s.grad is not None
    assert float(s.grad[0, 2].abs().sum()) == 0.0  # a padding position gets no gradient


# ---- -inf logits ---------------------------------------------------------------------------------------------
def test_minus_inf_logits_are_handled_without_nan():
    s = _logits(0).requires_grad_()
    t = _logits(1)
    t[..., -2:] = float("-inf")  # two vocabulary slots the teacher never produces (padded vocabulary)
    for loss in (lm.token_kl(s, t), lm.generalized_jsd(s, t, beta=0.5), lm.generalized_jsd(s, t, beta=0.0)):
        assert torch.isfinite(loss)
        (g,) = torch.autograd.grad(loss, s)
        assert bool(torch.isfinite(g).all())
    # both models -inf on the same slots: the JSD mixture is 0 there, still no NaN gradient
    s2 = s.detach().clone()
    s2[..., -2:] = float("-inf")
    s2.requires_grad_()
    (g,) = torch.autograd.grad(lm.generalized_jsd(s2, t, beta=0.5), s2)
    assert bool(torch.isfinite(g).all())
    torch.testing.assert_close(lm.token_kl(s2, t), lm.token_kl(s2[..., :-2], t[..., :-2]))


def test_infinite_divergence_is_an_error_not_inf():
    s, t = _logits(0), _logits(1)
    s[..., -1] = float("-inf")  # the student rules out a token the teacher allows
    with pytest.raises(ValueError, match="infinite.*check_same_vocab"):
        lm.token_kl(s, t)
    assert torch.isfinite(lm.token_kl(s, t, direction="reverse"))  # p_S = 0 there: nothing to pay
    assert torch.isfinite(lm.generalized_jsd(s, t, beta=0.5))
    s[0, 0] = float("-inf")
    with pytest.raises(ValueError, match="-inf over the whole vocabulary"):
        lm.token_kl(s, t, direction="reverse")
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[0, 0] = False  # ...unless that position is padding
    assert torch.isfinite(lm.token_kl(s, t, mask, direction="reverse"))


# ---- bad input -------------------------------------------------------------------------------------------------
S, T = _logits(0), _logits(1)
BAD = [
    ("vocabularies of different sizes", lambda: lm.token_kl(S, T[..., :10]), ValueError, r"cover 10 vocabulary entries but student_logits 11.*check_same_vocab"),
    ("different (batch, seq)", lambda: lm.generalized_jsd(S, T[:, :5]), ValueError, r"differ in \(batch, seq\)"),
    ("classifier logits", lambda: lm.token_kl(S[:, 0], T[:, 0]), ValueError, r"\(batch, seq, vocab\).*kd_kl_loss"),
    ("not a tensor", lambda: lm.token_kl(S.tolist(), T), TypeError, r"student_logits must be a torch.Tensor"),
    ("integer logits", lambda: lm.token_kl(S.long(), T), ValueError, r"floating tensor"),
    ("NaN in the teacher", lambda: lm.token_kl(S, T.masked_fill(T > 3, float("nan"))), ValueError, r"teacher_logits.*NaN"),
    ("all padding", lambda: lm.token_kl(S, T, torch.zeros(3, 7)), ValueError, r"no token.*all 0"),
    ("mask of the wrong shape", lambda: lm.token_kl(S, T, torch.ones(3, 6)), ValueError, r"mask must be.*\(3, 7\)"),
    ("labels passed as mask", lambda: lm.token_kl(S, T, _labels()), ValueError, r"0/1.*labels != -100"),
    ("beta above 1", lambda: lm.generalized_jsd(S, T, beta=1.5), ValueError, r"beta must be.*\[0, 1\].*1.5"),
    ("temperature 0", lambda: lm.generalized_jsd(S, T, temperature=0), ValueError, r"temperature must be.*> 0"),
    ("unknown direction", lambda: lm.token_kl(S, T, direction="backward"), ValueError, r"direction 'backward'.*forward, reverse"),
    ("unknown reduction", lambda: lm.token_kl(S, T, reduction="batchmean"), ValueError, r"reduction 'batchmean'.*mean, sum"),
    ("k of 0", lambda: lm.topk_teacher_logprobs(T, 0), ValueError, r"k must be an integer in \[1, 11\]"),
    ("k above the vocabulary", lambda: lm.topk_teacher_logprobs(T, 12), ValueError, r"k must be.*got 12"),
    ("dense logits as top-k", lambda: lm.topk_kl(S, T), TypeError, r"TopK that topk_teacher_logprobs returns"),
    ("top-k of other tokens", lambda: lm.topk_kl(S[:, :5], lm.topk_teacher_logprobs(T, 3)), ValueError, r"same input_ids"),
    ("top-k of a larger vocabulary", lambda: lm.topk_kl(S[..., :4], lm.topk_teacher_logprobs(T, 3)), ValueError, r"\[0, 4\)"),
]  # fmt: skip


@pytest.mark.parametrize("what,call,error,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_clear_error(what, call, error, message):
    with pytest.raises(error, match=message):
        call()


# ---- top-k teacher outputs --------------------------------------------------------------------------------------
def test_topk_storage_and_kl():
    s, t, mask = _logits(0), _logits(1), _labels() != -100
    full = lm.topk_teacher_logprobs(t, 11)
    torch.testing.assert_close(lm.topk_kl(s, full, mask), lm.token_kl(s, t, mask))  # k = vocab: the full KL
    torch.testing.assert_close(full.coverage, torch.ones(3, 7))
    top = lm.topk_teacher_logprobs(t, 3, temperature=2.0)
    assert top.logprobs.shape == top.indices.shape == (3, 7, 3)
    torch.testing.assert_close(
        top.logprobs, F.log_softmax(t / 2.0, -1).gather(-1, top.indices)
    )  # not renormalised
    assert bool((top.logprobs[..., :-1] >= top.logprobs[..., 1:]).all())  # most likely first
    assert bool((top.coverage < 1).all()) and bool((top.coverage > 3 / 11).all())
    # by hand: renormalise the teacher over its top-3, student keeps its full softmax
    p = F.softmax(top.logprobs, -1)
    log_s = F.log_softmax(s / 2.0, -1).gather(-1, top.indices)
    ref = (p * (p.log() - log_s)).sum(-1)[mask].mean()
    torch.testing.assert_close(lm.topk_kl(s, top, mask, temperature=2.0), ref)
    one = lm.topk_teacher_logprobs(t, 1)  # k = 1: cross-entropy on the teacher's argmax
    ce = F.cross_entropy(s[mask], t.argmax(-1)[mask])
    torch.testing.assert_close(lm.topk_kl(s, one, mask), ce)
    stored = lm.TopK(top.logprobs.half(), top.indices.int())  # the compact form still works
    torch.testing.assert_close(lm.topk_kl(s, stored, mask, 2.0), ref, rtol=1e-3, atol=1e-3)


# ---- one vocabulary ----------------------------------------------------------------------------------------------
class _Tok:
    """The part of a tokenizer check_same_vocab reads."""

    def __init__(self, tokens):
        self.vocab = {t: i for i, t in enumerate(tokens)}

    def get_vocab(self):
        return dict(self.vocab)


def _gpt2(vocab=13, ctx=24, seed=0, d=16, eos=3):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        vocab_size=vocab, n_positions=ctx, n_embd=d, n_layer=1, n_head=2, eos_token_id=eos, bos_token_id=eos,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    return transformers.GPT2LMHeadModel(config)


def test_check_same_vocab():
    words = [f"w{i}" for i in range(10)]
    assert lm.check_same_vocab(_gpt2(13), _gpt2(13, seed=1)) == 13
    assert lm.check_same_vocab(50304, 50304) == 50304
    assert lm.check_same_vocab(50257, 50304, _Tok(range(50257))) == 50257  # padded vocabulary: slice to 50257
    assert lm.check_same_vocab(_gpt2(16), _gpt2(10), _Tok(words)) == 10
    assert lm.check_same_vocab(_Tok(words), _Tok(words)) == 10
    with pytest.raises(ValueError, match=r"different numbers of logits \(50257 vs 50304\).*tokenizer="):
        lm.check_same_vocab(50257, 50304)
    with pytest.raises(ValueError, match=r"tokenizers differ at 10 of their first 10 ids.*sequence_kd_data"):
        lm.check_same_vocab(_gpt2(), _gpt2(), _Tok(words), _Tok(words[::-1]))
    with pytest.raises(ValueError, match=r"student has 8 logits but the tokenizer 10 tokens"):
        lm.check_same_vocab(_gpt2(13), _gpt2(8), _Tok(words))
    with pytest.warns(UserWarning, match=r"1 extra tokens.*\['<pad>'\].*10 shared ids"):
        assert lm.check_same_vocab(_gpt2(13), _gpt2(13), _Tok(words), _Tok([*words, "<pad>"])) == 10
    with pytest.raises(TypeError, match="causal LM"):
        lm.check_same_vocab("gpt2", _gpt2())


# ---- generations --------------------------------------------------------------------------------------------------
PROMPTS = torch.randint(4, 13, (5, 6), generator=torch.Generator().manual_seed(0))


def test_generate_masks_after_eos_and_is_reproducible():
    model = _gpt2(seed=1)
    state = torch.random.get_rng_state()
    g = lm.generate(model, PROMPTS, max_new_tokens=8, eos_token_id=3, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global random state is untouched
    assert torch.equal(
        g.sequences, lm.generate(model, PROMPTS, max_new_tokens=8, eos_token_id=3, seed=0).sequences
    )
    assert g.sequences.shape == g.attention_mask.shape == (5, 14) and g.prompt_length == 6
    assert torch.equal(g.sequences[:, :6], PROMPTS)
    comp, keep = g.sequences[:, 6:], g.completion_mask
    for row, m in zip(comp.tolist(), keep.tolist()):
        end = row.index(3) + 1 if 3 in row else len(row)
        assert m == [1] * end + [0] * (len(row) - end)  # the EOS counts, what follows it does not
    assert bool((g.labels[:, :6] == -100).all()) and torch.equal(g.labels[:, 6:][keep == 1], comp[keep == 1])
    assert model.training  # mode restored


def test_greedy_is_temperature_zero():
    model = _gpt2(seed=1).eval()
    g = lm.generate(model, PROMPTS, max_new_tokens=5, temperature=0, eos_token_id=None)
    ids = PROMPTS.clone()
    with torch.no_grad():
        for _ in range(5):
            ids = torch.cat([ids, model(ids).logits[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(g.sequences, ids)


def _word_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["<pad>", "<eos>", "good", "bad", "film", "very", "not", "a", "the", "plot"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


def test_string_prompts_are_left_padded_and_positioned():
    tok, model = _word_tokenizer(), _gpt2(vocab=10, seed=2, eos=1)
    g = lm.generate(model, ["the film", "a very good film"], tokenizer=tok, max_new_tokens=4, temperature=0)
    alone = lm.generate(model, ["the film"], tokenizer=tok, max_new_tokens=4, temperature=0)
    assert g.prompt_length == 4 and g.attention_mask[0, :4].tolist() == [0, 0, 1, 1]
    assert torch.equal(g.sequences[0, 4:], alone.sequences[0, 2:])  # the padding changes nothing
    assert g.texts[0] == alone.texts[0] and isinstance(g.texts[0], str)
    torch.testing.assert_close(lm.sequence_logprob(model, g)[0], lm.sequence_logprob(model, alone)[0])
    assert tok.padding_side == "right"  # restored


def test_sequence_logprob_by_hand():
    model = _gpt2(seed=1).eval()
    g = lm.generate(model, PROMPTS, max_new_tokens=4, eos_token_id=None, seed=0)
    with torch.no_grad():
        logp = F.log_softmax(model(g.sequences).logits[:, 5:-1], -1).gather(-1, g.sequences[:, 6:, None])
    torch.testing.assert_close(lm.sequence_logprob(model, g), logp.squeeze(-1).mean(-1))


def test_distinct_n_by_hand():
    seq = torch.tensor([[9, 5, 6, 5, 6, 3, 0], [9, 7, 7, 7, 3, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 0, 0]])  # completions 5 6 5 6 3 and 7 7 7 3
    g = lm.Generations(seq, mask, prompt_length=1)
    assert lm.distinct_n(g, 1) == pytest.approx(4 / 9)  # unique tokens {5, 6, 3, 7} among 9
    assert lm.distinct_n(g, 2) == pytest.approx(5 / 7)  # 56 65 56 63 | 77 77 73: {56, 65, 63, 77, 73}
    with pytest.raises(ValueError, match="no completion has 6 tokens"):
        lm.distinct_n(g, 6)


GEN_BAD = [
    ("prompt longer than the context", dict(prompts=torch.ones(2, 30, dtype=torch.long)), r"30 tokens.*context of 24"),
    ("no room left to generate", dict(max_new_tokens=20), r"6 tokens \+ max_new_tokens=20 exceed.*24"),
    ("negative temperature", dict(temperature=-1.0), r"temperature must be.*>= 0.*greedy"),
    ("zero new tokens", dict(max_new_tokens=0), r"max_new_tokens must be an integer >= 1"),
    ("ids outside the vocabulary", dict(prompts=PROMPTS + 20), r"\[0, 13\)"),
    ("text without a tokenizer", dict(prompts=["a film"]), r"pass tokenizer="),
    ("empty prompts", dict(prompts=torch.ones(0, 4, dtype=torch.long)), r"N, P >= 1"),
    ("float prompts", dict(prompts=PROMPTS.float()), r"token ids of shape \(N, P\)"),
]  # fmt: skip


def test_generate_needs_a_causal_lm():
    with pytest.raises(TypeError, match=r"Hugging Face causal LM \(with .generate\), got Linear"):
        lm.generate(torch.nn.Linear(3, 3), PROMPTS)


@pytest.mark.parametrize("what,kwargs,message", GEN_BAD, ids=[b[0] for b in GEN_BAD])
def test_generate_bad_input(what, kwargs, message):
    kwargs = {"prompts": PROMPTS, **kwargs}
    with pytest.raises(ValueError, match=message):
        lm.generate(_gpt2(), kwargs.pop("prompts"), **kwargs)


def test_sequence_kd_data_drops_empty_completions():
    teacher = _gpt2(seed=1)
    greedy = lm.generate(teacher, PROMPTS, max_new_tokens=3, temperature=0, eos_token_id=None)
    first = greedy.sequences[:, 6]
    eos = int(first[0])  # make the teacher's first greedy token the end of sequence: that completion is empty
    data = lm.sequence_kd_data(
        teacher, PROMPTS[first != eos], max_new_tokens=3, temperature=0, eos_token_id=eos
    )
    assert len(data) == int((first != eos).sum())
    with pytest.warns(UserWarning, match=r"dropped \d+ of 5 empty"):
        data = lm.sequence_kd_data(teacher, PROMPTS, max_new_tokens=3, temperature=0, eos_token_id=eos)
    assert len(data) == int((first != eos).sum()) and bool((data.sequences[:, 6] != eos).all())
    with pytest.raises(ValueError, match=r"all 2 teacher completions are empty"):
        lm.sequence_kd_data(
            teacher, PROMPTS[first == eos][:1].repeat(2, 1), max_new_tokens=3, temperature=0, eos_token_id=eos
        )


# ---- the on-policy step --------------------------------------------------------------------------------------------
def test_on_policy_step_is_one_gkd_step_on_student_samples():
    student, teacher = _gpt2(seed=1), _gpt2(seed=0)
    before_t = [p.detach().clone() for p in teacher.parameters()]
    before_s = [p.detach().clone() for p in student.parameters()]
    opt = torch.optim.SGD(student.parameters(), lr=0.5)
    out = lm.on_policy_step(
        student, teacher, PROMPTS, opt, beta=0.5, max_new_tokens=6, eos_token_id=3, seed=0
    )
    gens = out["generations"]
    # the same samples (same seed) from the student before the step, and the loss on them by hand
    ref = _gpt2(seed=1)
    assert torch.equal(
        gens.sequences, lm.generate(ref, PROMPTS, max_new_tokens=6, eos_token_id=3, seed=0).sequences
    )
    with torch.no_grad():
        s, t = ref(gens.sequences).logits[:, 5:-1], teacher(gens.sequences).logits[:, 5:-1]
    assert out["loss"] == pytest.approx(
        float(lm.generalized_jsd(s, t, gens.completion_mask, beta=0.5)), rel=1e-5
    )
    assert out["tokens"] == int(gens.completion_mask.sum()) > 0
    assert all(
        torch.equal(a, b) for a, b in zip(before_t, teacher.parameters())
    )  # the teacher is not trained
    assert any(not torch.equal(a, b) for a, b in zip(before_s, student.parameters()))


def test_on_policy_steps_bring_the_student_to_the_teacher():
    student, teacher = _gpt2(seed=1), _gpt2(seed=0)
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    losses = [
        lm.on_policy_step(student, teacher, PROMPTS, opt, max_new_tokens=6, eos_token_id=None, seed=i)["loss"]
        for i in range(25)
    ]
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])


def test_on_policy_step_bad_input():
    student, teacher = _gpt2(seed=1), _gpt2(vocab=12)
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        lm.on_policy_step(student, _gpt2(), PROMPTS, student.parameters())
    with pytest.raises(ValueError, match=r"different numbers of logits \(12 vs 13\)"):
        lm.on_policy_step(student, teacher, PROMPTS, torch.optim.SGD(student.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="beta must be"):
        lm.on_policy_step(student, _gpt2(), PROMPTS, torch.optim.SGD(student.parameters(), lr=0.1), beta=-0.1)
