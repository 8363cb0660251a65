"""Drift between two binned distributions: pure functions, numbers in, numbers out.

Example:
    >>> from modelotel.stats import drift
    >>> base = [0.25, 0.25, 0.25, 0.25]
    >>> round(drift.psi([100, 100, 100, 100], base), 6)
    0.0
    >>> round(drift.ks([0, 0, 200, 200], base), 3)
    0.5

Every function takes the *observed* window as counts (or shares) and the *expected*
baseline distribution as shares over the same bins, so that the counts a backend sums over
replicas give exactly the drift of one process that saw everything. Bins with zero mass are
smoothed with ``eps`` where a logarithm needs it (PSI); Jensen-Shannon needs no smoothing.

- :func:`psi`: population stability index, ``sum((p - q) * ln(p / q))``. Rule of thumb:
  < 0.1 stable, 0.1-0.2 moderate, > 0.2 significant drift.
- :func:`js_distance`: Jensen-Shannon distance (base 2, in [0, 1]).
- :func:`ks`: Kolmogorov-Smirnov statistic on the binned CDFs (max CDF gap, in [0, 1]).
- :func:`wasserstein`: earth mover's distance with each bin's mass at a representative
  point (the bin centre), in the feature's units.
- :func:`cramers_v`: Cramér's V of the window's category counts against the baseline
  shares (categoricals), in [0, 1]: an effect size that does not grow with the window.
- :func:`chi_square`: Pearson's chi-square statistic of observed counts against the
  baseline shares (a test statistic: it grows with the window; not a drift score).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

ArrayLike = Sequence[float] | np.ndarray[Any, Any]

#: Share substituted for empty bins in PSI (the usual choice in the literature).
PSI_EPS = 1e-4

__all__ = [
    "PSI_EPS",
    "bin_centers",
    "chi_square",
    "cramers_v",
    "js_distance",
    "ks",
    "normalize",
    "psi",
    "wasserstein",
]


def normalize(x: ArrayLike) -> np.ndarray[Any, Any]:
    """Counts (or weights) -> shares summing to 1; all-zero input stays all zero."""
    a = np.asarray(x, dtype=np.float64)
    total = a.sum()
    return a / total if total > 0 else np.zeros_like(a)


def _pair(
    observed: ArrayLike, expected: ArrayLike
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    p, q = normalize(observed), normalize(expected)
    if p.shape != q.shape:
        raise ValueError(f"observed has {p.shape[0]} bins, expected {q.shape[0]}")
    return p, q


def psi(observed: ArrayLike, expected: ArrayLike, eps: float = PSI_EPS) -> float:
    """Population stability index of ``observed`` against ``expected`` (NaN if either is empty)."""
    p, q = _pair(observed, expected)
    if not p.any() or not q.any():
        return float("nan")
    p = normalize(np.maximum(p, eps))
    q = normalize(np.maximum(q, eps))
    return float(np.sum((p - q) * np.log(p / q)))


def js_distance(observed: ArrayLike, expected: ArrayLike) -> float:
    """Jensen-Shannon distance, base 2 (0 = same, 1 = disjoint); NaN if either is empty."""
    p, q = _pair(observed, expected)
    if not p.any() or not q.any():
        return float("nan")
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kp = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kq = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float(np.sqrt(max(0.5 * (kp + kq), 0.0)))


def ks(observed: ArrayLike, expected: ArrayLike) -> float:
    """Kolmogorov-Smirnov statistic between the two binned CDFs; NaN if either is empty."""
    p, q = _pair(observed, expected)
    if not p.any() or not q.any():
        return float("nan")
    return float(np.max(np.abs(np.cumsum(p) - np.cumsum(q))))


def wasserstein(observed: ArrayLike, expected: ArrayLike, centers: ArrayLike) -> float:
    """1-Wasserstein distance with bin ``i``'s mass at ``centers[i]`` (sorted ascending)."""
    p, q = _pair(observed, expected)
    c = np.asarray(centers, dtype=np.float64)
    if c.shape != p.shape:
        raise ValueError(f"{c.shape[0]} centers for {p.shape[0]} bins")
    if not p.any() or not q.any():
        return float("nan")
    if c.shape[0] < 2:
        return 0.0
    gaps = np.diff(c)
    return float(np.sum(np.abs(np.cumsum(p)[:-1] - np.cumsum(q)[:-1]) * gaps))


def chi_square(observed_counts: ArrayLike, expected: ArrayLike, eps: float = PSI_EPS) -> float:
    """Pearson's chi-square statistic of counts against expected shares (scaled to the same
    total). Expected shares of 0 are smoothed with ``eps`` so a new category shows up as a
    large statistic instead of a division by zero. NaN when there are no counts."""
    o = np.asarray(observed_counts, dtype=np.float64)
    q = normalize(expected)
    if o.shape != q.shape:
        raise ValueError(f"observed has {o.shape[0]} bins, expected {q.shape[0]}")
    n = o.sum()
    if n <= 0 or not q.any():
        return float("nan")
    q = normalize(np.maximum(q, eps))
    e = q * n
    return float(np.sum((o - e) ** 2 / e))


def cramers_v(observed_counts: ArrayLike, expected: ArrayLike, eps: float = PSI_EPS) -> float:
    """Cramér's V of a goodness-of-fit test: ``sqrt(chi2 / (n * (k - 1)))``, clipped to [0, 1].

    ``chi2 / n`` is ``sum((p - q)^2 / q)`` over the shares, so the value is the size of the
    difference, not the evidence for it: the same two distributions give the same V at any
    window size (under no drift V shrinks like ``1 / sqrt(n)``), and identical shares give 0.
    ``k`` is the number of bins the baseline gives a positive share. A bin that both sides
    leave empty adds nothing; a bin the baseline never saw (``unseen``) but the window did adds
    ``p^2 / eps`` (Pearson's term with the expected share 0 divided by ``eps``), which
    saturates V at 1 once such values are frequent.
    Conventional reading: 0.1 small, 0.3 medium, 0.5 large. NaN when there are no counts.
    """
    o = np.asarray(observed_counts, dtype=np.float64)
    q = normalize(expected)
    if o.shape != q.shape:
        raise ValueError(f"observed has {o.shape[0]} bins, expected {q.shape[0]}")
    n = o.sum()
    if n <= 0 or not q.any():
        return float("nan")
    p = o / n
    used = (p > 0) | (q > 0)
    qs = np.maximum(q[used], eps)
    w2 = float(np.sum((p[used] - q[used]) ** 2 / qs))
    dof = max(int(np.count_nonzero(q > 0)) - 1, 1)
    return float(np.sqrt(min(w2 / dof, 1.0)))


def bin_centers(
    edges: ArrayLike, low: float | None = None, high: float | None = None
) -> np.ndarray[Any, Any]:
    """Representative points of ``[below, bin_0 .. bin_k-1, above]`` for :func:`wasserstein`.

    Interior bins use their midpoints; the below/above bins use ``low`` / ``high`` (e.g. the
    window's min / max) when they lie outside the edges, else the outer edge itself.
    """
    e = np.asarray(edges, dtype=np.float64)
    mids = 0.5 * (e[:-1] + e[1:])
    lo = e[0] if low is None or not np.isfinite(low) else min(float(low), e[0])
    hi = e[-1] if high is None or not np.isfinite(high) else max(float(high), e[-1])
    return np.concatenate(([lo], mids, [hi]))
