"""A workload with known counts of failed, check-firing, slow and ordinary predictions.

Run as its own process by the tail-sampling tests: it sends to OTEL_EXPORTER_OTLP_ENDPOINT,
makes every kind of prediction for two models (each inside an application span, so that a trace
has two spans: the request and the prediction), shuts down (flushing) and prints one JSON line:
the prediction ids of each kind.

    sampling_app.py --ordinary 1000 --failed 20 --checks 20 --slow 10 \
        --slow-ms fraud=100,churn=400 --medium-ms 100

Kinds, per model:
  failed    the model raises (span gets ``error.type``, status ERROR)
  checks    the model returns NaN (the non-finite output check fires: ``ml.checks.fired``)
  slow      the model sleeps ``--slow-ms[model]`` (above that model's threshold in the test)
  ordinary  fast, healthy calls
  medium    churn only: sleeps ``--medium-ms``, slower than fraud's threshold but not churn's,
            so it is ordinary for churn (proves the thresholds are per model)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import time
from collections import defaultdict
from typing import Any

MODELS = ("fraud", "churn")


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--ordinary", type=int, default=500, help="ordinary calls per model")
    p.add_argument("--failed", type=int, default=10, help="failed calls per model")
    p.add_argument("--checks", type=int, default=10, help="check-firing calls per model")
    p.add_argument("--slow", type=int, default=5, help="slow calls per model")
    p.add_argument("--slow-ms", default="fraud=100,churn=400", help="sleep of a slow call")
    p.add_argument("--medium", type=int, default=20, help="churn calls at --medium-ms")
    p.add_argument("--medium-ms", type=float, default=100.0)
    p.add_argument("--seed", type=int, default=7)
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = _parse(argv)
    from opentelemetry import trace

    import modelotel

    modelotel.configure()
    app_tracer = trace.get_tracer("sampling-app")
    slow_s = {k: float(v) / 1000.0 for k, v in (kv.split("=") for kv in args.slow_ms.split(","))}
    payload = modelotel.PayloadConfig(
        sample_rate=1.0, max_records_per_second=1e9, max_bytes_per_second=1e12
    )

    def make(model: str) -> Any:
        @modelotel.instrument(model=model, version="1", task="regression", payload=payload)
        def predict(rows: list[list[float]], kind: str, sleep_s: float = 0.0) -> list[float]:
            if sleep_s:
                time.sleep(sleep_s)
            if kind == "failed":
                raise ValueError("bad batch")
            if kind == "checks":
                return [float("nan") for _ in rows]
            return [sum(r) for r in rows]

        return predict

    predictors = {m: make(m) for m in MODELS}
    plan: list[tuple[str, str, float]] = []
    for m in MODELS:
        plan += [(m, "ordinary", 0.0)] * args.ordinary
        plan += [(m, "failed", 0.0)] * args.failed
        plan += [(m, "checks", 0.0)] * args.checks
        plan += [(m, "slow", slow_s[m])] * args.slow
    plan += [("churn", "medium", args.medium_ms / 1000.0)] * args.medium
    random.Random(args.seed).shuffle(plan)

    ids: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for i, (model, kind, sleep_s) in enumerate(plan):
        with app_tracer.start_as_current_span("handle request"), contextlib.suppress(ValueError):
            predictors[model]([[float(i), 1.0], [2.0, 3.0]], kind, sleep_s)
        ids[model][kind].append(modelotel.last_prediction_id() or "")
        if i % 200 == 199:
            time.sleep(0.05)  # let the span processor's queue drain (it drops when full)

    flushed = modelotel.shutdown(timeout=30.0)
    print(json.dumps({"flushed": bool(flushed), "ids": ids}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
