"""Call-time copies of a kept call's inputs and outputs, for the payload worker to read.

Example:
    >>> import numpy as np
    >>> from modelotel._payload.snapshot import NOT_COPIED, Caps, snapshot
    >>> caps = Caps(max_rows=2, max_items=100, max_depth=8, max_elements=4096)
    >>> x = np.arange(6.0).reshape(3, 2)
    >>> snap = snapshot(x, caps)
    >>> x[0, 0] = 99.0                        # the user's later change is not seen
    >>> snap.value.tolist(), snap.size
    ([[0.0, 1.0], [2.0, 3.0]], (3, 2))
    >>> snapshot({1, 2}, caps) is NOT_COPIED   # a kind without a snapshot: convert it now
    True

A record is built on the payload worker after the call has returned, so it must not read
anything the user may still change. :func:`snapshot` copies what the converter
(:class:`~modelotel._payload.serialize.Converter`) would read, within the same caps: the
first ``max_rows`` rows of a numpy array or DataFrame (a frame of numeric, categorical and
Arrow string columns: copies of its blocks, :class:`~modelotel._payload.serialize.FrameCopy`;
any other frame: ``copy()``), the first items of
lists, tuples and dicts (nested ones copied too, up to ``max_depth``); immutable values
(numbers, strings, numpy scalars) are shared. A copy cut shorter than the original is a
:class:`~modelotel._payload.serialize.Capped`, so the record's truncation bookkeeping is
the original's. Measured on the calling thread (paced calls, cold caches), a copy costs a
fraction of the conversion it replaces (docs/payloads.md).

Anything else (other types, subclasses, sets, object arrays, cycles, more than
``max_elements`` values) is :data:`NOT_COPIED`: the caller converts it on the calling
thread, as before, and the worker takes the converted plain data. Nothing here calls a
method of a user object.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, NamedTuple

import numpy as np

from modelotel._payload.serialize import Capped, FrameCopy, input_rows

#: Returned for a value that has no snapshot: convert it on the calling thread.
NOT_COPIED: Any = object()
_PAST_CAP = object()
#: Values that cannot change after the call: shared, never copied.
_ATOMS: frozenset[type] = frozenset({type(None), bool, int, float, str, bytes, complex})


class Caps(NamedTuple):
    """The caps of one model's payloads that a snapshot honours (from its PayloadConfig)."""

    max_rows: int
    max_items: int
    max_depth: int
    #: Most values copied for one side; beyond it the side is converted instead (the
    #: converter stops at ``max_bytes`` where a copy would not).
    max_elements: int


class _UnsafeError(Exception):
    """The value has no faithful, bounded copy."""


def snapshot(obj: Any, caps: Caps) -> Any:
    """A copy of ``obj`` that the converter reads as it would read ``obj``, or NOT_COPIED."""
    t = type(obj)
    if t in _ATOMS:
        return obj
    # The two commonest inputs, without the walk: a record of numbers and strings, and an
    # array within the caps (paced serving runs cold: every function touched costs).
    if t is dict:
        if (
            len(obj) <= caps.max_items
            and _ATOMS.issuperset(map(type, obj.values()))
            and _ATOMS.issuperset(map(type, obj))
        ):
            return dict(obj)
    elif t is np.ndarray:
        shape = obj.shape
        if (
            shape
            and shape[0] <= caps.max_rows
            and max(shape[1:], default=0) <= caps.max_items
            and obj.size <= caps.max_elements
            and not obj.dtype.hasobject
        ):
            return obj.copy()
    elif isinstance(obj, np.generic) and t is not np.void:
        return obj
    elif _is_pandas_frame(obj):
        got = _from_blocks(obj, caps)
        if got is not None:
            return got
    try:
        return _Copier(caps).copy(obj, 0, True)
    except _UnsafeError:
        return NOT_COPIED
    except Exception:  # noqa: BLE001 - pandas internals moved: convert now, as before
        return NOT_COPIED


def _from_blocks(df: Any, caps: Caps) -> Any:
    """A frame of numpy numeric blocks, categorical and Arrow string columns, as a
    :class:`FrameCopy` cut to the caps (a :class:`Capped` when cut), read from its blocks
    (pandas' internals, read defensively: None for anything else, which the general copy
    takes)."""
    try:
        blocks = df._mgr.blocks
        if type(blocks) is not tuple or not blocks:
            return None
        first = blocks[0].values
        rows = first.shape[1] if type(first) is np.ndarray else len(first)
        # (pandas' attributes behind its mgr_locs / dtype properties, whose Python code is
        # cold on a calling thread; the worker splits the blocks into columns)
        placed = []
        cols = 0
        for b in blocks:
            where = b._mgr_locs.indexer
            # a slice's positions as a range; an array's as a list (a copy: pandas' own)
            positions = range(where.stop)[where] if type(where) is slice else where.tolist()
            placed.append(positions)
            cols += len(positions)
        keep_rows, keep_cols = min(rows, caps.max_rows), min(cols, caps.max_items)
        if keep_rows * keep_cols > caps.max_elements:
            return None
        parts: list[tuple[Any, Any]] = []
        for b, positions in zip(blocks, placed, strict=True):
            v = b.values
            if type(v) is np.ndarray:
                if v.ndim != 2 or v.dtype.kind not in "biuf" or v.shape[1] != rows:
                    return None
                parts.append((positions, v[:, :keep_rows].copy()))  # (its rows are columns)
                continue
            if len(positions) != 1 or len(v) != rows:
                return None
            if positions[0] >= keep_cols:
                continue
            dtype = getattr(v, "_dtype", None)
            if dtype is None:
                dtype = v.dtype
            if type(v).__name__ == "Categorical":
                codes = getattr(v, "_ndarray", None)
                if type(codes) is not np.ndarray:
                    return None
                parts.append((positions, ("category", type(v), codes[:keep_rows].copy(), dtype)))
            elif type(dtype).__name__ == "StringDtype" and hasattr(v, "_pa_array"):
                pa = v._pa_array
                if keep_rows < rows:  # (a slice is a new array, cold pyarrow code: if cut)
                    pa = pa[:keep_rows]
                parts.append((positions, ("arrow", pa, dtype.na_value)))
            else:
                return None
        copy = FrameCopy(df.columns, parts, keep_rows, keep_cols)
        return copy if (keep_rows, keep_cols) == (rows, cols) else Capped(copy, (rows, cols))
    except Exception:  # noqa: BLE001 - another pandas: the general copy
        return None


def rows_of(copy: Any) -> int | None:
    """``input_rows`` of the original of ``copy`` (a :func:`snapshot`): len or shape[0]."""
    if type(copy) is FrameCopy:
        return copy.rows
    if type(copy) is Capped:
        size = copy.size
        if isinstance(copy.value, dict):
            return None
        return size if isinstance(size, int) else int(size[0])
    return input_rows(copy)  # an uncut copy has the original's rows


class _Copier:
    __slots__ = ("budget", "caps", "path")

    def __init__(self, caps: Caps) -> None:
        self.caps = caps
        self.budget = caps.max_elements
        self.path: set[int] = set()

    def copy(self, obj: Any, depth: int, rows: bool) -> Any:
        t = type(obj)
        if t in _ATOMS:
            return obj
        if isinstance(obj, np.generic) and t is not np.void:
            return obj
        if depth >= self.caps.max_depth:
            if t in (list, tuple, dict) or t is np.ndarray:
                return ()  # the converter writes "[depth]" for any container here
            raise _UnsafeError
        if t is np.ndarray:
            return self._array(obj, rows)
        if t is dict or t is list or t is tuple:
            key = id(obj)
            if key in self.path:
                raise _UnsafeError  # a cycle: the converter marks it, a copy would not
            self.path.add(key)
            try:
                if t is dict:
                    return self._dict(obj, depth, rows)
                return self._list(obj, depth, rows)
            finally:
                self.path.discard(key)
        if _is_pandas_frame(obj):
            return self._frame(obj)
        raise _UnsafeError

    def _spend(self, n: int) -> None:
        self.budget -= n
        if self.budget < 0:
            raise _UnsafeError

    def _dict(self, d: dict[Any, Any], depth: int, rows: bool) -> Any:
        n = len(d)
        cap = self.caps.max_items
        self._spend(min(n, cap))
        atoms = _ATOMS
        if n <= cap and atoms.issuperset(map(type, d.values())):
            if atoms.issuperset(map(type, d)):
                return dict(d)  # the common record: names to numbers and strings
            raise _UnsafeError
        items = itertools.islice(d.items(), cap) if n > cap else d.items()
        out: dict[Any, Any] = {}
        inner = rows and depth == 0  # columns of a top-level mapping are rows
        for k, v in items:
            if type(k) not in atoms:
                raise _UnsafeError
            out[k] = v if type(v) in atoms else self.copy(v, depth + 1, inner)
        if n > cap:
            # the converter counts the cut when it meets an item past the cap (never read)
            out[_PAST_CAP] = None
        return out if n <= cap else Capped(out, n)

    def _list(self, seq: list[Any] | tuple[Any, ...], depth: int, rows: bool) -> Any:
        n = len(seq)
        cap = self.caps.max_rows if rows else self.caps.max_items
        kept = seq[:cap] if n > cap else seq
        self._spend(len(kept))
        atoms = _ATOMS
        if atoms.issuperset(map(type, kept)):
            out = list(kept)
        else:
            out = [v if type(v) in atoms else self.copy(v, depth + 1, False) for v in kept]
        return out if n <= cap else Capped(out, n)

    def _array(self, a: np.ndarray[Any, Any], rows: bool) -> Any:
        if a.dtype.hasobject:
            raise _UnsafeError  # object elements may be mutable; the converter reads them now
        if a.ndim == 0:
            return a.copy()
        cap = self.caps.max_rows if rows else self.caps.max_items
        index = (slice(0, cap),) + (slice(0, self.caps.max_items),) * (a.ndim - 1)
        view = a[index]
        self._spend(view.size)
        out = view.copy()
        return out if view.shape == a.shape else Capped(out, a.shape)

    def _frame(self, df: Any) -> Any:
        caps = self.caps
        n_rows, n_cols = (int(x) for x in df.shape)
        fits = n_rows <= caps.max_rows and n_cols <= caps.max_items
        sub = df if fits else df.iloc[: caps.max_rows, : caps.max_items]
        self._spend(math.prod(sub.shape))
        out = sub.copy(deep=True)
        # A deep copy copies an object column's array of references, not the objects: a
        # frame holding mutable objects (lists, dicts) has no cheap faithful copy.
        blocks = out._mgr.blocks
        if type(blocks) is not tuple:
            raise _UnsafeError
        for b in blocks:
            v = b.values
            if isinstance(v, np.ndarray) and v.dtype.hasobject:
                flat = v.ravel().tolist()
                if not all(type(x) in _ATOMS for x in flat):
                    raise _UnsafeError
            elif not isinstance(v, np.ndarray) and not _immutable_extension(v.dtype):
                raise _UnsafeError  # an extension array that may hold objects
        return out if fits else Capped(out, (n_rows, n_cols))


def _is_pandas_frame(obj: object) -> bool:
    t = type(obj)
    module = t.__module__
    return t.__name__ == "DataFrame" and (module == "pandas" or module.startswith("pandas."))


def _immutable_extension(dtype: Any) -> bool:
    """Whether a pandas extension column holds only immutable values (numbers, strings)."""
    return getattr(dtype, "kind", "O") in "biufcmM" or type(dtype).__name__ in (
        "CategoricalDtype",
        "StringDtype",
    )
