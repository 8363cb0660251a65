"""A real pre-fork server: gunicorn --preload, configure() in the master, two sync workers.

The app module calls ``modelotel.configure()`` at import, so with ``--preload`` the SDK is set
up once in the master and inherited by every forked worker. Each worker must export its own
predict spans with its own ``service.instance.id``, and a span the master had buffered
before forking must be exported once (by the master), not once per worker.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from _otlp_sink import OTLPHTTPReceiver, clean_env

pytest.importorskip("gunicorn")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

APP = """
import json, os
from opentelemetry import trace
import modelotel

modelotel.configure(service_name="gunicorn-app", endpoint={url!r}, metrics=False, logs=False)

# Buffered in the master (OTEL_BSP_SCHEDULE_DELAY is long) when the workers are forked.
with trace.get_tracer("boot").start_as_current_span("master-boot"):
    pass

@modelotel.instrument(model="m", version="1")
def predict(x):
    return x * 2

def app(environ, start_response):
    y = predict(21)
    rid = trace.get_tracer_provider().resource.attributes["service.instance.id"]
    body = json.dumps({{"pid": os.getpid(), "id": rid, "y": y}}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(url: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            out: dict[str, object] = json.loads(resp.read())
            return out
    except OSError:
        return None


def test_gunicorn_preload_workers_export_with_their_own_identity(tmp_path: Path) -> None:
    with OTLPHTTPReceiver() as rx:
        (tmp_path / "app_under_test.py").write_text(textwrap.dedent(APP.format(url=rx.url)))
        port = _free_port()
        env = clean_env(OTEL_BSP_SCHEDULE_DELAY="60000", PYTHONPATH=str(tmp_path))
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--preload",
                "--workers",
                "2",
                "--bind",
                f"127.0.0.1:{port}",
                "--chdir",
                str(tmp_path),
                "app_under_test:app",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            url = f"http://127.0.0.1:{port}/"
            end = time.monotonic() + 30
            first = None
            while first is None and time.monotonic() < end and server.poll() is None:
                first = _get(url)
                time.sleep(0.1)
            assert first is not None, "gunicorn did not answer"
            replies = [first] + [r for r in (_get(url) for _ in range(30)) if r is not None]
        finally:
            server.send_signal(signal.SIGTERM)
            _, stderr = server.communicate(timeout=60)
        assert server.returncode == 0, stderr
        assert "Traceback" not in stderr, stderr
        spans = rx.spans()

    assert all(r["y"] == 42 for r in replies)
    worker_ids = {str(r["pid"]): str(r["id"]) for r in replies}
    assert len(set(worker_ids.values())) == len(worker_ids)  # one id per worker process
    assert str(os.getpid()) not in worker_ids

    boot = [s for s in spans if s.name == "master-boot"]
    assert len(boot) == 1  # exported once, by the master: no worker re-exported it
    master_id = boot[0].resource["service.instance.id"]
    assert master_id not in worker_ids.values()

    predict_spans = [s for s in spans if s.name == "predict m"]
    assert len(predict_spans) == len(replies)  # every request's span, exported once
    assert {s.resource["service.instance.id"] for s in predict_spans} == set(worker_ids.values())
    assert all(s.resource["service.name"] == "gunicorn-app" for s in spans)
