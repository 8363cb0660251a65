"""Throughput and per-call cost of modelotel's statistics, as ratios measured in one process.

Usage::

    .venv/bin/python benchmarks/stats.py            # full run (~1-2 minutes)
    .venv/bin/python benchmarks/stats.py --quick    # smoke run (a few seconds)

Prints, from one run on this machine:

1. B = streaming memory bandwidth: ``np.sum`` over a 400 MB float64 array.
2. Statistics throughput on a clean 10000 x 100 float64 batch and on one with 1% NaN, as a
   share of B: moments (count, missing, mean, variance, min, max), binned counts on the
   baseline's decile edges, and the whole accumulate (both), by numpy and, when it is
   built, by the compiled kernel (what the monitor uses for a float64 batch).
   Targets: moments >= 15% of B on clean data, binned counts >= 5% of B.
3. Rows per second of the whole profile (the monitor's path from a pandas DataFrame: column
   extraction, alignment, accumulate) against ``whylogs.log`` on the same DataFrame.
   Target: >= 100x whylogs. whylogs is an optional benchmark dependency
   (``pip install whylogs``); if it is missing or fails, the line says so.
4. Per-call cost added by statistics to an instrumented predict on a 32 x 20 batch (with a
   baseline: bins, drift, output checks), as a ratio to S = a bare OTel span (SDK
   TracerProvider + BatchSpanProcessor + discarding exporter, ``with
   tracer.start_as_current_span``: overhead.py's S, timed by the same harness) measured in
   the same run. "on" and "off" are the same wrapper and config with and without the
   statistics hook; the added cost is the median of their paired differences (ABBA order).
   Target: <= 0.5 S. With the compiled kernel (modelotel.stats.kernel), which CI builds; the
   same "on" case without it (numpy only, as on an install without a C compiler) is printed
   next to it, and the same batch as pandas DataFrames (float64 / nullable Int64 columns).
5. Memory across 100k calls of the statistics hook (tracemalloc): must stay flat.

Medians of interleaved repeats; ratios, not absolute times, carry across machines.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from _harness import bare_span, calibrate, discarding_tracer_provider, interleaved_repeats

import modelotel
from modelotel import _monitor
from modelotel._options import model_config
from modelotel._runtime import runtime
from modelotel._types import MISSING
from modelotel.stats import Baseline, kernel
from modelotel.stats.accumulate import NumericAccumulator


def timed(fn: Callable[[], Any], repeats: int, number: int = 1) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` runs of ``number`` calls."""
    fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        out.append((time.perf_counter() - t0) / number)
    return statistics.median(out)


def interleaved(cases: dict[str, Callable[[], Any]], repeats: int, number: int) -> dict[str, float]:
    """Median seconds per call of each case, repeats interleaved round-robin."""
    samples: dict[str, list[float]] = {k: [] for k in cases}
    for fn in cases.values():
        for _ in range(number // 10 + 1):
            fn()
    for _ in range(repeats):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            samples[name].append((time.perf_counter() - t0) / number)
    return {k: statistics.median(v) for k, v in samples.items()}


def bandwidth(mb: int, repeats: int) -> float:
    a = np.ones(mb * 1024 * 1024 // 8)
    dt = timed(a.sum, repeats)
    return a.nbytes / dt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    args = parser.parse_args(argv)
    quick = args.quick
    reps = 3 if quick else 9
    rows, cols = (2000, 100) if quick else (10_000, 100)
    gc.enable()

    print(f"modelotel {modelotel.__version__}, numpy {np.__version__}, pandas {pd.__version__}"
          f"{'  (--quick: smoke run, figures are indicative only)' if quick else ''}")

    # 1. bandwidth ----------------------------------------------------------------------
    bw = bandwidth(40 if quick else 400, 3 if quick else 7)
    mb = 40 if quick else 400
    print(f"\n[1] streaming bandwidth B (np.sum over {mb} MB): {bw / 1e9:.1f} GB/s")

    # 2. accumulate throughput ----------------------------------------------------------
    rng = np.random.default_rng(0)
    train = rng.normal(size=(20_000, cols)) * np.linspace(1, 5, cols)
    baseline = Baseline.from_data(train, wide=0)  # per-column edges, however wide
    edges = [np.asarray(f.edges) for f in baseline.features]
    clean = rng.normal(size=(rows, cols)) * np.linspace(1, 5, cols)
    dirty = clean.copy()
    dirty[rng.random(dirty.shape) < 0.01] = np.nan
    nbytes = clean.nbytes
    moments = NumericAccumulator(cols)
    binned = NumericAccumulator(cols, edges)

    def run_moments(X: np.ndarray) -> Callable[[], None]:
        return lambda: moments.add(X)

    def run_bins(X: np.ndarray) -> Callable[[], None]:
        # the binned counts alone, as the accumulator does them for a row-layout batch: a
        # columns-first copy, then one >= per edge and one bincount (NaN never satisfy >=,
        # so they fall outside every bin, as in the full path)
        return lambda: binned._bin(np.ascontiguousarray(X.T), 1)

    def run_full(X: np.ndarray) -> Callable[[], None]:
        return lambda: binned.add(X)

    def run_kernel(X: np.ndarray) -> Callable[[], None]:
        # the same as full, by the compiled kernel (the monitor's path for a float64 batch)
        return lambda: binned.add_rows(X, X.shape[0])

    cases2 = {
        "moments clean": run_moments(clean), "moments 1% NaN": run_moments(dirty),
        "binned clean": run_bins(clean), "binned 1% NaN": run_bins(dirty),
        "full clean": run_full(clean), "full 1% NaN": run_full(dirty),
    }
    if kernel.COMPILED:
        cases2 |= {"full clean, kernel": run_kernel(clean),
                   "full 1% NaN, kernel": run_kernel(dirty)}
    res = interleaved(cases2, reps, 1 if not quick else 3)
    print(f"\n[2] accumulate a {rows}x{cols} float64 batch ({nbytes / 1e6:.0f} MB), "
          f"{len(edges[0]) - 1} decile bins per column; share of B")
    targets = {"moments clean": 0.15, "binned clean": 0.05}
    for name, dt in res.items():
        share = nbytes / dt / bw
        tgt = targets.get(name)
        verdict = ""
        if tgt is not None:
            verdict = f"   target >= {tgt:.0%}: {'OK' if share >= tgt else 'MISSED'}"
        print(f"    {name:19s} {dt * 1e3:8.2f} ms  {nbytes / dt / 1e9:6.2f} GB/s  "
              f"{share:6.1%} of B{verdict}")

    # 3. whole profile vs whylogs -------------------------------------------------------------
    names = [f"c{i}" for i in range(cols)]
    df = pd.DataFrame(clean, columns=names)
    big_model = "bench-stats-big"
    big_base = Baseline.from_data(pd.DataFrame(train, columns=names))
    mon = _monitor.get_monitor(model_config(model=big_model, baseline=big_base, row_cap=rows))
    mon.refresh()
    sm = mon.stats
    assert sm is not None

    class _Call:
        def __init__(self, x: Any) -> None:
            self.monitor, self.inputs, self.outputs, self.error = mon, x, MISSING, None
            self.checks_fired: list[str] = []
            from opentelemetry.trace import INVALID_SPAN

            self.span = INVALID_SPAN

        def set_attribute(self, key: str, value: Any) -> None:
            pass

    call_df, call_np = _Call(df), _Call(clean)
    ours = interleaved({"df": lambda: sm.end(call_df), "np": lambda: sm.end(call_np)},
                       reps, 1)  # type: ignore[arg-type]
    ours_rps = rows / ours["df"]
    print(f"\n[3] whole profile of the same {rows}x{cols} DataFrame (monitor path: extract, "
          f"align, moments, bins)")
    print(f"    modelotel (DataFrame)  {ours['df'] * 1e3:8.2f} ms  {ours_rps:12,.0f} rows/s")
    np_rps = rows / ours["np"]
    print(f"    modelotel (ndarray)    {ours['np'] * 1e3:8.2f} ms  {np_rps:12,.0f} rows/s")
    try:
        import whylogs as why  # optional benchmark dependency

        why.log(pandas=df)  # cold call (imports, schema)
        why_dt = timed(lambda: why.log(pandas=df), 1 if quick else 3)
        why_rps = rows / why_dt
        ratio = ours_rps / why_rps
        print(f"    whylogs {why.__version__} why.log    {why_dt * 1e3:8.2f} ms  "
              f"{why_rps:12,.0f} rows/s")
        print(f"    ratio (DataFrame path / whylogs): {ratio:,.0f}x   target >= 100x: "
              f"{'OK' if ratio >= 100 else 'MISSED'}")
    except Exception as exc:
        print(f"    whylogs: not measured ({type(exc).__name__}: {exc}); "
              "install it with `.venv/bin/pip install whylogs`")

    # 4. per-call cost of a 32x20 batch vs a bare span ----------------------------------------
    tp = discarding_tracer_provider()
    tracer = tp.get_tracer("bench")
    saved = runtime.providers()
    runtime.set_providers(tp=tp)
    try:
        xs = rng.normal(size=(5000, 20))
        small_base = Baseline.from_data(xs, outputs=xs[:, 0] * 0.3)
        X = rng.normal(size=(32, 20))

        def model_fn(X: np.ndarray) -> np.ndarray:
            return X[:, 0] * 0.3

        with_stats = modelotel.instrument(model="bench-stats-on", baseline=small_base)(model_fn)
        # the same wrapper and config (baseline included) minus the statistics hook
        without = modelotel.instrument(model="bench-stats-off", baseline=small_base)(model_fn)
        with_stats(X)
        without(X)
        off_mon = runtime.models[("bench-stats-off", "")]
        off_stats = off_mon.stats
        if off_stats is not None:
            off_mon.ends = tuple(e for e in off_mon.ends if e != off_stats.end)  # minus statistics
        on_mon = runtime.models[("bench-stats-on", "")]
        on_stats = on_mon.stats
        assert on_stats is not None
        hook_call = _Call(X)
        hook_call.monitor = on_mon
        hook_call.outputs = model_fn(X)

        # the same batch as a pandas DataFrame: float64 columns, and nullable Int64 columns
        cols20 = [f"f{i}" for i in range(20)]
        frame_base = Baseline.from_data(pd.DataFrame(xs, columns=cols20), outputs=xs[:, 0] * 0.3)
        frames = {
            "DataFrame (float64)": pd.DataFrame(X, columns=cols20),
            "DataFrame (nullable Int64)": pd.DataFrame(
                {c: pd.array(np.round(X[:, i] * 3).astype(np.int64), dtype="Int64")
                 for i, c in enumerate(cols20)}),
        }

        def frame_fn(frame: Any) -> np.ndarray:
            return np.zeros(len(frame))

        frame_cases: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = []
        for label, frame in frames.items():
            pair = []
            for on in (True, False):
                name = f"bench-{label}-{on}"
                fn = modelotel.instrument(model=name, baseline=frame_base)(frame_fn)
                fn(frame)
                if not on:
                    mon = runtime.models[(name, "")]
                    st = mon.stats
                    if st is not None:
                        mon.ends = tuple(e for e in mon.ends if e != st.end)
                pair.append(fn)
            frame_cases += [(f"{label}, on", pair[0], frame), (f"{label}, off", pair[1], frame)]

        compiled = {name: getattr(kernel, name) for name in kernel.FUNCTIONS}

        def nothing() -> None:  # every other case runs with the kernel modelotel loaded
            for name, fn in compiled.items():
                setattr(kernel, name, fn)

        def numpy_only() -> None:  # as if installed without a C compiler
            for name in compiled:
                setattr(kernel, name, None)

        # Timed as in overhead.py (the harness: calibrated runs of ~20 ms, GC on, cases
        # round-robin), with many short repeats and "on" / "off" swapping places every other
        # repeat (ABBA): on this shared 2-core machine the load drifts over seconds, so the
        # added cost is the median of the paired differences (on - off) of adjacent runs,
        # not a difference of two medians taken at different times.
        on_label, off_label = "instrumented, stats on", "instrumented, stats off"
        numpy_label = "stats on, numpy kernel"
        cases4 = [
            ("S (bare span)", nothing, bare_span(tracer, model_fn, X)),
            (on_label, nothing, lambda: with_stats(X)),
            (off_label, nothing, lambda: without(X)),
            ("stats hook alone", nothing,
             lambda: on_stats.end(hook_call)),  # type: ignore[arg-type]
        ]
        if kernel.COMPILED:
            cases4.append((numpy_label, numpy_only, lambda: with_stats(X)))
        for label, fn, frame in frame_cases:
            cases4.append((label, nothing, lambda fn=fn, frame=frame: fn(frame)))
        runs4 = interleaved_repeats(cases4, calibrate(cases4, 0.005 if quick else 0.02),
                                    9 if quick else 61, alternate=(1, 2))
    finally:
        nothing()
        runtime.set_providers(*saved)
        tp.shutdown()
    res4 = {label: statistics.median(v) for label, v in runs4.items()}  # microseconds
    s = res4["S (bare span)"]
    added = statistics.median(a - b for a, b in zip(runs4[on_label], runs4[off_label],
                                                   strict=True))
    print(f"\n[4] per-call cost, 32x20 batch with a baseline (inputs: moments + 10 bins x 20; "
          f"outputs: checks + bins); S = {s:.1f} us (SDK TracerProvider + BatchSpanProcessor "
          f"+ discarding exporter, as in overhead.py)")
    width = max(len(name) for name in res4)
    for name, dt in res4.items():
        print(f"    {name:{width}s} {dt:7.2f} us  {dt / s:5.2f} S")
    which = "the compiled kernel" if kernel.COMPILED else "numpy (no compiled kernel here)"
    print(f"    added by statistics (on - off): {added:.2f} us = {added / s:.2f} S (median of "
          f"paired runs, {which})   target <= 0.5 S: {'OK' if added / s <= 0.5 else 'MISSED'}")
    if numpy_label in runs4:
        added_np = statistics.median(a - b for a, b in zip(runs4[numpy_label], runs4[off_label],
                                                           strict=True))
        print(f"    the same without the kernel (numpy; MODELOTEL_STATS_KERNEL=numpy): "
              f"{added_np:.2f} us = {added_np / s:.2f} S")
    for label in frames:
        added_f = statistics.median(a - b for a, b in zip(runs4[f"{label}, on"],
                                                          runs4[f"{label}, off"], strict=True))
        print(f"    the same batch as a {label}: {added_f:.2f} us = {added_f / s:.2f} S "
              "(no target; pandas' own per-call costs dominate)")

    # 5. memory across 100k calls ------------------------------------------------------------
    calls = 10_000 if quick else 100_000
    for _ in range(2000):
        on_stats.end(hook_call)  # type: ignore[arg-type]
    on_stats.close_window()
    tracemalloc.start()
    try:
        for _ in range(1000):
            on_stats.end(hook_call)  # type: ignore[arg-type]
        on_stats.close_window()
        first, _ = tracemalloc.get_traced_memory()
        for i in range(calls):
            on_stats.end(hook_call)  # type: ignore[arg-type]
            if i % 20_000 == 0:
                on_stats.close_window()  # a metric collection every 20k calls
        on_stats.close_window()
        last, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    grew = last - first
    print(f"\n[5] memory (tracemalloc) across {calls:,} hook calls with window closes: "
          f"{first / 1024:.1f} KiB -> {last / 1024:.1f} KiB (grew {grew / 1024:+.1f} KiB, "
          f"peak {peak / 1024:.0f} KiB): {'flat' if grew < 64 * 1024 else 'GROWING'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
