"""CountingProcessorMetrics forwards exactly what the SDK passes (the hook is private API).

opentelemetry-sdk 1.44 calls ``drop_items(count)`` and ``finish_items(count, error)``; 1.45
calls ``drop_items(count, error_type)`` and ``finish_items(count)``. A mismatch would raise a
TypeError out of ``span.end()`` (into the user's code) or stop the export worker.
"""

from __future__ import annotations

from typing import Any

from modelotel import _accounting, _safety
from modelotel import attributes as A  # noqa: N812

REASONS: dict[str, str | None] = {
    "queue_full": A.REASON_SPAN_QUEUE_FULL,
    "already_shutdown": A.REASON_SPAN_AFTER_SHUTDOWN,
}


class _Hook144:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def drop_items(self, count: int) -> None:
        self.calls.append(("drop", count))

    def finish_items(self, count: int, error: Exception | None) -> None:
        self.calls.append(("finish", count, error))


class _Hook145:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def drop_items(self, count: int, error_type: str = "queue_full") -> None:
        self.calls.append(("drop", count, error_type))

    def finish_items(self, count: int) -> None:
        self.calls.append(("finish", count))


def test_sdk_1_44_hook_signatures() -> None:
    inner = _Hook144()
    hook = _accounting.CountingProcessorMetrics(inner, REASONS)
    hook.drop_items(1)
    err = RuntimeError("export failed")
    hook.finish_items(4, err)
    assert inner.calls == [("drop", 1), ("finish", 4, err)]
    assert dict(_safety.health.dropped) == {A.REASON_SPAN_QUEUE_FULL: 1}


def test_sdk_1_45_hook_signatures() -> None:
    inner = _Hook145()
    hook = _accounting.CountingProcessorMetrics(inner, REASONS)
    hook.drop_items(1)
    hook.drop_items(2, "already_shutdown")
    hook.drop_items(3, error_type="queue_full")
    hook.finish_items(5)
    assert inner.calls == [
        ("drop", 1, "queue_full"),
        ("drop", 2, "already_shutdown"),
        ("drop", 3, "queue_full"),
        ("finish", 5),
    ]
    assert dict(_safety.health.dropped) == {
        A.REASON_SPAN_QUEUE_FULL: 4,
        A.REASON_SPAN_AFTER_SHUTDOWN: 2,
    }
