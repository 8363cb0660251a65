"""Payloads through the real instrument() / Call path: off by default, linked to the span."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

import modelotel
from _payload_support import Sink
from modelotel import attributes as tn
from modelotel._monitor import monitors
from modelotel._payload import PayloadPart
from modelotel._runtime import runtime


@pytest.fixture
def sink() -> Iterator[Sink]:
    runtime.reset()
    with Sink() as s:
        yield s
    runtime.reset()


def _payload_hooks(model: str) -> list[Any]:
    (mon,) = [m for m in monitors() if m.config.model == model]
    return [p for p in mon.parts if isinstance(p, PayloadPart)]


def test_off_by_default_registers_no_hook(sink: Sink, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELOTEL_PAYLOAD_SAMPLE_RATE", raising=False)
    runtime.reload_settings()

    @modelotel.instrument(model="e2e-off")
    def predict(x: Any) -> int:
        return 1

    for _ in range(100):
        predict({"email": "a@b.co"})
    assert _payload_hooks("e2e-off") == []
    assert sink.logs() == []
    assert all(
        tn.ML_PAYLOAD_SAMPLED not in s.attributes for s in sink.span_exporter.get_finished_spans()
    )


def test_environment_turns_it_on(sink: Sink, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELOTEL_PAYLOAD_SAMPLE_RATE", "1")
    runtime.reload_settings()

    @modelotel.instrument(model="e2e-env")
    def predict(x: Any) -> int:
        return 1

    predict([1.0])
    assert len(_payload_hooks("e2e-env")) == 1  # the environment turned payloads on
    assert len(sink.logs(tn.EVENT_PREDICTION_PAYLOAD)) == 1


def test_sampled_call_record_is_linked_to_its_span(sink: Sink) -> None:
    @modelotel.instrument(
        model="e2e-on", version="4", payload_sample_rate=1.0, feature_names=["a", "b"]
    )
    def predict(x: Any) -> Any:
        return x.sum(axis=1)

    out = predict(np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert out.tolist() == [3.0, 7.0]
    (span,) = sink.span_exporter.get_finished_spans()
    (rec,) = sink.logs(tn.EVENT_PREDICTION_PAYLOAD)
    assert rec.trace_id == span.context.trace_id
    assert rec.span_id == span.context.span_id
    assert span.attributes[tn.ML_PAYLOAD_SAMPLED] is True
    attrs = dict(rec.attributes)
    assert attrs[tn.ML_PREDICTION_ID] == span.attributes[tn.ML_PREDICTION_ID]
    assert attrs[tn.ML_MODEL_VERSION] == "4"
    assert attrs["ml.payload.input.a"] == "[1.0,3.0]"
    assert attrs["ml.payload.input.b"] == "[2.0,4.0]"
    assert attrs[tn.ML_PAYLOAD_OUTPUTS] == "[3.0,7.0]"


def test_error_calls_are_kept_and_the_error_reaches_the_caller(sink: Sink) -> None:
    @modelotel.instrument(model="e2e-err", payload=modelotel.PayloadConfig())
    def predict(x: Any) -> Any:
        if x == "bad":
            raise KeyError("missing feature")
        return 0

    predict("ok")
    with pytest.raises(KeyError, match="missing feature"):
        predict("bad")
    (rec,) = sink.logs(tn.EVENT_PREDICTION_PAYLOAD)
    assert rec.attributes[tn.ML_PAYLOAD_SAMPLE_REASON] == "error"
    assert rec.attributes[tn.ERROR_TYPE] == "KeyError"
    assert rec.attributes[tn.ML_PAYLOAD_INPUTS] == '"bad"'
    assert tn.ML_PAYLOAD_OUTPUTS not in rec.attributes


def test_hostile_input_call_returns_normally(sink: Sink) -> None:
    @modelotel.instrument(model="e2e-hostile", payload_sample_rate=1.0)
    def predict(x: Any) -> str:
        return "fine"

    class Evil:
        def __repr__(self) -> str:
            raise RuntimeError("nope")

    loop: list[Any] = []
    loop.append(loop)
    assert predict([Evil(), loop, "x" * 10_000_000]) == "fine"
    (rec,) = sink.logs(tn.EVENT_PREDICTION_PAYLOAD)
    assert rec.attributes[tn.ML_PAYLOAD_TRUNCATED] is True


def test_canary_sweep_through_instrument_scans_spans_and_logs(sink: Sink) -> None:
    canary = "CANARY-" + uuid.uuid4().hex
    cfg = modelotel.PayloadConfig(
        deny_fields={"note"},
        patterns=("email", "card", "phone", "ssn", "ip", re.compile(r"CANARY-[0-9a-f]{32}")),
        max_records_per_second=1e9,
        max_bytes_per_second=1e12,
    )

    @modelotel.instrument(model="e2e-canary", payload_sample_rate=1.0, payload=cfg)
    def predict(x: Any) -> Any:
        return {"echo": x.get("email"), "label": 1}

    email = f"{canary[7:19]}@example.com"
    for i in range(2_000):
        predict(
            {"email": email, "card": "4111-1111-1111-1111", "note": canary, f"k{i % 3}": canary}
        )
    assert len(sink.logs(tn.EVENT_PREDICTION_PAYLOAD)) == 2_000
    spans = sink.span_exporter.get_finished_spans()
    blob = sink.otlp_bytes() + encode_spans(spans).SerializeToString()
    for secret in (canary, email, "4111-1111-1111-1111", canary[7:19]):
        assert blob.count(secret.encode()) == 0, secret


def test_a_failing_logger_never_reaches_the_caller(expect_internal_errors: list[Any]) -> None:
    class BrokenLogger:
        def emit(self, *a: Any, **kw: Any) -> None:
            raise RuntimeError("exporter bug")

    class BrokenLoggerProvider:
        def get_logger(self, *a: Any, **kw: Any) -> BrokenLogger:
            return BrokenLogger()

    runtime.reset()
    saved = runtime.providers()
    runtime.set_providers(None, None, BrokenLoggerProvider())  # type: ignore[arg-type]
    try:

        @modelotel.instrument(model="e2e-broken-logger", payload_sample_rate=1.0)
        def predict(x: Any) -> str:
            return "result"

        assert predict([1]) == "result"
    finally:
        runtime.set_providers(*saved)
        runtime.reset()
    assert [(c, type(e).__name__) for c, e in expect_internal_errors] == [
        ("payload", "RuntimeError")
    ]


def test_payload_of_a_call_whose_span_is_not_sampled() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    runtime.reset()
    with Sink() as sink:
        tp = TracerProvider(sampler=ALWAYS_OFF)
        runtime.set_providers(tp, sink.mp, sink.lp)

        @modelotel.instrument(model="e2e-unsampled-span", payload_sample_rate=1.0)
        def predict(x: Any) -> int:
            return 1

        assert predict([1.0]) == 1
        assert sink.span_exporter.get_finished_spans() == ()
        (rec,) = sink.logs(tn.EVENT_PREDICTION_PAYLOAD)
        # linked to the (unrecorded) span's trace: ids present, sampled flag off
        assert rec.trace_id != 0
        assert rec.span_id != 0
        assert not rec.trace_flags.sampled
    runtime.reset()
