"""End to end: an instrumented model -> our collector (base.yaml) -> a tracing/logs backend and
a real Prometheus. Everything runs as real processes on free 127.0.0.1 ports.

The "backend" for traces and logs is a second collector writing what it receives to JSON files
(tests/integration/configs/downstream.yaml); metrics go by remote write into Debian's
Prometheus, queried through its HTTP API. The stack is started once per session (conftest.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from harness import Stack, run_model_app, wait_until
from model_app import CANARY_TOKEN, CANARY_VALUE

from modelotel import attributes as A  # noqa: N812

pytestmark = pytest.mark.integration

CALLS = 30
ERROR_EVERY = 10


def _spans_of(stack: Stack, model: str) -> list[dict[str, Any]]:
    return [s for s in stack.downstream.spans() if s["_attrs"].get(A.ML_MODEL_NAME) == model]


def _payloads_of(stack: Stack, model: str) -> list[dict[str, Any]]:
    return [
        r
        for r in stack.downstream.logs()
        if r.get("eventName") == A.EVENT_PREDICTION_PAYLOAD
        and r["_attrs"].get(A.ML_MODEL_NAME) == model
    ]


@pytest.fixture(scope="module", params=["grpc", "http/protobuf"], ids=["grpc", "http"])
def sent(request: pytest.FixtureRequest, stack: Stack) -> tuple[str, dict[str, Any]]:
    """Run the model once per protocol against the collector; returns (model name, summary)."""
    protocol: str = request.param
    model = "churn-" + protocol.split("/")[0]
    summary = run_model_app(
        stack.workdir,
        ["--model", model, "--calls", str(CALLS), "--error-every", str(ERROR_EVERY), "--app-log"],
        stack.otlp_env(protocol),
    )
    assert summary == {"calls": CALLS, "errors": CALLS // ERROR_EVERY, "flushed": True}
    wait_until(lambda: len(_spans_of(stack, model)) >= CALLS, 30, what=f"{CALLS} spans of {model}")
    wait_until(lambda: len(_payloads_of(stack, model)) >= CALLS, 30, what=f"payloads of {model}")
    return model, summary


def test_every_span_arrives_with_our_attributes(
    stack: Stack, sent: tuple[str, dict[str, Any]]
) -> None:
    model, _ = sent
    spans = _spans_of(stack, model)
    assert len(spans) == CALLS
    assert {s["name"] for s in spans} == {A.SPAN_NAME_TEMPLATE.format(model=model)}
    for s in spans:
        assert s["_attrs"][A.ML_MODEL_VERSION] == "3"
        assert s["_attrs"][A.ML_INPUT_ROWS] == 4
        assert s["_resource"]["service.name"] == "integration-model"
    ids = [s["_attrs"][A.ML_PREDICTION_ID] for s in spans]
    assert len(set(ids)) == CALLS
    failed = [s for s in spans if A.ERROR_TYPE in s["_attrs"]]
    assert len(failed) == CALLS // ERROR_EVERY
    assert {s["_attrs"][A.ERROR_TYPE] for s in failed} == {"ValueError"}
    assert all(s["status"]["code"] == 2 for s in failed)  # STATUS_CODE_ERROR


def test_payload_records_arrive_redacted_by_the_collector(
    stack: Stack, sent: tuple[str, dict[str, Any]]
) -> None:
    model, _ = sent
    records = _payloads_of(stack, model)
    assert len(records) == CALLS
    span_ids = {(s["traceId"], s["spanId"]) for s in _spans_of(stack, model)}
    for r in records:
        text = json.dumps(r)
        # the canaries are gone, wherever they were ...
        assert CANARY_VALUE not in text
        assert CANARY_TOKEN not in text
        attrs = r["_attrs"]
        # ... the whole value of a field whose key looks secret is masked ...
        assert attrs[A.ML_PAYLOAD_INPUT_PREFIX + "api_token"] == "****"
        # ... a secret-looking value is masked inside the text, the rest stays readable ...
        note = attrs[A.ML_PAYLOAD_INPUT_PREFIX + "note"]
        assert "customer key ****" in note
        assert attrs["redaction.masked.count"] >= 2
        # ... the rest of the record is intact, and linked to its span.
        assert attrs[A.ML_MODEL_VERSION] == "3"
        # control: the SDK's own redaction did not touch these records (it does not know these
        # canaries), so the masking above is the collector's
        assert A.ML_PAYLOAD_REDACTED not in attrs
        assert json.loads(attrs[A.ML_PAYLOAD_INPUT_PREFIX + "age"])[0] >= 20
        assert (r["traceId"], r["spanId"]) in span_ids
    ids = {r["_attrs"][A.ML_PREDICTION_ID] for r in records}
    assert ids == {s["_attrs"][A.ML_PREDICTION_ID] for s in _spans_of(stack, model)}


def _series(stack: Stack, expr: str) -> list[dict[str, Any]]:
    answer = stack.prometheus.query(expr)
    assert answer.get("status") == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def test_metrics_arrive_in_prometheus_with_our_names(
    stack: Stack, sent: tuple[str, dict[str, Any]]
) -> None:
    model, _ = sent
    sel = f'{{ml_model_name="{model}",ml_model_version="3"}}'

    def calls_counted() -> float:
        series = _series(stack, f"sum(ml_prediction_calls_total{sel})")
        return float(series[0]["value"][1]) if series else 0.0

    wait_until(lambda: calls_counted() == CALLS, 30, what=f"ml_prediction_calls_total == {CALLS}")
    count = _series(stack, f"sum(ml_prediction_duration_seconds_count{sel})")
    assert float(count[0]["value"][1]) == CALLS
    buckets = _series(
        stack, f'ml_prediction_duration_seconds_bucket{{ml_model_name="{model}",le="+Inf"}}'
    )
    assert buckets
    rows = _series(stack, f"sum(ml_prediction_rows_total{sel})")
    assert float(rows[0]["value"][1]) == CALLS * 4
    errors = _series(stack, f"sum(ml_prediction_errors_total{sel})")
    assert float(errors[0]["value"][1]) == CALLS // ERROR_EVERY
    # service.name / service.instance.id become job / instance
    series = _series(stack, f"ml_prediction_calls_total{sel}")
    assert {s["metric"]["job"] for s in series} == {"integration-model"}


def test_duration_exemplars_arrive_in_prometheus_linked_to_our_traces(
    stack: Stack, sent: tuple[str, dict[str, Any]]
) -> None:
    """The SDK's exemplars on ml.prediction.duration survive the collector and remote write
    (Prometheus with --enable-feature=exemplar-storage) and name traces that exist."""
    model, _ = sent
    trace_ids = {s["traceId"] for s in _spans_of(stack, model)}
    query = f'ml_prediction_duration_seconds_bucket{{ml_model_name="{model}"}}'

    def exemplars() -> list[dict[str, Any]]:
        answer = stack.prometheus.api("query_exemplars", query=query, start="0",
                                      end=str(time.time() + 60))
        assert answer.get("status") == "success", answer
        return [e for series in answer["data"] for e in series["exemplars"]]

    found = wait_until(exemplars, 30, what=f"exemplars of {query}")
    assert found
    for e in found:
        assert e["labels"]["trace_id"] in trace_ids, e
        assert len(e["labels"]["span_id"]) == 16
        assert float(e["value"]) >= 0


def test_other_log_records_take_their_own_pipeline(
    stack: Stack, sent: tuple[str, dict[str, Any]]
) -> None:
    """Plain application logs are not payload records: they skip the payload pipeline (and its
    redaction), and no record is delivered twice through the two fanned-out pipelines."""
    model, _ = sent

    def app_logs_of() -> list[dict[str, Any]]:
        return [
            r
            for r in stack.downstream.logs()
            if str(r.get("body", {}).get("stringValue", "")).startswith(f"{model} served a batch")
        ]

    # their own pipeline batches on its own schedule: they may land after the payload records
    wait_until(lambda: len(app_logs_of()) >= CALLS, 30, what=f"application logs of {model}")
    app_logs = app_logs_of()
    assert len(app_logs) == CALLS
    assert sorted(r["_attrs"]["app.call"] for r in app_logs) == list(range(1, CALLS + 1))
    for r in app_logs:
        assert "eventName" not in r
        assert CANARY_VALUE in r["body"]["stringValue"]
        assert "redaction.masked.count" not in r["_attrs"]
    assert len(_payloads_of(stack, model)) == CALLS


def test_collector_redaction_masks_values_but_never_the_fixed_keys(stack: Stack) -> None:
    """A payload record sent straight to the collector (no SDK redaction in front): card numbers,
    e-mails and secret-named fields are masked; the fixed keys (an all-digit prediction id, byte
    counts) are not, so records still join to their spans."""
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    model = "redaction-check"
    port = stack.collector.env["MODELOTEL_COLLECTOR_GRPC_PORT"]
    provider = LoggerProvider(resource=Resource.create({"service.name": model}))
    provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"127.0.0.1:{port}", insecure=True))
    )
    field = A.ML_PAYLOAD_INPUT_PREFIX
    provider.get_logger(A.SCOPE_NAME).emit(
        event_name=A.EVENT_PREDICTION_PAYLOAD,
        attributes={
            A.ML_MODEL_NAME: model,
            A.ML_MODEL_VERSION: "1",
            A.ML_PREDICTION_ID: "1234567890123456",
            A.ML_PAYLOAD_ORIGINAL_BYTES: 4111111111111111,
            field + "card": '["4111 1111 1111 1111"]',
            field + "contact": '["write to jane.doe@example.com"]',
            field + "password": '["hunter2"]',
            field + "amount": "[12.5]",
        },
    )
    provider.shutdown()
    records = wait_until(
        lambda: _payloads_of(stack, model), 30, what="the hand-made payload record"
    )
    assert len(records) == 1
    attrs = records[0]["_attrs"]
    assert attrs[A.ML_PREDICTION_ID] == "1234567890123456"
    assert attrs[A.ML_PAYLOAD_ORIGINAL_BYTES] == 4111111111111111
    assert attrs[field + "card"] == '["****"]'
    assert attrs[field + "contact"] == '["write to ****"]'
    assert attrs[field + "password"] == "****"
    assert attrs[field + "amount"] == "[12.5]"
    assert attrs["redaction.masked.count"] == 3


def _listening(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on this port (from /proc/net/tcp{,6})."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            addr, hexport = local.rsplit(":", 1)
            if state == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
                found.add(addr)
    return found


def test_the_running_collector_listens_on_loopback_only(stack: Stack) -> None:
    env = stack.collector.env
    for key in (
        "MODELOTEL_COLLECTOR_GRPC_PORT",
        "MODELOTEL_COLLECTOR_HTTP_PORT",
        "MODELOTEL_COLLECTOR_HEALTH_PORT",
        "MODELOTEL_COLLECTOR_TELEMETRY_PORT",
    ):
        # 0100007F is 127.0.0.1 in /proc/net/tcp's little-endian hex
        assert _listening(int(env[key])) == {"0100007F"}, key
