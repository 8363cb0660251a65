"""One side of a model (its inputs, or its outputs): schema, row buffer, window, totals.

Example:
    >>> import threading
    >>> import numpy as np
    >>> from modelotel.stats.side import Side
    >>> side = Side(False, None, ["a", "b"], 200, 1000, threading.Lock(),
    ...             np.random.default_rng(0))
    >>> side.observe(np.array([[1.0, 2.0], [3.0, np.nan]]), None) is None  # nothing to report
    True
    >>> side.summarize(side.swap()).totals.seen
    [2, 2]

A :class:`Side` takes one batch per call (:meth:`Side.observe`). Its schema is fixed once
(the baseline's, or the first batch's). A small plain numeric batch of the schema's width
is copied into the row buffer (:mod:`.buffer`) and, for outputs, checked; anything else is
read (:mod:`.read`), lined up with the schema (:mod:`.schema`), row-sampled beyond
``row_cap`` rows, then buffered or reduced on its own. What a batch did besides feeding the
window (schema or output checks that fired, skip reasons, a row-sampling rate) comes back
as a :class:`Report`; ``None`` when there is nothing to say, the common case, so that the
per-call path allocates nothing.

The side's lock (the model's one lock, shared by both sides) is held for the buffer copy
and every window update; reading, aligning and checking run outside it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

from modelotel import attributes as A  # noqa: N812 - the project's alias for names
from modelotel.stats import direct, kernel
from modelotel.stats.accumulate import (
    CategoricalAccumulator,
    NumericAccumulator,
    spaced_rows,
    str_tally,
)
from modelotel.stats.baseline import FeatureProfile
from modelotel.stats.buffer import RowBuffer
from modelotel.stats.checks import output_checks, scores_ok
from modelotel.stats.containers import is_container, read_container
from modelotel.stats.frames import FrameLayout, category_array, is_frame
from modelotel.stats.image import CHANNELS, HEIGHT, WIDTH, ImageTable, is_image_name, is_pil
from modelotel.stats.read import FrameHint, extract
from modelotel.stats.reasons import SKIP_TOKENIZER, add
from modelotel.stats.report import Report, with_sample, with_skips
from modelotel.stats.schema import ColumnPlan, FeatureSpec, output_specs
from modelotel.stats.table import Table
from modelotel.stats.text import DESCRIPTORS, TEXT_NAME, TextColumns
from modelotel.stats.wide import NAMES as WIDE_NAMES
from modelotel.stats.wide import WideSummary, is_wide
from modelotel.stats.window import SideSummary, bin_labels, summarize

#: features of a wide batch's summary (the plan of a side that summarizes)
WIDE_FEATURES = len(WIDE_NAMES)
#: the plan of a side read as one lone text column without a tokenizer
LONE_TEXT = tuple(f"{TEXT_NAME}.{d}" for d in DESCRIPTORS)

Array = np.ndarray[Any, Any]


def _never(array: Array, n: int) -> None:  # pragma: no cover - an empty buffer never fills
    raise AssertionError("the empty row buffer took rows")


#: The buffer of a side without numeric columns (or no schema yet): takes no batch.
_NO_BUFFER = RowBuffer(1, 0, 0, _never)


class Side:
    """The inputs (``output=False``) or the outputs of one model (see the module doc).

    Args:
        output: model outputs (1-D batches are a column of values; output checks run), or
            inputs (a 1-D batch is one row of features).
        profiles: the baseline's profiles of this side (fixes the schema), or None.
        names: feature names for unnamed columns (inputs), or None.
        max_features: columns beyond this many get no statistics.
        row_cap: a batch of more rows is row-sampled down to about this many.
        lock: the model's lock.
        rng: the model's random generator (row sampling).
        tokenizer: adds a token count to the descriptors of text columns (:mod:`.text`).
        wide: the baseline's summary of wide unnamed batches (:mod:`.wide`), or None.
        image: the baseline's image shape (height, width, channels; :mod:`.image`), or None.

    Attributes:
        cut: columns of the baseline beyond ``max_features`` (they get no statistics).
        plan: the schema, or None until the first batch when there is no baseline.
        window / cat_window: the accumulators of the current window.
        total / cat_total: running totals, the closed windows merged in.
        buffer: the row buffer of the numeric columns.
        fast_width: width of a plain numeric numpy batch that needs no conversion (0: none).
        check_lo / check_hi: per numeric column, the training range the kernel's ``stage``
            checks outputs against (-inf / inf: no range), as float64 memoryviews.
        base_lo0 / base_hi0: the same as floats for one output column (None: no range).
    """

    def __init__(
        self,
        output: bool,
        profiles: Sequence[FeatureProfile] | None,
        names: Sequence[str] | None,
        max_features: int,
        row_cap: int,
        lock: threading.Lock,
        rng: np.random.Generator,
        tokenizer: Any = None,
        wide: WideSummary | None = None,
        image: tuple[int, int, int] | None = None,
    ) -> None:
        self.output = output
        # the shape of images (height, width, channels): the baseline's, else the first batch's
        self.image = image
        # wide unnamed batches (embeddings): the baseline's summary, else the first batch's
        self.wide = wide
        self.wide_ok = wide is not None or (not profiles and names is None)
        # which string columns are text: the baseline's decision, else the first batch's
        self.text = TextColumns([p.name for p in profiles] if profiles else None, tokenizer)
        self.profiles: dict[str, FeatureProfile] = {p.name: p for p in profiles or ()}
        self.names = tuple(names) if names is not None else None
        self.max_features = max_features
        self.row_cap = row_cap
        self.lock = lock
        self.rng = rng
        self.cut = 0
        self.plan: ColumnPlan | None = None
        self.window = NumericAccumulator(0)
        self.total = self.window.empty_like()
        self.cat_window: list[CategoricalAccumulator] = []
        self.cat_total: list[CategoricalAccumulator] = []
        self.bin_labels: tuple[tuple[str, ...], ...] = ()
        self.frame_hint = FrameHint()
        self.buffer = _NO_BUFFER
        self.base_lo: Array | None = None
        self.base_hi: Array | None = None
        self.base_lo0: float | None = None
        self.base_hi0: float | None = None
        # memoryviews: the kernel reads them through the buffer protocol, cheaper than an
        # array's, which describes itself anew on every call
        self.check_lo = self.check_hi = memoryview(b"")
        self.fast_width = 0
        self.text_fast = False
        self.record_names: tuple[str, ...] | None = None
        #: frames laid out like this (the frame hint's, while it is this one) are read from
        #: their blocks by the profiler (:func:`~.frames.block_columns`, :meth:`add_blocks`):
        #: a float64 block of the plan's numeric columns and its categoricals
        self.frame_layout: FrameLayout | None = None
        #: the compiled reader of the Python values this plan takes as they are (:mod:`.direct`)
        self.direct: Callable[[object], int] | None = None
        self.labels_only = False
        self.one_category = False
        #: schema problems reported in the current window (``(check, feature)``)
        self.reported: set[tuple[str, str]] = set()
        self.row_vector = not output and not (names is not None and len(names) == 1)
        if profiles:
            specs = [FeatureSpec(p.name, p.kind) for p in profiles]
            if len(specs) > max_features:
                self.cut = len(specs) - max_features
                specs = specs[:max_features]
            self._setup(ColumnPlan(specs))

    # ---- schema --------------------------------------------------------------------
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
        self.bin_labels = bin_labels(self.window, self.cat_window)
        if d:
            self.buffer = RowBuffer.for_width(d, self.row_cap, self._reduce)
        if self.output and self.profiles:
            lo = [self.profiles[n].min if n in self.profiles else None for n in plan.numeric]
            hi = [self.profiles[n].max if n in self.profiles else None for n in plan.numeric]
            self.base_lo = np.array([np.nan if v is None else v for v in lo], dtype=np.float64)
            self.base_hi = np.array([np.nan if v is None else v for v in hi], dtype=np.float64)
            if d == 1 and lo[0] is not None and hi[0] is not None:
                self.base_lo0, self.base_hi0 = float(lo[0]), float(hi[0])
        self.fast_width = d if d and not plan.categorical else 0
        #: a dict record with these keys in this order is one row of the plan's columns
        self.record_names = tuple(plan.numeric) if self.fast_width else None
        #: a str (or list of str) input is its descriptors, straight onto the hot path
        self.text_fast = self.fast_width == len(LONE_TEXT) and tuple(plan.numeric) == LONE_TEXT
        self.labels_only = self.output and not d and len(plan.categorical) == 1
        #: one categorical column and nothing else: a str input or output is its one value
        self.one_category = not d and len(plan.categorical) == 1
        if self.base_lo is not None and self.base_hi is not None:
            lo_arr = np.where(np.isnan(self.base_lo), -np.inf, self.base_lo)
            hi_arr = np.where(np.isnan(self.base_hi), np.inf, self.base_hi)
        else:
            lo_arr, hi_arr = np.full(d, -np.inf), np.full(d, np.inf)
        self.check_lo, self.check_hi = memoryview(lo_arr), memoryview(hi_arr)  # type: ignore[arg-type]
        self.direct = None
        if self.output and d == 1 and not plan.categorical:
            self.direct = partial(direct.scores, self.buffer, self.lock, self.base_lo0,
                                  self.base_hi0)
        elif not self.output and self.wide is None:
            if self.text_fast and self.text.tokenizer is None:
                if self.row_vector:  # (else a list of str is one column, not texts)
                    self.direct = partial(direct.texts, self.buffer, self.lock)
            elif self.record_names is not None:
                self.direct = partial(direct.records, self.buffer, self.lock, self.record_names)
        self.plan = plan

    def plan_for(self, table: Table, skipped: dict[str, int]) -> ColumnPlan:
        """The schema, decided from ``table`` if there is none yet (columns cut by
        ``max_features`` are added to ``skipped``)."""
        plan = self.plan
        if plan is not None:
            return plan
        with self.lock:
            if self.plan is None:
                if self.output:
                    self._setup(ColumnPlan(output_specs(table, self.max_features, skipped)))
                else:
                    self._setup(
                        ColumnPlan.from_table(table, self.names, self.max_features, skipped)
                    )
            assert self.plan is not None
            return self.plan

    # ---- per call ------------------------------------------------------------------
    def observe(self, x: object, rep: Report | None) -> Report | None:
        """Feed the window with one batch; returns ``rep`` with what else happened added
        (a new :class:`Report` if ``rep`` is None and something did)."""
        if (
            self.labels_only
            and type(x) is np.ndarray
            and x.ndim == 1
            and x.dtype.kind in "iubU"
            and 0 < x.shape[0] <= self.row_cap
        ):
            # a classifier's labels (one categorical output column): counted as they are,
            # what extract + align would hand over for a plain 1-D array of ints or strings
            with self.lock:
                self.cat_window[0].add(x)
            return rep
        if self.one_category:
            # one text (a str input, a label output), or a list of them as one column: what
            # extract + align make of it, values of the one categorical column
            if type(x) is str:
                with self.lock:
                    self.cat_window[0].add_one(x)
                return rep
            if type(x) is list and not self.row_vector and 0 < len(x) <= self.row_cap:
                tally = str_tally(x)
                if tally is not None:
                    with self.lock:
                        self.cat_window[0].add_labels(tally, len(x))
                    return rep
        put = self.direct
        if put is not None:
            got = put(x)
            if got > 0:
                return rep
            if got < 0:  # scores written; one is not finite or outside the training range
                return self.check_outputs(direct.scores_column(x), rep)
        width = self.fast_width
        if self.wide is not None:
            x = self.hot_wide(x)
        elif type(x) is dict and len(x) == width and tuple(x) == self.record_names:
            x = direct.record_row(x, width)
        elif self.text_fast and self.text.tokenizer is None:
            x = direct.described(x, self.row_vector, self.buffer.max_batch)
        if width == 1 and (type(x) is float or type(x) is int) and not self.row_vector:
            # a scalar score (a dict record's or a str's prediction): what extract() makes of
            # it, a one-value float64 column, without its isinstance chain and errstate
            try:  # noqa: SIM105 - suppress() costs a context manager per call
                x = np.array((x,), dtype=np.float64)
            except OverflowError:  # an int beyond float64: the careful path counts it
                pass
        if width and type(x) is np.ndarray and x.dtype.kind in "fiub" and x.dtype.itemsize <= 8:
            # the hot path: a plain numeric array of the expected width, no conversion; only
            # ops that never warn (min, max, compares, a copy into float64: longdouble, whose
            # copy can overflow, takes the other path), so no np.errstate (~1.4 us) here
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
                buf = self.buffer
                if 0 < rows <= buf.max_batch:
                    if self.output:
                        if X.ndim == 2:
                            # (not check_outputs: one Python call fewer on every call)
                            fired = output_checks(X, self.base_lo, self.base_hi)
                            if fired:
                                rep = self._fired(fired, rep)
                        elif not scores_ok(X, self.base_lo0, self.base_hi0):
                            rep = self.check_outputs(X.reshape(-1, 1), rep)
                    with self.lock:
                        buf.append(X, rows)
                    return rep
                if rows and X.dtype == np.float64:
                    # a batch too big for the buffer: its row sample goes to the reduction
                    # as the general path's does (which first builds a table and aligns it)
                    return self._add_big(X if X.ndim == 2 else X.reshape(rows, 1), rows, rep)
        with np.errstate(all="ignore"):  # the host may have set np.seterr(all="raise")
            return self._observe_any(x, rep)

    def add_blocks(self, X: Array, columns: dict[str, Any]) -> bool:
        """Add a frame read from its blocks (:func:`~.frames.block_columns`: the float64
        block and the values of each categorical column); False (nothing added) for more
        rows than ``row_cap``, which the general reader samples."""
        if not 0 < X.shape[0] <= self.row_cap:
            return False
        self._add_numeric(X, None)
        with self.lock:
            self.add_columns(columns)
        return True

    def add_columns(self, columns: dict[str, Any]) -> None:
        """Add each categorical column's values, as :func:`~.frames.block_columns` read
        them (lock held)."""
        assert self.plan is not None
        for acc, name in zip(self.cat_window, self.plan.categorical, strict=True):
            values = columns[name]
            t = type(values)
            if t is list:
                acc.add_items(values)
            elif acc.add_later(values):
                acc.settle(category_array)  # bounded: what waits holds the caller's memory

    def _add_big(self, X: Array, rows: int, rep: Report | None) -> Report | None:
        """A float64 batch of the plan's width (``rows x width``) beyond the row buffer."""
        if self.output:
            rep = self.check_outputs(X, rep)  # on every row: a NaN must not hide in a sample
        sample = self._row_sample(rows)
        if sample is not None:
            rep = with_sample(rep, rows, sample)
            X = X[sample]
        # (no np.errstate here, ~10 us cold: the accumulators guard their own numpy work)
        self._add_numeric(X, None)
        return rep

    def hot_wide(self, x: Any) -> Any:
        """``x`` as its wide summary (the rows x 6 float64 matrix the general path makes of
        it) when it is an embedding batch of the summary's width that fits the hot path;
        else ``x`` as it is."""
        wide = self.wide
        if wide is not None and self.fast_width == WIDE_FEATURES:
            return wide.hot(x, self.buffer.max_batch)
        return x

    def check_outputs(self, X: Array, rep: Report | None) -> Report | None:
        """Run the per-call output checks on a ``rows x k`` batch of this side's numeric
        columns; what fired is added to ``rep`` (or to a new :class:`Report`)."""
        fired = output_checks(X, self.base_lo, self.base_hi)
        return self._fired(fired, rep) if fired else rep

    def _fired(self, fired: list[tuple[str, int]], rep: Report | None) -> Report:
        """``rep`` (or a new report) with the output checks ``fired`` (check, column)."""
        if rep is None:
            rep = Report()
        assert self.plan is not None
        numeric = self.plan.numeric
        rep.checks.extend((check, numeric[j], True) for check, j in fired)
        return rep

    def _row_sample(self, rows: int) -> slice | None:
        """A uniform systematic sample of at most ``row_cap`` rows (None: take them all)."""
        cap = self.row_cap
        if rows <= cap:
            return None
        step = -(-rows // cap)
        # (random(), not integers(): the same uniform offset through a shorter code path,
        # which is cold after a big batch went through the model)
        return slice(int(self.rng.random() * step), None, step)

    def _observe_any(self, x: Any, rep: Report | None) -> Report | None:
        # the report is made only when there is something to say (most calls have nothing)
        if (
            isinstance(x, (list, tuple))
            and len(x) > self.row_cap
            and (
                not self.row_vector
                or isinstance(x[0], (list, tuple, dict, np.ndarray, str))
                or is_pil(x[0])
            )
        ) or is_frame(x):
            # rows of Python objects, PIL images (or a frame) are converted one by one: sample
            # the rows before converting, not after
            rows_in = len(x)
            pre = self._row_sample(rows_in)
            if pre is not None:
                rep = with_sample(rep, rows_in, pre)
                x = x.iloc[pre] if hasattr(x, "iloc") else x[pre]
        skipped: dict[str, int] = {}
        if is_container(x):  # a DMatrix / Pool: rows are sampled before they are made dense
            sampled: list[tuple[int, slice]] = []
            table = read_container(x, skipped, self._row_sample, sampled)
            for rows_in, pre in sampled:
                rep = with_sample(rep, rows_in, pre)
        else:
            table = extract(x, self.row_vector, self.frame_hint, skipped)
        if table is None:
            return with_skips(rep, skipped)
        if table.columns is not None:  # text columns become their numeric descriptors
            text = self.text
            table = text.expand(table)
            if text.failed:
                add(skipped, SKIP_TOKENIZER, text.failed)
                text.failed = 0
        wide_issue = None
        image_issues: list[tuple[str, str]] = []
        if type(table) is ImageTable:
            image_issues = self._check_image(table)
        elif table.matrix is not None and self.wide_ok:
            table, wide_issue = self._summarize_wide(table)
        plan = self.plan_for(table, skipped)
        X, nulls, cats, issues = plan.align(table, skipped)
        layout = self.frame_hint.layout  # (if read from this frame's blocks: its labels)
        if (layout is not None and layout.labels is table.names and X is table.block
                and not issues and not self.output
                and all(self.text.decided.get(n) is False for n in plan.categorical)):
            self.frame_layout = layout  # the plan takes such frames' blocks as they are
        if wide_issue is not None:
            issues.append(wide_issue)
        if image_issues:
            if image_issues[0][1] == CHANNELS:
                # other channels give other descriptor names: one problem, not one per name
                issues = [i for i in issues if not is_image_name(i[1])]
            issues.extend(image_issues)
        output = self.output
        if issues:
            issues = self._first_in_window(issues)
            if issues:
                if rep is None:
                    rep = Report()
                rep.checks.extend((check, feature, output) for check, feature in issues)
        rows = table.rows
        if X is not None and X.shape[1] and output:
            rep = self.check_outputs(X, rep)  # on every row: a NaN must not hide in a sample
        sample = self._row_sample(rows)
        if sample is not None:
            rep = with_sample(rep, rows, sample)
            kept = len(range(rows)[sample])
            if X is not None:
                X = X[sample]
                if nulls is not None:
                    # nulls were counted over all rows: scale to the sample, within its NaN
                    est = np.round(nulls * (kept / rows)).astype(np.int64)
                    nulls = np.minimum(est, np.isnan(X).sum(axis=0))
            cats = [c[sample] for c in cats]
        if X is not None and X.shape[1]:
            self._add_numeric(X, nulls)
        if cats:
            with self.lock:
                for acc, values in zip(self.cat_window, cats, strict=True):
                    acc.add(values)
        return with_skips(rep, skipped) if skipped else rep

    def _summarize_wide(self, table: Table) -> tuple[Table, tuple[str, str] | None]:
        """A wide unnamed batch as its fixed-size summary (:mod:`.wide`), and the schema
        problem of a batch whose width is not the summary's (or None)."""
        wide = self.wide
        if wide is None:
            if self.plan is not None or not is_wide(table):
                return table, None
            with self.lock:  # (another thread may have decided meanwhile)
                if self.wide is None and self.plan is None:
                    self.wide = WideSummary.fit(table.matrix)  # type: ignore[arg-type]
                found: WideSummary | None = self.wide
            if found is None:
                return table, None
            wide = found
        assert table.matrix is not None
        width = table.matrix.shape[1]
        issue = None
        if width > wide.width:
            issue = (A.CHECK_SCHEMA_UNEXPECTED_FEATURE, str(wide.width))
        elif width < wide.width:
            issue = (A.CHECK_SCHEMA_MISSING_FEATURE, str(width))
        return wide.apply(table), issue

    def _check_image(self, table: ImageTable) -> list[tuple[str, str]]:
        """The schema problems of a batch of images whose shape is not the side's
        (channels first, then height and width), and the side's shape set from the first
        batch of images when there is none."""
        expected = self.image
        got = table.shape
        if expected is None:
            with self.lock:  # (another thread may have decided meanwhile)
                if self.image is None:
                    self.image = got
                expected = self.image
        if got == expected:
            return []
        check = A.CHECK_SCHEMA_SHAPE_CHANGE
        return [(check, name) for name, i in ((CHANNELS, 2), (HEIGHT, 0), (WIDTH, 1))
                if got[i] != expected[i]]

    def _first_in_window(self, issues: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The schema problems not yet reported in this window (each is reported once per
        window: a wider batch on every call is one problem, not one per call)."""
        with self.lock:
            reported = self.reported
            new = [i for i in dict.fromkeys(issues) if i not in reported]
            reported.update(new)
        return new

    def _add_numeric(self, X: Array, nulls: Array | None) -> None:
        rows = X.shape[0]
        if (
            rows <= self.buffer.max_batch
            and X.dtype.kind in "fiub"
            and X.dtype.itemsize <= 8  # a longdouble copy can overflow: add() converts it
        ):
            with self.lock:
                self.buffer.append(X, rows)
                if nulls is not None:
                    self.window.null += nulls
                    self.window.nan -= nulls
            return
        tmp = self.window.empty_like()
        # off the lock: a big batch must not stall other threads
        if kernel.accumulate is not None and X.dtype == np.float64:
            # the compiled kernel: one pass, GIL released (other threads serve meanwhile).
            # A row sample of a batch (contiguous rows, evenly spaced) is read in place; any
            # other layout (a column block of a frame) is copied to rows first, which costs
            # less than the numpy reductions' several passes (and their columns-first copy)
            if not X.flags.c_contiguous and not spaced_rows(X):
                X = np.ascontiguousarray(X)
            tmp.add_rows(X, rows, nulls)
        elif X.flags.f_contiguous and not X.flags.c_contiguous:
            tmp.add(X.T, nulls, columns_first=True)  # a pandas block: already columns first
        else:
            tmp.add(X, nulls)
        with self.lock:
            self.window.merge(tmp)

    def _reduce(self, array: Array, n: int) -> None:
        """The row buffer's sink: its first ``n`` rows into the current window."""
        self.window.add_rows(array, n)

    # ---- window end ----------------------------------------------------------------
    def swap(self) -> tuple[NumericAccumulator, list[CategoricalAccumulator]] | None:
        """End the window (lock held): reduce the buffer, put empty accumulators in place,
        return the closed ones (None: no schema yet, nothing was seen)."""
        if self.plan is None:
            return None
        self.buffer.flush()
        win, cat_win = self.window, self.cat_window
        self.reported = set()
        self.window = win.empty_like()
        self.cat_window = [c.empty_like() for c in cat_win]
        return win, cat_win

    def summarize(
        self, closed: tuple[NumericAccumulator, list[CategoricalAccumulator]] | None
    ) -> SideSummary | None:
        """Merge a window :meth:`swap` closed into the running totals and summarize it
        (off the lock; one close at a time)."""
        if closed is None or self.plan is None:
            return None
        win, cat_win = closed
        self.total.merge(win)
        for tot, w in zip(self.cat_total, cat_win, strict=True):
            w.settle(category_array)
            tot.merge(w)
        return summarize(self.output, self.plan, self.profiles, win, cat_win, self.total,
                         self.cat_total, self.bin_labels)


__all__ = ["Report", "Side"]  # (Report: re-exported from .report)
