"""An unreachable or hung collector: calls return, shutdown and exit keep their deadline.

Two real endpoints on 127.0.0.1: a closed port (connections refused) and a black hole (a
server that accepts and reads forever, never answering). The stock SDK spends ~30 s in
shutdown and at interpreter exit against either; modelotel's deadline here is 2 s.

Wall-time assertions are the feature under test here, so they are allowed, with 3 s of slack
for a loaded machine; nothing else is timed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from _otlp_sink import BlackHole, ClosedPort, clean_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

DEADLINE_S = 2.0
SLACK_S = 3.0

PRELUDE = """
import json, logging, sys, time
import modelotel
from modelotel import setup

# An instrumented call: a span, serving metrics and (sampled at 100%) a payload log record.
@modelotel.instrument(model="m", version="1", payload_sample_rate=1.0)
def predict(x):
    return x * 2
"""


def _python(code: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _json_line(stdout: str) -> dict[str, object]:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert lines, stdout
    out: dict[str, object] = json.loads(lines[-1])
    return out


@pytest.fixture(params=["closed_port", "black_hole"])
def dead_endpoint(request: pytest.FixtureRequest) -> object:
    server = ClosedPort() if request.param == "closed_port" else BlackHole()
    with server:
        yield server


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_calls_return_and_shutdown_keeps_its_deadline(dead_endpoint: object, protocol: str) -> None:
    url = dead_endpoint.url  # type: ignore[attr-defined]
    proc = _python(
        f"""
        setup.configure(endpoint={url!r}, protocol={protocol!r},
                        shutdown_timeout={DEADLINE_S}, export_interval_ms=200)
        results = [predict(i) for i in range(600)]   # > one batch: export starts at once
        time.sleep(0.5)                              # exports are in flight / retrying
        t0 = time.monotonic()
        ok = setup.shutdown()
        shutdown_s = time.monotonic() - t0
        from modelotel import _safety
        print(json.dumps({{"results_ok": results == [i * 2 for i in range(600)],
                          "shutdown_s": shutdown_s, "ok": ok,
                          "dropped": dict(_safety.health.dropped)}}))
        """,
        clean_env(),
    )
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    out = _json_line(stdout)
    assert out["results_ok"] is True
    assert isinstance(out["shutdown_s"], float)
    assert out["shutdown_s"] < DEADLINE_S + SLACK_S, out
    assert "Traceback" not in stderr
    # The worker is stuck in the first batch's export (512 spans: no answer, or retrying
    # refused connections) when shutdown starts; the deadline counts that batch as cut and
    # the 88 spans still queued: all 600 are counted, none lost silently. Likewise for the
    # payload records that got past their budget.
    assert out["ok"] is False
    dropped = out["dropped"]
    assert isinstance(dropped, dict)
    span_reasons = {k: v for k, v in dropped.items() if k.startswith("span_")}
    assert span_reasons == {"span_export_cut": 512, "span_shutdown_timeout": 88}, dropped
    budget = sum(v for k, v in dropped.items() if k.startswith("payload_budget"))
    lost = sum(v for k, v in dropped.items()
               if k.startswith("payload_") and not k.startswith("payload_budget"))
    assert budget + lost == 600, dropped
    assert "modelotel: shutdown did not finish within 2.0 s" in stderr
    assert "512 span_export_cut" in stderr


def test_interpreter_exit_keeps_the_deadline_without_shutdown(dead_endpoint: object) -> None:
    url = dead_endpoint.url  # type: ignore[attr-defined]
    proc = _python(
        f"""
        setup.configure(endpoint={url!r}, shutdown_timeout={DEADLINE_S})
        for i in range(600):
            predict(i)
        time.sleep(0.5)
        print("exiting", flush=True)
        """,
        clean_env(),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "exiting"
    t0 = time.monotonic()
    _, stderr = proc.communicate(timeout=60)  # returns when the process has exited
    exit_s = time.monotonic() - t0
    assert proc.returncode == 0, stderr
    assert exit_s < DEADLINE_S + SLACK_S
    assert "Traceback" not in stderr


LOG_SCRIPT = """
logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                    format="%(levelname)s %(name)s %(message)s")
setup.configure(endpoint={url!r}, shutdown_timeout=1, export_interval_ms=100)
{after_configure}
end = time.monotonic() + 3
while time.monotonic() < end:          # many export attempts of all three signals fail
    predict(1)
    time.sleep(0.002)
setup.shutdown()
"""


def _stderr_of(url: str, after_configure: str = "") -> str:
    env = clean_env(OTEL_BSP_SCHEDULE_DELAY="100", OTEL_BLRP_SCHEDULE_DELAY="100")
    proc = _python(LOG_SCRIPT.format(url=url, after_configure=after_configure), env)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    return stderr


def test_unreachable_collector_costs_one_clear_log_line() -> None:
    with ClosedPort() as port:
        stderr = _stderr_of(port.url)
    lines = stderr.splitlines()
    reports = [line for line in lines if "modelotel: cannot export telemetry" in line]
    assert len(reports) == 1, stderr
    assert port.url in reports[0]
    assert "Connection refused" in reports[0]
    assert "Traceback" not in stderr
    # Besides the one report, at most the shutdown-deadline line.
    others = [line for line in lines if line not in reports]
    assert len(others) <= 1, others
    assert all("shutdown did not finish" in line for line in others), others


def test_without_the_filter_the_sdk_logs_far_more() -> None:
    # The control for the test above: the same run with modelotel's filter removed.
    with ClosedPort() as port:
        stderr = _stderr_of(port.url, "from modelotel import _logfilter; _logfilter.uninstall()")
    noisy = [line for line in stderr.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert len(noisy) > 5, stderr
    assert "modelotel: cannot export telemetry" not in stderr
