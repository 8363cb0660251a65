"""Drift functions against scipy on random data, and their edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from modelotel.stats import drift

counts = st.lists(st.integers(0, 1000), min_size=2, max_size=14)


def _pair(draw_counts: list[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = np.asarray(draw_counts, dtype=np.float64)
    b = rng.integers(0, 1000, size=a.shape[0]).astype(np.float64)
    if a.sum() == 0:
        a[0] = 1
    if b.sum() == 0:
        b[-1] = 1
    return a, b


@settings(max_examples=200, deadline=None)
@given(counts, st.integers(0, 2**31))
def test_psi_is_symmetric_kl_of_smoothed_shares(c: list[int], seed: int) -> None:
    a, b = _pair(c, seed)
    p = np.maximum(a / a.sum(), drift.PSI_EPS)
    q = np.maximum(b / b.sum(), drift.PSI_EPS)
    p, q = p / p.sum(), q / q.sum()
    expected = sps.entropy(p, q) + sps.entropy(q, p)
    assert drift.psi(a, b / b.sum()) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(counts, st.integers(0, 2**31))
def test_js_distance_matches_scipy(c: list[int], seed: int) -> None:
    a, b = _pair(c, seed)
    assert drift.js_distance(a, b) == pytest.approx(jensenshannon(a, b, base=2), rel=1e-9, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(counts, st.integers(0, 2**31))
def test_ks_matches_ks_2samp_on_binned_samples(c: list[int], seed: int) -> None:
    a, b = _pair(c, seed)
    centers = np.arange(a.shape[0], dtype=np.float64)
    sa = np.repeat(centers, a.astype(int))
    sb = np.repeat(centers, b.astype(int))
    assert drift.ks(a, b) == pytest.approx(sps.ks_2samp(sa, sb).statistic, rel=1e-9, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(counts, st.integers(0, 2**31))
def test_wasserstein_matches_scipy_with_centers_and_weights(c: list[int], seed: int) -> None:
    a, b = _pair(c, seed)
    rng = np.random.default_rng(seed + 1)
    centers = np.sort(rng.normal(0, 10, size=a.shape[0]))
    expected = sps.wasserstein_distance(centers, centers, u_weights=a, v_weights=b)
    assert drift.wasserstein(a, b, centers) == pytest.approx(expected, rel=1e-9, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(counts, st.integers(0, 2**31))
def test_chi_square_matches_scipy(c: list[int], seed: int) -> None:
    a, b = _pair(c, seed)
    q = np.maximum(b / b.sum(), drift.PSI_EPS)
    q = q / q.sum()
    expected = sps.chisquare(a, q * a.sum()).statistic
    assert drift.chi_square(a, b / b.sum()) == pytest.approx(expected, rel=1e-9)


def test_identical_distributions_give_zero() -> None:
    p = [0.1, 0.2, 0.3, 0.4]
    obs = [10, 20, 30, 40]
    assert drift.psi(obs, p) == pytest.approx(0.0, abs=1e-15)
    assert drift.js_distance(obs, p) == pytest.approx(0.0, abs=1e-7)
    assert drift.ks(obs, p) == pytest.approx(0.0, abs=1e-15)
    assert drift.wasserstein(obs, p, [0, 1, 2, 3]) == pytest.approx(0.0, abs=1e-15)
    assert drift.chi_square(obs, p) == pytest.approx(0.0, abs=1e-12)


def test_disjoint_distributions() -> None:
    assert drift.js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert drift.ks([1, 0], [0, 1]) == 1.0
    assert drift.psi([1, 0], [0, 1]) > 10


def test_empty_inputs_give_nan_and_shape_mismatch_raises() -> None:
    for fn in (drift.psi, drift.js_distance, drift.ks):
        assert math.isnan(fn([0, 0], [0.5, 0.5]))
    assert math.isnan(drift.wasserstein([0, 0], [0.5, 0.5], [0.0, 1.0]))
    assert math.isnan(drift.chi_square([0, 0], [0.5, 0.5]))
    with pytest.raises(ValueError, match="bins"):
        drift.psi([1, 2, 3], [0.5, 0.5])
    with pytest.raises(ValueError, match="centers"):
        drift.wasserstein([1, 2], [0.5, 0.5], [0.0])


def test_bin_centers_use_window_extremes_outside_edges() -> None:
    c = drift.bin_centers([0.0, 1.0, 3.0], low=-5.0, high=2.0)
    assert c.tolist() == [-5.0, 0.5, 2.0, 3.0]
    assert drift.bin_centers([0.0, 1.0], low=None, high=float("nan")).tolist() == [0.0, 0.5, 1.0]
