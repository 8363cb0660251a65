"""Input/output statistics of one model as OpenTelemetry metrics (the OTel side of ``stats``).

Example:
    >>> import numpy as np, modelotel
    >>> from modelotel.testing import capture
    >>> @modelotel.instrument(model="doc-stats", feature_names=["a", "b"])
    ... def predict(X):
    ...     return X[:, 0] * 2.0
    >>> with capture() as cap:
    ...     _ = predict(np.array([[1.0, 2.0], [3.0, np.nan]]))
    ...     cap.metric("ml.feature.count", **{"ml.feature": "b"}).value
    2

One :class:`StatsMonitor` per model monitor owns the accumulators of the current window
(:mod:`modelotel.stats.accumulate`) for the inputs and the outputs, and a finish hook that
feeds them. A small batch (the common online case) is copied into a preallocated row
buffer; the buffer is reduced in one pass when it fills or when metrics are collected, so
the per-call cost is a few type checks and a copy. The common case of all, a float64 batch
in and one float64 score per row out, is fused: one lock, and one call of the compiled
kernel (:mod:`modelotel.stats.kernel`) copies both and checks the scores, or, without the
kernel, two byte copies and a Python check. Inside a real call every numpy operation
costs ~1 us (cold code), so the hot path avoids them. A large batch is reduced directly
(off the lock), over at most ``row_cap`` uniformly sampled rows (the sampling rate goes on
the span as ``ml.stats.sample_rate``).

At each metric collection the first stats callback closes the window of every monitor:
it flushes the buffers, swaps in empty accumulators, merges the closed window into the
running totals, computes drift against the baseline and the window checks, and stores a
snapshot that the other callbacks read. Exported:

- additive counters (running totals, so replicas sum exactly): ``ml.feature.count``
  (values seen), ``ml.feature.missing{ml.missing.kind}``, ``ml.feature.bin{ml.bin}`` and the
  ``ml.output.*`` equivalents, ``ml.check.violations{ml.check, ml.feature}``;
- gauges of the closed window: ``ml.feature.mean / stddev / min / max`` and
  ``ml.feature.drift{ml.drift.method}`` (and ``ml.output.*``).

Checks that fire on a call (non-finite outputs, outputs outside the training range, schema
mismatch) are appended to ``call.checks_fired`` and added as a span event.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from opentelemetry.metrics import CallbackOptions, Observation

from modelotel import _state
from modelotel import attributes as A  # noqa: N812 - the project's alias for names
from modelotel._safety import count_dropped, count_skipped, guard, health, record_error
from modelotel.environment_variables import MODELOTEL_WINDOW_GAUGES
from modelotel.stats import checks, drift, kernel
from modelotel.stats.accumulate import CategoricalAccumulator, NumericAccumulator
from modelotel.stats.baseline import Baseline, FeatureProfile, output_specs, resolve
from modelotel.stats.columns import (
    SKIP_MAX_FEATURES,
    SKIP_UNREADABLE,
    ColumnPlan,
    FeatureSpec,
    FrameHint,
    Table,
    extract,
)

if TYPE_CHECKING:
    from modelotel._call import Call
    from modelotel._monitor import ModelMonitor

Array = np.ndarray[Any, Any]

#: The row buffer holds at least this many rows; a batch of up to half the buffer is
#: copied into it (and reduced with the others when it fills) instead of reduced alone.
SMALL_BATCH_ROWS = 256
#: The row buffer holds about this many values per side (bounded memory per monitor).
BUFFER_VALUES = 1 << 16

_min_reduce = np.minimum.reduce
_max_reduce = np.maximum.reduce
#: float64 in native byte order: a batch of this dtype is copied into the buffer as bytes
_F64 = np.dtype(np.float64)
_F32 = np.dtype(np.float32)
#: ``memoryview`` typed for arrays (numpy declares the buffer protocol only for 3.12+ typing)
_memoryview: Callable[[Any], memoryview] = memoryview
#: One column of at most this many outputs is checked with Python's sum / min / max on
#: ``tolist()`` (no numpy reduction: inside a real call those cost ~1 us each)
_PY_CHECK_ROWS = 64


#: Where code that is not the user's lives: an exception raised there is a bug (ours, or
#: our use of numpy / pandas), not a misbehaving input.
_LIBRARY_DIRS = tuple(
    os.path.dirname(path) + os.sep
    for path in (getattr(sys.modules["modelotel"], "__file__", None), np.__file__)
    if path
)


def _raised_by_input(exc: BaseException) -> bool:
    """True when ``exc`` came out of the input's own code (a ``__len__``, ``__iter__``,
    ``__str__`` or property of the user's object raised while statistics read it).

    Decided by the innermost frame of the traceback: outside modelotel, numpy and pandas,
    it is the user's. An exception raised in C (no frame of its own) counts as ours.
    """
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    filename = tb.tb_frame.f_code.co_filename
    pandas = sys.modules.get("pandas")
    pandas_dir = os.path.dirname(getattr(pandas, "__file__", None) or "") + os.sep
    return not filename.startswith(_LIBRARY_DIRS) and not (
        pandas_dir != os.sep and filename.startswith(pandas_dir)
    )


def _missing_marker() -> object:
    from modelotel._call import MISSING

    return MISSING


class _Snapshot:
    """What one closed window exports (read by every callback of one collection)."""

    __slots__ = ("drift", "gauges")

    def __init__(self) -> None:
        self.gauges: list[tuple[str, float, dict[str, Any]]] = []
        self.drift: list[tuple[float, dict[str, Any]]] = []


class _Side:
    """Inputs or outputs of one model: plan, buffer, window and running totals."""

    def __init__(
        self,
        owner: StatsMonitor,
        output: bool,
        profiles: Sequence[FeatureProfile] | None,
        names: Sequence[str] | None,
    ) -> None:
        self.owner = owner
        self.output = output
        self.attr = A.ML_OUTPUT if output else A.ML_FEATURE
        self.profiles: dict[str, FeatureProfile] = {p.name: p for p in profiles or ()}
        self.names = tuple(names) if names is not None else None
        self.plan: ColumnPlan | None = None
        self.window: NumericAccumulator | None = None
        self.total: NumericAccumulator | None = None
        self.cat_window: list[CategoricalAccumulator] = []
        self.cat_total: list[CategoricalAccumulator] = []
        self.frame_hint = FrameHint()
        self.buf: Array | None = None
        self.buf_bytes = memoryview(b"")
        self.row_bytes = 0
        self.buf_rows = 0
        self.buf_n = 0
        self.buffer_max_rows = 0
        self.base_lo: Array | None = None
        self.base_hi: Array | None = None
        self.base_lo0: float | None = None  # the same, as floats, for one output column
        self.base_hi0: float | None = None
        # per-column training range for the kernel's stage (-inf / inf: no range)
        # (memoryviews: the kernel reads them through the buffer protocol, cheaper than an
        # array's, which describes itself anew on every call)
        self.check_lo = self.check_hi = memoryview(b"")
        self.fast_width = 0
        self.labels_only = False
        self.row_vector = not output and not (names is not None and len(names) == 1)
        if profiles:
            specs = [FeatureSpec(p.name, p.kind) for p in profiles]
            max_features = owner.max_features
            if len(specs) > max_features:
                _cut(len(specs) - max_features, owner.model)
                specs = specs[:max_features]
            self._setup(ColumnPlan(specs))

    # ---- setup -------------------------------------------------------------------
    def _setup(self, plan: ColumnPlan) -> None:
        edges = []
        for name in plan.numeric:
            prof = self.profiles.get(name)
            edges.append(np.asarray(prof.edges if prof else (), dtype=np.float64))
        d = len(plan.numeric)
        self.window = NumericAccumulator(d, edges if any(len(e) for e in edges) else None)
        self.total = self.window.empty_like()
        self.cat_window = []
        for name in plan.categorical:
            prof = self.profiles.get(name)
            cats = prof.categories if prof else ()
            known = frozenset(prof.known_other) if prof and prof.known_other is not None else None
            self.cat_window.append(CategoricalAccumulator(cats, known))
        self.cat_total = [c.empty_like() for c in self.cat_window]
        if d:
            # rows first, like the batches: a call's copy is one contiguous block (a
            # columns-first buffer takes d strided writes per call, which cost more inside a
            # real call than the transposing copy that add() makes once per flush)
            rows = max(SMALL_BATCH_ROWS, BUFFER_VALUES // d)
            self.buf = np.empty((rows, d), dtype=np.float64)
            # the same memory as bytes: a float64 batch is copied in with a memoryview slice
            # assignment (CPython's memcpy), not numpy's indexing machinery, whose code is cold
            # after the rest of a call ran: measured inside instrumented calls, a 32 x 20
            # copy costs ~0.9 us this way against ~3.6 us as buf[n:n + rows] = X
            self.buf_bytes = _memoryview(self.buf).cast("B")
            self.row_bytes = 8 * d
            self.buf_rows = rows
            self.buffer_max_rows = min(rows // 2, self.owner.row_cap)
        self.buf_n = 0
        if self.output and self.profiles:
            lo = [self.profiles[n].min if n in self.profiles else None for n in plan.numeric]
            hi = [self.profiles[n].max if n in self.profiles else None for n in plan.numeric]
            self.base_lo = np.array([np.nan if v is None else v for v in lo], dtype=np.float64)
            self.base_hi = np.array([np.nan if v is None else v for v in hi], dtype=np.float64)
            if d == 1 and lo[0] is not None and hi[0] is not None:
                self.base_lo0, self.base_hi0 = float(lo[0]), float(hi[0])
        # width of a plain numeric numpy batch that needs no conversion (0: never)
        self.fast_width = d if d and not plan.categorical else 0
        self.labels_only = self.output and not d and len(plan.categorical) == 1
        if self.base_lo is not None and self.base_hi is not None:
            lo_arr = np.where(np.isnan(self.base_lo), -np.inf, self.base_lo)
            hi_arr = np.where(np.isnan(self.base_hi), np.inf, self.base_hi)
        else:
            lo_arr, hi_arr = np.full(d, -np.inf), np.full(d, np.inf)
        self.check_lo, self.check_hi = _memoryview(lo_arr), _memoryview(hi_arr)
        self.plan = plan
        self._labels(plan)

    def _labels(self, plan: ColumnPlan) -> None:
        base = self.owner.base_attrs
        self.num_attrs = [{**base, self.attr: n} for n in plan.numeric]
        self.cat_attrs = [{**base, self.attr: n} for n in plan.categorical]
        kinds = (A.MISSING_NULL, A.MISSING_NAN, A.MISSING_INF)
        self.miss_attrs = [
            {k: {**a, A.ML_MISSING_KIND: k} for k in kinds} for a in self.num_attrs + self.cat_attrs
        ]
        assert self.window is not None
        self.bin_attrs: list[list[dict[str, Any]]] = []
        for j, a in enumerate(self.num_attrs):
            k = len(self.window.bin_counts(j))
            labels = [A.BIN_BELOW, *(str(i) for i in range(k - 2)), A.BIN_ABOVE] if k else []
            self.bin_attrs.append([{**a, A.ML_BIN: lab} for lab in labels])
        self.cat_bin_attrs = [
            [{**a, A.ML_BIN: lab} for lab in (*acc.categories, A.BIN_OTHER, A.BIN_UNSEEN)]
            for a, acc in zip(self.cat_attrs, self.cat_window, strict=True)
        ]
        methods_num = (A.DRIFT_PSI, A.DRIFT_JS, A.DRIFT_KS, A.DRIFT_WASSERSTEIN)
        methods_cat = (A.DRIFT_PSI, A.DRIFT_JS, A.DRIFT_CRAMERS_V)
        method = A.ML_DRIFT_METHOD
        self.drift_num = [{m: {**a, method: m} for m in methods_num} for a in self.num_attrs]
        self.drift_cat = [{m: {**a, method: m} for m in methods_cat} for a in self.cat_attrs]

    def plan_for(self, table: Table) -> ColumnPlan:
        plan = self.plan
        if plan is not None:
            return plan
        with self.owner.lock:
            if self.plan is None:
                if self.output:
                    specs = output_specs(table, self.owner.max_features)
                    self._setup(ColumnPlan(specs))
                else:
                    before = health.skipped.get(SKIP_MAX_FEATURES, 0)
                    plan = ColumnPlan.from_table(table, self.names, self.owner.max_features)
                    cut = health.skipped.get(SKIP_MAX_FEATURES, 0) - before
                    if cut:
                        _cut(cut, self.owner.model, counted=True)
                    self._setup(plan)
            assert self.plan is not None
            return self.plan

    # ---- per call ------------------------------------------------------------------
    def observe(self, x: object, call: Call) -> None:
        if (
            self.labels_only
            and type(x) is np.ndarray
            and x.ndim == 1
            and x.dtype.kind in "iubU"
            and 0 < x.shape[0] <= self.owner.row_cap
        ):
            # a classifier's labels (one categorical output column): counted as they are,
            # what extract + align would hand over for a plain 1-D array of ints or strings
            with self.owner.lock:
                self.cat_window[0].add(x)
            return
        width = self.fast_width
        if width and type(x) is np.ndarray and x.dtype.kind in "fiub" and x.dtype.itemsize <= 8:
            # the hot path: a plain numeric array of the expected width, no conversion; only
            # ops that never warn (min, max, compares, a copy into float64: longdouble, whose
            # copy can overflow, takes the other path), so no np.errstate (~1.4 us) here
            # (the buffer copy is inlined here, not a call to _buffer_1d / _add_numeric:
            # their checks were made above, and each Python call costs inside a real call)
            shape = x.shape
            X: Array | None = None
            if len(shape) == 1 and not self.row_vector and width == 1:
                X = x  # one column of outputs (scores): checked 1-D, buffered as one column
            elif len(shape) == 2 and shape[1] == width:
                X = x
            elif len(shape) == 1 and self.row_vector and shape[0] == width:
                X = x.reshape(1, width)
            if X is not None:
                rows = X.shape[0]
                if 0 < rows <= self.buffer_max_rows:
                    if self.output:
                        if X.ndim == 1:
                            self._output_checks_1d(X, call)
                        else:
                            self._output_checks(X, call)
                    buf = self.buf
                    assert buf is not None
                    mv = _memoryview(X)
                    raw = mv.cast("B") if X.dtype is _F64 and mv.c_contiguous else None
                    with self.owner.lock:
                        n = self.buf_n
                        if n + rows > buf.shape[0]:
                            self._flush_locked()
                            n = 0
                        if raw is not None:
                            rb = self.row_bytes
                            self.buf_bytes[rb * n : rb * (n + rows)] = raw
                        else:  # other dtypes and layouts: numpy converts
                            buf[n : n + rows] = X.reshape(rows, width)
                        self.buf_n = n + rows
                    return
        with np.errstate(all="ignore"):  # the host may have set np.seterr(all="raise")
            self._observe_any(x, call)

    def _output_checks_1d(self, x: Array, call: Call) -> None:
        lo_b, hi_b = self.base_lo0, self.base_hi0
        if x.shape[0] <= _PY_CHECK_ROWS:
            # a few scores: Python floats (or ints, bools). sum() propagates NaN and inf, so
            # s - s == 0.0 only when every value is finite (a sum that overflows to inf goes
            # to the exact check below, which finds nothing to fire); min / max would skip a
            # NaN, so they run only after that test
            vals = x.tolist()
            s = sum(vals)
            if s - s == 0.0 and (
                lo_b is None or hi_b is None or (min(vals) >= lo_b and max(vals) <= hi_b)
            ):
                return
            self._output_checks(x.reshape(-1, 1), call)
            return
        # NaN propagates; +-inf shows; neither warns (the ufuncs' reduce directly: ~0.2 us
        # cheaper per call than x.min() / x.max(), which go through numpy's Python layer)
        lo, hi = _min_reduce(x), _max_reduce(x)
        if lo_b is not None and hi_b is not None:
            if lo >= lo_b and hi <= hi_b:  # False for NaN, inf or out of range: one test
                return
        elif math.isfinite(lo) and math.isfinite(hi):  # no range: only "non-finite?" matters
            # (not lo + hi: -inf + inf and float16 overflow warn, or raise under np.seterr)
            return
        self._output_checks(x.reshape(-1, 1), call)

    def _row_sample(self, rows: int, call: Call) -> slice | None:
        """A uniform systematic sample of at most ``row_cap`` rows (None: take them all)."""
        cap = self.owner.row_cap
        if rows <= cap:
            return None
        step = -(-rows // cap)
        sample = slice(int(self.owner.rng.integers(step)), None, step)
        kept = len(range(rows)[sample])
        count_dropped("stats.row_cap", rows - kept)
        call.set_attribute(A.ML_STATS_SAMPLE_RATE, kept / rows)
        return sample

    def _observe_any(self, x: object, call: Call) -> None:
        owner = self.owner
        if (
            isinstance(x, (list, tuple))
            and len(x) > owner.row_cap
            and (not self.row_vector or isinstance(x[0], (list, tuple, dict, np.ndarray)))
        ) or (type(x).__name__ == "DataFrame" and type(x).__module__.startswith("pandas")):
            # rows of Python objects (or a frame) are converted value by value for some
            # columns: sample the rows before converting, not after
            rows_in = len(x)  # type: ignore[arg-type]
            pre = self._row_sample(rows_in, call)
            if pre is not None:
                x = x.iloc[pre] if hasattr(x, "iloc") else x[pre]  # type: ignore[index]
        table = extract(x, self.row_vector, self.frame_hint)
        if table is None:
            return
        plan = self.plan_for(table)
        X, nulls, cats, issues = plan.align(table)
        for check, feature in issues:
            owner.fire(call, check, feature, self.attr)
        rows = table.rows
        if X is not None and X.shape[1] and self.output:
            self._output_checks(X, call)  # on every row: a NaN must not hide outside a sample
        sample = self._row_sample(rows, call)
        if sample is not None:
            kept = len(range(rows)[sample])
            if X is not None:
                X = X[sample]
                if nulls is not None:
                    # nulls were counted over all rows: scale to the sample, within its NaN
                    with np.errstate(all="ignore"):
                        est = np.round(nulls * (kept / rows)).astype(np.int64)
                        nulls = np.minimum(est, np.isnan(X).sum(axis=0))
            cats = [c[sample] for c in cats]
        if X is not None and X.shape[1]:
            self._add_numeric(X, nulls)
        if cats:
            with owner.lock:
                for acc, values in zip(self.cat_window, cats, strict=True):
                    acc.add(values)

    def _output_checks(self, X: Array, call: Call) -> None:
        plan = self.plan
        assert plan is not None
        lo_b, hi_b = self.base_lo, self.base_hi
        if X.shape[1] == 1:
            # the common case, one output column: two reductions and float compares
            # (min / max propagate NaN and show +-inf, and never warn)
            lo, hi = float(X.min()), float(X.max())
            if X.dtype.kind == "f" and not (math.isfinite(lo) and math.isfinite(hi)):
                self.owner.fire(call, A.CHECK_OUTPUT_NONFINITE, plan.numeric[0], self.attr)
                if lo_b is not None and hi_b is not None:
                    bad = checks.out_of_range(X, lo_b, hi_b)
                    if bad:
                        self._fire_range(call, bad)
            elif lo_b is not None and hi_b is not None and (lo < lo_b[0] or hi > hi_b[0]):
                self.owner.fire(call, A.CHECK_OUTPUT_OUT_OF_RANGE, plan.numeric[0], self.attr)
            return
        finite = True
        if X.dtype.kind == "f":
            bad_cols = checks.nonfinite(X)
            finite = not bad_cols
            for j in bad_cols:
                self.owner.fire(call, A.CHECK_OUTPUT_NONFINITE, plan.numeric[j], self.attr)
        if lo_b is None or hi_b is None:
            return
        if finite:
            lo, hi = X.min(axis=0), X.max(axis=0)
            self._fire_range(call, checks.out_of_range_fast(lo, hi, lo_b, hi_b))
        else:
            self._fire_range(call, checks.out_of_range(X, lo_b, hi_b))

    def _fire_range(self, call: Call, cols: list[int]) -> None:
        assert self.plan is not None
        for j in cols:
            self.owner.fire(call, A.CHECK_OUTPUT_OUT_OF_RANGE, self.plan.numeric[j], self.attr)

    def _add_numeric(self, X: Array, nulls: Array | None) -> None:
        rows = X.shape[0]
        buf = self.buf
        lock = self.owner.lock
        if (
            buf is not None
            and rows <= self.buffer_max_rows
            and X.dtype.kind in "fiub"
            and X.dtype.itemsize <= 8  # a longdouble copy can overflow: add() converts it
        ):
            with lock:
                n = self.buf_n
                if n + rows > buf.shape[0]:
                    self._flush_locked()
                    n = 0
                buf[n : n + rows] = X  # slice assignment: cheaper than np.copyto
                self.buf_n = n + rows
                if nulls is not None:
                    assert self.window is not None
                    self.window.null += nulls
                    self.window.nan -= nulls
            return
        assert self.window is not None
        tmp = self.window.empty_like()
        # off the lock: a big batch must not stall other threads
        if kernel.accumulate is not None and X.dtype == np.float64 and X.flags.c_contiguous:
            # the compiled kernel: one pass, GIL released (other threads serve meanwhile)
            tmp.add_rows(X, rows, nulls)
        elif X.flags.f_contiguous and not X.flags.c_contiguous:
            tmp.add(X.T, nulls, columns_first=True)  # a pandas block: already columns first
        else:
            tmp.add(X, nulls)
        with lock:
            self.window.merge(tmp)

    def _flush_locked(self) -> None:
        if self.buf_n and self.buf is not None and self.window is not None:
            self.window.add_rows(self.buf, self.buf_n)
        self.buf_n = 0

    # ---- window end ----------------------------------------------------------------
    def swap_window(self) -> Callable[[_Snapshot, list[tuple[str, str]]], None] | None:
        """Close the window (caller holds the lock): flush, swap, fold into the totals.

        Returns the step that computes the closed window's gauges, drift and checks, for
        the caller to run after releasing the lock (calls are not held up by it).
        """
        plan = self.plan
        if plan is None or self.window is None or self.total is None:
            return None
        self._flush_locked()
        win = self.window
        self.window = win.empty_like()
        self.total.merge(win)
        cat_win = self.cat_window
        self.cat_window = [c.empty_like() for c in cat_win]
        for tot, w in zip(self.cat_total, cat_win, strict=True):
            tot.merge(w)

        def step(snap: _Snapshot, violations: list[tuple[str, str]]) -> None:
            self._window_stats(plan, win, cat_win, snap, violations)

        return step

    def _window_stats(
        self,
        plan: ColumnPlan,
        win: NumericAccumulator,
        cat_win: list[CategoricalAccumulator],
        snap: _Snapshot,
        violations: list[tuple[str, str]],
    ) -> None:
        names = (
            (A.METRIC_OUTPUT_MEAN, A.METRIC_OUTPUT_STDDEV, A.METRIC_OUTPUT_MIN, A.METRIC_OUTPUT_MAX)
            if self.output
            else (A.METRIC_FEATURE_MEAN, A.METRIC_FEATURE_STDDEV, A.METRIC_FEATURE_MIN,
                  A.METRIC_FEATURE_MAX)
        )
        std = win.std(ddof=0)
        for j, name in enumerate(plan.numeric):
            if win.count[j] == 0:
                continue
            attrs = self.num_attrs[j]
            snap.gauges.append((names[0], float(win.mean[j]), attrs))
            snap.gauges.append((names[1], float(std[j]), attrs))
            snap.gauges.append((names[2], float(win.min[j]), attrs))
            snap.gauges.append((names[3], float(win.max[j]), attrs))
            prof = self.profiles.get(name)
            if prof is not None and prof.edges and win.binned[j] > 0:
                counts = win.bin_counts(j)
                base = prof.shares
                methods = self.drift_num[j]
                snap.drift.append((drift.psi(counts, base), methods[A.DRIFT_PSI]))
                snap.drift.append((drift.js_distance(counts, base), methods[A.DRIFT_JS]))
                snap.drift.append((drift.ks(counts, base), methods[A.DRIFT_KS]))
                centers = drift.bin_centers(prof.edges, win.min[j], win.max[j])
                snap.drift.append((drift.wasserstein(counts, base, centers),
                                   methods[A.DRIFT_WASSERSTEIN]))
        if self.output:
            for j in checks.constant_columns(win.count, win.min, win.max):
                violations.append((A.CHECK_OUTPUT_CONSTANT, plan.numeric[j]))
        for i, (name, acc) in enumerate(zip(plan.categorical, cat_win, strict=True)):
            prof = self.profiles.get(name)
            if prof is None or acc.count == 0:
                continue
            cat_base = [*prof.shares, 0.0]  # the baseline never saw "unseen"
            methods = self.drift_cat[i]
            snap.drift.append((drift.psi(acc.counts, cat_base), methods[A.DRIFT_PSI]))
            snap.drift.append((drift.js_distance(acc.counts, cat_base), methods[A.DRIFT_JS]))
            snap.drift.append((drift.cramers_v(acc.counts, cat_base), methods[A.DRIFT_CRAMERS_V]))
            if self.output and checks.class_collapse(acc.counts, prof.shares):
                violations.append((A.CHECK_OUTPUT_CLASS_COLLAPSE, name))
            if self.output and acc.count >= checks.MIN_WINDOW_COUNT and (
                np.count_nonzero(acc.counts) == 1
            ):
                violations.append((A.CHECK_OUTPUT_CONSTANT, name))

    # ---- counters ------------------------------------------------------------------
    def counter_points(self, metric: str) -> list[tuple[int, dict[str, Any]]]:
        """Running totals for one counter metric (``count`` / ``missing`` / ``bin``)."""
        out: list[tuple[int, dict[str, Any]]] = []
        tot = self.total
        plan = self.plan
        if tot is None or plan is None:
            return out
        n_num = len(plan.numeric)
        if metric == "count":
            for j in range(n_num):
                seen = tot.count[j] + tot.null[j] + tot.nan[j] + tot.inf[j]
                out.append((int(seen), self.num_attrs[j]))
            for i, acc in enumerate(self.cat_total):
                out.append((acc.count + acc.null, self.cat_attrs[i]))
        elif metric == "missing":
            for j in range(n_num):
                m = self.miss_attrs[j]
                out.append((int(tot.null[j]), m[A.MISSING_NULL]))
                out.append((int(tot.nan[j]), m[A.MISSING_NAN]))
                out.append((int(tot.inf[j]), m[A.MISSING_INF]))
            for i, acc in enumerate(self.cat_total):
                out.append((acc.null, self.miss_attrs[n_num + i][A.MISSING_NULL]))
        else:
            for j in range(n_num):
                labels = self.bin_attrs[j]
                if labels:
                    for c, attrs in zip(tot.bin_counts(j).tolist(), labels, strict=True):
                        out.append((int(c), attrs))
            for i, acc in enumerate(self.cat_total):
                if acc.categories:
                    for c, attrs in zip(acc.counts.tolist(), self.cat_bin_attrs[i], strict=True):
                        out.append((int(c), attrs))
        return out


def _cut(n: int, model: str, counted: bool = False) -> None:
    if not counted:
        count_skipped(SKIP_MAX_FEATURES, n)
    health.warn_once(
        "max_features:" + model,
        "modelotel: model %r has more columns than max_features; %d column(s) get no "
        "statistics (raise max_features= or MODELOTEL_MAX_FEATURES to keep them)",
        model,
        n,
    )


class StatsMonitor:
    """The statistics of one :class:`~modelotel._monitor.ModelMonitor` (see module doc)."""

    def __init__(self, monitor: ModelMonitor) -> None:
        cfg = monitor.config
        self.model = cfg.model
        self.max_features = cfg.max_features
        self.row_cap = cfg.row_cap
        self.lock = threading.Lock()
        self._collect_lock = threading.Lock()
        self.rng = np.random.default_rng()
        self.baseline: Baseline | None = resolve(cfg.baseline)
        self.base_attrs: dict[str, Any] = dict(monitor.metric_attributes)
        self._names = cfg.feature_names
        if self.baseline is not None:
            monitor.baseline_hash = self.baseline.hash
        self._gen = -1
        self._reset()
        self._missing = _missing_marker()

    def _reset(self) -> None:
        b = self.baseline
        names = self._names if self._names is not None else (b.feature_names if b else None)
        self.inputs = _Side(self, False, b.features if b else None, names)
        self.outputs = _Side(self, True, b.outputs if b else None, None)
        self.violations: dict[tuple[str, str, str], int] = {}
        self.violation_attrs: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.snapshot = _Snapshot()
        self._consumed: set[int] | None = None  # callbacks that read the snapshot

    # ---- per call ------------------------------------------------------------------
    def hook(self, call: Call) -> None:
        """Finish hook: feed the window with this call's inputs and outputs."""
        gen = call.monitor._gen
        if gen != self._gen:
            with self.lock:
                if gen != self._gen:  # new providers (configure, capture, fork): start over
                    self._reset()
                    self._gen = gen
            _instruments_for(gen, call.monitor.meter)
        x = call.inputs
        y = call.outputs
        inp, out = self.inputs, self.outputs
        stage = kernel.stage
        if (
            stage is not None
            and type(x) is np.ndarray
            and type(y) is np.ndarray
            and (x.dtype is _F64 or x.dtype is _F32)
            and (y.dtype is _F64 or y.dtype is _F32)
            and call.error is None
        ):
            # the online case, fused: a small float batch in, k float scores per row out
            # (a regressor's value, a classifier's probabilities). One lock, and one call
            # of the compiled kernel writes both into the row buffers and checks the
            # scores; inside a real call every numpy operation avoided saves ~1 us (cold)
            xs, ys = x.shape, y.shape
            width, k = inp.fast_width, out.fast_width
            if (
                len(xs) == 2
                and width
                and xs[1] == width
                and k
                and ((len(ys) == 1 and k == 1) or (len(ys) == 2 and ys[1] == k))
            ):
                rows, n_out = xs[0], ys[0]
                if 0 < rows <= inp.buffer_max_rows and 0 < n_out <= out.buffer_max_rows:
                    with self.lock:
                        n = inp.buf_n
                        if n + rows > inp.buf_rows:
                            inp._flush_locked()
                            n = 0
                        m = out.buf_n
                        if m + n_out > out.buf_rows:
                            out._flush_locked()
                            m = 0
                        ok = stage(inp.buf_bytes, inp.row_bytes * n, x, out.buf_bytes,
                                   out.row_bytes * m, y, out.check_lo, out.check_hi)
                        if ok is not None:  # None: not C-contiguous; the general path
                            inp.buf_n = n + rows
                            out.buf_n = m + n_out
                    if ok is not None:
                        if not ok:
                            out._output_checks(y if len(ys) == 2 else y.reshape(-1, 1), call)
                        return
        elif (
            stage is None
            and type(x) is np.ndarray
            and type(y) is np.ndarray
            and x.dtype is _F64
            and y.dtype is _F64
            and call.error is None
        ):
            # the same without the kernel, for one float64 score per row: two byte copies
            # and the scores' check of the per-side path
            xs, ys = x.shape, y.shape
            width = inp.fast_width
            if len(xs) == 2 and len(ys) == 1 and width and xs[1] == width and out.fast_width == 1:
                rows, n_out = xs[0], ys[0]
                if 0 < rows <= inp.buffer_max_rows and 0 < n_out <= out.buffer_max_rows:
                    mx, my = _memoryview(x), _memoryview(y)
                    if mx.c_contiguous and my.c_contiguous:
                        out._output_checks_1d(y, call)
                        rb = inp.row_bytes
                        with self.lock:
                            n = inp.buf_n
                            if n + rows > inp.buf_rows:
                                inp._flush_locked()
                                n = 0
                            inp.buf_bytes[rb * n : rb * (n + rows)] = mx.cast("B")
                            inp.buf_n = n + rows
                            n = out.buf_n
                            if n + n_out > out.buf_rows:
                                out._flush_locked()
                                n = 0
                            out.buf_bytes[8 * n : 8 * (n + n_out)] = my.cast("B")
                            out.buf_n = n + n_out
                        return
        missing = self._missing
        if x is not missing:
            try:
                self.inputs.observe(x, call)
            except Exception as exc:
                if not _raised_by_input(exc):
                    raise  # ours: counted in ml.telemetry.errors by the caller's guard
                count_skipped(SKIP_UNREADABLE)
        if y is not missing and call.error is None:
            try:
                self.outputs.observe(y, call)
            except Exception as exc:
                if not _raised_by_input(exc):
                    raise
                count_skipped(SKIP_UNREADABLE)

    def fire(self, call: Call | None, check: str, feature: str, attr: str = A.ML_FEATURE) -> None:
        """Count one violation of ``check``; mark the call's span when there is a call."""
        with self.lock:
            self._count_violation((check, feature, attr))
        if call is not None:
            if check not in call.checks_fired:
                call.checks_fired.append(check)
            span = call.span
            if span.is_recording():
                span.add_event(A.EVENT_CHECK_VIOLATION, {A.ML_CHECK: check, attr: feature})

    def _count_violation(self, key: tuple[str, str, str]) -> None:
        """Count one violation of ``(check, feature, ml.feature | ml.output)`` (lock held)."""
        n = self.violations.get(key)
        if n is None:
            self.violation_attrs[key] = {**self.base_attrs, A.ML_CHECK: key[0], key[2]: key[1]}
            n = 0
        self.violations[key] = n + 1

    # ---- collection ----------------------------------------------------------------
    def touch(self, cb: int) -> None:
        """Callback ``cb`` of a metric collection is about to read this monitor.

        A callback that already read the current snapshot means a new collection began:
        the window is closed first (normally by the first registered callback).
        """
        with self._collect_lock:
            consumed = self._consumed
            if consumed is None or cb in consumed:
                self.close_window()
                self._consumed = {cb}
            else:
                consumed.add(cb)

    def close_window(self) -> None:
        """End the current window: swap it out under the lock, then compute its snapshot."""
        # extreme values (1e308, subnormals) overflow / underflow in the moments and drift;
        # the host may have set np.seterr(all="raise") or run with -W error
        with np.errstate(all="ignore"):
            self._close_window()

    def _close_window(self) -> None:
        with self.lock:
            in_step = self.inputs.swap_window()
            out_step = self.outputs.swap_window()
        snap = _Snapshot()
        window_checks: list[tuple[str, str]] = []
        if in_step is not None:
            in_step(snap, [])
        if out_step is not None:
            out_step(snap, window_checks)
        if window_checks:
            with self.lock:
                for check, feature in window_checks:
                    self._count_violation((check, feature, A.ML_OUTPUT))
        self.snapshot = snap


# --------------------------------------------------------------------------------------
# registry and instruments
# --------------------------------------------------------------------------------------

_registry: weakref.WeakSet[StatsMonitor] = weakref.WeakSet()
_registry_lock = threading.Lock()


def attach_stats(monitor: ModelMonitor) -> StatsMonitor:
    """Build the statistics of ``monitor`` and register its finish hook (first in line)."""
    sm = StatsMonitor(monitor)
    with _registry_lock:
        _registry.add(sm)
    monitor.finish_hooks.insert(0, sm.hook)  # kept alive by the monitor's hook list
    return sm


def stats_of(monitor: ModelMonitor) -> StatsMonitor | None:
    """The :class:`StatsMonitor` attached to ``monitor`` (None if none)."""
    for hook in monitor.finish_hooks:
        owner = getattr(hook, "__self__", None)
        if isinstance(owner, StatsMonitor):
            return owner
    return None


def _monitors_of(gen: int) -> list[StatsMonitor]:
    with _registry_lock:
        return [sm for sm in _registry if sm._gen == gen]


_COUNTERS = (
    ("count", A.METRIC_FEATURE_COUNT, A.METRIC_OUTPUT_COUNT, "Values seen (missing included)."),
    ("missing", A.METRIC_FEATURE_MISSING, A.METRIC_OUTPUT_MISSING,
     "Missing values by ml.missing.kind (null, nan, inf)."),
    ("bin", A.METRIC_FEATURE_BIN, A.METRIC_OUTPUT_BIN,
     "Values per baseline bin (below/above range; categories, other, unseen)."),
)
_GAUGES = (
    (A.METRIC_FEATURE_MEAN, "Mean over the last window."),
    (A.METRIC_FEATURE_STDDEV, "Standard deviation over the last window."),
    (A.METRIC_FEATURE_MIN, "Minimum over the last window."),
    (A.METRIC_FEATURE_MAX, "Maximum over the last window."),
    (A.METRIC_OUTPUT_MEAN, "Mean output over the last window."),
    (A.METRIC_OUTPUT_STDDEV, "Standard deviation of outputs over the last window."),
    (A.METRIC_OUTPUT_MIN, "Minimum output over the last window."),
    (A.METRIC_OUTPUT_MAX, "Maximum output over the last window."),
)


def window_gauges_enabled() -> bool:
    """``MODELOTEL_WINDOW_GAUGES`` (default true): whether the per-window gauges (mean, stddev,
    min, max, drift) are registered. Read when a meter's instrument set is created."""
    raw = os.environ.get(MODELOTEL_WINDOW_GAUGES)
    value = "" if raw is None else raw.strip().lower()
    if value in ("", "1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    health.warn_once(
        "env:" + MODELOTEL_WINDOW_GAUGES,
        "modelotel: %s=%r is not one of true/false; keeping the window gauges on",
        MODELOTEL_WINDOW_GAUGES,
        raw,
    )
    return True


class _StatsInstruments:
    """The stats instruments of one meter (one set for all models).

    Keyed by meter, not by provider generation: after a fork the generation moves but the
    MeterProvider (and its meter) stay, and the SDK would ignore a second registration of
    the same instrument names. Only the set of the current meter reports; callbacks read
    the monitors of the current generation.
    """

    def __init__(self, meter: Any) -> None:
        self._ids = itertools.count()
        # The SDK runs the callbacks of one collection in registration order: the first
        # one (ml.feature.count) closes the windows and the others read that snapshot.
        # Should a View drop it, the first callback that finds it already read the current
        # snapshot knows a new collection began and closes the window itself.
        for key, feat_name, out_name, desc in _COUNTERS:
            meter.create_observable_counter(
                feat_name, callbacks=[self._counter_cb(key, False)],
                unit="{value}", description=desc,
            )
            meter.create_observable_counter(
                out_name, callbacks=[self._counter_cb(key, True)], unit="{value}",
                description=desc.replace("Values", "Outputs"),
            )
        # Fleets that only need the additive counters turn the window gauges off: they are
        # one series per replica and feature (per method for drift), and a fleet's drift
        # comes from the summed bin counters (modelotel rules) instead.
        if window_gauges_enabled():
            self._window_gauges(meter)
        meter.create_observable_counter(
            A.METRIC_CHECK_VIOLATIONS, callbacks=[self._violations], unit="{violation}",
            description="Silent-failure check violations, by ml.check and ml.feature/ml.output.",
        )

    def _window_gauges(self, meter: Any) -> None:
        for name, desc in _GAUGES:
            meter.create_observable_gauge(name, callbacks=[self._gauge_cb(name)], description=desc)
        meter.create_observable_gauge(
            # A drift score (PSI, JS distance, KS statistic, ...) is not a ratio: an annotation,
            # not "1", which Prometheus would translate into ml_feature_drift_ratio.
            A.METRIC_FEATURE_DRIFT, callbacks=[self._drift_cb(False)], unit="{score}",
            description="Drift of the last window against the baseline, by ml.drift.method.",
        )
        meter.create_observable_gauge(
            A.METRIC_OUTPUT_DRIFT, callbacks=[self._drift_cb(True)], unit="{score}",
            description="Drift of the outputs of the last window against the baseline.",
        )

    def _monitors(self, cb: int) -> list[StatsMonitor]:
        mons = _monitors_of(_state.generation())
        for sm in mons:
            sm.touch(cb)
        return mons

    def _observe(
        self, cb: int, points: Callable[[StatsMonitor], Iterable[tuple[float, Any]]]
    ) -> list[Observation]:
        """What one callback reports: ``points`` of every monitor, if this set is current."""
        out: list[Observation] = []
        with guard("stats.collect"):
            if _current is not self:
                return out
            for sm in self._monitors(cb):
                out.extend(Observation(v, a) for v, a in points(sm))
        return out

    def _counter_cb(self, key: str, output: bool) -> Any:
        cb = next(self._ids)

        def points(sm: StatsMonitor) -> Iterable[tuple[float, Any]]:
            side = sm.outputs if output else sm.inputs
            with sm.lock:
                return side.counter_points(key)

        return lambda options: self._observe(cb, points)

    def _gauge_cb(self, name: str) -> Any:
        cb = next(self._ids)

        def points(sm: StatsMonitor) -> Iterable[tuple[float, Any]]:
            return ((v, a) for n, v, a in sm.snapshot.gauges if n == name and math.isfinite(v))

        return lambda options: self._observe(cb, points)

    def _drift_cb(self, output: bool) -> Any:
        attr = A.ML_OUTPUT if output else A.ML_FEATURE
        cb = next(self._ids)

        def points(sm: StatsMonitor) -> Iterable[tuple[float, Any]]:
            return ((v, a) for v, a in sm.snapshot.drift if attr in a and math.isfinite(v))

        return lambda options: self._observe(cb, points)

    def _violations(self, options: CallbackOptions) -> Iterable[Observation]:
        def points(sm: StatsMonitor) -> Iterable[tuple[float, Any]]:
            with sm.lock:
                return [(n, sm.violation_attrs[k]) for k, n in sm.violations.items()]

        return self._observe(-1, points)


_instruments_lock = threading.Lock()
_by_meter: weakref.WeakKeyDictionary[Any, _StatsInstruments] = weakref.WeakKeyDictionary()
_current: _StatsInstruments | None = None
_current_meter: Any = None


_waiting: weakref.WeakSet[Any] = weakref.WeakSet()  # meters registered by a helper thread
_wanted: Any = None  # the meter of the latest _instruments_for call


def _collecting(meter: Any) -> bool:
    """Whether a metric collection of ``meter``'s SDK provider is running right now.

    The SDK registers an instrument under the lock that a collection holds while it runs
    the callbacks: registering during a collection waits for it, and forever when the
    collection runs on this very thread (an instrumented predict called from a metric
    callback, e.g. a canary gauge). The lock is the SDK's private measurement-consumer
    lock; without it (another SDK, the API's proxy) this says False, as before.
    """
    lock = getattr(getattr(meter, "_measurement_consumer", None), "_lock", None)
    if lock is None or not hasattr(lock, "acquire"):
        return False
    if not lock.acquire(blocking=False):
        return True
    lock.release()
    return False


def _register_later(meter: Any) -> None:
    """Create the set of ``meter`` on a helper thread, once the collection has ended."""

    def run() -> None:
        global _current, _current_meter
        try:
            inst = _StatsInstruments(meter)  # waits for the collection, not holding our lock
            with _instruments_lock:
                inst = _by_meter.setdefault(meter, inst)
                if _wanted is meter:  # no newer provider asked meanwhile: make it current
                    _current = inst
                    _current_meter = meter
        except Exception as exc:  # noqa: BLE001 - instruments are telemetry, never fatal
            record_error("stats.instruments", exc)
        finally:
            _waiting.discard(meter)

    _waiting.add(meter)
    threading.Thread(target=run, name="modelotel-stats-instruments", daemon=True).start()


def _instruments_for(gen: int, meter: Any) -> None:
    """Make the instrument set of ``meter`` current (created once per meter, never waiting
    on a metric collection: see :func:`_collecting`; the next call makes it current)."""
    global _current, _current_meter, _wanted
    if meter is _current_meter and _current is not None:
        return
    with _instruments_lock:
        _wanted = meter
        try:
            inst = _by_meter.get(meter)
            if inst is None:
                if meter in _waiting:
                    return
                if _collecting(meter):
                    _register_later(meter)
                    return
                inst = _StatsInstruments(meter)
                _by_meter[meter] = inst
        except Exception as exc:  # noqa: BLE001 - instruments are telemetry, never fatal
            record_error("stats.instruments", exc)
            return
        _current = inst
        _current_meter = meter


__all__ = ["StatsMonitor", "attach_stats", "stats_of"]
