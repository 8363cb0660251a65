"""Canary sweep: with payload capture on, no personal data leaves unredacted, in any byte.

load_app.py --canary runs two models over rows that carry an e-mail address, a card number
(as text and as an integer), a phone number, a US SSN, an IP address, a password (a denied
field) and a customer id (a hashed field); half the calls raise ``ValueError(f"cannot score
{rows}")``, quoting their input; every call records an outcome whose label is an e-mail
address; a third model gets a numpy string array of the same data. Everything the SDK
exports (spans with their exception events, payload records, outcome records, metrics,
resource) is captured as raw request bytes at a local OTLP endpoint, over OTLP/HTTP and
OTLP/gRPC, and searched for every canary. The SDK's own log output (stderr) too.
"""

from __future__ import annotations

from typing import Any

import pytest
from load_app import CANARIES
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from scenarios import clean_env, run_load
from sinks import CountingSink, RawGrpcSink

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

# the forms a canary could take in the bytes: as written, and the card's digits alone
NEEDLES = sorted({*CANARIES.values(), CANARIES["card"].replace(" ", ""), "4111111111111111",
                  "jane.canary", "label.canary", "7946 0958", "078-05", "203.0.113"})


def _decode(raw: list[bytes]) -> tuple[list[Any], list[Any]]:
    spans, logs = [], []
    for body in raw:
        for cls, out, attr in ((ExportTraceServiceRequest, spans, "resource_spans"),
                               (ExportLogsServiceRequest, logs, "resource_logs")):
            try:
                req = cls.FromString(body)
            except Exception:
                continue
            for r in getattr(req, attr):
                for scope in (r.scope_spans if attr == "resource_spans" else r.scope_logs):
                    out.extend(scope.spans if attr == "resource_spans" else scope.log_records)
    return spans, logs


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_no_canary_in_any_exported_byte(protocol: str, figures: list[dict[str, Any]]) -> None:
    sink: Any = CountingSink(keep_raw=True) if protocol == "http/protobuf" else RawGrpcSink()
    env = clean_env(MODELOTEL_PAYLOAD_HMAC_KEY="canary-test-key",
                    MODELOTEL_PAYLOAD_PROCESS_RECORDS_PER_SECOND="1000000",
                    MODELOTEL_PAYLOAD_PROCESS_BYTES_PER_SECOND="1000000000")
    with sink:
        run = run_load(sink.url, timeout=120, env=env, canary=True, canary_calls=20,
                       protocol=protocol, shutdown_timeout=10)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.result["internal_errors"] == {}, run.result
    raw = list(sink.raw)
    blob = b"\n".join(raw)
    found = {n: blob.count(n.encode()) for n in NEEDLES if n.encode() in blob}
    in_logs = [n for n in NEEDLES if n in run.stderr]

    # not vacuous: the records that would carry the canaries were exported, redacted
    spans, logs = _decode(raw)
    events = [e for s in spans for e in s.events if e.name == "exception"]
    messages = [kv.value.string_value for e in events for kv in e.attributes
                if kv.key == "exception.message"]
    payloads = [r for r in logs if r.event_name == "ml.prediction.payload"]
    outcomes = [r for r in logs if r.event_name == "ml.prediction.outcome"]
    figures.append({
        "section": "canary", "protocol": protocol, "requests": len(raw),
        "bytes": len(blob), "spans": len(spans), "exception_events": len(events),
        "exception_messages": len(messages), "payload_records": len(payloads),
        "outcome_records": len(outcomes), "canaries_found": found,
        "canaries_in_local_logs": in_logs, "needles": len(NEEDLES),
    })
    assert found == {}, found
    assert in_logs == []
    calls = run.result["calls"]
    assert len(spans) == calls
    assert len(events) == run.result["raised"] > 0
    # the patterns-only model sends its messages, redacted; the model with field rules
    # sends the exception type alone
    assert len(messages) == run.result["raised"] // 2
    assert all("[REDACTED:email]" in m and "[REDACTED:card]" in m for m in messages)
    assert len(payloads) == calls
    assert len(outcomes) == 2 * run.result["canary_calls"]
    assert b"[REDACTED:email]" in blob
    assert b"hmac-sha256:" in blob
