"""`make bench` keeps working: the benchmark script runs at --quick sizes and writes every section with its
ratios and verdicts. Nothing here asserts a time or a ratio (those are measured in results/BENCH.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(600)
def test_bench_quick_writes_every_section(tmp_path):
    out = tmp_path / "BENCH.md"
    env = dict(os.environ, LABKIT_OFFLINE="1", LABKIT_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run(
        [sys.executable, "benchmarks/bench.py", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=580,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = out.read_text()
    for heading in ("## (a) Teacher caching", "## (b) labkit in-memory", "## (c) fp32 vs autocast",
                    "## (d) torch.compile", "## (e) On-device augmentation"):  # fmt: skip
        assert heading in text, heading
    assert "(--quick sizes: not meaningful)" in text
    assert text.count("Target cached KD") == 2 and text.count("Target in-memory >= 3x") == 2
    assert "| plain CE (no teacher) |" in text and "| crop + flip on the device |" in text
    assert "ratio to plain, same round (median)" in text
