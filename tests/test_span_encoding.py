"""The span encoder of configure()'s exporters: the stock encoder's request, byte for byte."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as stock
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GRPCStock
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HTTPStock
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.span import TraceState
from opentelemetry.trace.status import Status, StatusCode
from tests._otlp_sink import OTLPGrpcReceiver, OTLPHTTPReceiver

from modelotel import _exporters
from modelotel import _span_encoding as enc_mod

# --------------------------------------------------------------------------- spans


def _provider(resource: dict[str, Any], limits: SpanLimits | None = None
              ) -> tuple[TracerProvider, InMemorySpanExporter]:
    mem = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create(resource), span_limits=limits)
    tp.add_span_processor(SimpleSpanProcessor(mem))
    return tp, mem


_TP_A, _MEM_A = _provider({"service.name": "a"}, SpanLimits(max_span_attributes=6,
                                                             max_events=2, max_links=2))
_TP_B, _MEM_B = _provider({"service.name": "b", "n": 3})

keys = st.sampled_from(["ml.model.name", "ml.input.rows", "k", "x.y"]) | st.text(max_size=6)
scalars = (st.text(max_size=12) | st.integers(-(2**63), 2**63 - 1) | st.booleans()
           | st.floats(allow_nan=False) | st.sampled_from([0, 1, True, False, "1", 1.0, 0.0,
                                                           -0.0, "", 2**63 - 1]))
values = scalars | st.lists(st.text(max_size=4), max_size=3) | st.lists(st.integers(
    -(2**63), 2**63 - 1), max_size=3) | st.lists(st.booleans(), max_size=3) | st.lists(
    st.floats(allow_nan=False), max_size=3)
attributes = st.dictionaries(keys, values, max_size=8)
ids = st.integers(1, 2**64 - 1)
contexts = st.builds(
    lambda t, s, remote, state: SpanContext(t, s, is_remote=remote,
                                            trace_flags=TraceFlags(TraceFlags.SAMPLED),
                                            trace_state=TraceState(state)),
    st.integers(1, 2**128 - 1), ids, st.booleans(),
    st.lists(st.tuples(st.sampled_from(["vendor", "k1", "a"]), st.sampled_from(["v", "x1"])),
             max_size=2, unique_by=lambda kv: kv[0]))
span_specs = st.fixed_dictionaries({
    "provider": st.sampled_from([0, 1]),
    "scope": st.sampled_from([("modelotel", "0.1", None, None), ("other", None, None, None),
                              ("s", "2", "https://opentelemetry.io/schemas/1.21.0",
                               {"scope.attr": "x"})]),
    "name": st.text(max_size=10),
    "kind": st.sampled_from(list(SpanKind)),
    "attributes": attributes,
    "parent": st.none() | contexts,
    "events": st.lists(st.tuples(st.text(max_size=5), attributes), max_size=3),
    "links": st.lists(st.tuples(contexts, attributes), max_size=3),
    "status": st.sampled_from([None, (StatusCode.OK, None), (StatusCode.ERROR, None),
                               (StatusCode.ERROR, "boom"), (StatusCode.ERROR, "")]),
})


def _make(spec: dict[str, Any]) -> None:
    tp = (_TP_A, _TP_B)[spec["provider"]]
    name, version, schema_url, attrs = spec["scope"]
    tracer = tp.get_tracer(name, version, schema_url=schema_url, attributes=attrs)
    ctx = (None if spec["parent"] is None
           else trace.set_span_in_context(NonRecordingSpan(spec["parent"])))
    span = tracer.start_span(spec["name"], context=ctx, kind=spec["kind"],
                             attributes=spec["attributes"],
                             links=[Link(c, a) for c, a in spec["links"]])
    for event, attrs in spec["events"]:
        span.add_event(event, attrs)
    if spec["status"] is not None:
        span.set_status(Status(*spec["status"]))
    span.end()


def _spans(specs: list[dict[str, Any]]) -> list[ReadableSpan]:
    _MEM_A.clear()
    _MEM_B.clear()
    for spec in specs:
        _make(spec)
    got = list(_MEM_A.get_finished_spans()) + list(_MEM_B.get_finished_spans())
    # interleave the two resources so that grouping is exercised
    return got[::2] + got[1::2]


#: one cache for every example, as one exporter's lives through many batches
_CACHE = enc_mod.PairCache()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(span_specs, min_size=1, max_size=6))
def test_requests_equal_the_stock_encoders_byte_for_byte(specs: list[dict[str, Any]]) -> None:
    spans = _spans(specs)
    ours = enc_mod.encode_spans(spans, _CACHE)
    assert ours.SerializeToString() == stock(spans).SerializeToString()
    assert ours == stock(spans)


def test_a_pair_keeps_its_type_and_sign() -> None:
    # equal under ==, and under hash, but encoded differently
    spans = _spans([{
        "provider": 0, "scope": ("modelotel", "0.1", None, None), "name": "p",
        "kind": SpanKind.INTERNAL, "attributes": {"k": v}, "parent": None, "events": [],
        "links": [], "status": None} for v in (1, True, 1.0, "1", 0.0, -0.0, 0, False)])
    cache = enc_mod.PairCache()
    for _ in range(2):  # the second time from the cache
        assert enc_mod.encode_spans(spans, cache).SerializeToString() == \
            stock(spans).SerializeToString()


def test_a_key_with_changing_values_stops_being_cached() -> None:
    cache = enc_mod.PairCache()
    for i in range(enc_mod.MAX_VALUES + 50):
        cache.attributes({"ml.prediction.id": f"{i:016x}", "ml.model.name": "m"})
    assert "ml.prediction.id" in cache._changing
    assert len(cache._bytes) == enc_mod.MAX_VALUES + 1  # the id's first values and the name
    # a changing key is still encoded right
    spans = _spans([{
        "provider": 0, "scope": ("modelotel", "0.1", None, None), "name": "p",
        "kind": SpanKind.INTERNAL, "attributes": {"ml.prediction.id": "abc"}, "parent": None,
        "events": [], "links": [], "status": None}])
    got = enc_mod.encode_spans(spans, cache)
    assert got == stock(spans)


def test_long_str_values_are_encoded_per_span_not_kept() -> None:
    cache = enc_mod.PairCache()
    long = "x" * (enc_mod.MAX_CACHED_STR + 1)
    short = "x" * enc_mod.MAX_CACHED_STR
    for _ in range(2):
        assert cache.attributes({"arguments": long}) == enc_mod.pair_bytes("arguments", long)
        assert cache.attributes({"name": short}) == enc_mod.pair_bytes("name", short)
    assert list(cache._bytes) == [("name", str, short)]


def test_the_number_of_cached_keys_is_bounded() -> None:
    cache = enc_mod.PairCache()
    for i in range(enc_mod.MAX_KEYS + 100):
        assert cache.attributes({f"k{i}": 1}) == enc_mod.pair_bytes(f"k{i}", 1)
    assert len(cache._values) == enc_mod.MAX_KEYS
    assert len(cache._bytes) == enc_mod.MAX_KEYS


def test_a_value_that_cannot_be_encoded_is_left_out_like_the_stock_encoder_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = enc_mod.PairCache()
    with caplog.at_level(logging.ERROR):
        got = cache.attributes({"a": "x", "bad": "\ud800", "b": object(), "c": [1, 2]})
    assert got == enc_mod.pair_bytes("a", "x") + enc_mod.pair_bytes("c", [1, 2])
    assert "bad" in caplog.text
    assert "cannot encode span attribute" in caplog.text


# --------------------------------------------------------------------------- checked encoder


def _batch() -> list[ReadableSpan]:
    return _spans([{
        "provider": 0, "scope": ("modelotel", "0.1", None, None), "name": "predict m",
        "kind": SpanKind.INTERNAL, "attributes": {"ml.model.name": "m", "ml.input.rows": 1},
        "parent": None, "events": [], "links": [], "status": None}])


def test_the_first_batch_is_checked_against_the_stock_encoder() -> None:
    calls: list[int] = []

    def counted(spans: Any) -> ExportTraceServiceRequest:
        calls.append(len(spans))
        return stock(spans)

    enc = enc_mod.CheckedEncoder(counted)
    batch = _batch()
    assert enc(batch) == stock(batch)
    assert enc.checked
    assert enc.fast
    assert calls == [1]
    assert enc(batch) == stock(batch)
    assert calls == [1]  # from then on, only this module's encoder


def test_an_encoder_that_differs_from_the_stock_one_is_dropped_for_good(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def other(spans: Any) -> ExportTraceServiceRequest:
        req = stock(spans)
        req.resource_spans[0].scope_spans[0].spans[0].name = "changed"
        return req

    enc = enc_mod.CheckedEncoder(other)
    batch = _batch()
    with caplog.at_level(logging.WARNING, logger="modelotel"):
        assert enc(batch) == other(batch)
    assert not enc.fast
    assert "encodes spans differently" in caplog.text
    assert enc(batch) == other(batch)


def test_a_batch_this_encoder_cannot_take_goes_to_the_stock_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    enc = enc_mod.CheckedEncoder(stock)
    batch = _batch()
    enc(batch)

    def broken(*args: Any) -> None:
        raise RuntimeError("unknown span field")

    monkeypatch.setattr(enc_mod, "_add_span", broken)
    assert enc(batch) == stock(batch)
    assert enc.fast


# --------------------------------------------------------------------------- exporters


def test_configure_exporters_are_the_stock_ones_with_this_encoder() -> None:
    http = _exporters.build_exporter("traces", "http/protobuf", "http://127.0.0.1:1")
    grpc = _exporters.build_exporter("traces", "grpc", "http://127.0.0.1:1")
    try:
        assert isinstance(http, HTTPStock)
        assert http._modelotel_encode is not None
        assert isinstance(grpc, GRPCStock)
    finally:
        http.shutdown()
        grpc.shutdown()


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_receiver_gets_the_stock_encoders_request(protocol: str) -> None:
    receiver = OTLPHTTPReceiver() if protocol == "http/protobuf" else OTLPGrpcReceiver()
    with receiver as rx:
        exporter = _exporters.build_exporter("traces", protocol, rx.url, timeout=5)
        try:
            batch = _batch()
            for _ in range(3):  # checked, then from the cache
                assert exporter.export(batch) is SpanExportResult.SUCCESS
            assert exporter._modelotel_encode.fast
        finally:
            exporter.shutdown()
    assert len(rx.traces) == 3
    for got in rx.traces:
        assert got == stock(batch)


def test_http_export_reports_a_refused_batch_as_a_failure() -> None:
    with OTLPHTTPReceiver(refuse_with=400) as rx:  # 400: not retried
        exporter = _exporters.build_exporter("traces", "http/protobuf", rx.url, timeout=5)
        try:
            batch = _batch()
            assert exporter.export(batch) is SpanExportResult.FAILURE  # the checked batch
            assert exporter.export(batch) is SpanExportResult.FAILURE  # encoded from the cache
            assert exporter._modelotel_encode.checked
        finally:
            exporter.shutdown()
    assert rx.traces == []


def test_http_export_leaves_an_oversized_request_to_the_stock_check() -> None:
    with OTLPHTTPReceiver() as rx:
        exporter = enc_mod.http_span_exporter(endpoint=rx.url + "/v1/traces", max_request_size=10)
        try:
            assert exporter.export(_batch()) is SpanExportResult.FAILURE
            assert exporter.export(_batch()) is SpanExportResult.FAILURE
        finally:
            exporter.shutdown()
    assert rx.traces == []


def test_http_export_falls_back_to_the_stock_export_when_its_parts_differ(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class OnceIncompatible:
        """Raises at the first export, as a client of another SDK version would at the
        subclass's call; the stock export's own call then goes through."""

        def __init__(self, real: Any) -> None:
            self.real = real
            self.calls = 0

        def export(self, data: bytes) -> Any:
            self.calls += 1
            if self.calls == 1:
                raise TypeError("export() missing 1 required positional argument")
            return self.real.export(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.real, name)

    with OTLPHTTPReceiver() as rx:
        exporter = enc_mod.http_span_exporter(endpoint=rx.url + "/v1/traces", timeout=5)
        exporter._client = OnceIncompatible(exporter._client)
        batch = _batch()
        try:
            with caplog.at_level(logging.WARNING, logger="modelotel"):
                assert exporter.export(batch) is SpanExportResult.SUCCESS
            assert exporter._modelotel_encode is None  # the stock export from now on
            assert exporter.export(batch) is SpanExportResult.SUCCESS
        finally:
            exporter.shutdown()
    assert "does not take modelotel's span encoder" in caplog.text
    assert len(rx.traces) == 2  # the failed attempt sent nothing; each batch once
    assert all(got == stock(batch) for got in rx.traces)


def test_http_export_after_shutdown_is_the_stock_refusal() -> None:
    exporter = enc_mod.http_span_exporter(endpoint="http://127.0.0.1:1/v1/traces")
    exporter.shutdown()
    assert exporter.export(_batch()) is SpanExportResult.FAILURE
