"""Python values straight into a side's row buffer, through the compiled readers.

Example:
    >>> import threading
    >>> import numpy as np
    >>> from modelotel.stats import direct, kernel
    >>> from modelotel.stats.buffer import RowBuffer
    >>> buf = RowBuffer(2, rows=8, max_batch=4, sink=lambda rows, n: None)
    >>> got = direct.records(buf, threading.Lock(), ("a", "b"), [{"a": 1.0, "b": 2}])
    >>> got == (1 if kernel.COMPILED else 0)  # rows written (0: take the general reader)
    True

A dict record, a list of them, a Python score or a list of scores, a text or a list of
texts: the general reader (:mod:`.read`) builds numpy arrays from such values, and inside
an instrumented call every numpy conversion runs code that the rest of the call pushed out
of the CPU's caches (a one-value ``np.array`` costs ~15 us there against ~0.3 us in a loop).
Each takes the value last, so that a side binds the rest once (``functools.partial``).
The kernel's ``put_records`` / ``put_scores`` / ``put_texts`` write the same float64 rows
in one compiled call that touches only the values. Each function here reserves the rows,
lets the kernel write them, and commits what it wrote, under the side's lock (the buffer's
one way in, :meth:`~.buffer.RowBuffer.reserve`).

Each returns the rows it added, 0 when the value is not of its kind (nothing added: the
caller takes the general reader, which is the reference for what these write; the tests
hold them to it), and :func:`scores` minus the rows when a score is not finite or outside
the training range (added: the caller finds which check fired). Without the kernel each
returns 0.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from modelotel.stats import kernel
from modelotel.stats.buffer import RowBuffer
from modelotel.stats.text import Text, describe

Array = np.ndarray[Any, Any]


def _rows(x: object, scalars: tuple[type, ...], limit: int) -> int:
    """How many rows ``x`` holds if it is one of ``scalars`` or a list of up to ``limit``
    items (0: none, or too many)."""
    t = type(x)
    if t in scalars:
        return 1
    if t is list:
        n = len(x)  # type: ignore[arg-type]
        return n if n <= limit else 0
    return 0


def _write(buf: RowBuffer, lock: threading.Lock, rows: int, put: Any, *args: object) -> int:
    """Reserve ``rows`` rows, let the kernel's ``put`` write them, commit what it wrote
    (its result; negative: written, with a score the checks must look at)."""
    with lock:
        got: int = put(buf.bytes, buf.reserve(rows), *args)
        buf.n += abs(got)  # commit (0: nothing written that counts)
    return got


def records(buf: RowBuffer, lock: threading.Lock, names: tuple[str, ...], x: object) -> int:
    """A dict record keyed by ``names`` in order, or a list of them, as rows."""
    put = kernel.put_records  # read per call: the kernel can be switched off at run time
    rows = _rows(x, (dict,), buf.max_batch)
    if put is None or not rows:
        return 0
    return _write(buf, lock, rows, put, names, x)


def texts(buf: RowBuffer, lock: threading.Lock, x: object) -> int:
    """A str, or a list of str, as rows of its descriptors (:data:`.text.DESCRIPTORS`)."""
    put = kernel.put_texts
    rows = _rows(x, (str,), buf.max_batch)
    if put is None or not rows:
        return 0
    return _write(buf, lock, rows, put, x)


def scores(
    buf: RowBuffer, lock: threading.Lock, lo: float | None, hi: float | None, x: object
) -> int:
    """A float or an int, or a list of them, as one column of scores; negative when one is
    not finite or, with a training range ``lo`` / ``hi``, outside it."""
    put = kernel.put_scores
    rows = _rows(x, (float, int), buf.max_batch)
    if put is None or not rows:
        return 0
    if lo is None or hi is None:
        return _write(buf, lock, rows, put, x, -np.inf, np.inf)
    return _write(buf, lock, rows, put, x, lo, hi)


def record_row(x: dict[str, Any], width: int) -> Any:
    """Without the kernel: a dict record keyed by the plan's columns in order as the one row
    the general reader makes of it (``np.array`` of the values); ``x`` itself when that is
    not a plain numeric row (None, a str, an int beyond float64 give another dtype: the
    general reader takes them)."""
    m = np.array(list(x.values()))
    if m.dtype.kind in "fiub" and m.dtype.itemsize <= 8 and m.ndim == 1:
        return m.reshape(1, width)
    return x


def described(x: Any, row_vector: bool, max_batch: int) -> Any:
    """Without the kernel, and for a stream's joined :class:`~.text.Text`: the descriptors
    of one text column (what extract + expand make of a str input, a list of str inputs, a
    stream's text), the same rows x 4 matrix; ``x`` itself when it is not such texts."""
    texts: list[Any] | None = None
    if type(x) is str:
        texts = [x] if row_vector else None
    elif type(x) is Text:
        texts = [x]
    elif (type(x) is list and row_vector and 0 < len(x) <= max_batch
          and all(type(v) is str for v in x)):
        texts = x
    return describe(texts)[0] if texts is not None else x


def scores_column(x: Any) -> Array:
    """The scores :func:`scores` wrote, as the rows x 1 float64 batch the checks take."""
    return np.array(x if type(x) is list else (x,), dtype=np.float64).reshape(-1, 1)


__all__ = ["described", "record_row", "records", "scores", "scores_column", "texts"]
