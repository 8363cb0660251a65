"""Read the data containers of ML libraries: an XGBoost ``DMatrix``, a CatBoost ``Pool``.

Example:
    >>> import numpy as np
    >>> import xgboost as xgb
    >>> from modelotel.stats.containers import read_container
    >>> d = xgb.DMatrix(np.array([[1.0, np.nan], [0.0, 2.0]]), feature_names=["a", "b"])
    >>> t = read_container(d, {})
    >>> t.names, t.matrix.tolist()
    (('a', 'b'), [[1.0, nan], [0.0, 2.0]])

Both are recognised by the module and name of their class (nothing is imported). A
``DMatrix`` keeps its values in xgboost's own sparse storage, which xgboost >= 2.0 hands out
as a SciPy CSR matrix (``DMatrix.get_data()``): an entry absent from it is a *missing*
value to xgboost (``missing=`` at construction, NaN by default), so it reads as NaN, not
as 0; names come from ``feature_names`` and columns of type ``"c"`` (categorical codes)
are read as categories. A ``Pool`` of numeric features hands them out with
``get_features()``. Rows are sampled *before* they are made dense (``sample``), so a large
container costs about ``row_cap`` rows. What cannot be read (an xgboost without
``get_data``, a ``Pool`` with categorical or text features) is a counted skip
(``stats.unreadable_framework_data``), never an exception.

A LightGBM ``Dataset`` is not read: ``lightgbm.Booster.predict`` refuses one (it takes the
raw data, which the other readers handle), so a served batch is never a ``Dataset``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from modelotel.stats.reasons import SKIP_EMPTY, SKIP_FRAMEWORK_DATA, add
from modelotel.stats.table import CATEGORICAL, NUMERIC, Table, positional

#: (top-level module, class names in the MRO) of the containers read here.
_DMATRIX = ("xgboost", frozenset({"DMatrix"}))
_POOL = ("catboost", frozenset({"Pool"}))


def _is(x: object, which: tuple[str, frozenset[str]]) -> bool:
    top, names = which
    if not type(x).__module__.startswith(top):
        return False
    return any(c.__name__ in names for c in type(x).__mro__)


def is_container(x: object) -> bool:
    """Whether ``x`` is a ``DMatrix`` or a ``Pool`` (by its class; nothing imported)."""
    return _is(x, _DMATRIX) or _is(x, _POOL)


def _names(found: Any, width: int) -> tuple[tuple[str, ...], bool]:
    """(column names, whether they came from the data)."""
    if found is not None:
        names = tuple(str(n) for n in found)
        if len(names) == width and all(names) and len(set(names)) == width:
            return names, True
    return positional(width), False


def _dense(csr: Any, sample: slice | None) -> np.ndarray[Any, Any]:
    """The rows of a CSR matrix as a float64 array, absent entries NaN."""
    if sample is not None:
        csr = csr[sample]
    rows, cols = csr.shape
    indptr = np.asarray(csr.indptr)
    out = np.full((rows, cols), np.nan)
    row_of = np.repeat(np.arange(rows), np.diff(indptr))
    out[row_of, np.asarray(csr.indices)] = np.asarray(csr.data, dtype=np.float64)
    return out


_Read = tuple[Table, int, slice | None]  # (table, rows before sampling, the sample)


def _dmatrix(x: Any, sample: Callable[[int], slice | None] | None) -> _Read:
    get_data = getattr(x, "get_data", None)
    if not callable(get_data):
        raise LookupError("DMatrix.get_data() is missing (xgboost < 2.0)")
    csr = get_data()
    rows, cols = (int(n) for n in csr.shape)
    pre = sample(rows) if sample is not None and rows else None
    dense = _dense(csr, pre)
    names, named = _names(x.feature_names, cols)
    types = x.feature_types
    if not types or "c" not in types:
        return Table(dense.shape[0], names, matrix=dense, named=named), rows, pre
    columns: dict[str, np.ndarray[Any, Any]] = {}
    kinds: dict[str, str] = {}
    nulls: dict[str, int] = {}
    for j, name in enumerate(names):
        col = dense[:, j]
        if types[j] == "c":  # category codes: counted as categories, a NaN code is a null
            missing = np.isnan(col)
            codes = np.empty(col.shape[0], dtype=object)
            codes[:] = [None if m else int(v) for v, m in zip(col.tolist(), missing, strict=True)]
            columns[name], kinds[name], nulls[name] = codes, CATEGORICAL, int(missing.sum())
        else:
            columns[name], kinds[name], nulls[name] = col, NUMERIC, 0
    return Table(dense.shape[0], names, columns=columns, kinds=kinds, nulls=nulls,
                 named=named), rows, pre


def _pool(x: Any, sample: Callable[[int], slice | None] | None) -> _Read:
    features = np.asarray(x.get_features(), dtype=np.float64)
    if features.ndim != 2:
        raise LookupError("Pool.get_features() is not a 2-D array")
    rows = features.shape[0]
    pre = sample(rows) if sample is not None and rows else None
    if pre is not None:
        features = features[pre]
    names, named = _names(x.get_feature_names(), features.shape[1])
    return Table(features.shape[0], names, matrix=features, named=named), rows, pre


def read_container(
    x: Any,
    skipped: dict[str, int],
    sample: Callable[[int], slice | None] | None = None,
    sampled: list[tuple[int, slice]] | None = None,
) -> Table | None:
    """A ``DMatrix`` or ``Pool`` as a :class:`Table` of its values, or ``None`` (skipped).

    Args:
        x: the container (:func:`is_container` is true of it).
        skipped: reason -> count, added to when ``x`` cannot be read.
        sample: rows -> the rows to keep (None: all), applied before the values are made
            dense.
        sampled: ``(rows before, the sample)`` is appended here when ``sample`` kept a part.
    """
    try:
        table, rows, pre = (_dmatrix if _is(x, _DMATRIX) else _pool)(x, sample)
    except Exception:  # noqa: BLE001 - the library refused: a counted skip, never raised
        add(skipped, SKIP_FRAMEWORK_DATA)
        return None
    if table.rows == 0 or not table.names:
        add(skipped, SKIP_EMPTY)
        return None
    if pre is not None and sampled is not None:
        sampled.append((rows, pre))
    return table


__all__ = ["is_container", "read_container"]
