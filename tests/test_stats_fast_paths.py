"""The per-call fast paths of the statistics hook against a plain numpy oracle.

A small float64 batch with one float64 score per row takes a fused path (the compiled
kernel's ``stage``, or byte copies into the row buffers and a Python check of the scores);
other dtypes, layouts and sizes take the per-side paths. Whatever the path, and with the
compiled kernel or numpy reducing the buffers, the checks that fire on a call and the
statistics that a window exports must be the same as numpy computes on the same data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import modelotel
from _stats_support import same_side, use_kernel
from modelotel import attributes as A  # noqa: N812
from modelotel.stats import Baseline, kernel
from modelotel.testing import capture


@pytest.fixture(autouse=True, params=["compiled", "numpy"])
def _kernel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    use_kernel(monkeypatch, request.param == "compiled")
    return str(request.param)

_LO, _HI = -1.0, 1.0  # the outputs' training range
_counter = [0]


def _baseline(width: int) -> Baseline:
    rng = np.random.default_rng(0)
    train = rng.normal(size=(400, width))
    outputs = np.linspace(_LO, _HI, 400)
    return Baseline.from_data(train, outputs=outputs)


def _expected_checks(y: np.ndarray) -> list[str]:
    flat = np.asarray(y, dtype=np.float64).ravel()
    fired = []
    if not np.isfinite(flat).all():
        fired.append(A.CHECK_OUTPUT_NONFINITE)
    finite = flat[np.isfinite(flat)]  # a non-finite value is reported as such, not as range
    if ((finite < _LO) | (finite > _HI)).any():
        fired.append(A.CHECK_OUTPUT_OUT_OF_RANGE)
    return fired


def _outputs(rows: int, bad: str, at: int) -> np.ndarray:
    y = np.linspace(-0.5, 0.5, rows)
    value = {"nan": np.nan, "+inf": np.inf, "-inf": -np.inf, "above": 1.5, "below": -3.0,
             "edge": _HI, "ok": 0.25}[bad]
    y[at] = value
    return y


# how the scores leave the model: (label, converter from a float64 1-D array)
FORMS: list[tuple[str, Callable[[np.ndarray], Any]]] = [
    ("float64 1-D (fused)", lambda y: y),
    ("float64 strided", lambda y: np.repeat(y, 2)[::2]),
    ("float32 1-D", lambda y: y.astype(np.float32)),
    ("float64 (n, 1)", lambda y: y.reshape(-1, 1)),
    ("big-endian float64", lambda y: y.astype(">f8")),
]


@pytest.mark.parametrize("form", FORMS, ids=[f[0] for f in FORMS])
@pytest.mark.parametrize("rows", [1, 5, 64, 65, 200])
@pytest.mark.parametrize("bad", ["nan", "+inf", "-inf", "above", "below", "edge", "ok"])
def test_checks_fire_as_numpy_says_wherever_the_bad_value_sits(
    form: tuple[str, Callable[[np.ndarray], Any]], rows: int, bad: str
) -> None:
    _counter[0] += 1
    model = f"fast-{_counter[0]}"
    convert = form[1]
    positions = sorted({0, rows // 2, rows - 1})
    calls = [convert(_outputs(rows, bad, at)) for at in positions]
    it = iter(calls)

    def predict(X: np.ndarray) -> Any:
        return next(it)

    wrapped = modelotel.instrument(model=model, baseline=_baseline(3))(predict)
    X = np.zeros((rows, 3))
    with capture() as cap:
        for y in calls:
            assert wrapped(X) is y  # the result is the model's own object
        spans = cap.spans()
        assert len(spans) == len(calls)
        for span, y in zip(spans, calls, strict=True):
            attrs = span.attributes or {}
            got = list(attrs.get(A.ML_CHECKS_FIRED, []))
            assert got == _expected_checks(y), (form[0], rows, bad, y)
        # the window's output statistics equal numpy's over all the calls' scores
        every = np.concatenate([np.asarray(y, dtype=np.float64).ravel() for y in calls])
        finite = every[np.isfinite(every)]
        points = {(p.name, tuple(sorted(p.attributes.items()))): p.value
                  for p in cap.collect() if p.attributes.get(A.ML_MODEL_NAME) == model}
    out = {n: v for (n, attrs), v in points.items()
           if dict(attrs).get(A.ML_OUTPUT) == "0" and A.ML_MISSING_KIND not in dict(attrs)
           and A.ML_BIN not in dict(attrs) and A.ML_DRIFT_METHOD not in dict(attrs)}
    assert out[A.METRIC_OUTPUT_COUNT] == every.size  # values seen, missing included
    missing = {dict(attrs)[A.ML_MISSING_KIND]: v for (n, attrs), v in points.items()
               if n == A.METRIC_OUTPUT_MISSING}
    assert missing[A.MISSING_NAN] == int(np.isnan(every).sum())
    assert missing[A.MISSING_INF] == int(np.isinf(every).sum())
    if finite.size:
        assert out[A.METRIC_OUTPUT_MIN] == pytest.approx(finite.min())
        assert out[A.METRIC_OUTPUT_MAX] == pytest.approx(finite.max())
        assert out[A.METRIC_OUTPUT_MEAN] == pytest.approx(finite.mean(), rel=1e-9, abs=1e-12)


INPUTS: list[tuple[str, Callable[[np.ndarray], Any]]] = [
    ("float64 C (fused)", lambda x: x),
    ("float64 Fortran", np.asfortranarray),
    ("float64 column slice", lambda x: np.hstack([x, x])[:, ::2]),
    ("float32", lambda x: x.astype(np.float32)),
    ("int64", lambda x: np.round(x * 10).astype(np.int64)),
    ("big-endian float64", lambda x: x.astype(">f8")),
]


@pytest.mark.parametrize("form", INPUTS, ids=[f[0] for f in INPUTS])
def test_input_statistics_equal_numpy_on_every_layout(
    form: tuple[str, Callable[[np.ndarray], Any]]
) -> None:
    _counter[0] += 1
    model = f"fast-in-{_counter[0]}"
    base = _baseline(4)
    rng = np.random.default_rng(7)
    # 9000 rows: more than the row buffer takes (8192 for 4 columns), reduced directly
    raw = [rng.normal(size=(rows, 4)) for rows in (1, 3, 32, 32, 7, 300, 9000)]
    if form[0] != "int64":
        raw[2][5, 1] = np.nan
        raw[-1][::97, 2] = np.nan
        raw[-1][5, 0] = np.inf
    batches = [form[1](r) for r in raw]
    for b in batches:
        b.setflags(write=False)  # the hook must not need to write to the user's arrays
    # (a row_cap above the big batch's rows: every row is counted, as numpy's oracle counts)
    wrapped = modelotel.instrument(model=model, baseline=base, row_cap=9000)(
        lambda X: np.zeros(len(X)))
    with capture() as cap:
        for b in batches:
            wrapped(b)
        points = [p for p in cap.collect() if p.attributes.get(A.ML_MODEL_NAME) == model]
    data = np.concatenate([np.asarray(b, dtype=np.float64) for b in batches])
    for j in range(4):
        name = base.feature_names[j]
        col = data[:, j]
        fin = col[np.isfinite(col)]

        def value(metric: str, name: str = name, **extra: str) -> Any:
            want = {A.ML_FEATURE: name, **extra}
            hits = [p.value for p in points if p.name == metric
                    and all(p.attributes.get(k) == v for k, v in want.items())
                    and (A.ML_BIN in extra or A.ML_BIN not in p.attributes)
                    and (A.ML_MISSING_KIND in extra or A.ML_MISSING_KIND not in p.attributes)]
            assert len(hits) == 1, (metric, want, hits)
            return hits[0]

        assert value(A.METRIC_FEATURE_COUNT) == col.size  # values seen, missing included
        assert value(A.METRIC_FEATURE_MISSING, **{A.ML_MISSING_KIND: A.MISSING_NAN}) == int(
            np.isnan(col).sum())
        assert value(A.METRIC_FEATURE_MISSING, **{A.ML_MISSING_KIND: A.MISSING_INF}) == int(
            np.isinf(col).sum())
        assert value(A.METRIC_FEATURE_MEAN) == pytest.approx(fin.mean(), rel=1e-9)
        assert value(A.METRIC_FEATURE_MIN) == fin.min()
        assert value(A.METRIC_FEATURE_MAX) == fin.max()
        edges = np.asarray(base.feature(name).edges)
        inner, _ = np.histogram(fin[(fin >= edges[0]) & (fin <= edges[-1])], bins=edges)
        assert value(A.METRIC_FEATURE_BIN, **{A.ML_BIN: A.BIN_BELOW}) == int(
            (fin < edges[0]).sum())
        assert value(A.METRIC_FEATURE_BIN, **{A.ML_BIN: A.BIN_ABOVE}) == int(
            (fin > edges[-1]).sum())
        for i, expected in enumerate(inner.tolist()):
            assert value(A.METRIC_FEATURE_BIN, **{A.ML_BIN: str(i)}) == expected


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("rows", [1, 7, 64, 300])
@pytest.mark.parametrize("bad", ["nan", "+inf", "above", "below", "ok"])
@pytest.mark.parametrize("column", [0, 1])
def test_probabilities_checked_per_column(dtype: Any, rows: int, bad: str, column: int) -> None:
    """Two scores per row (predict_proba): each column against its own training range."""
    _counter[0] += 1
    model = f"fast-proba-{_counter[0]}"
    rng = np.random.default_rng(1)
    train_p = rng.uniform(0.2, 0.8, size=400)
    base = Baseline.from_data(rng.normal(size=(400, 3)),
                              outputs=np.column_stack([train_p, 1 - train_p]))
    lo = [float(train_p.min()), float((1 - train_p).min())]
    hi = [float(train_p.max()), float((1 - train_p).max())]
    y = rng.uniform(0.3, 0.7, size=(rows, 2))  # inside both ranges, not constant
    value = {"nan": np.nan, "+inf": np.inf, "above": 0.99, "below": 0.01, "ok": 0.5}[bad]
    y[rows // 2, column] = value
    y = y.astype(dtype)
    x = rng.normal(size=(rows, 3)).astype(dtype)
    wrapped = modelotel.instrument(model=model, baseline=base)(lambda X: y)
    with capture() as cap:
        assert wrapped(x) is y
        span = cap.spans()[0]
        points = cap.collect()
    fired = list((span.attributes or {}).get(A.ML_CHECKS_FIRED, []))
    expected: list[str] = []
    per_column: dict[tuple[str, str], int] = {}
    col = y[:, column].astype(np.float64)
    if not np.isfinite(col).all():
        expected.append(A.CHECK_OUTPUT_NONFINITE)
        per_column[(A.CHECK_OUTPUT_NONFINITE, str(column))] = 1
    fin = col[np.isfinite(col)]
    if ((fin < lo[column]) | (fin > hi[column])).any():
        expected.append(A.CHECK_OUTPUT_OUT_OF_RANGE)
        per_column[(A.CHECK_OUTPUT_OUT_OF_RANGE, str(column))] = 1
    assert fired == expected
    got = {(p.attributes[A.ML_CHECK], p.attributes[A.ML_OUTPUT]): p.value for p in points
           if p.name == A.METRIC_CHECK_VIOLATIONS and p.attributes.get(A.ML_MODEL_NAME) == model}
    assert got == per_column
    counts = {p.attributes[A.ML_OUTPUT]: p.value for p in points
              if p.name == A.METRIC_OUTPUT_COUNT and p.attributes.get(A.ML_MODEL_NAME) == model}
    assert counts == {"0": rows, "1": rows}


@pytest.mark.parametrize(
    "labels",
    [np.array([0, 1, 1, 2, 1]), np.array(["churn", "stay", "stay", "new", "stay"]),
     np.array([True, False, True, True, False])],
    ids=["int", "str", "bool"],
)
def test_class_labels_counted_per_class(labels: np.ndarray) -> None:
    _counter[0] += 1
    model = f"fast-labels-{_counter[0]}"
    rng = np.random.default_rng(2)
    train = rng.choice(labels[:2], size=400)  # the baseline knows two of the classes
    base = Baseline.from_data(rng.normal(size=(400, 3)), outputs=train)
    wrapped = modelotel.instrument(model=model, baseline=base)(lambda X: labels)
    with capture() as cap:
        for _ in range(3):
            assert wrapped(np.zeros((5, 3))) is labels
        points = cap.collect()
    bins = {p.attributes[A.ML_BIN]: p.value for p in points
            if p.name == A.METRIC_OUTPUT_BIN and p.attributes.get(A.ML_MODEL_NAME) == model}
    known = {str(v) for v in labels[:2].tolist()}
    expected: dict[str, int] = {}
    for v in labels.tolist():
        key = str(v) if str(v) in known else A.BIN_UNSEEN
        expected[key] = expected.get(key, 0) + 3
    assert {k: v for k, v in bins.items() if v} == expected
    count = [p.value for p in points if p.name == A.METRIC_OUTPUT_COUNT
             and p.attributes.get(A.ML_MODEL_NAME) == model]
    assert count == [15]


def _said(rep: Any) -> Any:
    if rep is None:
        return None
    return rep.checks, dict(rep.skipped), rep.dropped, rep.sample_rate


@pytest.mark.parametrize("with_baseline", [True, False])
def test_a_dict_record_gives_the_statistics_of_the_general_reader(with_baseline: bool) -> None:
    # a dict keyed by the plan's columns in order takes the hot path; the same record as a
    # read-only mapping goes through the general reader: same window, checks and drift,
    # also for the records the hot path must hand over (None, a str, other key order, an
    # int beyond float64, a long double)
    from types import MappingProxyType

    from modelotel.stats.profiler import ABSENT, Profiler

    rng = np.random.default_rng(11)
    names = [f"f{i}" for i in range(6)]
    train = rng.normal(size=(800, 6))
    baseline = Baseline.from_data(train, feature_names=names) if with_baseline else None
    fast, general = Profiler(baseline), Profiler(baseline)
    odd: list[dict[str, Any]] = [
        {**dict.fromkeys(names, 0.5), "f2": None},
        {**dict.fromkeys(names, 0.5), "f3": "x"},
        dict(reversed(list(dict.fromkeys(names, 0.25).items()))),
        {**dict.fromkeys(names, 0.5), "f1": 10**400},
        {**dict.fromkeys(names, 0.5), "f4": np.longdouble(2.0)},
        {**dict.fromkeys(names, 1.0), "f0": float("nan")},
        dict.fromkeys(names, True),
    ]
    for i in range(60):
        rec: dict[str, Any] = dict(zip(names, (rng.normal(size=6) + (i > 40)).tolist(),
                                       strict=True))
        if i % 9 == 0:
            rec = odd[(i // 9) % len(odd)]
        assert _said(fast.observe(rec, ABSENT)) == _said(
            general.observe(MappingProxyType(rec), ABSENT))
    a, b = fast.close().inputs, general.close().inputs
    assert a is not None and b is not None
    assert a.plan.names == b.plan.names
    assert len(a.gauges) == len(b.gauges) > 0
    assert a.gauges == b.gauges
    assert a.drift == b.drift
    ta, tb = a.totals, b.totals
    assert (ta.seen, ta.null, ta.nan, ta.inf) == (tb.seen, tb.null, tb.nan, tb.inf)
    assert ta.bins == tb.bins
    assert sum(ta.seen) > 0


@pytest.fixture
def taken(_kernel: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Batches each compiled reader wrote (counted, so that a test sees the path it holds
    to the general reader was taken)."""
    counts = {"put_records": 0, "put_scores": 0, "put_texts": 0}
    for name in counts:
        real = getattr(kernel, name)
        if real is None:
            continue

        def counted(*args: Any, _real: Any = real, _name: str = name) -> int:
            got: int = _real(*args)
            counts[_name] += got != 0
            return got

        monkeypatch.setattr(kernel, name, counted)
    return counts


@pytest.mark.parametrize("with_baseline", [True, False])
def test_a_list_of_records_gives_the_statistics_of_the_general_reader(
    with_baseline: bool, taken: dict[str, int]
) -> None:
    # a list of dicts keyed by the plan's columns in order is written straight into the
    # buffer (put_records); the same records as a tuple go through the general reader:
    # same window, drift and reports, also for every list the compiled reader hands over
    from modelotel.stats.profiler import ABSENT, Profiler

    rng = np.random.default_rng(5)
    names = [f"f{i}" for i in range(5)]
    train = rng.normal(size=(800, 5))
    baseline = Baseline.from_data(train, feature_names=names) if with_baseline else None
    fast, general = Profiler(baseline), Profiler(baseline)
    ok = dict.fromkeys(names, 0.5)
    odd: list[dict[str, Any]] = [
        {**ok, "f2": None},
        {**ok, "f3": "x"},
        dict(reversed(list(ok.items()))),
        {**ok, "f1": 2**63},
        {**ok, "f1": -(2**63)},
        {**ok, "f1": 10**400},
        {**ok, "f4": np.float32(2.0)},
        {**ok, "f4": np.float64(2.5)},
        {**ok, "f4": np.int64(3)},
        {**ok, "f0": float("nan"), "f1": float("inf")},
        {**ok, "f0": True, "f1": False},
        {**ok, "f0": 2**53 + 1},
        {**ok, "extra": 1.0},
        {k: v for k, v in ok.items() if k != "f3"},
        dict.fromkeys(names, 1),
    ]
    for i in range(80):
        batch: list[Any] = [dict(zip(names, (rng.normal(size=5) + (i > 50)).tolist(),
                                     strict=True)) for _ in range(1 + i % 7)]
        if i % 4 == 1:
            batch[-1] = odd[(i // 4) % len(odd)]
        if i % 4 == 3:
            batch = [odd[(i // 4) % len(odd)]] * 3
        assert _said(fast.observe(batch, ABSENT)) == _said(general.observe(tuple(batch), ABSENT))
    snap_a, snap_b = fast.close(), general.close()
    same_side(snap_a.inputs, snap_b.inputs)
    assert sum(snap_a.inputs.totals.seen) > 0  # type: ignore[union-attr]
    assert (taken["put_records"] >= 40) == (kernel.put_records is not None)


@pytest.mark.parametrize("with_baseline", [True, False])
def test_python_scores_give_the_statistics_and_checks_of_the_general_reader(
    with_baseline: bool, taken: dict[str, int]
) -> None:
    # a float or int score, or a list of them, is written straight into the buffer
    # (put_scores) and checked there; the same scores as a tuple go through the general
    # reader: same window, checks fired and totals, for values that fire every check and
    # for those the compiled reader hands over (bools, ints beyond int64, numpy scalars)
    from modelotel.stats.profiler import ABSENT, Profiler

    baseline = _baseline(3) if with_baseline else None
    fast, general = Profiler(baseline), Profiler(baseline)
    first = [0.1, 0.2]
    assert _said(fast.observe(ABSENT, first)) == _said(general.observe(ABSENT, tuple(first)))
    rng = np.random.default_rng(9)
    odd: list[Any] = [float("nan"), float("inf"), -float("inf"), 1.5, -3.0, _HI, 7, 2**63,
                      10**400, True, np.float64(0.3), np.float32(0.3), 0]
    fired = 0
    for i in range(90):
        scores: list[Any] = rng.uniform(_LO, _HI, size=1 + i % 6).tolist()
        if i % 3 == 1:
            scores[i % len(scores)] = odd[(i // 3) % len(odd)]
        one = i % 2 == 0
        said = _said(fast.observe(ABSENT, scores[0] if one else scores))
        assert said == _said(general.observe(ABSENT, tuple(scores[:1] if one else scores)))
        fired += bool(said and said[0])
    snap_a, snap_b = fast.close(), general.close()
    same_side(snap_a.outputs, snap_b.outputs)
    assert fired >= 5 if with_baseline else fired >= 3
    assert (taken["put_scores"] >= 60) == (kernel.put_scores is not None)


def test_labels_as_str_or_a_list_of_str_count_as_the_general_reader_counts() -> None:
    # one label, or a list of labels, of a classifier whose outputs are one categorical
    # column: counted straight into the column; a tuple goes through the general reader
    # (so does a list holding anything but str: a None, an int)
    from modelotel.stats.profiler import ABSENT, Profiler

    fast, general = Profiler(), Profiler()
    rng = np.random.default_rng(2)
    classes = ["cat", "dog", "bird", "ünïcode", ""]
    for i in range(60):
        labels: list[Any] = [classes[j] for j in rng.integers(len(classes), size=1 + i % 5)]
        if i % 6 == 1:
            labels.append(None)
        elif i % 6 == 3:
            labels.append(7)
        if i % 2:
            fast.observe(ABSENT, labels)
        else:
            fast.observe(ABSENT, labels[0])
            labels = labels[:1]
        general.observe(ABSENT, tuple(labels))
    snap_a, snap_b = fast.close(), general.close()
    same_side(snap_a.outputs, snap_b.outputs)
    assert snap_a.outputs is not None and snap_a.outputs.totals.bins


@pytest.mark.parametrize("outputs", ["scores", "spaced scores", "two columns"])
def test_batches_beyond_the_buffer_give_the_statistics_of_the_general_reader(
    outputs: str,
) -> None:
    # a float64 batch too big for the row buffer (row-sampled beyond row_cap) goes from the
    # hot path to the reduction; the general reader, given the same batches and the same
    # random offsets, leaves the same windows, checks, reports and totals
    from modelotel.stats.profiler import Profiler

    base = _baseline(4)

    def batches() -> list[tuple[Any, Any]]:
        r = np.random.default_rng(9)
        out = []
        for i in range(40):
            rows = [3, 40, 49, 51, 120, 333][i % 6]
            x = r.normal(size=(rows, 4))
            if i % 5 == 1:
                x[0, 2] = np.nan
                x[-1, 0] = np.inf
            if i % 4 == 2:
                x = np.asfortranarray(x)
            elif i % 4 == 3:
                x = np.repeat(x, 2, axis=1)[:, ::2]
            y = r.uniform(_LO, _HI, size=rows)
            if i % 7 == 3:
                y[-1] = _HI + 1  # outside the training range: fires on every row read
            elif i % 7 == 5:
                y[1] = np.nan
            if outputs == "spaced scores":
                y = np.stack([1 - y, y], axis=1)[:, 1]
            elif outputs == "two columns":
                y = np.stack([y, y], axis=1)
            out.append((x, y))
        return out

    def run(general: bool) -> tuple[Any, list[Any]]:
        p = Profiler(base if outputs != "two columns" else None, row_cap=50)
        p.rng = np.random.default_rng(0)  # the same row sample in both runs
        p.reset()
        said = []
        for x, y in batches():
            if general:  # (the first call sets the output side's plan when it has none)
                p.inputs.fast_width = p.outputs.fast_width = 0
            r = p.observe(x, y)
            said.append(None if r is None else (r.checks, dict(r.skipped), r.dropped,
                                                r.sample_rate))
        assert any(s is not None and s[2] for s in said)  # some batches were sampled
        return p.close(), said

    fast, fast_said = run(False)
    general, general_said = run(True)
    assert fast_said == general_said
    same_side(fast.inputs, general.inputs)
    same_side(fast.outputs, general.outputs)
