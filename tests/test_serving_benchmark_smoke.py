"""Smoke run of benchmarks/serving.py --quick against the real collector: every case of every
section comes out with finite figures (no wall time is asserted; the benchmark reports ratios)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CASES = (
    "numpy 1x20", "numpy 32x20", "dict record", "list of 32 records",
    "DataFrame 1 row float", "DataFrame 32 rows float", "DataFrame 1 row mixed",
    "DataFrame 32 rows mixed", "DataFrame 1 row from a record", "str", "list of 32 str",
)


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_serving_benchmark_quick_reports_every_case_finite(tmp_path: Path) -> None:
    out_json = tmp_path / "serving.json"
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "serving.py"), "--quick", "--json",
         str(out_json)],
        capture_output=True, text=True, timeout=290, check=True,
    ).stdout
    results = json.loads(out_json.read_text())
    labels = [f"{case} | {b}" for case in CASES for b in ("baseline", "no baseline")]
    labels.append("span with the 5 span attributes | no modelotel")  # the reference row
    for section, keys in (("paced", ("added_p50_us", "added_p99_us", "p50_ratio", "p99_ratio")),
                          ("loop", ("calls_per_s", "ratio", "cpu_ratio")),
                          ("loop_1pct", ("calls_per_s", "ratio", "cpu_ratio"))):
        for label in labels:
            row = results[section][label]
            assert all(_finite(row[k]) for k in keys), (section, label, row)
            assert label in out, (label, out)
    batch = results["batch"]
    for model in ("linear", "tree"):
        for chunk in ("10k x 30", "50k x 30"):
            rows = [v for k, v in batch.items() if k.startswith(model) and k.endswith(chunk)]
            assert len(rows) == 1, (model, chunk, batch)
            assert _finite(rows[0]["throughput_ratio"])
            assert rows[0]["rows_per_s"] > 0
