"""The README's first command, examples/run_demo.sh, end to end (short run)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

import pytest
from harness import REPO

pytestmark = pytest.mark.integration


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_run_demo_shows_what_arrived_and_stops_everything(
    otelcol_binary: Path, tmp_path: Path
) -> None:
    env = dict(os.environ)
    env.update(
        DEMO_SECONDS="6",
        MODELOTEL_DEMO_SKIP_INSTALL="1",  # tests/run.sh installed the package already
        MODELOTEL_OTELCOL=str(otelcol_binary),
        MODELOTEL_DEMO_DIR=str(tmp_path / "demo"),
    )
    cp = subprocess.run(
        ["bash", str(REPO / "examples" / "run_demo.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    out = cp.stdout
    assert cp.returncode == 0, out + cp.stderr
    spans = int(re.search(r"^spans: (\d+)", out, re.M).group(1))  # type: ignore[union-attr]
    assert spans > 0
    assert re.search(r"^\s+\d+\s+predict churn-demo$", out, re.M)
    payloads = re.search(r"^\s+(\d+)\s+ml\.prediction\.payload$", out, re.M)
    assert payloads
    assert int(payloads.group(1)) > 0
    assert "  ml_prediction_calls_total" in out
    assert re.search(r"predict calls: (\d+)\s+\{ml_model_name=churn-demo,ml_model_version=1\}", out)
    assert (tmp_path / "demo" / "backend" / "traces.jsonl").stat().st_size > 0
    # everything it started is stopped
    ports = re.search(r"OTLP gRPC 127\.0\.0\.1:(\d+), HTTP 127\.0\.0\.1:(\d+)", out)
    prom = re.search(r"Prometheus: http://127\.0\.0\.1:(\d+)", out)
    assert ports
    assert prom
    for port in (*ports.groups(), prom.group(1)):
        assert not _listening(int(port)), port
