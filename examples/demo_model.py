"""A small instrumented model that predicts in a loop and sends its telemetry over OTLP.

Usage::

    .venv/bin/python examples/demo_model.py                 # 30 s, OTLP/HTTP to localhost:4318
    .venv/bin/python examples/demo_model.py --seconds 5 --rate 100
    OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 .venv/bin/python examples/demo_model.py

The model is a scikit-learn-like logistic regression written with numpy (``fit``,
``predict``, ``predict_proba``), instrumented with :func:`modelotel.wrap` without touching
its code. :func:`modelotel.configure` sets up the OTel SDK with OTLP exporters (the standard
``OTEL_*`` variables apply). The script says plainly whether a collector answers at the
OTLP endpoint (a TCP probe) and keeps predicting either way: telemetry export is never in
the way of the model, and an unreachable collector costs a log line now and then.
Halfway through, the input distribution shifts, so drift shows up in the statistics.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from urllib.parse import urlsplit

import numpy as np

import modelotel

FEATURES = ("tenure_months", "monthly_charges", "support_calls", "age")


class ChurnModel:
    """A tiny logistic regression with the scikit-learn API (numpy only)."""

    def fit(self, x: np.ndarray, y: np.ndarray, epochs: int = 300, lr: float = 0.1) -> ChurnModel:
        self.mean_ = x.mean(axis=0)
        self.scale_ = x.std(axis=0) + 1e-9
        z = (x - self.mean_) / self.scale_
        self.coef_ = np.zeros(z.shape[1])
        self.intercept_ = 0.0
        for _ in range(epochs):
            p = 1.0 / (1.0 + np.exp(-(z @ self.coef_ + self.intercept_)))
            grad = p - y
            self.coef_ -= lr * (z.T @ grad) / len(y)
            self.intercept_ -= lr * float(grad.mean())
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mean_) / self.scale_
        p = 1.0 / (1.0 + np.exp(-(z @ self.coef_ + self.intercept_)))
        return np.column_stack([1.0 - p, p])

    def predict(self, x: np.ndarray) -> np.ndarray:
        return (self.predict_proba(x)[:, 1] >= 0.5).astype(np.int64)


def make_data(rng: np.random.Generator, rows: int, shift: float = 0.0) -> np.ndarray:
    return np.column_stack(
        [
            rng.gamma(2.0, 12.0, rows) * (1.0 - shift * 0.5),  # tenure shrinks under drift
            rng.normal(70.0 + 30.0 * shift, 20.0, rows),
            rng.poisson(1.0 + 2.0 * shift, rows).astype(float),
            rng.normal(45.0, 12.0, rows),
        ]
    )


def otlp_endpoint() -> str:
    """The base OTLP endpoint the SDK will use (same defaults as the SDK's)."""
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if endpoint:
        return endpoint
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    return "http://localhost:4317" if protocol == "grpc" else "http://localhost:4318"


def probe(endpoint: str, timeout: float = 1.0) -> tuple[bool, str]:
    """Whether something accepts TCP connections at the endpoint's host and port."""
    parts = urlsplit(endpoint if "://" in endpoint else "http://" + endpoint)
    host = parts.hostname or "localhost"
    port = parts.port or (443 if parts.scheme == "https" else 4318)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, f"{host}:{port}"
    except OSError as exc:
        return False, f"{host}:{port} ({exc.strerror or exc})"


def say_collector(endpoint: str) -> bool:
    ok, where = probe(endpoint)
    if ok:
        print(f"collector: REACHABLE at {where}: telemetry is exported to {endpoint}", flush=True)
    else:
        print(
            f"collector: NOT reachable at {where}: the model keeps predicting; telemetry "
            "cannot be delivered until a collector listens there "
            "(start one with: bash examples/run_demo.sh)",
            flush=True,
        )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="modelotel demo: an instrumented model.")
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("DEMO_SECONDS", 30)))
    parser.add_argument("--rate", type=float, default=50.0, help="predict calls per second")
    parser.add_argument("--service-name", default="modelotel-demo")
    args = parser.parse_args(argv)

    endpoint = otlp_endpoint()
    reachable = say_collector(endpoint)
    modelotel.configure(service_name=args.service_name, export_interval_ms=5000)

    rng = np.random.default_rng(42)
    x_train = make_data(rng, 5000)
    y_train = (x_train[:, 1] / 100.0 + x_train[:, 2] / 3.0 - x_train[:, 0] / 40.0 > 0.6).astype(
        float
    )
    model = modelotel.wrap(
        ChurnModel().fit(x_train, y_train),
        model="churn-demo",
        version="1",
        task="classification",
        owner="demo-team",
        feature_names=FEATURES,
    )
    print(
        f"model: churn-demo v1 ({model.__class__.__name__}, instrumented with modelotel "
        f"{modelotel.__version__}); predicting for {args.seconds:g} s at about "
        f"{args.rate:g} calls/s",
        flush=True,
    )

    start = time.monotonic()
    deadline = start + args.seconds
    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    calls = rows = positives = 0
    next_report = start + 5.0
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        shift = 1.0 if now - start > args.seconds / 2 else 0.0
        batch = make_data(rng, int(rng.integers(1, 33)), shift)
        labels = model.predict(batch)
        if calls % 4 == 0:
            model.predict_proba(batch)
        calls += 1
        rows += len(batch)
        positives += int(labels.sum())
        if now >= next_report:
            status = "reachable" if reachable else "NOT reachable"
            print(
                f"  {now - start:5.1f} s: {calls} calls, {rows} rows, "
                f"{positives / max(rows, 1):.1%} predicted churn, drift "
                f"{'on' if shift else 'off'}, collector {status}",
                flush=True,
            )
            next_report = now + 5.0
            was = reachable
            reachable, _ = probe(endpoint, timeout=0.2)
            if reachable != was:
                say_collector(endpoint)
        if interval:
            time.sleep(interval)

    # with no collector there is nothing to wait for: keep the exit short
    flushed = modelotel.shutdown(timeout=5.0 if reachable else 1.0)
    outcome = "flushed to the collector" if flushed and reachable else "not delivered"
    print(f"done: {calls} predict calls, {rows} rows; telemetry {outcome}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
