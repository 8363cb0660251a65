"""Deterministic payload sampling and the per-process token-bucket budget.

Example:
    >>> from modelotel._payload.sampling import threshold, id_hash, TokenBucket
    >>> t = threshold(0.5)
    >>> id_hash("0" * 16) < t, id_hash("f" * 16) < t
    (True, False)
    >>> b = TokenBucket(rate=2.0, clock=lambda: 0.0)     # a stopped clock: no refill
    >>> b.take(), b.take(), b.take()
    (True, True, False)

The decision for one call is ``id_hash(prediction_id) < threshold(rate)``: a 64-bit
integer compare against a value computed once per model, so the same id always gets the
same decision, in every process. For the 16-hex-digit ids that modelotel generates the
hook does the same compare on the text (:func:`hex_limit`), which needs no parsing.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable

_TWO_64 = 1 << 64


def threshold(rate: float) -> int:
    """The 64-bit threshold for ``rate`` (``0`` keeps nothing, ``1`` keeps everything)."""
    if rate <= 0.0:
        return 0
    if rate >= 1.0:
        return _TWO_64
    return int(rate * _TWO_64)


def key_hash(key: object) -> int:
    """BLAKE2b-64 of ``str(key)`` as an unsigned 64-bit integer (stable across processes)."""
    data = key if isinstance(key, bytes) else str(key).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


_HEX16 = frozenset("0123456789abcdef")


def is_hex16(prediction_id: str) -> bool:
    """Whether the id is 16 lowercase hex digits (the ids modelotel generates)."""
    return len(prediction_id) == 16 and _HEX16.issuperset(prediction_id)


def id_hash(prediction_id: str) -> int:
    """A 16-hex-digit id as its integer value; any other id hashed with BLAKE2b-64.

    Prediction ids are random 64-bit numbers written as 16 lowercase hex digits, so their
    value is already uniform.
    """
    if is_hex16(prediction_id):
        return int(prediction_id, 16)
    return key_hash(prediction_id)


def hex_limit(limit: int) -> str:
    """``limit`` as 16 lowercase hex digits, for a text compare with 16-hex-digit ids.

    Fixed-width lowercase hex sorts as text exactly as its values sort as numbers, so
    ``pid < hex_limit(limit)`` equals ``int(pid, 16) < limit`` without parsing: that is
    the per-call decision. ``limit == 2**64`` (rate 1) maps to ``"g"``, above every id.
    """
    return "g" if limit >= _TWO_64 else f"{limit:016x}"


class TokenBucket:
    """Thread-safe token bucket: ``rate`` tokens per second, holding at most ``capacity``.

    ``capacity`` defaults to one second of budget (``rate``, at least 1), so in any window of
    ``w`` seconds at most ``rate * w + capacity`` tokens are taken. The clock is injectable for
    tests (seconds, monotonic).
    """

    __slots__ = ("_clock", "_last", "_lock", "_tokens", "capacity", "rate")

    def __init__(
        self,
        rate: float,
        capacity: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = float(rate)
        self.capacity = float(capacity) if capacity is not None else max(1.0, self.rate)
        self._clock = clock
        self._tokens = self.capacity
        self._last = clock()
        self._lock = threading.Lock()

    def take(self, n: float = 1.0) -> bool:
        """Take ``n`` tokens if available; never blocks, never waits for refill."""
        with self._lock:
            now = self._clock()
            elapsed = now - self._last
            if elapsed > 0:
                self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
                self._last = now
            if self._tokens >= n:
                self._tokens -= n
                return True
            return False

    def refill(self) -> None:
        """Start full, with a new lock (a forked child: another thread may have held it)."""
        self._lock = threading.Lock()
        self._tokens = self.capacity
        self._last = self._clock()

    def at_least(self, rate: float, capacity: float) -> None:
        """Raise the rate and the capacity to at least these (never lowers them)."""
        with self._lock:
            self.rate = max(self.rate, rate)
            self.capacity = max(self.capacity, capacity)
