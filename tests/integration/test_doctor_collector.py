"""``modelotel doctor`` against the collector built from collector-config/ (base.yaml), over
both protocols, configured as a user would: with the standard OTEL_* variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from harness import Stack

pytestmark = pytest.mark.integration


def _doctor(env: dict[str, str], *args: str) -> tuple[int, dict[str, object]]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MODELOTEL_"))}
    out = subprocess.run(
        [sys.executable, "-m", "modelotel.cli", "doctor", "--json", *args],
        env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False,
    )
    return out.returncode, json.loads(out.stdout)


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_doctor_finds_the_shipped_collector_answering_every_signal(
    stack: Stack, protocol: str
) -> None:
    status, doc = _doctor(stack.otlp_env(protocol))
    found = [c for c in doc["checks"] if c["check"].startswith("endpoint")]  # type: ignore[attr-defined]
    assert [c["check"] for c in found] == [
        "endpoint (traces)", "endpoint (metrics)", "endpoint (logs)"]
    answer = "http_status" if protocol == "http/protobuf" else "grpc_status"
    assert [(c["status"], c["details"][answer]) for c in found] == [
        ("ok", 200 if protocol == "http/protobuf" else "OK")] * 3
    port = stack.otlp_env(protocol)["OTEL_EXPORTER_OTLP_ENDPOINT"].rsplit(":", 1)[1]
    assert all(port in c["details"]["url"] for c in found)
    assert status == 0
    assert doc["ok"] is True


@pytest.mark.parametrize(("protocol", "port_of"), [
    ("http/protobuf", "grpc"),  # OTLP/HTTP spoken to the gRPC port
    ("grpc", "http/protobuf"),  # and the other way round
])
def test_doctor_fails_on_the_wrong_protocol_for_the_port_and_says_so(
    stack: Stack, protocol: str, port_of: str
) -> None:
    env = stack.otlp_env(port_of) | {"OTEL_EXPORTER_OTLP_PROTOCOL": protocol}
    status, doc = _doctor(env, "--timeout", "2")
    found = [c for c in doc["checks"] if c["check"].startswith("endpoint")]  # type: ignore[attr-defined]
    assert status == 1
    assert found[0]["status"] == "fail"
    assert "gRPC 4317, HTTP 4318" in found[0]["summary"]
