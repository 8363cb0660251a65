"""Window accumulators: mergeable per-column statistics, vectorized across all columns.

Example:
    >>> import numpy as np
    >>> from modelotel.stats.accumulate import NumericAccumulator
    >>> acc = NumericAccumulator(2, edges=[np.array([0.0, 1.0, 2.0]), np.array([5.0, 5.0])])
    >>> acc.add(np.array([[0.5, 5.0], [1.5, np.nan], [9.0, 5.0]]))
    >>> acc.count.tolist(), acc.nan.tolist()
    ([3, 2], [0, 1])
    >>> acc.bin_counts(0).tolist()          # below, [0, 1), [1, 2], above
    [0, 1, 1, 1]

A :class:`NumericAccumulator` holds, per column: the count of finite values, missing values
split into null / NaN / inf, mean and M2 (Chan et al.'s parallel merge, so two windows or two
halves of a batch merge exactly as if one had seen all the data), min, max, and the counts on
fixed bin edges (a training baseline's quantiles) plus below- and above-range. Memory is
O(columns x bins) and never grows with traffic.

Binning compares every value with every edge (one vectorized ``>=`` per edge across all
columns at once) and sums the masks: exact, and on this kind of data several times faster
than ``searchsorted`` or a per-column ``np.histogram``. Interior bins are ``[e_i, e_i+1)``;
the last one is closed, ``[e_k-1, e_k]``, so a training maximum falls inside the range.
"""

from __future__ import annotations

# _count_elements: Counter's own counting loop (C in CPython, Python elsewhere); Counter(items)
# runs a Mapping check before it, ~3 us inside a call, where that code is cold
from collections import Counter, _count_elements  # type: ignore[attr-defined]
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from modelotel.stats import kernel

F64 = np.float64
#: A batch mean with mean**2 > _COND * variance loses more than 4 of 16 digits in the
#: one-pass formula; such columns are recomputed with two passes.
_COND = 1e4
#: Row-layout batches with at least this many rows are binned on a columns-first copy.
_TRANSPOSE_ROWS = 64

Array = np.ndarray[Any, Any]
_NA_TYPES = ("NAType", "NaTType")
#: Values the categorical code cache may keep as keys (class labels, short categories).
_CACHED_TYPES = frozenset((str, int, bool, float))
_CACHED_STR = 256


def thresholds_from_edges(edges: Sequence[Array], width: int | None = None) -> Array:
    """The ``(K, d)`` array of ``>=`` thresholds for a list of per-column edges.

    Column j with edges ``e_0 <= ... <= e_k`` gets ``e_0 .. e_k-1, nextafter(e_k, inf)``
    (so the last bin is closed) padded with +inf up to K rows (a finite value is never
    ``>= inf``, so padding rows count nothing).
    """
    k_max = max((len(e) for e in edges), default=0) if width is None else width
    t = np.full((k_max, len(edges)), np.inf, dtype=F64)
    for j, e in enumerate(edges):
        if len(e):
            t[: len(e), j] = e
            t[len(e) - 1, j] = np.nextafter(F64(e[-1]), np.inf)
    return t


class NumericAccumulator:
    """Mergeable statistics of ``d`` numeric columns (see the module docstring)."""

    __slots__ = (
        "_n_edges",
        "binned",
        "count",
        "d",
        "ge",
        "inf",
        "m2",
        "max",
        "mean",
        "min",
        "nan",
        "null",
        "thresholds",
    )

    def __init__(self, d: int, edges: Sequence[Array] | None = None,
                 thresholds: Array | None = None) -> None:
        self.d = d
        if thresholds is None:
            thresholds = thresholds_from_edges(edges) if edges else np.empty((0, d), dtype=F64)
        self.thresholds = thresholds
        self._n_edges = (
            np.array([len(e) for e in edges], dtype=np.int64)
            if edges
            else np.isfinite(thresholds).sum(axis=0).astype(np.int64)
        )
        self.count = np.zeros(d, dtype=np.int64)
        self.null = np.zeros(d, dtype=np.int64)
        self.nan = np.zeros(d, dtype=np.int64)
        self.inf = np.zeros(d, dtype=np.int64)
        self.mean = np.zeros(d, dtype=F64)
        self.m2 = np.zeros(d, dtype=F64)
        self.min = np.full(d, np.inf, dtype=F64)
        self.max = np.full(d, -np.inf, dtype=F64)
        self.ge = np.zeros(thresholds.shape, dtype=np.int64)
        self.binned = np.zeros(d, dtype=np.int64)

    # ---- building ------------------------------------------------------------------
    def empty_like(self) -> NumericAccumulator:
        """A fresh, empty accumulator with the same columns and bin edges."""
        new = NumericAccumulator.__new__(NumericAccumulator)
        new.d = self.d
        new.thresholds = self.thresholds
        new._n_edges = self._n_edges
        new.count = np.zeros_like(self.count)
        new.null = np.zeros_like(self.null)
        new.nan = np.zeros_like(self.nan)
        new.inf = np.zeros_like(self.inf)
        new.mean = np.zeros_like(self.mean)
        new.m2 = np.zeros_like(self.m2)
        new.min = np.full_like(self.min, np.inf)
        new.max = np.full_like(self.max, -np.inf)
        new.ge = np.zeros_like(self.ge)
        new.binned = np.zeros_like(self.binned)
        return new

    def add(
        self,
        X: Array,
        nulls: Array | None = None,
        bin_rows: Array | slice | None = None,
        columns_first: bool = False,
    ) -> None:
        """Add a batch (any real dtype; not modified, not kept).

        Args:
            X: the batch, ``rows x d`` (or ``d x rows`` with ``columns_first``). NaN in it are
                counted as NaN, except ``nulls[j]`` of them per column which were nulls
                (None, pd.NA, NaT) before conversion.
            nulls: per-column null counts inside X's NaN, or None.
            bin_rows: a row selection (uniform sample) for the binned counts, or None for all.
            columns_first: X is laid out ``d x rows`` (one contiguous row per column: the
                monitor's row buffer). Every reduction then runs along contiguous memory.
        """
        a = 1 if columns_first else 0
        n = X.shape[a]
        if n == 0:
            return
        with np.errstate(all="ignore"):  # the casts too: a longdouble beyond 1.8e308 overflows
            if not a and n >= _TRANSPOSE_ROWS and self.ge.shape[0]:
                # binning compares every value with every edge; on a columns-first copy each
                # compare is a contiguous row against one scalar, ~3x faster than a row layout
                # against a vector of edges, which more than pays for the copy
                X = np.ascontiguousarray(X.T, dtype=F64)
                a = 1
            elif X.dtype != F64:
                X = X.astype(F64)
            s = X.sum(axis=a)
            if np.isfinite(s).all():
                self._add_clean(X, n, s, bin_rows, a)
            else:
                self._add_dirty(X, n, bin_rows, a)
        if nulls is not None:
            self.null += nulls
            self.nan -= nulls

    def add_rows(self, X: Array, n: int, nulls: Array | None = None) -> None:
        """Add the first ``n`` rows of ``X``, a float64 ``rows x d`` buffer: C-contiguous, or
        with contiguous rows spaced evenly (a row sample of one, read in place).

        The same as ``add(X[:n], nulls)``, in one call of the compiled kernel when there is
        one (:mod:`modelotel.stats.kernel`).
        """
        kern = kernel.accumulate
        if kern is None or n <= 0:
            if n > 0:
                self.add(X[:n], nulls)
            return
        d = self.d
        count = np.empty(d, dtype=np.int64)
        mean_b = np.empty(d, dtype=F64)
        m2_b = np.empty(d, dtype=F64)
        t = self.thresholds
        kern(X, n, d, t, t.shape[0], count, mean_b, m2_b, self.nan, self.inf, self.min,
             self.max, self.ge)
        with np.errstate(all="ignore"):  # inf - inf, 1e308 ** 2 in the merge
            self._merge_moments(count, mean_b, m2_b)
        if t.shape[0]:
            self.binned += count
        if nulls is not None:
            self.null += nulls
            self.nan -= nulls

    def _add_clean(
        self, X: Array, n: int, s: Array, bin_rows: Array | slice | None, a: int
    ) -> None:
        mean_b = s / n
        ss = np.einsum("ij,ij->i" if a else "ij,ij->j", X, X)
        m2_b = ss - s * mean_b
        bad = (mean_b * mean_b > _COND * (m2_b / n)) | (m2_b < 0)
        if bad.any():
            cols = np.flatnonzero(bad)
            if a:
                D = X[cols] - mean_b[cols][:, None]
                m2_b[cols] = np.einsum("ij,ij->i", D, D)
            else:
                D = X[:, cols] - mean_b[cols]
                m2_b[cols] = np.einsum("ij,ij->j", D, D)
        counts = np.full(self.d, n, dtype=np.int64)
        self._merge_moments(counts, mean_b, m2_b)
        np.minimum(self.min, X.min(axis=a), out=self.min)
        np.maximum(self.max, X.max(axis=a), out=self.max)
        if self.ge.shape[0]:
            B = X if bin_rows is None else (X[:, bin_rows] if a else X[bin_rows])
            self._bin(B, a)
            self.binned += B.shape[a]

    def _add_dirty(self, X: Array, n: int, bin_rows: Array | slice | None, a: int) -> None:
        # fmin / fmax skip NaN: they give the min / max, and show whether any inf is there
        lo = np.fmin.reduce(X, axis=a)
        hi = np.fmax.reduce(X, axis=a)
        if not (np.isinf(lo).any() or np.isinf(hi).any()):
            self._add_nan_only(X, n, bin_rows, a, lo, hi)
            return
        finite = np.isfinite(X)
        cnt = finite.sum(axis=a).astype(np.int64)
        n_nan = np.isnan(X).sum(axis=a).astype(np.int64)
        self.nan += n_nan
        self.inf += n - cnt - n_nan
        W = np.where(finite, X, 0.0)
        s = W.sum(axis=a)
        mean_b = s / np.maximum(cnt, 1)
        D = np.where(finite, X - (mean_b[:, None] if a else mean_b), 0.0)
        m2_b = np.einsum("ij,ij->i" if a else "ij,ij->j", D, D)
        self._merge_moments(cnt, np.where(cnt > 0, mean_b, 0.0), m2_b)
        np.minimum(self.min, np.where(finite, X, np.inf).min(axis=a), out=self.min)
        np.copyto(W, X)
        W[~finite] = -np.inf  # never >= a finite threshold: outside every bin
        np.maximum(self.max, W.max(axis=a), out=self.max)
        if self.ge.shape[0]:
            if bin_rows is None:
                self._bin(W, a)
                self.binned += cnt
            else:
                Wb = W[:, bin_rows] if a else W[bin_rows]
                self._bin(Wb, a)
                self.binned += np.isfinite(Wb).sum(axis=a)

    def _add_nan_only(
        self, X: Array, n: int, bin_rows: Array | slice | None, a: int, lo: Array, hi: Array
    ) -> None:
        """The common dirty case: NaN but no inf (about half the cost of the general one)."""
        finite = np.isfinite(X)
        cnt = finite.sum(axis=a).astype(np.int64)
        self.nan += n - cnt
        W = np.where(finite, X, 0.0)
        s = W.sum(axis=a)
        safe = np.maximum(cnt, 1)
        mean_b = np.where(cnt > 0, s / safe, 0.0)
        ss = np.einsum("ij,ij->i" if a else "ij,ij->j", W, W)
        m2_b = ss - s * mean_b
        bad = (mean_b * mean_b > _COND * (m2_b / safe)) | (m2_b < 0)
        if bad.any():  # ill-conditioned columns: exact two-pass on their finite values
            for j in np.flatnonzero(bad):
                col = X[j] if a else X[:, j]
                v = col[np.isfinite(col)]
                m2_b[j] = float(np.sum((v - v.mean()) ** 2)) if v.size else 0.0
        self._merge_moments(cnt, mean_b, m2_b)
        has = cnt > 0  # all-NaN columns leave min / max alone
        np.minimum(self.min, np.where(has, lo, np.inf), out=self.min)
        np.maximum(self.max, np.where(has, hi, -np.inf), out=self.max)
        if self.ge.shape[0]:
            # NaN is never >= a threshold, so X bins as it is; no inf here to exclude
            if bin_rows is None:
                self._bin(X, a)
                self.binned += cnt
            else:
                Xb = X[:, bin_rows] if a else X[bin_rows]
                self._bin(Xb, a)
                self.binned += np.isfinite(Xb).sum(axis=a)

    def _bin(self, B: Array, a: int) -> None:
        t = self.thresholds
        mask = np.empty(B.shape, dtype=np.bool_)
        u8 = mask.view(np.uint8)
        if not a:
            ge = self.ge
            for k in range(t.shape[0]):
                np.greater_equal(B, t[k], out=mask)
                ge[k] += np.add.reduce(u8, axis=0, dtype=np.int64)
            return
        # columns first: compare each contiguous column row with a scalar (the fast SIMD
        # loop) and count each mask row in the narrowest integer that cannot overflow (a
        # uint16 sum along a contiguous row is ~4x faster than into int64, and much faster
        # than a per-value bin index + bincount, which needs an intp copy of the batch)
        n = B.shape[1]
        acc = np.uint16 if n < 1 << 16 else np.uint32 if n < 1 << 32 else np.int64
        ge = self.ge
        # numpy's iterator packs several rows into one buffer when a row is at most half its
        # buffer (8192 values): the row-against-scalar compare then runs ~3.5x slower (3276
        # rows x 20: 15 -> 4.4 us per compare). A buffer no larger than a row avoids that.
        bufsize = n // 16 * 16  # numpy wants a multiple of 16
        old = np.getbufsize()
        lower = 1024 <= bufsize < old  # below ~1000 the uint16 sums need the buffer
        if lower:
            np.setbufsize(bufsize)
        try:
            for k in range(t.shape[0]):
                np.greater_equal(B, t[k][:, None], out=mask)
                ge[k] += np.add.reduce(u8, axis=1, dtype=acc)
        finally:
            if lower:
                np.setbufsize(old)

    def _merge_moments(self, nb: Array, mean_b: Array, m2_b: Array) -> None:
        na = self.count
        n = na + nb
        safe = np.maximum(n, 1)
        delta = mean_b - self.mean
        self.mean += delta * (nb / safe)
        self.m2 += m2_b + delta * delta * (na * (nb / safe))
        self.count = n

    def merge(self, other: NumericAccumulator) -> None:
        """Add ``other`` (same columns and edges) into this accumulator."""
        with np.errstate(all="ignore"):  # inf - inf, 1e308 ** 2, subnormal products
            self._merge_moments(other.count, other.mean, other.m2)
        self.null += other.null
        self.nan += other.nan
        self.inf += other.inf
        np.minimum(self.min, other.min, out=self.min)
        np.maximum(self.max, other.max, out=self.max)
        self.ge += other.ge
        self.binned += other.binned

    # ---- reading -------------------------------------------------------------------
    def variance(self, ddof: int = 0) -> Array:
        """Per-column variance (NaN where fewer than ``ddof + 1`` values)."""
        with np.errstate(all="ignore"):
            return np.where(self.count > ddof, self.m2 / (self.count - ddof), np.nan)

    def std(self, ddof: int = 0) -> Array:
        return np.sqrt(np.maximum(self.variance(ddof), 0.0))

    def bin_counts(self, j: int) -> Array:
        """Counts of column ``j``: ``[below, bin_0 .. bin_k-1, above]`` (k = edges - 1)."""
        k = int(self._n_edges[j])
        if k == 0:
            return np.zeros(0, dtype=np.int64)
        ge = self.ge[:k, j]
        out = np.empty(k + 1, dtype=np.int64)
        out[0] = self.binned[j] - ge[0]
        out[1:k] = ge[: k - 1] - ge[1:k]
        out[k] = ge[k - 1]
        return out


class CategoricalAccumulator:
    """Counts of one categorical column over known categories + ``other`` + ``unseen``.

    ``categories`` are the baseline's top categories; ``known_other`` the rest of what the
    baseline saw (values there count as ``other``; values seen nowhere as ``unseen``). With
    ``known_other=None`` every value outside ``categories`` counts as ``other``.

    ``counts`` is a list of Python ints, not an array: a call adds to a few of them, and
    numpy's scalar indexing costs ~7 us inside a call (cold code) where a list's costs ~0.5.

    Arrow string columns and Categorical codes given to :meth:`add_later` wait in
    ``pending`` until :meth:`settle` counts them (when the window closes, off the calls'
    lock): reading an Arrow array into Python, or comparing a request's categories with the
    last ones, costs ~7-30 us of cold pyarrow code inside a call, a few warm ones at the
    window's end.
    """

    __slots__ = ("_code", "_resolved", "_slots", "categories", "count", "counts",
                 "known_other", "null", "pending")

    _CACHE = 4096  # distinct values remembered per column: bounded memory
    #: columns (Arrow arrays, Categorical codes) kept for the window's end at most: the
    #: calls' lock counts them when more come (an Arrow array holds its buffers, those of
    #: the frame it was cut from too)
    _PENDING = 1024

    def __init__(
        self, categories: Sequence[str], known_other: frozenset[str] | None = None
    ) -> None:
        self.categories = tuple(categories)
        self.known_other = known_other
        self.counts = [0] * (len(self.categories) + 2)
        self.count = 0
        self.null = 0
        self._code: dict[object, int] = {c: i for i, c in enumerate(self.categories)}
        #: the categories array :meth:`add_codes` last took, and the slot of each of its
        #: codes looked up so far (None: not yet); frames that share a dtype share it
        self._slots: tuple[Array, list[int | None]] | None = None
        #: what :meth:`settle`'s ``resolve`` made of the last categories (an Index): a
        #: tuple whose second item is their array
        self._resolved: tuple[Any, ...] | None = None
        self.pending: list[Any] | None = None

    def empty_like(self) -> CategoricalAccumulator:
        new = CategoricalAccumulator.__new__(CategoricalAccumulator)
        new.categories = self.categories
        new.known_other = self.known_other
        new.counts = [0] * len(self.counts)
        new.count = 0
        new.null = 0
        new._code = self._code  # shared cache of value -> code (read-mostly)
        new._slots = self._slots
        new._resolved = self._resolved
        new.pending = None
        return new

    def _lookup(self, v: object) -> int:
        code = self._code.get(v)
        if code is not None:
            return code
        key = _category_key(v)
        if key in self._code:
            code = self._code[key]
        elif self.known_other is None or key in self.known_other:
            code = len(self.categories)
        else:
            code = len(self.categories) + 1
        if len(self._code) < self._CACHE and (
            type(v) in _CACHED_TYPES and (type(v) is not str or len(v) <= _CACHED_STR)
        ):
            # plain labels only: the cache outlives the window, so a free-text value or a
            # user object kept as a key would hold the caller's memory (up to _CACHE each)
            self._code[v] = code
        return code

    def add(self, values: Array) -> None:
        """Add a 1-D array of values (None / NaN / NaT count as null)."""
        self.add_items(values.tolist())

    def add_one(self, value: str) -> None:
        """Add one str (what :meth:`add` does with a one-value array of it)."""
        slot = self._code.get(value)  # (the cache first: a call of _lookup fewer, cold code)
        self.counts[self._lookup(value) if slot is None else slot] += 1
        self.count += 1

    def add_items(self, items: list[Any]) -> None:
        """Add a list of values (what :meth:`add` does with them as an array)."""
        if len(items) == 1 and type(items[0]) is str:  # one row's value: no tally to build
            self.add_one(items[0])
            return
        try:
            # count distinct values in C first: class labels and categories repeat a lot
            tally = Counter(items)
        except TypeError:  # an unhashable value somewhere: one by one
            self._add_each(items)
            return
        self.add_tally(tally, len(items))

    def add_codes(self, categories: Array, codes: list[int]) -> None:
        """Add a pandas Categorical's values given as its ``categories`` (an object array)
        and its ``codes`` (-1: a missing value): what :meth:`add_items` does with the
        values, each distinct code looked up once per categories array."""
        known = self._slots
        if known is None or known[0] is not categories:
            known = self._slots = (categories, [None] * len(categories))
        slots = known[1]
        if len(codes) == 1:  # one row's value: no tally to build
            tally = {codes[0]: 1}
        else:
            tally = {}
            _count_elements(tally, codes)
        nulls = tally.pop(-1, 0)
        counts = self.counts
        for code, c in tally.items():
            slot = slots[code]
            if slot is None:
                slot = slots[code] = self._lookup(categories[code])
            counts[slot] += c
        self.null += nulls
        self.count += len(codes) - nulls

    def add_later(self, values: Any) -> bool:
        """Add a column's values when the window settles (:meth:`settle`): a pyarrow
        (chunked) array of str, None for a missing value (what :meth:`add_items` does with
        its ``to_pylist()``), or a Categorical's ``(categories, codes)`` (what
        :meth:`add_codes` does with the codes and the array ``resolve`` makes of the
        categories). True when :meth:`settle` is due (``_PENDING`` wait)."""
        pending = self.pending
        if pending is None:
            self.pending = [values]
            return False
        pending.append(values)
        return len(pending) >= self._PENDING

    def settle(self, resolve: Callable[[Any, Any], tuple[Any, ...]]) -> None:
        """Count what waits in ``pending``. ``resolve(categories, last)`` gives a tuple whose
        second item is the object array of the categories' labels, given what it gave for
        the last ones (``last``, or None): that array again for the same labels (the slots
        of :meth:`add_codes` are kept per array)."""
        pending = self.pending
        if not pending:
            return
        self.pending = None
        for item in pending:
            if type(item) is tuple:
                categories, codes = item
                resolved = self._resolved = resolve(categories, self._resolved)
                self.add_codes(resolved[1], codes)
            else:
                self.add_items(item.to_pylist())

    def add_labels(self, tally: dict[str, int], n: int) -> None:
        """Add ``n`` str given as their counts (:func:`str_tally`): no nulls among them."""
        counts = self.counts
        lookup = self._lookup
        for v, c in tally.items():
            counts[lookup(v)] += c
        self.count += n

    def add_tally(self, tally: Counter[Any], n: int) -> None:
        """Add ``n`` values given as their counts (``Counter(values)``)."""
        counts = self.counts
        nulls = 0
        lookup = self._lookup
        for v, c in tally.items():
            t = type(v)
            if v is None or (t is float and v != v) or t.__name__ in _NA_TYPES:
                nulls += c
            else:
                counts[lookup(v)] += c
        self.null += nulls
        self.count += n - nulls

    def _add_each(self, items: list[Any]) -> None:
        counts = self.counts
        nulls = 0
        lookup = self._lookup
        for v in items:
            t = type(v)
            if v is None or (t is float and v != v) or t.__name__ in _NA_TYPES:
                nulls += 1
                continue
            try:
                counts[lookup(v)] += 1
            except TypeError:  # unhashable value: count it as other
                counts[len(self.categories)] += 1
        self.null += nulls
        self.count += len(items) - nulls

    def merge(self, other: CategoricalAccumulator) -> None:
        """Add ``other``'s counts (both settled: nothing ``pending``)."""
        if self.pending or other.pending:
            raise ValueError("merge of a CategoricalAccumulator that has not settled")
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.count += other.count
        self.null += other.null


def _category_key(v: object) -> str:
    """The string under which a category is stored in a baseline."""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


category_key = _category_key


def str_tally(x: list[Any]) -> dict[str, int] | None:
    """The counts of a list of str (labels repeat: the distinct ones are checked, counted in
    C, not every item); None when an item is anything but a str."""
    tally: dict[str, int] = {}
    try:
        _count_elements(tally, x)
    except TypeError:  # unhashable items
        return None
    return tally if all(type(k) is str for k in tally) else None


def spaced_rows(X: Array) -> bool:
    """Are ``X``'s rows contiguous and evenly spaced (what :meth:`NumericAccumulator.add_rows`
    reads in place with the kernel)?"""
    st = X.strides
    return X.ndim == 2 and st[1] == 8 and st[0] >= 8 * X.shape[1] and st[0] % 8 == 0
