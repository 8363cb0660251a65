"""The row buffer of one monitor side: small batches wait here and are reduced together.

Example:
    >>> import numpy as np
    >>> from modelotel.stats.buffer import RowBuffer
    >>> reduced = []
    >>> buf = RowBuffer(2, rows=4, max_batch=2, sink=lambda rows, n: reduced.append(n))
    >>> buf.append(np.ones((2, 2)), 2)
    >>> buf.append(np.zeros((2, 2)), 2)
    >>> buf.append(np.ones((1, 2)), 1)      # does not fit: the 4 rows are reduced first
    >>> reduced, buf.n
    ([4], 1)

A small batch (the common online case) is copied into a preallocated rows-first float64
block; the block is reduced in one pass (``sink``, the side's accumulate) when the next
batch does not fit or when the window closes, so the per-call cost is a copy. There is one
way in: :meth:`RowBuffer.reserve` the rows (which reduces a full buffer first and is the
only place that does), write them at the offset it returns, then commit them by adding
them to :attr:`RowBuffer.n` (an attribute update, not a method: two Python calls per
prediction on the fused path, ~800 instructions, ~0.1 us). :meth:`RowBuffer.append` does
the three for one batch in Python; the compiled kernel's ``stage`` writes a batch and its
scores into two buffers between their ``reserve`` and commit. The caller holds the side's
lock throughout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]

#: The buffer holds at least this many rows; a batch of up to half the buffer is copied
#: into it (and reduced with the others when it fills) instead of reduced alone.
SMALL_BATCH_ROWS = 256
#: The buffer holds about this many values (bounded memory per monitor side).
BUFFER_VALUES = 1 << 16

#: float64 in native byte order: a batch of this dtype is copied in as bytes
_F64 = np.dtype(np.float64)
#: ``memoryview`` typed for arrays (numpy declares the buffer protocol only for 3.12+ typing)
_memoryview: Callable[[Any], memoryview] = memoryview


class RowBuffer:
    """Rows of ``width`` float64 columns waiting to be reduced (see the module doc).

    Attributes:
        array: the block, ``rows x width`` float64, rows first.
        bytes: the same memory as bytes (what ``stage`` and the byte copy write into).
        row_bytes: bytes per row (``8 * width``).
        rows: rows the block holds.
        n: rows written and committed so far (a writer commits by adding to it).
        max_batch: the largest batch (in rows) that goes through the buffer; a larger one is
            reduced on its own.
    """

    __slots__ = ("array", "bytes", "max_batch", "n", "row_bytes", "rows", "sink", "width")

    def __init__(
        self, width: int, rows: int, max_batch: int, sink: Callable[[Array, int], None]
    ) -> None:
        self.width = width
        self.rows = rows
        self.array = np.empty((rows, width), dtype=np.float64)
        # the same memory as bytes: a float64 batch is copied in with a memoryview slice
        # assignment (CPython's memcpy), not numpy's indexing machinery, whose code is cold
        # after the rest of a call ran: measured inside instrumented calls, a 32 x 20
        # copy costs ~0.9 us this way against ~3.6 us as array[n:n + rows] = X
        self.bytes = _memoryview(self.array).cast("B") if rows else memoryview(bytearray())
        self.row_bytes = 8 * width
        self.max_batch = min(rows // 2, max_batch)
        self.n = 0
        #: ``sink(array, n)`` reduces the first ``n`` rows (into the side's current window)
        self.sink = sink

    @classmethod
    def for_width(
        cls, width: int, row_cap: int, sink: Callable[[Array, int], None]
    ) -> RowBuffer:
        """A buffer of about :data:`BUFFER_VALUES` values (at least :data:`SMALL_BATCH_ROWS`
        rows) for batches of up to half of it, and never more than ``row_cap`` rows."""
        # rows first, like the batches: a call's copy is one contiguous block (a
        # columns-first buffer takes `width` strided writes per call, which cost more inside
        # a real call than the transposing copy that the reduction makes once per flush)
        rows = max(SMALL_BATCH_ROWS, BUFFER_VALUES // width)
        return cls(width, rows, row_cap, sink)

    def reserve(self, rows: int) -> int:
        """The byte offset where ``rows`` rows go; a buffer they do not fit is reduced first.

        ``rows`` must be at most :attr:`max_batch`. Nothing counts until the writer adds
        ``rows`` to :attr:`n` (the commit).
        """
        n = self.n
        if n + rows > self.rows:
            self.flush()
            n = 0
        return n * self.row_bytes

    def append(self, X: Array, rows: int) -> None:
        """Copy a batch of ``rows`` rows (``rows x width``, or 1-D when ``width`` is 1 or
        ``rows`` is 1) of any real dtype of at most 8 bytes, as float64."""
        off = self.reserve(rows)
        if X.dtype is _F64:
            mv = _memoryview(X)
            if mv.c_contiguous:
                self.bytes[off : off + rows * self.row_bytes] = mv.cast("B")
                self.n += rows
                return
        # other dtypes and layouts: numpy converts (a 2-D batch as it is: a reshape is one
        # more numpy call)
        n = self.n
        self.array[n : n + rows] = X if X.ndim == 2 else X.reshape(rows, self.width)
        self.n = n + rows

    def flush(self) -> None:
        """Reduce what the buffer holds (``sink``) and empty it."""
        n = self.n
        if n:
            self.sink(self.array, n)
        self.n = 0


__all__ = ["BUFFER_VALUES", "SMALL_BATCH_ROWS", "RowBuffer"]
