"""Drift functions against scipy on random data, and their edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
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


@pytest.mark.slow
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
    assert drift.cramers_v(obs, p) == 0.0


@settings(max_examples=200, deadline=None)
@given(counts, st.integers(0, 2**31))
@example([0, 1, 224], 102)  # near the clip at 1, with an unseen bin
def test_cramers_v_is_scipy_chi_square_over_n_times_dof(c: list[int], seed: int) -> None:
    a, b = _pair(c, seed)
    b[b < 300] = 0  # some bins the baseline never saw
    if b.sum() == 0:
        b[0] = 1
    q = b / b.sum()
    # Pearson's terms (o - n q)^2 / (n q), with a bin the baseline never saw divided by n eps
    # (its expected count stays n q = 0 in the numerator, as in the fleet rules' chi-square)
    n = a.sum()
    chi2 = float(np.sum((a - n * q) ** 2 / (n * np.maximum(q, drift.PSI_EPS))))
    dof = max(int(np.count_nonzero(q)) - 1, 1)
    expected = math.sqrt(min(chi2 / (a.sum() * dof), 1.0))
    assert drift.cramers_v(a, q) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    if not (q == 0).any():
        stat = sps.chisquare(a, q * a.sum()).statistic
        assert drift.cramers_v(a, q) == pytest.approx(
            math.sqrt(min(stat / (a.sum() * dof), 1.0)), rel=1e-9, abs=1e-12
        )


def test_cramers_v_is_zero_on_identical_data_with_categories_left_empty() -> None:
    # a categorical baseline: top categories, "other", and "unseen" (share 0 by definition)
    shares = [0.5, 0.3, 0.2, 0.0, 0.0]
    for n in (10, 2_000, 20_000):
        obs = [0.5 * n, 0.3 * n, 0.2 * n, 0, 0]
        assert drift.cramers_v(obs, shares) == 0.0


def test_cramers_v_does_not_grow_with_the_window() -> None:
    rng = np.random.default_rng(7)
    base = np.array([0.4, 0.25, 0.15, 0.1, 0.05, 0.05, 0.0])
    shifted = np.array([0.3, 0.3, 0.15, 0.1, 0.1, 0.05, 0.0])
    for dist, target in ((base, 0.0), (shifted, drift.cramers_v(shifted, base))):
        small = np.mean([drift.cramers_v(rng.multinomial(2_000, dist), base) for _ in range(50)])
        large = np.mean([drift.cramers_v(rng.multinomial(20_000, dist), base) for _ in range(50)])
        # no drift: about 1/sqrt(n) (0.022 and 0.007); drift: both near the effect size
        assert abs(small - large) < 0.02, (small, large)
        assert abs(large - target) < 0.01, (large, target)
    # the raw statistic it replaces grows tenfold on the same shifted distribution
    assert drift.chi_square(20_000 * shifted, base) > 9 * drift.chi_square(2_000 * shifted, base)


def test_cramers_v_saturates_at_one_on_new_categories() -> None:
    shares = [0.5, 0.5, 0.0]
    assert drift.cramers_v([0, 0, 100], shares) == 1.0
    assert 0.0 < drift.cramers_v([999, 1000, 1], shares) < 0.1
    assert math.isnan(drift.cramers_v([0, 0, 0], shares))


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
