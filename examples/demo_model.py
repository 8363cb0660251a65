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

The story it tells, as a user would write it:

1. at training time, :meth:`modelotel.Baseline.from_data` profiles the training inputs and
   the model's outputs on them (saved to ``--baseline`` and loaded from there by ``wrap``);
2. in production, every ``predict`` call feeds per-feature statistics; at each metric
   export (every ``--export-interval-ms``) the window's drift against the baseline is
   exported as ``ml.feature.drift`` (PSI, JS, KS, Wasserstein);
3. halfway through, ``monthly_charges`` and ``support_calls`` shift (``tenure_months`` and
   ``age`` do not): their drift rises, the others' stays low;
4. labels arrive later: for a share of the predictions the true outcome (from the true
   relationship, which the linear model only approximates near its training data) is
   reported with :func:`modelotel.record_outcome`, joined by the id from
   :func:`modelotel.last_prediction_id`; accuracy per model version (``ml.outcome.*``)
   drops after the shift;
5. at three quarters, an incident for 10% of the run (at least 2 s): a feature-pipeline
   release sends ``monthly_charges`` in cents. Nothing raises; the model predicts churn for
   everyone. The silent-failure checks (``output_class_collapse``, ``output_constant``)
   fire in ``ml.check.violations`` and the ``ModelSilentFailure`` alert with them.
"""

from __future__ import annotations

import argparse
import collections
import json
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


#: The features that the input shift moves (the others keep their training distribution).
SHIFTED = ("monthly_charges", "support_calls")


def make_data(rng: np.random.Generator, rows: int, shift: float = 0.0) -> np.ndarray:
    """Customers; with ``shift=1`` charges rise by 1.5 standard deviations, support calls triple."""
    return np.column_stack(
        [
            rng.gamma(2.0, 12.0, rows),  # tenure_months
            rng.normal(70.0 + 30.0 * shift, 20.0, rows),  # monthly_charges
            rng.poisson(1.0 + 2.0 * shift, rows).astype(float),  # support_calls
            rng.normal(45.0, 12.0, rows),  # age
        ]
    )


def true_churn(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """Who really churns: not linear. Charges matter up to about 90 (customers paying over
    100 are on premium plans and stay), support calls up to 2; 3% label noise. A linear
    model fitted on the training range gets it mostly right there, and wrong after the shift."""
    tenure, charges, calls = x[:, 0], x[:, 1], x[:, 2]
    score = (
        np.minimum(charges, 90.0) / 100.0
        + np.minimum(calls, 2.0) / 3.0
        - tenure / 40.0
        - 0.4 * (charges > 100.0)
    )
    y = (score > 0.6).astype(np.int64)
    noisy: np.ndarray = np.where(rng.random(len(y)) < 0.03, 1 - y, y)
    return noisy


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
    parser.add_argument(
        "--export-interval-ms",
        type=int,
        default=1000,
        help="metric export interval = drift window (short, so a 30 s run shows several)",
    )
    parser.add_argument(
        "--baseline",
        help="the training baseline file: written at start, or used as it is if it exists "
        "(default: kept in memory)",
    )
    parser.add_argument(
        "--profile-only", action="store_true",
        help="fit, write the baseline (--baseline) and stop: what a training pipeline ships",
    )
    parser.add_argument("--label-share", type=float, default=0.5, help="predictions labelled")
    parser.add_argument(
        "--label-delay", type=float, default=0.5, help="seconds until a label arrives"
    )
    parser.add_argument("--run-file", help="write the run's timeline (JSON) here")
    args = parser.parse_args(argv)

    if args.profile_only and not args.baseline:
        parser.error("--profile-only needs --baseline")
    if not args.profile_only:
        endpoint = otlp_endpoint()
        reachable = say_collector(endpoint)
        modelotel.configure(
            service_name=args.service_name, export_interval_ms=args.export_interval_ms
        )

    # --- training time: fit, then profile the training data for drift detection
    rng = np.random.default_rng(42)
    x_train = make_data(rng, 5000)
    y_train = true_churn(rng, x_train)
    fitted = ChurnModel().fit(x_train, y_train.astype(float))
    profile = modelotel.Baseline.from_data(
        x_train, outputs=fitted.predict(x_train), feature_names=FEATURES
    )
    baseline: object = profile
    if args.baseline and os.path.exists(args.baseline) and not args.profile_only:
        # shipped with the model (and known to the drift rules: modelotel rules)
        baseline = args.baseline
        print(f"baseline: {baseline} ({modelotel.Baseline.load(baseline).hash})", flush=True)
    elif args.baseline:  # as a training pipeline would: a file shipped with the model
        digest = profile.save(args.baseline)
        baseline = args.baseline
        print(f"baseline: training profile saved to {baseline} ({digest})", flush=True)
    if args.profile_only:
        return 0

    # --- serving time: the same model object, instrumented without touching its code
    model = modelotel.wrap(
        fitted,
        model="churn-demo",
        version="1",
        task="classification",
        owner="demo-team",
        feature_names=FEATURES,
        baseline=baseline,
    )
    shift_at = args.seconds / 2
    incident = (
        0.75 * args.seconds,
        min(0.75 * args.seconds + max(0.1 * args.seconds, 2.0), args.seconds),
    )
    print(
        f"model: churn-demo v1 ({model.__class__.__name__}, instrumented with modelotel "
        f"{modelotel.__version__}); predicting for {args.seconds:g} s at about "
        f"{args.rate:g} calls/s; inputs shift at {shift_at:g} s "
        f"({', '.join(SHIFTED)}); labels for {args.label_share:.0%} of the predictions "
        f"arrive {args.label_delay:g} s later; an upstream incident from {incident[0]:g} s "
        f"to {incident[1]:g} s",
        flush=True,
    )

    wall, start = time.time(), time.monotonic()
    deadline = start + args.seconds
    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    calls = rows = positives = labelled = 0
    # labels that arrive later: (due time, prediction id, true labels)
    pending: collections.deque[tuple[float, str, list[int]]] = collections.deque()
    next_report = start + 5.0
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        shift = 1.0 if now - start > shift_at else 0.0
        batch = make_data(rng, int(rng.integers(1, 33)), shift)
        broken = incident[0] <= now - start < incident[1]
        if broken:  # the upstream bug: charges in cents (the customers did not change)
            served = batch.copy()
            served[:, 1] *= 100.0
            labels = model.predict(served)
        else:
            labels = model.predict(batch)
        prediction_id = modelotel.last_prediction_id()  # this call's ml.prediction.id
        if calls % 4 == 0:
            model.predict_proba(batch)  # a secondary method: a span, no statistics
        calls += 1
        rows += len(batch)
        positives += int(labels.sum())
        if prediction_id and rng.random() < args.label_share:
            pending.append((now + args.label_delay, prediction_id, true_churn(rng, batch).tolist()))
        while pending and pending[0][0] <= now:
            _, pid, actual = pending.popleft()
            modelotel.record_outcome(pid, actual, model="churn-demo", version="1")
            labelled += 1
        if now >= next_report:
            status = "reachable" if reachable else "NOT reachable"
            print(
                f"  {now - start:5.1f} s: {calls} calls, {rows} rows, "
                f"{positives / max(rows, 1):.1%} predicted churn, labels for {labelled} calls, "
                f"input shift {'on' if shift else 'off'}"
                f"{', INCIDENT: charges sent in cents' if broken else ''}, collector {status}",
                flush=True,
            )
            next_report = now + 5.0
            was = reachable
            reachable, _ = probe(endpoint, timeout=0.2)
            if reachable != was:
                say_collector(endpoint)
        if interval:
            time.sleep(interval)

    for _, pid, actual in pending:  # the last labels arrive
        modelotel.record_outcome(pid, actual, model="churn-demo", version="1")
        labelled += 1
    if args.run_file:
        with open(args.run_file, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "start": wall,
                    "shift": wall + shift_at,
                    "incident": [wall + incident[0], wall + incident[1]],
                    "end": wall + (time.monotonic() - start),
                    "export_interval_s": args.export_interval_ms / 1000.0,
                    "label_delay_s": args.label_delay,
                    "model": "churn-demo",
                    "version": "1",
                    "features": FEATURES,
                    "shifted": SHIFTED,
                },
                f,
            )
    # with no collector there is nothing to wait for: keep the exit short
    flushed = modelotel.shutdown(timeout=5.0 if reachable else 1.0)
    outcome = "flushed to the collector" if flushed and reachable else "not delivered"
    print(
        f"done: {calls} predict calls, {rows} rows, labels for {labelled} calls; "
        f"telemetry {outcome}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
