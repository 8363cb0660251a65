"""Payload records queued for the worker reach the collector at shutdown() and at exit.

A real process with ``configure()`` exporting over OTLP/HTTP to a receiver in the test: the
worker is held busy while records queue behind it, so a shutdown (or the interpreter's exit)
that flushed the logger provider before waiting for the worker would lose them.
"""

from __future__ import annotations

import json

import pytest

from _otlp_sink import OTLPHTTPReceiver, clean_env, run_python

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SCRIPT = """
import json, threading
import modelotel
from modelotel import setup
from modelotel._payload.worker import payload_worker
from modelotel._safety import health

setup.configure(service_name="payq", endpoint={url!r}, export_interval_ms=60000)

@modelotel.instrument(model="m", version="1",
                      payload=modelotel.PayloadConfig(sample_rate=1.0, max_records_per_second=100))
def predict(x):
    return x * 2

busy = threading.Event()
def hold():  # the worker is busy with something else while the calls queue their records
    busy.set()
    threading.Event().wait(0.5)
payload_worker().submit(hold)
busy.wait(10)
results = [predict(float(i)) for i in range(20)]
queued = payload_worker().pending()
ok = setup.shutdown() if {shutdown!r} else None
print(json.dumps({{"results_ok": results == [i * 2.0 for i in range(20)], "queued": queued,
                  "ok": ok, "dropped": dict(health.dropped)}}), flush=True)
"""


@pytest.mark.parametrize("shutdown", [True, False], ids=["shutdown", "interpreter_exit"])
def test_records_queued_for_the_worker_are_exported_at_shutdown_and_exit(shutdown: bool) -> None:
    with OTLPHTTPReceiver() as rx:
        proc = run_python(SCRIPT.format(url=rx.url, shutdown=shutdown), env=clean_env())
        assert proc.returncode == 0, proc.stderr
        (line,) = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
        assert line["results_ok"] is True
        assert line["queued"] == 20  # all of them were waiting for the worker
        if shutdown:
            assert line["ok"] is True
            assert line["dropped"] == {}
        payloads = [r for r in rx.log_records() if "ml.payload.sample_reason" in r.attributes]
        inputs = sorted(json.loads(r.attributes["ml.payload.inputs"]) for r in payloads)
        assert inputs == [float(i) for i in range(20)]


ONE_DEADLINE = """
import atexit, json
finished = []
atexit.register(lambda: print(json.dumps(finished), flush=True))  # runs last: registered first
import modelotel
from modelotel import setup
from modelotel._payload import worker

finish = worker.Worker.finish
def spy(self, timeout):
    finished.append(timeout)
    return finish(self, timeout)
worker.Worker.finish = spy

setup.configure(service_name="once", endpoint={url!r}, export_interval_ms=60000,
                shutdown_timeout=2.5)
predict = modelotel.instrument(model="m", version="1",
                               payload=modelotel.PayloadConfig(sample_rate=1.0))(lambda x: x)
predict(1.0)
"""


def test_at_exit_after_configure_the_worker_is_drained_once_within_its_deadline() -> None:
    # the worker's own exit hook (for processes that never call configure()) would wait its
    # own deadline before configure()'s shutdown waited another one
    with OTLPHTTPReceiver() as rx:
        proc = run_python(ONE_DEADLINE.format(url=rx.url), env=clean_env())
        assert proc.returncode == 0, proc.stderr
        (line,) = [x for x in proc.stdout.splitlines() if x.startswith("[")]
        assert json.loads(line) == [2.5]  # once, by shutdown(), with configure()'s deadline
