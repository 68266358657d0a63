"""Distil from the command line, on one device or on several GPUs.

    python -m labkit.distill --dataset fashion_mnist --methods ce,kd          # one process
    accelerate launch --num_processes 4 -m labkit.distill --profile full      # one process per GPU
    torchrun --nproc_per_node 2 -m labkit.distill --profile smoke             # the same without accelerate's CLI

Trains the profile's teacher (or loads it from the cache that the notebooks share), then one student per method
from the same initial weights for every seed, and prints ``lk.compare_objectives``'s table: accuracy, agreement
with the teacher, calibration, size and latency, and the course's verdict on each method against training
without a teacher (``lk.Comparison.verdict``). ``--out`` writes the runs, the table and the verdicts as JSON. Under a launcher
every process trains its share of each batch (``TrainConfig(accelerate=None)`` notices the launcher) and only the
process of rank 0 prints and writes files.

Every model is seeded: the teacher with seed 0, as the notebooks build it (so a run gives the teacher they load from
the shared cache, whatever ran before), each student by ``lk.compare`` with its run's seed. The methods are those that
distil from one teacher (``CLI_METHODS``; ``multi`` needs several, lesson 08). Bad arguments, including an ``--out``
that could not be written, are refused in one line before any data is loaded or model trained.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import sys
from pathlib import Path

from .byod import compare_objectives
from .config import PROFILES, get_profile
from .data import DATASETS, load_dataset
from .methods import MultiTeacher
from .models import MODELS, build_model
from .nbtools import hardware
from .training import (
    METHODS,
    TrainConfig,
    fit,
    get_device,
    is_main_process,
    launched_processes,
    seed_everything,
    train_or_load,
)

# the methods that distil from the one teacher this command trains; "multi" needs several (lk.TeacherEnsemble)
CLI_METHODS = tuple(sorted(m for m, cls in METHODS.items() if not issubclass(cls, MultiTeacher)))
TEACHER_SEED = (
    0  # the notebooks' SEED: lessons 01-03 load the teacher this command trains from the same cache entry
)


def _csv(kind: type, text: str) -> tuple:
    try:
        values = tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one value, got {text!r}")
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"each value once, got {text!r}")
    return values


def _methods(text: str) -> tuple[str, ...]:
    methods = _csv(str, text)
    for m in methods:
        if m not in CLI_METHODS:
            what = (f"method {m!r} needs several teachers (lk.TeacherEnsemble, lesson 08) and does not run from the "
                    "command line" if m in METHODS else f"unknown method {m!r}")  # fmt: skip
            raise argparse.ArgumentTypeError(f"{what}; choose from: {', '.join(CLI_METHODS)}")
    return methods


def _seeds(text: str) -> tuple[int, ...]:
    seeds = _csv(int, text)
    if any(not 0 <= s < 2**32 for s in seeds):
        raise argparse.ArgumentTypeError(f"seeds must be integers in [0, 2**32), got {text!r}")
    return seeds


def _int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return parse


def _number(low: float, high: float | None = None, above: bool = False):
    allowed = f"a finite number {'>' if above else '>='} {low:g}" + (
        f" and <= {high:g}" if high is not None else ""
    )

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if (
            not math.isfinite(value)
            or value < low
            or (above and value == low)
            or (high is not None and value > high)
        ):
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}")
        return value

    return parse


def check_writable(path: Path, name: str = "--out") -> None:
    """Refuse, before any training, an output file that could not be written: its folder (or the first one of its
    parents that exists) must be a writable folder, and the path itself must not be a folder."""
    if path.is_dir():
        raise ValueError(f"{name} {path} is a folder; give a file name, e.g. {path / 'results.json'}.")
    parent = path.parent.resolve()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{name} {path} cannot be written: {parent} is a file, not a folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{name} {path} cannot be written: no permission to write in {parent}.")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m labkit.distill",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--profile", default="default", choices=sorted(PROFILES), help="sizes and epochs (default: default)"
    )
    ap.add_argument("--dataset", choices=sorted(DATASETS), help="overrides the profile's dataset")
    ap.add_argument(
        "--data-dir", help="a local copy of the datasets (else download, else the digits fallback)"
    )
    ap.add_argument(
        "--methods",
        type=_methods,
        default=("ce", "kd"),
        help=f"comma-separated, from: {', '.join(CLI_METHODS)} (default: ce,kd)",
    )
    ap.add_argument(
        "--seeds",
        type=_seeds,
        help="e.g. 0,1,2 (default: the profile's; one seed gives no verdict)",
    )
    ap.add_argument("--teacher", choices=sorted(MODELS), help="teacher family (default: the profile's)")
    ap.add_argument("--student", choices=sorted(MODELS), help="student family (default: the profile's)")
    ap.add_argument("--epochs", type=_int_at_least(1), help="student epochs (default: the profile's)")
    ap.add_argument("--teacher-epochs", type=_int_at_least(1), help="teacher epochs (default: the profile's)")
    ap.add_argument("--batch-size", type=_int_at_least(1), help="global batch size, shared by all processes")
    ap.add_argument("--lr", type=_number(0, above=True), help="learning rate (default: the profile's)")
    ap.add_argument("--temperature", type=_number(0, above=True), default=4.0)
    ap.add_argument("--alpha", type=_number(0, 1), default=0.9, help="weight of the KD term, in [0, 1]")
    ap.add_argument("--max-train", type=_int_at_least(1), help="cap on training images (class-stratified)")
    ap.add_argument("--max-test", type=_int_at_least(1))
    ap.add_argument("--augment", action=argparse.BooleanOptionalAction, help="crop + flip for the teacher")
    ap.add_argument(
        "--device", default="auto", help="auto | cpu | cuda (under a launcher: set by the launcher)"
    )
    ap.add_argument("--out", type=Path, help="write the runs and the table here as JSON")
    return ap


def _dry_run(teacher, make_student, train, methods, cfg: TrainConfig) -> None:
    """One step of every method on four images with a copy of the untrained teacher: a student and a teacher that
    do not fit a method (an MLP has no feature maps for attention transfer; hints pair stages one to one) are
    refused now, not after the teacher has trained. The models it builds are thrown away; ``fit`` seeds itself."""
    tiny = train.subset(range(min(4, len(train))))
    step = dataclasses.replace(cfg, steps=1, batch_size=len(tiny), progress=False, accelerate=False)
    for m in methods:
        fit(
            make_student(), tiny, method=m, teacher=None if m == "ce" else copy.deepcopy(teacher), config=step
        )


def run(args: argparse.Namespace) -> dict:
    """Everything after argument parsing; returns what ``--out`` would hold."""
    overrides = {
        k: v
        for k, v in {
            "dataset": args.dataset,
            "teacher_epochs": args.teacher_epochs,
            "student_epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "max_train": args.max_train,
            "max_test": args.max_test,
            "augment": args.augment,
        }.items()
        if v is not None
    }
    P = get_profile(args.profile, **overrides)
    main = is_main_process()
    # everything that can be refused is refused before any data is loaded or teacher trained
    for m in args.methods:  # parser() checks them too; run() may be called with a Namespace of its own
        if m not in CLI_METHODS:
            raise ValueError(
                f"method {m!r} does not run from the command line; choose from: {', '.join(CLI_METHODS)}."
            )
    if main and args.out is not None:
        check_writable(Path(args.out))
    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        raise FileNotFoundError(f"--data-dir {args.data_dir} is not a folder.")
    get_device(args.device)  # a device that does not exist
    common = dict(batch_size=P.batch_size, lr=P.lr, device=args.device, progress=main)
    # the notebooks' teacher settings and seed: the teacher of lessons 01-03 comes from the same cache entry
    teacher_cfg = TrainConfig(epochs=P.teacher_epochs, seed=TEACHER_SEED, augment=P.augment, **common)
    cfg = TrainConfig(epochs=P.student_epochs, temperature=args.temperature, alpha=args.alpha, **common)
    data = load_dataset(
        P.dataset, data_dir=args.data_dir, max_train=P.max_train, max_test=P.max_test, verbose=main
    )
    if main:
        print(f"labkit.distill: {data.name}, {len(data.train):,} train / {len(data.test):,} test images; "
              f"{launched_processes()} process(es); {hardware()}")  # fmt: skip
    t_family = args.teacher or P.teacher_model
    # seeded as the notebooks seed it (lk.seed_everything(SEED), then build_model): the cache key covers the
    # architecture, the data and the config, not the initial weights, so an unseeded teacher would write an entry
    # whose weights depend on whatever drew random numbers before, and every later lesson would load it
    seed_everything(TEACHER_SEED)
    teacher = build_model(
        t_family, data.in_shape, data.num_classes, **(P.teacher_kwargs if t_family == P.teacher_model else {})
    )
    s_family = args.student or P.student_model
    s_kwargs = P.student_kwargs if s_family == P.student_model else {}

    def make_student():
        return build_model(s_family, data.in_shape, data.num_classes, **s_kwargs)

    _dry_run(teacher, make_student, data.train, args.methods, cfg)
    train_or_load(teacher, data.train, name="teacher", config=teacher_cfg)
    cmp, report = compare_objectives(
        teacher,
        make_student,
        data,
        methods=args.methods,
        seeds=args.seeds or P.seeds,
        config=cfg,
    )
    verdicts = [  # the course's verdict rule (labkit.verdicts): each method against training without a teacher
        cmp.verdict(f"student: {m}", "student: ce", metric)
        for m in args.methods
        if m != "ce" and "ce" in args.methods
        for metric in ("accuracy", "ece")
    ]
    result = {
        "dataset": data.name,
        "source": data.source,
        "profile": P.name,
        "processes": launched_processes(),
        "hardware": hardware(),
        "teacher": t_family,
        "student": s_family,
        "config": dataclasses.asdict(cfg),
        "runs": json.loads(cmp.runs.to_json(orient="records")),
        "table": json.loads(report.reset_index().to_json(orient="records")),
        "verdicts": [v.to_dict() for v in verdicts],
    }
    if main:
        print(report.to_string())
        for v in verdicts:
            print(f"{v.a} vs {v.b}: {v}")
        if args.out is not None:
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result, indent=1, default=str) + "\n")
            print(f"wrote {out}")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    try:
        run(args)
    except (
        ValueError,
        OSError,
    ) as err:  # bad input (a missing or unwritable path too): one sentence, no traceback
        ap.error(str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
