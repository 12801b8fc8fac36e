"""Reward generators and Proposition 4's model: realized moments against their targets.

Tolerances are 4 standard errors computed from the sample itself (fixed seeds).
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mrgrpo.sim import (bernoulli_correlation_bounds, bernoulli_pair_correlation, bernoulli_rewards,
                             copula_latent_correlation, gaussian_rewards, mixed_rewards, prop4_model)
from mrgrpo.sim import exact

K_SE = 4.0


def corr_and_se(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Pearson correlation and its SE from the influence function (valid for any distribution)."""
    xs = (x - x.mean()) / x.std()
    ys = (y - y.mean()) / y.std()
    r = float(np.mean(xs * ys))
    infl = xs * ys - r * (xs ** 2 + ys ** 2) / 2
    return r, float(infl.std(ddof=1) / np.sqrt(len(x)))


def assert_corr_matrix(r: np.ndarray, C: np.ndarray) -> None:
    flat = r.reshape(-1, r.shape[-1])
    R = C.shape[0]
    for i in range(R):
        for j in range(i + 1, R):
            est, se = corr_and_se(flat[:, i], flat[:, j])
            assert abs(est - C[i, j]) < K_SE * se, (i, j, est, C[i, j], se)


# feasible for p = (0.3, 0.7, 0.5): the (0, 1) Frechet upper bound is 0.4286
C3 = np.array([[1.0, 0.35, -0.3], [0.35, 1.0, 0.2], [-0.3, 0.2, 1.0]])


# --------------------------------------------------------------------------- Gaussian
def test_gaussian_shape_moments_and_correlation():
    sigma, mu = np.array([1.0, 3.0, 0.5]), np.array([0.0, -1.0, 2.0])
    r = gaussian_rewards(50000, 4, C3, sigma=sigma, mu=mu, seed=1)
    assert r.shape == (50000, 4, 3)
    flat = r.reshape(-1, 3)
    n = len(flat)
    assert np.all(np.abs(flat.mean(0) - mu) < K_SE * sigma / np.sqrt(n))
    # sample std: SE ~ sigma / sqrt(2 n) for Gaussian data
    assert np.all(np.abs(flat.std(0) - sigma) < K_SE * sigma / np.sqrt(2 * n))
    assert_corr_matrix(r, C3)


def test_gaussian_tuple_shape_seed_and_singular_C():
    a = gaussian_rewards((3, 5), 8, np.eye(2), seed=7)
    b = gaussian_rewards((3, 5), 8, np.eye(2), seed=np.random.default_rng(7))
    assert a.shape == (3, 5, 8, 2)
    np.testing.assert_array_equal(a, b)
    # a rank-one C (rho = 1) is PSD: channels are identical
    r = gaussian_rewards(100, 2, np.ones((2, 2)), seed=0)
    np.testing.assert_allclose(r[..., 0], r[..., 1], atol=1e-12)


@pytest.mark.parametrize("C, msg", [
    (np.array([[1.0, 0.2], [0.3, 1.0]]), "symmetric"),
    (np.array([[2.0, 0.2], [0.2, 1.0]]), "unit diagonal"),
    (np.array([[1, -0.9, -0.9], [-0.9, 1, -0.9], [-0.9, -0.9, 1.0]]), "positive semi-definite"),
    (np.array([[1.0, np.nan], [np.nan, 1.0]]), "finite"),
    (np.ones((2, 3)), "square"),
])
def test_gaussian_bad_C(C, msg):
    with pytest.raises(ValueError, match=msg):
        gaussian_rewards(10, 2, C, seed=0)


def test_gaussian_bad_args():
    with pytest.raises(ValueError, match="sigma"):
        gaussian_rewards(10, 2, np.eye(2), sigma=[1.0, -1.0], seed=0)
    with pytest.raises(ValueError, match="length"):
        gaussian_rewards(10, 2, np.eye(2), mu=[1.0, 2.0, 3.0], seed=0)
    with pytest.raises(ValueError, match="seed"):
        gaussian_rewards(10, 2, np.eye(2), seed=None)
    with pytest.raises(ValueError, match="n must"):
        gaussian_rewards(0, 2, np.eye(2), seed=0)


# --------------------------------------------------------------------------- Bernoulli copula
def test_latent_solver_against_scipy_bivariate_cdf():
    """P(X_l = X_k = 1) = Phi_2(a_l, a_k; r) from scipy's independent implementation."""
    for p_l, p_k, r in [(0.3, 0.7, 0.4), (0.5, 0.5, -0.6), (0.1, 0.8, 0.9), (0.25, 0.6, -0.2)]:
        a, b = stats.norm.ppf(p_l), stats.norm.ppf(p_k)
        p11 = stats.multivariate_normal(mean=[0, 0], cov=[[1, r], [r, 1]]).cdf([a, b])
        want = (p11 - p_l * p_k) / np.sqrt(p_l * (1 - p_l) * p_k * (1 - p_k))
        assert abs(bernoulli_pair_correlation(p_l, p_k, r) - want) < 1e-5
    # p = 1/2: closed form 2/pi arcsin(r)
    for r in (-0.8, 0.1, 0.7):
        assert abs(bernoulli_pair_correlation(0.5, 0.5, r) - 2 / np.pi * np.arcsin(r)) < 1e-10


def test_latent_roundtrip():
    p = [0.3, 0.7, 0.5]
    L = copula_latent_correlation(p, C3)
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        assert abs(bernoulli_pair_correlation(p[i], p[j], L[i, j]) - C3[i, j]) < 1e-9


def test_bernoulli_realized_correlation_and_means():
    p = np.array([0.3, 0.7, 0.5])
    r = bernoulli_rewards(100000, 2, p, C3, seed=3)
    assert r.shape == (100000, 2, 3)
    assert set(np.unique(r)) <= {0.0, 1.0}
    flat = r.reshape(-1, 3)
    se = np.sqrt(p * (1 - p) / len(flat))
    assert np.all(np.abs(flat.mean(0) - p) < K_SE * se)
    assert_corr_matrix(r, C3)


def test_bernoulli_frechet_bounds_reached_and_infeasible():
    lo, hi = bernoulli_correlation_bounds(0.2, 0.6)
    assert hi == pytest.approx((0.2 - 0.12) / np.sqrt(0.16 * 0.24))
    assert lo == pytest.approx((0.0 - 0.12) / np.sqrt(0.16 * 0.24))
    # the upper bound is reachable (comonotone channels)
    r = bernoulli_rewards(20000, 1, [0.2, 0.6], [[1, hi], [hi, 1]], seed=0)[:, 0]
    assert np.all(r[:, 0] <= r[:, 1])
    with pytest.raises(ValueError, match="Frechet"):
        bernoulli_rewards(10, 2, [0.2, 0.6], [[1, hi + 0.05], [hi + 0.05, 1]], seed=0)
    with pytest.raises(ValueError, match="Frechet"):
        bernoulli_rewards(10, 2, [0.1, 0.9], [[1, 0.5], [0.5, 1]], seed=0)


def test_bernoulli_latent_not_psd():
    # each pair is feasible (|-0.5| within the bounds for p = 1/2) but the latent
    # matrix (off-diagonal sin(-pi/4)) is not PSD
    C = np.full((3, 3), -0.5) + 1.5 * np.eye(3)
    with pytest.raises(ValueError, match="not positive semi-definite"):
        bernoulli_rewards(10, 2, [0.5, 0.5, 0.5], C, seed=0)


@pytest.mark.parametrize("p", [[0.0, 0.5], [0.5, 1.0], [1.2, 0.5], [np.nan, 0.5], [None, 0.5]])
def test_bernoulli_bad_p(p):
    with pytest.raises(ValueError):
        bernoulli_rewards(10, 2, p, np.eye(2), seed=0)


# --------------------------------------------------------------------------- mixed
def test_mixed_binary_continuous_correlation_and_scales():
    C = np.array([[1.0, 0.5, 0.3], [0.5, 1.0, 0.2], [0.3, 0.2, 1.0]])
    p = [0.3, None, 0.6]
    sigma, mu = np.array([2.0, 5.0, 1.0]), np.array([1.0, 0.0, -1.0])
    r = mixed_rewards(60000, 2, p, C, sigma=sigma, mu=mu, seed=5)
    flat = r.reshape(-1, 3)
    assert set(np.unique(flat[:, 0])) == {1.0, 3.0}          # mu + sigma * {0, 1}
    n = len(flat)
    assert abs(flat[:, 0].mean() - (1 + 2 * 0.3)) < K_SE * 2 * np.sqrt(0.21 / n)
    assert abs(flat[:, 1].std() - 5.0) < K_SE * 5.0 / np.sqrt(2 * n)
    assert_corr_matrix(r, C)


def test_mixed_point_biserial_cap():
    cap = stats.norm.pdf(stats.norm.ppf(0.1)) / np.sqrt(0.09)
    with pytest.raises(ValueError, match="infeasible"):
        mixed_rewards(10, 2, [0.1, None], [[1, cap + 0.01], [cap + 0.01, 1]], seed=0)
    r = mixed_rewards(10, 2, [0.1, None], [[1, cap - 0.01], [cap - 0.01, 1]], seed=0)
    assert r.shape == (10, 2, 2)


# --------------------------------------------------------------------------- Proposition 4 model
def test_prop4_model_moments_match_population():
    p_a, p_b, gamma = 0.4, 0.6, 1.7
    r, g = prop4_model(200000, 2, p_a, p_b, gamma, seed=2)
    assert r.shape == (200000, 2, 2) and g.shape == (200000, 2)
    ra, rb, gg = r[..., 0].ravel(), r[..., 1].ravel(), g.ravel()
    n = len(gg)
    assert abs(ra.mean() - p_a) < K_SE * np.sqrt(p_a * (1 - p_a) / n)
    assert abs(gg.mean()) < K_SE * gg.std() / np.sqrt(n)
    pop = exact.prop4_population(p_a, p_b, gamma)
    for x, key in ((ra, "cov_a_g"), (rb, "cov_b_g"), (ra * rb, "cov_ab_g")):
        prod = (x - x.mean()) * gg
        assert abs(prod.mean() - pop[key]) < K_SE * prod.std() / np.sqrt(n), key
    # independence of the two channels
    est, se = corr_and_se(ra, rb)
    assert abs(est) < K_SE * se


def test_prop4_model_grid_broadcast_and_errors():
    pa = np.array([0.2, 0.8])[:, None, None]
    r, g = prop4_model((2, 5000), 4, pa, 0.5, 1.0, seed=0)
    assert r.shape == (2, 5000, 4, 2) and g.shape == (2, 5000, 4)
    means = r[..., 0].mean(axis=(1, 2))
    assert np.all(np.abs(means - [0.2, 0.8]) < K_SE * np.sqrt(0.16 / 20000))
    with pytest.raises(ValueError, match="p_a"):
        prop4_model(10, 4, 1.5, 0.5, 1.0, seed=0)
    with pytest.raises(ValueError, match="noise"):
        prop4_model(10, 4, 0.5, 0.5, 1.0, noise=-1, seed=0)
    with pytest.raises(ValueError, match="broadcast"):
        prop4_model(10, 4, np.ones(3), 0.5, 1.0, seed=0)


def test_prop4_closed_form_matches_enumeration():
    """theory.prop4_beta / gamma_star agree exactly with the model summed over its four types."""
    from mrgrpo.core import theory
    pa, pb = np.meshgrid(np.linspace(0.05, 0.95, 7), np.linspace(0.05, 0.95, 7))
    for gamma, ac in [(0.0, 1.0), (1.3, 0.7), (2.9, 2.0)]:
        pop = exact.prop4_population(pa, pb, gamma, ac, 1.0, (1.0, 0.8))
        np.testing.assert_allclose(theory.prop4_beta(pa, pb, gamma, ac, 0.8), pop["beta"], atol=1e-12)
    gs = theory.prop4_gamma_star(0.5, 0.6, 1.0)
    assert gs == pytest.approx(1.25)
    assert abs(exact.prop4_population(0.5, 0.6, gs)["beta"]) < 1e-12
