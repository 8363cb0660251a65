"""After os.fork(): the child exports with its own identity, and nothing twice.

Each case runs a script that forks for real (gunicorn and uvicorn workers, multiprocessing's
fork start method do the same) and exports to an OTLP/HTTP receiver in the test process.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from _otlp_sink import OTLPGrpcReceiver, OTLPHTTPReceiver, clean_env, run_python

pytestmark = pytest.mark.timeout(120)

FORK_SCRIPT = """
import json, os, sys
from opentelemetry import trace, metrics, _logs
import modelotel
from modelotel import setup
from modelotel._runtime import runtime

setup.configure(service_name="forky", endpoint={url!r}, export_interval_ms=60000)

@modelotel.instrument(model="m", version="1")
def predict(x):
    return x + 1

tracer = trace.get_tracer("t")
counter = metrics.get_meter("t").create_counter("work.count")

def instance_id():
    return trace.get_tracer_provider().resource.attributes["service.instance.id"]

# The parent's spans stay queued: OTEL_BSP_SCHEDULE_DELAY is 60 s, the batch is not full.
for i in range(5):
    with tracer.start_as_current_span("before-fork-%d" % i):
        pass
counter.add(7)
for i in range(4):
    predict(i)
parent_id = instance_id()
gen_before = runtime.generation

pid = os.fork()
if pid == 0:
    try:
        for i in range(3):
            with tracer.start_as_current_span("child-%d" % i):
                pass
        counter.add(1)
        predict(1)
        out = {{"who": "child", "id": instance_id(), "gen_moved": runtime.generation > gen_before,
                "ok": setup.shutdown()}}
        sys.stdout.write(json.dumps(out) + "\\n")
        sys.stdout.flush()
    finally:
        os._exit(0)

_, status = os.waitpid(pid, 0)
with tracer.start_as_current_span("parent-after"):
    pass
counter.add(2)
predict(2)
predict(3)
print(json.dumps({{"who": "parent", "id": instance_id(), "child_status": status,
                  "ok": setup.shutdown()}}))
"""


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_child_has_its_own_instance_id_and_exports_nothing_of_the_parent_twice(
    protocol: str,
) -> None:
    grpc = protocol == "grpc"
    env = clean_env(OTEL_BSP_SCHEDULE_DELAY="60000", OTEL_EXPORTER_OTLP_PROTOCOL=protocol)
    with OTLPGrpcReceiver() if grpc else OTLPHTTPReceiver() as rx:
        proc = run_python(FORK_SCRIPT.format(url=rx.url), env=env)
        assert proc.returncode == 0, proc.stderr
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        by_who = {line["who"]: line for line in lines}
        parent, child = by_who["parent"], by_who["child"]
        assert parent["child_status"] == 0
        assert parent["ok"] is True
        assert child["ok"] is True
        assert child["gen_moved"] is True
        assert parent["id"] != child["id"]

        spans = rx.spans()
        names = sorted(s.name for s in spans)
        # Every span exactly once: the child did not re-export the parent's queued spans.
        expected = [f"before-fork-{i}" for i in range(5)] + [f"child-{i}" for i in range(3)]
        expected += ["parent-after"] + ["predict m"] * 7
        assert names == sorted(expected)
        ids = {s.name: s.resource["service.instance.id"] for s in spans}
        for i in range(5):
            assert ids[f"before-fork-{i}"] == parent["id"]
        for i in range(3):
            assert ids[f"child-{i}"] == child["id"]
        assert ids["parent-after"] == parent["id"]
        assert all(s.resource["service.name"] == "forky" for s in spans)
        predict_ids = sorted(
            s.resource["service.instance.id"] for s in spans if s.name == "predict m"
        )
        assert predict_ids == sorted([parent["id"]] * 6 + [child["id"]])

        # Metrics: the child's series starts empty (its reader was renewed), so a sum over
        # instances counts the parent's 7 pre-fork increments once.
        counts = {
            p.resource["service.instance.id"]: p.value
            for p in rx.points()
            if p.name == "work.count"
        }
        assert counts == {parent["id"]: 9.0, child["id"]: 1.0}


def test_child_serving_metrics_are_its_own() -> None:
    with OTLPHTTPReceiver() as rx:
        proc = run_python(
            FORK_SCRIPT.format(url=rx.url), env=clean_env(OTEL_BSP_SCHEDULE_DELAY="60000")
        )
        assert proc.returncode == 0, proc.stderr
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        by_who = {line["who"]: line for line in lines}
        calls = {
            p.resource["service.instance.id"]: p.value
            for p in rx.points()
            if p.name == "ml.prediction.calls"
        }
    assert calls == {by_who["parent"]["id"]: 6.0, by_who["child"]["id"]: 1.0}


FORK_SAFE_SCRIPT = """
import json, os, sys, threading
from modelotel._exporters import ForkSafeSpanExporter

class Fake:
    made = []
    def __init__(self):
        self.pid = os.getpid()
        self.exports = 0
        self.shut = False
        Fake.made.append(self)
    def export(self, spans):
        self.exports += 1
        return "ok"
    def shutdown(self):
        self.shut = True
    def force_flush(self, timeout_millis=30000):
        return True

exp = ForkSafeSpanExporter(Fake)
exp.export([])
first = exp.inner
# Another thread is renewing the exporter (holds the renewal lock) at fork time: the
# child must not deadlock on that lock.
held = exp._renew_locks.setdefault(os.getpid(), threading.Lock())
held.acquire()
pid = os.fork()
if pid == 0:
    try:
        r = exp.export([])
        exp.shutdown()
        out = {"who": "child", "made": len(Fake.made), "new_pid": exp.inner.pid == os.getpid(),
               "first_exports": first.exports, "first_shut": first.shut, "new_shut": exp.inner.shut,
               "result": r}
        sys.stdout.write(json.dumps(out) + "\\n")
        sys.stdout.flush()
    finally:
        os._exit(0)
held.release()
os.waitpid(pid, 0)
exp.export([])
print(json.dumps({"who": "parent", "made": len(Fake.made), "same": exp.inner is first,
                  "first_exports": first.exports}))
"""


def test_fork_safe_exporter_builds_a_fresh_exporter_in_the_child() -> None:
    proc = run_python(FORK_SAFE_SCRIPT)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    by_who = {line["who"]: line for line in lines}
    child, parent = by_who["child"], by_who["parent"]
    # The child built its own exporter, used it, and left the inherited one alone.
    assert child == {
        "who": "child",
        "made": 2,
        "new_pid": True,
        "first_exports": 1,
        "first_shut": False,
        "new_shut": True,
        "result": "ok",
    }
    # The parent kept its exporter.
    assert parent == {"who": "parent", "made": 1, "same": True, "first_exports": 2}


def test_multiprocessing_fork_workers_export_with_distinct_ids() -> None:
    with OTLPHTTPReceiver() as rx:
        code = textwrap.dedent(f"""
            import json, multiprocessing as mp
            from opentelemetry import trace
            from modelotel import setup

            setup.configure(endpoint={rx.url!r}, metrics=False, logs=False)

            def work(n):
                with trace.get_tracer("t").start_as_current_span("task-%d" % n):
                    pass
                # multiprocessing ends workers with os._exit: no atexit, so flush here.
                setup.force_flush()
                return trace.get_tracer_provider().resource.attributes["service.instance.id"]

            if __name__ == "__main__":
                with mp.get_context("fork").Pool(2) as pool:
                    ids = pool.map(work, range(4))
                parent = trace.get_tracer_provider().resource.attributes["service.instance.id"]
                print(json.dumps({{"ids": ids, "parent": parent, "ok": setup.shutdown()}}))
        """)
        proc = run_python(code)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        spans = rx.spans()
    assert sorted(s.name for s in spans) == [f"task-{i}" for i in range(4)]
    by_name = {s.name: s.resource["service.instance.id"] for s in spans}
    assert [by_name[f"task-{i}"] for i in range(4)] == out["ids"]
    assert 1 <= len(set(out["ids"])) <= 2  # one id per worker process
    assert out["parent"] not in set(out["ids"])
    assert out["ok"] is True
