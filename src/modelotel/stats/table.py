"""A batch seen as named columns: what the reading stage hands to the schema stage.

Example:
    >>> import numpy as np
    >>> from modelotel.stats.table import NUMERIC, Table
    >>> t = Table(2, ("a", "b"), matrix=np.zeros((2, 2)), named=True)
    >>> t.kind("a") == NUMERIC, t.column("b", 1).tolist()
    (True, [0.0, 0.0])

A :class:`Table` is either one homogeneous numeric matrix (often a view of the user's
array: nothing is copied) or one 1-D array per column with its kind. Readers of each input
kind (:mod:`.read`, :mod:`.frames`) build it; :class:`~modelotel.stats.schema.ColumnPlan`
lines it up with a model's fixed schema.
"""

from __future__ import annotations

import decimal
import numbers
from typing import Any

import numpy as np

#: Column kinds. ``bool`` and datetimes are numeric (0/1, seconds since the epoch).
NUMERIC = "numeric"
CATEGORICAL = "categorical"
DATETIME = "datetime"

Array = np.ndarray[Any, Any]

#: Numbers for the statistics: Python's and numpy's, and ``decimal.Decimal`` /
#: ``fractions.Fraction`` (``numbers.Real``), which ``float()`` converts.
NUMBER_TYPES = (int, float, np.number, bool, numbers.Real, decimal.Decimal)
#: Not numbers for the statistics: ``float()`` of a numpy complex scalar warns (ComplexWarning,
#: an exception under ``-W error``) and drops the imaginary part.
COMPLEX_TYPES = (complex, np.complexfloating)


class Table:
    """A batch seen as named columns. Either ``matrix`` (one homogeneous numeric 2-D array,
    rows x len(names), possibly a view of the user's array) or ``columns`` (name -> 1-D array)
    is set. ``nulls`` counts, per column name, values that were null (None, pd.NA, NaT) and
    now appear as NaN in a float column."""

    __slots__ = ("block", "block_names", "columns", "kinds", "matrix", "named", "names",
                 "nulls", "rows")

    #: with ``columns``: their float64 numeric columns as one rows x k array (a view), and
    #: their names in its order, when one block of a DataFrame holds them all
    block: Array | None
    block_names: tuple[str, ...]

    def __init__(
        self,
        rows: int,
        names: tuple[str, ...],
        *,
        matrix: Array | None = None,
        columns: dict[str, Array] | None = None,
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
        self.block = None
        self.block_names = ()

    def kind(self, name: str) -> str:
        if self.matrix is not None:
            return DATETIME if self.matrix.dtype.kind == "M" else NUMERIC
        assert self.kinds is not None
        return self.kinds[name]

    def column(self, name: str, index: int) -> Array:
        if self.matrix is not None:
            return self.matrix[:, index]
        assert self.columns is not None
        return self.columns[name]


#: positional names by width, made on first use (building them all at import would cost)
_POSITIONAL: dict[int, tuple[str, ...]] = {}


def positional(n: int) -> tuple[str, ...]:
    """("0", "1", ...): kept for the common widths (this runs on every call)."""
    names = _POSITIONAL.get(n)
    if names is None:
        names = tuple(str(i) for i in range(n))
        if n <= 4096:  # embeddings are wider than 256 and come on every call
            _POSITIONAL[n] = names
    return names


def array_kind(a: Array) -> str | None:
    """The column kind of an array's dtype (None: not a column the statistics read)."""
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


__all__ = [
    "CATEGORICAL",
    "COMPLEX_TYPES",
    "DATETIME",
    "NUMBER_TYPES",
    "NUMERIC",
    "Table",
    "array_kind",
    "positional",
]
