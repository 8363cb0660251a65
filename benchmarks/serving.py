"""Cost of modelotel in serving conditions, as ratios to a bare OTel span exported the same way.

Usage::

    .venv/bin/python benchmarks/serving.py                 # full run (several minutes)
    .venv/bin/python benchmarks/serving.py --quick         # smoke run (under a minute)
    .venv/bin/python benchmarks/serving.py --json out.json # also write every figure as JSON

The script starts the bundled collector (``collector-config/build.sh``; ``MODELOTEL_OTELCOL``
names a binary already built) with an OTLP/HTTP receiver and a discarding ``debug`` exporter
(verbosity basic), then calls ``modelotel.configure()`` towards it with a short metric
interval, so that metric collections, span and log export all happen during the run, on the
process's own threads. S, the reference, is ``f(x)`` inside a bare span of the same
(global) tracer provider, hence the same batch processor and OTLP exporter.

Sections:

(a) **paced**: every call is preceded by other work that evicts the caches (a pass over a
    buffer larger than L2) and a short sleep, as in a server between requests. Reported:
    the added p50 and p99 of each case (its call minus the bare function's call, same
    percentile), and their ratios to the bare span's added p50 / p99.
(b) **loop**: one worker thread calls back to back: calls per second, and the process CPU
    per call (``time.process_time``, export threads included, with a flush of the span and
    log queues inside the measured interval), both as ratios to the bare span. The span
    queue is made large enough that nothing is dropped (a drop would make CPU look cheaper).
    The full run repeats this section in a child process at 1% trace sampling.
(c) **batch**: a linear model and a tree model (lightgbm when installed, else sklearn's
    HistGradientBoostingClassifier) scoring chunks of 10k and 50k rows x 30 through
    ``modelotel.wrap``: instrumented throughput over uninstrumented, each chunk scored both
    ways back to back (alternating which goes first).

Cases (each with and without a training baseline, payloads sampled at 1%): numpy 1x20 and
32x20, a dict record, a list of 32 records, 1-row and 32-row DataFrames of floats and mixed
with a categorical column, a 1-row DataFrame built from a JSON-like record (19 floats and a
str field), a str, a list of 32 str. Every call gets an input of its own, built as a request
handler builds it (records and texts parsed from JSON, frames made of those) outside the
timed call; the loop cycles through 16 such inputs. A reference row, "span with the 5 span
attributes", times S's span carrying the attributes that every prediction span carries
(model name and version, prediction id, input rows and features) and nothing else of
modelotel: the part of a case's figure that the span alone accounts for.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
BARE = "bare function"
SPAN = "S: bare span"
#: a reference row, not modelotel: S's span with the five attributes of a prediction span
REFERENCE = "span with the 5 span attributes"
REFERENCE_VARIANT = "no modelotel"

# --------------------------------------------------------------------------- collector

_COLLECTOR_CONFIG = """\
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{port}
exporters:
  debug:
    verbosity: basic
    sampling_initial: 1
    sampling_thereafter: 1000000
service:
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
  pipelines:
    traces: {{receivers: [otlp], exporters: [debug]}}
    metrics: {{receivers: [otlp], exporters: [debug]}}
    logs: {{receivers: [otlp], exporters: [debug]}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _otelcol() -> str:
    explicit = os.environ.get("MODELOTEL_OTELCOL")
    if explicit:
        return explicit
    out = subprocess.run(["bash", str(REPO / "collector-config" / "build.sh")],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


@contextmanager
def collector() -> Iterator[str]:
    """A local collector that accepts OTLP/HTTP and discards; yields its endpoint."""
    binary = _otelcol()
    port = _free_port()
    workdir = Path(tempfile.mkdtemp(prefix="modelotel-serving-"))
    config = workdir / "config.yaml"
    config.write_text(_COLLECTOR_CONFIG.format(port=port))
    log = (workdir / "otelcol.log").open("wb")
    proc = subprocess.Popen([binary, "--config", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "collector did not start: " + (workdir / "otelcol.log").read_text()[-2000:]
                    ) from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- cases

N_FEATURES = 20


Case = tuple[Callable[[], Any], Callable[[Any], Any], Any]


def _inputs(rng: np.random.Generator) -> dict[str, Case]:
    """case -> (a new input per call, predict function, training inputs for the baseline).

    Every call gets an input of its own, built as a request handler builds it (records and
    texts parsed from the request's JSON, frames made of them): a cache keyed on the
    input object would be hit every time by one input reused, never in a server.
    """
    names = [f"f{i}" for i in range(N_FEATURES)]
    w = rng.normal(size=N_FEATURES)

    def score_matrix(x: Any) -> Any:
        return np.asarray(x, dtype=float) @ w

    def score_record(r: dict[str, float]) -> float:
        return float(sum(r.values()))

    def score_records(rs: list[dict[str, float]]) -> list[float]:
        return [float(sum(r.values())) for r in rs]

    def score_frame(df: pd.DataFrame) -> Any:
        return np.full(len(df), 0.5)  # cheap: the figure is what modelotel adds

    def label_text(s: str) -> str:
        return "positive" if len(s) % 2 else "negative"

    def label_texts(ss: list[str]) -> list[str]:
        return ["positive" if len(s) % 2 else "negative" for s in ss]

    train = rng.normal(size=(2000, N_FEATURES))
    cats = pd.Categorical(rng.choice(["a", "b", "c", "d"], size=2000))
    categories = ["a", "b", "c", "d"]

    def frame(m: np.ndarray, mixed: bool) -> Callable[[], pd.DataFrame]:
        rows = json.dumps(m.tolist())
        labels = json.dumps([categories[i % 4] for i in range(len(m))])

        def make() -> pd.DataFrame:
            df = pd.DataFrame(json.loads(rows), columns=names)
            if mixed:
                df[names[-1]] = pd.Categorical(json.loads(labels), categories=categories)
            return df

        return make

    def parsed(value: Any) -> Callable[[], Any]:
        text = json.dumps(value)
        return lambda: json.loads(text)

    train_df_mixed = pd.DataFrame(train, columns=names)
    train_df_mixed[names[-1]] = cats
    x1 = rng.normal(size=(1, N_FEATURES))
    x32 = rng.normal(size=(32, N_FEATURES))
    records = [dict(zip(names, map(float, row), strict=True)) for row in x32]
    words = ["good", "bad", "slow", "fast", "refund", "great", "late", "broken"]
    texts = [" ".join(rng.choice(words, size=8)) for _ in range(32)]
    train_texts = [" ".join(rng.choice(words, size=8)) for _ in range(500)]
    train_records = [dict(zip(names, map(float, row), strict=True)) for row in train[:500]]
    # a request's JSON record as a frame: float fields and a str field (pandas' "str" dtype)
    cities = ["Oslo", "Lyon", "Kyiv", "Lima"]
    mixed_record = parsed({**dict(zip(names[:-1], map(float, x1[0][:-1]), strict=True)),
                           names[-1]: cities[0]})
    train_mixed_records = [{**r, names[-1]: cities[i % 4]} for i, r in enumerate(train_records)]
    return {
        "numpy 1x20": (x1.copy, score_matrix, train),
        "numpy 32x20": (x32.copy, score_matrix, train),
        "dict record": (parsed(records[0]), score_record, train_records),
        "list of 32 records": (parsed(records), score_records, train_records),
        "DataFrame 1 row float": (frame(x1, False), score_frame,
                                  pd.DataFrame(train, columns=names)),
        "DataFrame 32 rows float": (frame(x32, False), score_frame,
                                    pd.DataFrame(train, columns=names)),
        "DataFrame 1 row mixed": (frame(x1, True), score_frame, train_df_mixed),
        "DataFrame 32 rows mixed": (frame(x32, True), score_frame, train_df_mixed),
        "DataFrame 1 row from a record": (lambda: pd.DataFrame([mixed_record()]), score_frame,
                                          pd.DataFrame(train_mixed_records)),
        "str": (parsed(texts[0]), label_text, train_texts),
        "list of 32 str": (parsed(texts), label_texts, train_texts),
    }


#: (label, the call, a new input for it)
Variant = tuple[str, Callable[[Any], Any], Callable[[], Any]]


def build_variants(
    quick: bool, only: frozenset[str] | None = None
) -> tuple[list[Variant], list[str]]:
    """Every timed variant: the bare function, S, and each case with / without a baseline
    (``only``: these cases, by name)."""
    from opentelemetry import trace

    import modelotel

    rng = np.random.default_rng(7)
    tracer = trace.get_tracer("bench")
    cases = _inputs(rng)
    make0, f0, _ = cases["numpy 1x20"]
    variants: list[Variant] = [(BARE, f0, make0)]

    def spanned(x: Any) -> Any:
        with tracer.start_as_current_span("p"):
            return f0(x)

    variants.append((SPAN, spanned, make0))
    labels: list[str] = []
    if only is None or REFERENCE in only:
        # what the span modelotel makes costs by itself: S's span with the five attributes
        # every prediction span carries (docs: the telemetry contract), nothing else
        def attributed(x: Any) -> Any:
            with tracer.start_as_current_span("p", attributes={
                "ml.model.name": "reference", "ml.model.version": "1",
                "ml.prediction.id": f"{random.getrandbits(64):016x}",
                "ml.input.rows": 1, "ml.input.features": N_FEATURES,
            }):
                return f0(x)

        variants.append((f"{REFERENCE} | bare function", f0, make0))
        variants.append((f"{REFERENCE} | {REFERENCE_VARIANT}", attributed, make0))
        labels.append(f"{REFERENCE} | {REFERENCE_VARIANT}")
    for i, (case, (make, f, train)) in enumerate(cases.items()):
        if only is not None and case not in only:
            continue
        variants.append((f"{case} | bare function", f, make))
        for with_baseline in (False, True):
            opts: dict[str, Any] = {"payload_sample_rate": 0.01}
            if with_baseline:
                single = case in ("dict record", "str")  # f takes one item: score each
                outputs = [f(t) for t in train] if single else f(train)
                opts["baseline"] = modelotel.Baseline.from_data(train, outputs=outputs)
            label = f"{case} | {'baseline' if with_baseline else 'no baseline'}"
            inst = modelotel.instrument(model=f"serving-{i}-{int(with_baseline)}",
                                        version="1", **opts)(f)
            inst(make())  # warm: monitor, schema, compiled readers
            variants.append((label, inst, make))
            labels.append(label)
    return variants, labels


def _bare_of(label: str) -> str:
    return label.split(" | ")[0] + " | bare function"


# --------------------------------------------------------------------------- (a) paced


def paced(
    variants: list[Variant], labels: list[str], rounds: int, pause_s: float
) -> dict[str, Any]:
    """Added p50/p99 per case against the bare span's, calls spaced by cache-evicting work."""
    evict = np.ones(1 << 20)  # 8 MiB: larger than L2, a good share of L3
    times: dict[str, list[int]] = {label: [] for label, _, _ in variants}
    order = list(variants)
    clock = time.perf_counter_ns
    for _ in range(rounds):
        random.shuffle(order)
        for label, call, make in order:
            np.add(evict, 1.0, out=evict)
            time.sleep(pause_s)
            x = make()  # the request's input, built before the call as a handler does
            t0 = clock()
            call(x)
            times[label].append(clock() - t0)

    def pct(label: str, q: float) -> float:
        v = sorted(times[label])
        return v[min(len(v) - 1, int(q * len(v)))] / 1e3

    s50 = pct(SPAN, 0.5) - pct(BARE, 0.5)
    s99 = pct(SPAN, 0.99) - pct(BARE, 0.99)
    out: dict[str, Any] = {"S": {"added_p50_us": s50, "added_p99_us": s99,
                                 "bare_p50_us": pct(BARE, 0.5), "calls": rounds}}
    for label in labels:
        bare = _bare_of(label)
        a50 = pct(label, 0.5) - pct(bare, 0.5)
        a99 = pct(label, 0.99) - pct(bare, 0.99)
        out[label] = {"added_p50_us": a50, "added_p99_us": a99,
                      "p50_ratio": a50 / s50, "p99_ratio": a99 / s99}
    return out


# --------------------------------------------------------------------------- (b) loop


def _flush() -> None:
    from opentelemetry import trace
    from opentelemetry._logs import get_logger_provider

    from modelotel.testing import drain

    # the payload records that the calls queued are built on modelotel's worker thread:
    # their CPU belongs to the variant that made them, not to the next one measured
    drain()

    for provider in (trace.get_tracer_provider(), get_logger_provider()):
        flush = getattr(provider, "force_flush", None)
        if flush is not None:
            flush()


#: repeats of each loop variant, of which the median is taken: a metric collection (every
#: 2 s here) makes about one run in seven last 2-3 times as long, and of 7 repeats the
#: median is an ordinary run unless four of them meet one
LOOP_REPEATS = 7

#: inputs a loop cycles through: each call's input is another object than the last call's,
#: as in a server, and building them stays out of the timed loop
POOL = 16


def _loop_once(call: Callable[[Any], Any], pool: list[Any], n: int) -> tuple[float, float]:
    """(wall seconds, process CPU seconds incl. the export flush) of n calls in a worker."""
    box: list[float] = []
    last = len(pool) - 1

    def work() -> None:
        t0 = time.perf_counter()
        for i in range(n):
            call(pool[i & last])
        box.append(time.perf_counter() - t0)

    _flush()
    c0 = time.process_time()
    t = threading.Thread(target=work)
    t.start()
    t.join()
    _flush()
    return box[0], time.process_time() - c0


def loop(
    variants: list[Variant], labels: list[str], repeats: int, min_time: float
) -> dict[str, Any]:
    """Calls/s of one worker thread and process CPU per call, ratios to the bare span."""
    counts: dict[str, int] = {}
    pools = {label: [make() for _ in range(POOL)] for label, _, make in variants}
    for label, call, _ in variants:
        n = 16
        while True:
            wall, _ = _loop_once(call, pools[label], n)
            if wall >= min_time / 4 or n > 1_000_000:
                break
            n *= 4
        counts[label] = max(16, int(n * min_time / max(wall, 1e-9)))
    wall_us: dict[str, list[float]] = {label: [] for label, _, _ in variants}
    cpu_us: dict[str, list[float]] = {label: [] for label, _, _ in variants}
    order = list(variants)
    for _ in range(repeats):
        # a new order each time: in a fixed one, a cycle of the variants can last a whole
        # number of metric intervals, and the same variants then meet a collection (up to
        # ~200 ms of the metric thread) in every repeat, which their median cannot shed
        random.shuffle(order)
        for label, call, _ in order:
            n = counts[label]
            wall, cpu = _loop_once(call, pools[label], n)
            wall_us[label].append(wall / n * 1e6)
            cpu_us[label].append(cpu / n * 1e6)
    med_wall = {k: statistics.median(v) for k, v in wall_us.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu_us.items()}
    s_wall = med_wall[SPAN] - med_wall[BARE]
    s_cpu = med_cpu[SPAN] - med_cpu[BARE]
    out: dict[str, Any] = {"S": {"added_us": s_wall, "cpu_added_us": s_cpu,
                                 "calls_per_s": 1e6 / med_wall[SPAN]}}
    for label in labels:
        bare = _bare_of(label)
        added = med_wall[label] - med_wall[bare]
        cpu = med_cpu[label] - med_cpu[bare]
        out[label] = {
            "calls_per_s": 1e6 / med_wall[label],
            "bare_calls_per_s": 1e6 / med_wall[bare],
            "added_us": added,
            "ratio": added / s_wall,
            "cpu_added_us": cpu,
            "cpu_ratio": cpu / s_cpu,
        }
    return out


# --------------------------------------------------------------------------- (c) batch


def batch(quick: bool, repeats: int) -> dict[str, Any]:
    """Throughput of instrumented over uninstrumented scoring of 10k / 50k-row chunks."""
    from sklearn.linear_model import LogisticRegression

    import modelotel

    rng = np.random.default_rng(11)
    n_train = 5_000 if quick else 20_000
    x = rng.normal(size=(n_train, 30))
    y = (x[:, 0] + x[:, 1] * x[:, 2] + rng.normal(size=n_train) > 0).astype(int)
    models: dict[str, Any] = {"linear (LogisticRegression)": LogisticRegression(max_iter=200)}
    try:
        import lightgbm

        models["tree (lightgbm, 100 trees)"] = lightgbm.LGBMClassifier(
            n_estimators=100, num_leaves=31, verbose=-1)
    except ImportError:
        from sklearn.ensemble import HistGradientBoostingClassifier

        models["tree (HistGradientBoosting, 100 iters)"] = HistGradientBoostingClassifier(
            max_iter=100)
    total = 100_000 if quick else 500_000
    data = rng.normal(size=(total, 30))
    out: dict[str, Any] = {}
    for name, m in models.items():
        m.fit(x, y)
        base = modelotel.Baseline.from_data(x, outputs=m.predict_proba(x)[:, 1])
        wrapped = modelotel.wrap(_Fitted(m), model=f"batch-{len(out)}", version="1",
                                 baseline=base, payload_sample_rate=0.01)
        for chunk in (10_000, 50_000):
            chunks = [data[i:i + chunk] for i in range(0, total, chunk)]
            plain_s: list[float] = []
            inst_s: list[float] = []
            wrapped.predict_proba(chunks[0])
            for _ in range(repeats):
                # each chunk is scored bare and instrumented back to back, in alternating
                # order: a change in the machine's load (the tree model uses every core)
                # falls on both sides instead of on one pass
                plain = inst = 0.0
                for k, c in enumerate(chunks):
                    t0 = time.perf_counter()
                    (m.predict_proba if k % 2 else wrapped.predict_proba)(c)
                    t1 = time.perf_counter()
                    (wrapped.predict_proba if k % 2 else m.predict_proba)(c)
                    t2 = time.perf_counter()
                    plain += t1 - t0 if k % 2 else t2 - t1
                    inst += t2 - t1 if k % 2 else t1 - t0
                plain_s.append(plain)
                inst_s.append(inst)
            p, i = statistics.median(plain_s), statistics.median(inst_s)
            out[f"{name}, {chunk // 1000}k x 30"] = {
                "rows_per_s": total / p,
                "instrumented_rows_per_s": total / i,
                "throughput_ratio": p / i,
                "added_ms_per_chunk": (i - p) / len(chunks) * 1e3,
            }
    return out


class _Fitted:
    """The fitted estimator behind a plain object, as a service would hold it."""

    def __init__(self, m: Any) -> None:
        self._m = m

    def predict_proba(self, x: Any) -> Any:
        return self._m.predict_proba(x)[:, 1]


# --------------------------------------------------------------------------- main


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def run_sections(args: argparse.Namespace, endpoint: str) -> dict[str, Any]:
    import modelotel

    os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] = str(1 << 20)
    os.environ["OTEL_BLRP_MAX_QUEUE_SIZE"] = str(1 << 18)
    if args.trace_ratio < 1.0:
        os.environ["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
        os.environ["OTEL_TRACES_SAMPLER_ARG"] = str(args.trace_ratio)
    modelotel.configure("modelotel-serving-bench", endpoint=endpoint, protocol="http/protobuf",
                        export_interval_ms=1000 if args.quick else 2000)
    results: dict[str, Any] = {"trace_ratio": args.trace_ratio}
    try:
        only = frozenset(c.strip() for c in args.cases.split(",")) if args.cases else None
        variants, labels = build_variants(args.quick, only)
        sections = set(args.sections.split(","))
        if "paced" in sections:
            results["paced"] = paced(variants, labels, 30 if args.quick else args.rounds,
                                     args.pause_ms / 1e3)
        if "loop" in sections:
            results["loop"] = loop(variants, labels, 2 if args.quick else LOOP_REPEATS,
                                   0.02 if args.quick else 0.25)
        if "batch" in sections:
            results["batch"] = batch(args.quick, 1 if args.quick else 5)
    finally:
        modelotel.shutdown()
    return results


def table(results: dict[str, Any]) -> str:
    lines: list[str] = [f"uptime: {results['uptime']}", ""]
    paced_r = results.get("paced")
    if paced_r:
        s = paced_r["S"]
        lines.append(f"(a) paced, {s['calls']} calls per case; S added p50 "
                     f"{s['added_p50_us']:.1f} us, p99 {s['added_p99_us']:.1f} us")
        lines.append(f"{'case':<40} {'p50 us':>8} {'x S':>6} {'p99 us':>8} {'x S p99':>8}")
        for k, v in paced_r.items():
            if k != "S":
                lines.append(f"{k:<40} {v['added_p50_us']:>8.1f} {v['p50_ratio']:>6.2f} "
                             f"{v['added_p99_us']:>8.1f} {v['p99_ratio']:>8.2f}")
        lines.append("")
    for key in ("loop", "loop_1pct"):
        loop_r = results.get(key)
        if not loop_r:
            continue
        s = loop_r["S"]
        ratio = "1%" if key == "loop_1pct" else "100%"
        lines.append(f"(b) closed loop, traces {ratio}; S added {s['added_us']:.1f} us, "
                     f"CPU {s['cpu_added_us']:.1f} us per call")
        lines.append(f"{'case':<40} {'calls/s':>9} {'added us':>9} {'x S':>6} "
                     f"{'CPU us':>7} {'CPU x S':>8}")
        for k, v in loop_r.items():
            if k != "S":
                lines.append(f"{k:<40} {v['calls_per_s']:>9.0f} {v['added_us']:>9.1f} "
                             f"{v['ratio']:>6.2f} {v['cpu_added_us']:>7.1f} {v['cpu_ratio']:>8.2f}")
        lines.append("")
    batch_r = results.get("batch")
    if batch_r:
        lines.append("(c) batch scoring, baseline + payloads 1%")
        lines.append(f"{'model, chunk':<48} {'rows/s':>10} {'instr rows/s':>12} {'ratio':>6} "
                     f"{'ms/chunk':>9}")
        for k, v in batch_r.items():
            lines.append(f"{k:<48} {v['rows_per_s']:>10.0f} {v['instrumented_rows_per_s']:>12.0f} "
                         f"{v['throughput_ratio']:>6.3f} {v['added_ms_per_chunk']:>9.2f}")
    return "\n".join(lines)


def finite(results: dict[str, Any]) -> bool:
    """Whether every figure in ``results`` is a finite number (the smoke test's check)."""
    def walk(v: Any) -> Iterator[float]:
        if isinstance(v, dict):
            for x in v.values():
                yield from walk(x)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            yield float(v)

    return all(math.isfinite(x) for x in walk({k: v for k, v in results.items()
                                               if k in ("paced", "loop", "loop_1pct", "batch")}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run")
    p.add_argument("--json", help="write the results as JSON to this file")
    p.add_argument("--sections", default="paced,loop,batch")
    p.add_argument("--cases", default="",
                   help="comma-separated case names (default: every case)")
    p.add_argument("--trace-ratio", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=600, help="paced calls per case")
    p.add_argument("--pause-ms", type=float, default=1.0)
    p.add_argument("--no-1pct", action="store_true", help="skip the 1%% loop child process")
    args = p.parse_args(argv)
    results: dict[str, Any] = {"uptime": _uptime(), "python": sys.version.split()[0]}
    with collector() as endpoint:
        results.update(run_sections(args, endpoint))
        if "loop" in args.sections and args.trace_ratio == 1.0 and not args.no_1pct:
            with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
                cmd = [sys.executable, __file__, "--sections", "loop", "--trace-ratio", "0.01",
                       "--json", tmp.name, "--no-1pct", "--cases", args.cases]
                cmd += ["--quick"] if args.quick else []
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                results["loop_1pct"] = json.loads(Path(tmp.name).read_text())["loop"]
    return report(results, table(results), args.json)


def report(results: dict[str, Any], text: str, json_path: str | None) -> int:
    """Print ``text`` and the load at the end, write ``results`` as JSON if asked; the exit
    status says whether every figure is finite."""
    results["uptime_end"] = _uptime()
    print(text)
    print(f"uptime at end: {results['uptime_end']}")
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=1))
    return 0 if finite(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
