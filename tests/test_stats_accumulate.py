"""Window accumulators: exact against numpy references, and mergeable (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from modelotel.stats.accumulate import CategoricalAccumulator, NumericAccumulator


def _edges(d: int, rng: np.random.Generator) -> list[np.ndarray]:
    return [np.unique(np.round(rng.normal(size=6), 1)) for _ in range(d)]


def _ref_bins(col: np.ndarray, e: np.ndarray) -> list[int]:
    v = col[np.isfinite(col)]
    below = int((v < e[0]).sum())
    above = int((v > e[-1]).sum())
    inner, _ = np.histogram(v[(v >= e[0]) & (v <= e[-1])], bins=e)
    return [below, *inner.tolist(), above]


def test_matches_numpy_reference_on_clean_data() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(5.0, 2.0, size=(500, 4))
    edges = _edges(4, rng)
    acc = NumericAccumulator(4, edges)
    acc.add(X)
    assert acc.count.tolist() == [500] * 4
    assert acc.nan.tolist() == [0] * 4 and acc.inf.tolist() == [0] * 4
    np.testing.assert_allclose(acc.mean, X.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(acc.variance(), X.var(axis=0), rtol=1e-10)
    np.testing.assert_allclose(acc.std(ddof=1), X.std(axis=0, ddof=1), rtol=1e-10)
    assert acc.min.tolist() == X.min(axis=0).tolist()
    assert acc.max.tolist() == X.max(axis=0).tolist()
    for j in range(4):
        assert acc.bin_counts(j).tolist() == _ref_bins(X[:, j], edges[j])


def test_missing_split_and_bins_ignore_nonfinite() -> None:
    X = np.array([[1.0, np.nan], [np.inf, 2.0], [-np.inf, np.nan], [3.0, 4.0]])
    acc = NumericAccumulator(2, [np.array([0.0, 2.0, 4.0]), np.array([2.0, 4.0])])
    acc.add(X, nulls=np.array([0, 1]))
    assert acc.count.tolist() == [2, 2]
    assert acc.nan.tolist() == [0, 1]
    assert acc.null.tolist() == [0, 1]
    assert acc.inf.tolist() == [2, 0]
    assert acc.mean.tolist() == [2.0, 3.0]
    assert acc.min.tolist() == [1.0, 2.0] and acc.max.tolist() == [3.0, 4.0]
    assert acc.bin_counts(0).tolist() == [0, 1, 1, 0]
    assert acc.bin_counts(1).tolist() == [0, 2, 0]   # last bin is closed: 4.0 is inside
    assert acc.binned.tolist() == [2, 2]


def test_last_bin_closed_and_out_of_range() -> None:
    acc = NumericAccumulator(1, [np.array([0.0, 1.0, 2.0])])
    acc.add(np.array([[-0.5], [0.0], [1.0], [2.0], [2.0000001]]))
    assert acc.bin_counts(0).tolist() == [1, 1, 2, 1]


def test_integer_float16_bool_inputs_accumulate_in_float64() -> None:
    acc = NumericAccumulator(3)
    X8 = np.array([[127, 1, 60000], [127, 0, 60000]], dtype=np.int64)
    acc.add(X8.astype(np.int8).astype(np.int64))
    acc.add(np.array([[127.0, 1.0, 65504.0]], dtype=np.float16).astype(np.float16))
    assert acc.mean[0] == 127.0  # no int8 wrap-around
    assert acc.max[2] == 65504.0
    acc2 = NumericAccumulator(1)
    acc2.add(np.array([[True], [False], [True]]))
    assert acc2.mean[0] == pytest.approx(2 / 3)


def test_large_offset_is_numerically_stable() -> None:
    rng = np.random.default_rng(3)
    X = 1e9 + rng.normal(size=(1000, 1))
    acc = NumericAccumulator(1)
    acc.add(X[:500])
    acc.add(X[500:])
    np.testing.assert_allclose(acc.variance(), X.var(axis=0), rtol=1e-6)


def test_row_sample_for_bins_keeps_moments_exact() -> None:
    X = np.arange(100.0).reshape(-1, 1)
    acc = NumericAccumulator(1, [np.array([0.0, 50.0, 99.0])])
    acc.add(X, bin_rows=slice(0, None, 10))
    assert acc.count[0] == 100
    assert acc.binned[0] == 10
    assert acc.bin_counts(0).tolist() == [0, 5, 5, 0]


def test_empty_accumulator_reads() -> None:
    acc = NumericAccumulator(2, [np.array([0.0, 1.0]), np.array([])])
    acc.add(np.empty((0, 2)))
    assert acc.count.tolist() == [0, 0]
    assert np.isnan(acc.variance()).all()
    assert acc.bin_counts(1).tolist() == []


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=64)
value = st.one_of(finite, st.just(np.nan), st.just(np.inf), st.just(-np.inf))


@settings(max_examples=150, deadline=None)
@given(
    hnp.arrays(np.float64, st.tuples(st.integers(2, 60), st.integers(1, 5)), elements=value),
    st.integers(1, 59),
    st.integers(0, 2**31),
)
def test_merge_of_halves_equals_whole(X: np.ndarray, cut: int, seed: int) -> None:
    cut = min(cut, X.shape[0] - 1)
    rng = np.random.default_rng(seed)
    edges = [np.unique(np.round(rng.normal(0, 1e5, size=5))) for _ in range(X.shape[1])]
    whole = NumericAccumulator(X.shape[1], edges)
    whole.add(X)
    a = whole.empty_like()
    b = whole.empty_like()
    a.add(X[:cut])
    b.add(X[cut:])
    a.merge(b)
    for name in ("count", "nan", "inf", "null", "ge", "binned"):
        assert getattr(a, name).tolist() == getattr(whole, name).tolist(), name
    assert a.min.tolist() == whole.min.tolist()
    assert a.max.tolist() == whole.max.tolist()
    # within 1e-9 relative to the data's own scale: a mean or m2 that cancels to near zero
    # (values of 1e6 averaging 0, or nearly equal large values) carries rounding of the size of
    # the values themselves, so "relative" is taken against the largest finite magnitude
    finite = np.where(np.isfinite(X), np.abs(X), 0.0)
    big = max(float(finite.max()), 1.0)
    scale = np.maximum(np.abs(whole.mean), big)
    np.testing.assert_allclose(a.mean / scale, whole.mean / scale, rtol=0, atol=1e-9)
    vscale = np.maximum(whole.m2, X.shape[0] * big * big)
    np.testing.assert_allclose(a.m2 / vscale, whole.m2 / vscale, rtol=0, atol=1e-9)
    for j in range(X.shape[1]):
        assert a.bin_counts(j).tolist() == _ref_bins(X[:, j], edges[j])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "x", None, 1, 2.0, float("nan")]), min_size=1,
                max_size=80), st.integers(0, 80))
def test_categorical_merge_and_buckets(values: list[object], cut: int) -> None:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    whole = CategoricalAccumulator(["a", "b", "1"], known_other=frozenset({"c", "2"}))
    whole.add(arr)
    a, b = whole.empty_like(), whole.empty_like()
    a.add(arr[:cut])
    b.add(arr[cut:])
    a.merge(b)
    assert a.counts == whole.counts
    assert (a.count, a.null) == (whole.count, whole.null)
    n_null = sum(1 for v in values if v is None or (isinstance(v, float) and v != v))
    assert whole.null == n_null
    exp = [values.count("a"), values.count("b"), values.count(1),
           values.count("c") + values.count(2.0), values.count("x")]
    assert whole.counts == exp


@settings(max_examples=100, deadline=None)
@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 40), st.integers(1, 5)), elements=value),
    st.integers(0, 2**31),
)
def test_columns_first_layout_equals_rows_layout(X: np.ndarray, seed: int) -> None:
    rng = np.random.default_rng(seed)
    edges = [np.unique(np.round(rng.normal(0, 1e5, size=5))) for _ in range(X.shape[1])]
    rows = NumericAccumulator(X.shape[1], edges)
    rows.add(X)
    cols = rows.empty_like()
    cols.add(np.ascontiguousarray(X.T), columns_first=True)
    for name in ("count", "nan", "inf", "ge", "binned", "min", "max"):
        assert getattr(cols, name).tolist() == getattr(rows, name).tolist(), name
    # the two layouts sum in different orders: rounding differs by a few ulps of the largest
    # magnitude involved, so the absolute tolerance scales with it (a mean or m2 that cancels
    # to near zero cannot be compared relatively)
    finite = np.where(np.isfinite(X), np.abs(X), 0.0)
    scale = float(finite.max()) if finite.size else 0.0
    n = X.shape[0]
    np.testing.assert_allclose(cols.mean, rows.mean, rtol=1e-12, atol=1e-9 + 1e-13 * n * scale)
    np.testing.assert_allclose(
        cols.m2, rows.m2, rtol=1e-9, atol=1e-6 + 1e-13 * n * scale * scale
    )


@settings(max_examples=200, deadline=None)
@given(
    batches=st.lists(
        st.tuples(st.integers(0, 2), st.lists(st.integers(-1, 3), min_size=1, max_size=40),
                  st.booleans()),
        min_size=1, max_size=12,
    ),
    known=st.sampled_from([None, frozenset({"z"})]),
)
def test_categorical_codes_count_like_their_labels(
    batches: list[tuple[int, list[int], bool]], known: frozenset[str] | None
) -> None:
    # a pandas Categorical's codes against its categories (-1: missing) count as the labels
    # they stand for, whether frames share a categories array (a dtype) or bring another
    # (other order, other values), across window swaps (empty_like shares the slot cache)
    arrays = [np.array(["a", "b", "c", "z"], dtype=object),
              np.array(["z", "c", "b", "y"], dtype=object)]
    arrays.append(arrays[0])  # the same array again: its slots are reused
    by_codes = CategoricalAccumulator(["a", "b"], known)
    by_labels = CategoricalAccumulator(["a", "b"], known)
    for which, codes, swap in batches:
        cats = arrays[which]
        by_codes.add_codes(cats, codes)
        by_labels.add_items([cats[c] if c >= 0 else None for c in codes])
        assert (by_codes.counts, by_codes.count, by_codes.null) == (
            by_labels.counts, by_labels.count, by_labels.null)
        if swap:
            by_codes, by_labels = by_codes.empty_like(), by_labels.empty_like()
