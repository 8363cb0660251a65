"""Memory stays flat over many calls, and concurrent calls lose no counts."""

from __future__ import annotations

import threading
import tracemalloc
from typing import Any

import numpy as np
from opentelemetry.trace import INVALID_SPAN

from modelotel import _monitor
from modelotel._options import model_config
from modelotel._stats_part import StatsPart
from modelotel._types import MISSING
from modelotel.stats import Baseline


class _FakeCall:
    """What the statistics part reads from an ended prediction (a non-recording span)."""

    def __init__(self, monitor: Any, inputs: Any, outputs: Any) -> None:
        self.monitor = monitor
        self.inputs = inputs
        self.outputs = outputs
        self.error = None
        self.checks_fired: list[str] = []
        self.span = INVALID_SPAN

    def set_attribute(self, key: str, value: Any) -> None:
        pass


def _stats(model: str, **options: Any) -> tuple[Any, StatsPart]:
    mon = _monitor.get_monitor(model_config(model=model, **options))
    mon.refresh()
    sm = mon.stats
    assert sm is not None
    return mon, sm


def test_memory_is_flat_across_many_calls() -> None:
    rng = np.random.default_rng(0)
    b = Baseline.from_data(rng.normal(size=(2000, 20)), outputs=rng.random(2000))
    mon, sm = _stats("mem-flat", baseline=b)
    call = _FakeCall(mon, rng.normal(size=(32, 20)), rng.random(32))
    for _ in range(2000):  # warm up: buffers, caches, first flushes
        sm.end(call)  # type: ignore[arg-type]
    sm.close_window()
    tracemalloc.start()
    try:
        for _ in range(2000):
            sm.end(call)  # type: ignore[arg-type]
        sm.close_window()
        first, _ = tracemalloc.get_traced_memory()
        for _ in range(20000):
            sm.end(call)  # type: ignore[arg-type]
        sm.close_window()
        second, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert second - first < 64 * 1024, (first, second)
    assert sm.profiler.inputs.total is not None
    assert sm.profiler.inputs.total.count.tolist() == [(2000 + 2000 + 20000) * 32] * 20


def test_concurrent_calls_lose_no_counts() -> None:
    mon, sm = _stats("mem-threads", feature_names=["a", "b", "c"])
    X = np.ones((8, 3))

    def worker() -> None:
        call = _FakeCall(mon, X, MISSING)
        for i in range(2000):
            sm.end(call)  # type: ignore[arg-type]
            if i % 500 == 0:
                sm.close_window()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sm.close_window()
    assert sm.profiler.inputs.total is not None
    assert sm.profiler.inputs.total.count.tolist() == [4 * 2000 * 8] * 3
    assert sm.profiler.inputs.total.mean.tolist() == [1.0] * 3
