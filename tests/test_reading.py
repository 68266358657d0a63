"""The reading exercises (labkit/reading.py): every lesson from 02 on asks the learner to read its own run, and
``lk.checks.check_reading`` grades the answers against the records that run made, whatever they are: the recorded
default runs (results/default/), the same runs with other verdicts, and the misreadings it must name."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import nbformat
import pytest
from conftest import assert_clear_labkit_error

import labkit as lk
from labkit import reading
from labkit.checks import ExerciseError

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb") if int(p.name[:2]) >= 2)


def recorded(lesson: str) -> dict[str, dict]:
    return json.loads((ROOT / "results" / "default" / f"{lesson}.json").read_text())["records"]


def truth(lesson: str, records: dict) -> dict:
    return {q.key: reading._truth(q, records, lesson) for q in reading.questions(lesson)}


def grade(lesson: str, records: dict, answers: dict) -> str:
    """The check's message on ``answers`` against ``records`` ('' when it passes)."""
    lk.use_records(records)
    try:
        lk.checks.check_reading(lesson, lambda: answers)
    except ExerciseError as err:
        return str(err)
    return ""


def test_every_lesson_from_02_has_a_reading_exercise():
    assert sorted(reading.READINGS) == LESSONS


@pytest.mark.parametrize("lesson", LESSONS)
def test_the_notebook_ends_with_its_reading_exercise(lesson):
    nb = nbformat.read(ROOT / "notebooks" / f"{lesson}.ipynb", as_version=4)
    prompt, solution, check = nb.cells[-3:]
    assert re.match(r"\*\*[A-Z] · Reading the run\.\*\*", prompt.source), prompt.source[:80]
    assert check.source.strip() == f'lk.checks.check_reading("{lesson}", my_reading)'
    assert "def my_reading():" in solution.source and "lk.run_records()" in solution.source
    headings = [ln for c in nb.cells if c.cell_type == "markdown" for ln in c.source.splitlines()]
    headings = [ln.lstrip("#").strip() for ln in headings if ln.startswith("## ")]
    for q in reading.questions(lesson):
        assert f"`{q.key}`" in prompt.source and q.question in prompt.source, q.key
        for section in re.findall(r"\*([^*]+)\*", q.where.replace("**Recorded results**", "")):
            assert any(h.startswith(section) for h in headings), f"{lesson}: no section {section!r}"


@pytest.mark.parametrize("lesson", LESSONS)
def test_the_recorded_run_has_every_record_its_questions_read(lesson, capsys):
    records = recorded(lesson)
    lk.use_records(records)
    answers = truth(lesson, records)
    lk.checks.check_reading(lesson, lambda: answers)
    assert capsys.readouterr().out.startswith("OK  check_reading: ")
    for q in reading.questions(lesson):
        if isinstance(q, reading.Which):
            assert q.choices(records), f"{lesson}: {q.key} matches no record"


def _flipped(records: dict) -> dict:
    """The same records with every verdict turned (gain -> none -> loss -> gain) and every value moved."""
    out = copy.deepcopy(records)
    turn = {"gain": "none", "none": "loss", "loss": "gain"}
    for rec in out.values():
        rec["value"] = rec["value"] * 1.5 + 1.0
        if "effect" in rec:
            rec["effect"] = turn[rec["effect"]]
    return out


@pytest.mark.parametrize("lesson", LESSONS)
def test_the_check_follows_the_run_not_one_answer_key(lesson):
    """Another run with other verdicts: the recorded run's answers fail on every question, the new run's pass."""
    records, other = recorded(lesson), _flipped(recorded(lesson))
    before, after = truth(lesson, records), truth(lesson, other)
    assert grade(lesson, other, after) == ""
    message = grade(lesson, other, before)
    changed = [k for k in before if before[k] != after[k]]
    assert changed and f"{len(changed)} of {len(before)} answers" in message, message
    for key in changed:
        assert f"- {key}: " in message


EFFECT_QUESTIONS = [
    (lesson, q) for lesson in LESSONS for q in reading.questions(lesson) if isinstance(q, reading.Effect)
]


@pytest.mark.parametrize(
    "lesson, q", EFFECT_QUESTIONS, ids=[f"{lesson}-{q.key}" for lesson, q in EFFECT_QUESTIONS]
)
def test_a_wrong_verdict_gets_the_hint_for_that_misreading(lesson, q):
    records = recorded(lesson)
    rec, answers = records[q.record], truth(lesson, records)
    for wrong in sorted(set(reading.EFFECTS) - {rec["effect"]}):
        message = grade(lesson, records, {**answers, q.key: wrong})
        assert f"{q.key}: not '{wrong}'" in message and f"`recorded  {q.record}: ...`" in message, message
        if rec["effect"] == "none":
            assert "lies on one side of 0" in message, message
        elif wrong == "none":
            assert "does not include 0" in message, message
        else:
            assert f"{rec['better']} is better" in message, message


def test_a_lower_is_better_gain_read_as_a_loss_is_told_the_direction():
    records = recorded("02_response_kd")  # KD vs scratch, ECE: -9.46 points, a gain (lower is better)
    assert records["KD vs scratch, ECE"]["better"] == "lower"
    records["KD vs scratch, ECE"].update(effect="gain", value=-9.46, low=-10.4, high=-8.5)
    message = grade("02_response_kd", records, {**truth("02_response_kd", records), "calibration": "loss"})
    assert "for ece lower is better: a difference below 0 is a gain here" in message, message


def test_an_estimate_read_as_an_effect_is_told_about_the_interval():
    records = recorded("02_response_kd")
    records["tiny student: KD vs scratch"].update(effect="none", value=3.08, low=-1.21, high=7.37)
    answers = truth("02_response_kd", records)
    message = grade(
        "02_response_kd", records, {**answers, "beat_scratch": [*answers["beat_scratch"], "tiny student"]}
    )
    assert (
        "'tiny student': its estimate is +3.08 points, but its 95% interval (-1.21 to +7.37) includes 0"
        in message
    )
    records["all labels: KD vs scratch"].update(effect="gain", value=1.2, low=0.4, high=2.0)
    answers = truth("02_response_kd", records)
    rest = [a for a in answers["beat_scratch"] if a != "all labels"]
    message = grade("02_response_kd", records, {**answers, "beat_scratch": rest})
    assert "'all labels' is missing" in message, message


def test_a_number_from_the_neighbouring_comparison_is_named():
    """The issue's example: "how many of the +10 points come from the unlabelled images?" answered with +10."""
    records = recorded("02_response_kd")
    answers = truth("02_response_kd", records)
    total = records["few labels: KD + transfer set vs scratch"]["value"]
    message = grade("02_response_kd", records, {**answers, "points_from_unlabelled": round(total, 2)})
    assert (
        "what the run recorded as `few labels: KD + transfer set vs scratch`, another comparison" in message
    )
    share = answers["points_from_unlabelled"]
    assert "the sign" in grade("02_response_kd", records, {**answers, "points_from_unlabelled": -share})
    assert grade("02_response_kd", records, {**answers, "points_from_unlabelled": round(share, 2)}) == ""
    assert "the unit" in grade("07_ensemble_distillation", recorded("07_ensemble_distillation"), {
        **truth("07_ensemble_distillation", recorded("07_ensemble_distillation")),
        "share_recovered": recorded("07_ensemble_distillation")["share of the ensemble's lead over scratch recovered"]["value"] / 100,
    })  # fmt: skip


def test_labels_may_be_numbers_and_effects_the_words_the_run_prints():
    records = recorded("05_pseudo_label_kd")
    answers = truth("05_pseudo_label_kd", records)
    as_ints = [int(b) for b in answers["budgets_where_labels_help"]]
    words = {"gain": "a gain", "loss": "a loss", "none": "no measurable effect"}
    assert grade("05_pseudo_label_kd", records, {
        **answers, "budgets_where_labels_help": as_ints, "soft_vs_hard": words[answers["soft_vs_hard"]].upper(),
    }) == ""  # fmt: skip


def test_without_the_runs_records_the_check_says_to_run_the_lesson():
    answers = truth("03_feature_kd", recorded("03_feature_kd"))
    lk.use_records({})
    with pytest.raises(ExerciseError, match=r"Run the lesson's cells above first \(Run > Run All Above\)"):
        lk.checks.check_reading("03_feature_kd", lambda: answers)


def test_the_blank_is_not_implemented_and_labkits_own_answer_is_refused():
    lk.use_records(recorded("04_transformer_kd"))

    def blank():
        raise NotImplementedError()

    with pytest.raises(ExerciseError, match="not implemented yet"):
        lk.checks.check_reading("04_transformer_kd", blank)
    with pytest.raises(ExerciseError) as err:
        lk.checks.check_reading("04_transformer_kd", lambda: truth("04_transformer_kd", lk.run_records()))
    assert "labkit's own lk.reading._truth" in str(err.value) and "Read the answers off" in str(err.value)
    assert "with torch" not in str(err.value)


BAD_ANSWERS = [
    ("not a dict", ["gain"], "return a dict with the keys"),
    ("unknown key", {"speed": 4.5}, "not questions of 04_transformer_kd"),
    ("missing key", {"kd_without_transfer": "none"}, "missing 'soft_vs_hard_on_transfer'"),
    (
        "effect word",
        {"kd_without_transfer": "better"},
        '\'kd_without_transfer\' must be "gain", "loss" or "none"',
    ),
    ("effect type", {"kd_without_transfer": 1}, 'must be "gain", "loss" or "none"'),
    ("number type", {"speedup": "fast"}, "'speedup' must be a number"),
    ("number bool", {"speedup": True}, "'speedup' must be a number"),
    ("number nan", {"speedup": float("nan")}, "'speedup' must be a number"),
]


@pytest.mark.parametrize("what, answer, words", BAD_ANSWERS, ids=[b[0] for b in BAD_ANSWERS])
def test_malformed_answers_get_a_clear_message(what, answer, words):
    records = recorded("04_transformer_kd")
    full = truth("04_transformer_kd", records)
    if isinstance(answer, dict) and what not in ("unknown key", "missing key"):
        answer = {**full, **answer}
    message = grade("04_transformer_kd", records, answer)
    assert words in message, message


def test_malformed_labels_get_a_clear_message():
    records = recorded("03_feature_kd")
    full = truth("03_feature_kd", records)
    assert "must be a list of labels" in grade("03_feature_kd", records, {**full, "beat_logit_kd": "hints"})
    assert "['logits'] not among the labels ['attention', 'hints']" in grade(
        "03_feature_kd", records, {**full, "beat_logit_kd": ["logits"]}
    )


def test_check_reading_refuses_bad_arguments(capsys):
    with pytest.raises(ValueError, match="lesson must be one of") as info:
        lk.checks.check_reading("02", lambda: {})
    assert_clear_labkit_error(info, "lesson")
    with pytest.raises(ExerciseError, match="pass your function itself"):
        lk.checks.check_reading("02_response_kd", {"calibration": "gain"})


def test_record_keeps_the_runs_records_and_use_records_replaces_them(tmp_path):
    lk.use_records({})
    lk.record("a number", 2.5, unit="x")
    assert lk.run_records() == {"a number": {"value": 2.5, "unit": "x", "headline": False}}
    lk.run_records()["a number"]["value"] = 0  # a copy
    assert lk.run_records()["a number"]["value"] == 2.5
    path = ROOT / "results" / "default" / "03_feature_kd.json"
    assert lk.use_records(path) == recorded("03_feature_kd") == lk.run_records()
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    cases = [
        (tmp_path / "absent.json", FileNotFoundError, "does not exist"),
        (bad, ValueError, "is not a results file"),
        (42, TypeError, "source must be a results .json file"),
        ({"x": 1}, ValueError, "every record must be a dict with a 'value'"),
    ]
    for source, error, words in cases:
        with pytest.raises(error, match=words) as info:
            lk.use_records(source)
        assert_clear_labkit_error(info, str(source))
    lk.use_records({})
