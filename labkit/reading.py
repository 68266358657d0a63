"""Reading exercises: questions about what *this run* measured, graded against the records it made.

Every lesson from 02 on ends with one: the learner reads the run's printed results (which arm won, by how much
against the noise, which share of a gain comes from where) and returns the answers from a function; the check
``lk.checks.check_reading(lesson, fn)`` compares them with the records the run made with ``lk.record`` (kept
in the kernel, ``lk.run_records()``). The right answer is therefore the run's own: a smoke run, another seed or
other data can have other verdicts, and the check follows them. A wrong answer gets a hint that points back to
the line to read and names the misreading it recognises (an estimate read as an effect although its interval
includes 0, the sign of a lower-is-better metric, the number of a neighbouring comparison).

Three kinds of question:

- ``Effect``: the verdict of one recorded comparison, ``"gain"``, ``"loss"`` or ``"none"`` (no measurable
  effect), read from the direction of the metric and the 95% interval (the course's verdict rule).
- ``Number``: one recorded number (a difference, a ratio, a share), within the rounding of its printed line.
- ``Which``: the options whose comparison shows a given effect (``"gain"`` unless told), as a list of their
  labels, possibly empty; the options are named records, or every record matching a pattern (one per domain,
  per label budget, per method), so a run that records other domains asks about those.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._grading import _REFUSED, ExerciseError, _call, _codes, _public_name

__all__ = ["READINGS", "Effect", "Number", "Which", "check_reading", "questions"]

EFFECTS = ("gain", "loss", "none")
_ALIASES = {
    "a gain": "gain",
    "a loss": "loss",
    "no measurable effect": "none",
    "no effect": "none",
    "no measurable difference": "none",
}
_SHOWS = {"gain": "a gain", "loss": "a loss", "none": "no measurable effect"}
RECORDED = "the **Recorded results** cell"
_WITH_TORCH = "Write the computation yourself with torch (torch and torch.nn.functional are fine)."
_READ_IT = "Read the answers off the run's printed results (or from its records, lk.run_records())."


@dataclass(frozen=True)
class _OneRecord:
    key: str
    question: str
    record: str
    where: str = RECORDED


class Effect(_OneRecord):
    """The verdict of the recorded comparison ``record``: ``"gain"``, ``"loss"`` or ``"none"``."""

    def answer_form(self) -> str:
        return '"gain", "loss" or "none"'


class Number(_OneRecord):
    """The recorded number ``record`` (its value, in its unit), within the rounding of its printed line."""

    def answer_form(self) -> str:
        return "a number"


@dataclass(frozen=True)
class Which:
    """The labels of the options whose recorded comparison shows ``effect``. ``options`` maps a label to a record
    name; or ``pattern`` (a regular expression with one group, the label) picks every record it matches."""

    key: str
    question: str
    options: Mapping[str, str] = field(default_factory=dict)
    pattern: str = ""
    effect: str = "gain"
    where: str = RECORDED

    def answer_form(self) -> str:
        return "a list of labels, empty if none"

    def choices(self, records: Mapping[str, dict]) -> dict[str, str]:
        if self.options:
            return dict(self.options)
        found = {}
        for name in records:
            m = re.fullmatch(self.pattern, name)
            if m:
                found[m.group(1)] = name
        return found


Question = Effect | Number | Which

# ---------------------------------------------------------------------------------------- the lessons' questions
_FEW = "few labels: KD + transfer set vs scratch"
READINGS: dict[str, tuple[Question, ...]] = {
    "02_response_kd": (
        Which(
            "beat_scratch",
            "Which distilled students beat their from-scratch twin by more than the noise?",
            options={
                "few labels + transfer set": _FEW,
                "few labels, no transfer set": "few labels: KD, no transfer set vs scratch",
                "all labels": "all labels: KD vs scratch",
                "tiny student": "tiny student: KD vs scratch",
            },
            where="sections *Few labels and an unlabelled transfer set* and *Does the gain hold in other settings?*",
        ),
        Number(
            "points_from_unlabelled",
            f"Of the points by which KD with the transfer set beats scratch (`{_FEW}`), how many come from the "
            "unlabelled images, i.e. from adding the transfer set to KD?",
            "few labels: KD + transfer set vs KD, no transfer set",
            where="section *Few labels and an unlabelled transfer set*",
        ),
        Effect(
            "calibration",
            "What did distillation do to calibration (ECE), as the verdict rule reads it?",
            "KD vs scratch, ECE",
            where="section *Distilled student vs its from-scratch twin*",
        ),
    ),
    "03_feature_kd": (
        Which(
            "beat_logit_kd",
            "Which feature terms beat plain logit KD (not scratch) by more than the noise?",
            options={"attention": "attention vs logit KD", "hints": "hints vs logit KD"},
            where="section *What the feature term adds*",
        ),
        Effect(
            "attention_vs_scratch",
            "Attention transfer against scratch: gain, loss or no measurable effect?",
            "attention vs scratch",
            where="section *The comparison: same initial weights, steps and optimiser*",
        ),
        Number(
            "hint_cost",
            "How many times logit KD's wall time did a run with hints take?",
            "hints: wall time / logit KD",
            where="section *The comparison: same initial weights, steps and optimiser*",
        ),
    ),
    "04_transformer_kd": (
        Effect(
            "kd_without_transfer",
            "Logit KD on the labelled sentences only, against no KD: gain, loss or no measurable effect?",
            "logit KD vs no KD",
        ),
        Effect(
            "soft_vs_hard_on_transfer",
            "On the unlabelled sentences, the teacher's soft targets against its hard pseudo-labels?",
            "logit KD + transfer vs pseudo-labels + transfer",
        ),
        Number(
            "speedup",
            "How many times faster per batch is the student than the teacher?",
            "student speed-up per batch",
            where="section *Accuracy, size and speed in one table*",
        ),
    ),
    "05_pseudo_label_kd": (
        Which(
            "budgets_where_labels_help",
            "At which label budgets (labels per class) did the teacher's hard labels beat true labels only by "
            "more than the noise? Give the numbers.",
            pattern=r"(\d+) labels per class: \+ teacher hard labels vs true only",
            where="section *The label-budget curve*",
        ),
        Effect(
            "soft_vs_hard",
            "Soft targets against hard labels, each tuned on validation: gain, loss or no measurable effect?",
            "soft targets vs hard labels (each tuned on validation)",
            where="section *Tuning each recipe on the validation split*",
        ),
        Effect(
            "student_vs_teacher",
            "The hard-label student against its own teacher?",
            "hard-label student vs its teacher",
        ),
    ),
    "06_cross_domain_kd": (
        Which(
            "target_transfer_helps",
            "In which target domains did KD on the unlabelled *target* text beat training on source labels "
            "only by more than the noise? Give the domain names.",
            pattern=r"(\w+): KD, target transfer set vs source labels only",
            where="section *Five students per target domain*",
        ),
        Which(
            "source_transfer_helps",
            "And in which did KD on unlabelled *source* text (no target text at all) beat it?",
            pattern=r"(\w+): KD, source transfer set vs source labels only",
            where="section *Five students per target domain*",
        ),
    ),
    "07_ensemble_distillation": (
        Which(
            "fusion_beats_best_member",
            "Which fused ensemble targets beat distilling the best member alone by more than the noise?",
            options={
                "avg. probs": "KD, avg. probs vs KD, best member",
                "avg. logits": "KD, avg. logits vs KD, best member",
            },
            where="section *Three ways to fuse K teachers*",
        ),
        Effect(
            "student_vs_ensemble",
            "The student distilled from the ensemble, against the ensemble itself?",
            "KD from the ensemble vs the ensemble",
            where="section *Distilling the ensemble into one student*",
        ),
        Number(
            "share_recovered",
            "Which share (in %) of the ensemble's lead over scratch did the distilled student recover?",
            "share of the ensemble's lead over scratch recovered",
            where="section *Distilling the ensemble into one student*",
        ),
    ),
    "08_multi_teacher_kd": (
        Which(
            "weightings_beat_uniform",
            "Which ways of weighting the two experts beat uniform weights by more than the noise?",
            pattern=r"experts, (\w+) weights vs uniform",
            where="section *Five ways to weight the teachers*",
        ),
        Effect(
            "experts_vs_best_expert",
            "The student of both experts (best weighting) against the student of the best single expert?",
            "two experts (best weighting) vs best single expert",
            where="section *Distilling: one student, many teachers*",
        ),
        Effect(
            "experts_vs_generalist",
            "The student of both experts against a student of the generalist teacher?",
            "two experts (best weighting) vs KD: generalist",
            where="section *Distilling: one student, many teachers*",
        ),
    ),
    "09_language_model_kd": (
        Effect(
            "token_kd_vs_ce",
            "Token-level KD (forward KL) against the CE student, on test NLL (lower is better)?",
            "token-level KD (forward KL) vs CE, test NLL",
            where="section *5 · Token-level KD against a cross-entropy student*",
        ),
        Effect(
            "reverse_kl_diversity",
            "Reverse against forward KL, on the entropy of the student's own samples (its diversity)?",
            "reverse vs forward KL, entropy of own samples",
            where="section *6 · In generations: diversity against quality*",
        ),
        Effect(
            "on_policy",
            "On-policy against off-policy KD, on the KL to the teacher on the student's own samples?",
            "on-policy vs off-policy KD, KL to teacher on own samples",
            where="section *8 · On-policy against off-policy KD*",
        ),
    ),
    "10_multi_teacher_lm": (
        Effect(
            "one_vs_each",
            "One student of all the experts against a student of each expert, on test NLL?",
            "one student of the experts (routed) vs a student of each, test NLL",
            where="section *3 · One student of many teachers*",
        ),
        Effect(
            "routed_vs_uniform",
            "Routed expert weights against uniform weights?",
            "routed vs uniform expert weights, test NLL",
            where="section *3 · One student of many teachers*",
        ),
        Number(
            "expert_gain",
            "By how many nats per character is an expert better than the teacher on its own domain?",
            "expert gain over the teacher on its own domain",
            where="section *1 · The text, the teacher and its domain experts*",
        ),
    ),
    "11_capstone": (
        Which(
            "beat_no_teacher",
            "Which methods beat the student without a teacher (ce) by more than the noise, with few labels and "
            "a transfer set?",
            pattern=r"(\w+) vs no teacher \(ce\), few labels \+ transfer set",
            where="section *4 · The comparison, on the test split*",
        ),
        Effect(
            "student_vs_teacher",
            "The best student against its teacher?",
            "best student vs teacher",
        ),
        Number(
            "speedup",
            "How many times faster per batch is the student than the teacher?",
            "student speed-up per batch",
        ),
    ),
}


def questions(lesson: str) -> tuple[Question, ...]:
    """The reading questions of ``lesson`` (a notebook's name without ``.ipynb``, e.g. ``"02_response_kd"``)."""
    if lesson not in READINGS:
        raise ValueError(f"lesson must be one of {sorted(READINGS)}, got {lesson!r}.")
    return READINGS[lesson]


# --------------------------------------------------------------------------------------------------- truth
def _record(records: Mapping[str, dict], name: str, lesson: str) -> dict:
    if name not in records:
        raise ExerciseError(
            f"check_reading: this kernel holds no record `{name}`, so there is nothing to grade your reading "
            f"against. Run the lesson's cells above first (Run > Run All Above): {lesson}'s records are made "
            "by its `lk.record` lines."
        )
    return records[name]


def _truth(q: Question, records: Mapping[str, dict], lesson: str) -> Any:
    """What this run recorded for ``q``."""
    if isinstance(q, Effect):
        return _record(records, q.record, lesson)["effect"]
    if isinstance(q, Number):
        return float(_record(records, q.record, lesson)["value"])
    choices = q.choices(records)
    if not choices:
        raise ExerciseError(
            f"check_reading: this kernel holds no record for `{q.key}` ({q.question}). Run the lesson's cells "
            "above first (Run > Run All Above)."
        )
    return sorted(
        label for label, name in choices.items() if _record(records, name, lesson)["effect"] == q.effect
    )


def _tolerance(value: float) -> float:
    """Half a unit of the printed line's last digit, with room: verdicts print 2 decimals, numbers 4 digits."""
    digits = 10 ** (math.floor(math.log10(abs(value))) - 3) if value else 0.0
    return max(0.006, 0.6 * digits)


# --------------------------------------------------------------------------------------------- the answers
def _as_effect(key: str, value: Any) -> str:
    if isinstance(value, str):
        word = _ALIASES.get(value.strip().lower(), value.strip().lower())
        if word in EFFECTS:
            return word
    raise ExerciseError(
        f'check_reading: {key!r} must be "gain", "loss" or "none" (no measurable effect), got {value!r}.'
    )


def _as_number(key: str, value: Any) -> float:
    try:
        number = float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not math.isfinite(number):
        raise ExerciseError(f"check_reading: {key!r} must be a number, got {value!r}.")
    return number


def _as_labels(key: str, value: Any, allowed: list[str]) -> list[str]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ExerciseError(
            f"check_reading: {key!r} must be a list of labels (an empty list when none), got {value!r}; "
            f"the labels are {allowed}."
        )
    labels = [str(v).strip() for v in value]
    unknown = [v for v in labels if v not in allowed]
    if unknown:
        raise ExerciseError(f"check_reading: {key!r}: {unknown} not among the labels {allowed}.")
    return sorted(set(labels))


def _line(name: str) -> str:
    return f"`recorded  {name}: ...`"


def _effect_hint(q: Effect, answer: str, rec: dict) -> str:
    truth, value, unit = rec["effect"], rec["value"], rec.get("unit", "")
    better = rec.get("better", "higher")
    low, high = rec.get("low"), rec.get("high")
    interval = f"{low:+.2f} to {high:+.2f}" if low is not None else "none (one seed)"
    if truth == "none":
        why = (
            f"the estimate is {value:+.2f} {unit}, but an effect counts only when the whole 95% interval "
            f"({interval}) lies on one side of 0"
        )
    elif answer == "none":
        why = f"its 95% interval ({interval}) does not include 0: read on which side of 0 it lies"
    else:
        why = (
            f"the difference is {rec.get('a', 'A')} minus {rec.get('b', 'B')} ({value:+.2f} {unit}), and for "
            f"{rec.get('metric', 'this metric')} {better} is better: a difference below 0 is "
            f"{'a gain' if better == 'lower' else 'a loss'} here"
        )
    return f"{q.key}: not {answer!r}: {why}. Read {q.where}, the line {_line(q.record)}."


def _number_hint(q: Number, answer: float, rec: dict, records: Mapping[str, dict]) -> str:
    value, unit = float(rec["value"]), rec.get("unit", "")
    tol = _tolerance(value)
    if abs(answer + value) <= tol and value:
        why = "the sign: a difference is the first arm minus the second"
    elif value and (abs(answer * 100 - value) <= tol or abs(answer / 100 - value) <= tol):
        why = f"the unit: the record is in {unit or 'its own unit'}, read it as printed"
    else:
        other = next(
            (
                n
                for n, r in records.items()
                if n != q.record
                and isinstance(r.get("value"), (int, float))
                and abs(r["value"] - answer) <= tol
            ),
            None,
        )
        why = (
            f"{answer:g} is what the run recorded as `{other}`, another comparison"
            if other
            else "that is not the number this run recorded"
        )
    return f"{q.key}: not {answer:g}: {why}. Read {q.where}, the line {_line(q.record)}."


def _which_hint(q: Which, answer: list[str], truth: list[str], records: Mapping[str, dict]) -> str:
    choices = q.choices(records)
    notes = []
    for label in sorted(set(answer) - set(truth)):
        rec = records[choices[label]]
        if rec["effect"] == "none":
            notes.append(
                f"{label!r}: its estimate is {rec['value']:+.2f} {rec.get('unit', '')}, but its 95% interval "
                f"({rec['low']:+.2f} to {rec['high']:+.2f}) includes 0"
                if rec.get("low") is not None
                else f"{label!r}: one seed, no interval: no measurable effect"
            )
        else:
            notes.append(
                f"{label!r}: the verdict of its line is {_SHOWS[rec['effect']]}, not {_SHOWS[q.effect]}"
            )
    for label in sorted(set(truth) - set(answer)):
        notes.append(f"{label!r} is missing: read its line again, on which side of 0 its interval lies")
    lines = ", ".join(_line(choices[label]) for label in sorted(set(answer) ^ set(truth)))
    return f"{q.key}: {'; '.join(notes)}. Read {q.where}, the lines {lines}."


# ---------------------------------------------------------------------------------------------- the check
def check_reading(lesson: str, fn: Callable[[], Mapping[str, Any]]) -> None:
    """Grade ``fn()``, the learner's answers to ``lesson``'s reading questions (a dict: question key ->
    answer), against the records this run made (``lk.run_records()``); raise ``ExerciseError`` naming every
    wrong answer with a hint that points back to the line to read.

    The answers are the learner's to read off the printed results: ``fn`` may compute them from the run's
    records (that is reading them), but not with this module's own answer (refused, like every check's
    reference)."""
    from .nbtools import run_records

    qs = questions(lesson)
    name = "check_reading"
    refused = {id(code): (_public_name(_truth.__module__, "_truth"), code) for code in _codes(_truth)}
    token = _REFUSED.set(refused)
    try:
        answers = _call(name, fn, ())
    except ExerciseError as err:
        raise ExerciseError(str(err).replace(_WITH_TORCH, _READ_IT)) from None
    finally:
        _REFUSED.reset(token)
    keys = [q.key for q in qs]
    if not isinstance(answers, Mapping):
        raise ExerciseError(f"{name}: return a dict with the keys {keys}, got {type(answers).__name__}.")
    missing = [k for k in keys if k not in answers]
    unknown = [k for k in answers if k not in keys]
    if unknown:
        raise ExerciseError(f"{name}: {unknown} are not questions of {lesson}; the keys are {keys}.")
    if missing:
        raise ExerciseError(
            f"{name}: answer every question; missing "
            + "; ".join(f"{k!r} ({q.question} {q.answer_form()})" for k, q in zip(keys, qs) if k in missing)
            + "."
        )
    records = run_records()
    wrong = []
    for q in qs:
        truth = _truth(q, records, lesson)
        if isinstance(q, Effect):
            answer = _as_effect(q.key, answers[q.key])
            if answer != truth:
                wrong.append(_effect_hint(q, answer, records[q.record]))
        elif isinstance(q, Number):
            answer = _as_number(q.key, answers[q.key])
            if abs(answer - truth) > _tolerance(truth):
                wrong.append(_number_hint(q, answer, records[q.record], records))
        else:
            answer = _as_labels(q.key, answers[q.key], sorted(q.choices(records)))
            if answer != truth:
                wrong.append(_which_hint(q, answer, truth, records))
    if wrong:
        raise ExerciseError(
            f"{name}: {len(wrong)} of {len(qs)} answers do not match this run's records.\n- "
            + "\n- ".join(wrong)
        )
    print(f"OK  {name}: your {len(qs)} answers match what this run recorded ({lesson}).")
