"""examples/fastapi: gunicorn with 2 uvicorn workers and --preload, OTel's FastAPI
instrumentation, payloads at 1% with redaction, outcomes from /feedback; what reaches the
real collector and Prometheus."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from examples_support import last_json, run_example
from harness import Stack, wait_until

from modelotel._payload.sampling import key_hash, threshold

pytestmark = pytest.mark.integration

REQUESTS = 400
KEY = "example-key-change-me"  # main.py's default MODELOTEL_PAYLOAD_HMAC_KEY


def _value(stack: Stack, expr: str) -> float:
    result = stack.prometheus.query(expr).get("data", {}).get("result", [])
    return float(result[0]["value"][1]) if result else -1.0


def test_fastapi_request_spans_parent_predict_spans_with_redacted_payloads_and_outcomes(
    stack: Stack,
) -> None:
    summary = last_json(run_example(stack, "fastapi", ["--requests", str(REQUESTS)]).stdout)
    assert summary["workers"] == 2
    assert summary["server_rc"] == 0
    assert summary["feedback"] == REQUESTS // 2

    def count(spans: list[dict[str, Any]], name: str, kind: int) -> int:
        return sum(s["name"] == name and s["kind"] == kind for s in spans)

    def api_spans() -> list[dict[str, Any]]:
        # a request span ends after its predict span, so it may come in a later batch:
        # wait for every kind the test counts
        got = [s for s in stack.downstream.spans()
               if s["_resource"].get("service.name") == "churn-api"]
        done = (count(got, "predict churn", 1) >= REQUESTS
                and count(got, "POST /predict", 2) >= REQUESTS
                and count(got, "POST /feedback", 2) >= REQUESTS // 2)
        return got if done else []

    spans = wait_until(api_spans, 30, what=f"{REQUESTS} predict and request spans at the backend")
    predict = [s for s in spans if s["name"] == "predict churn"]
    assert len(predict) == REQUESTS
    assert len({s["_attrs"]["ml.prediction.id"] for s in predict}) == REQUESTS
    # one instance id per worker, none from the master (it only fitted and forked)
    assert len({s["_resource"]["service.instance.id"] for s in predict}) == 2
    by_id = {s["spanId"]: s for s in spans}
    for s in predict:
        parent = by_id[s["parentSpanId"]]
        assert parent["name"] == "POST /predict"
        assert parent["kind"] == 2  # SERVER: the FastAPI instrumentation's request span
        assert parent["traceId"] == s["traceId"]
    assert count(spans, "POST /feedback", 2) == REQUESTS // 2

    # 1% by customer: exactly the customers whose key hash falls under the threshold
    kept = [i for i in range(REQUESTS) if key_hash(f"cust-{i:05d}") < threshold(0.01)]
    assert kept  # 400 fixed ids: customers 245, 340, 363 and 373
    want = {"hmac-sha256:" + hmac.new(KEY.encode(), f"cust-{i:05d}".encode(),
                                      hashlib.sha256).hexdigest() for i in kept}

    def payloads() -> list[dict[str, Any]]:
        got = [r for r in stack.downstream.logs() if r.get("eventName") == "ml.prediction.payload"
               and r["_attrs"].get("ml.model.name") == "churn"]
        return got if len(got) >= len(kept) else []

    records = wait_until(payloads, 30, what="the payload records")
    assert len(records) == len(kept)
    got = {json.loads(r["_attrs"]["ml.payload.input.customer_id"])[0] for r in records}
    assert got == want
    span_ids = {s["spanId"] for s in predict}
    for r in records:
        assert r["_attrs"]["ml.payload.sample_reason"] == "rate"
        assert r["_attrs"]["ml.payload.redacted"] is True
        assert "ml.payload.input.email" not in r["_attrs"]
        assert "@example.com" not in json.dumps(r)
        assert r["spanId"] in span_ids

    # job = the service name: the quickstart example serves churn version 1 too
    sel = '{job="churn-api",ml_model_name="churn",ml_model_version="1"}'
    wait_until(lambda: _value(stack, f"sum(ml_prediction_calls_total{sel})") == REQUESTS, 30,
               what=f"{REQUESTS} calls in Prometheus")
    wait_until(lambda: _value(stack, f"sum(ml_outcome_count_total{sel})") == REQUESTS // 2, 30,
               what="the outcomes in Prometheus")
    assert _value(stack, f"sum(ml_outcome_correct_total{sel})") == summary["correct"]
    assert _value(stack, 'sum(ml_feature_count_total{ml_model_name="churn",'
                         'ml_feature="monthly_charges"})') == REQUESTS
