"""Bad-input matrix (research/reliability.md §5 / §7.G): every input form and hostile ones go
through an instrumented predict. For each: the result is identical to the raw function's,
nothing is raised, no internal error is swallowed (strict mode, see conftest), no warning
escapes (``filterwarnings = error``), and what statistics skip is counted by reason."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse

import _health as health
import modelotel
from _stats_support import use_kernel
from modelotel import attributes as A  # noqa: N812
from modelotel.stats import Baseline
from modelotel.stats import reasons as R  # noqa: N812
from modelotel.testing import capture


class _ReprBomb:
    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")

    __str__ = __repr__


class _FakeCudaTensor:
    __module__ = "torch"

    class _Dev:
        type = "cuda"

    device = _Dev()

    def cpu(self) -> None:  # pragma: no cover - calling it would be the bug
        raise AssertionError("blocking device copy")


class _LenBomb(list):  # type: ignore[type-arg]
    def __len__(self) -> int:
        raise RuntimeError("len exploded")


class _GetItemBomb(list):  # type: ignore[type-arg]
    def __getitem__(self, i: Any) -> Any:
        raise RuntimeError("getitem exploded")


class _IterBomb(list):  # type: ignore[type-arg]
    def __iter__(self) -> Any:
        yield [1.0, 2.0]
        raise RuntimeError("iteration exploded")


class _KeysBomb(dict):  # type: ignore[type-arg]
    def __iter__(self) -> Any:
        raise RuntimeError("keys exploded")

    def items(self) -> Any:
        raise RuntimeError("items exploded")


class DataFrame:  # looks like pandas' by module and name, and explodes when read
    __module__ = "pandas.core.frame"

    @property
    def columns(self) -> Any:
        raise RuntimeError("columns exploded")

    def __len__(self) -> int:
        raise RuntimeError("len exploded")


class _TorchBomb:
    __module__ = "torch"

    @property
    def device(self) -> Any:
        raise RuntimeError("device exploded")


class _StrBomb:
    def __str__(self) -> str:
        raise RuntimeError("str exploded")

    __repr__ = __str__


def _circular() -> list[Any]:
    a: list[Any] = []
    a.append(a)
    return [a]


def _big_endian() -> np.ndarray:
    return np.arange(12, dtype=">f8").reshape(4, 3)


def _read_only() -> np.ndarray:
    a = np.arange(12.0).reshape(4, 3)
    a.setflags(write=False)
    return a


rng = np.random.default_rng(0)

# (id, input factory, expected skip counts)
CASES: list[tuple[str, Callable[[], Any], dict[str, int]]] = [
    ("nan_inf", lambda: np.array([[np.nan, 1.0], [np.inf, -np.inf]]), {}),
    ("negatives", lambda: -np.ones((3, 2)), {}),
    ("empty_2d", lambda: np.empty((0, 3)), {R.SKIP_EMPTY: 1}),
    ("empty_list", list, {R.SKIP_EMPTY: 1}),
    ("all_nan_column", lambda: np.array([[np.nan, 1.0], [np.nan, 2.0]]), {}),
    ("zero_d_number", lambda: np.array(5.0), {}),
    ("zero_d_object", lambda: np.array({"a": 1}, dtype=object), {R.SKIP_ZERO_DIM: 1}),
    ("scalar_float", lambda: 3.25, {}),
    ("scalar_nan", lambda: float("nan"), {}),
    ("scalar_str", lambda: "hello", {}),
    ("none_input", lambda: None, {R.SKIP_NONE: 1}),
    ("ragged_rows", lambda: [[1.0, 2.0], [3.0]], {R.SKIP_RAGGED: 1}),
    ("ragged_dict", lambda: {"a": [1, 2], "b": [1]}, {R.SKIP_RAGGED: 1}),
    ("object_array_mixed", lambda: np.array([[1, "a"], [None, 2.5]], dtype=object), {}),
    ("strings_in_rows", lambda: [[1.0, "x"], [2.0, 3.0]], {}),
    ("categorical_frame", lambda: pd.DataFrame({"c": pd.Categorical(["a", None, "b"])}), {}),
    ("nat_frame", lambda: pd.DataFrame({"t": pd.to_datetime(["2024-01-01", None])}), {}),
    ("nullable_int", lambda: pd.DataFrame({"i": pd.array([1, None, 3], dtype="Int64")}), {}),
    ("pd_na_object", lambda: pd.DataFrame({"o": pd.Series([pd.NA, "x"], dtype=object)}), {}),
    ("series", lambda: pd.Series([1.0, np.nan, 3.0], name="s"), {}),
    ("dict_of_arrays", lambda: {"a": np.arange(3.0), "b": ["x", "y", None]}, {}),
    ("list_of_dicts", lambda: [{"a": 1, "b": "u"}, {"a": None}], {}),
    ("list_of_dicts_bad_row", lambda: [{"a": 1}, 7], {R.SKIP_RAGGED: 1}),
    ("flat_list", lambda: [1.0, 2.0, None], {}),
    ("float16_extremes", lambda: np.array([[65504.0, -65504.0]] * 3, dtype=np.float16), {}),
    ("int8_extremes", lambda: np.array([[127, -128]] * 50, dtype=np.int8), {}),
    ("uint64", lambda: np.array([[2**64 - 1, 0]], dtype=np.uint64), {}),
    ("bool_array", lambda: np.array([[True, False], [False, False]]), {}),
    ("datetime64_nat", lambda: np.array(["2024-01-01", "NaT"], dtype="datetime64[s]"), {}),
    ("structured", lambda: np.array([(1, 2.5)], dtype=[("a", "i4"), ("b", "f8")]), {}),
    ("big_endian", _big_endian, {}),
    ("read_only", _read_only, {}),
    ("non_contiguous", lambda: np.arange(40.0).reshape(8, 5)[::2, ::2], {}),
    ("lone_surrogate", lambda: [["\ud800abc", 1.0]], {}),
    ("complex", lambda: np.ones((2, 2), dtype=complex), {R.SKIP_COMPLEX: 1}),
    ("high_rank", lambda: np.ones((2, 3, 4)), {R.SKIP_HIGH_RANK: 1}),
    ("circular", _circular, {R.SKIP_NON_TABULAR: 1}),
    ("repr_bomb", _ReprBomb, {R.SKIP_UNSUPPORTED: 1}),
    ("repr_bomb_in_rows", lambda: [[_ReprBomb()]], {R.SKIP_NON_TABULAR: 1}),
    ("dict_in_a_cell", lambda: [[1.0, {"a": 1}], [2.0, {"b": 2}]], {R.SKIP_NON_TABULAR: 1}),
    ("decimal_rows", lambda: [[Decimal("1.5"), 2.0], [Decimal("NaN"), Fraction(1, 3)]], {}),
    ("decimal_signaling_nan", lambda: [[Decimal("sNaN")], [Decimal("1")]], {R.SKIP_NON_NUMERIC: 1}),
    ("sparse", lambda: scipy.sparse.csr_matrix(np.eye(3)), {R.SKIP_SPARSE: 1}),
    ("pyarrow_table", lambda: __import__("pyarrow").table({"a": [1, 2]}), {R.SKIP_UNSUPPORTED: 1}),
    ("cuda_tensor", _FakeCudaTensor, {R.SKIP_GPU: 1}),
    # hostile objects: the input's own code raises while statistics read it
    ("len_bomb", lambda: _LenBomb([[1.0, 2.0]]), {R.SKIP_UNREADABLE: 1}),
    ("getitem_bomb", lambda: _GetItemBomb([[1.0, 2.0]]), {R.SKIP_UNREADABLE: 1}),
    ("iter_bomb", lambda: _IterBomb([[1.0, 2.0], [3.0, 4.0]]), {R.SKIP_UNREADABLE: 1}),
    ("mapping_bomb", lambda: _KeysBomb(a=[1.0]), {R.SKIP_UNREADABLE: 1}),
    ("frame_bomb", DataFrame, {R.SKIP_UNREADABLE: 1}),
    ("tensor_bomb", _TorchBomb, {R.SKIP_UNREADABLE: 1}),
    ("str_bomb_key", lambda: [{"a": 1.0}, {_StrBomb(): 2.0}], {R.SKIP_UNREADABLE: 1}),
    ("big_batch_row_cap", lambda: rng.normal(size=(30_000, 20)), {}),
    ("huge_width_capped", lambda: {f"c{i}": [1.0, 2.0] for i in range(250)},
     {R.SKIP_MAX_FEATURES: 50}),
    # unnamed and wide (an embedding): a fixed-size summary, nothing cut
    ("huge_width_summarized", lambda: np.ones((2, 250)), {}),
]

_n = [0]


def _echo(x: Any) -> Any:
    """The 'model': returns its input unchanged (the hardest output case too)."""
    return x


async def _aecho(x: Any) -> Any:
    return x


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize(("case", "factory", "skips"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_never_raises_and_is_counted(
    kind: str, case: str, factory: Callable[[], Any], skips: dict[str, int]
) -> None:
    _n[0] += 1
    model = f"bad-{case}-{kind}-{_n[0]}"
    x = factory()
    fn = _echo if kind == "sync" else _aecho
    predict = modelotel.instrument(model=model, row_cap=1000)(fn)
    with capture() as cap:
        got = predict(x) if kind == "sync" else asyncio.run(predict(x))
        assert got is x  # the very same object comes back
        cap.collect()  # closing the window must cope with whatever plan this produced
        cap.collect()
    # the same input is seen twice (as input and as output): count each reason per side
    seen = health.skipped(cap)
    expected = {k: v * 2 for k, v in skips.items()}
    if case in ("len_bomb", "getitem_bomb"):
        expected[A.REASON_INPUT_SHAPE] = 1  # the span's ml.input.rows read: once, inputs only
    if case == "big_batch_row_cap":
        expected["stats.row_cap"] = 2 * (30_000 - 1000)
        assert health.dropped(cap)["stats.row_cap"] == expected.pop("stats.row_cap")
    assert seen == expected


def test_skips_are_exported_by_reason() -> None:
    predict = modelotel.instrument(model="bad-export")(_echo)
    with capture() as cap:
        predict([[1.0], [2.0, 3.0]])
        pts = [p for p in cap.collect() if p.name == A.METRIC_TELEMETRY_SKIPPED]
    assert {p.attributes[A.ML_TELEMETRY_REASON]: p.value for p in pts} == {R.SKIP_RAGGED: 2}


def test_inputs_are_never_mutated() -> None:
    X = np.array([[1.0, np.nan], [np.inf, 2.0]])
    before = X.copy()
    df = pd.DataFrame({"a": [1.0, None], "b": pd.array([1, None], dtype="Int64")})
    df_before = df.copy(deep=True)
    b = Baseline.from_data(np.random.default_rng(1).normal(size=(100, 2)))
    predict = modelotel.instrument(model="bad-mutation", baseline=b)(_echo)
    with capture():
        predict(X)
        predict(df)
    np.testing.assert_array_equal(X, before)
    pd.testing.assert_frame_equal(df, df_before)


def test_exception_passes_through_and_outputs_are_not_profiled() -> None:
    class BoomError(Exception):
        pass

    def failing(x: Any) -> Any:
        raise BoomError("model failed")

    predict = modelotel.instrument(model="bad-raise")(failing)
    with capture() as cap:
        with pytest.raises(BoomError, match="model failed"):
            predict(np.ones((2, 2)))
        pts = cap.collect()
    counts = {p.name for p in pts if p.attributes.get(A.ML_MODEL_NAME) == "bad-raise"}
    assert A.METRIC_FEATURE_COUNT in counts and A.METRIC_OUTPUT_COUNT not in counts


def test_generator_output_is_not_consumed() -> None:
    def gen_predict(x: Any) -> Any:
        yield from (1.0, 2.0)

    predict = modelotel.instrument(model="bad-gen")(gen_predict)
    with capture() as cap:
        assert list(predict(np.ones((2, 2)))) == [1.0, 2.0]
        points = [p for p in cap.collect() if p.attributes.get(A.ML_MODEL_NAME) == "bad-gen"]
        (span,) = cap.spans()
    counts = {p.attributes[A.ML_FEATURE]: p.value for p in points
              if p.name == A.METRIC_FEATURE_COUNT}
    # the inputs are profiled; the items the caller consumed are the stream's outputs (one
    # value per item), read after the stream ended: the caller still got every item
    assert counts == {"0": 2, "1": 2}
    out_counts = [p.value for p in points if p.name == A.METRIC_OUTPUT_COUNT]
    assert out_counts == [2]
    assert span.attributes is not None
    assert span.attributes[A.ML_STREAM_ITEMS] == 2
    assert health.skipped(cap) == {}


def test_decimal_and_fraction_values_are_numbers() -> None:
    rows = [[Decimal("1.5"), Fraction(1, 4)], [Decimal("2.5"), Fraction(3, 4)], [None, 1]]
    predict = modelotel.instrument(model="bad-decimal", feature_names=["d", "f"])(_echo)
    with capture() as cap:
        predict(rows)
        pts = {(p.name, p.attributes.get(A.ML_FEATURE), p.attributes.get(A.ML_MISSING_KIND)):
               p.value for p in cap.collect() if p.attributes.get(A.ML_MODEL_NAME) == "bad-decimal"}
    assert pts[(A.METRIC_FEATURE_MEAN, "d", None)] == pytest.approx(2.0)
    assert pts[(A.METRIC_FEATURE_MEAN, "f", None)] == pytest.approx(2.0 / 3.0)
    assert pts[(A.METRIC_FEATURE_MISSING, "d", A.MISSING_NULL)] == 1
    assert pts[(A.METRIC_FEATURE_MIN, "f", None)] == pytest.approx(0.25)


def test_a_bug_of_ours_is_an_internal_error_not_a_skip(
    monkeypatch: pytest.MonkeyPatch, expect_internal_errors: list[tuple[str, BaseException]]
) -> None:
    from modelotel.stats import side

    # a function whose code lives in modelotel's source, as a real bug's would
    namespace: dict[str, Any] = {}
    source = ("def broken_extract(x, row_vector=True, hint=None, skipped=None):\n"
              "    raise RuntimeError('a bug in modelotel')\n")
    exec(compile(source, str(side.__file__), "exec"), namespace)
    monkeypatch.setattr(side, "extract", namespace["broken_extract"])
    predict = modelotel.instrument(model="bad-our-bug")(_echo)
    with capture() as cap:
        assert predict([[1.0, 2.0]]) == [[1.0, 2.0]]
    assert [str(e) for _, e in expect_internal_errors] == ["a bug in modelotel"]
    assert R.SKIP_UNREADABLE not in health.skipped(cap)
    assert health.errors(cap)["StatsPart.end"] == 1


def test_every_skip_reason_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "telemetry.md").read_text()
    reasons = [v for k, v in vars(R).items() if k.startswith("SKIP_")] + [A.REASON_INPUT_SHAPE]
    assert len(reasons) >= 15
    assert [r for r in reasons if f"`{r}`" not in doc] == []


# numpy complex scalars are np.number but not complex: float() on one warns (an error under
# -W error) and drops the imaginary part, so the column extraction must not take them for numbers.
def test_numpy_complex_in_rows_is_not_a_number() -> None:
    @modelotel.instrument(model="complex-rows")
    def predict(a: Any) -> float:
        return 1.0

    x = [[np.complex64(1 + 2j), 1.0], [np.complex64(3j), 2.0]]
    with capture() as cap:
        assert predict(x) == 1.0
        count = cap.metric(A.METRIC_FEATURE_COUNT, **{A.ML_FEATURE: "1"})
    assert count.value == 2
    assert health.errors(cap) == {}


def test_numpy_complex_in_a_numeric_column_is_a_counted_skip() -> None:
    @modelotel.instrument(model="complex-later")
    def predict(a: Any) -> float:
        return 1.0

    with capture() as cap:
        predict([[1.0, 2.0], [3.0, 4.0]])  # plans feature "0" as numeric
        predict([[np.complex64(1 + 2j), 2.0], [None, 4.0]])
        fired = cap.metric(A.METRIC_CHECK_VIOLATIONS, **{A.ML_CHECK: A.CHECK_SCHEMA_DTYPE_CHANGE})
        count = cap.metric(A.METRIC_FEATURE_COUNT, **{A.ML_FEATURE: "0"})
        null = cap.metric(A.METRIC_FEATURE_MISSING,
                          **{A.ML_FEATURE: "0", A.ML_MISSING_KIND: A.MISSING_NULL})
    assert fired.value == 1
    assert count.value == 4
    assert null.value == 2  # the None, and the complex value that is no number
    assert health.skipped(cap)[R.SKIP_NON_NUMERIC] == 1
    assert health.errors(cap) == {}


# Extreme values never become numpy warnings or FloatingPointErrors inside modelotel: each case
# runs under filterwarnings = error and under np.errstate(all="raise") (a host that called
# np.seterr(all="raise")), through the per-call output check, the window merge at collection
# and the cast into the row buffer; every value is counted, with no internal error.
_rng = np.random.default_rng(7)
_BASE = Baseline.from_data(_rng.normal(size=(200, 2)), outputs=_rng.normal(size=200))
_LD_MAX = np.finfo(np.longdouble).max


# (id, inputs (rows x 2), outputs (1-D), count of finite + missing values per input feature)
EXTREME_CASES: list[tuple[str, Any, Any]] = [
    ("outputs_minus_inf_plus_inf", np.ones((2, 2)), np.array([-np.inf, np.inf])),
    ("float16_near_max", np.full((3, 2), 65504, dtype=np.float16),
     np.full(3, 65504, dtype=np.float16)),
    ("near_float64_max", np.array([[1e308, -1e308], [1e308, 1e308]]),
     np.array([1e308, 1e308, -1e308])),
    ("big_batch_near_max", np.full((3000, 2), 1e308), np.full(3000, 1e308)),
    ("subnormals", np.full((3, 2), 5e-324), np.full(3, 5e-324)),
    ("longdouble_beyond_float64", np.full((2, 2), _LD_MAX, dtype=np.longdouble),
     np.full(2, _LD_MAX, dtype=np.longdouble)),
    ("longdouble_big_batch", np.full((300, 2), _LD_MAX, dtype=np.longdouble),
     np.full(300, _LD_MAX, dtype=np.longdouble)),
]


@contextlib.contextmanager
def _host(mode: str) -> Iterator[None]:
    if mode == "seterr_raise":
        with np.errstate(all="raise"):
            yield
    else:  # filterwarnings = error already
        yield


@pytest.mark.parametrize("compiled", [True, False], ids=["kernel", "numpy"])
@pytest.mark.parametrize("mode", ["warnings_as_errors", "seterr_raise"])
@pytest.mark.parametrize("baseline", [None, _BASE], ids=["no_baseline", "baseline"])
@pytest.mark.parametrize(("case", "x", "y"), EXTREME_CASES, ids=[c[0] for c in EXTREME_CASES])
def test_extreme_values_are_counted_without_internal_errors(
    case: str, x: Any, y: Any, baseline: Baseline | None, mode: str, compiled: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (with the compiled kernel and with its numpy twin: the big batch beyond row_cap goes
    # to the reduction without an errstate of the side's, the accumulators keep their own)
    use_kernel(monkeypatch, compiled)
    model = f"num-{case}-{baseline is not None}-{mode}-{compiled}"

    @modelotel.instrument(model=model, baseline=baseline, row_cap=1000)
    def predict(a: Any) -> Any:
        return y

    calls = 3
    with capture() as cap, _host(mode):
        for _ in range(calls):
            assert predict(x) is y
        cap.collect()  # closes the window: the merge into the running totals
        assert predict(x) is y
        calls += 1
        points = cap.collect()
    rows_seen = min(x.shape[0], 1000) * calls
    outs_seen = min(y.shape[0], 1000) * calls

    def value(name: str, **attrs: str) -> Any:
        got = [p.value for p in points if p.name == name
               and p.attributes.get(A.ML_MODEL_NAME) == model
               and all(p.attributes.get(k) == v for k, v in attrs.items())]
        assert len(got) == 1, (name, attrs, got)
        return got[0]

    assert value(A.METRIC_FEATURE_COUNT, **{A.ML_FEATURE: "0"}) == rows_seen
    assert value(A.METRIC_FEATURE_COUNT, **{A.ML_FEATURE: "1"}) == rows_seen
    assert value(A.METRIC_OUTPUT_COUNT, **{A.ML_OUTPUT: "0"}) == outs_seen
    assert value(A.METRIC_PREDICTION_CALLS) == calls
    assert not [p for p in points if p.name == A.METRIC_TELEMETRY_ERRORS]


def test_infinite_outputs_still_fire_the_nonfinite_check() -> None:
    """The cheaper test in the 1-D output check must not hide what it is there to see."""

    @modelotel.instrument(model="num-check")
    def predict(a: Any) -> Any:
        return np.array([-np.inf, np.inf])

    with capture() as cap, np.errstate(all="raise"):
        predict(np.ones((2, 2)))  # first call: plans the outputs (the general path)
        predict(np.ones((2, 2)))  # then the 1-D fast path
        got = cap.metric(A.METRIC_CHECK_VIOLATIONS, **{A.ML_CHECK: A.CHECK_OUTPUT_NONFINITE})
    assert got.value == 2
