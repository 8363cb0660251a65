"""Turn whatever a predict function receives into named numeric and categorical columns.

Example:
    >>> import numpy as np
    >>> from modelotel.stats.columns import extract
    >>> t = extract(np.zeros((3, 2)))
    >>> t.rows, t.names, t.matrix.shape
    (3, ('0', '1'), (3, 2))

:func:`extract` never copies a numeric numpy array (the 2-D case is handed on as a view),
never mutates its input, never imports torch or pandas (both are recognised by the module
of their type), and never raises for bad input: what it cannot use is counted with
``_safety.count_skipped(reason)`` and ``None`` is returned. :class:`ColumnPlan` then lines
a :class:`Table` up with a fixed schema (the baseline's, or the first batch's): one 2-D
numeric block for the accumulators plus one value array per categorical column.
"""

from __future__ import annotations

import decimal
import math
import numbers
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelotel import attributes as A  # noqa: N812 - the project's alias for names
from modelotel._safety import count_skipped

#: Column kinds. ``bool`` and datetimes are numeric (0/1, seconds since the epoch).
NUMERIC = "numeric"
CATEGORICAL = "categorical"
DATETIME = "datetime"

# skip reasons (values of ml.telemetry.reason; low cardinality by construction)
SKIP_EMPTY = "stats.empty_batch"
SKIP_NONE = "stats.none_input"
SKIP_RAGGED = "stats.ragged_rows"
SKIP_ZERO_DIM = "stats.zero_dim_object"
SKIP_HIGH_RANK = "stats.high_rank_array"
SKIP_COMPLEX = "stats.complex_dtype"
SKIP_UNSUPPORTED = "stats.unsupported_type"
SKIP_GPU = "stats.gpu_tensor"
SKIP_TENSOR = "stats.unconvertible_tensor"
SKIP_NON_NUMERIC = "stats.non_numeric_value"
SKIP_NON_TABULAR = "stats.non_tabular_column"
SKIP_MAX_FEATURES = "stats.max_features"
SKIP_SPARSE = "stats.sparse_matrix"
#: The input's own code raised while it was read (a ``__len__``, ``__iter__``, ``__str__``
#: or property of the user's object): the batch is skipped, not counted as our error.
SKIP_UNREADABLE = "stats.unreadable_input"

_NS_PER_S = 1e9
#: Numbers for the statistics: Python's and numpy's, and ``decimal.Decimal`` /
#: ``fractions.Fraction`` (``numbers.Real``), which ``float()`` converts.
_NUMBER = (int, float, np.number, bool, numbers.Real, decimal.Decimal)
#: Not numbers for the statistics: ``float()`` of a numpy complex scalar warns (ComplexWarning,
#: an exception under ``-W error``) and drops the imaginary part.
_COMPLEX = (complex, np.complexfloating)
#: Numbers numpy converts in C (a one-record dict of these takes the fast path).
_PLAIN_NUMBER = (int, float, np.integer, np.floating, np.bool_)


class Table:
    """A batch seen as named columns. Either ``matrix`` (one homogeneous numeric 2-D array,
    rows x len(names), possibly a view of the user's array) or ``columns`` (name -> 1-D array)
    is set. ``nulls`` counts, per column name, values that were null (None, pd.NA, NaT) and
    now appear as NaN in a float column."""

    __slots__ = ("columns", "kinds", "matrix", "named", "names", "nulls", "rows")

    def __init__(
        self,
        rows: int,
        names: tuple[str, ...],
        *,
        matrix: np.ndarray[Any, Any] | None = None,
        columns: dict[str, np.ndarray[Any, Any]] | None = None,
        kinds: dict[str, str] | None = None,
        nulls: dict[str, int] | None = None,
        named: bool = False,
    ) -> None:
        self.rows = rows
        self.names = names
        self.matrix = matrix
        self.columns = columns
        self.kinds = kinds
        self.nulls = nulls
        #: True when the names came from the data (frame columns, dict keys, structured
        #: fields); False when they are positions ("0", "1", ...).
        self.named = named

    def kind(self, name: str) -> str:
        if self.matrix is not None:
            return DATETIME if self.matrix.dtype.kind == "M" else NUMERIC
        assert self.kinds is not None
        return self.kinds[name]

    def column(self, name: str, index: int) -> np.ndarray[Any, Any]:
        if self.matrix is not None:
            return self.matrix[:, index]
        assert self.columns is not None
        return self.columns[name]


_POSITIONAL: list[tuple[str, ...]] = [tuple(str(i) for i in range(n)) for n in range(257)]


def _positional(n: int) -> tuple[str, ...]:
    """("0", "1", ...): precomputed for the common widths (this runs on every call)."""
    if n < len(_POSITIONAL):
        return _POSITIONAL[n]
    return tuple(str(i) for i in range(n))


def _array_kind(a: np.ndarray[Any, Any]) -> str | None:
    k = a.dtype.kind
    if k in "fiub":
        return NUMERIC
    if k == "M":
        return DATETIME
    if k == "m":
        return NUMERIC  # timedelta: counted as numbers of nanoseconds
    if k in "OUS":
        return CATEGORICAL
    return None


def _from_ndarray(a: np.ndarray[Any, Any], row_vector: bool) -> Table | None:
    if a.dtype.names:  # structured array: one column per field
        flat = a.reshape(-1)
        if flat.size == 0:
            count_skipped(SKIP_EMPTY)
            return None
        cols: dict[str, np.ndarray[Any, Any]] = {}
        kinds: dict[str, str] = {}
        for field in a.dtype.names:
            col = flat[field]
            kind = _array_kind(col)
            if col.ndim != 1 or kind is None:
                count_skipped(SKIP_NON_TABULAR)
                continue
            cols[str(field)] = col
            kinds[str(field)] = kind
        return Table(flat.shape[0], tuple(cols), columns=cols, kinds=kinds, named=True)
    kind = _array_kind(a)
    if kind is None:
        count_skipped(SKIP_COMPLEX if a.dtype.kind == "c" else SKIP_UNSUPPORTED)
        return None
    if a.ndim == 0:
        if a.dtype.kind == "O":
            inner = a.item()
            if inner is None or isinstance(inner, (int, float, str, bool)):
                return _from_sequence([inner], row_vector)
            count_skipped(SKIP_ZERO_DIM)
            return None
        a = a.reshape(1, 1)
    elif a.ndim == 1:
        a = a.reshape(1, -1) if row_vector else a.reshape(-1, 1)
    elif a.ndim > 2:
        count_skipped(SKIP_HIGH_RANK)
        return None
    if a.size == 0:
        count_skipped(SKIP_EMPTY)
        return None
    names = _positional(a.shape[1])
    if kind == CATEGORICAL:
        cols = {n: a[:, i] for i, n in enumerate(names)}
        return Table(a.shape[0], names, columns=cols, kinds=dict.fromkeys(names, CATEGORICAL))
    return Table(a.shape[0], names, matrix=a)


def _scalar_ok(v: object) -> bool:
    return v is None or isinstance(v, (str, np.generic, *_NUMBER))


def _object_column(values: Sequence[object]) -> tuple[np.ndarray[Any, Any], str]:
    """A 1-D column from Python values: numeric when every non-null value is a number."""
    numeric = True
    for v in values:
        if v is None or (isinstance(v, _NUMBER) and not isinstance(v, _COMPLEX)):
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


def _from_sequence(x: Sequence[Any], row_vector: bool) -> Table | None:
    if len(x) == 0:
        count_skipped(SKIP_EMPTY)
        return None
    first = x[0]
    if isinstance(first, Mapping):  # list of dicts (records)
        fast = _records_fast(x, first)
        if fast is not None:
            return fast
        keys: dict[str, None] = {}
        for row in x:
            if not isinstance(row, Mapping):
                count_skipped(SKIP_RAGGED)
                return None
            for k in row:
                keys[str(k)] = None
        cols: dict[str, np.ndarray[Any, Any]] = {}
        kinds: dict[str, str] = {}
        nulls: dict[str, int] = {}
        for key in keys:
            vals = [_get_str_key(row, key) for row in x]
            if not all(_scalar_ok(v) for v in vals):
                count_skipped(SKIP_NON_TABULAR)
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
            return _from_ndarray(dense, row_vector)
    if _is_row(first):  # list of rows
        width = len(first)
        for row in x:
            if not _is_row(row) or len(row) != width:
                count_skipped(SKIP_RAGGED)
                return None
        if width == 0:
            count_skipped(SKIP_EMPTY)
            return None
        cols = {}
        kinds = {}
        nulls = {}
        for j in range(width):
            vals = [row[j] for row in x]
            if not all(_scalar_ok(v) for v in vals):
                count_skipped(SKIP_NON_TABULAR)  # a cell holds a list, a dict, an object
                return None
            arr, kind = _object_column(vals)
            name = str(j)
            cols[name], kinds[name] = arr, kind
            nulls[name] = sum(1 for v in vals if v is None)
        return Table(len(x), tuple(cols), columns=cols, kinds=kinds, nulls=nulls)
    # a flat list of scalars: one row of features or one column of values
    if not all(_scalar_ok(v) for v in x):
        count_skipped(SKIP_RAGGED)
        return None
    arr, kind = _object_column(list(x))
    if row_vector:
        names = _positional(len(arr))
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


def _from_mapping(x: Mapping[Any, Any]) -> Table | None:
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
            kind = _array_kind(arr)
            n_null = 0
        elif isinstance(value, (list, tuple)):
            if not all(_scalar_ok(v) for v in value):
                count_skipped(SKIP_NON_TABULAR)
                continue
            arr, kind = _object_column(list(value))
            n_null = sum(1 for v in value if v is None)
        elif _scalar_ok(value):
            arr, kind = _object_column([value])
            n_null = int(value is None)
        else:
            series = _pandas_column(value)
            if series is None:
                count_skipped(SKIP_NON_TABULAR)
                continue
            arr, kind, n_null = series
        if arr.ndim != 1 or kind is None:
            count_skipped(SKIP_NON_TABULAR)
            continue
        if rows == -1:
            rows = arr.shape[0]
        elif arr.shape[0] != rows:
            count_skipped(SKIP_RAGGED)
            return None
        cols[name], kinds[name], nulls[name] = arr, kind, n_null
    if not cols or rows <= 0:
        count_skipped(SKIP_EMPTY)
        return None
    return Table(rows, tuple(cols), columns=cols, kinds=kinds, nulls=nulls, named=True)


def _pandas_column(s: Any) -> tuple[np.ndarray[Any, Any], str, int] | None:
    """(values, kind, nulls) of a pandas Series, without importing pandas."""
    if type(s).__name__ != "Series" or not type(s).__module__.startswith("pandas"):
        return None
    dtype = s.dtype
    dkind = getattr(dtype, "kind", "O")
    name = type(dtype).__name__
    if name == "CategoricalDtype":
        codes = np.asarray(s.cat.codes.to_numpy())
        cats = np.asarray(s.cat.categories.to_numpy(), dtype=object)
        values = np.empty(codes.shape[0], dtype=object)
        ok = codes >= 0
        values[ok] = cats[codes[ok]]
        values[~ok] = None
        return values, CATEGORICAL, int((~ok).sum())
    if isinstance(dtype, np.dtype):
        arr = s.to_numpy()  # a view for numpy-backed columns
        kind = _array_kind(arr)
        if kind is None:
            return None
        n_null = int(np.isnat(arr).sum()) if dkind in "Mm" else 0
        if kind == CATEGORICAL:
            n_null = int(s.isna().sum())
        return arr, kind, n_null
    # extension dtypes: nullable Int64/Float64/boolean, tz-aware datetimes, strings, ...
    if dkind in "iufb":
        # the extension array itself: its isna() / to_numpy() skip the Series layer
        arr_ext = s.array
        n_null = int(np.asarray(arr_ext.isna()).sum())
        out = arr_ext.to_numpy(dtype="float64", na_value=np.nan)
        return out, NUMERIC, n_null
    na = s.isna().to_numpy()
    n_null = int(na.sum())
    if dkind == "M":
        out = s.to_numpy(dtype="datetime64[ns]", na_value=np.datetime64("NaT"))
        return out, DATETIME, n_null
    return np.asarray(s.to_numpy(dtype=object, na_value=None), dtype=object), CATEGORICAL, n_null


class FrameHint:
    """What one monitor side learnt from the last DataFrame it read (a per-call shortcut).

    ``numeric``: its columns were all numpy numeric dtypes, so ``to_numpy()`` is one numeric
    matrix (None: not known yet; False: some were not, and the dtypes are checked each
    time). ``columns`` / ``labels``: its column index and the labels as strings, reused while
    the frames share the index object.
    """

    __slots__ = ("columns", "labels", "numeric")

    def __init__(self) -> None:
        self.numeric: bool | None = None
        self.columns: object = None
        self.labels: tuple[str, ...] = ()


def _frame_labels(x: Any, hint: FrameHint | None) -> tuple[str, ...]:
    cols = x.columns
    if hint is not None and cols is hint.columns:
        return hint.labels
    labels = tuple(str(c) for c in cols.tolist())
    if hint is not None:
        hint.columns, hint.labels = cols, labels
    return labels


def _numeric_layout(x: Any) -> tuple[str, list[int]]:
    """``("numpy", [])`` when every column has a numpy numeric dtype; ``("masked", idx)``
    when every column is numeric and those at ``idx`` are pandas' nullable ones (Int64,
    Float64, boolean); ``("columns", [])`` otherwise."""
    masked: list[int] = []
    for i, dt in enumerate(x.dtypes.tolist()):
        if isinstance(dt, np.dtype):
            if dt.kind not in "fiub":
                return "columns", []
        elif getattr(dt, "kind", "O") in "iufb" and type(dt).__name__ in _MASKED_DTYPES:
            masked.append(i)
        else:
            return "columns", []
    return ("masked", masked) if masked else ("numpy", masked)


#: pandas' nullable numeric dtypes: ``to_numpy(float64, na_value=nan)`` turns pd.NA to NaN
_MASKED_DTYPES = frozenset(
    ("Int8Dtype", "Int16Dtype", "Int32Dtype", "Int64Dtype", "UInt8Dtype", "UInt16Dtype",
     "UInt32Dtype", "UInt64Dtype", "Float32Dtype", "Float64Dtype", "BooleanDtype")
)


def _from_frame(x: Any, hint: FrameHint | None = None) -> Table | None:
    rows, width = x.shape
    if rows == 0 or width == 0:
        count_skipped(SKIP_EMPTY)
        return None
    labels = _frame_labels(x, hint)
    unique = len(set(labels)) == len(labels)
    if unique:
        # numpy-typed numeric columns (float, int, bool; one dtype or several): to_numpy()
        # is one (rows x cols) matrix, a Fortran-ordered view for a single dtype, one
        # interleaving copy in C for several (ints and floats meet in float64). Cheaper
        # than any per-column path by far (pandas costs 5-15 us per column accessed).
        # The hint skips the dtype check (~10 us) while the frames stay numeric.
        if hint is not None and hint.numeric:
            layout, masked = "numpy", list[int]()
        else:
            layout, masked = _numeric_layout(x)
            if hint is not None:
                hint.numeric = layout == "numpy"
        if layout == "numpy":
            m = x.to_numpy()
            if m.ndim == 2 and m.dtype.kind in "fiub":
                return Table(int(rows), labels, matrix=m, named=True)
            # bool and float columns together interleave to object
            layout, masked = _numeric_layout(x)
            if hint is not None:
                hint.numeric = False
        if layout == "masked":
            # nullable numeric columns (and plain ones): one float64 matrix, pd.NA as NaN;
            # a nullable column holds no NaN of its own, so its NaN are its nulls
            m = x.to_numpy(dtype=np.float64, na_value=np.nan)
            counts = np.isnan(m[:, masked]).sum(axis=0).tolist()
            nulls_m = {labels[i]: int(c) for i, c in zip(masked, counts, strict=True)}
            return Table(int(rows), labels, matrix=m, nulls=nulls_m, named=True)
    names: list[str] = []
    cols: dict[str, np.ndarray[Any, Any]] = {}
    kinds: dict[str, str] = {}
    nulls: dict[str, int] = {}
    # items(): ~2x cheaper per column than x.iloc[:, i]
    for name, (_, series) in zip(labels, x.items(), strict=True):
        if name in cols:
            count_skipped(SKIP_NON_TABULAR)  # duplicate column label: keep the first
            continue
        got = _pandas_column(series)
        if got is None:
            count_skipped(SKIP_NON_TABULAR)
            continue
        cols[name], kinds[name], nulls[name] = got
        names.append(name)
    return Table(int(rows), tuple(names), columns=cols, kinds=kinds, nulls=nulls, named=True)


def _from_torch(x: Any, row_vector: bool) -> Table | None:
    device = getattr(x, "device", None)
    if getattr(device, "type", "cpu") != "cpu":
        # .cpu() would synchronise the device stream and block predict: never do it.
        count_skipped(SKIP_GPU)
        return None
    try:
        t = x.detach()
        if str(t.dtype) in ("torch.bfloat16", "torch.complex32"):
            t = t.float()
        arr = t.numpy()
    except Exception:  # noqa: BLE001 - any failure of a foreign tensor is a counted skip
        count_skipped(SKIP_TENSOR)
        return None
    return _from_ndarray(arr, row_vector)


def extract(x: object, row_vector: bool = True, hint: FrameHint | None = None) -> Table | None:
    """Return the batch ``x`` as a :class:`Table`, or ``None`` (skip counted by reason).

    Args:
        x: the predict input or output: numpy arrays (any numeric dtype, structured),
            pandas DataFrame / Series, dicts of arrays or lists, lists of dicts, lists of
            rows, flat lists, scalars, CPU torch tensors.
        row_vector: how to read a 1-D array or flat list: one row of features (inputs) or
            one column of values (outputs).
        hint: what the caller's last DataFrame was like (:class:`FrameHint`, updated here),
            so that a stream of similar frames takes the shortest path.
    """
    if isinstance(x, np.ndarray):
        return _from_ndarray(x, row_vector)
    if x is None:
        count_skipped(SKIP_NONE)
        return None
    if isinstance(x, (bool, int, float, np.generic)) and not isinstance(x, complex):
        if isinstance(x, float) and math.isnan(x):
            return Table(1, ("0",), matrix=np.array([[x]]))
        return _from_ndarray(np.asarray(x).reshape(1, 1), row_vector)
    if isinstance(x, str):
        return _from_sequence([x], row_vector)
    module = type(x).__module__
    if module.startswith("pandas"):
        cls = type(x).__name__
        if cls == "DataFrame":
            return _from_frame(x, hint)
        if cls == "Series":
            got = _pandas_column(x)
            if got is None:
                count_skipped(SKIP_UNSUPPORTED)
                return None
            arr, kind, n_null = got
            if arr.shape[0] == 0:
                count_skipped(SKIP_EMPTY)
                return None
            label = getattr(x, "name", None)
            name = "0" if label is None else str(label)
            return Table(arr.shape[0], (name,), columns={name: arr}, kinds={name: kind},
                         nulls={name: n_null}, named=label is not None)
        count_skipped(SKIP_UNSUPPORTED)
        return None
    if module.startswith("torch"):
        return _from_torch(x, row_vector)
    if module.startswith("scipy.sparse"):
        count_skipped(SKIP_SPARSE)
        return None
    if isinstance(x, Mapping):
        return _from_mapping(x)
    if isinstance(x, (list, tuple)):
        return _from_sequence(x, row_vector)
    count_skipped(SKIP_UNSUPPORTED)
    return None


# --------------------------------------------------------------------------------------
# Lining a table up with a fixed schema
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureSpec:
    """One tracked column: its name and kind (numeric, categorical or datetime)."""

    name: str
    kind: str


def to_float(col: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], int, int]:
    """(float64 values, nulls, non-numeric values) of one column. Nulls and values that are
    not numbers come back as NaN; the two counts say how many of the NaN they are."""
    k = col.dtype.kind
    if k in "fiub":
        return col, 0, 0
    if k == "M":
        nat = np.isnat(col)
        out = col.astype("datetime64[ns]").astype(np.int64).astype(np.float64) / _NS_PER_S
        if nat.any():
            out[nat] = np.nan
        return out, int(nat.sum()), 0
    if k == "m":
        nat = np.isnat(col)
        out = col.astype("timedelta64[ns]").astype(np.int64).astype(np.float64)
        if nat.any():
            out[nat] = np.nan
        return out, int(nat.sum()), 0
    # object / strings: element by element (the slow path by nature)
    out = np.empty(col.shape[0], dtype=np.float64)
    nulls = bad = 0
    for i, v in enumerate(col.tolist()):
        if v is None or (type(v).__name__ in ("NAType", "NaTType")):
            out[i] = np.nan
            nulls += 1
        elif isinstance(v, _NUMBER) and not isinstance(v, _COMPLEX):
            try:
                out[i] = float(v)  # a Decimal beyond 1.8e308 gives inf; sNaN raises
            except (TypeError, ValueError, OverflowError, ArithmeticError):
                out[i] = np.nan
                bad += 1
        else:
            out[i] = np.nan
            bad += 1
    return out, nulls, bad


class ColumnPlan:
    """The fixed schema of one monitor side (inputs or outputs), decided once.

    ``numeric`` and ``categorical`` list the tracked features in schema order. :meth:`align`
    turns a :class:`Table` into what the accumulators take, and reports schema problems.
    """

    __slots__ = ("categorical", "kinds", "names", "numeric", "positions")

    def __init__(self, specs: Sequence[FeatureSpec]) -> None:
        self.names = tuple(s.name for s in specs)
        self.kinds = {s.name: s.kind for s in specs}
        self.numeric = tuple(s.name for s in specs if s.kind != CATEGORICAL)
        self.categorical = tuple(s.name for s in specs if s.kind == CATEGORICAL)
        self.positions = {n: i for i, n in enumerate(self.names)}

    @classmethod
    def from_table(cls, table: Table, names: Sequence[str] | None, max_features: int) -> ColumnPlan:
        """The schema of a first batch (no baseline): its columns, capped at ``max_features``."""
        labels = list(table.names)
        if names is not None and not table.named and len(names) == len(labels):
            labels = list(names)
        pairs = zip(labels, table.names, strict=True)
        specs = [FeatureSpec(lab, table.kind(orig)) for lab, orig in pairs]
        if len(specs) > max_features:
            count_skipped(SKIP_MAX_FEATURES, len(specs) - max_features)
            specs = specs[:max_features]
        return cls(specs)

    def align(
        self, table: Table
    ) -> tuple[
        np.ndarray[Any, Any] | None,
        np.ndarray[Any, Any] | None,
        list[np.ndarray[Any, Any]],
        list[tuple[str, str]],
    ]:
        """Return ``(X, nulls, categorical_values, issues)``.

        ``X`` is a rows x len(numeric) array in schema order (a view of the user's array in
        the common numpy case), ``nulls`` the per-column null counts inside X's NaN (or None),
        ``categorical_values`` one 1-D array per categorical feature, ``issues`` a list of
        ``(check, feature)`` schema problems (missing / unexpected feature, kind change).
        """
        issues: list[tuple[str, str]] = []
        n_num = len(self.numeric)
        if table.matrix is not None and not self.categorical:
            m = table.matrix
            width = m.shape[1]
            if (
                width == n_num
                and m.dtype.kind != "M"
                and (not table.named or table.names == self.numeric)
            ):
                if table.nulls:  # nulls (pd.NA) that the matrix holds as NaN
                    got = table.nulls
                    counts = [got.get(n, 0) for n in table.names]
                    return m, np.array(counts, dtype=np.int64), [], issues
                return m, None, [], issues
        rows = table.rows
        X = np.empty((rows, n_num), dtype=np.float64) if n_num else None
        nulls = np.zeros(n_num, dtype=np.int64) if n_num else None
        cats: list[np.ndarray[Any, Any]] = []
        positional = not table.named
        where = {n: i for i, n in enumerate(table.names)}  # column name -> position
        present: set[str] = set()
        for j, name in enumerate(self.numeric):
            src = self._source(table, name, positional, where)
            if src is None:
                issues.append((A.CHECK_SCHEMA_MISSING_FEATURE, name))
                assert X is not None
                assert nulls is not None
                X[:, j] = np.nan
                nulls[j] = rows
                continue
            present.add(src)
            col = table.column(src, where[src])
            kind = table.kind(src)
            if kind == CATEGORICAL and self.kinds[name] != CATEGORICAL:
                issues.append((A.CHECK_SCHEMA_DTYPE_CHANGE, name))
            vals, n_null, bad = to_float(col)
            if bad:
                count_skipped(SKIP_NON_NUMERIC, bad)
            assert X is not None
            assert nulls is not None
            X[:, j] = vals
            nulls[j] = n_null + bad + (table.nulls or {}).get(src, 0) * (col.dtype.kind == "f")
        for name in self.categorical:
            src = self._source(table, name, positional, where)
            if src is None:
                issues.append((A.CHECK_SCHEMA_MISSING_FEATURE, name))
                cats.append(np.full(rows, None, dtype=object))
                continue
            present.add(src)
            col = table.column(src, where[src])
            if table.kind(src) != CATEGORICAL and col.dtype.kind not in "iub":
                # integer / bool labels are categories; floats or datetimes are not
                issues.append((A.CHECK_SCHEMA_DTYPE_CHANGE, name))
            cats.append(col)
        if len(present) < len(table.names):
            for src in table.names:
                if src not in present:
                    issues.append((A.CHECK_SCHEMA_UNEXPECTED_FEATURE, "" if positional else src))
                    if positional:
                        break  # one issue for "more columns than the schema" is enough
        return X, nulls, cats, issues

    def _source(
        self, table: Table, name: str, positional: bool, where: dict[str, int]
    ) -> str | None:
        if positional:
            pos = self.positions[name]
            return table.names[pos] if pos < len(table.names) else None
        return name if name in where else None
