"""labkit.lm_train (lesson 09's small language models end to end) and the LM pieces built on it: the character
tokenizer and its windows, GPT-2 from a config, train_lm's objectives, the teacher cache, per-window NLL,
off-policy / on-policy steps, the generation measures, per-example comparisons and the exercise checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_clear_labkit_error

import labkit as lk

TEXTS = [
    "a good pan, it heats fast.",
    "the kettle is loud.",
    "great book!",
    "this dvd skips.",
    "nice knife",
] * 20


@pytest.fixture(scope="module")
def tok():
    return lk.lm.CharTokenizer.from_texts(TEXTS)


@pytest.fixture(scope="module")
def windows(tok):
    return tok.windows(TEXTS, 12)


def _gpt(tok, layers=1, width=16, seed=0, ctx=12):
    return lk.lm.build_gpt(tok.vocab_size, ctx, layers, width, 2, seed=seed)


# ------------------------------------------------------------------------------------------------ tokenizer
def test_char_tokenizer_round_trip_and_specials(tok):
    assert tok.tokens[:3] == ["<pad>", "<unk>", "\n"] and tok.eos_token_id == 2
    assert tok.decode(tok.encode("good pan")) == "good pan"
    assert tok.decode(tok.encode("pan é")) == "pan ?"  # outside the vocabulary: <unk>, shown as ?
    assert tok.decode([*tok.encode("ab"), 2, *tok.encode("cd")]) == "ab"  # stops at the end of text
    assert tok.get_vocab()["a"] == tok.encode("a")[0] and len(tok) == tok.vocab_size


def test_windows_cover_the_stream_without_overlap(tok):
    stream = tok.stream(TEXTS)
    w = tok.windows(TEXTS, 12)
    assert w.shape == ((len(stream) - 1) // 12, 13)
    assert torch.equal(w[1, 0], stream[12]) and torch.equal(w[0, 12], w[1, 0])  # consecutive, sharing one id
    some = tok.windows(TEXTS, 12, n=5, seed=3)
    assert some.shape == (5, 13) and torch.equal(some, tok.windows(TEXTS, 12, n=5, seed=3))


def test_build_gpt_is_seeded_and_leaves_the_global_rng(tok):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b = _gpt(tok, seed=4), _gpt(tok, seed=4)
    assert torch.equal(torch.rand(1), before)  # building did not consume the global random state
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert a.config.vocab_size == tok.vocab_size and not a.config.tie_word_embeddings


# ------------------------------------------------------------------------------------------------ training
def test_window_nll_is_the_mean_next_token_cross_entropy(tok, windows):
    m = _gpt(tok)
    nll = lk.lm.window_nll(m, windows)
    with torch.no_grad():
        z = m(windows[:, :-1]).logits
    want = F.cross_entropy(z.transpose(1, 2), windows[:, 1:], reduction="none").mean(1)
    assert nll.shape == (len(windows),) and torch.allclose(nll, want, atol=1e-5)
    assert math.isclose(float(nll.mean()), math.log(tok.vocab_size), rel_tol=0.2)  # untrained: near uniform


@pytest.mark.parametrize("objective", ["ce", "forward", "reverse", "jsd"])
def test_train_lm_learns_with_every_objective(tok, windows, objective):
    teacher = _gpt(tok, width=32, seed=1)
    lk.lm.train_lm(teacher, windows, steps=60, batch_size=16, seed=0)
    student = _gpt(tok, seed=2)
    before = float(lk.lm.window_nll(student, windows).mean())
    kd = {} if objective == "ce" else {"teacher_logits": lk.lm.teacher_logits(teacher, windows), "alpha": 1.0}
    hist = lk.lm.train_lm(student, windows, steps=40, batch_size=16, seed=0, objective=objective, **kd)
    assert len(hist) == 10 and hist[-1]["step"] == 40
    assert float(lk.lm.window_nll(student, windows).mean()) < before - 0.3


def test_train_lm_is_reproducible_and_the_kd_term_is_the_token_kl(tok, windows):
    teacher = _gpt(tok, width=32, seed=1)
    logits = lk.lm.teacher_logits(teacher, windows)
    assert logits.dtype == torch.float16 and logits.shape == (len(windows), 12, tok.vocab_size)
    runs = []
    for _ in range(2):
        s = _gpt(tok, seed=2)
        lk.lm.train_lm(s, windows, steps=5, batch_size=8, seed=7, objective="forward", teacher_logits=logits)
        runs.append(s.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    # alpha = 1, T = 2: the recorded loss is T^2 * token KL of the first batch after... checked on one step
    s = _gpt(tok, seed=2)
    g = torch.Generator().manual_seed(7)
    idx = torch.randperm(len(windows), generator=g)[:8]
    with torch.no_grad():
        z = s(windows[idx, :-1]).logits
    want = 4.0 * lk.lm.token_kl(z, logits[idx].float(), temperature=2.0)
    hist = lk.lm.train_lm(s, windows, steps=1, batch_size=8, seed=7, objective="forward", teacher_logits=logits,
                          alpha=1.0, temperature=2.0)  # fmt: skip
    assert hist[0]["loss"] == pytest.approx(float(want), rel=1e-4)


def test_train_or_load_lm_caches_exactly_this_run(tok, windows, tmp_path, capsys):
    a = _gpt(tok, seed=5)
    lk.lm.train_or_load_lm(a, windows, name="t", cache=tmp_path, steps=5, batch_size=8, seed=0)
    b = _gpt(tok, seed=5)
    lk.lm.train_or_load_lm(b, windows, name="t", cache=tmp_path, steps=5, batch_size=8, seed=0)
    assert "loaded cached t" in capsys.readouterr().out
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    c = _gpt(tok, seed=5)
    lk.lm.train_or_load_lm(c, windows, name="t", cache=tmp_path, steps=6, batch_size=8, seed=0)  # other steps
    assert "loaded cached" not in capsys.readouterr().out
    assert len(list(tmp_path.glob("t-*.safetensors"))) == 2


def test_load_corpus_splits_each_domain_and_falls_back_loudly(monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    monkeypatch.delenv("LABKIT_DATA_DIR", raising=False)
    c = lk.lm.load_corpus(["books", "toy_dvd"], val_fraction=0.25, seed=1)
    assert c.fell_back and "DATASET FALLBACK" in capsys.readouterr().out
    assert set(c.fit) == {"books", "toy_dvd"}
    n = len(c.fit["toy_dvd"]) + len(c.val["toy_dvd"])
    assert len(c.val["toy_dvd"]) == round(0.25 * n) and not set(c.val["toy_dvd"]) & set(c.fit["toy_dvd"])
    assert c.texts("val") == c.val["books"] + c.val["toy_dvd"]


# ------------------------------------------------------------------------------------------------ policy steps
def test_distill_step_equals_the_masked_divergence_step(tok, windows):
    teacher, student = _gpt(tok, width=32, seed=1), _gpt(tok, seed=2)
    twin = _gpt(tok, seed=2)
    real = windows[:6, :12]  # 12 ids: the models' context
    gens = lk.lm.Generations(real, torch.ones_like(real), 4)
    out = lk.lm.distill_step(student, teacher, gens, torch.optim.SGD(student.parameters(), lr=0.1), beta=1.0)
    opt = torch.optim.SGD(twin.parameters(), lr=0.1)
    with torch.no_grad():
        t = teacher(real).logits[:, 3:-1]
    loss = lk.lm.token_kl(twin(real).logits[:, 3:-1], t, direction="reverse")
    loss.backward()
    opt.step()
    assert out["loss"] == pytest.approx(float(loss), rel=1e-5) and out["tokens"] == 6 * 8
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(student.parameters(), twin.parameters()))


def test_sample_measures(tok, windows):
    teacher, student = _gpt(tok, width=32, seed=1), _gpt(tok, seed=2)
    gens = lk.lm.generate(student, windows[:5, :4], max_new_tokens=6, eos_token_id=2, seed=0)
    assert torch.allclose(lk.lm.sample_divergence(teacher, teacher, gens), torch.zeros(5), atol=1e-5)
    d = lk.lm.sample_divergence(student, teacher, gens, "forward")
    r = lk.lm.sample_divergence(student, teacher, gens, "reverse")
    assert d.shape == (5,) and bool((d > 0).all()) and not torch.allclose(d, r)
    ent = lk.lm.sample_entropy(student, gens)
    assert bool((ent > 0).all()) and bool((ent <= math.log(tok.vocab_size) + 1e-5).all())


# ------------------------------------------------------------------------------------------------ comparisons
def test_comparison_of_examples_pairs_seeds_and_reads_direction():
    metric = {"nll": lk.verdicts.Metric("lower", scale=1.0, unit="nats")}
    g = torch.Generator().manual_seed(0)
    base = torch.rand(400, generator=g) + 2.0
    cmp = lk.Comparison.of_examples(400, metric)
    for s in range(3):
        noise = 0.01 * torch.randn(400, generator=g)
        cmp.add_values("CE", s, {"nll": base + noise})
        cmp.add_values("KD", s, {"nll": base + noise - 0.05})
    cmp.add_values("teacher", None, {"nll": base - 1.0})
    v = cmp.verdict("KD", "CE", "nll")
    assert v.effect == "gain" and v.diff == pytest.approx(-0.05, abs=1e-6) and v.n_test == 400
    assert cmp.verdict("CE", "KD", "nll").effect == "loss"
    assert cmp.verdict("teacher", "CE", "nll").n_seeds == 3
    assert list(cmp.summary().index) == ["CE", "KD", "teacher"]


# ------------------------------------------------------------------------------------------------ bad input
def test_corpus_windows_are_balanced_per_domain_and_know_their_domain(tok):
    texts = {"a": ["good pan heats fast."] * 10, "b": ["this dvd skips a lot."] * 30}
    corpus = lk.lm_train.Corpus(texts, texts, texts, "test", False)
    w, dom = corpus.windows(tok, "fit", 8, n_per_domain=12, seed=0)
    assert w.shape == (12 + 12, 9) and sorted(dom.tolist()) == [0] * 12 + [1] * 12
    stream_a = tok.windows(texts["a"], 8)
    assert all(any(torch.equal(x, y) for y in stream_a) for x in w[dom == 0])  # no window spans two domains
    assert torch.equal(w, corpus.windows(tok, "fit", 8, n_per_domain=12, seed=0)[0])
    all_a = corpus.windows(tok, "fit", 8)[1]
    assert int((all_a == 0).sum()) == len(stream_a)  # None (or a domain with fewer): every window of it


def test_routed_teacher_logits_take_each_window_from_its_teacher(tok, windows):
    a, b = _gpt(tok, width=16, seed=1), _gpt(tok, width=16, seed=2)
    route = torch.tensor([0, 1] * (len(windows) // 2) + [0] * (len(windows) % 2))
    got = lk.lm.routed_teacher_logits([a, b], windows, route.tolist())
    want_a, want_b = lk.lm.teacher_logits(a, windows), lk.lm.teacher_logits(b, windows)
    assert got.dtype == torch.float16 and got.shape == want_a.shape
    assert torch.equal(got[route == 0], want_a[route == 0]) and torch.equal(
        got[route == 1], want_b[route == 1]
    )
    assert not torch.equal(got[route == 1], want_a[route == 1])  # the two teachers differ, so routing matters
    one = lk.lm.routed_teacher_logits([a, b], windows, torch.zeros(len(windows), dtype=torch.long))
    assert torch.equal(one, want_a)  # a teacher with no window is never run


def test_mixture_logits_average_probabilities_and_match_the_multi_teacher_loss(tok, windows):
    g = torch.Generator().manual_seed(0)
    z = [3 * torch.randn(6, 5, 7, generator=g) for _ in range(3)]
    uniform = lk.lm.mixture_logits(z)
    assert torch.allclose(uniform, torch.stack([x.softmax(-1) for x in z]).mean(0).log(), atol=1e-5)
    route = torch.tensor([0, 2, 1, 1, 0, 2])
    routed = lk.lm.mixture_logits(z, F.one_hot(route, 3).float())  # one-hot rows: each window's own teacher
    assert torch.allclose(
        routed, torch.stack([z[k][i] for i, k in enumerate(route)]).log_softmax(-1), atol=1e-5
    )
    # the multi-teacher loss sum_k alpha_k KL(p_k || p_S) and the KL to the mixture have one gradient
    alpha = torch.tensor([0.2, 0.5, 0.3])
    s1 = torch.randn(6, 5, 7, generator=g, requires_grad=True)
    s2 = s1.detach().clone().requires_grad_(True)
    sum(a * lk.lm.token_kl(s1, zk) for a, zk in zip(alpha, z)).backward()
    lk.lm.token_kl(s2, lk.lm.mixture_logits(z, alpha)).backward()
    assert torch.allclose(s1.grad, s2.grad, atol=1e-6)
    half = lk.lm.mixture_logits([x.half() for x in z])
    assert half.dtype == torch.float16 and torch.allclose(half.float(), uniform, atol=2e-2)


def test_cached_teacher_windows_generate_once(tok, windows, tmp_path, capsys):
    teacher = _gpt(tok, width=16, seed=3)
    prompts = windows[:6, :4]
    with pytest.warns(
        UserWarning, match="dropped 1 of 6 empty"
    ):  # this untrained teacher ends one text at once
        gens = lk.lm.sequence_kd_data(
            teacher, prompts, max_new_tokens=8, seed=1, eos_token_id=tok.eos_token_id
        )
    with pytest.warns(UserWarning, match="dropped 1 of 6 empty"):
        w, seconds = lk.lm.cached_teacher_windows(
            teacher, prompts, max_new_tokens=8, name="w", cache=tmp_path, seed=1
        )
    assert w.shape == (5, 12) and seconds > 0 and "loaded" not in capsys.readouterr().out
    ends = gens.attention_mask == 0  # after an end of text: end-of-text ids, so the windows train on them
    assert torch.equal(w[~ends], gens.sequences[~ends]) and bool((w[ends] == tok.eos_token_id).all())
    again, seconds_again = lk.lm.cached_teacher_windows(
        teacher, prompts, max_new_tokens=8, name="w", cache=tmp_path, seed=1
    )
    assert "loaded the cached w" in capsys.readouterr().out
    assert torch.equal(again, w) and seconds_again == seconds  # the time of the run that generated them
    lk.lm.cached_teacher_windows(teacher, prompts[:5], max_new_tokens=8, name="w", cache=tmp_path, seed=1)
    assert len(list(tmp_path.glob("w-*.pt"))) == 2  # other prompts, another entry


BAD = [
    (
        "a tokenizer of no characters",
        lambda: lk.lm.CharTokenizer([]),
        ValueError,
        "non-empty list of distinct",
    ),
    ("a tokenizer from a string", lambda: lk.lm.CharTokenizer("abc"), TypeError, "list of single characters"),
    ("newline as a character", lambda: lk.lm.CharTokenizer(["a", "\n"]), ValueError, "other than"),
    (
        "texts as one string",
        lambda: lk.lm.CharTokenizer.from_texts("abc"),
        ValueError,
        "non-empty list of str",
    ),
    (
        "a number among texts",
        lambda: lk.lm.CharTokenizer.from_texts(["a", 3]),
        ValueError,
        r"texts\[1\] is a int",
    ),
    (
        "windows longer than the text",
        lambda: lk.lm.CharTokenizer(["a"]).windows(["aa"], 5),
        ValueError,
        "too few",
    ),
    (
        "more windows than there are",
        lambda: lk.lm.CharTokenizer(["a"]).windows(["a" * 20], 4, n=9),
        ValueError,
        "only 5",
    ),  # fmt: skip
    ("a zero window length", lambda: lk.lm.CharTokenizer(["a"]).windows(["aaaa"], 0), ValueError, "length"),
    ("decoding an id outside", lambda: lk.lm.CharTokenizer(["a"]).decode([7]), ValueError, r"in \[0, 4\)"),
    (
        "width not a multiple of heads",
        lambda: lk.lm.build_gpt(10, 8, 1, 10, 3),
        ValueError,
        "multiple of heads",
    ),
    ("zero layers", lambda: lk.lm.build_gpt(10, 8, 0, 8, 2), ValueError, "layers"),
    (
        "float windows",
        lambda: lk.lm.window_nll(lk.lm.build_gpt(10, 8, 1, 8, 2), torch.rand(3, 9)),
        ValueError,
        "token ids of shape",
    ),  # fmt: skip
    (
        "windows longer than the context",
        lambda: lk.lm.window_nll(lk.lm.build_gpt(10, 8, 1, 8, 2), torch.zeros(2, 12, dtype=torch.long)),
        ValueError,
        "context is 8",
    ),  # fmt: skip
    (
        "ids outside the vocabulary",
        lambda: lk.lm.window_nll(lk.lm.build_gpt(10, 8, 1, 8, 2), torch.full((2, 5), 10)),
        ValueError,
        "vocabulary has 10",
    ),  # fmt: skip
    (
        "kd without teacher logits",
        lambda: lk.lm.train_lm(
            lk.lm.build_gpt(10, 8, 1, 8, 2), torch.zeros(4, 5, dtype=torch.long), steps=1, objective="forward"
        ),
        ValueError,
        "teacher_logits=",
    ),  # fmt: skip
    (
        "ce with teacher logits",
        lambda: lk.lm.train_lm(
            lk.lm.build_gpt(10, 8, 1, 8, 2),
            torch.zeros(4, 5, dtype=torch.long),
            steps=1,
            teacher_logits=torch.zeros(4, 4, 10),
        ),
        ValueError,
        "uses no teacher",
    ),  # fmt: skip
    (
        "teacher logits of another vocabulary",
        lambda: lk.lm.train_lm(
            lk.lm.build_gpt(10, 8, 1, 8, 2),
            torch.zeros(4, 5, dtype=torch.long),
            steps=1,
            objective="reverse",
            teacher_logits=torch.zeros(4, 4, 12),
        ),
        ValueError,
        "share one tokenizer",
    ),  # fmt: skip
    (
        "teacher logits of other windows",
        lambda: lk.lm.train_lm(
            lk.lm.build_gpt(10, 8, 1, 8, 2),
            torch.zeros(4, 5, dtype=torch.long),
            steps=1,
            objective="reverse",
            teacher_logits=torch.zeros(3, 4, 10),
        ),
        ValueError,
        r"\(4, 4, vocab\)",
    ),  # fmt: skip
    (
        "an unknown objective",
        lambda: lk.lm.train_lm(
            lk.lm.build_gpt(10, 8, 1, 8, 2), torch.zeros(4, 5, dtype=torch.long), steps=1, objective="kl"
        ),
        ValueError,
        "objective",
    ),  # fmt: skip
    (
        "zero steps",
        lambda: lk.lm.train_lm(lk.lm.build_gpt(10, 8, 1, 8, 2), torch.zeros(4, 5, dtype=torch.long), steps=0),
        ValueError,
        "steps",
    ),  # fmt: skip
    (
        "alpha 0 with a teacher",
        lambda: lk.lm.train_lm(
            lk.lm.build_gpt(10, 8, 1, 8, 2),
            torch.zeros(4, 5, dtype=torch.long),
            steps=1,
            objective="forward",
            teacher_logits=torch.zeros(4, 4, 10),
            alpha=0,
        ),
        ValueError,
        r"alpha .* \(0, 1\]",
    ),  # fmt: skip
    (
        "a jsd beta outside [0, 1]",
        lambda: lk.lm.train_lm(
            lk.lm.build_gpt(10, 8, 1, 8, 2),
            torch.zeros(4, 5, dtype=torch.long),
            steps=1,
            objective="jsd",
            teacher_logits=torch.zeros(4, 4, 10),
            beta=2.0,
        ),
        ValueError,
        "beta",
    ),  # fmt: skip
    (
        "a cache name with a slash",
        lambda: lk.lm.train_or_load_lm(
            lk.lm.build_gpt(10, 8, 1, 8, 2), torch.zeros(4, 5, dtype=torch.long), name="a/b", steps=1
        ),
        ValueError,
        "file-name prefix",
    ),  # fmt: skip
    (
        "distill_step without Generations",
        lambda: lk.lm.distill_step(
            lk.lm.build_gpt(10, 8, 1, 8, 2),
            lk.lm.build_gpt(10, 8, 1, 8, 2),
            torch.zeros(2, 5),
            torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1),
        ),
        TypeError,
        "Generations",
    ),  # fmt: skip
    (
        "distill_step across vocabularies",
        lambda: lk.lm.distill_step(
            lk.lm.build_gpt(10, 8, 1, 8, 2),
            lk.lm.build_gpt(12, 8, 1, 8, 2),
            lk.lm.Generations(torch.zeros(2, 5, dtype=torch.long), torch.ones(2, 5, dtype=torch.long), 2),
            torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1),
        ),
        ValueError,
        "different numbers of logits",
    ),  # fmt: skip
    (
        "a sample divergence direction typo",
        lambda: lk.lm.sample_divergence(
            lk.lm.build_gpt(10, 8, 1, 8, 2), lk.lm.build_gpt(10, 8, 1, 8, 2), None, "fwd"
        ),
        ValueError,
        "direction",
    ),  # fmt: skip
    (
        "one example in a comparison",
        lambda: lk.Comparison.of_examples(1, {"nll": lk.verdicts.Metric("lower")}),
        ValueError,
        "integer >= 2",
    ),  # fmt: skip
    ("a comparison of no metric", lambda: lk.Comparison.of_examples(5, {}), ValueError, "non-empty"),
    (
        "ece as a per-example metric",
        lambda: lk.Comparison.of_examples(5, {"e": lk.verdicts.Metric("lower", per_example=False)}),
        ValueError,
        "mean over examples",
    ),  # fmt: skip
    (
        "values of the wrong length",
        lambda: lk.Comparison.of_examples(5, {"nll": lk.verdicts.Metric("lower")}).add_values(
            "a", 0, {"nll": torch.zeros(4)}
        ),
        ValueError,
        "must be 5 finite values",
    ),  # fmt: skip
    (
        "values with a NaN",
        lambda: lk.Comparison.of_examples(2, {"nll": lk.verdicts.Metric("lower")}).add_values(
            "a", 0, {"nll": [0.0, float("nan")]}
        ),
        ValueError,
        "1 NaN or inf",
    ),  # fmt: skip
    (
        "values missing a metric",
        lambda: lk.Comparison.of_examples(2, {"nll": lk.verdicts.Metric("lower")}).add_values(
            "a", 0, {"acc": [0.0, 1.0]}
        ),
        ValueError,
        r"exactly the metrics \['nll'\]",
    ),  # fmt: skip
    (
        "logits into a per-example comparison",
        lambda: lk.Comparison.of_examples(2, {"nll": lk.verdicts.Metric("lower")}).add(
            "a", 0, torch.zeros(2, 3)
        ),
        ValueError,
        "add_values",
    ),  # fmt: skip
    (
        "routed logits from one model, not a list",
        lambda: lk.lm.routed_teacher_logits(
            lk.lm.build_gpt(10, 8, 1, 8, 2), torch.zeros(3, 6, dtype=torch.long), [0] * 3
        ),
        TypeError,
        "non-empty list of models",
    ),
    (
        "routed logits with a route too short",
        lambda: lk.lm.routed_teacher_logits(
            [lk.lm.build_gpt(10, 8, 1, 8, 2)], torch.zeros(3, 6, dtype=torch.long), [0]
        ),
        ValueError,
        "one teacher index per window",
    ),
    (
        "routed logits with a float route",
        lambda: lk.lm.routed_teacher_logits(
            [lk.lm.build_gpt(10, 8, 1, 8, 2)], torch.zeros(3, 6, dtype=torch.long), torch.zeros(3)
        ),
        ValueError,
        "integers",
    ),
    (
        "routed logits with words as route",
        lambda: lk.lm.routed_teacher_logits(
            [lk.lm.build_gpt(10, 8, 1, 8, 2)], torch.zeros(3, 6, dtype=torch.long), ["books"] * 3
        ),
        ValueError,
        "not a list of integers",
    ),
    (
        "routed logits to a teacher that is not there",
        lambda: lk.lm.routed_teacher_logits(
            [lk.lm.build_gpt(10, 8, 1, 8, 2)], torch.zeros(3, 6, dtype=torch.long), [1] * 3
        ),
        ValueError,
        "allowed: 0 to 0",
    ),
    (
        "routed logits over different vocabularies",
        lambda: lk.lm.routed_teacher_logits(
            [lk.lm.build_gpt(10, 8, 1, 8, 2), lk.lm.build_gpt(12, 8, 1, 8, 2)],
            torch.zeros(3, 6, dtype=torch.long),
            [0] * 3,
        ),
        ValueError,
        "vocab",
    ),
    (
        "mixture of one tensor, not a list",
        lambda: lk.lm.mixture_logits(torch.zeros(2, 3, 4)),
        TypeError,
        "non-empty list of teacher logits",
    ),
    (
        "mixture of logits of two shapes",
        lambda: lk.lm.mixture_logits([torch.zeros(2, 3, 4), torch.zeros(2, 3, 5)]),
        ValueError,
        "one shape",
    ),
    (
        "mixture weights that do not sum to 1",
        lambda: lk.lm.mixture_logits([torch.zeros(2, 3, 4)] * 2, [0.5, 0.6]),
        ValueError,
        "sum to 1",
    ),
    (
        "mixture weights of the wrong shape",
        lambda: lk.lm.mixture_logits([torch.zeros(2, 3, 4)] * 2, [1.0]),
        ValueError,
        r"\(2,\) or \(2, 2\)",
    ),
    (
        "mixture weights as words",
        lambda: lk.lm.mixture_logits([torch.zeros(2, 3, 4)] * 2, ["a", "b"]),
        ValueError,
        "weights must be numbers",
    ),
    (
        "teacher windows from float prompts",
        lambda: lk.lm.cached_teacher_windows(
            lk.lm.build_gpt(10, 8, 1, 8, 2), torch.zeros(2, 4), max_new_tokens=4, name="w"
        ),
        ValueError,
        "prompts must be token ids",
    ),
    (
        "teacher windows with a path as name",
        lambda: lk.lm.cached_teacher_windows(
            lk.lm.build_gpt(10, 8, 1, 8, 2), torch.zeros(2, 4, dtype=torch.long), max_new_tokens=4, name="a/b"
        ),
        ValueError,
        "name must be a short file-name prefix",
    ),
    (
        "teacher windows of 0 new tokens",
        lambda: lk.lm.cached_teacher_windows(
            lk.lm.build_gpt(10, 8, 1, 8, 2), torch.zeros(2, 4, dtype=torch.long), max_new_tokens=0, name="w"
        ),
        ValueError,
        "max_new_tokens",
    ),
    ("a corpus of one string", lambda: lk.lm.load_corpus("books"), ValueError, "non-empty list"),
    (
        "a corpus val fraction of 1",
        lambda: lk.lm.load_corpus(["toy_books"], val_fraction=1.0),
        ValueError,
        r"val_fraction must be in \(0, 1\)",
    ),  # fmt: skip
]


@pytest.mark.parametrize("what, call, error, message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_clear_error(what, call, error, message):
    with pytest.raises(error, match=message) as info:
        call()
    assert_clear_labkit_error(info, what)


# ------------------------------------------------------------------------------------------------ Hub pair path
def save_tiny_causal_pair(folder, texts=TEXTS):
    """A teacher and a student saved with save_pretrained (GPT-2 configs) that share one byte-level BPE tokenizer
    trained here: what lesson 09's section 9 loads from the Hub, made offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<unk>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="<unk>", eos_token="<eos>")
    paths = []
    for name, width, seed in (("teacher", 32, 0), ("student", 16, 1)):
        torch.manual_seed(seed)
        cfg = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=width, n_layer=1, n_head=2,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id)  # fmt: skip
        GPT2LMHeadModel(cfg).save_pretrained(folder / name)
        tokenizer.save_pretrained(folder / name)
        paths.append(folder / name)
    return paths


def test_a_local_pretrained_pair_runs_the_policy_steps(tmp_path, capsys):
    t_path, s_path = save_tiny_causal_pair(tmp_path)
    teacher, tok = lk.lm.load_causal_lm(t_path)
    student, s_tok = lk.lm.load_causal_lm(s_path)
    assert "loaded" in capsys.readouterr().out and tok.pad_token_id == tok.eos_token_id
    assert lk.lm.check_same_vocab(teacher, student, tok, s_tok) == len(tok)
    real = lk.lm.real_continuations(tok, TEXTS[:6], 3, 5)
    long_enough = [
        t for t in TEXTS[:6] if len(tok(t, add_special_tokens=False)["input_ids"]) > 3
    ]  # the rest dropped
    assert real.sequences.shape == (len(long_enough), 8) and real.prompt_length == 3 and len(long_enough) >= 3
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    off = lk.lm.distill_step(student, teacher, real, opt, tokenizer=tok)
    on = lk.lm.on_policy_step(
        student, teacher, real.sequences[:, :3], opt, tokenizer=tok, max_new_tokens=5, seed=0
    )
    assert (
        math.isfinite(off["loss"]) and math.isfinite(on["loss"]) and on["generations"].sequences.shape[1] <= 8
    )
    gens = lk.lm.generate(student, real.sequences[:, :3], tokenizer=tok, max_new_tokens=5, seed=1)
    assert lk.lm.sample_divergence(student, teacher, gens).shape == (len(long_enough),)


def test_load_causal_lm_offline_without_a_copy_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    with pytest.raises(lk.hf.CheckpointUnavailable, match="could not be loaded offline") as info:
        lk.lm.load_causal_lm("HuggingFaceTB/SmolLM2-135M-not-a-model", verbose=False)
    assert_clear_labkit_error(info, "an unreachable Hub id")


def test_real_continuations_rejects_texts_too_short(tmp_path):
    t_path, _ = save_tiny_causal_pair(tmp_path)
    _, tok = lk.lm.load_causal_lm(t_path, verbose=False)
    with pytest.raises(ValueError, match="no text has more than prompt_tokens=50") as info:
        lk.lm.real_continuations(tok, ["ab", "c"], 50, 4)
    assert_clear_labkit_error(info, "texts shorter than the prompt")
