"""DataFrame inputs: every layout path (one numpy dtype, several numeric dtypes, nullable
columns, anything else column by column) gives the statistics numpy computes on the same
values, also when one model sees frames of different layouts one after the other."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import modelotel
from _stats_support import same_side, shortcut_and_general
from modelotel import attributes as A  # noqa: N812
from modelotel.stats.read import FrameHint, extract
from modelotel.testing import capture

NAMES = ["a", "b", "c", "d"]
_rng = np.random.default_rng(11)


def _float_frame(rows: int) -> pd.DataFrame:
    data = _rng.normal(size=(rows, 4))
    data[0, 1] = np.nan
    return pd.DataFrame(data, columns=NAMES)


def _mixed_frame(rows: int) -> pd.DataFrame:  # float, int, uint8, float32
    return pd.DataFrame({"a": _rng.normal(size=rows), "b": _rng.integers(-5, 5, rows),
                         "c": _rng.integers(0, 3, rows).astype(np.uint8),
                         "d": _rng.normal(size=rows).astype(np.float32)})


def _masked_frame(rows: int) -> pd.DataFrame:  # nullable Int64, Float64, boolean + float
    ints = pd.array(_rng.integers(0, 9, rows), dtype="Int64")
    ints[1] = pd.NA
    floats = pd.array(_rng.normal(size=rows), dtype="Float64")
    floats[0] = pd.NA
    bools = pd.array(_rng.random(rows) > 0.5, dtype="boolean")
    bools[2] = pd.NA
    plain = _rng.normal(size=rows)
    plain[3] = np.nan  # a real NaN in a plain column: NaN, not null
    return pd.DataFrame({"a": ints, "b": floats, "c": bools, "d": plain})


def _bool_float_frame(rows: int) -> pd.DataFrame:  # to_numpy() of these is object
    return pd.DataFrame({"a": _rng.random(rows) > 0.5, "b": _rng.normal(size=rows),
                         "c": _rng.normal(size=rows), "d": _rng.integers(0, 4, rows)})


def _reordered(rows: int) -> pd.DataFrame:  # same columns, another order
    return _float_frame(rows)[["d", "c", "b", "a"]]


FRAMES = {"float": _float_frame, "mixed": _mixed_frame, "masked": _masked_frame,
          "bool_float": _bool_float_frame, "reordered": _reordered,
          # more rows than the row buffer takes: reduced directly (the kernel, if built)
          "masked_big": lambda rows: _masked_frame(9000),
          "float_big": lambda rows: _float_frame(9000)}


def _oracle(frames: list[pd.DataFrame]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name in NAMES:
        parts = [f[name] for f in frames]
        nulls = sum(int(p.isna().sum()) if not isinstance(p.dtype, np.dtype) else 0
                    for p in parts)
        vals = np.concatenate([p.to_numpy(dtype=np.float64, na_value=np.nan) for p in parts])
        fin = vals[np.isfinite(vals)]
        out[name] = {"count": vals.size, "null": nulls, "nan": int(np.isnan(vals).sum()) - nulls,
                     "mean": float(fin.mean()), "min": float(fin.min()), "max": float(fin.max())}
    return out


def _exported(points: list[Any], model: str) -> dict[str, dict[str, float]]:
    got: dict[str, dict[str, float]] = {n: {} for n in NAMES}
    for p in points:
        attrs = p.attributes
        if attrs.get(A.ML_MODEL_NAME) != model or attrs.get(A.ML_FEATURE) not in got:
            continue
        feat = got[attrs[A.ML_FEATURE]]
        if p.name == A.METRIC_FEATURE_COUNT:
            feat["count"] = p.value
        elif p.name == A.METRIC_FEATURE_MISSING:
            if attrs[A.ML_MISSING_KIND] in (A.MISSING_NULL, A.MISSING_NAN):
                feat[attrs[A.ML_MISSING_KIND]] = p.value
        elif p.name == A.METRIC_FEATURE_MEAN:
            feat["mean"] = p.value
        elif p.name == A.METRIC_FEATURE_MIN:
            feat["min"] = p.value
        elif p.name == A.METRIC_FEATURE_MAX:
            feat["max"] = p.value
    return got


_n = [0]


@pytest.mark.parametrize(
    "sequence",
    [["float"] * 3, ["mixed"] * 3, ["masked"] * 3, ["bool_float"] * 2, ["reordered"] * 2,
     ["float", "masked", "bool_float", "float", "mixed", "reordered", "masked"],
     ["masked_big", "masked", "float_big", "float"]],
    ids=lambda s: "-".join(s),
)
def test_frame_statistics_equal_numpy(sequence: list[str]) -> None:
    _n[0] += 1
    model = f"frames-{_n[0]}"
    # (a row_cap above the big frames' rows: every row is counted, as numpy's oracle counts)
    predict = modelotel.instrument(model=model, feature_names=NAMES, row_cap=20_000)(
        lambda X: np.zeros(len(X)))
    frames = [FRAMES[kind](40) for kind in sequence]
    copies = [f.copy(deep=True) for f in frames]
    with capture() as cap:
        for f in frames:
            predict(f)
        points = cap.collect()
    for f, c in zip(frames, copies, strict=True):
        pd.testing.assert_frame_equal(f, c)  # never mutated
    want, got = _oracle(frames), _exported(points, model)
    for name in NAMES:
        w, g = want[name], got[name]
        assert g["count"] == w["count"], (name, g, w)
        assert g.get("null", 0) == w["null"], (name, g, w)
        assert g.get("nan", 0) == w["nan"], (name, g, w)
        assert g["mean"] == pytest.approx(w["mean"], rel=1e-9, abs=1e-12), (name, g, w)
        assert g["min"] == pytest.approx(w["min"]) and g["max"] == pytest.approx(w["max"])


def test_the_hint_takes_the_short_path_and_notices_a_change() -> None:
    hint = FrameHint()
    t = extract(_float_frame(5), hint=hint)
    assert t is not None and t.matrix is not None and hint.numeric is True
    assert t.names == tuple(NAMES)
    t = extract(_bool_float_frame(5), hint=hint)  # the hint said numpy: to_numpy() was object
    assert t is not None and t.matrix is None and hint.numeric is False
    t = extract(_masked_frame(5), hint=hint)
    assert t is not None and t.matrix is not None and t.matrix.dtype == np.float64
    assert t.nulls == {"a": 1, "b": 1, "c": 1}  # pd.NA in the nullable columns only
    t = extract(_mixed_frame(5), hint=hint)
    assert t is not None and t.matrix is not None and hint.numeric is True
    frame = _float_frame(5)
    extract(frame, hint=hint)
    labels = hint.labels
    frame2 = frame * 2  # shares the column index
    assert extract(frame2, hint=hint) is not None and hint.labels is labels


def test_duplicate_and_non_string_labels() -> None:
    frame = pd.DataFrame(np.ones((3, 3)), columns=["a", "a", "b"])
    t = extract(frame)
    assert t is not None and t.names == ("a", "b")  # the first "a" kept, one skip counted
    frame = pd.DataFrame(np.ones((3, 2)), columns=[0, 1])
    t = extract(frame)
    assert t is not None and t.names == ("0", "1") and t.matrix is not None


def test_big_batch_with_nulls_reduced_directly() -> None:
    """Records with None (the careful path: a C-ordered float64 block plus null counts),
    more rows than the row buffer takes."""
    rng = np.random.default_rng(5)
    values = rng.normal(size=(9000, 4))
    records = [dict(zip(NAMES, row, strict=True)) for row in values.tolist()]
    for i in range(0, 9000, 50):
        records[i]["b"] = None
    records[7]["c"] = float("nan")
    predict = modelotel.instrument(model="frames-big-nulls", feature_names=NAMES,
                                   row_cap=9000)(lambda X: np.zeros(len(X)))
    with capture() as cap:
        predict(records)
        got = _exported(cap.collect(), "frames-big-nulls")
    assert got["b"]["count"] == 9000
    assert got["b"]["null"] == 180 and got["b"].get("nan", 0) == 0
    assert got["c"]["nan"] == 1 and got["c"].get("null", 0) == 0
    b = np.array([r["b"] for r in records if r["b"] is not None], dtype=np.float64)
    assert got["b"]["mean"] == pytest.approx(b.mean(), rel=1e-9)


@pytest.mark.parametrize("index_dtype", [None, object])
def test_column_labels_are_reused_only_while_a_new_index_holds_the_same_labels(
    index_dtype: Any,
) -> None:
    # each request's frame has a column index of its own: the labels of the last one are
    # reused when the new one holds equal labels (compared where pandas stores them), and
    # never when they differ in order, name or type (1 and 1.0 and "1" label differently)
    from modelotel.stats.frames import FrameHint, _frame_labels, _stored_labels

    def index(cols: list[Any]) -> pd.Index:
        return pd.Index(cols, dtype=index_dtype)

    assert _stored_labels(index(["a", "b"])) == ("a", "b")  # the shortcut is taken
    assert _stored_labels(index(["a", "b"])) != _stored_labels(index(["b", "a"]))
    assert _stored_labels(index([1, "a"])) is None  # compared the public way, as labels
    assert _stored_labels(index([1.0, "a"])) is None
    # labels stored in several pyarrow chunks read as the same labels
    for same, cols in ((True, ["a", "b"]), (False, ["b", "a"]), (False, ["a", "b", "c"])):
        last = index(["a", "b"])
        if index_dtype is None:
            pa = pytest.importorskip("pyarrow")
            chunked = pd.arrays.ArrowStringArray(pa.chunked_array([[c] for c in cols]))
            assert (_stored_labels(pd.Index(chunked)) == _stored_labels(last)) is same
            assert _stored_labels(pd.Index(chunked)) == tuple(cols)
    assert _stored_labels(index(["a", None])) is None  # a missing label: the public way
    hint = FrameHint()
    cases: list[list[Any]] = [
        ["a", "b", "c"], ["a", "b", "c"], ["a", "c", "b"], ["a", "c", "b"], ["a", "b", "d"],
        [0, 1, 2], ["0", "1", "2"], [1, "a", "b"], [1.0, "a", "b"], [True, "a", "b"],
        ["a", "b", "c", "d"], ["a", "b", "c"],
    ]
    for cols in cases:
        df = pd.DataFrame(np.zeros((2, len(cols))), columns=index(cols))
        assert _frame_labels(df, hint) == tuple(str(c) for c in cols)
        assert hint.columns is df.columns


@pytest.mark.parametrize("with_baseline", [True, False])
def test_numeric_frames_give_the_statistics_of_the_general_reader(
    with_baseline: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a frame of the plan's numeric columns in order (each with an index of its own) skips
    # the table and the schema alignment; the same frames through the general reader leave
    # the same window, drift, reports and totals, also for those the shortcut hands over
    # (reordered or renamed columns, a categorical, NaN, ints, bools, no rows)
    from modelotel.stats import profiler as profiler_module
    from modelotel.stats.baseline import Baseline
    from modelotel.stats.profiler import ABSENT, Profiler

    names = [f"f{i}" for i in range(5)]
    rng = np.random.default_rng(3)
    baseline = (Baseline.from_data(pd.DataFrame(rng.normal(size=(600, 5)), columns=names))
                if with_baseline else None)

    def frames() -> list[pd.DataFrame]:
        r = np.random.default_rng(4)
        out = []
        for i in range(60):
            df = pd.DataFrame(r.normal(size=(1 + i % 4, 5)) + (i > 40), columns=list(names))
            if i % 7 == 3:
                df = df[names[::-1]]
            elif i % 7 == 4:
                df = df.rename(columns={"f2": "g2"})
            elif i % 7 == 6:
                df.iloc[0, 2] = np.nan
                df["f3"] = np.arange(len(df))
            if i == 50:
                df = df.iloc[:0]
            # (a stream that turns mixed stays on the general reader: these come last)
            if i == 55:
                df["f1"] = pd.Categorical(["a"] * len(df))
            elif i == 57:
                df["f4"] = df["f4"] > 0
            out.append(df)
        return out

    def run(p: Profiler) -> tuple[Any, list[Any]]:
        said = [p.observe(df, ABSENT) for df in frames()]
        reports = [None if r is None else (r.checks, dict(r.skipped)) for r in said]
        return p.close(), reports

    # (the profiler hands such a frame's matrix to the fused step, or to the side's hot path)
    (fast, fast_reports), (general, general_reports), taken = shortcut_and_general(
        monkeypatch, (profiler_module,), "numeric_matrix",
        lambda x, names, hint: x, lambda args, got: got is not args[0],
        lambda: run(Profiler(baseline)))
    assert taken >= 25  # the shortcut was taken
    assert fast_reports == general_reports
    same_side(fast.inputs, general.inputs)
    assert fast.inputs.gauges


def test_a_single_block_frame_reads_as_to_numpy_does() -> None:
    # the block shortcut gives to_numpy()'s matrix (values, dtype, shape) or declines
    from modelotel.stats.frames import _single_block

    names = ["a", "b", "c"]
    df = pd.DataFrame(np.arange(12.0).reshape(4, 3), columns=names)
    got = _single_block(df, 3)
    assert got is not None
    np.testing.assert_array_equal(got, df.to_numpy())
    assert got.dtype == df.to_numpy().dtype
    ints = pd.DataFrame(np.arange(6).reshape(2, 3), columns=names)
    np.testing.assert_array_equal(_single_block(ints, 3), ints.to_numpy())
    shuffled = [df[["c", "a", "b"]], df[["c", "a", "b"]].copy(), df.iloc[:, ::-1],
                df.T.T, pd.concat([df[["a"]], df[["b", "c"]]], axis=1)]
    for frame in shuffled:  # whenever the shortcut reads one, it is to_numpy()'s matrix
        block = _single_block(frame, 3)
        if block is not None:
            np.testing.assert_array_equal(block, frame.to_numpy())
    assert _single_block(df[["c", "a", "b"]].copy(), 3) is not None
    two = df.assign(d=np.arange(4))  # a float and an int block
    assert _single_block(two, 4) is None
    assert _single_block(df, 4) is None
    assert _single_block(np.zeros((2, 3)), 3) is None
