"""configure() end to end, each case in a fresh interpreter (global providers are set once).

Every script prints one JSON line as its last line of stdout; the test asserts on it and on
what a real OTLP receiver on 127.0.0.1 got.
"""

from __future__ import annotations

import json
import textwrap
import uuid

import pytest

from _otlp_sink import OTLPGrpcReceiver, OTLPHTTPReceiver, clean_env, run_python, wait_for

pytestmark = pytest.mark.timeout(120)

# Emits one span, one counter point and one log record through the *global* OTel API (what
# other instrumentation uses), then shuts down and reports what it saw.
EMIT = """
import json, logging, sys
from opentelemetry import trace, metrics, _logs
from opentelemetry._logs import LogRecord
import modelotel
from modelotel import setup

def emit():
    with trace.get_tracer("t").start_as_current_span("work") as span:
        span.set_attribute("k", "v")
    metrics.get_meter("t").create_counter("work.count").add(3, {"a": "b"})
    _logs.get_logger("t").emit(LogRecord(body="hello"))

def report(**extra):
    tp = trace.get_tracer_provider()
    out = {
        "tp": type(tp).__name__,
        "mp": type(metrics.get_meter_provider()).__name__,
        "lp": type(_logs.get_logger_provider()).__name__,
    }
    if hasattr(tp, "resource"):
        out["resource"] = dict(tp.resource.attributes)
        out["sampler"] = type(tp.sampler).__name__
    out.update(extra)
    print(json.dumps(out, default=str))
"""


def script(body: str) -> str:
    return EMIT + "\n" + textwrap.dedent(body)


def last_json(proc: object) -> dict[str, object]:
    stdout = proc.stdout  # type: ignore[attr-defined]
    stderr = proc.stderr  # type: ignore[attr-defined]
    assert proc.returncode == 0, stderr  # type: ignore[attr-defined]
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON line in stdout={stdout!r} stderr={stderr!r}"
    result: dict[str, object] = json.loads(lines[-1])
    return result


def test_configure_exports_all_three_signals_over_http() -> None:
    with OTLPHTTPReceiver() as rx:
        out = last_json(
            run_python(
                script(f"""
                modelotel.setup.configure(
                    service_name="churn-api",
                    endpoint={rx.url!r},
                    resource_attributes={{"deployment.environment.name": "test"}},
                )
                emit()
                ok = setup.shutdown()
                report(ok=ok)
                """)
            )
        )
        assert out["ok"] is True
        assert out["tp"] == "TracerProvider"
        assert out["mp"] == "MeterProvider"
        assert out["lp"] == "LoggerProvider"
        resource = out["resource"]
        assert isinstance(resource, dict)
        assert resource["service.name"] == "churn-api"
        assert resource["deployment.environment.name"] == "test"
        instance_id = resource["service.instance.id"]
        assert uuid.UUID(str(instance_id)).version == 4

        [span] = rx.spans()
        assert span.name == "work"
        assert span.attributes == {"k": "v"}
        assert span.resource["service.name"] == "churn-api"
        assert span.resource["service.instance.id"] == instance_id
        points = [p for p in rx.points() if p.name == "work.count"]
        assert [(p.value, p.attributes) for p in points] == [(3.0, {"a": "b"})]
        assert points[0].resource["service.instance.id"] == instance_id
        [log] = rx.log_records()
        assert log.body == "hello"
        assert log.resource["service.instance.id"] == instance_id


@pytest.mark.slow
def test_environment_is_honoured_and_arguments_win() -> None:
    with OTLPHTTPReceiver() as rx:
        env = clean_env(
            OTEL_SERVICE_NAME="from-env",
            OTEL_RESOURCE_ATTRIBUTES="team=ml,service.instance.id=pinned-id",
            OTEL_EXPORTER_OTLP_ENDPOINT=rx.url,
            OTEL_TRACES_SAMPLER="traceidratio",
            OTEL_TRACES_SAMPLER_ARG="0.25",
            OTEL_METRIC_EXPORT_INTERVAL="1234",
        )
        out = last_json(
            run_python(
                script("""
                setup.configure()
                reader = setup._configured().setup.metric_readers[0]
                tp = trace.get_tracer_provider()
                report(interval=reader._export_interval_millis, rate=tp.sampler.rate,
                       ok=setup.shutdown())
                """),
                env=env,
            )
        )
        resource = out["resource"]
        assert isinstance(resource, dict)
        assert resource["service.name"] == "from-env"
        assert resource["team"] == "ml"
        assert resource["service.instance.id"] == "pinned-id"  # the user's own id is kept
        assert out["sampler"] == "TraceIdRatioBased"
        assert out["rate"] == 0.25
        assert out["interval"] == 1234.0
        assert out["ok"] is True

        # Arguments win over the same settings in the environment.
        out = last_json(
            run_python(
                script("""
                setup.configure(service_name="from-arg", export_interval_ms=999,
                                resource_attributes={"team": "arg-team"})
                reader = setup._configured().setup.metric_readers[0]
                report(interval=reader._export_interval_millis)
                """),
                env=env,
            )
        )
        resource = out["resource"]
        assert isinstance(resource, dict)
        assert resource["service.name"] == "from-arg"
        assert resource["team"] == "arg-team"
        assert out["interval"] == 999.0


@pytest.mark.slow
def test_protocol_grpc_from_env_sends_over_grpc() -> None:
    with OTLPGrpcReceiver() as grpc_rx, OTLPHTTPReceiver() as http_rx:
        env = clean_env(OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTEL_EXPORTER_OTLP_ENDPOINT=grpc_rx.url)
        out = last_json(
            run_python(
                script("""
                setup.configure(metrics=False, logs=False)
                emit()
                exporter = setup._configured().setup.exporters[0].inner
                report(modules=[c.__module__ for c in type(exporter).__mro__],
                       ok=setup.shutdown())
                """),
                env=env,
            )
        )
        # the stock exporter, with modelotel's span encoder in a subclass
        assert "opentelemetry.exporter.otlp.proto.grpc.trace_exporter" in out["modules"]
        assert out["ok"] is True
        assert [s.name for s in grpc_rx.spans()] == ["work"]

        # protocol= and endpoint= arguments win over the environment.
        out = last_json(
            run_python(
                script(f"""
                setup.configure(protocol="http/protobuf", endpoint={http_rx.url!r},
                                metrics=False, logs=False)
                emit()
                exporter = setup._configured().setup.exporters[0].inner
                report(modules=[c.__module__ for c in type(exporter).__mro__],
                       ok=setup.shutdown())
                """),
                env=env,
            )
        )
        assert "opentelemetry.exporter.otlp.proto.http.trace_exporter" in out["modules"]
        assert [s.name for s in http_rx.spans()] == ["work"]
        assert [s.name for s in grpc_rx.spans()] == ["work"]  # nothing more over gRPC


def test_per_signal_protocol_env() -> None:
    with OTLPGrpcReceiver() as grpc_rx, OTLPHTTPReceiver() as http_rx:
        env = clean_env(
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_ENDPOINT=http_rx.url,
            OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="grpc",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=grpc_rx.url,
        )
        out = last_json(
            run_python(
                script("""
                setup.configure(logs=False)
                emit()
                report(ok=setup.shutdown())
                """),
                env=env,
            )
        )
        assert out["ok"] is True
        assert [s.name for s in grpc_rx.spans()] == ["work"]
        assert http_rx.spans() == []
        assert [p.value for p in http_rx.points() if p.name == "work.count"] == [3.0]


def test_otel_sdk_disabled_sets_up_nothing() -> None:
    with OTLPHTTPReceiver() as rx:
        out = last_json(
            run_python(
                script(f"""
                import threading
                setup.configure(endpoint={rx.url!r})
                emit()
                report(threads=threading.active_count(), ok=setup.shutdown(),
                       flushed=setup.force_flush())
                """),
                env=clean_env(OTEL_SDK_DISABLED="true"),
            )
        )
    assert out["tp"] == "ProxyTracerProvider"
    assert out["mp"] == "_ProxyMeterProvider"
    assert out["lp"] == "ProxyLoggerProvider"
    assert out["threads"] == 1
    assert out["ok"] is True
    assert out["flushed"] is True
    assert rx.spans() == []
    assert rx.points() == []
    assert rx.log_records() == []


def test_signal_exporter_none_in_env_skips_that_signal() -> None:
    with OTLPHTTPReceiver() as rx:
        out = last_json(
            run_python(
                script(f"""
                setup.configure(endpoint={rx.url!r})
                emit()
                report(ok=setup.shutdown())
                """),
                env=clean_env(OTEL_TRACES_EXPORTER="none", OTEL_LOGS_EXPORTER="none"),
            )
        )
    assert out["tp"] == "ProxyTracerProvider"
    assert out["lp"] == "ProxyLoggerProvider"
    assert out["mp"] == "MeterProvider"
    assert rx.spans() == []
    assert [p.value for p in rx.points() if p.name == "work.count"] == [3.0]


def test_attaches_to_providers_the_application_set() -> None:
    with OTLPHTTPReceiver() as rx:
        out = last_json(
            run_python(
                script(f"""
                from opentelemetry.sdk.trace import TracerProvider
                from opentelemetry.sdk.trace.export import SimpleSpanProcessor
                from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                    InMemorySpanExporter)
                from opentelemetry.sdk.metrics import MeterProvider
                from opentelemetry.sdk.metrics.export import InMemoryMetricReader

                app_tp = TracerProvider()
                memory = InMemorySpanExporter()
                app_tp.add_span_processor(SimpleSpanProcessor(memory))
                trace.set_tracer_provider(app_tp)
                app_reader = InMemoryMetricReader()
                app_mp = MeterProvider(metric_readers=[app_reader])
                metrics.set_meter_provider(app_mp)

                setup.configure(endpoint={rx.url!r})
                emit()
                ok = setup.shutdown()
                data = app_reader.get_metrics_data()
                names = [m.name for rm in data.resource_metrics for sm in rm.scope_metrics
                         for m in sm.metrics]
                report(same_tp=trace.get_tracer_provider() is app_tp,
                       same_mp=metrics.get_meter_provider() is app_mp,
                       processors=len(app_tp._active_span_processor._span_processors),
                       in_memory=[s.name for s in memory.get_finished_spans()],
                       app_metrics=names, ok=ok)
                """)
            )
        )
    assert out["same_tp"] is True
    assert out["same_mp"] is True
    assert out["processors"] == 1  # nothing added to the application's provider
    assert out["in_memory"] == ["work"]
    assert out["app_metrics"] == ["work.count"]
    assert out["ok"] is True
    # Logs had no provider: modelotel installed its own, and only logs reach our endpoint.
    assert out["lp"] == "LoggerProvider"
    assert rx.spans() == []
    assert rx.points() == []
    assert [log.body for log in rx.log_records()] == ["hello"]


def test_add_exporters_to_existing_providers_on_request() -> None:
    with OTLPHTTPReceiver() as rx:
        out = last_json(
            run_python(
                script(f"""
                from opentelemetry.sdk.trace import TracerProvider
                from opentelemetry.sdk.metrics import MeterProvider

                app_tp = TracerProvider()
                trace.set_tracer_provider(app_tp)
                metrics.set_meter_provider(MeterProvider())
                setup.configure(endpoint={rx.url!r}, add_exporters_to_existing=True)
                emit()
                ok = setup.shutdown()
                report(same_tp=trace.get_tracer_provider() is app_tp,
                       processors=len(app_tp._active_span_processor._span_processors), ok=ok)
                """)
            )
        )
        assert out["same_tp"] is True
        assert out["processors"] == 1
        assert out["ok"] is True
        assert [s.name for s in rx.spans()] == ["work"]
        assert wait_for(lambda: any(p.name == "work.count" for p in rx.points()))


def test_second_configure_is_a_noop_and_warns_once_when_arguments_differ() -> None:
    with OTLPHTTPReceiver() as rx:
        proc = run_python(
            script(f"""
            logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
            setup.configure(service_name="a", endpoint={rx.url!r})
            tp = trace.get_tracer_provider()
            setup.configure(service_name="a", endpoint={rx.url!r})
            print("--after same--", file=sys.stderr, flush=True)
            setup.configure(service_name="b", endpoint={rx.url!r})
            setup.configure(service_name="c", endpoint={rx.url!r})
            report(same=trace.get_tracer_provider() is tp, ok=setup.shutdown())
            """)
        )
    out = last_json(proc)
    assert out["same"] is True
    resource = out["resource"]
    assert isinstance(resource, dict)
    assert resource["service.name"] == "a"
    before, after = proc.stderr.split("--after same--")
    assert "already called" not in before
    assert after.count("configure() was already called") == 1


def test_bad_env_value_disables_only_that_signal() -> None:
    with OTLPHTTPReceiver() as rx:
        proc = run_python(
            script(f"""
            logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
            setup.configure(endpoint={rx.url!r})
            emit()
            report(ok=setup.shutdown())
            """),
            env=clean_env(OTEL_BSP_MAX_QUEUE_SIZE="0"),
        )
    out = last_json(proc)
    assert out["tp"] == "ProxyTracerProvider"
    assert out["mp"] == "MeterProvider"
    assert "modelotel: could not set up traces (ValueError" in proc.stderr
    assert rx.spans() == []
    assert [log.body for log in rx.log_records()] == ["hello"]


def test_model_called_before_configure_keeps_its_serving_metrics() -> None:
    with OTLPHTTPReceiver() as rx:
        out = last_json(
            run_python(
                script(f"""
                @modelotel.instrument(model="warm", version="1")
                def predict(x):
                    return x + 1

                predict(0)  # a warm-up call before configure()
                setup.configure(endpoint={rx.url!r})
                for i in range(5):
                    predict(i)
                report(ok=setup.shutdown())
                """)
            )
        )
        assert out["ok"] is True
        assert len([s for s in rx.spans() if s.name == "predict warm"]) == 5
        calls = [p.value for p in rx.points() if p.name == "ml.prediction.calls"]
    assert calls == [6.0]


def test_all_providers_set_by_the_application_means_no_exporter_and_no_log_filter() -> None:
    out = last_json(
        run_python(
            script("""
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk._logs import LoggerProvider
            from modelotel import _logfilter

            trace.set_tracer_provider(TracerProvider())
            metrics.set_meter_provider(MeterProvider())
            _logs.set_logger_provider(LoggerProvider())
            setup.configure(endpoint="http://127.0.0.1:9")
            done = setup._configured().setup
            report(exporters=len(done.exporters), filter=_logfilter.installed(),
                   attached=sorted(done.attached), ok=setup.shutdown())
            """)
        )
    )
    assert out["exporters"] == 0
    assert out["filter"] is False
    assert out["attached"] == ["logs", "metrics", "traces"]
    assert out["ok"] is True


def test_headers_and_compression_from_arguments_and_env() -> None:
    with OTLPHTTPReceiver() as rx:
        out = last_json(
            run_python(
                script(f"""
                setup.configure(endpoint={rx.url!r}, headers="api-key=from-arg")
                emit()
                report(ok=setup.shutdown())
                """),
                env=clean_env(
                    OTEL_EXPORTER_OTLP_HEADERS="api-key=from-env,x-team=ml",
                    OTEL_EXPORTER_OTLP_COMPRESSION="gzip",
                ),
            )
        )
        assert out["ok"] is True
        assert [s.name for s in rx.spans()] == ["work"]  # gzip bodies decoded by the receiver
        paths = sorted({path for path, _ in rx.headers})
        assert paths == ["/v1/logs", "/v1/metrics", "/v1/traces"]
        for _, headers in rx.headers:
            assert headers["api-key"] == "from-arg"  # the argument wins ...
            assert headers["x-team"] == "ml"  # ... over the same key of the environment
            assert headers["content-encoding"] == "gzip"
