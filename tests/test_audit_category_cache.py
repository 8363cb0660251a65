"""Audit: categorical statistics do not keep the caller's values alive.

The categorical accumulator caches value -> bin code across windows (up to 4096 values per
column). Before the fix it cached any hashable value as it came: a free-text column (reviews,
prompts) or user objects kept up to 4096 of the caller's values per column alive for the
life of the process (400 MB for 100 KB texts).
"""

from __future__ import annotations

import gc
import tracemalloc
import weakref
from typing import Any

import modelotel
from modelotel import attributes as A  # noqa: N812
from modelotel.testing import capture


class _Text(str):
    """A str the caller made (weak-referenceable, unlike str itself)."""


def test_free_text_values_are_not_kept() -> None:
    refs: list[weakref.ref[Any]] = []

    @modelotel.instrument(model="audit-cat-text")
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


def test_repeated_labels_are_still_counted_by_category() -> None:
    @modelotel.instrument(model="audit-cat-labels")
    def predict(x: Any) -> int:
        return 1

    with capture() as cap:
        for _ in range(3):
            predict({"color": ["red", "blue", "red", None], "size": [1, 2, 3, 4]})
        count = cap.metric(A.METRIC_FEATURE_COUNT, **{A.ML_FEATURE: "color"})
        null = cap.metric(A.METRIC_FEATURE_MISSING,
                          **{A.ML_FEATURE: "color", A.ML_MISSING_KIND: A.MISSING_NULL})
    assert (count.value, null.value) == (12, 3)
