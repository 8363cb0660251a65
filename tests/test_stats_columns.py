"""Every input form becomes named columns without copying or mutating; bad input is skipped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelotel.stats import reasons as R  # noqa: N812
from modelotel.stats.read import extract
from modelotel.stats.schema import CATEGORICAL, DATETIME, NUMERIC, ColumnPlan, FeatureSpec


def test_2d_float_array_is_a_view() -> None:
    X = np.arange(6.0).reshape(3, 2)
    t = extract(X)
    assert t is not None and t.matrix is not None
    assert np.shares_memory(t.matrix, X)
    assert (t.rows, t.names, t.named) == (3, ("0", "1"), False)


def test_1d_array_is_a_row_for_inputs_and_a_column_for_outputs() -> None:
    v = np.array([1.0, 2.0, 3.0])
    row = extract(v, row_vector=True)
    col = extract(v, row_vector=False)
    assert row is not None and row.matrix is not None and row.matrix.shape == (1, 3)
    assert col is not None and col.matrix is not None and col.matrix.shape == (3, 1)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.int8, np.uint64, np.bool_])
def test_numeric_dtypes_stay_matrices(dtype: type) -> None:
    t = extract(np.ones((2, 3), dtype=dtype))
    assert t is not None and t.matrix is not None and t.matrix.dtype == dtype


def test_structured_array() -> None:
    a = np.array([(1, 2.5, b"x"), (3, 4.5, b"y")], dtype=[("a", "i4"), ("b", "f8"), ("c", "S1")])
    t = extract(a)
    assert t is not None and t.names == ("a", "b", "c") and t.named
    assert t.kinds == {"a": NUMERIC, "b": NUMERIC, "c": CATEGORICAL}


def test_dataframe_with_every_kind_of_column() -> None:
    df = pd.DataFrame({
        "f": [1.0, np.nan, 3.0],
        "i": pd.array([1, None, 3], dtype="Int64"),
        "cat": pd.Categorical(["a", None, "b"]),
        "s": ["x", "y", None],
        "t": pd.to_datetime(["2024-01-01", None, "2024-01-03"]),
        7: [True, False, True],
    })
    before = df.copy(deep=True)
    t = extract(df)
    assert t is not None and t.names == ("f", "i", "cat", "s", "t", "7") and t.named
    assert t.kinds == {"f": NUMERIC, "i": NUMERIC, "cat": CATEGORICAL, "s": CATEGORICAL,
                       "t": DATETIME, "7": NUMERIC}
    assert t.nulls == {"f": 0, "i": 1, "cat": 1, "s": 1, "t": 1, "7": 0}
    pd.testing.assert_frame_equal(df, before)  # not mutated
    plan = ColumnPlan([FeatureSpec(n, t.kind(n)) for n in t.names])
    X, nulls, cats, issues = plan.align(t)
    assert issues == []
    assert X is not None and nulls is not None
    assert X.shape == (3, 4)
    assert nulls.tolist() == [0, 1, 1, 0]  # f's NaN is a NaN, i's NA and t's NaT are nulls
    assert X[0, 2] == pd.Timestamp("2024-01-01").timestamp()
    assert [c.tolist() for c in cats] == [["a", None, "b"], ["x", "y", None]]


def test_series_dict_records_rows_scalars() -> None:
    s = extract(pd.Series([1.0, 2.0], name="score"), row_vector=False)
    assert s is not None and s.names == ("score",) and s.rows == 2
    d = extract({"a": np.arange(3), "b": [1.0, None, 2.0], "c": ["u", "v", "w"]})
    assert d is not None and d.names == ("a", "b", "c") and d.rows == 3
    assert d.kinds == {"a": NUMERIC, "b": NUMERIC, "c": CATEGORICAL}
    r = extract([{"a": 1, "b": "x"}, {"a": 2}])
    assert r is not None and r.names == ("a", "b") and r.rows == 2
    assert r.columns is not None and r.columns["b"].tolist() == ["x", None]
    rows = extract([[1, 2.0], [3, None]])
    assert rows is not None and rows.names == ("0", "1") and rows.nulls == {"0": 0, "1": 1}
    one = extract(3.5)
    assert one is not None and one.matrix is not None and one.matrix.tolist() == [[3.5]]
    zero_d = extract(np.array(2.0))
    assert zero_d is not None and zero_d.rows == 1


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ([], R.SKIP_EMPTY),
        (np.empty((0, 3)), R.SKIP_EMPTY),
        (None, R.SKIP_NONE),
        ([[1, 2], [3]], R.SKIP_RAGGED),
        ({"a": [1, 2], "b": [1]}, R.SKIP_RAGGED),
        (np.array({"x": 1}, dtype=object), R.SKIP_ZERO_DIM),
        (np.ones((2, 2, 2)), R.SKIP_HIGH_RANK),
        (np.ones(3, dtype=complex), R.SKIP_COMPLEX),
        (object(), R.SKIP_UNSUPPORTED),
        ([{"a": 1}, 5], R.SKIP_RAGGED),
    ],
)
def test_bad_inputs_are_skipped_and_counted(bad: object, reason: str) -> None:
    skipped: dict[str, int] = {}
    assert extract(bad, skipped=skipped) is None
    assert skipped == {reason: 1}


def test_plan_reports_schema_problems_and_coerces_strings() -> None:
    specs = [FeatureSpec("a", NUMERIC), FeatureSpec("b", NUMERIC), FeatureSpec("c", CATEGORICAL)]
    plan = ColumnPlan(specs)
    t = extract(pd.DataFrame({"a": ["1.5", "oops"], "c": [1.0, 2.0], "z": [0, 0]}))
    assert t is not None
    skipped: dict[str, int] = {}
    X, nulls, cats, issues = plan.align(t, skipped)
    assert sorted(issues) == [
        ("schema_dtype_change", "a"),
        ("schema_dtype_change", "c"),
        ("schema_missing_feature", "b"),
        ("schema_unexpected_feature", "z"),
    ]
    assert X is not None and nulls is not None
    assert np.isnan(X).all()  # strings are not numbers; b is missing
    assert nulls.tolist() == [2, 2]
    assert skipped == {R.SKIP_NON_NUMERIC: 2}
    assert cats[0].tolist() == [1.0, 2.0]


def test_plan_positional_width_mismatch() -> None:
    plan = ColumnPlan([FeatureSpec("a", NUMERIC), FeatureSpec("b", NUMERIC)])
    t = extract(np.ones((2, 3)))
    assert t is not None
    X, _, _, issues = plan.align(t)
    assert issues == [("schema_unexpected_feature", "2")]  # named by position
    assert X is not None and X.shape == (2, 2)
    t2 = extract(np.ones((2, 1)))
    assert t2 is not None
    X2, nulls2, _, issues2 = plan.align(t2)
    assert issues2 == [("schema_missing_feature", "b")]
    assert X2 is not None and nulls2 is not None and nulls2.tolist() == [0, 2]


def test_plan_from_table_caps_features() -> None:
    t = extract(np.ones((2, 5)))
    assert t is not None
    skipped: dict[str, int] = {}
    plan = ColumnPlan.from_table(t, ["a", "b", "c", "d", "e"], max_features=3, skipped=skipped)
    assert plan.names == ("a", "b", "c")
    assert skipped == {R.SKIP_MAX_FEATURES: 2}


class _FakeCudaTensor:
    """Looks like a torch tensor on a GPU (type module 'torch'); must never be touched."""

    __module__ = "torch"

    class _Dev:
        type = "cuda"

    device = _Dev()

    def cpu(self) -> None:  # pragma: no cover - calling this would be the bug
        raise AssertionError("blocking copy attempted")

    def numpy(self) -> None:  # pragma: no cover
        raise AssertionError("conversion attempted")


def test_gpu_tensor_is_skipped_without_copy() -> None:
    skipped: dict[str, int] = {}
    assert extract(_FakeCudaTensor(), skipped=skipped) is None
    assert skipped == {R.SKIP_GPU: 1}


def test_torch_cpu_tensor_if_available() -> None:
    torch = pytest.importorskip("torch")
    t = extract(torch.ones((4, 2), dtype=torch.bfloat16, requires_grad=True))
    assert t is not None and t.matrix is not None and t.matrix.shape == (4, 2)


def test_lists_of_numbers_take_the_dense_path() -> None:
    rows = extract([[1.0, 2], [3.0, 4]])
    assert rows is not None and rows.matrix is not None
    assert rows.matrix.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    vec = extract([1, 2, 3], row_vector=True)
    assert vec is not None and vec.matrix is not None and vec.matrix.shape == (1, 3)
    col = extract((1.5, 2.5), row_vector=False)
    assert col is not None and col.matrix is not None and col.matrix.shape == (2, 1)
    # None, strings or bools keep the careful column-by-column path
    assert extract([[1.0, None]]) is not None and extract([[1.0, None]]).matrix is None  # type: ignore[union-attr]
    assert extract([True, 1.0]).matrix is None  # type: ignore[union-attr]
