"""Keep committed notebooks clean: no stray metadata, no outputs except the stated expectations.

    python tools/nbclean.py notebooks/*.ipynb            # clean in place
    python tools/nbclean.py --check notebooks/*.ipynb    # CI: fail if any notebook is not clean
    python tools/nbclean.py --adopt build/smoke/01_x.ipynb notebooks/01_x.ipynb
        # copy the outputs of expectation cells (those containing NBVAL_CHECK_OUTPUT) from an executed run

Expectation cells keep their outputs because nbval compares them (pytest --nbval-lax), and because a
reader on GitHub sees what each check is supposed to print.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nbformat

MARKER = "NBVAL_CHECK_OUTPUT"
KEEP_NB_METADATA = {"kernelspec", "language_info"}
KEEP_CELL_METADATA = {"tags"}


def is_check_cell(cell) -> bool:
    return cell.cell_type == "code" and MARKER in cell.source


def clean(nb):
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in KEEP_NB_METADATA}
    if "language_info" in nb.metadata:
        nb.metadata["language_info"] = {"name": "python"}
    for cell in nb.cells:
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in KEEP_CELL_METADATA and v}
        if cell.cell_type != "code":
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
            continue
        cell.execution_count = None
        if is_check_cell(cell):
            # nbval refuses reference outputs on a cell that was never run, so check cells keep a count of 1
            cell.execution_count = 1 if cell.outputs else None
            kept = []
            for out in cell.outputs:
                out = dict(out)
                out.pop("execution_count", None)
                if "metadata" in out:
                    out["metadata"] = {}
                kept.append(nbformat.from_dict(out))
            cell.outputs = kept
        else:
            cell.outputs = []
    return nb


def dumps(nb) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def adopt(executed: Path, source: Path) -> None:
    """Copy expectation-cell outputs from an executed notebook into its source (matched by cell id)."""
    run = nbformat.read(executed, as_version=4)
    outputs = {c.get("id"): c.outputs for c in run.cells if is_check_cell(c)}
    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        if is_check_cell(cell) and cell.get("id") in outputs:
            cell.outputs = outputs[cell.get("id")]
    source.write_text(dumps(clean(nb)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--check", action="store_true", help="report unclean notebooks and exit 1")
    ap.add_argument("--adopt", type=Path, help="executed notebook whose expectation outputs to keep")
    args = ap.parse_args(argv)
    if args.adopt:
        if len(args.notebooks) != 1:
            ap.error("--adopt takes exactly one source notebook")
        adopt(args.adopt, args.notebooks[0])
        return 0
    dirty = []
    for path in args.notebooks:
        text = path.read_text()
        cleaned = dumps(clean(nbformat.reads(text, as_version=4)))
        if text != cleaned:
            if args.check:
                dirty.append(path)
            else:
                path.write_text(cleaned)
                print(f"cleaned {path}")
    if dirty:
        print("not clean (run `make clean-notebooks`):", *map(str, dirty), sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
