"""The compiled statistics kernel, called directly with odd buffers, in a process of its own.

kernel_fuzz.py makes each call valid or odd in one argument (dtype, length, contiguity,
writability, type, counts, offsets) and checks: a clean refusal or numpy's result, no write
past a buffer, no write at all on a refusal, inputs untouched. A crash (a bad read or write
in C) shows as the process's exit status. Short form: 2,000 calls; ``--long``: 20,000.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelotel.stats import kernel

pytestmark = [pytest.mark.timeout(900),
              pytest.mark.skipif(not kernel.COMPILED, reason="the kernel is not compiled here")]

SCRIPT = Path(__file__).resolve().parent / "kernel_fuzz.py"


def test_odd_buffers_are_refused_cleanly_and_valid_ones_match_numpy(
    long_form: bool, figures: list[dict[str, Any]]
) -> None:
    iterations = 20_000 if long_form else 2_000
    cp = subprocess.run([sys.executable, "-W", "error", str(SCRIPT), "--seed", "11",
                         "--iterations", str(iterations)],
                        capture_output=True, text=True, timeout=800, check=False)
    assert cp.returncode == 0, f"the fuzzing process ended with {cp.returncode}:\n{cp.stderr}"
    out = json.loads(cp.stdout.strip().splitlines()[-1])
    calls = out["calls"]
    figures.append({"section": "kernel_fuzz", "iterations": iterations, "calls": calls,
                    "failures": out["failure_count"], "crashes": 0})
    assert out["failures"] == []
    assert calls["stage"] + calls["accumulate"] == iterations
    # both paths were exercised: checked against numpy, and refused
    assert calls["stage:checked"] > 0
    assert calls["accumulate:checked"] > 0
    assert sum(v for k, v in calls.items() if ":refused:" in k) > iterations // 10
