"""Nothing lost unaccounted: generated == delivered + counted dropped, exactly, in every scenario.

An instrumented application (load_app.py: 4 threads at a steady rate, a span and a payload
decision per call, an outcome every 4th call, one call in 25 raising) runs against:

* healthy: a local OTLP sink that answers at once;
* refused: a closed port (connection refused);
* blackhole: a server that accepts and never answers;
* slow: a sink that answers each request after 2 s;
* deadline at shutdown: a healthy sink that stops answering 1.5 s before the end, so the
  shutdown deadline cuts the export in flight and leaves records queued;
* kill + restart: the real collector (base.yaml, persistent queue) SIGKILLed mid-run and
  restarted 2 s later, the records counted at its downstream backend.

For spans, payload records and outcome records: every one made is delivered (distinct
prediction ids at the endpoint) or counted in ``ml.telemetry.dropped``, exactly. Also: no
exception reaches a caller except its own, no internal error, no call over a second, no crash.

Short form: 6 s per scenario with small queues (256 records, batches of 64), so each stage
(queue full, export failed, cut, queued at the deadline) is reached quickly. ``--long``:
60 s per scenario with the SDK's default queues (2048 / 512).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from scenarios import (
    Accounting,
    Run,
    accounting,
    clean_env,
    finish,
    machine_load,
    start_load,
    summary,
)
from sinks import CountingSink

from _otlp_sink import BlackHole, ClosedPort

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

THREADS, RATE = 4, 50.0

_healthy: dict[str, float] = {}


def _env(long_form: bool, **extra: str) -> dict[str, str]:
    small = {} if long_form else {
        "OTEL_BSP_MAX_QUEUE_SIZE": "256", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "64",
        "OTEL_BLRP_MAX_QUEUE_SIZE": "256", "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "64",
        "OTEL_BSP_SCHEDULE_DELAY": "500", "OTEL_BLRP_SCHEDULE_DELAY": "500",
    }
    return clean_env(**small, **extra)


def _seconds(long_form: bool) -> float:
    return 60.0 if long_form else 6.0


def _load(long_form: bool) -> str:
    queues = "default queues" if long_form else "queues 256 / batches 64"
    return (f"{THREADS} threads x {RATE:g} calls/s for {_seconds(long_form):g} s, {queues}; "
            f"{machine_load()}")


def _run(endpoint: str, long_form: bool, tmp_path: Path, *, shutdown_timeout: float = 3.0,
         during: Any = None, env: dict[str, str] | None = None) -> Run:
    ready = tmp_path / "ready"
    seconds = _seconds(long_form)
    proc = start_load(endpoint, env=env or _env(long_form), seconds=seconds, threads=THREADS,
                      rate=RATE, shutdown_timeout=shutdown_timeout, ready_file=ready,
                      sample_every=5.0 if long_form else 1.0)
    t0 = time.monotonic()
    if during is not None:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        during(seconds)
    return finish(proc, timeout=seconds + shutdown_timeout + 120, t0=t0)


def _check(name: str, fault: str, run: Run, acc: Accounting, long_form: bool,
           figures: list[dict[str, Any]]) -> dict[str, Any]:
    row = summary(name, _load(long_form), fault, run, acc, _healthy or None)
    figures.append(row)
    assert not run.timed_out, run.stderr[-3000:]
    assert run.returncode == 0, run.stderr[-3000:]
    r = run.result
    assert r["unexpected"] == 0, r.get("errors_seen")
    assert r["internal_errors"] == {}, r["internal_errors"]
    assert r["unraisable"] == [], r
    assert r["thread_errors"] == [], r
    assert r["hangs"] == 0, r["latency_us"]
    assert r["raised"] > 0  # the failing calls ran, and their exceptions reached the caller
    assert acc.generated["span"] > 0
    assert acc.generated["outcome"] > 0
    assert acc.unaccounted() == {}, row
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    return row


def _pipeline_drops(acc: Accounting) -> int:
    return sum(v for k, v in acc.reasons.items() if not k.startswith("payload_budget"))


def _none(kind: str) -> tuple[int, int]:
    return (0, 0)


def test_healthy(tmp_path: Path, long_form: bool, figures: list[dict[str, Any]]) -> None:
    with CountingSink() as sink:
        run = _run(sink.url, long_form, tmp_path)
    acc = accounting(run.result, {k: sink.delivered(k) for k in ("span", "payload", "outcome")})
    row = _check("healthy", "none", run, acc, long_form, figures)
    _healthy.update(p50=row["p50_us"], p99=row["p99_us"])
    assert _pipeline_drops(acc) == 0, acc.reasons
    assert acc.delivered["span"] == acc.generated["span"]
    assert acc.duplicates == {"span": 0, "payload": 0, "outcome": 0}


@pytest.mark.parametrize("fault", ["refused", "blackhole"])
def test_unreachable(tmp_path: Path, long_form: bool, figures: list[dict[str, Any]],
                     fault: str) -> None:
    endpoint = ClosedPort() if fault == "refused" else BlackHole()
    with endpoint:
        run = _run(endpoint.url, long_form, tmp_path)
    acc = accounting(run.result, {k: _none(k) for k in ("span", "payload", "outcome")})
    _check(fault, "connection refused" if fault == "refused" else "accepts, never answers",
           run, acc, long_form, figures)
    # nothing arrives: every record is counted, at the stage where it was lost
    assert acc.dropped == acc.generated
    stages = {k.split("_", 1)[1] for k in acc.reasons if k.startswith("span_")}
    assert "export_cut" in stages, acc.reasons
    assert "queue_full" in stages, acc.reasons


def test_slow_collector(tmp_path: Path, long_form: bool, figures: list[dict[str, Any]]) -> None:
    with CountingSink(mode="slow", delay=2.0) as sink:
        # a deadline the backlog fits in: every record is answered, or counted earlier
        run = _run(sink.url, long_form, tmp_path, shutdown_timeout=60.0)
    acc = accounting(run.result, {k: sink.delivered(k) for k in ("span", "payload", "outcome")})
    _check("slow", "every answer 2 s late", run, acc, long_form, figures)
    assert run.result["shutdown_ok"] is True
    assert acc.delivered["span"] > 0
    assert acc.duplicates == {"span": 0, "payload": 0, "outcome": 0}


def test_deadline_at_shutdown(tmp_path: Path, long_form: bool,
                              figures: list[dict[str, Any]]) -> None:
    with CountingSink() as sink:

        def hang_near_the_end(seconds: float) -> None:
            time.sleep(max(0.0, seconds - 1.5))
            sink.hold()

        run = _run(sink.url, long_form, tmp_path, shutdown_timeout=2.0, during=hang_near_the_end)
    acc = accounting(run.result, {k: sink.delivered(k) for k in ("span", "payload", "outcome")})
    _check("deadline at shutdown", "stops answering 1.5 s before the end; 2 s deadline",
           run, acc, long_form, figures)
    assert run.result["shutdown_ok"] is False
    assert run.result["dropped"].get("span_export_cut", 0) > 0, acc.reasons
    assert acc.delivered["span"] > 0
    assert sink.held > 0
    assert "span_export_cut" in run.stderr  # the warning names what the deadline dropped


@pytest.mark.integration
def test_collector_killed_and_restarted(otelcol_bin: Path, tmp_path: Path, long_form: bool,
                                        figures: list[dict[str, Any]]) -> None:
    from harness import COLLECTOR_CONFIG, Collector, Downstream, collector_env, wait_until

    downstream = Downstream(otelcol_bin, tmp_path)
    downstream.start()
    env = collector_env(tmp_path, MODELOTEL_COLLECTOR_TRACES_ENDPOINT=downstream.endpoint,
                        MODELOTEL_COLLECTOR_LOGS_ENDPOINT=downstream.endpoint,
                        MODELOTEL_COLLECTOR_PROMETHEUS_ENDPOINT="http://127.0.0.1:9/api/v1/write")
    collector = Collector(otelcol_bin, [COLLECTOR_CONFIG / "base.yaml"], env, tmp_path,
                          name="otelcol")
    collector.start()
    try:
        def kill_and_restart(seconds: float) -> None:
            time.sleep(seconds * 0.4)
            collector.stop(signal.SIGKILL)
            time.sleep(2.0)
            collector.start()

        run = _run(f"http://127.0.0.1:{env['MODELOTEL_COLLECTOR_HTTP_PORT']}", long_form,
                   tmp_path, shutdown_timeout=10.0, during=kill_and_restart,
                   env=_env(long_form, OTEL_METRICS_EXPORTER="none"))

        def ids(kind: str) -> list[str]:
            if kind == "span":
                return [s["_attrs"].get("ml.prediction.id", "") for s in downstream.spans()
                        if s["_resource"].get("service.name") == "reliability"]
            event = "ml.prediction.payload" if kind == "payload" else "ml.prediction.outcome"
            return [r["_attrs"].get("ml.prediction.id", "") for r in downstream.logs()
                    if r.get("eventName") == event]

        def delivered() -> dict[str, tuple[int, int]]:
            out = {}
            for kind in ("span", "payload", "outcome"):
                got = ids(kind)
                out[kind] = (len(set(got)), len(got) - len(set(got)))
            return out

        expected = dict(accounting(run.result, delivered()).generated.items())
        dropped = accounting(run.result, delivered()).dropped
        wait_until(lambda: all(delivered()[k][0] >= expected[k] - dropped[k] for k in expected),
                   120, what="the persistent queue to drain downstream")
        time.sleep(2)  # and nothing more (a replayed batch) arrives
        acc = accounting(run.result, delivered())
    finally:
        collector.stop()
        downstream.stop()
    _check("kill + restart", "collector SIGKILLed at 40%, restarted 2 s later (persistent queue)",
           run, acc, long_form, figures)
    assert acc.delivered["span"] > 0
    assert os.path.isdir(tmp_path / "queue")
