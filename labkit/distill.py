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
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from ._validate import check_choice
from .byod import compare_objectives
from .config import PROFILES, get_profile
from .data import DATASETS, load_dataset
from .models import MODELS, build_model
from .nbtools import hardware
from .training import METHODS, TrainConfig, is_main_process, launched_processes, train_or_load


def _csv(kind: type, text: str) -> tuple:
    try:
        values = tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one value")
    return values


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
    ap.add_argument("--methods", type=lambda t: _csv(str, t), default=("ce", "kd"), help="e.g. ce,kd,hint")
    ap.add_argument(
        "--seeds",
        type=lambda t: _csv(int, t),
        help="e.g. 0,1,2 (default: the profile's; one seed gives no verdict)",
    )
    ap.add_argument("--teacher", choices=sorted(MODELS), help="teacher family (default: the profile's)")
    ap.add_argument("--student", choices=sorted(MODELS), help="student family (default: the profile's)")
    ap.add_argument("--epochs", type=int, help="student epochs (default: the profile's)")
    ap.add_argument("--teacher-epochs", type=int, help="teacher epochs (default: the profile's)")
    ap.add_argument("--batch-size", type=int, help="global batch size, shared by all processes")
    ap.add_argument("--lr", type=float)
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--alpha", type=float, default=0.9)
    ap.add_argument("--max-train", type=int, help="cap on training images (class-stratified)")
    ap.add_argument("--max-test", type=int)
    ap.add_argument("--augment", action=argparse.BooleanOptionalAction, help="crop + flip for the teacher")
    ap.add_argument(
        "--device", default="auto", help="auto | cpu | cuda (under a launcher: set by the launcher)"
    )
    ap.add_argument("--out", type=Path, help="write the runs and the table here as JSON")
    return ap


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
    for m in args.methods:  # before any data is loaded or teacher trained
        check_choice(m, METHODS, "method")
    main = is_main_process()
    data = load_dataset(
        P.dataset, data_dir=args.data_dir, max_train=P.max_train, max_test=P.max_test, verbose=main
    )
    if main:
        print(f"labkit.distill: {data.name}, {len(data.train):,} train / {len(data.test):,} test images; "
              f"{launched_processes()} process(es); {hardware()}")  # fmt: skip
    t_family = args.teacher or P.teacher_model
    teacher = build_model(
        t_family, data.in_shape, data.num_classes, **(P.teacher_kwargs if t_family == P.teacher_model else {})
    )
    common = dict(batch_size=P.batch_size, lr=P.lr, device=args.device, progress=main)
    # seed 0 and the notebooks' settings: the teacher of lessons 01-03 comes from the same cache entry
    teacher_cfg = TrainConfig(epochs=P.teacher_epochs, seed=0, augment=P.augment, **common)
    train_or_load(teacher, data.train, name="teacher", config=teacher_cfg)
    s_family = args.student or P.student_model
    s_kwargs = P.student_kwargs if s_family == P.student_model else {}
    cfg = TrainConfig(epochs=P.student_epochs, temperature=args.temperature, alpha=args.alpha, **common)
    cmp, report = compare_objectives(
        teacher,
        lambda: build_model(s_family, data.in_shape, data.num_classes, **s_kwargs),
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
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
            print(f"wrote {args.out}")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    try:
        run(args)
    except (ValueError, FileNotFoundError) as err:  # bad input: one sentence, no traceback
        ap.error(str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
