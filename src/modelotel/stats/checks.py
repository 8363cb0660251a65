"""Silent-failure checks: the ways a model fails without raising.

Example:
    >>> import numpy as np
    >>> from modelotel.stats import checks
    >>> checks.nonfinite(np.array([[0.1], [np.nan]]))
    [0]
    >>> checks.class_collapse(np.array([0, 99, 1]), [0.5, 0.5], min_count=20)
    True

Pure functions over numbers. Per call (the caller marks the span of the call where they
fire): non-finite outputs (:func:`nonfinite`), outputs outside the training range
(:func:`out_of_range`), both at once for one batch of outputs (:func:`scores_ok`, the cheap
test, then :func:`output_checks`, which says what fired), schema mismatches (reported by
:meth:`modelotel.stats.schema.ColumnPlan.align`). Per window (counted at the window's end):
a constant output (:func:`constant_columns`) and a collapse of the class shares against the
baseline (:func:`class_collapse`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from modelotel import attributes as A  # noqa: N812 - the project's alias for names

#: A window needs this many values before "constant" or "collapsed" can fire.
MIN_WINDOW_COUNT = 20
#: Class collapse: one class takes at least this share of a window ...
COLLAPSE_SHARE = 0.95
#: ... while its baseline share was at most this.
COLLAPSE_BASELINE_MAX = 0.8

Array = np.ndarray[Any, Any]

#: One column of at most this many outputs is checked with Python's sum / min / max on
#: ``tolist()`` (no numpy reduction: inside a real call those cost ~1 us each)
_PY_CHECK_ROWS = 64
_min_reduce = np.minimum.reduce
_max_reduce = np.maximum.reduce


def nonfinite(X: Array) -> list[int]:
    """Columns of a numeric batch that hold a NaN or an infinity."""
    if X.dtype.kind not in "fc" or X.size == 0:
        return []
    with np.errstate(all="ignore"):
        lo = X.min(axis=0)
        hi = X.max(axis=0)
    # NaN propagates through min/max; +-inf shows up as an extreme
    bad = ~(np.isfinite(lo) & np.isfinite(hi))
    return _cols(bad)


def out_of_range(X: Array, low: Array, high: Array) -> list[int]:
    """Columns of a batch with a finite value below ``low`` or above ``high`` (the training
    min / max; NaN bounds disable the check for that column)."""
    if X.size == 0:
        return []
    with np.errstate(all="ignore"):
        Xf = X if X.dtype.kind == "f" else X.astype(np.float64)
        lo = np.fmin.reduce(np.where(np.isfinite(Xf), Xf, np.nan), axis=0)
        hi = np.fmax.reduce(np.where(np.isfinite(Xf), Xf, np.nan), axis=0)
        bad = (lo < low) | (hi > high)
    return _cols(bad)


def out_of_range_fast(lo: Array, hi: Array, low: Array, high: Array) -> list[int]:
    """Like :func:`out_of_range` from precomputed per-column min / max."""
    with np.errstate(invalid="ignore"):
        bad = (lo < low) | (hi > high)
    return _cols(bad) if bad.any() else []


def constant_columns(
    count: Array, vmin: Array, vmax: Array, min_count: int = MIN_WINDOW_COUNT
) -> list[int]:
    """Columns whose window (at least ``min_count`` finite values) holds one single value."""
    ok = (count >= min_count) & (vmin == vmax)
    return _cols(ok)


def _cols(mask: Array) -> list[int]:
    return [int(i) for i in np.flatnonzero(mask)]


def class_collapse(
    window_counts: Sequence[int] | Array,
    baseline_shares: Sequence[float],
    min_count: int = MIN_WINDOW_COUNT,
    share: float = COLLAPSE_SHARE,
    baseline_max: float = COLLAPSE_BASELINE_MAX,
) -> bool:
    """True when one class took ``>= share`` of a window of ``>= min_count`` outputs although
    its baseline share was ``<= baseline_max``.

    ``window_counts`` cover the baseline's categories first (then optionally other / unseen
    buckets, which have baseline share 0 if missing from ``baseline_shares``).
    """
    c = np.asarray(window_counts, dtype=np.float64)
    total = c.sum()
    if total < min_count or total <= 0:
        return False
    top = int(np.argmax(c))
    if c[top] / total < share:
        return False
    base = float(baseline_shares[top]) if top < len(baseline_shares) else 0.0
    return base <= baseline_max


# ---- one batch of outputs, per call ----------------------------------------------------


def scores_ok(x: Array, lo: float | None, hi: float | None) -> bool:
    """Whether every value of a 1-D batch of scores is finite and, with a training range
    ``lo`` / ``hi``, inside it: the cheap test of the common case. When it is False,
    :func:`output_checks` says which check fired."""
    if x.shape[0] <= _PY_CHECK_ROWS:
        # a few scores: Python floats (or ints, bools). sum() propagates NaN and inf, so
        # s - s == 0.0 only when every value is finite (a sum that overflows to inf goes
        # to the exact check, which finds nothing to fire); min / max would skip a NaN, so
        # they run only after that test
        vals = x.tolist()
        s = sum(vals)
        return s - s == 0.0 and (lo is None or hi is None or (min(vals) >= lo and max(vals) <= hi))
    # NaN propagates; +-inf shows; neither warns (the ufuncs' reduce directly: ~0.2 us
    # cheaper per call than x.min() / x.max(), which go through numpy's Python layer)
    mn, mx = _min_reduce(x), _max_reduce(x)
    if lo is not None and hi is not None:
        return mn >= lo and mx <= hi  # type: ignore[no-any-return]  # False for NaN too
    # no range: only "non-finite?" matters (not mn + mx: -inf + inf and float16 overflow
    # warn, or raise under np.seterr)
    return math.isfinite(mn) and math.isfinite(mx)


#: Rows of one spaced output column beyond which its checks read a contiguous copy.
_COPY_ROWS = 4096


def output_checks(X: Array, low: Array | None, high: Array | None) -> list[tuple[str, int]]:
    """The per-call checks that fire on a ``rows x k`` batch of outputs, as ``(check,
    column)``: non-finite values, finite values outside the training range ``low`` /
    ``high`` (None: no range; a NaN bound disables its column)."""
    fired: list[tuple[str, int]] = []
    if X.shape[1] == 1:
        # the common case, one output column: two reductions and float compares
        # (min / max propagate NaN and show +-inf, and never warn). A long column of a
        # wider output (predict_proba(X)[:, 1]) is copied first: numpy's reductions over
        # spaced values do not vectorize (50,000 scores: 88 us, 41 us with the copy)
        if X.shape[0] > _COPY_ROWS and not X.flags.c_contiguous:
            X = np.ascontiguousarray(X)
        lo, hi = float(X.min()), float(X.max())
        if X.dtype.kind == "f" and not (math.isfinite(lo) and math.isfinite(hi)):
            fired.append((A.CHECK_OUTPUT_NONFINITE, 0))
            if low is not None and high is not None and out_of_range(X, low, high):
                fired.append((A.CHECK_OUTPUT_OUT_OF_RANGE, 0))
        elif low is not None and high is not None and (lo < low[0] or hi > high[0]):
            fired.append((A.CHECK_OUTPUT_OUT_OF_RANGE, 0))
        return fired
    if X.shape[0] == 0:
        return fired
    finite = True
    cmin: Array | None = None
    cmax: Array | None = None
    if X.dtype.kind == "f":
        # the per-column min / max serve both checks (NaN propagates, +-inf is an extreme)
        cmin, cmax = _min_reduce(X, axis=0), _max_reduce(X, axis=0)
        bad = ~(np.isfinite(cmin) & np.isfinite(cmax))
        if bad.any():
            finite = False
            fired.extend((A.CHECK_OUTPUT_NONFINITE, j) for j in _cols(bad))
    if low is None or high is None:
        return fired
    if finite:
        if cmin is None or cmax is None:
            cmin, cmax = _min_reduce(X, axis=0), _max_reduce(X, axis=0)
        cols = out_of_range_fast(cmin, cmax, low, high)
    else:
        cols = out_of_range(X, low, high)
    fired.extend((A.CHECK_OUTPUT_OUT_OF_RANGE, j) for j in cols)
    return fired
