"""The streaming profiler alone, without providers: numbers in, numbers and reasons out.

Whatever path a batch takes (fused float batch with the compiled kernel or without it, the
per-side fast path, the general reading path), the window it feeds says what numpy says
about the same data, and what else happened comes back as a report: checks with their
feature and side, skip reasons with counts, the row-sampling rate. Nothing is counted
globally and nothing here needs OpenTelemetry.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import pkgutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from _stats_support import use_kernel
from modelotel import _safety
from modelotel import attributes as A  # noqa: N812
from modelotel.stats import Baseline
from modelotel.stats import reasons as R  # noqa: N812
from modelotel.stats.buffer import RowBuffer
from modelotel.stats.profiler import ABSENT, Profiler
from modelotel.stats.window import MAX, MEAN, MIN, STDDEV, Snapshot

STATS_DIR = Path(__file__).resolve().parents[1] / "src" / "modelotel" / "stats"


@pytest.fixture(params=["compiled", "numpy"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    use_kernel(monkeypatch, request.param == "compiled")
    return str(request.param)


def _gauges(snap: Snapshot, output: bool = False) -> dict[tuple[str, str], float]:
    side = snap.outputs if output else snap.inputs
    assert side is not None
    return {(stat, feature): value for stat, feature, value in side.gauges}


def _baseline(width: int = 3) -> Baseline:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, width))
    return Baseline.from_data(X, outputs=np.linspace(-1.0, 1.0, 500),
                              feature_names=[f"f{i}" for i in range(width)])


# ---- the window says what numpy says, whatever the path ---------------------------------

# how a batch reaches the profiler: label -> (inputs, outputs) from float64 data
FORMS = {
    "float64 fused": lambda X, y: (X, y),
    "float32 fused": lambda X, y: (X.astype(np.float32), y.astype(np.float32)),
    "scores as (n, 1)": lambda X, y: (X, y.reshape(-1, 1)),
    "strided inputs": lambda X, y: (np.repeat(X, 2, axis=0)[::2], y),
    "int inputs": lambda X, y: (np.round(X * 10).astype(np.int64), y),
    "records": lambda X, y: ([dict(zip(("f0", "f1", "f2"), r, strict=True)) for r in X.tolist()],
                             y.tolist()),
    "DataFrame": lambda X, y: (pd.DataFrame(X, columns=["f0", "f1", "f2"]), pd.Series(y)),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_window_statistics_equal_numpy_on_every_path(form: str, engine: str) -> None:
    rng = np.random.default_rng(7)
    p = Profiler(_baseline())
    batches = [(rng.normal(size=(n, 3)), rng.uniform(-0.9, 0.9, size=n)) for n in (1, 5, 32, 90)]
    seen_x, seen_y = [], []
    for X, y in batches * 40:  # enough rows to fill and flush the row buffers many times
        x_in, y_in = FORMS[form](X, y)
        if form == "int inputs":
            X = np.round(X * 10)
        elif form == "float32 fused":  # the statistics of the values as given
            X, y = X.astype(np.float32).astype(float), y.astype(np.float32).astype(float)
        assert p.observe(x_in, y_in) is None  # in range, finite: nothing to report
        seen_x.append(X)
        seen_y.append(y)
    allx, ally = np.concatenate(seen_x), np.concatenate(seen_y)
    snap = p.close()
    g = _gauges(snap)
    for j in range(3):
        name = f"f{j}"
        assert g[MEAN, name] == pytest.approx(allx[:, j].mean(), rel=1e-9, abs=1e-12)
        assert g[STDDEV, name] == pytest.approx(allx[:, j].std(), rel=1e-9)
        assert g[MIN, name] == allx[:, j].min()
        assert g[MAX, name] == allx[:, j].max()
    go = _gauges(snap, output=True)
    assert go[MEAN, "0"] == pytest.approx(ally.mean(), rel=1e-6, abs=1e-9)
    assert go[MAX, "0"] == pytest.approx(ally.max(), rel=1e-6)
    assert snap.inputs is not None and snap.inputs.totals.seen == [allx.shape[0]] * 3
    assert snap.outputs is not None and snap.outputs.totals.seen == [ally.shape[0]]


def test_totals_run_across_windows_and_gauges_describe_the_last_one() -> None:
    p = Profiler(feature_names=["a"])
    p.observe(np.array([[1.0], [2.0]]), ABSENT)
    first = p.close()
    p.observe(np.array([[10.0]]), ABSENT)
    second = p.close()
    assert first.inputs is not None and second.inputs is not None
    assert _gauges(first)[MEAN, "a"] == 1.5
    assert _gauges(second)[MEAN, "a"] == 10.0
    assert second.inputs.totals.seen == [3]
    empty = p.close()  # a window without data: no gauges, the totals stay
    assert empty.inputs is not None and empty.inputs.gauges == []
    assert empty.inputs.totals.seen == [3]


def test_missing_values_are_split_by_kind_in_the_totals() -> None:
    p = Profiler()
    p.observe([[1.0, None], [np.nan, 2.0], [np.inf, 3.0]], ABSENT)
    snap = p.close()
    assert snap.inputs is not None
    t = snap.inputs.totals
    assert (t.seen, t.null, t.nan, t.inf) == ([3, 3], [0, 1], [1, 0], [1, 0])


def test_drift_and_bins_are_keyed_by_feature_and_method() -> None:
    b = Baseline.from_data(pd.DataFrame({"x": np.linspace(0, 1, 200),
                                         "c": ["u", "v"] * 100}))
    p = Profiler(b)
    p.observe(pd.DataFrame({"x": np.full(50, 5.0), "c": ["w"] * 50}), ABSENT)
    snap = p.close()
    assert snap.inputs is not None
    drift = {(f, m): v for f, m, v in snap.inputs.drift}
    assert set(drift) == {("x", A.DRIFT_PSI), ("x", A.DRIFT_JS), ("x", A.DRIFT_KS),
                          ("x", A.DRIFT_WASSERSTEIN), ("c", A.DRIFT_PSI), ("c", A.DRIFT_JS),
                          ("c", A.DRIFT_CRAMERS_V)}
    assert drift["x", A.DRIFT_KS] == pytest.approx(1.0)  # everything above the range
    labels = dict(zip(("x", "c"), snap.inputs.bin_labels, strict=True))
    assert labels["x"][0] == A.BIN_BELOW and labels["x"][-1] == A.BIN_ABOVE
    assert labels["c"] == ("u", "v", A.BIN_OTHER, A.BIN_UNSEEN)
    bins = dict(zip(("x", "c"), snap.inputs.totals.bins, strict=True))
    assert bins["x"][-1] == 50 and sum(bins["x"]) == 50
    assert bins["c"] == [0, 0, 0, 50]  # "w" was never seen in training: unseen


# ---- what happened comes back as a report --------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, 5.0])
def test_output_checks_come_back_with_feature_and_side(bad: float, engine: str) -> None:
    p = Profiler(_baseline())
    y = np.zeros(8)
    y[3] = bad
    rep = p.observe(np.zeros((8, 3)), y)
    assert rep is not None
    expected = A.CHECK_OUTPUT_OUT_OF_RANGE if bad == 5.0 else A.CHECK_OUTPUT_NONFINITE
    assert rep.checks == [(expected, "0", True)]
    assert rep.skipped == {} and rep.sample_rate is None


def test_schema_checks_come_back_for_the_input_side() -> None:
    p = Profiler(_baseline())
    rep = p.observe(pd.DataFrame({"f0": [1.0], "f1": [2.0], "zz": [3.0]}), ABSENT)
    assert rep is not None
    assert sorted(rep.checks) == [(A.CHECK_SCHEMA_MISSING_FEATURE, "f2", False),
                                  (A.CHECK_SCHEMA_UNEXPECTED_FEATURE, "zz", False)]


def test_skips_come_back_as_reasons_and_nothing_is_counted_globally() -> None:
    p = Profiler()
    rep = p.observe(None, [[1.0, 2.0], [3.0]])
    assert rep is not None
    assert rep.skipped == {R.SKIP_NONE: 1, R.SKIP_RAGGED: 1}
    assert not _safety.health.skipped  # the adapter counts them, not the profiler


def test_absent_sides_are_not_read() -> None:
    p = Profiler(absent=None)
    assert p.observe(None, None) is None
    snap = p.close()
    assert snap.inputs is None and snap.outputs is None  # no schema: nothing was seen


class _LenRaises(list[Any]):
    def __len__(self) -> int:
        raise ZeroDivisionError("the input's own bug")


def test_an_input_that_raises_is_a_skip_and_our_bug_is_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = Profiler()
    rep = p.observe(_LenRaises([[1.0]]), np.array([0.5]))
    assert rep is not None and rep.skipped == {R.SKIP_UNREADABLE: 1}
    from modelotel.stats import side

    # a function whose code lives in modelotel's source, as a real bug's would
    namespace: dict[str, Any] = {}
    source = "def broken(*args, **kwargs):\n    raise RuntimeError('a bug in modelotel')\n"
    exec(compile(source, str(side.__file__), "exec"), namespace)
    monkeypatch.setattr(side, "extract", namespace["broken"])
    with pytest.raises(RuntimeError, match="a bug in modelotel"):
        p.observe([[1.0]], ABSENT)


def test_row_sampling_reports_its_rate_and_dropped_rows() -> None:
    p = Profiler(row_cap=100)
    rep = p.observe(np.arange(2000.0).reshape(1000, 2), np.zeros(1000))
    assert rep is not None
    assert rep.sample_rate == pytest.approx(0.1)
    assert rep.dropped == 2 * 900  # inputs and outputs
    snap = p.close()
    assert snap.inputs is not None and snap.inputs.totals.seen == [100, 100]


def test_a_row_sampled_batch_has_the_statistics_of_its_sample(engine: str) -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(5000, 3))
    X[:, 0] = np.arange(5000.0)  # the row number: tells which rows the sample took
    X[rng.integers(5000, size=40), 2] = np.nan
    p = Profiler(_baseline(), row_cap=500)
    rep = p.observe(X, rng.uniform(-0.9, 0.9, size=5000))
    assert rep is not None and rep.sample_rate == pytest.approx(0.1)
    g = _gauges(p.close())
    start = int(g[MIN, "f0"])
    assert 0 <= start < 10
    ref = X[start::10]  # every 10th row from a random start, read in place by the kernel
    for j in range(3):
        col = ref[:, j][~np.isnan(ref[:, j])]
        assert g[MEAN, f"f{j}"] == pytest.approx(col.mean(), rel=1e-12, abs=1e-12)
        assert g[STDDEV, f"f{j}"] == pytest.approx(col.std(), rel=1e-9)
        assert (g[MIN, f"f{j}"], g[MAX, f"f{j}"]) == (col.min(), col.max())


def test_max_features_cut_comes_back_once_with_the_schema() -> None:
    p = Profiler(max_features=3)
    rep = p.observe(np.ones((2, 5)), ABSENT)
    assert rep is not None and rep.skipped == {R.SKIP_MAX_FEATURES: 2}
    assert rep.checks == [(A.CHECK_SCHEMA_UNEXPECTED_FEATURE, "3", False)]  # the extra column
    # the cut is counted once, on the first batch; the check is reported once per window
    assert p.observe(np.ones((2, 5)), ABSENT) is None
    p.close()
    rep = p.observe(np.ones((2, 5)), ABSENT)
    assert rep is not None and rep.checks == [(A.CHECK_SCHEMA_UNEXPECTED_FEATURE, "3", False)]
    wide = Baseline.from_data(np.ones((10, 5)))
    assert Profiler(wide, max_features=3).cut == 2


def test_window_checks_come_back_in_the_snapshot() -> None:
    p = Profiler(_baseline())
    for _ in range(5):
        p.observe(np.zeros((8, 3)), np.full(8, 0.5))
    snap = p.close()
    assert snap.outputs is not None
    assert snap.outputs.checks == [(A.CHECK_OUTPUT_CONSTANT, "0")]


def test_reset_forgets_everything() -> None:
    p = Profiler(feature_names=["a", "b"])
    p.observe(np.ones((4, 2)), ABSENT)
    p.reset()
    assert p.close().inputs is None


def test_concurrent_observers_lose_no_rows(engine: str) -> None:
    p = Profiler(_baseline())
    X, y = np.ones((8, 3)), np.zeros(8)

    def worker() -> None:
        for i in range(1500):
            p.observe(X, y)
            if i % 400 == 0:
                p.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = p.close()
    assert snap.inputs is not None and snap.outputs is not None
    assert snap.inputs.totals.seen == [4 * 1500 * 8] * 3
    assert snap.outputs.totals.seen == [4 * 1500 * 8]


# ---- the row buffer: one way in ----------------------------------------------------------


def test_row_buffer_reduces_what_does_not_fit_and_keeps_every_row() -> None:
    reduced: list[np.ndarray] = []
    buf = RowBuffer(2, rows=5, max_batch=2, sink=lambda a, n: reduced.append(a[:n].copy()))
    batches = [np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[5.0, 6.0]], dtype=np.float32),
               np.array([[7, 8], [9, 10]]), np.arange(4.0).reshape(2, 2)[:, ::-1]]
    for b in batches:
        buf.append(b, b.shape[0])
    buf.flush()
    assert [r.shape[0] for r in reduced] == [5, 2]  # the 4th batch did not fit after 5 rows
    np.testing.assert_array_equal(np.concatenate(reduced), np.concatenate(batches))
    assert buf.n == 0


def test_reserve_then_commit_let_a_writer_fill_the_bytes() -> None:
    reduced: list[int] = []
    buf = RowBuffer(1, rows=4, max_batch=2, sink=lambda a, n: reduced.append(n))
    for value in (1.0, 2.0, 3.0, 4.0, 5.0):
        at = buf.reserve(1)
        buf.bytes[at : at + 8] = np.array([value]).tobytes()
        buf.n += 1  # the commit
    assert reduced == [4] and buf.n == 1 and buf.array[0, 0] == 5.0
    buf.reserve(1)  # reserved, never committed: nothing counts
    buf.flush()
    assert reduced == [4, 1]


# ---- the package is pure ------------------------------------------------------------------

# stats returns what it skipped and never counts it itself (nor swallows errors); it may
# log once (the kernel's missing-build warning goes through health.warn_once)
_FORBIDDEN = ("opentelemetry", "modelotel._safety.count_", "modelotel._safety.record_error",
              "modelotel._safety.guard", "modelotel._runtime", "modelotel._monitor",
              "modelotel._prediction", "modelotel._instruments")


@pytest.mark.parametrize("path", sorted(STATS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_stats_imports_no_opentelemetry_and_no_sdk_state(path: Path) -> None:
    tree = ast.parse(path.read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [f"{n.module}.{a.name}" for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom) and n.module for a in n.names]
    assert [n for n in names if n.startswith(_FORBIDDEN)] == []


@pytest.mark.parametrize(
    "name", sorted(m.name for m in pkgutil.iter_modules([str(STATS_DIR)])
                   if not m.name.startswith("_")))
def test_stats_usage_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(f"modelotel.stats.{name}"))
    assert result.failed == 0
    assert result.attempted > 0
