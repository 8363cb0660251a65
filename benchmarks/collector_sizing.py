"""Sizing of modelotel's collectors, measured: what one agent / gateway core carries.

    .venv/bin/python benchmarks/collector_sizing.py            # about 12 minutes
    .venv/bin/python benchmarks/collector_sizing.py --quick    # about 4 minutes, coarser
    .venv/bin/python benchmarks/collector_sizing.py --only agent:spans,outage --json out.json
    .venv/bin/python benchmarks/collector_sizing.py --generator telemetrygen

For each tier (the agent: agent.yaml; the gateway: base.yaml + gateway.yaml) and each kind of
item (spans, metric points, payload log records) it offers load at rising rates, the last step
as fast as the generator goes, and reads from the collector's own process and telemetry:

- items accepted per second, and refused ones (the memory limiter's push-back);
- CPU-seconds of the collector process (utime + stime of /proc/PID/stat), so that
  "items per CPU-second" (= items per second one fully used core carries) does not depend on
  what else the machine runs; the machine is shared, so wall-clock rates are not the figure;
- resident memory (VmRSS), peak over the step.

The load (``--generator``): ``sdk`` (default) replays the OTLP/HTTP requests that the modelotel
SDK itself sent for an instrumented model (benchmarks/_otlp_replay.py: real span, metric and
payload-record shapes, 512 items per request); ``telemetrygen`` runs the contrib load generator
(v0.161.0, installed with ``go install`` into the collector's cache if missing) with items
shaped like modelotel's over OTLP/gRPC. On a 2-core machine telemetrygen cannot produce more
than a few thousand items/s (it costs more CPU per item than the collector), so it never loads
the collector much; the replay can.

Stepping stops at the first rate where the collector refused items. A step where fewer items
arrived than were offered while the collector had CPU to spare is marked ``generator_bound``.

Then: tail sampling (tail-sampling.yaml on the gateway) at a fixed span rate, its CPU and its
memory against the plain gateway, with decisions 1 s after the root span (the default) and
with every trace waiting the full decision_wait; and an outage: the agent's gateway is down,
items are offered at a fixed rate for ``--outage-seconds`` and the persistent queue's growth on
disk is measured (disk per minute of outage at that rate, bytes per item).

Downstream of the collector under test is a sink collector (collector-config/sizing/sink.yaml)
and, for remote write, a tiny HTTP sink in this process: their CPU is not counted.
It reuses the integration tests' process harness (tests/integration/harness.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(REPO / "benchmarks"))

import _otlp_replay as replay  # noqa: E402
import _telemetrygen as telemetrygen  # noqa: E402
from harness import (  # noqa: E402
    COLLECTOR_CONFIG,
    Collector,
    collector_env,
    free_port,
    metric_sum,
)

CLK_TCK = os.sysconf("SC_CLK_TCK")
SIGNALS = {
    # kind -> the collector's counters of accepted and refused items
    "spans": ("otelcol_receiver_accepted_spans", "otelcol_receiver_refused_spans"),
    "metric_points": (
        "otelcol_receiver_accepted_metric_points",
        "otelcol_receiver_refused_metric_points",
    ),
    "payload_records": (
        "otelcol_receiver_accepted_log_records",
        "otelcol_receiver_refused_log_records",
    ),
}
# --- processes ----------------------------------------------------------------------------


def otelcol_binary() -> Path:
    explicit = os.environ.get("MODELOTEL_OTELCOL")
    if explicit:
        return Path(explicit)
    out = subprocess.run(
        ["bash", str(COLLECTOR_CONFIG / "build.sh")], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def disk_bytes(directory: Path) -> int:
    """Bytes allocated on disk (the queue file grows in 16 MiB steps, but its unwritten part
    takes no blocks)."""
    return sum(p.stat().st_blocks * 512 for p in directory.rglob("*") if p.is_file())


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def remote_write_sink() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/write"
    finally:
        server.shutdown()


@contextmanager
def started(collector: Collector) -> Iterator[Collector]:
    collector.start()
    try:
        yield collector
    finally:
        collector.stop()


def sink_collector(binary: Path, workdir: Path) -> Collector:
    port = free_port()
    env = {"SINK_GRPC_PORT": str(port), "SINK_HEALTH_PORT": str(free_port())}
    env["MODELOTEL_COLLECTOR_HEALTH_PORT"] = env["SINK_HEALTH_PORT"]
    return Collector(binary, [COLLECTOR_CONFIG / "sizing" / "sink.yaml"], env, workdir, "sink")


def tier_collector(
    binary: Path, workdir: Path, tier: str, sink: Collector, rw_url: str, **extra: str
) -> Collector:
    sink_endpoint = f"127.0.0.1:{sink.env['SINK_GRPC_PORT']}"
    env = collector_env(
        workdir / tier,
        MODELOTEL_COLLECTOR_LOG_LEVEL="warn",
        MODELOTEL_GATEWAY_ENDPOINT=sink_endpoint,
        MODELOTEL_GATEWAY_INSECURE="true",
        MODELOTEL_COLLECTOR_TRACES_ENDPOINT=sink_endpoint,
        MODELOTEL_COLLECTOR_LOGS_ENDPOINT=sink_endpoint,
        MODELOTEL_COLLECTOR_PROMETHEUS_ENDPOINT=rw_url,
        **extra,
    )
    by_tier: dict[str, list[Path | str]] = {
        "agent": [COLLECTOR_CONFIG / "agent.yaml"],
        "gateway": [COLLECTOR_CONFIG / "base.yaml", COLLECTOR_CONFIG / "gateway.yaml"],
        "gateway+tail": [
            COLLECTOR_CONFIG / "base.yaml",
            COLLECTOR_CONFIG / "gateway.yaml",
            COLLECTOR_CONFIG / "tail-sampling.yaml",
        ],
    }
    configs = by_tier[tier]
    return Collector(binary, configs, env, workdir, name=tier.replace("+", "-"))


# --- load and measurement -----------------------------------------------------------------


class Load:
    """One step's load, running in the background: telemetrygen processes or the SDK replay."""

    def __init__(
        self,
        generator: str,
        collector: Collector,
        kind: str,
        rate: float,
        seconds: float,
        corpus: replay.Corpus | None = None,
    ) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.thread: threading.Thread | None = None
        self.result: list[replay.Replayed] = []
        if generator == "telemetrygen":
            port = collector.env["MODELOTEL_COLLECTOR_GRPC_PORT"]
            self.proc = telemetrygen.start(port, kind, rate, seconds)
            return
        assert corpus is not None
        url = f"http://127.0.0.1:{collector.env['MODELOTEL_COLLECTOR_HTTP_PORT']}"
        self.thread = threading.Thread(
            target=lambda: self.result.append(replay.replay(url, corpus, rate, seconds)),
            daemon=True,
        )
        self.thread.start()

    def running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return self.thread is not None and self.thread.is_alive()


@dataclass
class Step:
    tier: str
    kind: str
    offered_per_s: float
    seconds: float
    drain_s: float = 0.0
    accepted: float = 0.0
    refused: float = 0.0
    cpu_s: float = 0.0
    rss_peak_mib: float = 0.0
    rss_mean_mib: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted_per_s(self) -> float:
        return self.accepted / self.seconds

    @property
    def throughput_per_s(self) -> float:
        """Items through the collector per second, until its queues were empty again."""
        return self.accepted / (self.seconds + self.drain_s)

    @property
    def per_cpu_s(self) -> float:
        return self.accepted / self.cpu_s if self.cpu_s else 0.0

    @property
    def cpu_share(self) -> float:
        """Cores the collector used on average (1.0 = one core busy all the time)."""
        return self.cpu_s / self.seconds

    @property
    def generator_bound(self) -> bool:
        """Fewer items than offered arrived although the collector had CPU to spare: the load
        generator (on the same, shared cores) could not keep the rate; 0 = unthrottled."""
        short = self.offered_per_s == 0 or self.accepted < 0.9 * self.offered_per_s * self.seconds
        return short and self.cpu_share < 0.9

    def row(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            accepted_per_s=round(self.accepted_per_s),
            throughput_per_s=round(self.throughput_per_s),
            per_cpu_s=round(self.per_cpu_s),
            cpu_share=round(self.cpu_share, 3),
            generator_bound=self.generator_bound,
        )
        return out


@dataclass
class Plan:
    """What loads the collector: the generator and, for the SDK replay, its requests."""

    generator: str
    corpora: dict[str, replay.Corpus]


def measure(
    plan: Plan,
    collector: Collector,
    tier: str,
    kind: str,
    rate: float,
    seconds: float,
    corpus: replay.Corpus | None = None,
    drain: bool = True,
) -> Step:
    assert collector.proc is not None
    assert collector.proc.popen is not None
    pid = collector.proc.popen.pid
    acc_name, ref_name = SIGNALS[kind]
    before = collector.telemetry()
    cpu0 = cpu_seconds(pid)
    load = Load(plan.generator, collector, kind, rate, seconds, corpus or plan.corpora.get(kind))
    rss: list[float] = []
    while load.running():
        rss.append(rss_mib(pid))
        time.sleep(0.5)
    # let the exporters drain what was accepted, so that its CPU is counted too
    loaded = time.monotonic()
    deadline = loaded + (60 if drain else 0)
    while time.monotonic() < deadline:
        if metric_sum(collector.telemetry(), "otelcol_exporter_queue_size") == 0:
            break
        rss.append(rss_mib(pid))
        time.sleep(0.5)
    drained = time.monotonic() - loaded
    time.sleep(1.5)
    after = collector.telemetry()
    step = Step(tier, kind, rate, seconds, drain_s=round(drained, 1) if drain else 0.0)
    step.cpu_s = cpu_seconds(pid) - cpu0
    step.accepted = metric_sum(after, acc_name) - metric_sum(before, acc_name)
    step.refused = metric_sum(after, ref_name) - metric_sum(before, ref_name)
    step.extra["generator"] = plan.generator
    if load.result:
        sent = load.result[0]
        step.extra.update(requests=sent.requests, http_refused=sent.refused, failed=sent.failed)
    if kind == "payload_records":  # proof that they took the redacted payload pipeline
        redacted = {"otel_signal": "logs", "processor": "redaction/payload"}
        step.extra["redacted"] = metric_sum(
            after, "otelcol_processor_incoming_items", **redacted
        ) - metric_sum(before, "otelcol_processor_incoming_items", **redacted)
    step.rss_peak_mib = round(max(rss, default=0.0), 1)
    step.rss_mean_mib = round(sum(rss) / len(rss), 1) if rss else 0.0
    return step


def ramp(
    plan: Plan, collector: Collector, tier: str, kind: str, rates: list[float], seconds: float
) -> list[Step]:
    steps = []
    for rate in rates:
        step = measure(plan, collector, tier, kind, rate, seconds)
        steps.append(step)
        print(json.dumps(step.row()), flush=True)
        if step.refused:
            break  # the collector pushed back: that rate is past what it sustains
    return steps


def outage(
    plan: Plan, binary: Path, workdir: Path, kind: str, rate: float, seconds: float
) -> dict[str, Any]:
    """The agent's gateway is down: what the persistent queue writes to disk."""
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = collector_env(
        workdir / f"outage-{kind}",
        MODELOTEL_COLLECTOR_LOG_LEVEL="error",
        MODELOTEL_GATEWAY_ENDPOINT=dead,
        MODELOTEL_GATEWAY_INSECURE="true",
    )
    queue = Path(env["MODELOTEL_COLLECTOR_STORAGE_DIR"])
    agent = Collector(binary, [COLLECTOR_CONFIG / "agent.yaml"], env, workdir, f"outage-{kind}")
    with started(agent):
        time.sleep(1.0)
        empty = disk_bytes(queue)
        # the exporter's queue does not drain during an outage
        step = measure(plan, agent, "agent (gateway down)", kind, rate, seconds, drain=False)
        full = disk_bytes(queue)
    grown = full - empty
    per_item = grown / step.accepted if step.accepted else 0.0
    row = step.row()
    row.update(
        queue_bytes_empty=empty,
        queue_bytes=full,
        bytes_per_item=round(per_item),
        mib_per_minute_at_rate=round(per_item * rate * 60 / 2**20, 1),
    )
    shutil.rmtree(queue, ignore_errors=True)
    print(json.dumps(row), flush=True)
    return row


def _unique_traces(base: replay.Corpus, spans: float) -> replay.Corpus:
    """Requests with new trace ids each (the sampler groups by trace id), ``spans`` in all."""
    rng = random.Random(1)
    corpus = replay.Corpus("spans")
    while sum(corpus.items) < spans:
        i = len(corpus.bodies) % len(base.bodies)
        corpus.bodies.append(replay.fresh_ids(base.bodies[i], rng))
        corpus.items.append(base.items[i])
    return corpus


def tail_sampling(
    plan: Plan, binary: Path, workdir: Path, sink: Collector, rw_url: str, seconds: float
) -> list[dict[str, Any]]:
    """The gateway with and without tail-sampling.yaml at one span rate: CPU and memory, for
    ordinary spans (about MODELOTEL_TAIL_SAMPLE_PERCENT of them kept), the same with every
    trace waiting the whole decision_wait, and spans that are all kept (a check fired)."""
    rate = 2000.0
    ordinary = checked = None
    if plan.generator == "sdk":
        ordinary = _unique_traces(plan.corpora["spans"], rate * seconds * 1.2)
        checked = _unique_traces(plan.corpora["spans_checks_fired"], rate * seconds * 1.2)
    per_model = {"MODELOTEL_TAIL_SLOW_PER_MODEL": "fraud=50ms,churn=400ms"}
    cases: list[tuple[str, str, dict[str, str], replay.Corpus | None]] = [
        ("gateway", "plain", {}, ordinary),
        ("gateway+tail", "ordinary spans", per_model, ordinary),
        (
            "gateway+tail",
            "ordinary spans, every trace waits decision_wait (10 s)",
            {**per_model, "MODELOTEL_TAIL_DECISION_WAIT_AFTER_ROOT": "0s"},
            ordinary,
        ),
    ]
    if checked is not None:
        cases.append(("gateway+tail", "every trace kept (a check fired)", per_model, checked))
    rows = []
    for tier, what, extra, corpus in cases:
        collector = tier_collector(binary, workdir, tier, sink, rw_url, **extra)
        with started(collector):
            step = measure(plan, collector, tier, "spans", rate, seconds, corpus)
            t = collector.telemetry()
        kept = metric_sum(
            t, "otelcol_processor_tail_sampling_global_count_traces_sampled", sampled="true"
        )
        decided = metric_sum(t, "otelcol_processor_tail_sampling_global_count_traces_sampled")
        step.extra.update(extra, case=what, kept_share=round(kept / decided, 3) if decided else 1)
        row = step.row()
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


# --- the report ---------------------------------------------------------------------------


def _rate(r: dict[str, Any]) -> str:
    return "max" if not r["offered_per_s"] else f"{r['offered_per_s']:,.0f}"


def table(results: dict[str, Any]) -> str:
    """The sizing tables of collector-config/README.md, from this script's JSON."""
    out = [
        f"Machine load: {results['load_at_start']} (start), {results['load_at_end']} (end); "
        f"generator: {results['generator']}; bytes per item on the wire (OTLP protobuf): "
        + ", ".join(f"{k} {v}" for k, v in results["bytes_per_item_on_the_wire"].items()),
        "",
        "| tier | items | offered /s | accepted /s | through /s (queues drained) "
        "| collector cores used | items per CPU-second | RSS peak MiB | refused |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["ramps"]:
        out.append(
            f"| {r['tier']} | {r['kind'].replace('_', ' ')} | {_rate(r)} "
            f"| {r['accepted_per_s']:,} | {r['throughput_per_s']:,} | {r['cpu_share']:.2f} "
            f"| {r['per_cpu_s']:,} | {r['rss_peak_mib']:.0f} | {r['refused']:.0f} |"
        )
    if results["tail"]:
        out += [
            "",
            "| gateway, spans | offered /s | kept | collector cores used | items per CPU-second "
            "| RSS mean MiB | RSS peak MiB |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in results["tail"]:
            extra = r["extra"]
            what = "no tail sampling" if r["tier"] == "gateway" else extra["case"]
            kept = "all" if r["tier"] == "gateway" else f"{extra['kept_share']:.0%}"
            out.append(
                f"| {what} | {_rate(r)} | {kept} | {r['cpu_share']:.2f} | {r['per_cpu_s']:,} "
                f"| {r['rss_mean_mib']:.0f} | {r['rss_peak_mib']:.0f} |"
            )
    if results["outage"]:
        out += [
            "",
            "| persistent queue, gateway down | offered /s | bytes per item on disk "
            "| MiB per minute of outage at that rate | MiB per minute per 1,000 items/s |",
            "|---|---|---|---|---|",
        ]
        for r in results["outage"]:
            per_k = r["bytes_per_item"] * 1000 * 60 / 2**20
            out.append(
                f"| {r['kind'].replace('_', ' ')} | {_rate(r)} | {r['bytes_per_item']:,} "
                f"| {r['mib_per_minute_at_rate']} | {per_k:.1f} |"
            )
    return "\n".join(out)


# --- the run ------------------------------------------------------------------------------


#: offered items/s per step; 0 = as fast as the generator goes (the last step of each ramp)
RATES: dict[str, list[float]] = {
    "spans": [2000, 10000, 0],
    "metric_points": [2000, 10000, 0],
    "payload_records": [500, 2000, 0],
}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="shorter steps, fewer rates")
    p.add_argument("--generator", choices=["sdk", "telemetrygen"], default="sdk")
    p.add_argument("--step-seconds", type=float, default=15.0)
    p.add_argument("--outage-seconds", type=float, default=60.0)
    p.add_argument("--only", default="", help="agent:KIND,gateway:KIND,tail,outage (a subset)")
    p.add_argument("--json", default="", help="write every measurement to this file")
    p.add_argument("--workdir", default="", help="default: a temporary directory")
    p.add_argument("--table", default="", help="only print the tables of an earlier --json file")
    args = p.parse_args(argv)
    if args.table:
        print(table(json.loads(Path(args.table).read_text())))
        return 0
    seconds = 6.0 if args.quick else args.step_seconds
    outage_s = 20.0 if args.quick else args.outage_seconds
    rates = {k: v[1:] if args.quick else v for k, v in RATES.items()}
    wanted = set(filter(None, args.only.split(",")))

    def on(name: str) -> bool:
        return not wanted or name in wanted or name.split(":")[0] in wanted

    import tempfile

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="modelotel-sizing-"))
    workdir.mkdir(parents=True, exist_ok=True)
    binary = otelcol_binary()
    plan = Plan(args.generator, {})
    if args.generator == "sdk":
        plan.corpora = replay.capture(workdir)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    results: dict[str, Any] = {
        "load_at_start": load,
        "generator": args.generator,
        "bytes_per_item_on_the_wire": {
            k: round(c.bytes_per_item()) for k, c in plan.corpora.items()
        },
        "ramps": [],
        "tail": [],
        "outage": [],
    }
    print(f"# collector {binary}\n# {load}\n# {json.dumps(results)}", flush=True)

    with remote_write_sink() as rw_url, started(sink_collector(binary, workdir)) as sink:
        for tier in ("agent", "gateway"):
            for kind in SIGNALS:
                if not on(f"{tier}:{kind}"):
                    continue
                collector = tier_collector(binary, workdir, tier, sink, rw_url)
                with started(collector):
                    steps = ramp(plan, collector, tier, kind, rates[kind], seconds)
                results["ramps"] += [s.row() for s in steps]
        if on("tail"):
            results["tail"] = tail_sampling(
                plan, binary, workdir, sink, rw_url, max(seconds, 30.0)
            )
        if on("outage"):
            for kind, rate in (("spans", 1000.0), ("metric_points", 1000.0)):
                results["outage"].append(outage(plan, binary, workdir, kind, rate, outage_s))
            results["outage"].append(
                outage(plan, binary, workdir, "payload_records", 200.0, outage_s)
            )
    results["load_at_end"] = subprocess.run(
        ["uptime"], capture_output=True, text=True
    ).stdout.strip()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
