"""Silent-failure checks: the ways a model fails without raising.

Example:
    >>> import numpy as np
    >>> from modelotel.stats import checks
    >>> checks.nonfinite(np.array([[0.1], [np.nan]]))
    [0]
    >>> checks.class_collapse(np.array([0, 99, 1]), [0.5, 0.5], min_count=20)
    True

Pure functions over numbers. Per call (they mark the span of the call where they fire):
non-finite outputs (:func:`nonfinite`), outputs outside the training range
(:func:`out_of_range`), schema mismatches (reported by
:meth:`modelotel.stats.columns.ColumnPlan.align`). Per window (they fire a counter at the
window's end): a constant output (:func:`constant_columns`) and a collapse of the class
shares against the baseline (:func:`class_collapse`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: A window needs this many values before "constant" or "collapsed" can fire.
MIN_WINDOW_COUNT = 20
#: Class collapse: one class takes at least this share of a window ...
COLLAPSE_SHARE = 0.95
#: ... while its baseline share was at most this.
COLLAPSE_BASELINE_MAX = 0.8

Array = np.ndarray[Any, Any]


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
    window_counts: Array,
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
