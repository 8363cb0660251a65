"""Embeddings and other wide unnamed numeric batches: a fixed-size summary instead of one
feature per dimension.

Example:
    >>> import numpy as np
    >>> from modelotel.stats.table import Table
    >>> from modelotel.stats.wide import WideSummary
    >>> X = np.random.default_rng(0).normal(size=(100, 384))
    >>> w = WideSummary.fit(X)
    >>> t = w.apply(Table(100, (), matrix=X))
    >>> t.names[:3]
    ('embedding.norm', 'embedding.centroid_distance', 'embedding.proj.0')
    >>> WideSummary.from_json(w.to_json()).apply(Table(100, (), matrix=X)).matrix.shape
    (100, 6)

A batch of unnamed numeric columns wider than :data:`WIDE` (a 384-dimension embedding, a
wide vector output) would give hundreds of per-dimension series whose one-by-one drift
means little, and cost per call in proportion to the width. It is read instead as a few
numeric features per row, which get the bins, drift and checks of any feature:

- ``embedding.norm``: the row's L2 norm;
- ``embedding.centroid_distance``: L2 distance to the centroid (the baseline's mean row;
  without a baseline, the mean row of the first batch);
- ``embedding.proj.0`` .. ``proj.{k-1}``: the row projected on ``k`` fixed random unit
  directions (Gaussian, seeded), stored with the centroid in the baseline so that training
  and serving project alike.

The number of features, hence of metric points, does not depend on the width. Named columns
(a DataFrame, dict keys, ``feature_names=``) stay per column: they are tabular features.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelotel.stats.table import Table

#: Unnamed numeric batches wider than this are summarized (0: never).
WIDE = 64
#: Random projections per summary.
PROJECTIONS = 4
#: The seed of the projections (any fixed value: the matrix is stored in the baseline).
SEED = 20_261_204
PREFIX = "embedding"


def _einsum_row_dots(X: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    dots: np.ndarray[Any, Any] = np.einsum("ij,ij->i", X, X)
    return dots


def _vecdot_row_dots(X: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.vecdot(X, X)  # type: ignore[attr-defined,no-any-return,unused-ignore]


#: each row's dot product with itself: numpy >= 2.0's vecdot is about twice as fast as
#: einsum on an embedding batch
_row_dots = _vecdot_row_dots if hasattr(np, "vecdot") else _einsum_row_dots

NAMES = (f"{PREFIX}.norm", f"{PREFIX}.centroid_distance",
         *(f"{PREFIX}.proj.{i}" for i in range(PROJECTIONS)))


def is_wide(table: Table, threshold: int = WIDE) -> bool:
    """True when ``table`` is one unnamed numeric matrix wider than ``threshold``."""
    m = table.matrix
    return (bool(threshold) and m is not None and not table.named and m.ndim == 2
            and m.shape[1] > threshold and m.dtype.kind in "fiub")


class WideSummary:
    """The centroid and projections of one side's wide batches (see the module doc)."""

    __slots__ = ("_basis", "_cc", "centroid", "projections", "width")

    def __init__(self, centroid: np.ndarray[Any, Any], projections: np.ndarray[Any, Any]) -> None:
        self.centroid = centroid
        self.projections = projections
        self.width = centroid.shape[0]
        self._basis = np.ascontiguousarray(np.column_stack([centroid, projections]))
        self._cc = float(centroid @ centroid)

    @classmethod
    def fit(cls, X: np.ndarray[Any, Any], seed: int = SEED) -> WideSummary:
        """A summary centred on the mean finite row of ``X`` (rows x width)."""
        Xf = np.asarray(X, dtype=np.float64)
        with np.errstate(all="ignore"):
            finite = np.isfinite(Xf).all(axis=1)
            centroid = Xf[finite].mean(axis=0) if finite.any() else np.zeros(Xf.shape[1])
        d = Xf.shape[1]
        r = np.random.default_rng(seed).standard_normal((d, PROJECTIONS))
        r /= np.linalg.norm(r, axis=0)  # unit directions: projections on the rows' scale
        return cls(centroid, r)

    def apply(self, table: Table) -> Table:
        """The summary features of a wide table's rows (NaN rows where the width differs:
        a schema problem the caller reports)."""
        assert table.matrix is not None
        X = table.matrix
        n = X.shape[0]
        out = np.empty((n, len(NAMES)), dtype=np.float64)
        if X.shape[1] != self.width:
            out[:] = np.nan
            return Table(n, NAMES, matrix=out, named=True)
        with np.errstate(all="ignore"):
            self.summarize(X, out)
        return Table(n, NAMES, matrix=out, named=True)

    def summarize(self, X: np.ndarray[Any, Any],
                  out: np.ndarray[Any, Any] | None = None) -> np.ndarray[Any, Any]:
        """The ``rows x len(NAMES)`` float64 summary of ``X`` (rows x :attr:`width`), in
        ``out`` when given. May warn on infinities: the caller holds ``np.errstate``."""
        if out is None:
            out = np.empty((X.shape[0], len(NAMES)), dtype=np.float64)
        Xf = X if X.dtype == np.float64 else X.astype(np.float64)
        # one product with [centroid, projections]: |x - c|^2 = |x|^2 - 2 x.c + |c|^2
        # (no rows x width temporary for x - c; the cost is that of the projections)
        out[:, 1:] = Xf @ self._basis  # (a strided out= takes numpy's slow path)
        sq = _row_dots(Xf)
        out[:, 0] = np.sqrt(sq)
        out[:, 1] = np.sqrt(np.maximum(sq - 2.0 * out[:, 1] + self._cc, 0.0))
        return out

    def hot(self, x: Any, max_batch: int) -> Any:
        """``x`` as its summary (what :meth:`apply` makes of its rows) when it is a numeric
        batch of this summary's width and at most ``max_batch`` rows; else ``x`` as it is."""
        if (
            type(x) is np.ndarray
            and x.ndim == 2
            and x.shape[1] == self.width
            and x.dtype.kind in "fiub"
            and x.dtype.itemsize <= 8
            and 0 < x.shape[0] <= max_batch
        ):
            with np.errstate(all="ignore"):
                return self.summarize(x)
        return x

    def to_json(self) -> dict[str, Any]:
        return {"width": self.width, "centroid": self.centroid.tolist(),
                "projections": self.projections.tolist()}

    @classmethod
    def from_json(cls, d: Any) -> WideSummary:
        """From :meth:`to_json` (raises ValueError / KeyError / TypeError when malformed)."""
        centroid = np.asarray(d["centroid"], dtype=np.float64)
        projections = np.asarray(d["projections"], dtype=np.float64)
        if centroid.ndim != 1 or projections.shape != (centroid.shape[0], PROJECTIONS):
            raise ValueError("wide summary: the centroid and projections do not agree")
        return cls(centroid, projections)


__all__ = ["NAMES", "PROJECTIONS", "WIDE", "WideSummary", "is_wide"]
