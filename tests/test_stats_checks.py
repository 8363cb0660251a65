"""Silent-failure checks as pure functions."""

from __future__ import annotations

import numpy as np

from modelotel import attributes as A  # noqa: N812 - the project's alias for names
from modelotel.stats import checks


def test_nonfinite_columns() -> None:
    X = np.array([[0.0, 1.0, 2.0], [np.nan, np.inf, 3.0]])
    assert checks.nonfinite(X) == [0, 1]
    assert checks.nonfinite(np.array([[1, 2]])) == []      # ints cannot be non-finite
    assert checks.nonfinite(np.empty((0, 2))) == []


def test_out_of_range() -> None:
    X = np.array([[0.5, 10.0], [0.7, np.nan]])
    assert checks.out_of_range(X, np.array([0.0, 0.0]), np.array([1.0, 5.0])) == [1]
    assert checks.out_of_range(X, np.array([0.6, np.nan]), np.array([1.0, np.nan])) == [0]
    assert checks.out_of_range_fast(np.array([0.0]), np.array([2.0]), np.array([0.0]),
                                    np.array([1.0])) == [0]


def test_constant_columns_need_a_full_window() -> None:
    count = np.array([50, 50, 5])
    vmin, vmax = np.array([1.0, 0.0, 2.0]), np.array([1.0, 1.0, 2.0])
    assert checks.constant_columns(count, vmin, vmax) == [0]


def test_class_collapse() -> None:
    assert checks.class_collapse(np.array([0, 99, 1]), [0.5, 0.5])
    assert not checks.class_collapse(np.array([0, 99, 1]), [0.1, 0.9])  # it was 90% already
    assert not checks.class_collapse(np.array([0, 10]), [0.5, 0.5])    # window too small
    assert not checks.class_collapse(np.array([40, 60]), [0.5, 0.5])
    assert checks.class_collapse(np.array([0, 0, 100]), [0.5, 0.5])    # all "other": base 0


def test_output_checks_of_a_long_spaced_column_equal_those_of_its_copy() -> None:
    # one column of a wider output (predict_proba(X)[:, 1:2]), long enough to be copied
    rng = np.random.default_rng(5)
    lo, hi = np.array([0.0]), np.array([1.0])
    for bad, fired in (
        (None, []),
        (1.5, [(A.CHECK_OUTPUT_OUT_OF_RANGE, 0)]),
        (np.nan, [(A.CHECK_OUTPUT_NONFINITE, 0)]),
        (np.inf, [(A.CHECK_OUTPUT_NONFINITE, 0)]),  # the range is of finite values
    ):
        proba = rng.uniform(size=(50_000, 2))
        if bad is not None:
            proba[31_337, 1] = bad
        before = proba.copy()
        spaced = proba[:, 1:2]
        assert not spaced.flags.c_contiguous
        got = checks.output_checks(spaced, lo, hi)
        assert got == checks.output_checks(np.ascontiguousarray(spaced), lo, hi)
        assert got == fired
        assert np.array_equal(proba, before, equal_nan=True)  # the output is not modified
