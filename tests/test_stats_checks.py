"""Silent-failure checks as pure functions."""

from __future__ import annotations

import numpy as np

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
