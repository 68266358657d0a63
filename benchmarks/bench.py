"""KD Lab benchmarks: measure, in one run on one machine, what the performance issue's ratios claim.

    python benchmarks/bench.py [--quick] [--out results/BENCH.md]

(a) seconds per epoch of a student trained with plain CE, with KD running the teacher(s) every step
    (``cache_teacher=False``) and with KD on cached teacher logits (``cache_teacher=True``), for 1 teacher
    (``method="kd"``) and 3 teachers (``method="multi"``), as ratios to plain training;
(b) labkit's in-memory ``batches`` vs a ``torch.utils.data.DataLoader`` over a per-sample-transform Dataset;
(c) fp32 vs autocast (CUDA autocast needs a GPU; CPU bf16 autocast is measured and labelled as such);
(d) ``torch.compile`` on/off for the student's training step (in a child process with a time limit);
(e) on-device augmentation (``TrainConfig(augment=True)``: random crop + flip as batch tensor ops) vs none.

Data: Fashion-MNIST from ``$LABKIT_DATA_DIR`` when set, else labkit's loader falls back to digits (loudly);
BENCH.md records which. Every number in BENCH.md is formatted from a measurement taken in this run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import labkit as lk  # noqa: E402

STUDENT = ("cnn", {"width": 4, "stages": 3})  # a small CNN student (lesson 03's smoke-size student)
MLP_STUDENT = ("mlp", {"hidden": (16,)})  # the default profile's student of lessons 02 and 05
TEACHER = ("resnet", {"width": 16, "blocks": (1, 1, 1)})  # the default profile's teacher
BATCH = 128
SIZES = {
    "full": {
        "max_train": 10_000,
        "epochs": 4,
        "rounds": 5,
        "steps": 40,
        "compile_steps": 30,
        "compile_timeout": 240,
    },
    "quick": {
        "max_train": 512,
        "epochs": 2,
        "rounds": 1,
        "steps": 5,
        "compile_steps": 3,
        "compile_timeout": 120,
    },
}


# ------------------------------------------------------------------------------------------------ helpers
def build(spec, data, seed: int) -> torch.nn.Module:
    name, kwargs = spec
    torch.manual_seed(seed)
    return lk.build_model(name, data.in_shape, data.num_classes, **kwargs)


def load(max_train: int):
    d = lk.load_dataset("fashion_mnist", max_train=max_train, max_test=256, verbose=True)
    return d


def median_timed(seconds: list[float]) -> float:
    """Median of the epochs after the first (warm-up); the only epoch if there is one."""
    timed = seconds[1:] if len(seconds) > 1 else seconds
    return statistics.median(timed)


def fmt_s(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def fmt_ratio(x: float) -> str:
    return f"{x:.2f}x"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------------------- (a) teacher caching
def _cfg(epochs: int, cache: bool) -> lk.TrainConfig:
    return lk.TrainConfig(
        epochs=epochs, batch_size=BATCH, cache_teacher=cache, progress=False, device="cpu", amp=False
    )


def bench_caching(data, epochs: int, rounds: int) -> dict:
    """Every run is ``lk.fit`` for ``epochs`` epochs. The cheap runs (plain, cached) are repeated in
    ``rounds`` interleaved rounds, in a rotated order, and their timed epochs pooled; the slow uncached runs
    run once."""
    train = data.train
    k = data.num_classes
    teacher = build(TEACHER, data, seed=100)
    teachers = [build(TEACHER, data, seed=100 + i) for i in range(3)]
    runs = {
        "plain CE (no teacher)": ("ce", None, True, True),
        "KD, 1 teacher, run every step": ("kd", teacher, False, False),
        "KD, 1 teacher, cached logits": ("kd", teacher, True, True),
        "KD, 3 teachers, run every step": ("multi", lk.TeacherEnsemble(teachers, k), False, False),
        "KD, 3 teachers, cached logits": ("multi", lk.TeacherEnsemble(teachers, k), True, True),
    }
    # Untimed warm-up: the first fit in a process pays one-off costs (imports, allocator, kernels).
    lk.fit(
        build(STUDENT, data, seed=0), train.subset(range(min(len(train), 4 * BATCH))), config=_cfg(1, True)
    )
    res = {label: {"timed": [], "round_medians": [], "setup": [], "total": []} for label in runs}
    repeated = [label for label, r in runs.items() if r[3]]
    for rnd in range(rounds):
        order = repeated[rnd % len(repeated) :] + repeated[: rnd % len(repeated)]
        if rnd == 0:
            order = list(runs)
        for label in order:
            method, t, cache, _ = runs[label]
            student = build(STUDENT, data, seed=0)
            t0 = time.perf_counter()
            hist = lk.fit(student, train, method=method, teacher=t, config=_cfg(epochs, cache))
            total = time.perf_counter() - t0
            secs = [r["seconds"] for r in hist.records]
            timed = secs[1:] if len(secs) > 1 else secs
            r = res[label]
            r["timed"] += timed
            r["round_medians"].append(statistics.median(timed))
            r["setup"].append(total - sum(secs))  # teacher-logit cache (when cached) and fit's setup
            r["total"].append(total)
            print(
                f"  round {rnd + 1}, {label}: {statistics.median(timed):.3f} s/epoch, setup {r['setup'][-1]:.2f} s"
            )
    out = []
    for label, r in res.items():
        out.append(
            {
                "label": label,
                "epoch_s": statistics.median(r["timed"]),
                "n_epochs": len(r["timed"]),
                "round_medians": r["round_medians"],
                "setup_s": statistics.median(r["setup"]),
                "total_s": statistics.median(r["total"]),
            }
        )
    return {"runs": out, "rounds": rounds}


def paired_ratio(run: dict, plain: dict) -> float:
    """Median over rounds of (this run's median epoch / plain's median epoch in the same round): runs of one
    round are neighbours in time, so a machine that speeds up or slows down between rounds cancels out."""
    pairs = list(zip(run["round_medians"], plain["round_medians"]))
    return statistics.median(a / b for a, b in pairs)


def report_caching(res: dict, epochs: int) -> str:
    runs = res["runs"]
    plain = runs[0]["epoch_s"]
    rows = []
    for r in runs:
        rows.append(
            [
                r["label"],
                fmt_s(r["epoch_s"]),
                str(r["n_epochs"]),
                ", ".join(fmt_s(m) for m in r["round_medians"]),
                fmt_ratio(r["epoch_s"] / plain),
                fmt_ratio(paired_ratio(r, runs[0])),
                fmt_s(r["setup_s"]),
                fmt_ratio(r["total_s"] / runs[0]["total_s"]),
            ]
        )
    text = table(
        [
            "run",
            "s / epoch (median)",
            "timed epochs",
            "median of each round",
            "ratio to plain",
            "ratio to plain, same round (median)",
            "one-off setup s (incl. teacher cache)",
            f"ratio to plain, whole {epochs}-epoch run",
        ],
        rows,
    )
    checks = [  # judged on the same-round ratios (the uncached runs ran in round 1 only: their ratio is round 1's)
        ("cached KD, 1 teacher, within 1.10x of plain", paired_ratio(runs[2], runs[0]), 1.10),
        ("cached KD, 3 teachers, within 1.15x of plain", paired_ratio(runs[4], runs[0]), 1.15),
    ]
    lines = []
    for what, ratio, target in checks:
        verdict = "MET" if ratio <= target else "NOT MET"
        lines.append(f"- Target {what} (per epoch, same-round ratio): **{verdict}** ({ratio:.2f}x).")
    meds = runs[0]["round_medians"]
    if len(meds) > 1:
        lines.append(
            f"- Plain CE's per-round medians span {min(meds):.3f}-{max(meds):.3f} s "
            f"({max(meds) / min(meds):.2f}x): this machine's timing noise. A ratio nearer its target than "
            "that is not conclusive."
        )
    return text + "\n\n" + "\n".join(lines)


# ---------------------------------------------------------------------------- (b) in-memory vs DataLoader
class PerSampleDataset(torch.utils.data.Dataset):
    """torchvision-style: uint8 (H, W) images, converted and normalised one sample at a time
    (``ToTensor`` then ``Normalize``) in ``__getitem__``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean: float, std: float) -> None:
        self.images, self.labels, self.mean, self.std = images, labels, mean, std

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        x = torch.from_numpy(self.images[i]).float().div(255.0).unsqueeze(0)  # ToTensor: (1, H, W) in [0, 1]
        x = (x - self.mean) / self.std  # Normalize
        return x, int(self.labels[i])


def _train_epoch(model, opt, loader) -> None:
    model.train()
    for xb, yb in loader:
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def bench_loader(data, epochs: int) -> dict:
    """For each course student (the CNN and lesson 02's MLP): s / epoch of the same training loop fed by labkit's
    in-memory batches and by a DataLoader over a per-sample-transform Dataset, and of each pipeline alone."""
    train = data.train
    # Undo labkit's standardisation to recover the uint8 images, as a torchvision Dataset would hold them.
    mean, std = raw_stats(train)
    raw = ((train.x[:, 0] * std + mean) * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()
    labels = train.y.numpy()
    ds = PerSampleDataset(raw, labels, mean, std)
    x, y = train.x, train.y

    def in_memory(epoch):
        return lk.batches(x, y, batch_size=BATCH, shuffle=True, seed=epoch)

    def dataloader(epoch):
        g = torch.Generator().manual_seed(epoch)
        return torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=0, generator=g)

    pipes = {"labkit in-memory batches": in_memory, "DataLoader + per-sample transform": dataloader}
    out = {}
    for spec in (STUDENT, MLP_STUDENT):
        state = {}
        for label in pipes:
            model = build(spec, data, seed=0)
            state[label] = (model, torch.optim.AdamW(model.parameters(), lr=2e-3), [], [])
        for e in range(epochs):  # the two pipelines alternate epoch by epoch, so drift hits both alike
            for label, make in pipes.items():
                model, opt, train_s, iter_s = state[label]
                t0 = time.perf_counter()
                _train_epoch(model, opt, make(e))
                train_s.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                for _ in make(e):  # the data pipeline alone, no model
                    pass
                iter_s.append(time.perf_counter() - t0)
        student = f"`{spec[0]}` {spec[1]} ({lk.count_parameters(build(spec, data, 0)):,} parameters)"
        out[student] = {}
        for label, (_, _, train_s, iter_s) in state.items():
            out[student][label] = {"train_s": median_timed(train_s), "iter_s": median_timed(iter_s)}
            print(
                f"  {spec[0]}, {label}: {out[student][label]['train_s']:.3f} s/epoch training, "
                f"{out[student][label]['iter_s']:.3f} s data only"
            )
    return out


def report_loader(res: dict) -> str:
    rows, notes = [], []
    for student, pipes in res.items():
        mem, dl = pipes["labkit in-memory batches"], pipes["DataLoader + per-sample transform"]
        rows += [[student, k, fmt_s(v["train_s"]), fmt_s(v["iter_s"])] for k, v in pipes.items()]
        r_train, r_iter = dl["train_s"] / mem["train_s"], dl["iter_s"] / mem["iter_s"]
        verdict = "MET" if r_train >= 3 else "NOT MET"
        notes.append(
            f"- {student}: speed-up of in-memory batches, training epoch **{r_train:.2f}x**, data pipeline alone "
            f"**{r_iter:.1f}x**. Target in-memory >= 3x (training epoch): **{verdict}**."
        )
    text = table(
        ["student", "pipeline", "s / epoch, training the student", "s / epoch, data only (no model)"], rows
    )
    return (
        text
        + "\n\n"
        + "\n".join(notes)
        + "\n- The pipeline alone is where the two differ; how much of a training epoch it is depends on the "
        "student's own compute: the smaller the student, the larger the share of the per-sample transforms. The "
        "DataLoader uses `num_workers=0` (2 worker processes would compete with training for the cores)."
    )


# ------------------------------------------------------------------------------ (c) fp32 vs autocast
def _step_times(model, x, y, steps: int, ctx) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    times = []
    for i in range(steps + 1):
        xb, yb = x[(i * BATCH) % len(x) :][:BATCH], y[(i * BATCH) % len(y) :][:BATCH]
        t0 = time.perf_counter()
        with ctx():
            loss = F.cross_entropy(model(xb).float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def bench_autocast(data, steps: int) -> dict:
    x, y = data.train.x, data.train.y
    import contextlib

    fp32 = _step_times(build(STUDENT, data, seed=0), x, y, steps, contextlib.nullcontext)
    try:
        bf16 = _step_times(
            build(STUDENT, data, seed=0),
            x,
            y,
            steps,
            lambda: torch.autocast("cpu", dtype=torch.bfloat16),
        )
        err = None
    except Exception as e:  # pragma: no cover - depends on the CPU / build
        bf16, err = None, f"{type(e).__name__}: {e}"
    print(
        f"  CPU step fp32 {fp32 * 1e3:.1f} ms, bf16 autocast "
        + (f"{bf16 * 1e3:.1f} ms" if bf16 else str(err))
    )
    return {"fp32_ms": fp32 * 1e3, "bf16_ms": bf16 * 1e3 if bf16 else None, "error": err}


def report_autocast(res: dict, steps: int) -> str:
    cuda = "measured elsewhere" if torch.cuda.is_available() else "not measured: no GPU on this machine"
    rows = [["CUDA fp32 vs autocast (what `TrainConfig(amp=True)` does)", cuda, cuda, "-"]]
    if res["bf16_ms"] is not None:
        rows.append(
            [
                "CPU fp32 vs CPU bf16 autocast (not used by labkit; for information)",
                f"{res['fp32_ms']:.1f} ms",
                f"{res['bf16_ms']:.1f} ms",
                fmt_ratio(res["fp32_ms"] / res["bf16_ms"]),
            ]
        )
    else:
        rows.append(["CPU bf16 autocast", f"{res['fp32_ms']:.1f} ms", f"failed: {res['error']}", "-"])
    return (
        table(["comparison", "fp32 per training step", "autocast per training step", "speed-up"], rows)
        + f"\n\n- Student training step, batch {BATCH}, median of {steps} steps after one warm-up step."
    )


# ------------------------------------------------------------------------------------- (d) torch.compile
def compile_child(quick: bool) -> None:
    """Run in a child process: eager vs ``torch.compile``d training step; prints one JSON line."""
    size = SIZES["quick" if quick else "full"]
    data = load(min(size["max_train"], 2048))
    x, y = data.train.x, data.train.y
    steps = size["compile_steps"]
    import contextlib

    eager = _step_times(build(STUDENT, data, seed=0), x, y, steps, contextlib.nullcontext)
    model = build(STUDENT, data, seed=0)
    compiled = torch.compile(model)
    t0 = time.perf_counter()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    loss = F.cross_entropy(compiled(x[:BATCH]), y[:BATCH])
    loss.backward()
    opt.step()
    first = time.perf_counter() - t0
    steady = _step_times(compiled, x, y, steps, contextlib.nullcontext)
    print("RESULT " + json.dumps({"eager_ms": eager * 1e3, "compiled_ms": steady * 1e3, "compile_s": first}))


def bench_compile(quick: bool, timeout: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_compile-child"] + (["--quick"] if quick else [])
    t0 = time.perf_counter()
    import tempfile

    # A fresh inductor cache, so the compile time is a cold compile whatever ran before.
    with tempfile.TemporaryDirectory(prefix="kdlab-inductor-") as cache:
        env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout} s (compile too slow on this CPU)"}
    wall = time.perf_counter() - t0
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {proc.returncode}: {tail[:300]}"}
    res = json.loads(line[len("RESULT ") :])
    res["wall_s"] = wall
    print(f"  compile: {res}")
    return res


def report_compile(res: dict, steps: int) -> str:
    if "error" in res:
        return table(["mode", "per training step"], [["torch.compile", f"failed: {res['error']}"]])
    saved = (res["eager_ms"] - res["compiled_ms"]) / 1e3
    payoff = (
        f"Compilation pays for itself after about {res['compile_s'] / saved:,.0f} steps."
        if saved > 0
        else "The compiled step is not faster here, so compilation never pays for itself on this machine."
    )
    rows = [
        ["eager", f"{res['eager_ms']:.1f} ms", "-", "1.00x"],
        [
            "torch.compile (inductor, default mode)",
            f"{res['compiled_ms']:.1f} ms",
            f"{res['compile_s']:.1f} s",
            fmt_ratio(res["eager_ms"] / res["compiled_ms"]),
        ],
    ]
    return (
        table(["mode", "per training step (median)", "first step (cold compilation)", "speed-up"], rows)
        + f"\n\n- Student forward + backward + AdamW step, batch {BATCH}, median of {steps} steps after the "
        f"first; the child process took {res['wall_s']:.0f} s in all. " + payoff
    )


# ----------------------------------------------------------------------------------------------- main
def bench_augment(data, epochs: int) -> dict:
    """Plain CE epochs without and with ``augment=True`` (alternating runs, median of epochs 2..n)."""
    res = {"none": [], "crop + flip on the device": []}
    for _ in range(2):
        for label, aug in (("none", False), ("crop + flip on the device", True)):
            cfg = lk.TrainConfig(
                epochs=epochs, batch_size=BATCH, augment=aug, progress=False, device="cpu", amp=False
            )
            hist = lk.fit(build(STUDENT, data, seed=0), data.train, config=cfg)
            res[label] += [r["seconds"] for r in hist.records][1:]
    return {k: statistics.median(v) for k, v in res.items()}


def report_augment(res: dict) -> str:
    base = res["none"]
    rows = [[k, fmt_s(v), fmt_ratio(v / base)] for k, v in res.items()]
    return table(["augmentation", "s / epoch", "vs none"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, to check that the script runs")
    ap.add_argument("--out", default=str(ROOT / "results" / "BENCH.md"))
    ap.add_argument("--_compile-child", dest="compile_child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.compile_child:
        compile_child(args.quick)
        return

    size = SIZES["quick" if args.quick else "full"]
    started = time.perf_counter()
    data = load(size["max_train"])
    tr = data.train

    print("(a) teacher caching")
    caching = bench_caching(data, size["epochs"], size["rounds"])
    print("(b) in-memory batches vs DataLoader")
    loader = bench_loader(data, size["epochs"])
    print("(c) fp32 vs autocast")
    amp = bench_autocast(data, size["steps"])
    print("(d) torch.compile")
    comp = bench_compile(args.quick, size["compile_timeout"])
    print("(e) on-device augmentation")
    aug = bench_augment(data, size["epochs"])
    elapsed = time.perf_counter() - started

    t_name, t_kw = TEACHER
    s_name, s_kw = STUDENT
    header = [
        "# KD Lab benchmarks",
        "",
        f"Generated by `python benchmarks/bench.py{' --quick' if args.quick else ''}` (`make bench`) on "
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC. Every number below was measured in that one "
        "run; nothing is typed in.",
        "",
        f"- Machine: {lk.hardware()}; torch threads: {torch.get_num_threads()}; Python "
        f"{platform.python_version()}; device: CPU.",
        f"- Data: **{tr.name}** ({tr.source}){' - FALLBACK, not Fashion-MNIST' if data.fell_back else ''}: "
        f"{len(tr):,} training images of {'x'.join(map(str, data.in_shape))}, {data.num_classes} classes; "
        f"batch size {BATCH}.",
        f"- Student: `{s_name}` {s_kw} ({lk.count_parameters(build(STUDENT, data, 0)):,} parameters); teacher: "
        f"`{t_name}` {t_kw} ({lk.count_parameters(build(TEACHER, data, 0)):,} parameters, untrained weights: "
        "speed does not depend on them). 3 teachers = `lk.TeacherEnsemble` of three such teachers, uniform "
        "weighting.",
        f"- Whole benchmark: {elapsed:.0f} s wall-clock{' (--quick sizes: not meaningful)' if args.quick else ''}.",
        "",
    ]
    sections = [
        "## (a) Teacher caching: seconds per training epoch",
        "",
        f"Each run is `lk.fit` for {size['epochs']} epochs; its epochs 2-{size['epochs']} are timed (epoch 1 is "
        "warm-up), from `History.records[...]['seconds']`. Plain and cached runs are repeated in "
        f"{size['rounds']} interleaved rounds (rotated order) and the s / epoch column is the median of all "
        "their timed epochs; the slow uncached runs ran once (round 1). The targets are judged on the "
        "same-round ratio: each run's median epoch over plain CE's median epoch of the same round, median over "
        "rounds, so that the machine's drift between rounds cancels. The one-off setup (mostly computing "
        "the cached teacher logits once, before epoch 1; median over rounds) is outside the per-epoch time "
        "and shown separately; the last column includes it.",
        "",
        report_caching(caching, size["epochs"]),
        "",
        "## (b) labkit in-memory batches vs torch DataLoader",
        "",
        f"The same AdamW loop over the same {len(tr):,} images, batch {BATCH}, shuffled, for each of the course's two "
        "default students; the two "
        f"pipelines alternate epoch by epoch, median of epochs 2-{size['epochs']}. The Dataset holds uint8 images and converts + normalises each sample in "
        "`__getitem__` (what `ToTensor()` + `Normalize()` do); labkit's batches index pre-normalised tensors.",
        "",
        report_loader(loader),
        "",
        "## (c) fp32 vs autocast",
        "",
        report_autocast(amp, size["steps"]),
        "",
        "## (d) torch.compile",
        "",
        report_compile(comp, size["compile_steps"]),
        "",
        "## (e) On-device augmentation",
        "",
        "Plain CE training of the student without augmentation and with `TrainConfig(augment=True)` (random "
        "crop with 4 pixels of padding + horizontal flip, as whole-batch tensor operations on the training "
        "device: `lk.random_crop_flip`); two alternating runs each, median of their epochs 2 onward. On a GPU "
        "the same operations run on the device, so no CPU-side pipeline feeds the GPU.",
        "",
        report_augment(aug),
        "",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(lk.redact_local_paths("\n".join(header + sections), ROOT))
    print(f"wrote {out} ({elapsed:.0f} s)")


def raw_stats(train) -> tuple[float, float]:
    """The mean and std (in [0, 1] pixel units) labkit standardised ``train`` with. Raw pixels 0 and 1 both
    occur in Fashion-MNIST and digits, so they map to the tensor's min and max: ``z = (r - mean) / std``."""
    lo, hi = float(train.x.min()), float(train.x.max())
    std = 1.0 / (hi - lo)
    return -lo * std, std


if __name__ == "__main__":
    main()
