"""Execute the course's notebooks headless with papermill and record how long each one took.

    python tools/run_course.py --profile smoke notebooks/*.ipynb           # what `make course` runs
    python tools/run_course.py --profile default --record notebooks/02_*.ipynb
        # also store the measured time in notebooks/manifest.json and refresh the README's syllabus table
    python tools/run_course.py --readme-only                                # only refresh the README table

With --record on a non-smoke profile, results/<profile>/<notebook>.md gets a digest of the executed notebook
(prose, tables and printed results with the hardware named) and results/<profile>/<notebook>.json its recorded
key results (the notebook's ``lk.record`` outputs, with hardware, run time and date): the measured numbers the
README and the findings page (--summarize) cite.

Executed copies go to build/<profile>/ (outputs included), timings to build/<profile>/timings.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from labkit.nbtools import RECORD_MIME, describe_record, read_records, redact_local_paths  # noqa: E402

MANIFEST = ROOT / "notebooks" / "manifest.json"
README = ROOT / "README.md"
START, END = "<!-- syllabus:start -->", "<!-- syllabus:end -->"
PROFILES = ("smoke", "default", "full")


def hardware() -> str:
    from labkit.nbtools import hardware as hw

    return hw()


def run(notebooks: list[Path], profile: str, record: bool) -> int:
    import papermill as pm

    out_dir = ROOT / "build" / profile
    out_dir.mkdir(parents=True, exist_ok=True)
    for var in ("LABKIT_DATA_DIR", "LABKIT_CACHE_DIR"):  # notebooks run in notebooks/: pin relative paths
        if os.environ.get(var):
            os.environ[var] = str(Path(os.environ[var]).expanduser().resolve())
    timings, failed, machine = {}, [], hardware()
    print(f"KD Lab course, profile {profile!r}, on {machine}")
    for nb in notebooks:
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(
                str(nb),
                str(out_dir / nb.name),
                parameters={"PROFILE": profile},
                cwd=str(nb.parent),
                kernel_name="python3",
                progress_bar=False,
            )
            status = "ok"
        except Exception as err:  # report every notebook, then fail at the end
            status, _ = "FAILED", failed.append(nb.name)
            print(f"  {nb.name}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
        seconds = time.perf_counter() - t0
        if status == "ok" and record and profile != "smoke" and (why := fell_back(out_dir / nb.name)):
            # a digest or REFERENCE.md built from substitute data would pass off digits as CIFAR-10
            status, _ = "NOT RECORDED", failed.append(nb.name)
            print(
                f"  {nb.name}: ran on {why}; not recorded as a {profile!r} result (set LABKIT_DATA_DIR or go online)"
            )
        timings[nb.name] = {"seconds": round(seconds, 1), "status": status}
        print(f"  {status:6s} {nb.name:45s} {seconds:7.1f} s")
    (out_dir / "timings.json").write_text(json.dumps({"hardware": machine, "notebooks": timings}, indent=1))
    done = {name: t for name, t in timings.items() if t["status"] == "ok"}
    if record and done:  # record every notebook that ran; a failed one keeps its previous measurement
        manifest = json.loads(MANIFEST.read_text())
        today = dt.date.today().isoformat()
        for name, t in done.items():
            entry = manifest.setdefault(name, {})
            entry.setdefault("durations", {})[profile] = {
                "seconds": t["seconds"],
                "hardware": machine,
                "date": today,
            }
        MANIFEST.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
        update_readme()
        if profile != "smoke":  # the real lessons' measured outputs, readable on GitHub without running
            for name, t in done.items():
                export_digest(out_dir / name, profile, machine, t["seconds"])
                export_records(out_dir / name, profile, machine, t["seconds"])
    total = sum(t["seconds"] for t in timings.values())
    print(
        f"{len(notebooks) - len(failed)}/{len(notebooks)} notebooks ran in {total:.0f} s; outputs in {out_dir}"
    )
    return 1 if failed else 0


FALLBACK_BANNERS = ("DATASET FALLBACK", "MODEL FALLBACK")  # labkit's loud banners (data.py, text.py, hf.py)


def fell_back(executed: Path) -> str:
    """The fallback banners an executed notebook printed ("" when it ran on the real data and models)."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    text = json.dumps([c.get("outputs", []) for c in nb.cells if c.cell_type == "code"])
    found = [b for b in FALLBACK_BANNERS if b in text]
    return " and ".join(f"a {b.split()[0].lower()} fallback" for b in found)


def export_digest(executed: Path, profile: str, machine: str, seconds: float) -> Path:
    """results/<profile>/<notebook>.md: the prose, tables and printed results of an executed notebook (code
    and figures left out), with the hardware and run time, so measured numbers are citable."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    parts = [
        f"<!-- generated by tools/run_course.py --record from an executed run; do not edit -->\n"
        f"*Profile `{profile}`, executed on {machine} in {seconds:.0f} s, {dt.date.today().isoformat()}.*"
    ]
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            parts.append(cell.source)
            continue
        recorded = read_records(nbformat.v4.new_notebook(cells=[cell]))
        if recorded:  # the cell's lk.record lines, as one table (the same as results/<profile>/<nb>.json)
            parts.append("\n".join(records_table(recorded)))
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if RECORD_MIME in data:
                continue
            if out.get("output_type") == "stream" and out.get("name") == "stdout":
                text = "".join(line for line in out["text"].splitlines(True) if "it/s]" not in line)
                if text.strip():
                    parts.append("```text\n" + text.rstrip() + "\n```")
            elif "text/markdown" in data:
                parts.append(data["text/markdown"])
            elif "text/html" in data and "<table" in data["text/html"]:
                parts.append(data["text/html"])
            elif "text/plain" in data and not data["text/plain"].startswith(("<Figure", "<IPython")):
                parts.append("```text\n" + data["text/plain"] + "\n```")
    target = ROOT / "results" / profile / (executed.stem + ".md")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(redact_local_paths("\n\n".join(parts) + "\n", ROOT))
    return target


def export_records(executed: Path, profile: str, machine: str, seconds: float) -> Path:
    """results/<profile>/<notebook>.json: the notebook's ``lk.record`` results with where and when they ran."""
    target = ROOT / "results" / profile / (executed.stem + ".json")
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "notebook": executed.name,
        "profile": profile,
        "hardware": machine,
        "seconds": seconds,
        "date": dt.date.today().isoformat(),
        "records": read_records(executed),
    }
    target.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n")
    return target


def records_table(records: dict[str, dict]) -> list[str]:
    """A markdown table of recorded results (``lk.read_records``, or a results JSON's ``records``): record,
    value, the 95% interval of a comparison and its verdict (the course's rule, ``labkit.verdicts``)."""
    if not records:
        return ["- (this run recorded no key results)"]
    rows = ["| recorded result | value | 95% interval | the run shows |", "| --- | ---: | ---: | --- |"]
    for name, r in records.items():
        value, interval, shows = describe_record(r)
        star = " (headline)" if r.get("headline") else ""
        rows.append(f"| {name.replace('|', '/')}{star} | {value} | {interval} | {shows} |")
    return rows


def _finding_row(notebook: str, name: str, r: dict) -> str:
    value, interval, shows = describe_record(r)
    return f"| {notebook} | {name.replace('|', '/')} | {value} | {interval} | {r.get('n_test', 0):,} | **{shows}** |"


def summarize_results(profile: str) -> Path:
    """One page of a profile's measured findings, from the results JSONs in results/<profile>/ only: every
    comparison a notebook recorded (``lk.record(name, verdict)``), with its difference, 95% interval, seeds and
    test examples and the verdict of the course's one rule; each lesson's headline comparison first, then the
    other findings notebook by notebook. Plain numbers (a teacher's accuracy) stay in each notebook's JSON and
    digest. ``full`` -> results/REFERENCE.md, other profiles -> results/<profile>/SUMMARY.md."""
    folder = ROOT / "results" / profile
    found = sorted(p for p in folder.glob("[0-9][0-9]_*.json")) if folder.is_dir() else []
    target = ROOT / "results" / ("REFERENCE.md" if profile == "full" else f"{profile}/SUMMARY.md")
    title = (
        "Reference results (`full` profile)" if profile == "full" else f"Findings of the `{profile}` profile"
    )
    lines = [
        f"# {title}",
        "",
        f"<!-- generated by `make results PROFILE={profile}` (tools/run_course.py --summarize); do not edit -->",
        f"Generated from the results in `results/{profile}/`, each written by an executed run "
        f"(`tools/run_course.py --profile {profile} --record`). A finding is a comparison a notebook recorded: "
        "the mean paired difference over seeds (same initial weights and steps per seed) with its 95% interval, "
        "which holds both the seed-to-seed and the test set's sampling error. It is **a gain** or **a loss** only "
        "when the whole interval lies on the metric's better or worse side of 0 (lower is better for ECE, NLL and "
        "KL), otherwise **no measurable effect** (`labkit/verdicts.py`, taught in lesson 02).",
        "",
    ]
    if not found:
        lines += [
            f"**The `{profile}` profile has not been run yet**"
            + (" on a GPU (the sessions that built this course had no GPU)." if profile == "full" else ".")
            + f" Run `make results PROFILE={profile}`"
            + (" on a machine with a GPU and real data (`LABKIT_DATA_DIR`)" if profile == "full" else "")
            + " to fill this page. Until then, the measured findings are those of the `default` profile on a CPU: "
            "`results/default/SUMMARY.md`.",
            "",
        ]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(lines))
        return target
    payloads = {p.stem: json.loads(p.read_text()) for p in found}
    header = "| notebook | finding | difference | 95% interval | test examples | verdict |"
    rule = "| --- | --- | ---: | ---: | ---: | --- |"
    link = lambda stem: f"[{stem}]({stem}.md)" if profile != "full" else f"[{stem}]({profile}/{stem}.md)"  # noqa: E731
    heads = [
        _finding_row(link(stem), name, r)
        for stem, payload in payloads.items()
        for name, r in payload["records"].items()
        if "effect" in r and r.get("headline")
    ]
    lines += ["## Headline findings", "", "The comparison each lesson exists to show.", "", header, rule]
    lines += heads or ["| (no headline recorded) | | | | | |"]
    lines += ["", "## Every finding, by notebook", ""]
    for stem, payload in payloads.items():
        comparisons = {n: r for n, r in payload["records"].items() if "effect" in r}
        lines += [
            f"### {link(stem)}",
            "",
            f"Profile `{profile}`, executed on {payload['hardware']} in {payload['seconds']:.0f} s, {payload['date']}.",
            "",
        ]
        if not comparisons:
            lines += ["- (this notebook records no comparison)", ""]
            continue
        ordered = sorted(comparisons.items(), key=lambda kv: not kv[1].get("headline"))
        lines += [header, rule, *(_finding_row(stem, n, r) for n, r in ordered), ""]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(lines))
    return target


def _fmt_duration(d: dict | None) -> str:
    if not d:
        return "not measured yet"
    s = d["seconds"]
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def syllabus_table() -> str:
    manifest = json.loads(MANIFEST.read_text())
    rows = [
        "| notebook | module | topic | smoke | default | full | GPU |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    machines = set()
    for name, entry in manifest.items():
        durations = entry.get("durations", {})
        machines.update(d["hardware"] for d in durations.values())
        cells = [_fmt_duration(durations.get(p)) for p in PROFILES]
        exists = (ROOT / "notebooks" / name).exists()
        link = f"[`{name}`](notebooks/{name})" if exists else f"`{name}` (planned)"
        rows.append(
            f"| {link} | {entry['module']} | {entry['topic']} | {' | '.join(cells)} | {entry['gpu']} |"
        )
    note = (
        "Times measured by `tools/run_course.py --record` on: " + "; ".join(sorted(machines))
        if machines
        else ""
    )
    return "\n".join(rows) + ("\n\n" + note if note else "")


def update_readme() -> None:
    text = README.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"README.md lacks the {START} ... {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{syllabus_table()}\n{END}{tail}")
    from course_tools import update_time_tables  # the same measurements in docs/INSTRUCTORS.md and README

    update_time_tables()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--profile", default="smoke", choices=PROFILES)
    ap.add_argument("--record", action="store_true", help="store timings in notebooks/manifest.json + README")
    ap.add_argument("--readme-only", action="store_true")
    ap.add_argument("--summarize", choices=PROFILES, help="write the profile's findings page from results/")
    args = ap.parse_args(argv)
    if args.summarize:
        print(f"wrote {summarize_results(args.summarize)}")
        return 0
    if args.readme_only:
        update_readme()
        return 0
    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    missing = [str(p) for p in notebooks if not p.exists()]
    if missing:
        raise SystemExit(f"no such notebook(s): {', '.join(missing)}")
    # inline: executed copies in build/ keep their figures as PNGs (Agg would leave only "<Figure ...>")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    return run(notebooks, args.profile, args.record)


if __name__ == "__main__":
    sys.exit(main())
