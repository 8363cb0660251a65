"""Per-call overhead of modelotel, as ratios to S = a bare OTel span, measured in one process.

Usage::

    .venv/bin/python benchmarks/overhead.py            # full run (~1-2 minutes)
    .venv/bin/python benchmarks/overhead.py --quick    # smoke run (a few seconds)

S is ``with tracer.start_as_current_span("p"): f(x)`` with the SDK ``TracerProvider``, a
``BatchSpanProcessor`` and an exporter that discards. Every case runs in the same process;
repeats are interleaved (round-robin over the cases) and medians are reported, with GC on
and the span processor's worker thread running, so a figure is the amortised cost per call.

Targets (issue 2), on the calling thread, for the core (span + serving metrics; the
parts (statistics, outcomes, payloads) removed):
    modelotel, traces 100% sampled + duration metrics  <= 1.5 S
    modelotel, traces sampled at 1%                     <= 0.6 S
    modelotel disabled                                  <= 0.05 S
The same calls with the default parts (statistics of the (1, 20) input, payload
sampler) are printed for information.

The serving metrics are aggregated in process and replayed into the OTel histogram when
the metric reader collects (see ``modelotel._monitor``); that replay runs on the reader's
thread. Its cost per call is measured separately and printed ("collect replay").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _harness import (
    Case,
    bare_span,
    calibrate,
    discarding_meter_provider,
    discarding_tracer_provider,
    interleaved_repeats,
    print_cases,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

import modelotel
from modelotel import _monitor
from modelotel import attributes as tn
from modelotel._instrument import PLAN_ATTR
from modelotel._runtime import runtime

CORE100 = "modelotel 100% sampled + serving metrics (core)"
CORE1 = "modelotel 1% sampled + serving metrics (core)"
ALL100 = "modelotel 100% sampled, default parts (stats, payload)"
ALL1 = "modelotel 1% sampled, default parts (stats, payload)"
OFF_RUNTIME = "modelotel disabled at runtime (set_enabled(False))"
OFF_DECORATION = "modelotel disabled at decoration (MODELOTEL_ENABLED=false)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 9)
    min_time = 0.02 if args.quick else 0.2

    x = np.zeros((1, 20))
    tp100 = discarding_tracer_provider(ParentBased(TraceIdRatioBased(1.0)))
    tp1 = discarding_tracer_provider(ParentBased(TraceIdRatioBased(0.01)))
    mp = discarding_meter_provider()
    tracer100 = tp100.get_tracer("bench")
    meter = mp.get_meter("bench")
    hist = meter.create_histogram("bench.duration", unit="s")
    ctr = meter.create_counter("bench.rows")
    attrs = {tn.ML_MODEL_NAME: "bench", tn.ML_MODEL_VERSION: "1"}

    def f(v: Any) -> Any:
        return v

    predict = modelotel.instrument(model="bench", version="1")(f)
    predict_core = modelotel.instrument(model="bench-core", version="1")(f)

    import wrapt

    @wrapt.decorator  # type: ignore[misc]
    def naive(wrapped: Any, instance: Any, a: Any, kw: Any) -> Any:
        # the naive composition: span + Histogram.record + Counter.add per call
        t0 = time.perf_counter()
        with tracer100.start_as_current_span("predict bench", attributes=attrs):
            r = wrapped(*a, **kw)
        hist.record(time.perf_counter() - t0, attrs)
        ctr.add(1, attrs)
        return r

    naive_f = naive(f)

    def use(tp: TracerProvider | None) -> Callable[[], None]:
        def setup() -> None:
            runtime.set_enabled(True)
            runtime.set_providers(tp, mp, None)
            # warm the monitors for this generation outside the timed loop
            predict(x)
            predict_core(x)
            _monitor.get_monitor(getattr(predict_core, PLAN_ATTR).config).ends = ()

        return setup

    def disabled() -> None:
        runtime.set_providers(tp100, mp, None)
        runtime.set_enabled(False)

    def nothing() -> None:
        runtime.set_enabled(True)

    cases: list[Case] = [
        ("bare call f(x)", nothing, lambda: f(x)),
        ("S: bare OTel span (100%, BSP, discard)", nothing, bare_span(tracer100, f, x)),
        ("naive: wrapt + span + Histogram.record + Counter.add", nothing, lambda: naive_f(x)),
        (ALL100, use(tp100), lambda: predict(x)),
        (CORE100, use(tp100), lambda: predict_core(x)),
        (ALL1, use(tp1), lambda: predict(x)),
        (CORE1, use(tp1), lambda: predict_core(x)),
        (OFF_RUNTIME, disabled, lambda: predict(x)),
        (OFF_DECORATION, nothing, lambda: f(x)),
    ]

    results = interleaved_repeats(cases, calibrate(cases, min_time), repeats)
    runtime.set_enabled(True)

    # cost of the collection-time replay (reader thread), per call recorded: a collection
    # after n calls minus a collection after none (the other parts' callbacks cost the same)
    replay_reader = InMemoryMetricReader()
    replay_mp = MeterProvider(metric_readers=[replay_reader])
    runtime.set_providers(tp1, replay_mp, None)
    n_replay = 2_000 if args.quick else 20_000
    predict_core(x)
    _monitor.get_monitor(getattr(predict_core, PLAN_ATTR).config).ends = ()
    replay_reader.get_metrics_data()
    idle: list[float] = []
    busy: list[float] = []
    for _ in range(3):
        t0 = time.perf_counter()
        replay_reader.get_metrics_data()
        idle.append(time.perf_counter() - t0)
        for _ in range(n_replay):
            predict_core(x)
        t0 = time.perf_counter()
        replay_reader.get_metrics_data()
        busy.append(time.perf_counter() - t0)
    replay_us = (statistics.median(busy) - statistics.median(idle)) / n_replay * 1e6
    runtime.set_providers(None, None, None)

    med = {label: statistics.median(v) for label, v in results.items()}
    s = med["S: bare OTel span (100%, BSP, discard)"]
    print(f"modelotel overhead benchmark ({repeats} interleaved repeats, medians, GC on)")
    print(f"python {sys.version.split()[0]}, modelotel {modelotel.__version__}")
    parts = _monitor.get_monitor(getattr(predict, PLAN_ATTR).config).parts
    print(f"parts built by default for the benchmark model: {len(parts)}")
    print()
    width = print_cases(results, s)
    print(f"{'collect replay per recorded call (reader thread)':<{width}}  {replay_us:>10.3f}")
    print()
    targets = [(CORE100, 1.5), (CORE1, 0.6), (OFF_RUNTIME, 0.05), (OFF_DECORATION, 0.05)]
    for label, target in targets:
        ratio = med[label] / s
        verdict = "ok" if ratio <= target else "OVER"
        print(f"ratio {label}: {ratio:.3f} S (target <= {target} S) {verdict}")
    for label in (ALL100, ALL1):
        print(f"ratio {label}: {med[label] / s:.3f} S (for information)")
    naive_label = "naive: wrapt + span + Histogram.record + Counter.add"
    print(f"ratio naive composition: {med[naive_label] / s:.3f} S")
    tp100.shutdown()
    tp1.shutdown()
    mp.shutdown()
    replay_mp.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
