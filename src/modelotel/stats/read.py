"""Read whatever a predict function receives or returns into a :class:`~.table.Table`.

Example:
    >>> import numpy as np
    >>> from modelotel.stats.read import extract
    >>> skipped: dict[str, int] = {}
    >>> t = extract(np.zeros((3, 2)), skipped=skipped)
    >>> t.rows, t.names, t.matrix.shape
    (3, ('0', '1'), (3, 2))
    >>> extract([], skipped=skipped) is None, skipped
    (True, {'stats.empty_batch': 1})

:func:`extract` never copies a numeric numpy array (the 2-D case is handed on as a view),
never mutates its input, never imports torch, PIL or pandas (each is recognised by the
module of its type), and never raises for bad input: what it cannot use is added to
``skipped`` (reason -> count, see :mod:`.reasons`) and ``None`` is returned, or the table
comes back without the column it could not read. One reader per input kind: numpy arrays
(and CPU torch tensors through them), images (as their descriptors, :mod:`.image`), pandas
(:mod:`.frames`), an XGBoost ``DMatrix`` or CatBoost ``Pool`` (:mod:`.containers`),
mappings (a dict of columns, one record), sequences (records, rows, a flat list of values),
scalars.

An exception raised while reading comes either from the input's own code (a ``__len__``
or a property that raises) or from ours; :func:`raised_by_input` tells them apart.
"""

from __future__ import annotations

import math
import operator
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from modelotel.stats.containers import is_container, read_container
from modelotel.stats.frames import (
    FRAME_TYPES,
    FrameHint,
    from_frame,
    from_series,
    pandas_column,
)
from modelotel.stats.image import (
    image_table,
    is_images,
    is_pil,
    list_table,
    looks_like_images,
    pil_table,
    tensor_array,
)
from modelotel.stats.reasons import (
    SKIP_COMPLEX,
    SKIP_EMPTY,
    SKIP_HIGH_RANK,
    SKIP_NON_TABULAR,
    SKIP_NONE,
    SKIP_RAGGED,
    SKIP_SPARSE,
    SKIP_UNSUPPORTED,
    SKIP_ZERO_DIM,
    add,
)
from modelotel.stats.table import (
    CATEGORICAL,
    COMPLEX_TYPES,
    NUMBER_TYPES,
    NUMERIC,
    Array,
    Table,
    array_kind,
    positional,
)
from modelotel.stats.text import Text, text_table

#: Numbers numpy converts in C (a one-record dict of these takes the fast path).
_PLAIN_NUMBER = (int, float, np.integer, np.floating, np.bool_)


def _from_ndarray(a: Array, row_vector: bool, skipped: dict[str, int]) -> Table | None:
    if a.dtype.names:  # structured array: one column per field
        flat = a.reshape(-1)
        if flat.size == 0:
            add(skipped, SKIP_EMPTY)
            return None
        cols: dict[str, np.ndarray[Any, Any]] = {}
        kinds: dict[str, str] = {}
        for field in a.dtype.names:
            col = flat[field]
            kind = array_kind(col)
            if col.ndim != 1 or kind is None:
                add(skipped, SKIP_NON_TABULAR)
                continue
            cols[str(field)] = col
            kinds[str(field)] = kind
        return Table(flat.shape[0], tuple(cols), columns=cols, kinds=kinds, named=True)
    kind = array_kind(a)
    if kind is None:
        add(skipped, SKIP_COMPLEX if a.dtype.kind == "c" else SKIP_UNSUPPORTED)
        return None
    if a.ndim == 0:
        if a.dtype.kind == "O":
            inner = a.item()
            if inner is None or isinstance(inner, (int, float, str, bool)):
                return _from_sequence([inner], row_vector, skipped)
            add(skipped, SKIP_ZERO_DIM)
            return None
        a = a.reshape(1, 1)
    elif a.ndim == 1:
        a = a.reshape(1, -1) if row_vector else a.reshape(-1, 1)
    elif a.ndim > 2:
        if is_images(a, row_vector):  # a 3-D array is one image on the input side only
            return image_table(a, skipped)
        add(skipped, SKIP_HIGH_RANK)
        return None
    if a.size == 0:
        add(skipped, SKIP_EMPTY)
        return None
    names = positional(a.shape[1])
    if kind == CATEGORICAL:
        cols = {n: a[:, i] for i, n in enumerate(names)}
        return Table(a.shape[0], names, columns=cols, kinds=dict.fromkeys(names, CATEGORICAL))
    return Table(a.shape[0], names, matrix=a)


def _scalar_ok(v: object) -> bool:
    return v is None or isinstance(v, (str, np.generic, *NUMBER_TYPES))


def _object_column(values: Sequence[object]) -> tuple[np.ndarray[Any, Any], str]:
    """A 1-D column from Python values: numeric when every non-null value is a number."""
    numeric = True
    for v in values:
        if v is None or (isinstance(v, NUMBER_TYPES) and not isinstance(v, COMPLEX_TYPES)):
            continue
        numeric = False
        break
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    return arr, (NUMERIC if numeric else CATEGORICAL)


def _records_fast(x: Sequence[Any], first: Mapping[Any, Any]) -> Table | None:
    """Records that all have the first one's keys and only numbers: one matrix."""
    keys = list(first)
    if not keys or not all(type(k) is str for k in keys):
        return None
    n = len(keys)
    # itemgetter pulls one row's values in the first row's key order, in C; a missing key
    # raises, an extra one shows in len(); either goes to the careful path
    getter = operator.itemgetter(*keys)
    try:
        if not all(type(r) is dict and len(r) == n for r in x):
            return None
        rows = [getter(r) for r in x]
    except (KeyError, TypeError):
        return None
    if n == 1:
        rows = [(v,) for v in rows]  # itemgetter of one key gives the value, not a tuple
    m = _numeric_matrix(rows)
    if m is None or m.ndim != 2:
        return None
    return Table(m.shape[0], tuple(keys), matrix=m, named=True)


def _from_sequence(x: Sequence[Any], row_vector: bool, skipped: dict[str, int]) -> Table | None:
    if len(x) == 0:
        add(skipped, SKIP_EMPTY)
        return None
    first = x[0]
    if isinstance(first, Mapping):  # list of dicts (records)
        fast = _records_fast(x, first)
        if fast is not None:
            return fast
        keys: dict[str, None] = {}
        for row in x:
            if not isinstance(row, Mapping):
                add(skipped, SKIP_RAGGED)
                return None
            for k in row:
                keys[str(k)] = None
        cols: dict[str, np.ndarray[Any, Any]] = {}
        kinds: dict[str, str] = {}
        nulls: dict[str, int] = {}
        for key in keys:
            vals = [_get_str_key(row, key) for row in x]
            if not all(_scalar_ok(v) for v in vals):
                add(skipped, SKIP_NON_TABULAR)
                continue
            arr, kind = _object_column(vals)
            cols[key], kinds[key] = arr, kind
            nulls[key] = sum(1 for v in vals if v is None)
        return Table(len(x), tuple(cols), columns=cols, kinds=kinds, nulls=nulls, named=True)
    if isinstance(first, (list, tuple, np.ndarray, int, float)) and not isinstance(first, bool):
        # all numbers (JSON rows, a feature vector): numpy converts it in C, far faster than
        # column by column; None, strings or ragged rows fall through to the careful path
        dense: np.ndarray[Any, Any] | None
        try:
            dense = np.asarray(x)
        except (ValueError, TypeError, OverflowError, RecursionError):
            dense = None
        if dense is not None and dense.dtype.kind in "fiu" and dense.ndim in (1, 2) and dense.size:
            return _from_ndarray(dense, row_vector, skipped)
    if _is_row(first):  # list of rows
        width = len(first)
        for row in x:
            if not _is_row(row) or len(row) != width:
                add(skipped, SKIP_RAGGED)
                return None
        if width == 0:
            add(skipped, SKIP_EMPTY)
            return None
        cols = {}
        kinds = {}
        nulls = {}
        for j in range(width):
            vals = [row[j] for row in x]
            if not all(_scalar_ok(v) for v in vals):
                add(skipped, SKIP_NON_TABULAR)  # a cell holds a list, a dict, an object
                return None
            arr, kind = _object_column(vals)
            name = str(j)
            cols[name], kinds[name] = arr, kind
            nulls[name] = sum(1 for v in vals if v is None)
        return Table(len(x), tuple(cols), columns=cols, kinds=kinds, nulls=nulls)
    # a flat list of scalars: one row of features or one column of values
    if not all(_scalar_ok(v) for v in x):
        add(skipped, SKIP_RAGGED)
        return None
    arr, kind = _object_column(list(x))
    if row_vector:
        names = positional(len(arr))
        cols = {n: arr[i : i + 1] for i, n in enumerate(names)}
        kinds = {n: (NUMERIC if _object_column([arr[i]])[1] == NUMERIC else CATEGORICAL)
                 for i, n in enumerate(names)}
        nulls = {n: int(arr[i] is None) for i, n in enumerate(names)}
        return Table(1, names, columns=cols, kinds=kinds, nulls=nulls)
    return Table(len(arr), ("0",), columns={"0": arr}, kinds={"0": kind},
                 nulls={"0": sum(1 for v in arr if v is None)})


def _is_row(value: object) -> bool:
    """A row of a list of rows: a list, a tuple or an array of one or more dimensions (a 0-d
    array is a scalar: it has no ``len()``)."""
    return isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim > 0)


def _get_str_key(row: Mapping[Any, Any], key: str) -> object:
    if key in row:
        return row[key]
    for k, v in row.items():  # non-str keys (ints) were named by str(k)
        if str(k) == key:
            return v
    return None


def _numeric_matrix(values: list[Any]) -> np.ndarray[Any, Any] | None:
    """``np.array(values)`` when it is a numeric (bool, int, float) array, else None.

    numpy converts a list of numbers (or of equal-length lists of numbers) in C, far faster
    than the value-by-value path; anything else (None, strings, Decimal, ragged lists, ints
    beyond 64 bits) comes back object, string or raises, and takes the careful path.
    """
    try:
        m = np.array(values)
    except (ValueError, TypeError, OverflowError, RecursionError):
        return None
    return m if m.dtype.kind in "fiub" else None


def _from_mapping_fast(x: Mapping[Any, Any]) -> Table | None:
    """A dict of equal-length numeric columns, or one record of numbers: one matrix."""
    values = list(x.values())
    if not values:
        return None
    first = values[0]
    if isinstance(first, (list, tuple, np.ndarray)):
        if not all(isinstance(v, (list, tuple, np.ndarray)) for v in values):
            return None
        m = _numeric_matrix(values)  # columns x rows
        if m is None or m.ndim != 2 or m.shape[1] == 0:
            return None
        m = m.T
    elif isinstance(first, _PLAIN_NUMBER):
        m = _numeric_matrix(values)
        if m is None or m.ndim != 1:
            return None
        m = m.reshape(1, -1)  # one record: one row
    else:
        return None
    names = tuple(str(k) for k in x)
    if len(set(names)) != len(names):
        return None
    return Table(m.shape[0], names, matrix=m, named=True)


def _from_mapping(x: Mapping[Any, Any], skipped: dict[str, int]) -> Table | None:
    fast = _from_mapping_fast(x)
    if fast is not None:
        return fast
    cols: dict[str, np.ndarray[Any, Any]] = {}
    kinds: dict[str, str] = {}
    nulls: dict[str, int] = {}
    rows = -1
    for key, value in x.items():
        name = str(key)
        if isinstance(value, np.ndarray):
            arr = value.reshape(1) if value.ndim == 0 else value
            kind = array_kind(arr)
            n_null = 0
        elif isinstance(value, (list, tuple)):
            if not all(_scalar_ok(v) for v in value):
                add(skipped, SKIP_NON_TABULAR)
                continue
            arr, kind = _object_column(list(value))
            n_null = sum(1 for v in value if v is None)
        elif _scalar_ok(value):
            arr, kind = _object_column([value])
            n_null = int(value is None)
        else:
            series = pandas_column(value)
            if series is None:
                add(skipped, SKIP_NON_TABULAR)
                continue
            arr, kind, n_null = series
        if arr.ndim != 1 or kind is None:
            add(skipped, SKIP_NON_TABULAR)
            continue
        if rows == -1:
            rows = arr.shape[0]
        elif arr.shape[0] != rows:
            add(skipped, SKIP_RAGGED)
            return None
        cols[name], kinds[name], nulls[name] = arr, kind, n_null
    if not cols or rows <= 0:
        add(skipped, SKIP_EMPTY)
        return None
    return Table(rows, tuple(cols), columns=cols, kinds=kinds, nulls=nulls, named=True)


def _from_torch(x: Any, row_vector: bool, skipped: dict[str, int]) -> Table | None:
    arr = tensor_array(x, skipped)
    if arr is None:
        return None
    return _from_ndarray(arr, row_vector, skipped)


def extract(
    x: object,
    row_vector: bool = True,
    hint: FrameHint | None = None,
    skipped: dict[str, int] | None = None,
) -> Table | None:
    """Return the batch ``x`` as a :class:`Table`, or ``None`` (skipped).

    Args:
        x: the predict input or output: numpy arrays (any numeric dtype, structured),
            pandas DataFrame / Series, XGBoost DMatrix, CatBoost Pool, dicts of arrays or
            lists, lists of dicts, lists of rows, flat lists, scalars, CPU torch tensors,
            images (4-D arrays or tensors, PIL images, lists of them: :mod:`.image`).
        row_vector: how to read a 1-D array or flat list: one row of features (inputs) or
            one column of values (outputs).
        hint: what the caller's last DataFrame was like (:class:`FrameHint`, updated here),
            so that a stream of similar frames takes the shortest path.
        skipped: reason -> count of what was skipped (the whole batch when None is
            returned, else columns that could not be read); added to in place.
    """
    if skipped is None:
        skipped = {}
    if isinstance(x, np.ndarray):
        return _from_ndarray(x, row_vector, skipped)
    if type(x) in FRAME_TYPES:  # a frame type read before: no name tests (cold in a call)
        return from_frame(x, hint, skipped)
    if x is None:
        add(skipped, SKIP_NONE)
        return None
    if isinstance(x, (bool, int, float, np.generic)) and not isinstance(x, complex):
        if isinstance(x, float) and math.isnan(x):
            return Table(1, ("0",), matrix=np.array([[x]]))
        return _from_ndarray(np.asarray(x).reshape(1, 1), row_vector, skipped)
    if isinstance(x, str):
        # an input text is one row of one text column; an output string may be a label
        if row_vector or type(x) is Text:
            return text_table(x)
        return _from_sequence([x], row_vector, skipped)
    module = type(x).__module__
    if module.startswith("pandas"):
        cls = type(x).__name__
        if cls == "DataFrame":
            return from_frame(x, hint, skipped)
        if cls == "Series":
            return from_series(x, skipped)
        add(skipped, SKIP_UNSUPPORTED)
        return None
    if module.startswith("torch"):
        return _from_torch(x, row_vector, skipped)
    if module.startswith("scipy.sparse"):
        add(skipped, SKIP_SPARSE)
        return None
    if isinstance(x, Mapping):
        return _from_mapping(x, skipped)
    if isinstance(x, (list, tuple)):
        if x and looks_like_images(x):  # a list of PIL images or of same-shape arrays
            return list_table(x, skipped)
        if row_vector and x and isinstance(x[0], str):
            texts = text_table(x)  # a batch of texts: one row per text, never one feature each
            if texts is not None:
                return texts
        return _from_sequence(x, row_vector, skipped)
    if is_container(x):  # an XGBoost DMatrix, a CatBoost Pool
        return read_container(x, skipped)
    if is_pil(x):
        return pil_table([x], skipped)
    add(skipped, SKIP_UNSUPPORTED)
    return None


#: Where code that is not the user's lives: an exception raised there is a bug (ours, or
#: our use of numpy / pandas), not a misbehaving input.
_LIBRARY_DIRS = tuple(
    os.path.dirname(path) + os.sep
    for path in (getattr(sys.modules["modelotel"], "__file__", None), np.__file__)
    if path
)


def raised_by_input(exc: BaseException) -> bool:
    """True when ``exc`` came out of the input's own code (a ``__len__``, ``__iter__``,
    ``__str__`` or property of the user's object raised while statistics read it).

    Decided by the innermost frame of the traceback: outside modelotel, numpy and pandas,
    it is the user's. An exception raised in C (no frame of its own) counts as ours.
    """
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    filename = tb.tb_frame.f_code.co_filename
    pandas = sys.modules.get("pandas")
    pandas_dir = os.path.dirname(getattr(pandas, "__file__", None) or "") + os.sep
    return not filename.startswith(_LIBRARY_DIRS) and not (
        pandas_dir != os.sep and filename.startswith(pandas_dir)
    )


__all__ = ["FrameHint", "Table", "extract", "raised_by_input"]
