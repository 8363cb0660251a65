"""Smoke runs of the scripts: benchmarks/overhead.py --quick and examples/demo_model.py.

No wall time is asserted: the benchmark prints ratios; here it must run and print them.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.timeout(180)


def _free_closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: nothing listens there


@pytest.mark.slow
def test_overhead_benchmark_quick_prints_the_ratios() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "overhead.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=170,
        check=True,
    )
    lines = out.stdout.splitlines()
    assert any(line.startswith("S: bare OTel span") for line in lines)
    for label in (
        "modelotel 100% sampled + serving metrics (core)",
        "modelotel 1% sampled + serving metrics (core)",
        "modelotel disabled at runtime (set_enabled(False))",
        "modelotel disabled at decoration (MODELOTEL_ENABLED=false)",
    ):
        pattern = re.compile(
            rf"^ratio {re.escape(label)}: \d+\.\d+ S \(target <= [\d.]+ S\) (ok|OVER)$"
        )
        assert any(pattern.match(line) for line in lines), (label, out.stdout)
    assert any(line.startswith("ratio naive composition: ") for line in lines)
    assert any(line.startswith("collect replay per recorded call") for line in lines)


@pytest.mark.slow
def test_demo_runs_without_a_collector_and_says_so() -> None:
    env = dict(
        os.environ,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{_free_closed_port()}",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
    )
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo_model.py"), "--seconds", "1.5"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
    )
    assert "collector: NOT reachable at 127.0.0.1:" in out.stdout
    done = [line for line in out.stdout.splitlines() if line.startswith("done: ")]
    assert len(done) == 1
    calls = int(done[0].split()[1])
    assert calls > 0
    assert "telemetry not delivered" in done[0]
