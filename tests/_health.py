"""modelotel's own health as a user sees it: the ``ml.telemetry.*`` counters of a capture.

``skipped(cap)`` is what statistics skipped, by reason; ``dropped(cap)`` what was dropped on
purpose, by reason; ``errors(cap)`` the internal errors swallowed, by component. Each reads
the capture's latest collection (the one its exit made, once the block has ended) and leaves
out zero counts.
"""

from __future__ import annotations

from modelotel import attributes as A  # noqa: N812
from modelotel.testing import Captured


def _counts(cap: Captured, metric: str, key: str) -> dict[str, int]:
    return {str(p.attributes[key]): int(p.value) for p in cap.collect()
            if p.name == metric and p.value}


def skipped(cap: Captured) -> dict[str, int]:
    return _counts(cap, A.METRIC_TELEMETRY_SKIPPED, A.ML_TELEMETRY_REASON)


def dropped(cap: Captured) -> dict[str, int]:
    return _counts(cap, A.METRIC_TELEMETRY_DROPPED, A.ML_TELEMETRY_REASON)


def errors(cap: Captured) -> dict[str, int]:
    return _counts(cap, A.METRIC_TELEMETRY_ERRORS, A.ML_TELEMETRY_COMPONENT)
