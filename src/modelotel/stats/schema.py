"""A model's fixed schema (one per side: inputs, outputs) and lining a batch up with it.

Example:
    >>> import numpy as np
    >>> from modelotel.stats.read import extract
    >>> from modelotel.stats.schema import NUMERIC, ColumnPlan, FeatureSpec
    >>> plan = ColumnPlan([FeatureSpec("a", NUMERIC), FeatureSpec("b", NUMERIC)])
    >>> X, nulls, cats, issues = plan.align(extract(np.ones((4, 3))))
    >>> X.shape, issues
    ((4, 2), [('schema_unexpected_feature', '2')])

The schema is decided once: from the training baseline, or from the first batch
(:meth:`ColumnPlan.from_table`; model outputs with :func:`output_specs`). :meth:`ColumnPlan.align`
then turns each :class:`~.table.Table` into what the accumulators take (one 2-D numeric
block in schema order, a view of the user's array in the common case, plus one value array
per categorical column) and returns the schema problems it found (missing or unexpected
feature, a column whose kind changed) as ``(check, feature)`` pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelotel import attributes as A  # noqa: N812 - the project's alias for names
from modelotel.stats.reasons import SKIP_MAX_FEATURES, SKIP_NON_NUMERIC, add
from modelotel.stats.table import (
    CATEGORICAL,
    COMPLEX_TYPES,
    DATETIME,
    NUMBER_TYPES,
    NUMERIC,
    Table,
)

_NS_PER_S = 1e9


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
        elif isinstance(v, NUMBER_TYPES) and not isinstance(v, COMPLEX_TYPES):
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
    def from_table(
        cls,
        table: Table,
        names: Sequence[str] | None,
        max_features: int,
        skipped: dict[str, int] | None = None,
    ) -> ColumnPlan:
        """The schema of a first batch (no baseline): its columns, capped at ``max_features``
        (the columns cut are added to ``skipped`` as ``stats.max_features``)."""
        labels = list(table.names)
        if names is not None and not table.named and len(names) == len(labels):
            labels = list(names)
        pairs = zip(labels, table.names, strict=True)
        specs = [FeatureSpec(lab, table.kind(orig)) for lab, orig in pairs]
        if len(specs) > max_features:
            if skipped is not None:
                add(skipped, SKIP_MAX_FEATURES, len(specs) - max_features)
            specs = specs[:max_features]
        return cls(specs)

    def align(
        self, table: Table, skipped: dict[str, int] | None = None
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
        Values of a numeric column that are no numbers become nulls and are added to
        ``skipped`` as ``stats.non_numeric_value``.
        """
        issues: list[tuple[str, str]] = []
        n_num = len(self.numeric)
        if table.matrix is not None and not self.categorical:
            m = table.matrix
            width = m.shape[1]
            if (
                width == n_num
                and m.dtype.kind not in "Mm"  # datetimes, timedeltas: to_float (NaT is null)
                and (not table.named or table.names == self.numeric)
            ):
                if table.nulls:  # nulls (pd.NA) that the matrix holds as NaN
                    got = table.nulls
                    counts = [got.get(n, 0) for n in table.names]
                    return m, np.array(counts, dtype=np.int64), [], issues
                return m, None, [], issues
        block = table.block
        if (
            block is not None
            and table.block_names == self.numeric
            and len(table.names) == n_num + len(self.categorical)
        ):
            # a DataFrame's float block holds the numeric features, in schema order: take
            # it whole (a view) and the categorical columns as they are
            block_cols = table.columns
            assert block_cols is not None
            block_kinds = table.kinds
            assert block_kinds is not None
            if all(n in block_cols and block_kinds[n] == CATEGORICAL for n in self.categorical):
                return block, None, [block_cols[n] for n in self.categorical], issues
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
            if bad and skipped is not None:
                add(skipped, SKIP_NON_NUMERIC, bad)
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
                    # unnamed columns are named by position ("2"): the first one beyond
                    # the schema stands for "more columns than the schema"
                    issues.append((A.CHECK_SCHEMA_UNEXPECTED_FEATURE, src))
                    if positional:
                        break
        return X, nulls, cats, issues

    def _source(
        self, table: Table, name: str, positional: bool, where: dict[str, int]
    ) -> str | None:
        if positional:
            pos = self.positions[name]
            return table.names[pos] if pos < len(table.names) else None
        return name if name in where else None


def output_specs(
    table: Table, max_features: int, skipped: dict[str, int] | None = None
) -> list[FeatureSpec]:
    """Outputs: floats are scores (numeric); ints, bools and strings are class labels."""
    plan = ColumnPlan.from_table(table, None, max_features, skipped)
    specs = []
    for name in plan.names:
        kind = plan.kinds[name]
        col = table.column(name, table.names.index(name))
        if col.dtype.kind in "iub" or (col.dtype.kind == "O" and _looks_like_labels(col)):
            kind = CATEGORICAL
        specs.append(FeatureSpec(name, kind))
    return specs


def _looks_like_labels(col: np.ndarray[Any, Any]) -> bool:
    labels = (int, bool, str, np.integer, np.bool_)
    return all(v is None or isinstance(v, labels) for v in col.tolist())


__all__ = [
    "CATEGORICAL",
    "DATETIME",
    "NUMERIC",
    "ColumnPlan",
    "FeatureSpec",
    "output_specs",
    "to_float",
]
