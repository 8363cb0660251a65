"""What a closed window says: gauges, drift and window checks, and the running totals.

Example:
    >>> import numpy as np
    >>> from modelotel.stats.accumulate import NumericAccumulator
    >>> from modelotel.stats.schema import NUMERIC, ColumnPlan, FeatureSpec
    >>> from modelotel.stats.window import summarize
    >>> plan = ColumnPlan([FeatureSpec("x", NUMERIC)])
    >>> win = NumericAccumulator(1)
    >>> win.add(np.array([[1.0], [3.0]]))
    >>> s = summarize(False, plan, {}, win, [], win, [], ((),))
    >>> s.gauges
    [('mean', 'x', 2.0), ('stddev', 'x', 1.0), ('min', 'x', 1.0), ('max', 'x', 3.0)]
    >>> s.totals.seen
    [2]

Pure: numbers in, numbers out, keyed by feature name, window statistic (:data:`MEAN`,
:data:`STDDEV`, :data:`MIN`, :data:`MAX`), drift method and check name (the values of
``ml.drift.method`` and ``ml.check``). The OTel adapter turns a :class:`Snapshot` into
observations; nothing here knows about metric names or attribute dicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from modelotel import attributes as A  # noqa: N812 - the project's alias for names
from modelotel.stats import checks, drift
from modelotel.stats.accumulate import CategoricalAccumulator, NumericAccumulator
from modelotel.stats.baseline import FeatureProfile
from modelotel.stats.schema import ColumnPlan

#: The window statistics of a numeric column, in the order a summary lists them.
MEAN, STDDEV, MIN, MAX = "mean", "stddev", "min", "max"
#: Drift methods of a numeric column, and of a categorical one, against its baseline.
NUMERIC_DRIFT = (A.DRIFT_PSI, A.DRIFT_JS, A.DRIFT_KS, A.DRIFT_WASSERSTEIN)
CATEGORICAL_DRIFT = (A.DRIFT_PSI, A.DRIFT_JS, A.DRIFT_CRAMERS_V)


class Totals:
    """Running totals of one side since it was built (additive: replicas sum exactly).

    Per column, numeric columns first then categorical ones, in schema order:

    Attributes:
        seen: values seen, missing ones included.
        null: null values (None, pd.NA, NaT).
        nan: NaN values (numeric columns only).
        inf: infinite values (numeric columns only).
        bins: counts per bin, in the order of the side's bin labels (``[]``: no bins).
    """

    __slots__ = ("bins", "inf", "nan", "null", "seen")

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.null: list[int] = []
        self.nan: list[int] = []
        self.inf: list[int] = []
        self.bins: list[list[int]] = []


class SideSummary:
    """One side (inputs or outputs) at the close of a window.

    Attributes:
        plan: the side's schema (its ``numeric`` and ``categorical`` feature names).
        bin_labels: per column (numeric then categorical), the values of ``ml.bin`` of
            its bins (``()``: no bins), as :func:`bin_labels` gives them.
        gauges: ``(statistic, feature, value)`` of the closed window, for the numeric
            columns that saw a finite value in it.
        drift: ``(feature, method, value)`` of the closed window against the baseline.
        checks: ``(check, feature)`` that fired on the closed window (outputs only).
        totals: the running :class:`Totals`, the closed window included.
    """

    __slots__ = ("bin_labels", "checks", "drift", "gauges", "plan", "totals")

    def __init__(
        self, plan: ColumnPlan, bin_labels: Sequence[Sequence[str]], totals: Totals
    ) -> None:
        self.plan = plan
        self.bin_labels = bin_labels
        self.totals = totals
        self.gauges: list[tuple[str, str, float]] = []
        self.drift: list[tuple[str, str, float]] = []
        self.checks: list[tuple[str, str]] = []


class Snapshot:
    """A model's two sides at the close of a window (None: a side with no schema yet)."""

    __slots__ = ("inputs", "outputs")

    def __init__(self, inputs: SideSummary | None, outputs: SideSummary | None) -> None:
        self.inputs = inputs
        self.outputs = outputs


def bin_labels(
    window: NumericAccumulator, categorical: Sequence[CategoricalAccumulator]
) -> tuple[tuple[str, ...], ...]:
    """The ``ml.bin`` values of every column's bins: below the training range, one per
    interior bin ("0", "1", ...), above it; a categorical column's baseline categories,
    "other" and "unseen". ``()`` for a column without bins."""
    out: list[tuple[str, ...]] = []
    for j in range(window.d):
        k = len(window.bin_counts(j))
        out.append((A.BIN_BELOW, *(str(i) for i in range(k - 2)), A.BIN_ABOVE) if k else ())
    for acc in categorical:
        out.append((*acc.categories, A.BIN_OTHER, A.BIN_UNSEEN) if acc.categories else ())
    return tuple(out)


def totals(
    total: NumericAccumulator,
    categorical: Sequence[CategoricalAccumulator],
    labels: Sequence[Sequence[str]],
) -> Totals:
    """The :class:`Totals` of a side's running accumulators."""
    t = Totals()
    seen = total.count + total.null + total.nan + total.inf
    t.seen = seen.tolist() + [acc.count + acc.null for acc in categorical]
    t.null = total.null.tolist() + [acc.null for acc in categorical]
    t.nan = total.nan.tolist()
    t.inf = total.inf.tolist()
    d = total.d
    t.bins = [total.bin_counts(j).tolist() if labels[j] else [] for j in range(d)]
    t.bins += [
        list(acc.counts) if labels[d + i] else [] for i, acc in enumerate(categorical)
    ]
    return t


def summarize(
    output: bool,
    plan: ColumnPlan,
    profiles: Mapping[str, FeatureProfile],
    win: NumericAccumulator,
    cat_win: Sequence[CategoricalAccumulator],
    total: NumericAccumulator,
    cat_total: Sequence[CategoricalAccumulator],
    labels: Sequence[Sequence[str]],
) -> SideSummary:
    """The :class:`SideSummary` of a closed window ``win`` / ``cat_win`` of one side (model
    outputs when ``output``), against the baseline ``profiles`` (by feature name), with the
    running totals ``total`` / ``cat_total`` (the closed window already merged in).

    Extreme values (1e308, subnormals) overflow or underflow in the moments and drift: the
    caller runs this under ``np.errstate(all="ignore")``.
    """
    s = SideSummary(plan, labels, totals(total, cat_total, labels))
    std = win.std(ddof=0)
    gauges, drifts = s.gauges, s.drift
    for j, name in enumerate(plan.numeric):
        if win.count[j] == 0:
            continue
        gauges.append((MEAN, name, float(win.mean[j])))
        gauges.append((STDDEV, name, float(std[j])))
        gauges.append((MIN, name, float(win.min[j])))
        gauges.append((MAX, name, float(win.max[j])))
        prof = profiles.get(name)
        if prof is not None and prof.edges and win.binned[j] > 0:
            counts = win.bin_counts(j)
            base = prof.shares
            centers = drift.bin_centers(prof.edges, win.min[j], win.max[j])
            drifts.append((name, A.DRIFT_PSI, drift.psi(counts, base)))
            drifts.append((name, A.DRIFT_JS, drift.js_distance(counts, base)))
            drifts.append((name, A.DRIFT_KS, drift.ks(counts, base)))
            drifts.append((name, A.DRIFT_WASSERSTEIN, drift.wasserstein(counts, base, centers)))
    if output:
        for j in checks.constant_columns(win.count, win.min, win.max):
            s.checks.append((A.CHECK_OUTPUT_CONSTANT, plan.numeric[j]))
    for name, acc in zip(plan.categorical, cat_win, strict=True):
        prof = profiles.get(name)
        if prof is None or acc.count == 0:
            continue
        cat_base = [*prof.shares, 0.0]  # the baseline never saw "unseen"
        drifts.append((name, A.DRIFT_PSI, drift.psi(acc.counts, cat_base)))
        drifts.append((name, A.DRIFT_JS, drift.js_distance(acc.counts, cat_base)))
        drifts.append((name, A.DRIFT_CRAMERS_V, drift.cramers_v(acc.counts, cat_base)))
        if output and checks.class_collapse(acc.counts, prof.shares):
            s.checks.append((A.CHECK_OUTPUT_CLASS_COLLAPSE, name))
        if output and acc.count >= checks.MIN_WINDOW_COUNT and np.count_nonzero(acc.counts) == 1:
            s.checks.append((A.CHECK_OUTPUT_CONSTANT, name))
    return s


__all__ = [
    "CATEGORICAL_DRIFT",
    "MAX",
    "MEAN",
    "MIN",
    "NUMERIC_DRIFT",
    "STDDEV",
    "SideSummary",
    "Snapshot",
    "Totals",
    "bin_labels",
    "summarize",
    "totals",
]
