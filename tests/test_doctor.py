"""``modelotel doctor``: every check says what runs and what is wrong, against real endpoints.

The endpoint checks run against real sockets on 127.0.0.1 (tests/_otlp_sink.py): an OTLP/HTTP
and an OTLP/gRPC receiver, a port that refuses, a port that accepts and never answers, and
HTTP servers that answer 401 / 404. tests/integration/test_doctor_collector.py runs the
command against the collector built from collector-config/.
"""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _otlp_sink import BlackHole, ClosedPort, OTLPGrpcReceiver, OTLPHTTPReceiver
from modelotel import _doctor, _exporters, cli
from modelotel.stats import Baseline, kernel


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "MODELOTEL_")):
            monkeypatch.delenv(name)


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    """Run ``modelotel doctor --json ARGS``: (exit status, the JSON document)."""
    status = cli.main(["doctor", "--json", *args])
    return status, json.loads(capsys.readouterr().out)


def checks(doc: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    return [c for c in doc["checks"] if c["check"].startswith(prefix)]


# ---------------------------------------------------------------------------- endpoints
def test_a_live_otlp_http_receiver_answers_every_signal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with OTLPHTTPReceiver() as rx:
        status, doc = doctor(capsys, "--endpoint", rx.url)
        paths = sorted(path for path, _ in rx.headers)
    found = checks(doc, "endpoint")
    assert [c["check"] for c in found] == [
        "endpoint (traces)", "endpoint (metrics)", "endpoint (logs)"]
    assert all(c["status"] == "ok" and c["details"]["http_status"] == 200 for c in found)
    assert paths == ["/v1/logs", "/v1/metrics", "/v1/traces"]  # one empty export each
    assert len(rx.spans()) == 0  # an empty export carries nothing
    assert status == (1 if doc["status"] == "fail" else 0)
    assert not any(c["status"] == "fail" for c in found)


def test_the_http_probe_sends_the_configured_headers_and_never_prints_their_values(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key=SeCrEt-123,x-team=churn")
    with OTLPHTTPReceiver() as rx:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.url)
        cli.main(["doctor"])
        text = capsys.readouterr().out
        cli.main(["doctor", "--json"])
        as_json = capsys.readouterr().out
        sent = [h for _, h in rx.headers]
    assert sent
    assert all(h["api-key"] == "SeCrEt-123" for h in sent)
    for out in (text, as_json):
        assert "api-key" in out
        assert "x-team" in out
        assert "SeCrEt-123" not in out
        assert "churn" not in out
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in text  # where the endpoint came from


def test_a_live_otlp_grpc_receiver_answers_every_signal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with OTLPGrpcReceiver() as rx:
        _status, doc = doctor(capsys, "--endpoint", rx.url, "--protocol", "grpc")
        received = (len(rx.traces), len(rx.metrics), len(rx.logs))
    found = checks(doc, "endpoint")
    assert len(found) == 3
    assert all(c["status"] == "ok" and c["details"]["grpc_status"] == "OK" for c in found)
    assert received == (1, 1, 1)


def test_a_closed_port_fails_at_once_and_says_nothing_listens(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with ClosedPort() as closed:
        status, doc = doctor(capsys, "--endpoint", closed.url, "--timeout", "5")
    assert status == 1
    assert doc["status"] == "fail"
    assert doc["ok"] is False
    first, *rest = checks(doc, "endpoint")
    assert first["status"] == "fail"
    assert "connection refused" in first["summary"]
    assert "nothing listens" in first["summary"]
    # the other signals share the receiver: not tried again
    assert [c["details"]["error"] for c in rest] == ["see endpoint (traces)"] * 2


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_port_that_accepts_and_never_answers_fails_within_the_timeout(
    capsys: pytest.CaptureFixture[str], protocol: str,
) -> None:
    with BlackHole() as hole:
        start = time.monotonic()
        status, doc = doctor(capsys, "--endpoint", hole.url, "--protocol", protocol,
                             "--timeout", "0.5")
        took = time.monotonic() - start
        accepted = hole.accepted
    assert status == 1
    first, *rest = checks(doc, "endpoint")
    assert first["status"] == "fail"
    assert "accepts connections" in first["summary"]
    assert accepted >= 1  # it did connect: the failure is the missing answer
    assert all(c["details"]["error"] == "see endpoint (traces)" for c in rest)
    # one bounded wait for the receiver, not one per signal nor the exporter's 10 s
    assert took < 0.5 + 4.0, took


class _Answer:
    """An HTTP server answering every POST with one status code."""

    def __init__(self, code: int) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> _Answer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(
    ("code", "status", "words"),
    [(401, "warn", "credentials"), (404, "warn", "path and port"), (400, "ok", "reachable"),
     (503, "warn", "server error")],
)
def test_an_answer_other_than_2xx_is_reported_with_what_it_means(
    capsys: pytest.CaptureFixture[str], code: int, status: str, words: str,
) -> None:
    with _Answer(code) as server:
        _, doc = doctor(capsys, "--endpoint", server.url)
    found = checks(doc, "endpoint")
    assert [c["details"]["http_status"] for c in found] == [code] * 3
    assert all(c["status"] == status and words in c["summary"] for c in found)


def test_the_endpoints_are_those_the_stock_exporters_resolve(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cases: list[dict[str, str]] = [
        {},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:14318/"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:14318",
         "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "https://metrics.example:443/otlp/v1/metrics"},
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://gw:24317",
         "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://logs:34317"},
        {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
    ]
    for env in cases:
        for name in list(os.environ):
            if name.startswith("OTEL_"):
                monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        targets, problems = _doctor.resolve_targets()
        assert problems == []
        for t in targets:
            exporter = _exporters.build_exporter(t.signal, t.protocol)  # type: ignore[arg-type]
            if t.protocol == "grpc":  # the gRPC exporter keeps host:port
                assert f"{t.address[1]}:{t.address[2]}" == exporter._endpoint, (env, t)
            else:
                assert t.url == exporter._endpoint, (env, t)
            exporter.shutdown()


def test_an_argument_endpoint_wins_like_configure_endpoint() -> None:
    env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://elsewhere:1/v1/traces"}
    targets, _ = _doctor.resolve_targets(env, endpoint="http://here:4318/")
    assert [t.url for t in targets] == [
        "http://here:4318/v1/traces", "http://here:4318/v1/metrics", "http://here:4318/v1/logs"]
    assert {t.source for t in targets} == {"--endpoint"}


def test_signals_turned_off_are_not_probed_and_sdk_disabled_probes_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "none")
    with OTLPHTTPReceiver() as rx:
        _, doc = doctor(capsys, "--endpoint", rx.url)
    assert [c["check"] for c in checks(doc, "endpoint")] == [
        "endpoint (traces)", "endpoint (metrics)"]
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    with ClosedPort() as closed:
        _status, doc = doctor(capsys, "--endpoint", closed.url)
    assert checks(doc, "endpoint") == []
    config = checks(doc, "OpenTelemetry settings")[0]
    assert config["status"] == "warn"
    assert config["details"]["sdk_disabled"] is True


def test_a_protocol_the_exporters_do_not_have_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    check, targets = _doctor.check_otel_config()
    assert check.status == "warn"
    assert any("OTEL_EXPORTER_OTLP_PROTOCOL='http/json'" in p for p in check.data["problems"])
    assert {t.protocol for t in targets} == {"http/protobuf"}


def test_bad_command_line_values_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["doctor", "--timeout", "0"]) == 2
    assert cli.main(["doctor", "--endpoint", "localhost:4318"]) == 2
    assert "with a scheme" in capsys.readouterr().err


# ----------------------------------------------------------------------------- settings
def test_settings_show_each_value_and_where_it_came_from() -> None:
    check = _doctor.check_settings({
        "MODELOTEL_ROW_CAP": "500",
        "MODELOTEL_MAX_FEATURES": "many",
        "MODELOTEL_PAYLOAD_HMAC_KEY": "hunter2",
        "MODELOTEL_MODEL_OWNER": "  ",  # set but empty: as if unset
    })
    assert check.data["MODELOTEL_ROW_CAP"] == {"value": 500, "source": "environment"}
    assert check.data["MODELOTEL_ENABLED"] == {"value": True, "source": "default"}
    assert check.data["MODELOTEL_MODEL_OWNER"] == {"value": "", "source": "default"}
    bad = check.data["MODELOTEL_MAX_FEATURES"]
    assert bad["value"] == 200
    assert "'many' is not a positive integer" in bad["source"]
    assert check.status == "warn"
    assert check.data["MODELOTEL_PAYLOAD_HMAC_KEY"]["value"] == "<set>"
    assert "hunter2" not in repr(check)
    from modelotel._settings import Settings

    names = {f.metadata["env"] for f in Settings.__dataclass_fields__.values()}
    assert set(check.data) == names  # every setting, no other


def test_a_secret_with_a_bad_value_is_still_not_printed() -> None:
    from modelotel import _settings

    # the HMAC key takes any text; make its parser refuse one to see what is shown
    field = _settings.Settings.__dataclass_fields__["payload_hmac_key"]

    def refuse(raw: str) -> str:
        raise ValueError("is refused")

    original = field.metadata["parse"]
    try:
        field.metadata = {**field.metadata, "parse": refuse}  # type: ignore[misc]
        check = _doctor.check_settings({"MODELOTEL_PAYLOAD_HMAC_KEY": "hunter2"})
    finally:
        field.metadata = {**field.metadata, "parse": original}  # type: ignore[misc]
    assert "hunter2" not in repr(check)
    assert "<secret>" in repr(check)


# ------------------------------------------------------------------------ dependencies
def test_dependencies_below_their_floor_or_missing_fail_with_the_fix() -> None:
    check = _doctor.check_dependencies([
        "numpy>=1.0",
        "opentelemetry-api>=99.1",
        "surely-not-installed-modelotel-dep>=1",
        "pandas>=99; extra == 'pandas'",  # an extra: not needed to run
    ])
    assert check.status == "fail"
    assert check.data["numpy"]["ok"] is True
    assert check.data["opentelemetry-api"]["ok"] is False
    assert check.data["surely-not-installed-modelotel-dep"]["installed"] is None
    assert "pandas" not in check.data
    text = "\n".join(check.lines)
    assert "pip install 'opentelemetry-api>=99.1'" in text


def test_the_installed_requirements_meet_the_floors_of_pyproject() -> None:
    check = _doctor.check_dependencies()
    assert check.status == "ok", check.lines
    for name in ("opentelemetry-api", "opentelemetry-sdk", "opentelemetry-exporter-otlp"):
        assert check.data[name]["ok"] is True
        assert check.data[name]["floor"] == "1.45"


@pytest.mark.parametrize(
    ("installed", "floor", "ok"),
    [("1.45.2", "1.45", True), ("1.45", "1.45", True), ("1.44.99", "1.45", False),
     ("2.0", "1.45", True), ("1.45.0rc1", "1.45", False), ("1.46.0rc1", "1.45", True),
     ("1.45.0.dev3", "1.45", False), ("0.66b2", "0.66", False), ("10.0", "9.9", True)],
)
def test_version_floors_compare_release_numbers(installed: str, floor: str, ok: bool) -> None:
    assert _doctor.meets(installed, floor) is ok


# ------------------------------------------------------------------------------ kernel
@pytest.mark.parametrize(
    ("status", "compiled", "expected"),
    [("compiled", True, "ok"), ("numpy-chosen", False, "ok"), ("not-built", False, "warn"),
     ("stale", False, "fail"), ("unloadable", False, "fail")],
)
def test_the_kernel_check_says_what_runs_and_why(
    monkeypatch: pytest.MonkeyPatch, status: str, compiled: bool, expected: str,
) -> None:
    monkeypatch.setattr(kernel, "STATUS", status)
    monkeypatch.setattr(kernel, "COMPILED", compiled)
    monkeypatch.setattr(kernel, "REASON", f"because {status}")
    check = _doctor.check_kernel()
    assert check.status == expected
    assert check.summary.startswith("compiled" if compiled else "numpy")
    assert f"because {status}" in check.summary
    if status in ("not-built", "stale", "unloadable"):
        assert any("reinstall" in line for line in check.lines)


def test_the_kernel_in_use_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    with OTLPHTTPReceiver() as rx:
        _, doc = doctor(capsys, "--endpoint", rx.url)
    (found,) = checks(doc, "statistics kernel")
    assert found["details"] == {"compiled": kernel.COMPILED, "status": kernel.STATUS,
                                "reason": kernel.REASON}


# --------------------------------------------------------------------------- baselines
@pytest.fixture
def baselines(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    good = tmp_path / "good.json"
    digest = Baseline.from_data(rng.normal(size=(200, 3)), outputs=rng.random(200),
                                feature_names=["age", "income", "tenure"]).save(good)
    text = good.read_text()
    truncated = tmp_path / "truncated.json"
    truncated.write_text(text[: len(text) // 2])
    edited = tmp_path / "edited.json"
    edited.write_text(text.replace('"rows": 200', '"rows": 201'))
    return {"good": good, "truncated": truncated, "edited": edited,
           "missing": tmp_path / "missing.json", "digest": Path(digest)}


def test_each_baseline_loads_or_says_what_to_fix(
    capsys: pytest.CaptureFixture[str], baselines: dict[str, Path],
) -> None:
    args = []
    for name in ("good", "truncated", "edited", "missing"):
        args += ["--baseline", str(baselines[name])]
    with OTLPHTTPReceiver() as rx:
        status, doc = doctor(capsys, "--endpoint", rx.url, *args)
    found = {Path(c["details"]["path"]).stem: c for c in checks(doc, "baseline")}
    good = found["good"]
    assert good["status"] == "ok"
    assert good["details"]["hash"] == str(baselines["digest"])
    assert good["details"]["features"] == ["age", "income", "tenure"]
    assert len(good["details"]["outputs"]) == 1
    assert good["details"]["rows"] == 200
    assert "3 features, 1 outputs, 200 rows" in good["summary"]
    assert found["truncated"]["status"] == "fail"
    assert "not valid JSON" in found["truncated"]["summary"]
    assert "hash mismatch" in found["edited"]["summary"]
    assert "does not exist" in found["missing"]["summary"]
    assert status == 1


def test_the_text_report_has_one_line_per_check_and_a_total(
    capsys: pytest.CaptureFixture[str], baselines: dict[str, Path],
) -> None:
    with OTLPHTTPReceiver() as rx:
        status = cli.main(["doctor", "--endpoint", rx.url, "--baseline", str(baselines["good"])])
    out = capsys.readouterr().out.splitlines()
    heads = [line for line in out if line.startswith("[")]
    assert [h.split("]")[1].strip().split(":")[0] for h in heads] == [
        "statistics kernel", "dependencies", "modelotel settings", "OpenTelemetry settings",
        "endpoint (traces)", "endpoint (metrics)", "endpoint (logs)",
        f"baseline {baselines['good']}"]
    assert out[-1].endswith("ok")
    assert "failed" in out[-1]
    assert status == (1 if any(h.startswith("[fail]") for h in heads) else 0)


def test_a_check_that_breaks_is_a_failed_check_not_a_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug in the check")

    monkeypatch.setattr(_doctor, "check_baseline", broken)
    with OTLPHTTPReceiver() as rx:
        status, doc = doctor(capsys, "--endpoint", rx.url, "--baseline", "x.json")
    (base,) = checks(doc, "baseline")
    assert base["status"] == "fail"
    assert "RuntimeError: a bug in the check" in base["summary"]
    assert status == 1


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_an_unreadable_ca_certificate_fails_the_endpoint_check_saying_which_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    protocol: str,
) -> None:
    missing = tmp_path / "no-such-ca.pem"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(missing))
    receiver = OTLPGrpcReceiver() if protocol == "grpc" else OTLPHTTPReceiver()
    with receiver as rx:  # listening: the TLS setup is what fails
        https = rx.url.replace("http://", "https://")
        status, doc = doctor(capsys, "--endpoint", https, "--protocol", protocol)
    first = checks(doc, "endpoint")[0]
    assert status == 1
    assert first["status"] == "fail"
    assert str(missing) in first["summary"]


def test_tls_to_a_plain_http_receiver_fails_with_the_tls_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with OTLPHTTPReceiver() as rx:
        status, doc = doctor(capsys, "--endpoint", rx.url.replace("http://", "https://"),
                             "--timeout", "2")
    first = checks(doc, "endpoint")[0]
    assert status == 1
    assert first["status"] == "fail"
    assert "SSL" in first["summary"]
