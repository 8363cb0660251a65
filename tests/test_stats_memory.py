"""Memory stays flat over many calls, and concurrent calls lose no counts."""

from __future__ import annotations

import gc
import threading
import tracemalloc
import weakref
from typing import Any

import numpy as np
import pytest
from opentelemetry.trace import INVALID_SPAN

import modelotel
from modelotel import _monitor
from modelotel import attributes as A  # noqa: N812
from modelotel._options import model_config
from modelotel._stats_part import StatsPart
from modelotel._types import MISSING
from modelotel.stats import Baseline
from modelotel.testing import capture


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


class _Text(str):
    """A str the caller made (weak-referenceable, unlike str itself)."""


@pytest.mark.slow
def test_category_cache_keeps_none_of_the_callers_values() -> None:
    """The value -> bin cache (4096 values per column) holds no free text or user object."""
    refs: list[weakref.ref[Any]] = []

    @modelotel.instrument(model="cat-text")
    def predict(x: Any) -> int:
        return 1

    with capture() as cap:
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            for i in range(60):
                text = _Text(f"{i:04d}" + "x" * 100_000)
                refs.append(weakref.ref(text))
                predict({"review": [text, f"{i:04d}" + "y" * 100_000], "n": [1.0, 2.0]})
                del text
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        # free text is read as its descriptors (review.chars, ...), never as categories
        count = cap.metric(A.METRIC_FEATURE_COUNT, **{A.ML_FEATURE: "review.chars"})
    assert [r for r in refs if r() is not None] == []
    assert grown < 2_000_000  # 60 calls x 200 KB of text went through; none of it stays
    assert count.value == 120


def test_repeated_labels_are_counted_by_category() -> None:
    @modelotel.instrument(model="cat-labels")
    def predict(x: Any) -> int:
        return 1

    with capture() as cap:
        for _ in range(3):
            predict({"color": ["red", "blue", "red", None], "size": [1, 2, 3, 4]})
        count = cap.metric(A.METRIC_FEATURE_COUNT, **{A.ML_FEATURE: "color"})
        null = cap.metric(A.METRIC_FEATURE_MISSING,
                          **{A.ML_FEATURE: "color", A.ML_MISSING_KIND: A.MISSING_NULL})
    assert (count.value, null.value) == (12, 3)
