"""An instrumented model, run as its own process by the integration tests.

It sends to whatever OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_PROTOCOL say (the test
points them at the collector under test), predicts in a loop, shuts down (flushing) and
prints one JSON line: how many calls it made, how many raised, and the prediction ids.

    model_app.py --calls 50                 # 50 predictions, as fast as the SDK allows
    model_app.py --rate 20 --stop-file F    # 20 predictions/s until F exists

Every input row carries two canary secrets that the SDK's own redaction does not know (a
Stripe-style key in a free-text field, and an ``api_token`` field), so only the collector's
redaction processor can remove them from the payload records.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

CANARY_VALUE = "sk_live_CANARY0123456789abcdef"
CANARY_TOKEN = "tok-CANARY-field-value-42"


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="churn")
    p.add_argument("--version", default="3")
    p.add_argument("--calls", type=int, default=0, help="number of predictions (0: until stopped)")
    p.add_argument("--rate", type=float, default=0.0, help="predictions per second (0: no pause)")
    p.add_argument("--stop-file", default="", help="stop when this file exists")
    p.add_argument("--max-seconds", type=float, default=120.0)
    p.add_argument("--error-every", type=int, default=0, help="every Nth call raises ValueError")
    p.add_argument("--summary", default="", help="also write the JSON summary to this file")
    p.add_argument("--payload-rps", type=float, default=100_000.0, help="payload records/s budget")
    p.add_argument("--app-log", action="store_true", help="one plain (non-payload) log per call")
    p.add_argument("--outcomes", action="store_true", help="also observe() + record_outcome()")
    p.add_argument("--baseline", action="store_true", help="profile training data: drift metrics")
    p.add_argument("--baseline-file", default="", help="load the baseline from this file instead")
    p.add_argument("--rows", type=int, default=4, help="rows per batch")
    return p.parse_args(argv)


def training_baseline() -> Any:
    """The model's training profile: incomes lower than what it will see in serving (drift)."""
    import modelotel

    train = [{"age": 20.0 + i % 50, "income": float(i % 60), "fail": False} for i in range(500)]
    return modelotel.Baseline.from_data(train, outputs=[int(r["income"] > 50.0) for r in train])


def main(argv: list[str]) -> int:
    args = _parse(argv)
    import modelotel

    modelotel.configure(service_name=os.environ.get("OTEL_SERVICE_NAME", "model-app"))

    payload = modelotel.PayloadConfig(
        sample_rate=1.0, max_records_per_second=args.payload_rps, max_bytes_per_second=1e12
    )
    from opentelemetry import _logs

    app_logger = _logs.get_logger_provider().get_logger("integration-app")
    scorer = modelotel.observe(args.model + "-scorer", version=args.version, task="classification")
    regressor = modelotel.observe(
        args.model + "-regressor", version=args.version, task="regression"
    )

    baseline: object = None
    if args.baseline_file:
        baseline = args.baseline_file
    elif args.baseline:
        baseline = training_baseline()

    @modelotel.instrument(
        model=args.model,
        baseline=baseline,
        version=args.version,
        task="classification",
        owner="team-integration",
        payload=payload,
    )
    def predict(rows: list[dict[str, Any]]) -> list[int]:
        if rows[0]["fail"]:
            raise ValueError("bad batch")
        return [int(r["income"] > 50.0) for r in rows]

    calls = errors = 0
    start = time.monotonic()
    while True:
        if args.calls and calls >= args.calls:
            break
        if args.stop_file and Path(args.stop_file).exists():
            break
        if time.monotonic() - start > args.max_seconds:
            break
        fail = bool(args.error_every) and (calls + 1) % args.error_every == 0
        rows = [
            {
                "age": 20.0 + (calls + i) % 50,
                "income": float((calls * 7 + i * 13) % 100),
                "note": f"customer key {CANARY_VALUE}",
                "api_token": CANARY_TOKEN,
                "fail": fail,
            }
            for i in range(args.rows)
        ]
        calls += 1
        try:
            predict(rows)
        except ValueError:
            errors += 1
        if args.app_log:
            app_logger.emit(
                body=f"{args.model} served a batch ({CANARY_VALUE})", attributes={"app.call": calls}
            )
        if args.outcomes:
            with scorer as call:
                call.record_inputs([[float(calls % 10)]])
                label = calls % 2
                call.record_outputs(label)
            # a classifier that is right 3 times out of 4
            modelotel.record_outcome(call.prediction_id, label if calls % 4 else 1 - label)
            with regressor as call:
                call.record_inputs([[float(calls % 10)]])
                call.record_outputs([0.5 * (calls % 10)])
            modelotel.record_outcome(call.prediction_id, [0.5 * (calls % 10) + 0.25])
            # a label for a prediction this process never made
            modelotel.record_outcome("ffffffffffffffff", 1, model=args.model + "-scorer")
        if args.rate:
            time.sleep(1.0 / args.rate)

    flushed = modelotel.shutdown(timeout=30.0)
    summary = {"calls": calls, "errors": errors, "flushed": bool(flushed)}
    line = json.dumps(summary)
    if args.summary:
        Path(args.summary).write_text(line + "\n")
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
