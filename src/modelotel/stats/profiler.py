"""The streaming profiler of one model: its inputs and outputs, call after call, window after
window. Pure: no OpenTelemetry, nothing global; it returns what happened.

Example:
    >>> import numpy as np
    >>> from modelotel.stats.profiler import Profiler
    >>> p = Profiler(feature_names=["a", "b"])
    >>> p.observe(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([0.5, np.nan])).checks
    [('output_nonfinite', '0', True)]
    >>> snap = p.close()
    >>> [g for g in snap.inputs.gauges if g[0] == "mean"]
    [('mean', 'a', 2.0), ('mean', 'b', 3.0)]

:meth:`Profiler.observe` takes one call's input and output batches and returns ``None``
(the common case: the window was fed, nothing else happened) or a
:class:`~modelotel.stats.report.Report`: the checks that fired (output checks, schema checks),
what was skipped and why, the row-sampling rate of a batch larger than ``row_cap``. The
caller turns that into telemetry. :meth:`Profiler.close` ends the window and returns its
:class:`~modelotel.stats.window.Snapshot`: gauges, drift against the baseline, window
checks, and the running totals.

The online case of all, a small float batch in and ``k`` float scores per row out (a
regressor's value, a classifier's probabilities), is fused into one step under one lock:
one call of the compiled kernel (:mod:`.kernel`) copies both batches into their row
buffers and checks the scores or, without the kernel, two buffer appends and a Python
check of one score per row. Inside a real call every numpy operation and every Python call
costs ~0.2-1 us (cold code), so that step is written as one function. Everything else goes
through each :class:`~modelotel.stats.side.Side` on its own.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from modelotel.stats import kernel
from modelotel.stats.baseline import Baseline, BaselineError
from modelotel.stats.checks import scores_ok
from modelotel.stats.frames import block_columns, numeric_matrix
from modelotel.stats.read import raised_by_input
from modelotel.stats.reasons import SKIP_UNREADABLE, add
from modelotel.stats.report import Report
from modelotel.stats.side import Side
from modelotel.stats.wide import WideSummary
from modelotel.stats.window import Snapshot

_F64 = np.dtype(np.float64)
_F32 = np.dtype(np.float32)


class _Absent:
    """The default "no batch" marker of :meth:`Profiler.observe` (None is a valid output)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


class Profiler:
    """Streaming statistics of one model's inputs and outputs (see the module doc).

    Args:
        baseline: the training baseline (fixes the schemas, bins, ranges), or None.
        feature_names: names of the input's unnamed columns, or None (the baseline's).
        max_features: columns beyond this many per side get no statistics.
        row_cap: a batch of more rows is row-sampled down to about this many.
        absent: what :meth:`observe` takes for "no batch on this side" (the caller's
            marker, compared by identity).
        tokenizer: adds token counts to the descriptors of text columns, or None.

    Attributes:
        inputs, outputs: the two :class:`~modelotel.stats.side.Side` objects (replaced by
            :meth:`reset`).
        lock: the model's lock (both sides' buffers and windows).
        cut: baseline columns beyond ``max_features`` (no statistics), counted per reset.
    """

    def __init__(
        self,
        baseline: Baseline | None = None,
        feature_names: Sequence[str] | None = None,
        max_features: int = 200,
        row_cap: int = 1024,
        absent: Any = ABSENT,
        tokenizer: Any = None,
    ) -> None:
        self.baseline = baseline
        self.feature_names = feature_names
        self.max_features = max_features
        self.row_cap = row_cap
        self.absent = absent
        self.tokenizer = tokenizer
        self.lock = threading.Lock()
        self._closing = threading.Lock()  # one close at a time (calls are not held by it)
        self.rng = np.random.default_rng()
        self.reset()

    def reset(self) -> None:
        """Forget everything seen: new sides with the baseline's schema (or none yet)."""
        b = self.baseline
        names = self.feature_names
        if names is None and b is not None:
            names = b.feature_names
        args = (self.max_features, self.row_cap, self.lock, self.rng, self.tokenizer)
        with self.lock:
            self.inputs = Side(False, b.features if b else None, names, *args,
                               wide=_wide(b, "inputs"), image=_image(b, "inputs"))
            self.outputs = Side(True, b.outputs if b else None, None, *args,
                                wide=_wide(b, "outputs"), image=_image(b, "outputs"))
        self.cut = self.inputs.cut + self.outputs.cut

    # ---- per call ------------------------------------------------------------------
    def observe(self, x: object, y: object) -> Report | None:
        """Feed the window with one call's input ``x`` and output ``y`` (either may be the
        ``absent`` marker). Returns what happened besides (None: nothing).

        Raises:
            Exception: a bug of ours (or of our use of numpy / pandas) while reading; an
                exception raised by the input's own code is a skip (``stats.unreadable_input``).
        """
        inp, out = self.inputs, self.outputs
        if out.wide is not None and type(y) is np.ndarray:
            y = out.hot_wide(y)  # an embedding output: its summary takes the fused step
        width = inp.fast_width
        frame = x
        blocks = columns = None  # a mixed frame's block and categorical columns
        if type(x) is inp.frame_hint.frame_type:
            if inp.record_names is not None:
                # a frame of the numeric columns the side expects, in order: its block (a
                # view) takes the fused step too (a pandas block is columns first; stage
                # copies any strides), or the side's hot path when the fused step declines
                x = numeric_matrix(x, inp.record_names, inp.frame_hint)
            elif inp.frame_layout is not None:
                # a float64 block and categorical columns: the block takes the fused step,
                # the columns are counted under the same lock
                blocks = block_columns(x, inp.frame_hint, inp.frame_layout)
                if blocks is not None:
                    x, columns = blocks
                    width = inp.buffer.width
        if type(x) is np.ndarray and type(y) is np.ndarray:
            xd, yd = x.dtype, y.dtype
            stage = kernel.stage  # read per call: the kernel can be switched off at run time
            if stage is not None:
                if (xd is _F64 or xd is _F32) and (yd is _F64 or yd is _F32):
                    xs, ys = x.shape, y.shape
                    k = out.fast_width
                    if (
                        len(xs) == 2
                        and width
                        and xs[1] == width
                        and k
                        and ((len(ys) == 1 and k == 1) or (len(ys) == 2 and ys[1] == k))
                    ):
                        rows, n_out = xs[0], ys[0]
                        ib, ob = inp.buffer, out.buffer
                        if 0 < rows <= ib.max_batch and 0 < n_out <= ob.max_batch:
                            with self.lock:
                                ok = stage(ib.bytes, ib.reserve(rows), x, ob.bytes,
                                           ob.reserve(n_out), y, out.check_lo, out.check_hi)
                                # None: not native float64 / float32, nothing written
                                # (the general path)
                                if ok is not None:
                                    ib.n += rows  # commit
                                    ob.n += n_out
                                    if columns is not None:
                                        inp.add_columns(columns)
                            if ok is not None:
                                if ok:
                                    return None
                                return out.check_outputs(y if len(ys) == 2 else y.reshape(-1, 1),
                                                         None)
            elif xd is _F64 and yd is _F64:
                # the same without the kernel, for one float64 score per row
                xs, ys = x.shape, y.shape
                if (
                    len(xs) == 2
                    and len(ys) == 1
                    and width
                    and xs[1] == width
                    and out.fast_width == 1
                ):
                    rows, n_out = xs[0], ys[0]
                    ib, ob = inp.buffer, out.buffer
                    if 0 < rows <= ib.max_batch and 0 < n_out <= ob.max_batch:
                        rep = None
                        if not scores_ok(y, out.base_lo0, out.base_hi0):
                            rep = out.check_outputs(y.reshape(-1, 1), None)
                        with self.lock:
                            ib.append(x, rows)
                            ob.append(y, n_out)
                            if columns is not None:
                                inp.add_columns(columns)
                        return rep
        absent = self.absent
        rep = None
        if blocks is not None:
            # the fused step declined (the output's kind): the blocks on their own, or the
            # frame through the general reader when it has more rows than the side takes
            x = absent if inp.add_blocks(*blocks) else frame
        if x is not absent:
            try:
                rep = inp.observe(x, None)
            except Exception as exc:
                if not raised_by_input(exc):
                    raise
                rep = _unreadable(rep)
        if y is not absent:
            try:
                rep = out.observe(y, rep)
            except Exception as exc:
                if not raised_by_input(exc):
                    raise
                rep = _unreadable(rep)
        return rep

    # ---- window end ----------------------------------------------------------------
    def close(self) -> Snapshot:
        """End the current window and return its :class:`~modelotel.stats.window.Snapshot`.

        The windows are swapped under the lock (a call waits only for that); the closed
        ones are merged into the running totals and summarized after it is released.
        """
        with self._closing:
            with self.lock:
                inp, out = self.inputs, self.outputs
                closed_in, closed_out = inp.swap(), out.swap()
            # extreme values (1e308, subnormals) overflow / underflow in the moments and
            # drift; the host may have set np.seterr(all="raise") or run with -W error
            with np.errstate(all="ignore"):
                return Snapshot(inp.summarize(closed_in), out.summarize(closed_out))


def _wide(baseline: Baseline | None, side: str) -> WideSummary | None:
    """The baseline's summary of a side's wide batches (a malformed one was refused when
    the baseline was loaded; one built in code without it is not used)."""
    if baseline is None:
        return None
    try:
        return baseline.wide_summary(side)
    except BaselineError:
        return None


def _image(baseline: Baseline | None, side: str) -> tuple[int, int, int] | None:
    """The baseline's image shape of a side (a malformed one was refused at load)."""
    if baseline is None:
        return None
    try:
        return baseline.image_shape(side)
    except BaselineError:
        return None


def _unreadable(rep: Report | None) -> Report:
    """``rep`` (or a new report) with one unreadable batch recorded."""
    if rep is None:
        rep = Report()
    add(rep.skipped, SKIP_UNREADABLE)
    return rep


__all__ = ["ABSENT", "Profiler", "Report"]
