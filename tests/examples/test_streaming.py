"""examples/streaming: an async token generator under FastAPI's StreamingResponse (uvicorn);
time to first token on the span and the histogram, the streamed text as output statistics and
payloads, at the real collector and Prometheus."""

from __future__ import annotations

import json
import re
import signal
from typing import Any

import pytest
from examples_support import last_json, run_example
from harness import Stack, wait_until

pytestmark = pytest.mark.integration

REQUESTS = 10
MODEL = "story-teller"


def _value(stack: Stack, expr: str) -> float:
    result = stack.prometheus.query(expr).get("data", {}).get("result", [])
    return float(result[0]["value"][1]) if result else -1.0


def test_streamed_tokens_time_to_first_token_output_text_and_payloads(stack: Stack) -> None:
    summary = last_json(run_example(stack, "streaming", ["--requests", str(REQUESTS)]).stdout)
    # uvicorn's graceful shutdown ends by raising the SIGTERM it got again
    assert summary["server_rc"] in (0, -signal.SIGTERM)
    wait = summary["first_token_wait"]  # the generator sleeps this long before its first token
    replies = [r["reply"] for r in summary["replies"]]
    assert len(replies) == REQUESTS
    assert all(r["as_told"] for r in summary["replies"])  # streamed whole, token by token

    def spans() -> list[dict[str, Any]]:
        got = [s for s in stack.downstream.spans()
               if s["_resource"].get("service.name") == "story-stream"]
        return got if sum(s["name"] == f"predict {MODEL}" for s in got) >= REQUESTS else []

    everything = wait_until(spans, 30, what="the streams' spans at the backend")
    got = [s for s in everything if s["name"] == f"predict {MODEL}"]
    assert len(got) == REQUESTS
    # FastAPI's own request span (SERVER) is the parent: the stream is iterated in its context
    by_id = {s["spanId"]: s for s in everything}
    for s in got:
        parent = by_id[s["parentSpanId"]]
        assert (parent["name"], parent["kind"], parent["traceId"]) == (
            "POST /generate", 2, s["traceId"])
    # one span per stream: its items are the reply's tokens (words, each after its space)
    assert sorted(s["_attrs"]["ml.stream.items"] for s in got) == sorted(
        len(r.split(" ")) for r in replies)
    # the generator's own account of its wait before the first token, per span: at least the
    # 0.2 s it sleeps, more when the loaded machine wakes it late
    log = (stack.workdir / "streaming" / "uvicorn.log").read_text()
    waited = {span: float(seconds) for seconds, span in re.findall(
        r"story: first token after ([0-9.]+) s \(trace [0-9a-f]{32} span ([0-9a-f]{16})\)", log)}
    assert len(waited) == REQUESTS
    assert min(waited.values()) >= wait
    for s in got:
        first = s["_attrs"]["ml.stream.time_to_first_item"]
        assert abs(first - waited[s["spanId"]]) <= 0.05 * waited[s["spanId"]], (first, waited)
        assert "ml.stream.closed_early" not in s["_attrs"]

    sel = f'ml_model_name="{MODEL}",ml_model_version="1"'
    wait_until(lambda: _value(stack, f"ml_prediction_time_to_first_item_seconds_count{{{sel}}}")
               == REQUESTS, 30, what="the time-to-first-item histogram in Prometheus")
    total = _value(stack, f"ml_prediction_time_to_first_item_seconds_sum{{{sel}}}")
    assert total == pytest.approx(sum(s["_attrs"]["ml.stream.time_to_first_item"] for s in got))
    mean_wait = sum(waited.values()) / REQUESTS
    assert abs(total / REQUESTS - mean_wait) <= 0.05 * mean_wait, (total, mean_wait)
    # the whole stream takes longer: the later tokens come after the first one
    assert _value(stack, f"ml_prediction_duration_seconds_sum{{{sel}}}") > total

    # the yielded tokens, joined, are one output text per stream
    chars = [len(r) for r in replies]
    words = [len(r.split()) for r in replies]
    assert _value(stack, f'ml_output_count_total{{{sel},ml_output="text.chars"}}') == REQUESTS
    wait_until(lambda: _value(stack, f'max_over_time(ml_output_max{{{sel},'
                                     f'ml_output="text.chars"}}[10m])') == max(chars), 30,
               what="the longest reply's characters")
    assert _value(stack, f'min_over_time(ml_output_min{{{sel},ml_output="text.chars"}}[10m])') \
        == min(chars)
    assert _value(stack, f'max_over_time(ml_output_max{{{sel},ml_output="text.words"}}[10m])') \
        == max(words)
    outputs = stack.prometheus.query(f"ml_output_count_total{{{sel}}}")["data"]["result"]
    assert {r["metric"]["ml_output"] for r in outputs} == {
        "text.chars", "text.words", "text.blank", "text.non_ascii"}
    # the prompt is the input: a text column too
    assert _value(stack, f'ml_feature_count_total{{{sel},ml_feature="text.chars"}}') == REQUESTS

    def payloads() -> list[dict[str, Any]]:
        got = [r for r in stack.downstream.logs() if r.get("eventName") == "ml.prediction.payload"
               and r["_attrs"].get("ml.model.name") == MODEL]
        return got if len(got) >= REQUESTS else []

    records = wait_until(payloads, 30, what="the payload records")
    assert len(records) == REQUESTS
    span_ids = {s["spanId"] for s in got}
    assert sorted(json.loads(r["_attrs"]["ml.payload.outputs"]) for r in records) \
        == sorted(replies)
    assert sorted(json.loads(r["_attrs"]["ml.payload.inputs"]) for r in records) \
        == sorted(r["prompt"] for r in summary["replies"])
    assert {r["spanId"] for r in records} == span_ids
