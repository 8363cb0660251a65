"""Capped conversion of inputs and outputs to plain JSON-compatible data.

Example:
    >>> import numpy as np
    >>> from modelotel._payload.serialize import Converter
    >>> conv = Converter(max_rows=2, max_items=3, max_string_length=4, max_depth=4, max_bytes=1000)
    >>> conv.convert({"x": np.arange(5.0), "name": "abcdefgh"})
    {'x': [0.0, 1.0], 'name': 'abcd'}
    >>> conv.truncated, sorted(conv.reasons)
    (True, ['payload_rows', 'payload_string'])

Caps are applied while converting, before anything is serialized: arrays are sliced (views),
lists are read item by item and the walk stops when the byte estimate reaches
``max_bytes``, so a 50 MB input costs the same as a small one. Nothing here mutates the
user's objects. Methods of user objects (``repr``, pandas/torch accessors) may run; the
caller runs the converter inside ``guard``.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import math
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from modelotel import attributes as tn

# C0 controls except tab and newline, DEL and C1 controls, and lone surrogates (Python str
# keeps surrogate halves as separate code points, so every one of them is "lone" here).
_BAD_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
REPLACEMENT = "\ufffd"
_MAX_INT_BITS = 200


def clean_text(s: str) -> str:
    """Replace control characters and lone surrogates with U+FFFD (valid UTF-8 for OTLP)."""
    return _BAD_TEXT.sub(REPLACEMENT, s)


def _text_cost(s: str) -> int:
    return (len(s) if s.isascii() else len(s.encode("utf-8", "replace"))) + 3


def _is_frame(obj: object) -> bool:
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "iloc") and hasattr(obj, "columns")


def _is_series(obj: object) -> bool:
    return type(obj).__name__ == "Series" and hasattr(obj, "iloc") and hasattr(obj, "to_numpy")


def _is_tensor(obj: object) -> bool:
    return (
        hasattr(obj, "detach")
        and hasattr(obj, "cpu")
        and hasattr(obj, "numpy")
        and hasattr(obj, "shape")
    )


def input_rows(obj: object) -> int | None:
    """Rows of ``obj`` before any cap, when cheap to know (sequences, arrays, frames)."""
    if isinstance(obj, (list, tuple)):
        return len(obj)
    if isinstance(obj, np.ndarray):
        return int(obj.shape[0]) if obj.ndim else None
    if _is_frame(obj) or _is_series(obj) or _is_tensor(obj):
        shape: tuple[Any, ...] = tuple(getattr(obj, "shape", ()))
        return int(shape[0]) if shape else None
    return None


class Capped:
    """A capped copy of a user's container that still knows the original's size.

    Made by :mod:`modelotel._payload.snapshot` on the calling thread, converted later on the
    payload worker: the converter reads ``value`` (a list, dict, numpy array or DataFrame,
    already cut to the caps) but counts cuts, reasons and ``original_bytes`` on ``size``
    (``len()`` of a list or dict, ``shape`` of an array or frame), exactly as if it read
    the original.
    """

    __slots__ = ("size", "value")

    def __init__(self, value: Any, size: Any) -> None:
        self.value = value
        self.size = size


class FrameCopy:
    """A copy of a DataFrame read from its blocks, cut to the caps (a :class:`Capped` holds
    a cut one): its column labels (pandas' Index, immutable; the first ``width`` are the
    copy's), ``rows``, and per block its column positions and what was copied of it: a
    numeric block's copy (its rows are columns), ``("category", Categorical type, codes
    copy, dtype)`` or ``("arrow", pyarrow array, missing value)`` (pyarrow's arrays never
    change; a column given new values gets a new one). The worker makes of it
    :attr:`columns`, then each column's ``to_numpy()`` (:meth:`column`).

    Made by :mod:`modelotel._payload.snapshot` instead of ``DataFrame.copy()``, whose pandas
    code costs 100-300 us on a calling thread where it is cold; the converter makes of it
    the record it would make of the frame.
    """

    __slots__ = ("_columns", "labels", "parts", "rows", "width")

    def __init__(
        self, labels: Any, parts: list[tuple[Sequence[int], Any]], rows: int, width: int
    ) -> None:
        self.labels = labels
        self.parts = parts
        self.rows = rows
        self.width = width
        self._columns: list[Any] | None = None

    @property
    def columns(self) -> list[Any]:
        """Per column of the copy, its block's part: a numeric block's row, or the tuple
        of an extension column (split here, on the worker, not on the calling thread)."""
        cols = self._columns
        if cols is None:
            width = self.width
            cols = [None] * width
            for positions, part in self.parts:
                if type(part) is np.ndarray:
                    for k, j in enumerate(positions):
                        if j < width:
                            cols[j] = part[k]
                elif positions[0] < width:
                    cols[positions[0]] = part
            if any(c is None for c in cols):  # (pandas' blocks split the columns)
                raise ValueError("the frame's blocks do not cover its columns")
            self._columns = cols
        return cols

    def column(self, j: int) -> np.ndarray[Any, Any]:
        """Column ``j`` as ``Series.to_numpy()`` of the original gives it."""
        col = self.columns[j]
        if type(col) is not tuple:
            return col  # type: ignore[no-any-return]
        if col[0] == "category":
            _, cls, codes, dtype = col
            return np.asarray(cls.from_codes(codes, dtype=dtype))
        _, pa, missing = col
        values = np.array(pa.to_pylist(), dtype=object).reshape(-1)
        values[np.array([v is None for v in values], dtype=bool)] = missing
        return values


def _per_value(dtype: np.dtype[Any]) -> int:
    """The bytes the budget counts for one value of ``dtype`` in a record."""
    kind = dtype.kind
    if kind == "b":
        return 6
    if kind in "fc":
        return 24
    if kind in "iu":
        return dtype.itemsize * 3 + 2
    return 32


def _listed_blocks(fc: FrameCopy) -> dict[int, tuple[list[Any], int, np.ndarray[Any, Any]]]:
    """Column ``j`` of each numeric block of ``fc`` (plain numbers only: finite, at most
    8 bytes) as ``(values, bytes the budget counts, the column)``: one ``tolist()`` and one
    finiteness test per block, where the converter's per-column path costs ~10 us a column."""
    listed: dict[int, tuple[list[Any], int, np.ndarray[Any, Any]]] = {}
    width = fc.width
    for positions, part in fc.parts:
        if type(part) is not np.ndarray or part.dtype.kind not in "biuf":
            continue
        if part.dtype.itemsize > 8:
            continue
        per = _per_value(part.dtype) * part.shape[1]
        finite: Any = None  # (a list of bool: numpy types tolist() loosely)
        if part.dtype.kind == "f":
            finite = np.isfinite(part).all(axis=1).tolist()
        values = part.tolist()
        for k, j in enumerate(positions):
            if j < width and (finite is None or finite[k]):
                listed[j] = (values[k], per, part[k])
    return listed


class Converter:
    """One conversion's caps and bookkeeping. Make a new one (or :meth:`reset`) per record."""

    def __init__(
        self,
        *,
        max_rows: int,
        max_items: int,
        max_string_length: int,
        max_depth: int,
        max_bytes: int,
    ) -> None:
        self.max_rows = max_rows
        self.max_items = max_items
        self.max_string_length = max_string_length
        self.max_depth = max_depth
        self.max_bytes = max_bytes
        self.reset()

    def reset(self) -> None:
        """Forget the previous record's bookkeeping (the byte budget is shared per record)."""
        self.remaining = self.max_bytes
        self.reasons: set[str] = set()
        self.cut_bytes = 0
        self._path: set[int] = set()

    @property
    def truncated(self) -> bool:
        """Whether any cap cut something in the conversions since :meth:`reset`."""
        return bool(self.reasons)

    def convert(self, obj: object) -> Any:
        """Plain data for ``obj``: the outer axis is capped at ``max_rows``."""
        return self._plain(obj, 0, True)

    # --- the walk --------------------------------------------------------------------
    def _cut(self, reason: str, nbytes: int = 0) -> None:
        self.reasons.add(reason)
        self.cut_bytes += max(0, nbytes)

    def _str(self, s: str) -> str:
        if len(s) > self.max_string_length:
            self._cut(tn.REASON_PAYLOAD_STRING, len(s) - self.max_string_length)
            s = s[: self.max_string_length]
        s = clean_text(str(s))
        self.remaining -= _text_cost(s)
        return s

    def _marker(self, text: str) -> str:
        # Our own placeholders are never cut by max_string_length.
        text = clean_text(text[:200])
        self.remaining -= len(text) + 3
        return text

    def _plain(self, obj: object, depth: int, rows: bool) -> Any:
        if obj is None or isinstance(obj, bool):
            self.remaining -= 5
            return obj
        if isinstance(obj, int):
            value = int(obj)
            if value.bit_length() > _MAX_INT_BITS:
                self._cut(tn.REASON_PAYLOAD_STRING, value.bit_length() // 3)
                return self._marker(f"[int of {value.bit_length()} bits]")
            self.remaining -= value.bit_length() // 3 + 2
            return value
        if isinstance(obj, float):
            value_f = float(obj)
            self.remaining -= 24
            if math.isfinite(value_f):
                return value_f
            return "NaN" if math.isnan(value_f) else ("Infinity" if value_f > 0 else "-Infinity")
        if isinstance(obj, str):
            return self._str(obj)
        if isinstance(obj, (bytes, bytearray, memoryview)):
            raw = bytes(obj[: self.max_string_length * 4])
            if len(obj) > len(raw):
                self._cut(tn.REASON_PAYLOAD_STRING, len(obj) - len(raw))
            return self._str(raw.decode("utf-8", "replace"))
        if isinstance(obj, complex):
            self.remaining -= 48
            return self._str(repr(complex(obj)))
        if isinstance(obj, np.generic):
            return self._scalar(obj, depth, rows)
        if self.remaining <= 0:
            self._cut(tn.REASON_PAYLOAD_BYTES)
            return None
        if depth >= self.max_depth:
            self._cut(tn.REASON_PAYLOAD_DEPTH)
            return self._marker("[depth]")
        if isinstance(obj, np.ndarray):
            return self._array(obj, depth, rows)
        if type(obj) is Capped:
            return self._capped(obj, depth, rows)
        if type(obj) is FrameCopy:
            return self._frame_copy(obj, depth, None)
        if isinstance(obj, Mapping):
            return self._mapping(obj.items(), obj, len(obj), depth, rows)
        if isinstance(obj, (list, tuple, set, frozenset)):
            return self._sequence(obj, depth, rows)
        if _is_frame(obj):
            return self._frame(obj, depth)
        if _is_series(obj):
            series: Any = obj
            n = len(series)
            cap = self.max_rows if rows else self.max_items
            if n > cap:
                self._cut(
                    tn.REASON_PAYLOAD_ROWS if rows else tn.REASON_PAYLOAD_ITEMS, (n - cap) * 8
                )
            return self._array(np.asarray(series.iloc[:cap].to_numpy()), depth, rows)
        if _is_tensor(obj):
            return self._tensor(obj, depth, rows)
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            fields = dataclasses.fields(obj)
            items = ((f.name, getattr(obj, f.name)) for f in fields)
            return self._mapping(items, obj, len(fields), depth, rows)
        if isinstance(obj, (Iterator, AsyncIterator)) or inspect.isgenerator(obj):
            return self._marker("[iterator]")
        return self._repr(obj)

    def _capped(self, obj: Capped, depth: int, rows: bool) -> Any:
        value, size = obj.value, obj.size
        if isinstance(value, np.ndarray):
            return self._array(value, depth, rows, size)
        if isinstance(value, dict):
            return self._mapping(value.items(), value, size, depth, rows)
        if isinstance(value, list):
            return self._sequence(value, depth, rows, size)
        if type(value) is FrameCopy:
            return self._frame_copy(value, depth, size)
        return self._frame(value, depth, size)

    def _scalar(self, obj: np.generic, depth: int, rows: bool) -> Any:
        # Every numpy scalar type becomes a plain value; ``item()`` alone is not enough:
        # it returns a longdouble / clongdouble as itself (and the walk would never end).
        kind = obj.dtype.kind
        if kind == "f":
            with np.errstate(all="ignore"):  # a longdouble beyond float64: +-inf, as text
                return self._plain(float(obj), depth, rows)
        if kind == "c":
            with np.errstate(all="ignore"):
                return self._plain(complex(obj), depth, rows)
        if kind in "Mm":
            return self._str(str(obj))
        if kind == "V" and obj.dtype.names is None:
            raw = bytes(obj.tobytes()[: max(0, (self.max_string_length - 2) // 2)])
            if obj.dtype.itemsize > len(raw):
                self._cut(tn.REASON_PAYLOAD_STRING, obj.dtype.itemsize - len(raw))
            return self._str("0x" + raw.hex())  # raw memory: hex, not text
        value = obj.item()
        if isinstance(value, np.generic):  # a numpy type without a Python equivalent
            return self._repr(value)
        return self._plain(value, depth, rows)

    def _repr(self, obj: object) -> str:
        try:
            text = repr(obj)
        except Exception:  # noqa: BLE001 - a user object's __repr__ may raise anything
            self._cut(tn.REASON_PAYLOAD_UNREPRESENTABLE)
            return self._marker(f"[unrepresentable {type(obj).__name__}]")
        return self._str(text)

    def _enter(self, obj: object) -> bool:
        key = id(obj)
        if key in self._path:
            self._cut(tn.REASON_PAYLOAD_CIRCULAR)
            return False
        self._path.add(key)
        return True

    def _mapping(
        self, items: Any, obj: object, n: int, depth: int, rows: bool
    ) -> dict[str, Any] | str:
        if not self._enter(obj):
            return self._marker("[circular]")
        try:
            out: dict[str, Any] = {}
            start = self.remaining
            for kept, (key, value) in enumerate(items):
                if kept >= self.max_items:
                    self._cut(
                        tn.REASON_PAYLOAD_ITEMS,
                        (n - kept) * (start - self.remaining) // max(kept, 1),
                    )
                    break
                if self.remaining <= 0:
                    self._cut(
                        tn.REASON_PAYLOAD_BYTES,
                        (n - kept) * (start - self.remaining) // max(kept, 1),
                    )
                    break
                name = self._key(key)
                while name in out:
                    name += "_"
                # Columns of a top-level mapping are rows: they get the row cap.
                out[name] = self._plain(value, depth + 1, rows and depth == 0)
            return out
        finally:
            self._path.discard(id(obj))

    def _key(self, key: object) -> str:
        if isinstance(key, str):
            return self._str(key)
        if key is None or isinstance(key, (bool, int, float, np.generic)):
            return self._str(str(self._plain(key, 0, False)))
        return self._repr(key)

    def _sequence(
        self, obj: Any, depth: int, rows: bool, size: int | None = None
    ) -> list[Any] | str:
        if not self._enter(obj):
            return self._marker("[circular]")
        try:
            n = len(obj) if size is None else size
            cap = self.max_rows if rows else self.max_items
            out: list[Any] = []
            start = self.remaining
            for item in itertools.islice(obj, cap):
                if self.remaining <= 0:
                    break
                out.append(self._plain(item, depth + 1, False))
            kept = len(out)
            if kept < n:
                per_item = (start - self.remaining) // max(kept, 1)
                if kept < min(n, cap):
                    reason = tn.REASON_PAYLOAD_BYTES
                else:
                    reason = tn.REASON_PAYLOAD_ROWS if rows else tn.REASON_PAYLOAD_ITEMS
                self._cut(reason, (n - kept) * per_item)
            return out
        finally:
            self._path.discard(id(obj))

    def _array(
        self,
        a: np.ndarray[Any, Any],
        depth: int,
        rows: bool,
        shape: tuple[int, ...] | None = None,
    ) -> Any:
        if a.ndim == 0:
            return self._plain(a.item(), depth, rows)
        cap = self.max_rows if rows else self.max_items
        index = (slice(0, cap),) + (slice(0, self.max_items),) * (a.ndim - 1)
        view = a[index]
        # ``shape``: the original's, when ``a`` is a capped copy of it (a Capped snapshot)
        full = a.shape if shape is None else shape
        size = math.prod(full)
        if view.shape[0] < full[0]:
            self.reasons.add(tn.REASON_PAYLOAD_ROWS if rows else tn.REASON_PAYLOAD_ITEMS)
        if view.size < size and view.shape[1:] != full[1:]:
            self.reasons.add(tn.REASON_PAYLOAD_ITEMS)
        kind = a.dtype.kind
        per = _per_value(a.dtype)
        # Fit the byte budget: keep fewer rows rather than serializing and cutting afterwards.
        per_row = per * max(1, view.size // max(1, view.shape[0]))
        fit = max(0, self.remaining // per_row)
        if fit < view.shape[0]:
            self.reasons.add(tn.REASON_PAYLOAD_BYTES)
            view = view[:fit]
        self.cut_bytes += (size - view.size) * a.dtype.itemsize
        if kind in "fc" and a.dtype.itemsize > (8 if kind == "f" else 16):
            # longdouble / clongdouble: tolist() would keep numpy scalars; float64 is plenty
            with np.errstate(all="ignore"):
                view = view.astype(np.float64 if kind == "f" else np.complex128)
        if kind in "biu":
            self.remaining -= per * view.size
            return view.tolist()
        if kind == "f" and bool(np.isfinite(view).all()):
            self.remaining -= per * view.size
            return view.tolist()
        if kind in "Mm":
            return self._nested(view.astype(str).tolist(), depth)
        if kind == "V" and a.dtype.names is None:
            return self._voids(view, depth)
        return self._nested(view.tolist(), depth)

    def _voids(self, view: np.ndarray[Any, Any], depth: int) -> Any:
        # tolist() of raw (unstructured) void gives bytes; each element as its scalar instead
        if view.ndim <= 1:
            return [self._scalar(x, depth + 1, False) for x in view]
        return [self._voids(v, depth + 1) for v in view]

    def _nested(self, values: Any, depth: int) -> Any:
        # tolist() of an already capped view: convert element by element (objects, strings,
        # non-finite floats) without a second row cap.
        if isinstance(values, list):
            return [self._nested(v, depth + 1) for v in values]
        return self._plain(values, depth, False)

    def _frame(self, df: Any, depth: int, shape: tuple[int, int] | None = None) -> dict[str, Any]:
        # ``shape``: the original's, when ``df`` is a capped copy of it (a Capped snapshot)
        own = df.shape
        n_rows, n_cols = (int(x) for x in (own if shape is None else shape))
        # (a frame within the caps is read as it is: a slice costs ~100 us of pandas)
        fits = own[0] <= self.max_rows and own[1] <= self.max_items
        sub = df if fits else df.iloc[: self.max_rows, : self.max_items]
        self._frame_cuts(n_rows, n_cols)
        # One conversion per numpy numeric dtype (the columns of one dtype as one block, no
        # upcast; pandas costs ~50 us per column taken alone); other columns (categorical,
        # nullable, object) one by one, each keeping its dtype.
        groups: dict[Any, list[int]] = {}
        for j, dt in enumerate(sub.dtypes.tolist()):
            if isinstance(dt, np.dtype) and dt.kind in "biuf":
                groups.setdefault(dt, []).append(j)
        taken: dict[int, np.ndarray[Any, Any]] = {}
        width = min(n_cols, self.max_items)
        for idxs in groups.values():
            block = np.asarray((sub if len(idxs) == width else sub.iloc[:, idxs]).to_numpy())
            for k, j in enumerate(idxs):
                taken[j] = block[:, k]
        def column(j: int) -> np.ndarray[Any, Any]:
            got = taken.get(j)
            return np.asarray(sub.iloc[:, j].to_numpy()) if got is None else got

        return self._columns(sub.columns, column, depth)

    def _frame_cuts(self, n_rows: int, n_cols: int) -> None:
        """What the caps cut of a frame of ``n_rows`` x ``n_cols`` (8 bytes a value)."""
        if n_rows > self.max_rows:
            self._cut(tn.REASON_PAYLOAD_ROWS, (n_rows - self.max_rows) * n_cols * 8)
        if n_cols > self.max_items:
            self._cut(
                tn.REASON_PAYLOAD_ITEMS, (n_cols - self.max_items) * min(n_rows, self.max_rows) * 8
            )

    def _frame_copy(self, fc: FrameCopy, depth: int, shape: Any) -> dict[str, Any]:
        # ``shape``: the original's, when ``fc`` holds a cut copy (a Capped snapshot)
        cols = fc.width
        n_rows, n_cols = (fc.rows, cols) if shape is None else (int(x) for x in shape)
        self._frame_cuts(n_rows, n_cols)
        listed = _listed_blocks(fc) if fc.rows <= self.max_rows else {}

        def column(j: int) -> Any:
            got = listed.get(j)
            return fc.column(j) if got is None else got

        return self._columns(itertools.islice(fc.labels, cols), column, depth)

    def _columns(self, labels: Any, column: Callable[[int], Any], depth: int) -> dict[str, Any]:
        """A frame's columns by name, column ``j``'s values read by ``column(j)`` (only
        while the byte budget lasts): an array, or what :func:`_listed_blocks` made of one
        (taken as it is while the budget holds all of it)."""
        out: dict[str, Any] = {}
        for j, col in enumerate(labels):
            if self.remaining <= 0:
                self._cut(tn.REASON_PAYLOAD_BYTES)
                break
            name = self._key(col)
            while name in out:
                name += "_"
            got = column(j)
            if type(got) is tuple:
                values, cost, got = got
                if cost <= self.remaining:  # what _array does with a column that fits
                    self.remaining -= cost
                    out[name] = values
                    continue
            out[name] = self._array(got, depth + 1, False)
        return out

    def _tensor(self, t: Any, depth: int, rows: bool) -> Any:
        shape = tuple(t.shape)
        cap = self.max_rows if rows else self.max_items
        if shape and shape[0] > cap:
            self._cut(tn.REASON_PAYLOAD_ROWS if rows else tn.REASON_PAYLOAD_ITEMS)
        view = (t[:cap] if shape else t).detach().cpu()
        try:
            arr = view.numpy()
        except TypeError:
            # dtypes numpy lacks (bfloat16, float8): widen the few kept values to float32
            arr = view.float().numpy()
        return self._array(np.asarray(arr), depth, rows)
