"""A DataFrame read from its blocks (numeric blocks + categorical columns) gives the same
statistics as the column-by-column reading, and anything unusual falls back to it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from _stats_support import same_side, shortcut_and_general, use_kernel
from modelotel import attributes as A  # noqa: N812 - the project's alias for names
from modelotel.stats.frames import FrameHint, from_frame
from modelotel.stats.schema import ColumnPlan


def _mixed(rows: int, missing: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(rows)
    df = pd.DataFrame(rng.normal(size=(rows, 4)), columns=["a", "b", "c", "d"])
    df["n"] = np.arange(rows, dtype=np.int64)
    labels = np.array(["x", "y", "z"])[np.arange(rows) % 3].astype(object)
    if missing:
        labels[0] = None
    df["cat"] = pd.Categorical(labels, categories=["x", "y", "z"])
    df["e"] = rng.normal(size=rows)
    return df


def _read(df: pd.DataFrame, hint: FrameHint | None) -> tuple[object, ...]:
    skipped: dict[str, int] = {}
    table = from_frame(df, hint, skipped)
    assert table is not None
    assert skipped == {}
    plan = ColumnPlan.from_table(table, None, 100)
    X, nulls, cats, issues = plan.align(table, {})
    assert X is not None
    null_counts = None if nulls is None else np.asarray(nulls).tolist()
    return (table.names, plan.numeric, plan.categorical, np.asarray(X).tolist(),
            null_counts or None, [c.tolist() for c in cats], issues,
            {n: table.kind(n) for n in table.names}, dict(table.nulls or {}))


@pytest.mark.parametrize("rows", [1, 32])
@pytest.mark.parametrize("missing", [False, True])
def test_blocks_and_columns_read_a_mixed_frame_the_same(rows: int, missing: bool) -> None:
    df = _mixed(rows, missing)
    no_blocks = FrameHint()
    no_blocks.blocks = False
    assert _read(df, FrameHint()) == _read(df, no_blocks)
    hint = FrameHint()
    _read(df, hint)
    assert hint.blocks  # the blocks were read, not the fallback
    assert _read(_mixed(rows, missing), hint) == _read(df, no_blocks)  # a new frame, same hint


def test_each_frame_categorical_is_read_with_its_own_categories() -> None:
    # each request's Categorical has a dtype of its own: the same categories in another
    # order, or one more, give its codes other values than the last frame's
    hint = FrameHint()
    no_blocks = FrameHint()
    no_blocks.blocks = False
    seen = []
    for cats in (["x", "y", "z"], ["z", "x", "y", "w"], ["x", "y", "z"], ["y", "z", "x"],
                 ["y", "z", "x"]):
        df = _mixed(4)
        df["cat"] = pd.Categorical(["x", "y", "z", "x"], categories=cats)
        got = _read(df, hint)
        assert got == _read(df, no_blocks)
        seen.append(got[5])
    assert hint.blocks  # the blocks were read, not the fallback
    assert all(s == [["x", "y", "z", "x"]] for s in seen)


def test_float_block_in_schema_order_is_taken_whole_as_a_view() -> None:
    df = pd.DataFrame(np.arange(6.0).reshape(2, 3), columns=["a", "b", "c"])
    df["cat"] = pd.Categorical(["u", "v"])
    table = from_frame(df, FrameHint(), {})
    assert table is not None
    plan = ColumnPlan.from_table(table, None, 100)
    X, nulls, cats, issues = plan.align(table, {})
    assert X is not None
    assert np.shares_memory(X, table.block)
    assert X.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert [c.tolist() for c in cats] == [["u", "v"]]
    assert nulls is None
    assert issues == []


def test_a_frame_with_an_object_column_is_read_column_by_column() -> None:
    df = pd.DataFrame({"a": [1.0, 2.0], "s": pd.Series(["p", None], dtype=object)})
    hint = FrameHint()
    table = from_frame(df, hint, {})
    assert table is not None
    assert hint.blocks is False
    assert table.nulls == {"a": 0, "s": 1}


def test_a_missing_categorical_feature_is_still_reported() -> None:
    hint = FrameHint()
    first = from_frame(_mixed(4), hint, {})
    assert first is not None
    plan = ColumnPlan.from_table(first, None, 100)
    later = from_frame(_mixed(4).drop(columns=["cat"]), hint, {})
    assert later is not None
    _, _, cats, issues = plan.align(later, {})
    assert (A.CHECK_SCHEMA_MISSING_FEATURE, "cat") in issues
    assert cats[0].tolist() == [None] * 4


@pytest.mark.parametrize("rows", [1, 32])
@pytest.mark.parametrize("dtype", ["str", "string", "string[python]"])
@pytest.mark.parametrize("missing", [False, True])
def test_blocks_and_columns_read_string_columns_the_same(
    rows: int, dtype: str, missing: bool
) -> None:
    # a frame built from JSON records: float columns and string columns (pandas' "str",
    # Arrow-backed when pyarrow is there, or "string"), read from its blocks as column by
    # column: the same values (missing as None), kinds, nulls and schema
    rng = np.random.default_rng(rows)
    records = [{"a": float(v), "b": float(-v), "city": ["Oslo", "Lyon", "Kyiv"][i % 3],
                "note": f"order {i}"} for i, v in enumerate(rng.normal(size=rows))]
    df = pd.DataFrame(records).astype({"city": dtype, "note": dtype})
    if missing:
        df.loc[0, "city"] = None
    no_blocks = FrameHint()
    no_blocks.blocks = False
    hint = FrameHint()
    assert _read(df, hint) == _read(df, no_blocks)
    assert hint.blocks  # the blocks were read, not the fallback
    assert _read(df, hint)[5][0][0] == (None if missing else "Oslo")


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("output", ["none", "scores", "labels"])
@pytest.mark.parametrize("with_baseline", [True, False])
def test_mixed_frames_read_from_their_layout_give_the_statistics_of_the_general_reader(
    with_baseline: bool, output: str, compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # frames of one float64 block (the plan's numeric columns), a categorical and a string
    # column are read from their blocks while they keep the layout of the frame that
    # taught it; the same frames through the general reader leave the same window, drift,
    # reports and totals (categories in another order included), also for those the
    # shortcut must hand over (columns reordered, renamed or added, an int block, missing
    # values, no rows, more rows than row_cap).
    # With float scores out, the block and the scores take the profiler's fused step (the
    # kernel's, or its numpy twin); with labels out, the blocks are added on their own.
    from modelotel.stats import profiler as profiler_module
    from modelotel.stats.baseline import Baseline
    from modelotel.stats.profiler import ABSENT, Profiler

    use_kernel(monkeypatch, compiled)

    names = [f"f{i}" for i in range(4)]

    def frame(r: np.random.Generator, rows: int, shift: float = 0.0,
              categories: tuple[str, ...] = ("x", "y", "z")) -> pd.DataFrame:
        df = pd.DataFrame(r.normal(size=(rows, 4)) + shift, columns=names)
        df["cat"] = pd.Categorical(r.choice(["x", "y", "z"], size=rows),
                                   categories=list(categories))
        df["city"] = pd.array(r.choice(["Oslo", "Lyon", "Kyiv", "Lima"], size=rows),
                              dtype="str")
        return df

    baseline = (Baseline.from_data(frame(np.random.default_rng(5), 600))
                if with_baseline else None)

    def frames() -> list[pd.DataFrame]:
        r = np.random.default_rng(6)
        out = []
        for i in range(80):
            kind = i % 9
            # each frame's Categorical has a dtype of its own; some order their categories
            # otherwise or have one more (the same codes mean other values)
            categories = (("z", "x", "y", "w") if i % 4 == 1 else ("y", "z", "x")
                          if i % 4 == 3 else ("x", "y", "z"))
            df = frame(r, 1 + i % 5, shift=float(i > 45), categories=categories)
            if kind == 2:
                df.loc[0, "cat"] = None
            elif kind == 3:
                df.loc[0, "city"] = None
            elif kind == 4:
                df.iloc[0, 1] = np.nan
            elif kind == 5:
                df = df[["cat", *names[::-1], "city"]]
            elif kind == 6:
                df = df.rename(columns={"f2": "g2"})
            elif kind == 7:
                df["extra"] = 1.0
            elif kind == 8:
                df["f3"] = np.arange(len(df))
            if i == 30:
                df = df.iloc[:0]
            elif i == 40:
                df = frame(r, 100)  # more than row_cap: sampled by the general reader
            out.append(df)
        return out

    def run() -> tuple[Any, list[Any]]:
        p = Profiler(baseline, row_cap=64)
        p.rng = np.random.default_rng(0)  # the same row sample in both runs
        p.reset()
        said = [p.observe(df, outputs(i, len(df))) for i, df in enumerate(frames())]
        reports = [None if r is None else (r.checks, dict(r.skipped), r.dropped)
                   for r in said]
        return p.close(), reports

    def outputs(i: int, rows: int) -> Any:
        if output == "none":
            return ABSENT
        if output == "labels":
            return np.array(["yes", "no"])[np.arange(rows) % 2]
        y = np.full(rows, 0.25 + 0.01 * i)
        if i % 7 == 3 and rows:
            y[-1] = np.nan  # an output check fires
        return y

    (fast, fast_reports), (general, general_reports), taken = shortcut_and_general(
        monkeypatch, (profiler_module,), "block_columns",
        lambda x, hint, layout: None, lambda args, got: got is not None, run)
    assert taken >= 30  # the shortcut was taken
    assert fast_reports == general_reports
    if output == "scores":
        assert any(r is not None and r[0] for r in fast_reports)  # checks fired
    same_side(fast.inputs, general.inputs)
    if output != "none":
        same_side(fast.outputs, general.outputs)
    names = fast.inputs.plan.names
    assert "cat" in names and "city" in names
    assert fast.inputs.gauges and fast.inputs.totals.bins


def _city_frame(rows: int, city: str) -> pd.DataFrame:
    df = pd.DataFrame(np.full((rows, 2), 0.5), columns=["a", "b"])
    df["city"] = pd.array([city] * rows, dtype="str")
    df["size"] = pd.Categorical(["S"] * rows, categories=["S", "M", "L"])
    return df


def _city_bins(profiler: Any) -> dict[str, int]:
    side = profiler.close().inputs
    bins: dict[str, int] = {}
    for name in ("city", "size"):
        j = len(side.plan.numeric) + side.plan.categorical.index(name)
        bins.update(zip(side.bin_labels[j], side.totals.bins[j], strict=True))
    return bins


def test_columns_are_counted_as_they_were_at_the_call() -> None:
    # an Arrow string column and a Categorical's codes are counted when the window settles;
    # a column set after the call replaces the frame's pyarrow array, and the codes were
    # copied, so the window counts what the model was given
    pytest.importorskip("pyarrow")
    from modelotel.stats.baseline import Baseline
    from modelotel.stats.profiler import ABSENT, Profiler

    train = pd.concat([_city_frame(50, "Oslo"), _city_frame(50, "Lyon")], ignore_index=True)
    train.loc[:9, "size"] = "L"
    p = Profiler(Baseline.from_data(train), row_cap=64)
    p.observe(_city_frame(1, "Oslo"), ABSENT)  # learns the layout
    frames = [_city_frame(1, "Oslo") for _ in range(5)]
    for df in frames:
        p.observe(df, ABSENT)
    assert p.inputs.cat_window[0].pending, "the Arrow columns were read inside the call"
    assert p.inputs.cat_window[1].pending
    for df in frames:
        df.loc[0, "city"] = "Lyon"
        df.loc[0, "size"] = "L"
    bins = _city_bins(p)
    assert (bins["Oslo"], bins["Lyon"]) == (6, 0)
    assert (bins["S"], bins["L"]) == (6, 0)


def test_columns_waiting_for_the_window_end_are_bounded() -> None:
    pytest.importorskip("pyarrow")
    from modelotel.stats.accumulate import CategoricalAccumulator
    from modelotel.stats.profiler import ABSENT, Profiler

    p = Profiler(None, row_cap=64)
    n = CategoricalAccumulator._PENDING * 2 + 7
    most = [0, 0]
    for i in range(n):
        p.observe(_city_frame(2, "Oslo" if i % 2 else "Kyiv"), ABSENT)
        for k, acc in enumerate(p.inputs.cat_window):
            most[k] = max(most[k], len(acc.pending or ()))
    # (the Arrow column and the Categorical's codes) counted under the lock at the cap
    assert most == [CategoricalAccumulator._PENDING - 1] * 2
    snap = p.close()
    side = snap.inputs
    for name in ("city", "size"):
        j = len(side.plan.numeric) + side.plan.categorical.index(name)
        assert side.totals.seen[j] == 2 * n
