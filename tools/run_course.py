"""Execute the course's notebooks headless with papermill and record how long each one took.

    python tools/run_course.py --profile smoke notebooks/*.ipynb           # what `make course` runs
    python tools/run_course.py --profile default --record notebooks/02_*.ipynb
        # also store the measured time in notebooks/manifest.json and refresh the README's syllabus table
    python tools/run_course.py --readme-only                                # only refresh the README table

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
MANIFEST = ROOT / "notebooks" / "manifest.json"
README = ROOT / "README.md"
START, END = "<!-- syllabus:start -->", "<!-- syllabus:end -->"
PROFILES = ("smoke", "default", "full")


def hardware() -> str:
    sys.path.insert(0, str(ROOT))
    from labkit.nbtools import hardware as hw

    return hw()


def run(notebooks: list[Path], profile: str, record: bool) -> int:
    import papermill as pm

    out_dir = ROOT / "build" / profile
    out_dir.mkdir(parents=True, exist_ok=True)
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
        timings[nb.name] = {"seconds": round(seconds, 1), "status": status}
        print(f"  {status:6s} {nb.name:45s} {seconds:7.1f} s")
    (out_dir / "timings.json").write_text(json.dumps({"hardware": machine, "notebooks": timings}, indent=1))
    if record and not failed:
        manifest = json.loads(MANIFEST.read_text())
        today = dt.date.today().isoformat()
        for name, t in timings.items():
            entry = manifest.setdefault(name, {})
            entry.setdefault("durations", {})[profile] = {
                "seconds": t["seconds"],
                "hardware": machine,
                "date": today,
            }
        MANIFEST.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
        update_readme()
    total = sum(t["seconds"] for t in timings.values())
    print(
        f"{len(notebooks) - len(failed)}/{len(notebooks)} notebooks ran in {total:.0f} s; outputs in {out_dir}"
    )
    return 1 if failed else 0


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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--profile", default="smoke", choices=PROFILES)
    ap.add_argument("--record", action="store_true", help="store timings in notebooks/manifest.json + README")
    ap.add_argument("--readme-only", action="store_true")
    args = ap.parse_args(argv)
    if args.readme_only:
        update_readme()
        return 0
    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    missing = [str(p) for p in notebooks if not p.exists()]
    if missing:
        raise SystemExit(f"no such notebook(s): {', '.join(missing)}")
    os.environ.setdefault("MPLBACKEND", "Agg")
    return run(notebooks, args.profile, args.record)


if __name__ == "__main__":
    sys.exit(main())
