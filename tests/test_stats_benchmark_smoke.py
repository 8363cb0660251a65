"""Smoke run of benchmarks/stats.py --quick: it must run and print every figure (no wall
time is asserted; the benchmark prints ratios)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(180)
def test_stats_benchmark_quick_prints_every_figure() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "stats.py"), "--quick"],
        capture_output=True, text=True, timeout=170, check=True,
    ).stdout
    assert re.search(r"^\[1\] streaming bandwidth B .*: [\d.]+ GB/s$", out, re.M), out
    for case in ("moments clean", "moments 1% NaN", "binned clean", "binned 1% NaN"):
        assert re.search(rf"^    {re.escape(case)}\s+[\d.]+ ms\s+[\d.]+ GB/s\s+[\d.]+% of B", out,
                         re.M), (case, out)
    assert re.search(r"^    modelotel \(DataFrame\)\s+[\d.]+ ms\s+[\d,]+ rows/s$", out, re.M), out
    # whylogs is an optional benchmark dependency: either a ratio or a clear "not measured"
    assert re.search(r"ratio \(DataFrame path / whylogs\): [\d,]+x|whylogs: not measured", out), out
    assert re.search(r"added by statistics \(on - off\): -?[\d.]+ us = -?[\d.]+ S", out), out
    from modelotel.stats import kernel

    if kernel.COMPILED:  # the numpy-only figure is printed next to the kernel's
        assert re.search(r"the compiled kernel\)", out), out
        assert re.search(r"without the kernel \(numpy.*\): -?[\d.]+ us = -?[\d.]+ S", out), out
    for label in ("DataFrame (float64)", "DataFrame (nullable Int64)"):
        assert re.search(rf"the same batch as a {re.escape(label)}: -?[\d.]+ us = -?[\d.]+ S",
                         out), (label, out)
    assert re.search(r"^\[5\] memory .*: (flat|GROWING)$", out, re.M), out
