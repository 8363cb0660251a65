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


def _alive_from(demo_dir: Path) -> list[str]:
    """Processes still running that the demo started: every one inherits its environment,
    which names the demo's directory (a port says less: on a shared machine another program
    may take 9090 once the demo's Prometheus has let it go)."""
    needle = str(demo_dir).encode()
    alive = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if needle in (proc / "environ").read_bytes():
                alive.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return alive


def test_run_demo_shows_what_arrived_and_stops_everything(
    otelcol_binary: Path, tmp_path: Path
) -> None:
    env = dict(os.environ)
    env.update(
        # 1 s drift windows: a few on each side of the shift at 6 s; the incident 9-11 s
        DEMO_SECONDS="12",
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
    assert (tmp_path / "demo" / "churn-demo-v1.baseline.json").stat().st_size > 0
    methods = re.search(r"by method \(ml\.model\.method.*\): (.+)$", out, re.M)
    assert methods
    assert "predict " in methods.group(1)
    assert "predict_proba " in methods.group(1)

    # the drift story, with real numbers from the real Prometheus
    table = {
        m.group(1): [None if v == "-" else float(v) for v in m.group(2, 3, 4, 5)]
        for m in re.finditer(
            r"^  (\w+(?: \w+)?)" + r"\s+([\d.]+|-)" * 4 + r"(?:  <- shifted)?$",
            out,
            re.M,
        )
    }
    assert set(table) >= {"tenure_months", "monthly_charges", "support_calls", "age"}, out
    for shifted in ("monthly_charges", "support_calls"):
        psi_before, psi_after, js_before, js_after = table[shifted]
        assert psi_before is not None
        assert psi_before < 0.2, out
        assert psi_after is not None
        assert psi_after > 0.2, out  # crosses the alert threshold
        assert js_after is not None
        assert js_before is not None
        assert js_after > js_before, out
    for stable in ("tenure_months", "age"):
        psi_before, psi_after, _, js_after = table[stable]
        assert psi_before is not None
        assert psi_after is not None
        assert psi_before < 0.2, out
        assert psi_after < 0.2, out  # unshifted: stays below
        assert js_after is not None
        assert js_after < min(table[s][3] or 0.0 for s in ("monthly_charges", "support_calls"))
    assert re.search(
        r"pending: ModelFeatureDrift  \{ml_feature=(monthly_charges|support_calls)\}", out
    )
    assert not re.search(r"ModelFeatureDrift  \{ml_feature=(tenure_months|age)\}", out)

    # the incident (charges sent in cents): the model predicts churn for everyone, silently
    assert re.search(r"check violations: \d+  output_class_collapse \(output 0\)", out), out
    assert re.search(
        r"(firing|pending): ModelSilentFailure  \{ml_check=output_class_collapse\}", out
    )

    # labels that arrived later: accuracy per model version, lower after the shift
    assert re.search(
        r"accuracy since start: 0\.\d+  \{ml_model_name=churn-demo,ml_model_version=1\}", out
    )
    before = re.search(r"accuracy before the shift: ([\d.]+)  \((\d+) of (\d+)", out)
    after = re.search(r"accuracy after the shift: ([\d.]+)  \((\d+) of (\d+)", out)
    assert before, out
    assert after, out
    assert int(before.group(3)) > 100
    assert int(after.group(3)) > 100
    assert float(after.group(1)) < float(before.group(1)), out
    incident = re.search(r"accuracy during the incident: ([\d.]+)  \((\d+) of (\d+)", out)
    assert incident, out
    assert float(incident.group(1)) < float(before.group(1)), out
    # everything it started is stopped
    ports = re.search(r"OTLP gRPC 127\.0\.0\.1:(\d+), HTTP 127\.0\.0\.1:(\d+)", out)
    prom = re.search(r"Prometheus: http://127\.0\.0\.1:(\d+)", out)
    assert ports
    assert prom
    assert _alive_from(tmp_path / "demo") == []
    for port in (*ports.groups(), prom.group(1)):
        if port not in ("4317", "4318", "9090"):  # a default port may be another program's now
            assert not _listening(int(port)), port
