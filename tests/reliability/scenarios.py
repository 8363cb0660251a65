"""Running load_app.py against an endpoint and checking that nothing is lost unaccounted.

Example::

    with CountingSink() as sink:
        result = run_load(sink.url, seconds=6)
    check_accounting(result, sink)         # generated == delivered + counted dropped, per kind

The identity, per kind of record:

* spans: every call makes one span; ``calls == delivered + dropped(span_*)``;
* payload records: every call is kept for one (``payload_sample_rate=1``);
  ``calls == delivered + dropped(payload_*)`` (the budget's drops included);
* outcome records: ``outcomes == delivered + dropped(outcome_*)``.

"Delivered" counts distinct prediction ids at the endpoint; duplicates are reported
separately (a persistent queue may replay a batch after a crash).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
APP = HERE / "load_app.py"
KINDS = ("span", "payload", "outcome")


def machine_load() -> str:
    try:
        return "load average " + ", ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "load average unknown"


def clean_env(**overrides: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MODELOTEL_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


def start_load(endpoint: str, *, env: dict[str, str] | None = None,
               **options: Any) -> subprocess.Popen[str]:
    argv = [sys.executable, str(APP), "--endpoint", endpoint]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is not False and value is not None:
            argv += [flag, str(value)]
    return subprocess.Popen(argv, env=env or clean_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@dataclass
class Run:
    result: dict[str, Any]
    stderr: str
    returncode: int
    wall_s: float
    timed_out: bool = False


def finish(proc: subprocess.Popen[str], timeout: float, t0: float) -> Run:
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        timed_out = True
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    return Run(result, stderr, proc.returncode, time.monotonic() - t0, timed_out)


def run_load(endpoint: str, *, timeout: float, env: dict[str, str] | None = None,
             **options: Any) -> Run:
    t0 = time.monotonic()
    return finish(start_load(endpoint, env=env, **options), timeout, t0)


@dataclass
class Accounting:
    """Generated / delivered / counted dropped of each kind, and what is off."""

    generated: dict[str, int] = field(default_factory=dict)
    delivered: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)

    def unaccounted(self) -> dict[str, int]:
        return {k: self.generated[k] - self.delivered[k] - self.dropped[k] for k in KINDS
                if self.generated[k] != self.delivered[k] + self.dropped[k]}


def accounting(result: dict[str, Any], delivered: dict[str, tuple[int, int]]) -> Accounting:
    """The identity's terms from the app's summary and ``{kind: (unique, duplicates)}``."""
    dropped = result.get("dropped", {})
    acc = Accounting(reasons=dict(dropped))
    calls = int(result.get("calls", 0))
    acc.generated = {"span": calls, "payload": calls, "outcome": int(result.get("outcomes", 0))}
    for kind in KINDS:
        acc.delivered[kind], acc.duplicates[kind] = delivered[kind]
        acc.dropped[kind] = sum(v for k, v in dropped.items() if k.startswith(kind + "_"))
    return acc


def rss_slope_mib_per_10min(samples: list[list[float]], after_s: float) -> float:
    """Least-squares slope of RSS (MiB) over time after ``after_s``, in MiB per 10 minutes."""
    pts = [(t, rss) for t, rss, *_ in samples if t >= after_s]
    if len(pts) < 3:
        return float("nan")
    t = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    slope = float(np.polyfit(t, y, 1)[0])
    return slope * 600.0


def summary(name: str, load: str, fault: str, run: Run, acc: Accounting | None,
            healthy: dict[str, float] | None = None) -> dict[str, Any]:
    """One row of RELIABILITY.md's scenario table."""
    r = run.result
    lat = r.get("latency_us", {})
    samples = r.get("samples", [])
    row: dict[str, Any] = {
        "section": "scenario",
        "scenario": name,
        "load": load,
        "fault": fault,
        "p50_us": lat.get("p50"),
        "p99_us": lat.get("p99"),
        "bare_p50_us": r.get("bare_us", {}).get("p50"),
        "calls": r.get("calls"),
        "rss_start_mib": samples[0][1] if samples else None,
        "rss_end_mib": samples[-1][1] if samples else None,
        "rss_slope_mib_per_10min": rss_slope_mib_per_10min(samples, 0.0) if samples else None,
        "fds": sorted({s[2] for s in samples}) if samples else [],
        "exceptions": int(r.get("unexpected", 0)) + sum(r.get("internal_errors", {}).values())
        + len(r.get("unraisable", [])) + len(r.get("thread_errors", [])),
        "hangs": int(r.get("hangs", 0)) + int(run.timed_out),
        "crashes": int(run.returncode != 0 and not run.timed_out),
        "shutdown_s": r.get("shutdown_s"),
        "shutdown_ok": r.get("shutdown_ok"),
        "max_call_ms": round(lat["max"] / 1000.0, 1) if lat.get("max") is not None else None,
        "slow_calls_s_ms": r.get("slow_calls_s_ms", []),
        "stalls_s_ms": r.get("stalls_s_ms", []),
    }
    if healthy and lat:
        row["added_p50_us"] = round(lat["p50"] - healthy["p50"], 2)
        row["added_p99_us"] = round(lat["p99"] - healthy["p99"], 2)
    if acc is not None:
        row.update(generated=acc.generated, delivered=acc.delivered, dropped=acc.dropped,
                   duplicates=acc.duplicates, reasons=acc.reasons,
                   unaccounted=acc.unaccounted())
    return row
