"""Serving metrics of one model, aggregated in process: durations, calls, rows, errors.

Example:
    >>> from modelotel._serving import Serving, replay_values
    >>> s = Serving({"ml.model.name": "m"})
    >>> s.record(0.002, rows=32, error_type=None)
    >>> (s.calls, s.rows), [v for v, n, _ in replay_values(s.drain()[0][1])]
    ((1, 32), [0.002])

Why in process: ``Histogram.record`` with attributes costs about 5-7 us per call in the
OTel Python SDK (attribute copy and hashing, exemplar sampling inside a recording span), a
third of a bare span. So a call only adds its duration to a preallocated bucket array
(``bisect`` on fixed bounds plus a few integer updates under a lock, ~0.3 us). When a
metric reader collects, a callback (:mod:`modelotel._instruments`) replays the aggregation
into the real OTel histogram ``ml.prediction.duration`` on the reader's thread, never on
the calling one, so the exported metric is a genuine explicit-bucket histogram whose bucket
counts, count, sum, min and max equal those of the individual durations, and whose
exemplars link buckets to traces. The counters (``ml.prediction.calls``, ``.rows``,
``.errors``, ``ml.telemetry.overhead``) read the running totals here.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from modelotel import attributes as A  # noqa: N812 - the project's alias for names

#: Explicit bucket bounds (seconds) of ``ml.prediction.duration``: 100 us to 60 s, dense
#: where model latencies live (1 ms - 1 s). Passed to the SDK as the advisory bounds and
#: used by the in-process aggregation, so both agree exactly.
DURATION_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

#: Most distinct ``error.type`` values kept per model; further ones are folded into "_OTHER".
MAX_ERROR_TYPES = 32
OTHER_ERROR_TYPE = "_OTHER"

_NBUCKETS = len(DURATION_BUCKETS) + 1


class DurationAgg:
    """Bucket counts, per-bucket sums, min and max of durations since the last drain."""

    __slots__ = ("counts", "ex_span", "ex_val", "n", "sums", "vmax", "vmin")

    def __init__(self) -> None:
        self.counts = [0] * _NBUCKETS
        self.sums = [0.0] * _NBUCKETS
        self.n = 0
        self.vmin = math.inf
        self.vmax = -math.inf
        # per bucket, the last traced call's span and duration: the bucket's exemplar
        self.ex_span: list[Any] = [None] * _NBUCKETS
        self.ex_val = [0.0] * _NBUCKETS


def replay_values(agg: DurationAgg) -> Iterator[tuple[float, int, Any]]:
    """Values to record, with repeat counts and a span or None, that reproduce ``agg``
    exactly in a histogram.

    Each bucket is replayed as its mean (a mean of values inside a bucket lies inside it),
    except that the overall min and max are replayed as themselves so the histogram's
    min/max are exact, and the bucket's last traced call is replayed as itself with its
    span (the SDK keeps it as the bucket's exemplar: a link from the latency histogram to
    a trace). Bucket counts and count are exact; the sum equals up to rounding.
    """
    if agg.n == 0:
        return
    first = next(i for i in range(_NBUCKETS) if agg.counts[i])
    last = max(i for i in range(_NBUCKETS) if agg.counts[i])
    for i in range(first, last + 1):
        c = agg.counts[i]
        if not c:
            continue
        specials: list[list[Any]] = []  # [value, span or None], each one call
        if i == first:
            specials.append([agg.vmin, None])
        if i == last and c > len(specials):
            specials.append([agg.vmax, None])
        span = agg.ex_span[i]
        if span is not None:
            v = agg.ex_val[i]
            for item in specials:
                if item[0] == v and item[1] is None:  # the min or max call, or its twin
                    item[1] = span
                    break
            else:
                if c > len(specials):
                    specials.append([v, span])
        s = agg.sums[i]
        for v, sp in specials:
            yield v, 1, sp
            s -= v
        c -= len(specials)
        if c:
            mean = s / c
            lo = DURATION_BUCKETS[i - 1] if i > 0 else 0.0
            hi = DURATION_BUCKETS[i] if i < len(DURATION_BUCKETS) else math.inf
            # rounding may push the mean onto the far side of a bound: clamp into (lo, hi]
            if mean <= lo:
                mean = math.nextafter(lo, math.inf)
            elif mean > hi:
                mean = hi
            yield max(mean, 0.0), c, None


class Serving:
    """The in-process serving aggregation of one model version (thread-safe, cheap per call).

    Attributes:
        attributes: the model's metric attributes (name, version).
        calls, rows: running totals since the process started (or the last reset).
        errors: failed calls per ``error.type`` (at most :data:`MAX_ERROR_TYPES` kinds).
        overhead_ns: nanoseconds the calling threads spent in modelotel around the calls.
    """

    def __init__(self, attributes: dict[str, Any]) -> None:
        self.attributes = attributes
        self.reset()

    def reset(self) -> None:
        """Forget the aggregations and totals (after a fork; when a capture starts)."""
        self._lock = threading.Lock()  # after a fork another thread may have held it
        self._ok = DurationAgg()
        self._err: dict[str, DurationAgg] = {}
        self._err_attrs: dict[str, dict[str, Any]] = {}
        self.calls = 0
        self.rows = 0
        self.errors: dict[str, int] = {}
        self.overhead_ns = 0

    def record(self, seconds: float, rows: int, error_type: str | None, span: Any = None) -> None:
        """Add one call (``span``: its span when sampled, kept as its bucket's exemplar)."""
        i = bisect_left(DURATION_BUCKETS, seconds)
        with self._lock:
            if error_type is None:
                agg = self._ok
            else:
                agg_or_none = self._err.get(error_type)
                if agg_or_none is None:
                    agg = self._new_error_type(error_type)
                else:
                    agg = agg_or_none
                    self.errors[error_type] += 1
            agg.counts[i] += 1
            agg.sums[i] += seconds
            if span is not None:
                agg.ex_span[i] = span
                agg.ex_val[i] = seconds
            agg.n += 1
            if seconds < agg.vmin:
                agg.vmin = seconds
            if seconds > agg.vmax:
                agg.vmax = seconds
            self.calls += 1
            self.rows += rows

    def add_overhead(self, ns: int) -> None:
        """Add time that modelotel took from a calling thread (``ml.telemetry.overhead``)."""
        with self._lock:
            self.overhead_ns += ns

    def _new_error_type(self, error_type: str) -> DurationAgg:
        # called with self._lock held
        if len(self._err) >= MAX_ERROR_TYPES and error_type not in self._err:
            error_type = OTHER_ERROR_TYPE
            existing = self._err.get(error_type)
            if existing is not None:
                self.errors[error_type] += 1
                return existing
        agg = DurationAgg()
        self._err[error_type] = agg
        self.errors[error_type] = 1
        attrs = dict(self.attributes)
        attrs[A.ERROR_TYPE] = error_type
        self._err_attrs[error_type] = attrs
        return agg

    def drain(self) -> list[tuple[dict[str, Any], DurationAgg]]:
        """Take the duration aggregations since the last drain (and start new ones)."""
        with self._lock:
            out: list[tuple[dict[str, Any], DurationAgg]] = []
            if self._ok.n:
                out.append((self.attributes, self._ok))
                self._ok = DurationAgg()
            for et, agg in self._err.items():
                if agg.n:
                    out.append((self._err_attrs[et], agg))
                    self._err[et] = DurationAgg()
            return out

    def error_counts(self) -> list[tuple[dict[str, Any], int]]:
        """``(attributes with error.type, failed calls)`` per error type."""
        with self._lock:
            return [(self._err_attrs[et], n) for et, n in self.errors.items()]
