"""The instrumented application of the reliability scenarios: a steady load, then shutdown.

Run in its own interpreter (OpenTelemetry's global providers can be set once per process)::

    python load_app.py --endpoint http://127.0.0.1:4318 --seconds 60 --threads 4 --rate 50

Each of ``--threads`` threads calls an instrumented ``predict`` at ``--rate`` calls per second
(a steady schedule, not as fast as it can), timing every call; every ``--outcome-every``-th
call also records an outcome; every ``--raise-every``-th call raises (its exception must
reach the caller unchanged). Every call makes a span and is kept for a payload record
(``payload_sample_rate=1``; the record budget then drops some, counted). When the time is
up it calls ``modelotel.shutdown()`` and prints one JSON line: what it generated, what
modelotel counted as dropped (by reason), internal errors, latencies, RSS and open file
descriptors sampled every ``--sample-every`` seconds, unexpected exceptions, calls slower
than a second (hangs), and how long shutdown took.

``--canary`` runs the privacy sweep instead: two models whose inputs, outputs, exceptions
and labels carry personal data (see ``CANARIES``), payload capture on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import Any

import numpy as np

import modelotel
from modelotel import _safety

# Canaries: personal data the redaction rules must catch (patterns) or drop (field rules).
CANARIES = {
    "email": "jane.canary@example.com",
    "card": "4111 1111 1111 1111",
    "card_plain": "4012888888881881",
    "phone": "+44 20 7946 0958",
    "ssn": "078-05-1120",
    "ip": "203.0.113.77",
    "password": "CANARY-PW-7f3a91c2",       # in a denied field
    "customer": "CANARY-CUST-5be0d4e8",     # in a hashed field
    "label_email": "label.canary@example.org",  # as a class label (outcome)
}


def _proc_status() -> tuple[float, int, int]:
    """(RSS MiB, open file descriptors, threads) of this process."""
    rss = 0.0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024.0
    return rss, len(os.listdir("/proc/self/fd")), threading.active_count()


class Sampler(threading.Thread):
    def __init__(self, every: float) -> None:
        super().__init__(daemon=True)
        self.every = every
        self.samples: list[tuple[float, float, int, int]] = []
        self.stop = threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        while True:
            rss, fds, threads = _proc_status()
            self.samples.append((round(time.monotonic() - self.t0, 2), rss, fds, threads))
            if self.stop.wait(self.every):
                return


def _percentiles(ns: list[int]) -> dict[str, float]:
    if not ns:
        return {}
    a = np.asarray(ns, dtype=np.float64) / 1000.0
    return {f"p{q}": round(float(np.percentile(a, q)), 2) for q in (50, 90, 99, 99.9)} | {
        "max": round(float(a.max()), 1), "n": len(ns)}


def run_load(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(4,))
    x = rng.normal(size=(8, 4))

    def plain(batch: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return (batch @ weights > 0).astype(np.int64)

    cfg = modelotel.PayloadConfig(max_records_per_second=args.payload_rps,
                                  max_bytes_per_second=1e9)
    predict = modelotel.instrument(model="reliability", version="1", task="classification",
                                   payload_sample_rate=1.0, payload=cfg)(plain)
    bare = [0]
    for _ in range(2000):  # the bare function's cost on this machine, for context
        t0 = time.perf_counter_ns()
        plain(x)
        bare.append(time.perf_counter_ns() - t0)

    stats = {"calls": 0, "raised": 0, "outcomes": 0, "unexpected": 0, "hangs": 0}
    lock = threading.Lock()
    # preallocated and written now: a list of Python ints would grow by ~36 bytes per call,
    # and np.zeros' pages only become resident as the calls write them, 8 bytes per call
    # (~0.9 MiB per 10 minutes at 200 calls/s): the harness's growth, not the SDK's, in the
    # soak's RSS slope
    cap = int(args.rate * args.seconds * 1.1) + 1000
    lat = [np.full(cap, -1, dtype=np.int64) for _ in range(args.threads)]
    n_lat = [0] * args.threads
    slow: list[tuple[float, float]] = []
    errors_seen: list[str] = []
    t_start = time.monotonic()
    end = t_start + args.seconds

    def worker(k: int) -> None:
        period = 1.0 / args.rate
        nxt = time.monotonic() + k * period / args.threads
        calls = raised = outcomes = unexpected = hangs = 0
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if nxt > now:
                time.sleep(nxt - now)
            nxt += period
            n = calls + 1
            boom = args.raise_every and n % args.raise_every == 0
            t0 = time.perf_counter_ns()
            try:
                if boom:
                    with modelotel.observe("reliability", version="1") as call:
                        call.record_inputs(x)
                        raise ValueError("cannot score this batch")
                out = predict(x)
            except ValueError as exc:
                if not boom or str(exc) != "cannot score this batch":
                    unexpected += 1
                raised += 1
            except Exception as exc:
                unexpected += 1
                errors_seen.append(repr(exc))
            else:
                if out.shape != (8,):
                    unexpected += 1
            dt = time.perf_counter_ns() - t0
            if n_lat[k] < cap:
                lat[k][n_lat[k]] = dt
                n_lat[k] += 1
            if dt > 1e9:
                hangs += 1
                if len(slow) < 50:
                    slow.append((round(time.monotonic() - t_start, 1), round(dt / 1e6, 1)))
            calls += 1
            if args.outcome_every and calls % args.outcome_every == 0:
                pid = modelotel.last_prediction_id()
                modelotel.record_outcome(pid or "", [1] * 8, model="reliability", version="1")
                outcomes += 1
        with lock:
            for key, v in (("calls", calls), ("raised", raised), ("outcomes", outcomes),
                           ("unexpected", unexpected), ("hangs", hangs)):
                stats[key] += v

    # A thread that only sleeps 10 ms at a time: when it wakes late by as much as a slow
    # call took, the whole process was stalled (the scheduler, the GIL), not one call.
    stalls: list[tuple[float, float]] = []

    def heartbeat() -> None:
        while time.monotonic() < end:
            t0 = time.monotonic()
            time.sleep(0.01)
            late = time.monotonic() - t0 - 0.01
            if late > 0.2 and len(stalls) < 50:
                stalls.append((round(t0 - t_start, 1), round(late * 1e3, 1)))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.threads)]
    threads.append(threading.Thread(target=heartbeat))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats["errors_seen"] = errors_seen[:5]  # type: ignore[assignment]
    stats["slow_calls_s_ms"] = slow  # type: ignore[assignment]
    stats["stalls_s_ms"] = stalls  # type: ignore[assignment]
    warm = np.concatenate([lat[k][max(1, int(args.rate)):n_lat[k]]
                           for k in range(args.threads)]).tolist()
    stats["latency_us"] = _percentiles(warm)  # type: ignore[assignment]
    stats["bare_us"] = _percentiles(bare[100:])  # type: ignore[assignment]
    return stats


def run_canary(args: argparse.Namespace) -> dict[str, Any]:
    c = CANARIES
    fields = modelotel.PayloadConfig(deny_fields={"password"}, hash_fields={"customer_id"},
                                     max_records_per_second=1e6, max_bytes_per_second=1e9)
    patterns = modelotel.PayloadConfig(max_records_per_second=1e6, max_bytes_per_second=1e9)

    def rows(i: int) -> list[dict[str, Any]]:
        return [{
            "email": c["email"], "card": c["card"], "card_int": int(c["card_plain"]),
            "phone": c["phone"], "ssn": c["ssn"], "ip": c["ip"],
            "note": f"call {c['phone']} or write to {c['email']} from {c['ip']}",
            "password": c["password"], "customer_id": c["customer"], "amount": 12.5 + i,
        }]

    def score(batch: list[dict[str, Any]]) -> list[str]:
        if int(batch[0]["amount"]) % 2:  # half the calls fail, quoting their input
            raise ValueError(f"cannot score {batch}")
        return [f"notify {batch[0]['email']}"]

    with_fields = modelotel.instrument(model="canary-fields", version="1",
                                       task="classification", payload_sample_rate=1.0,
                                       payload=fields)(score)

    # the model without field rules gets no password or customer id (nothing could drop them)
    with_patterns = modelotel.instrument(model="canary-patterns", version="1",
                                         task="classification", payload_sample_rate=1.0,
                                         payload=patterns)(score)
    arrays = modelotel.instrument(model="canary-array", version="1", payload_sample_rate=1.0,
                                  payload=patterns)(lambda a: a[::-1].copy())
    calls = raised = 0
    for i in range(args.canary_calls):
        for fn in (with_fields, with_patterns):
            calls += 1
            batch = rows(i)
            if fn is with_patterns:
                batch = [{k: v for k, v in r.items() if k not in ("password", "customer_id")}
                         for r in batch]
            try:
                out = fn(batch)
            except ValueError:
                raised += 1
                out = None
            pid = modelotel.last_prediction_id() or ""
            model = "canary-fields" if fn is with_fields else "canary-patterns"
            modelotel.record_outcome(pid, [c["label_email"]], model=model, version="1",
                                     **({} if out is not None else {"predicted": [c["email"]]}))
        arrays(np.array([c["email"], c["card"], c["ssn"], c["ip"]]))
        calls += 1
    return {"calls": calls, "raised": raised, "canary_calls": args.canary_calls}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--protocol", default="http/protobuf")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--rate", type=float, default=50.0, help="calls per second per thread")
    p.add_argument("--outcome-every", type=int, default=4)
    p.add_argument("--raise-every", type=int, default=25)
    p.add_argument("--payload-rps", type=float, default=100.0)
    p.add_argument("--shutdown-timeout", type=float, default=3.0)
    p.add_argument("--sample-every", type=float, default=1.0)
    p.add_argument("--canary", action="store_true")
    p.add_argument("--canary-calls", type=int, default=20)
    p.add_argument("--ready-file", default="", help="touched once configured (for the test)")
    args = p.parse_args()

    modelotel.configure(service_name="reliability", endpoint=args.endpoint,
                        protocol=args.protocol, shutdown_timeout=args.shutdown_timeout,
                        export_interval_ms=2000)
    unraisable: list[str] = []
    sys.unraisablehook = lambda u: unraisable.append(repr(u.exc_value))
    thread_errors: list[str] = []
    threading.excepthook = lambda a: thread_errors.append(repr(a.exc_value))
    sampler = Sampler(args.sample_every)
    sampler.start()
    if args.ready_file:
        open(args.ready_file, "w").close()
    t0 = time.monotonic()
    result = run_canary(args) if args.canary else run_load(args)
    run_s = time.monotonic() - t0
    t1 = time.monotonic()
    ok = modelotel.shutdown()
    shutdown_s = time.monotonic() - t1
    sampler.stop.set()
    sampler.join()
    result.update({
        "run_s": round(run_s, 2),
        "shutdown_ok": ok,
        "shutdown_s": round(shutdown_s, 2),
        "dropped": {k: v for k, v in _safety.health.dropped.items() if v},
        "skipped": {k: v for k, v in _safety.health.skipped.items() if v},
        "internal_errors": {k: v for k, v in _safety.health.errors.items() if v},
        "unraisable": unraisable[:5],
        "thread_errors": thread_errors[:5],
        "samples": sampler.samples,
    })
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
