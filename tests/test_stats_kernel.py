"""The compiled kernel (``modelotel.stats._kernel``) against numpy, and its argument checks.

The kernel is optional (an install without a C compiler runs numpy instead); where a
compiler is at hand, as in CI, it must have been built: the per-call target of
benchmarks/stats.py depends on it.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelotel.stats import kernel
from modelotel.stats.accumulate import NumericAccumulator

needs_kernel = pytest.mark.skipif(not kernel.COMPILED, reason="the C kernel is not built here")


def test_the_kernel_is_built_where_a_compiler_is() -> None:
    headers = Path(sysconfig.get_paths()["include"], "Python.h").exists()
    if not (shutil.which("cc") or shutil.which("gcc")) or not headers:
        pytest.skip("no C compiler or Python headers: numpy runs instead")
    if os.environ.get("MODELOTEL_STATS_KERNEL", "auto") == "numpy":
        pytest.skip("MODELOTEL_STATS_KERNEL=numpy")
    assert kernel.COMPILED, f"pip install -e . should have compiled the kernel: {kernel.REASON}"
    assert kernel.STATUS == "compiled"
    assert kernel.stage is not None and kernel.accumulate is not None


def test_environment_turns_the_kernel_off_and_warns_on_nonsense() -> None:
    code = "from modelotel.stats import kernel; print(kernel.COMPILED, kernel.STATUS)"
    env = {**os.environ, "MODELOTEL_STATS_KERNEL": "numpy"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.split() == ["False", "numpy-chosen"]
    assert out.stderr == ""  # numpy on purpose: nothing to warn about
    env["MODELOTEL_STATS_KERNEL"] = "fortran"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.split()[0] == str(kernel.COMPILED)  # 'auto'
    assert "MODELOTEL_STATS_KERNEL='fortran'" in out.stderr


# an install without a C compiler has no modelotel/stats/_kernel*.so; a kernel built for
# another interpreter is there but does not load: hide it, or make it fail, at import
_HIDE_KERNEL = """
import importlib.abc, sys
class NoKernel(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "modelotel.stats._kernel":
            raise {error}
        return None
sys.meta_path.insert(0, NoKernel())
"""
_NOT_BUILT = _HIDE_KERNEL.format(error="ModuleNotFoundError('no', name=name)")
_UNLOADABLE = _HIDE_KERNEL.format(error="ImportError('undefined symbol: PyFoo')")


def test_without_the_compiled_module_numpy_does_the_work_and_one_line_says_so() -> None:
    code = _NOT_BUILT + """
import numpy as np, modelotel
from modelotel.stats import kernel
from modelotel.testing import capture
assert not kernel.COMPILED and kernel.stage is None and kernel.accumulate is None
print(kernel.STATUS)
predict = modelotel.instrument(model="no-kernel", feature_names=["a", "b"])(lambda X: X[:, 0])
with capture() as cap:
    for _ in range(3000):  # fills and flushes the row buffer
        predict(np.ones((32, 2)))
    print(cap.metric("ml.feature.count", **{"ml.feature": "b"}).value)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "MODELOTEL_STRICT": "1"})
    assert out.stdout.split() == ["not-built", str(3000 * 32)]
    # one line for the process, not one per call; it says what to do
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert "compiled statistics kernel is not installed" in lines[0]
    assert "modelotel doctor" in lines[0] and "MODELOTEL_STATS_KERNEL=numpy" in lines[0]


def test_a_kernel_that_does_not_load_is_reported_and_numpy_runs() -> None:
    code = _UNLOADABLE + """
from modelotel.stats import kernel
print(kernel.COMPILED, kernel.STATUS)
print(kernel.REASON)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    status, reason = out.stdout.splitlines()
    assert status.split() == ["False", "unloadable"]
    assert "undefined symbol: PyFoo" in reason
    assert len(out.stderr.splitlines()) == 1 and "does not load" in out.stderr


def test_a_kernel_built_from_other_sources_is_not_used() -> None:
    # an editable install not rebuilt after _kernel.c changed its calling convention
    code = """
import sys, types
stale = types.ModuleType("modelotel.stats._kernel")
stale.ABI = 1
stale.stage = stale.accumulate = lambda *a: None
sys.modules["modelotel.stats._kernel"] = stale
from modelotel.stats import kernel
print(kernel.COMPILED, kernel.stage is None, kernel.accumulate is None, kernel.STATUS)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "True", "True", "stale"]
    assert f"ABI 1, expected {kernel.ABI}" in out.stderr and "Reinstall modelotel" in out.stderr
    assert len(out.stderr.splitlines()) == 1


@needs_kernel
def test_the_built_kernel_matches_the_sources() -> None:
    from modelotel.stats import _kernel

    assert _kernel.ABI == kernel.ABI


# ---- accumulate ------------------------------------------------------------------------

_SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e300, -1e300, 5e-324]


@st.composite
def _batches(draw: st.DrawFn) -> tuple[np.ndarray, list[np.ndarray], int]:
    d = draw(st.integers(1, 12))
    n = draw(st.integers(0, 300))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([1.0, 1e-8, 1e8]))
    X = rng.normal(size=(n, d)) * scale + draw(st.sampled_from([0.0, 5.0, 1e6]))
    if draw(st.booleans()):
        X = np.round(X)  # ties: many values equal to an edge
    edges: list[np.ndarray] = []
    for _ in range(d):
        k = draw(st.sampled_from([0, 2, 5, 11]))
        e = np.sort(np.round(rng.normal(size=k) * scale, 1)) if k else np.zeros(0)
        edges.append(e)
    if n and draw(st.booleans()):  # non-finite and extreme values at random places
        for _ in range(draw(st.integers(1, 20))):
            X[rng.integers(n), rng.integers(d)] = _SPECIAL[rng.integers(len(_SPECIAL))]
    extra = draw(st.integers(0, 3))  # the buffer is longer than the rows reduced
    buf = np.vstack([X, np.full((extra, d), 12345.0)])
    return buf, edges, n


def _fresh(d: int, edges: list[np.ndarray]) -> NumericAccumulator:
    return NumericAccumulator(d, edges if any(len(e) for e in edges) else None)


@needs_kernel
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_batches())
def test_accumulate_equals_numpy(case: tuple[np.ndarray, list[np.ndarray], int]) -> None:
    buf, edges, n = case
    d = buf.shape[1]
    ours, ref = _fresh(d, edges), _fresh(d, edges)
    ours.add_rows(buf, n)  # the kernel
    ref.add(buf[:n])  # numpy
    for name in ("count", "nan", "inf", "null", "ge", "binned", "min", "max"):
        assert np.array_equal(getattr(ours, name), getattr(ref, name)), name
    scale = np.maximum(np.abs(ref.mean), np.sqrt(np.abs(ref.m2) / np.maximum(ref.count, 1)))
    with np.errstate(all="ignore"):
        finite = np.isfinite(ref.mean) & np.isfinite(ref.m2)
    # moments: the same up to rounding (the kernel sums block by block, numpy pairwise)
    assert np.allclose(ours.mean[finite], ref.mean[finite], rtol=1e-9,
                       atol=1e-9 * float(scale[finite].max(initial=0.0)))
    assert np.allclose(ours.m2[finite], ref.m2[finite], rtol=1e-7,
                       atol=1e-9 * float((scale[finite] ** 2 * n).max(initial=0.0)))


@needs_kernel
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_batches(), st.integers(1, 7), st.integers(0, 6))
def test_accumulate_reads_a_row_sample_in_place_as_its_copy(
    case: tuple[np.ndarray, list[np.ndarray], int], step: int, start: int
) -> None:
    buf, edges, _ = case
    d = buf.shape[1]
    view = buf[start::step]  # contiguous rows, evenly spaced: no copy is made for the kernel
    n = view.shape[0]
    ours, ref = _fresh(d, edges), _fresh(d, edges)
    ours.add_rows(view, n)
    ref.add(np.ascontiguousarray(view))
    for name in ("count", "nan", "inf", "ge", "binned", "min", "max"):
        assert np.array_equal(getattr(ours, name), getattr(ref, name)), name
    assert np.array_equal(np.isnan(ours.mean), np.isnan(ref.mean))
    with np.errstate(all="ignore"):
        finite = np.isfinite(ref.mean) & np.isfinite(ref.m2) & (np.abs(ref.mean) < 1e100)
    assert np.allclose(ours.mean[finite], ref.mean[finite], rtol=1e-9, atol=1e-3)


@needs_kernel
def test_accumulate_folds_into_a_window_like_repeated_adds() -> None:
    rng = np.random.default_rng(3)
    edges = [np.linspace(-2, 2, 11)] * 4
    ours, ref = NumericAccumulator(4, edges), NumericAccumulator(4, edges)
    for _ in range(5):
        X = rng.normal(size=(1000, 4))
        X[rng.random(X.shape) < 0.02] = np.nan
        ours.add_rows(X, 1000)
        ref.add(X)
    for name in ("count", "nan", "inf", "ge", "binned", "min", "max"):
        assert np.array_equal(getattr(ours, name), getattr(ref, name)), name
    assert np.allclose(ours.mean, ref.mean, rtol=1e-12)
    assert np.allclose(ours.m2, ref.m2, rtol=1e-10)


@needs_kernel
def test_accumulate_refuses_what_it_cannot_read_or_write() -> None:
    acc = kernel.accumulate
    assert acc is not None
    d, K = 3, 2
    X = np.zeros((4, d))
    T = np.zeros((K, d))

    def outs() -> list[np.ndarray]:
        return [np.zeros(d, np.int64), np.zeros(d), np.zeros(d), np.zeros(d, np.int64),
                np.zeros(d, np.int64), np.zeros(d), np.zeros(d), np.zeros((K, d), np.int64)]

    acc(X, 4, d, T, K, *outs())  # well-formed: fine
    with pytest.raises(ValueError, match="X: 96 bytes, 120 needed"):
        acc(X, 5, d, T, K, *outs())
    with pytest.raises(ValueError, match="T:"):
        acc(X, 4, d, T, K + 1, *outs())
    with pytest.raises(TypeError, match="float64"):
        acc(X.astype(np.float32), 2, d, T, K, *outs())
    with pytest.raises(ValueError, match="bad n, d or K"):
        acc(X, -1, d, T, K, *outs())
    with pytest.raises(ValueError, match="bad n, d or K"):
        acc(X, 4, 0, T, K, *outs())
    short = outs()
    short[7] = np.zeros(d, np.int64)
    with pytest.raises(ValueError, match="ge:"):
        acc(X, 4, d, T, K, *short)
    small = outs()
    small[0] = np.zeros(d, np.int32)
    with pytest.raises(ValueError, match="count: 12 bytes, 24 needed"):
        acc(X, 4, d, T, K, *small)
    for i, wrong in ((0, np.zeros(d)), (1, np.zeros(d, np.int64)), (7, np.zeros((K, d)))):
        swapped = outs()
        swapped[i] = wrong
        with pytest.raises(TypeError, match=r"must be (int|float)64"):
            acc(X, 4, d, T, K, *swapped)
    ro = outs()
    ro[1].setflags(write=False)
    with pytest.raises((BufferError, ValueError)):
        acc(X, 4, d, T, K, *ro)
    with pytest.raises(ValueError, match="evenly spaced rows"):  # columns not contiguous
        acc(np.zeros((4, 2 * d))[:, ::2], 4, d, T, K, *outs())
    with pytest.raises(ValueError, match="evenly spaced rows"):  # rows backwards
        acc(np.zeros((8, d))[::-2], 4, d, T, K, *outs())
    with pytest.raises(ValueError, match="evenly spaced rows"):  # a column short
        acc(np.zeros((8, d + 1))[::2, :d - 1], 4, d, T, K, *outs())
    with pytest.raises(ValueError, match="X: 4 rows, 5 needed"):
        acc(np.zeros((8, d))[::2], 5, d, T, K, *outs())
    acc(np.zeros((8, d))[1::2], 4, d, T, K, *outs())  # every other row: read in place


@needs_kernel
def test_accumulate_releases_the_gil() -> None:
    import threading
    import time

    acc = kernel.accumulate
    assert acc is not None
    d = 50
    X = np.random.default_rng(0).normal(size=(60_000, d))
    T = np.tile(np.linspace(-2, 2, 11)[:, None], (1, d))
    ticks = []
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0)

    outs = [np.zeros(d, np.int64), np.zeros(d), np.zeros(d), np.zeros(d, np.int64),
            np.zeros(d, np.int64), np.zeros(d), np.zeros(d), np.zeros((11, d), np.int64)]
    t = threading.Thread(target=ticker)
    t.start()
    time.sleep(0.01)
    try:
        before = len(ticks)
        for _ in range(20):  # ~3M values per call: long enough for the other thread to run
            acc(X, 60_000, d, T, 11, *outs)
        during = len(ticks) - before
    finally:
        stop.set()
        t.join()
    assert during > 20, during  # the ticker ran while the kernel was reducing


# ---- stage -----------------------------------------------------------------------------


def _oracle(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> bool:
    y2 = y.reshape(len(y), -1).astype(np.float64)
    return bool(np.isfinite(y2).all() and (y2 >= lo).all() and (y2 <= hi).all())


_BOUNDS = [(-1.0, 1.0), (-np.inf, np.inf), (0.0, 0.0), (-2.0, 0.5)]


@needs_kernel
@settings(max_examples=400, deadline=None)
@given(
    rows=st.integers(1, 80),
    d=st.integers(1, 8),
    k=st.integers(0, 4),  # 0: 1-D scores; else k columns
    dtypes=st.tuples(st.sampled_from([np.float64, np.float32]),
                     st.sampled_from([np.float64, np.float32])),
    specials=st.lists(st.tuples(st.integers(0, 319), st.sampled_from([*_SPECIAL, 2.0, -2.0]))),
    bounds=st.lists(st.sampled_from(_BOUNDS), min_size=4, max_size=4),
    offsets=st.tuples(st.integers(0, 5), st.integers(0, 5)),
    layouts=st.tuples(st.sampled_from(["C", "F", "spaced"]), st.sampled_from(["C", "spaced"])),
)
def test_stage_writes_and_checks_like_numpy(
    rows: int, d: int, k: int, dtypes: tuple[Any, Any], specials: list[tuple[int, float]],
    bounds: list[tuple[float, float]], offsets: tuple[int, int], layouts: tuple[str, str],
) -> None:
    stage = kernel.stage
    assert stage is not None
    rng = np.random.default_rng(rows * 31 + d)
    x = rng.uniform(-1, 1, size=(rows, d)).astype(dtypes[0])
    y = rng.uniform(-1, 1, size=(rows, k) if k else rows)
    flat = y.reshape(-1)
    for at, v in specials:
        flat[at % flat.size] = v
    with np.errstate(over="ignore"):  # 1e300 as float32 is inf: the kernel sees what y holds
        y = y.astype(dtypes[1])
    # any strides are read as rows: a pandas block's transpose (F), a column slice of a wider
    # array (spaced: predict_proba(X)[:, 1] for the scores)
    if layouts[0] == "F":
        x = np.asfortranarray(x)
    elif layouts[0] == "spaced":
        x = np.repeat(x, 2, axis=1)[:, ::2]
    if layouts[1] == "spaced":
        y = np.stack([y, y], axis=-1)[..., 1]
    width = max(k, 1)
    lo = np.array([b[0] for b in bounds[:width]])
    hi = np.array([b[1] for b in bounds[:width]])
    in_buf = np.full((rows + 6, d), -7.0)
    out_buf = np.full((rows + 6, width), -7.0)
    before_in, before_out = in_buf.copy(), out_buf.copy()
    oi, oo = offsets
    got = stage(memoryview(in_buf).cast("B"), oi * d * 8, x, memoryview(out_buf).cast("B"),
                oo * width * 8, y, lo, hi)
    assert got is _oracle(y, lo, hi)
    assert np.array_equal(in_buf[oi : oi + rows], x.astype(np.float64))
    assert np.array_equal(out_buf[oo : oo + rows], y.reshape(rows, width).astype(np.float64),
                          equal_nan=True)
    untouched_in = np.ones(rows + 6, bool)
    untouched_in[oi : oi + rows] = False
    untouched_out = np.ones(rows + 6, bool)
    untouched_out[oo : oo + rows] = False
    assert np.array_equal(in_buf[untouched_in], before_in[untouched_in])
    assert np.array_equal(out_buf[untouched_out], before_out[untouched_out])


_LO, _HI = np.array([-1.0]), np.array([1.0])


@needs_kernel
@pytest.mark.parametrize(
    ("x", "y"),
    [
        (np.zeros(4), np.zeros(4)),  # x 1-D
        (np.zeros((4, 1, 1)), np.zeros(4)),  # x 3-D
        (np.zeros((4, 1), np.float16), np.zeros(4)),  # x float16
        (np.zeros((4, 1), np.int64), np.zeros(4)),  # x int64
        (np.zeros((4, 1)), np.zeros(4, np.int64)),  # y int64
        (np.zeros((4, 1), ">f8"), np.zeros(4)),  # x big-endian
        (np.zeros((4, 1)), np.zeros(4, ">f8")),  # y big-endian
        (np.zeros((4, 1)), np.zeros((2, 2, 1))),  # y 3-D
        (np.zeros((4, 1)), np.array(0.0)),  # y 0-d
    ],
)
def test_stage_declines_what_is_not_native_float_of_its_shape(x: Any, y: Any) -> None:
    stage = kernel.stage
    assert stage is not None
    in_buf, out_buf = np.full(16, 3.0), np.full(16, 3.0)
    got = stage(memoryview(in_buf).cast("B"), 0, x, memoryview(out_buf).cast("B"), 0, y,
                _LO, _HI)
    assert got is None
    assert (in_buf == 3.0).all() and (out_buf == 3.0).all()  # nothing written


@needs_kernel
def test_stage_refuses_to_write_outside_the_buffer_or_read_short_bounds() -> None:
    stage = kernel.stage
    assert stage is not None
    x, y = np.ones((4, 2)), np.ones(4)
    in_buf, out_buf = np.zeros((8, 2)), np.zeros(8)
    ib, ob = memoryview(in_buf).cast("B"), memoryview(out_buf).cast("B")
    for args in ((ib, 5 * 16, x, ob, 0, y), (ib, 0, x, ob, 5 * 8, y), (ib, -8, x, ob, 0, y)):
        with pytest.raises(ValueError, match="does not fit"):
            stage(*args, _LO, _HI)
    with pytest.raises(ValueError, match="lo:"):  # 3 score columns, 1 bound
        stage(ib, 0, x, ob, 0, np.ones((2, 3)), _LO, np.ones(3))
    with pytest.raises(TypeError, match="float64"):
        stage(ib, 0, x, ob, 0, y, np.array([-1], np.int64), _HI)
    assert not in_buf.any() and not out_buf.any()
    with pytest.raises((BufferError, TypeError, ValueError)):
        stage(bytes(128), 0, x, ob, 0, y, _LO, _HI)  # read-only destination
    assert stage(ib, 4 * 16, x, ob, 4 * 8, y, _LO, _HI) is True  # exactly at the end: fine


@needs_kernel
@pytest.mark.parametrize("d", [1, 3, 50, 300])
def test_accumulate_across_many_blocks_equals_numpy(d: int) -> None:
    # the kernel reduces rows in blocks of ~16384 values (at most 2048 rows) and merges them
    rows = 3 * min(2048, max(16, 16384 // d)) + 7
    rng = np.random.default_rng(d)
    X = rng.normal(size=(rows, d)) * 1e3 + 5e6  # a large mean: the merge must not cancel
    X[rng.random(X.shape) < 0.01] = np.nan
    X[rng.integers(rows), 0] = np.inf
    X[rng.integers(rows), d - 1] = -np.inf
    edges = [np.quantile(X[:, j][np.isfinite(X[:, j])], np.linspace(0, 1, 11)) for j in range(d)]
    ours, ref = NumericAccumulator(d, edges), NumericAccumulator(d, edges)
    ours.add_rows(X, rows)
    ref.add(X)
    for name in ("count", "nan", "inf", "ge", "binned", "min", "max"):
        assert np.array_equal(getattr(ours, name), getattr(ref, name)), name
    assert np.allclose(ours.mean, ref.mean, rtol=1e-12)
    assert np.allclose(ours.m2, ref.m2, rtol=1e-8)


# ---- the readers of Python values (put_records / put_scores / put_texts) -------------

_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**70), 2**70),
    st.booleans(), st.none(), st.text(max_size=3),
)


@needs_kernel
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.dictionaries(st.sampled_from(["a", "b", "c"]), _VALUES, max_size=3),
                     max_size=5))
def test_put_records_writes_what_numpy_reads_or_declines(rows: list[dict[str, Any]]) -> None:
    # the reference is np.array of the values in the keys' order: a record of other keys
    # or order, a None, a str, an int beyond int64 makes the reader decline (0), and then
    # nothing counts; what it writes is what numpy converts
    assert kernel.put_records is not None
    keys = ("a", "b", "c")
    dst = np.full(len(rows) * 3 + 3, -7.0)
    got = kernel.put_records(memoryview(dst).cast("B"), 8, keys, rows)
    usable = bool(rows) and all(
        tuple(r) == keys and all(type(v) in (float, int, bool) and
                                 (type(v) is not int or -(2**63) <= v < 2**63)
                                 for v in r.values()) for r in rows)
    assert got == (len(rows) if usable else 0)
    assert dst[0] == -7.0 and dst[1 + len(rows) * 3:].tolist() == [-7.0] * 2  # nothing beyond
    if usable:
        want = np.array([[float(v) for v in r.values()] for r in rows])
        np.testing.assert_array_equal(dst[1:1 + len(rows) * 3].reshape(-1, 3), want)


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(keys=st.lists(st.text(max_size=4), min_size=1, max_size=4, unique=True),
       other=st.text(max_size=4))
def test_put_records_matches_keys_by_their_characters(keys: list[str], other: str) -> None:
    # each request's record is parsed anew: its keys are other str objects than the plan's
    # (any width of characters: ASCII, Latin-1, BMP, beyond); equal characters match, and
    # a key of other characters (of the same length or not) declines the record
    import json

    assert kernel.put_records is not None
    plan = tuple(keys)
    parsed = json.loads(json.dumps({k: float(i) for i, k in enumerate(keys)}))
    dst = np.zeros(len(keys))
    assert kernel.put_records(memoryview(dst).cast("B"), 0, plan, parsed) == 1
    assert dst.tolist() == [float(i) for i in range(len(keys))]
    swapped = dict(parsed)
    swapped[other] = swapped.pop(keys[-1])
    want = 1 if other == keys[-1] else 0
    assert kernel.put_records(memoryview(dst).cast("B"), 0, plan, swapped) == want


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(values=st.lists(_VALUES, min_size=1, max_size=6), one=st.booleans())
def test_put_scores_writes_and_checks_like_python_or_declines(
    values: list[Any], one: bool
) -> None:
    assert kernel.put_scores is not None
    y: Any = values[0] if one else values
    ys = values[:1] if one else values
    dst = np.full(len(ys) + 1, -7.0)
    got = kernel.put_scores(memoryview(dst).cast("B"), 0, y, -1.0, 1.0)
    usable = all(type(v) is float or (type(v) is int and -(2**63) <= v < 2**63) for v in ys)
    if not usable:
        assert got == 0
        return
    f = [float(v) for v in ys]
    ok = all(math.isfinite(v) and -1.0 <= v <= 1.0 for v in f)
    assert got == (len(ys) if ok else -len(ys))
    np.testing.assert_array_equal(dst[:len(ys)], np.array(f))
    assert dst[len(ys)] == -7.0


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.text(max_size=40), min_size=1, max_size=5))
def test_put_texts_describes_like_python(texts: list[str]) -> None:
    from modelotel.stats.text import describe

    assert kernel.put_texts is not None
    dst = np.full(len(texts) * 4 + 4, -7.0)
    assert kernel.put_texts(memoryview(dst).cast("B"), 0, texts) == len(texts)
    np.testing.assert_array_equal(dst[:len(texts) * 4].reshape(-1, 4), describe(texts)[0])
    assert dst[len(texts) * 4:].tolist() == [-7.0] * 4
    assert kernel.put_texts(memoryview(dst).cast("B"), 0, [*texts, None]) == 0
    assert kernel.put_texts(memoryview(dst).cast("B"), 0, tuple(texts)) == 0


@needs_kernel
def test_the_readers_refuse_to_write_outside_the_buffer_or_into_a_read_only_one() -> None:
    assert kernel.put_records and kernel.put_scores and kernel.put_texts
    dst = memoryview(np.zeros(4)).cast("B")
    rec = {"a": 1.0, "b": 2.0}
    for call in (
        lambda: kernel.put_records(dst, 24, ("a", "b"), rec),        # one row past the end
        lambda: kernel.put_records(dst, -8, ("a", "b"), rec),
        lambda: kernel.put_scores(dst, 32, 0.5, -1.0, 1.0),
        lambda: kernel.put_scores(dst, 0, [0.5] * 5, -1.0, 1.0),
        lambda: kernel.put_texts(dst, 8, "two words"),
    ):
        with pytest.raises(ValueError, match="do not fit"):
            call()
    read_only = memoryview(bytes(32))
    with pytest.raises((TypeError, BufferError)):
        kernel.put_records(read_only, 0, ("a", "b"), rec)
    with pytest.raises(TypeError):
        kernel.put_records(dst, 0, ["a", "b"], rec)  # keys must be a tuple
    with pytest.raises(TypeError):
        kernel.put_scores(dst, 0, 0.5, "low", 1.0)
    assert kernel.put_records(dst, 0, ("a", "b"), rec) == 1  # the valid call still works
