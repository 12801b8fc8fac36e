"""mrgrpo.core.theory: every closed form against an independent computation.

Monte-Carlo checks use fixed seeds and a tolerance of Z standard errors,
the standard errors estimated from the simulation itself.
"""
from __future__ import annotations

import numpy as np
import pytest

from scipy.special import gammaln, hyp2f1

from mrgrpo.core import theory as th
from mrgrpo.core.advantage import compute_advantage, compute_advantage_batch
from mrgrpo.core.stats import sample_correlation

Z = 4.0  # tolerance in Monte-Carlo standard errors

C3 = np.array([[1.0, 0.5, -0.3], [0.5, 1.0, 0.2], [-0.3, 0.2, 1.0]])


def _mc_mean(samples: np.ndarray, axis: int = 0):
    n = samples.shape[axis]
    return samples.mean(axis), samples.std(axis, ddof=1) / np.sqrt(n)


# ----------------------------------------------------------------------------
# Prop 1: influence
# ----------------------------------------------------------------------------
def test_influence_against_monte_carlo():
    rng = np.random.default_rng(0)
    w = np.array([1.0, 1.0, 0.5])
    sigma = np.array([1.0, 2.5, 0.5])
    Sigma = sigma[:, None] * C3 * sigma[None, :]
    n = 400_000
    r = rng.standard_normal((n, 3)) @ np.linalg.cholesky(Sigma).T + np.array([0.3, -1.0, 2.0])
    z = (r - [0.3, -1.0, 2.0]) / sigma  # oracle standardization
    a_an = (z * sigma) @ w / np.sqrt(w @ Sigma @ w)
    a_na = z @ w
    for a, theory in ((a_an, th.influence_an(w, sigma, C3)), (a_na, th.influence_na(w, C3))):
        est, se = _mc_mean(a[:, None] * z)
        assert np.all(np.abs(est - theory) < Z * se), (est, theory, se)
        assert np.all(se < 0.01)


def test_influence_uncorrelated_special_case_and_fig1b_ratio():
    w = np.array([1.0, 1.0])
    sigma = np.array([1.0, 4.0])
    an = th.influence_an(w, sigma, np.eye(2))
    np.testing.assert_allclose(an, w * sigma / np.sqrt(np.sum(w**2 * sigma**2)), rtol=1e-15)
    assert an[1] / an[0] == pytest.approx(4.0)  # published: AN I2/I1 theory 4.00 at sigma2/sigma1 = 4
    np.testing.assert_array_equal(th.influence_na(w, np.eye(2)), w)  # NA: I2/I1 = 1
    # scaling sigma does not change AN influence (only ratios matter), NA ignores sigma entirely
    np.testing.assert_allclose(th.influence_an(w, 3 * sigma, C3[:2, :2]), th.influence_an(w, sigma, C3[:2, :2]))


# ----------------------------------------------------------------------------
# Prop 2: resolution
# ----------------------------------------------------------------------------
def test_prop2_published_table_exactly():
    an = [th.lattice_count(L, [1, 1], mode="an") for L in range(2, 8)]
    na_eq = [th.lattice_count(L, [1, 1], [1.0, 1.0], "na") for L in range(2, 8)]
    na_het = [th.lattice_count(L, [1, 1], [1.0, np.sqrt(2)], "na") for L in range(2, 8)]
    assert an == [3, 5, 7, 9, 11, 13]
    assert na_eq == [3, 5, 7, 9, 11, 13]
    assert na_het == [4, 9, 16, 25, 36, 49]
    assert [th.sum_lattice_bound([1, 1], L) for L in range(2, 8)] == an
    assert all(th.product_lattice_condition([1.0, 1 / np.sqrt(2)], L) for L in range(2, 8))
    assert not any(th.product_lattice_condition([1.0, 1.0], L) for L in range(2, 8))


def test_prop2_counterexample_rational_dependence_not_necessary():
    assert th.product_lattice_condition([1.0, 3.0], 2)  # 3 a1 - a2 = 0 needs |n| = 3 > L - 1
    assert th.lattice_count(2, [1.0, 3.0], [1.0, 1.0], "na") == 4
    assert th.lattice_count(2, [1.0, 3.0], mode="an", values=[0.0, 1.0]) == 4  # values {0, 1, 3, 4}
    assert not th.product_lattice_condition([1.0, 3.0], 4)  # now n = (3, -1) is on the grid
    assert th.lattice_count(4, [1.0, 3.0], [1.0, 1.0], "na") < 16


def test_product_condition_agrees_with_enumeration_of_values():
    # two independent enumerations (differences vs distinct values) must agree
    rng = np.random.default_rng(1)
    for _ in range(60):
        R = int(rng.integers(1, 4))
        L = int(rng.integers(2, 5))
        a = rng.integers(1, 6, size=R).astype(float) * rng.choice([1.0, np.sqrt(2), np.pi], size=R)
        full = th.lattice_count(L, a, np.ones(R), "na") == L**R
        assert th.product_lattice_condition(a, L) == full, (a, L)


def test_sum_lattice_bound_holds_and_counts_match_real_advantages():
    rng = np.random.default_rng(2)
    for _ in range(30):
        R, L = int(rng.integers(1, 4)), int(rng.integers(2, 5))
        w = rng.integers(1, 4, size=R).astype(float)
        assert th.lattice_count(L, w, mode="an") <= th.sum_lattice_bound(w, L)
    # a group holding every grid point realizes exactly lattice_count distinct AN advantages
    for w in ([1.0, 1.0], [1.0, 2.0, 1.0], [1.0, np.sqrt(3)]):
        R, L = len(w), 3
        grid = np.stack(np.meshgrid(*[np.arange(L)] * R, indexing="ij"), -1).reshape(-1, R).astype(float)
        A = compute_advantage(grid, w, "an")
        assert len(np.unique(np.round(A, 9))) == th.lattice_count(L, w, mode="an")


def test_lattice_count_with_explicit_levels_is_affine_invariant():
    for L in range(2, 6):
        levels = 0.3 + 2.5 * np.arange(L)  # an affine image of 0..L-1
        assert th.lattice_count(L, [1, 1], [1, np.sqrt(2)], "na", values=levels) == L**2
        assert th.lattice_count(L, [1, 1], mode="an", values=levels) == 2 * L - 1


# ----------------------------------------------------------------------------
# Theorem 3
# ----------------------------------------------------------------------------
def test_thm3_oracle_against_monte_carlo():
    rng = np.random.default_rng(3)
    w = np.array([1.0, 1.0, 0.5])
    m, n, tau2 = 8, 200_000, 2.0
    z = rng.standard_normal((n, m, 3)) @ np.linalg.cholesky(C3).T
    g = np.sqrt(tau2) * rng.standard_normal((n, m))
    ghat = ((z @ w) * g).mean(-1)
    est, se = _mc_mean(ghat**2)
    theory = th.thm3_oracle_mse(w, C3, m, tau2)
    assert theory == pytest.approx(tau2 / m * w @ C3 @ w)
    assert abs(est - theory) < Z * se
    np.testing.assert_allclose(th.thm3_oracle_mse(w, C3, np.array([1, 2, 4])), (w @ C3 @ w) / np.array([1, 2, 4]))


def test_fisher_expansion_against_monte_carlo():
    # E[C_hat_12] at m = 64, rho = 0.6: the 1/m bias term is ~25 standard errors, the O(1/m^2)
    # remainder (~1e-4) about one
    rng = np.random.default_rng(4)
    rho, m = 0.6, 64
    C = np.array([[1.0, rho], [rho, 1.0]])
    L = np.linalg.cholesky(C)
    chunks = [sample_correlation(rng.standard_normal((50_000, m, 2)) @ L.T, eps=0.0)[:, 0, 1] for _ in range(8)]
    est, se = _mc_mean(np.concatenate(chunks))
    theory = th.expected_sample_correlation(C, m)
    assert abs(est - theory[0, 1]) < Z * se
    assert abs(est - rho) > 10 * se  # the bias is real and resolved
    np.testing.assert_array_equal(np.diag(theory), 1.0)
    # self-normalized MSE prediction uses exactly that E[C_hat]
    w = np.array([1.0, 1.0])
    assert th.thm3_selfnorm_mse(w, C, m) == pytest.approx(w @ theory @ w / m, rel=1e-14)


def test_thm3_selfnorm_identity_against_monte_carlo():
    # MSE(g_hat) with random scores equals (tau2/m) E[w^T C_hat w]; compare with the expansion at m = 48
    rng = np.random.default_rng(5)
    w = np.array([1.0, 1.0, 0.5])
    m, tau2 = 48, 1.5
    L = np.linalg.cholesky(C3).T
    sq = []
    for _ in range(8):  # 8 x 25k groups, in chunks to keep memory small
        r = rng.standard_normal((25_000, m, 3)) @ L * [1.0, 3.0, 0.2] + [0.0, 5.0, -1.0]
        A = compute_advantage_batch(r, w, "na")
        g = np.sqrt(tau2) * rng.standard_normal((25_000, m))
        sq.append(((A * g).mean(-1)) ** 2)
    est, se = _mc_mean(np.concatenate(sq))
    assert abs(est - th.thm3_selfnorm_mse(w, C3, m, tau2)) < Z * se


def test_expected_sample_correlation_shapes_and_values():
    C = np.array([[1.0, 0.6], [0.6, 1.0]])
    EC = th.expected_sample_correlation(C, np.array([2, 32]))
    assert EC.shape == (2, 2, 2)
    assert EC[1, 0, 1] == pytest.approx(0.6 - 0.6 * 0.64 / 64)
    assert th.thm3_selfnorm_mse([1, 1], C, 32) * 32 == pytest.approx(3.188)  # published: w^T C w = 3.2
    assert th.thm3_oracle_mse([1, 1], C, 32) * 32 == pytest.approx(3.2)
    vals = th.thm3_selfnorm_mse([1, 1], C, np.array([4, 8]))
    assert vals.shape == (2,)


def test_gaussian_expected_correlation_against_monte_carlo():
    rng = np.random.default_rng(9)
    for rho, m in ((0.6, 5), (-0.3, 12), (0.9, 3)):
        L = np.linalg.cholesky(np.array([[1.0, rho], [rho, 1.0]]))
        r = sample_correlation(rng.standard_normal((200_000, m, 2)) @ L.T, eps=0.0)[:, 0, 1]
        est, se = _mc_mean(r)
        assert abs(est - th.gaussian_expected_correlation(rho, m)) < Z * se, (rho, m, est, se)


def test_gaussian_expected_correlation_closed_values_and_fisher_limit():
    rho = np.array([-1.0, -0.3, 0.0, 0.5, 0.99, 1.0])
    # m = 2: the sample correlation is +-1 with P(+1) = 1/2 + arcsin(rho)/pi
    np.testing.assert_allclose(th.gaussian_expected_correlation(rho, 2), 2 / np.pi * np.arcsin(rho), atol=1e-15)
    np.testing.assert_allclose(th.gaussian_expected_correlation(rho[[0, -1]], 7), [-1.0, 1.0], rtol=1e-14)
    # Fisher's expansion is its first order: m^2 (exact - Fisher) settles to a constant
    m = np.array([1e2, 1e3, 1e4, 1e5])
    exact = th.gaussian_expected_correlation(0.6, m)
    fisher = th.expected_sample_correlation(np.array([[1.0, 0.6], [0.6, 1.0]]), m)[:, 0, 1]
    second = m**2 * (exact - fisher)
    np.testing.assert_allclose(second[1:], second[-1], rtol=2e-2)
    # broadcasting, and agreement with the direct Gamma-function evaluation where that is accurate
    grid = th.gaussian_expected_correlation(np.array([0.2, 0.6]), np.array([[4], [40]]))
    assert grid.shape == (2, 2)
    n = np.array([[4.0], [40.0]])
    k = np.exp(2 * gammaln(n / 2) - gammaln((n - 1) / 2) - gammaln((n + 1) / 2))
    np.testing.assert_allclose(grid, [0.2, 0.6] * k * hyp2f1(0.5, 0.5, (n + 1) / 2, np.array([0.04, 0.36])),
                               rtol=1e-13)
    with pytest.raises(ValueError, match=r"rho must lie in \[-1, 1\]"):
        th.gaussian_expected_correlation(1.5, 8)
    with pytest.raises(ValueError, match="m must be >= 2"):
        th.gaussian_expected_correlation(0.5, 1)


# ----------------------------------------------------------------------------
# batches: every closed form on stacks equals the loop over single calls
# ----------------------------------------------------------------------------
def _random_correlations(rng, shape, R):
    A = rng.standard_normal((*shape, R, R + 2))
    S = A @ np.swapaxes(A, -1, -2)
    d = np.sqrt(np.diagonal(S, axis1=-2, axis2=-1))
    C = S / (d[..., :, None] * d[..., None, :])
    C[..., np.arange(R), np.arange(R)] = 1.0
    return C


def test_closed_forms_broadcast_over_batches():
    rng = np.random.default_rng(10)
    R = 3
    C = _random_correlations(rng, (4, 2), R)
    w = rng.normal(size=(2, R))            # broadcasts against C's (4, 2)
    sigma = rng.uniform(0.5, 2.0, size=(4, 1, R))
    m = np.array([[4], [8], [16], [32]])   # (4, 1)
    an = th.influence_an(w, sigma, C)
    na = th.influence_na(w, C)
    EC = th.expected_sample_correlation(C, m)
    oracle = th.thm3_oracle_mse(w, C, m, tau2=2.0)
    selfn = th.thm3_selfnorm_mse(w, C, m, tau2=2.0)
    assert an.shape == na.shape == (4, 2, R) and EC.shape == (4, 2, R, R)
    assert oracle.shape == selfn.shape == (4, 2)
    for i, j in np.ndindex(4, 2):
        c, mi = C[i, j], int(m[i, 0])
        np.testing.assert_allclose(an[i, j], th.influence_an(w[j], sigma[i, 0], c), rtol=1e-13)
        np.testing.assert_allclose(na[i, j], th.influence_na(w[j], c), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(EC[i, j], th.expected_sample_correlation(c, mi), rtol=1e-15)
        assert oracle[i, j] == pytest.approx(th.thm3_oracle_mse(w[j], c, mi, 2.0), rel=1e-13)
        assert selfn[i, j] == pytest.approx(th.thm3_selfnorm_mse(w[j], c, mi, 2.0), rel=1e-13)
    # one C with an array m keeps the old shape m.shape + (R, R)
    assert th.expected_sample_correlation(C[0, 0], np.array([4, 8, 16])).shape == (3, R, R)


def test_batch_validation_names_the_offending_item():
    C = np.stack([np.eye(2), [[1.0, 0.5], [0.2, 1.0]]])
    with pytest.raises(ValueError, match=r"C\[1\] is not symmetric"):
        th.influence_na([1, 1], C)
    bad_diag = np.stack([np.eye(2)] * 3)
    bad_diag[2, 1, 1] = 2.0
    with pytest.raises(ValueError, match=r"C\[2\] must have a unit diagonal"):
        th.expected_sample_correlation(bad_diag, 4)
    not_psd = np.stack([np.eye(3), [[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]]])
    with pytest.raises(ValueError, match=r"C\[1\] is not positive semi-definite"):
        th.thm3_selfnorm_mse([1, 1, 1], not_psd, 8)
    nan_C = np.stack([np.eye(2)] * 2)
    nan_C[1, 0, 1] = np.nan
    with pytest.raises(ValueError, match=r"C\[1\] contains a non-finite entry"):
        th.check_correlation(nan_C)
    with pytest.raises(ValueError, match=r"sigma\[1\] must be positive"):
        th.influence_an([1, 1], [[1.0, 1.0], [1.0, -1.0]], np.eye(2))
    with pytest.raises(ValueError, match=r"w\[0\] must be finite"):
        th.influence_na([[1.0, np.inf], [1.0, 1.0]], np.eye(2))
    with pytest.raises(ValueError, match=r"no variance"):
        th.influence_an([[1, 1], [1, -1]], [1, 1], np.stack([np.eye(2), np.ones((2, 2))]))
    with pytest.raises(ValueError, match="do not broadcast"):
        th.thm3_oracle_mse(np.ones((3, 2)), np.stack([np.eye(2)] * 4), 8)
    with pytest.raises(ValueError, match="do not broadcast"):
        th.expected_sample_correlation(np.stack([np.eye(2)] * 4), np.array([4, 8]))


# ----------------------------------------------------------------------------
# figS3: Gaussian sigma-hat
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("m", [2, 3, 5, 12])
def test_sigma_hat_mean_against_monte_carlo(m):
    rng = np.random.default_rng(6 + m)
    sigma = 2.0
    x = sigma * rng.standard_normal((400_000, m))
    for ddof in (0, 1):
        est, se = _mc_mean(x.std(axis=1, ddof=ddof))
        assert abs(est - th.gaussian_sigma_hat_mean(m, sigma, ddof=ddof)) < Z * se


def test_sigma_hat_bias_expansion():
    # known values: c4(2) = sqrt(2/pi), c4(4) = 0.92132
    assert th.gaussian_sigma_hat_mean(2, ddof=1) == pytest.approx(np.sqrt(2 / np.pi), rel=1e-14)
    assert th.gaussian_sigma_hat_mean(4, ddof=1) == pytest.approx(0.9213177319, rel=1e-9)
    m = np.array([1e2, 1e3, 1e4, 1e5, 1e6, 1e8])
    mb = m * th.gaussian_sigma_hat_bias(m, 1.0)
    # m * bias -> -3/4 with a 1/m correction: m * (m * bias + 3/4) settles to a constant
    second = m * (mb + 0.75)
    np.testing.assert_allclose(second[1:4], second[3], rtol=1e-2)
    assert abs(mb[-1] + 0.75) < 1e-7
    np.testing.assert_allclose(m * th.gaussian_sigma_hat_bias(m, 3.0), 3.0 * mb, rtol=1e-12)
    # ddof = 1 (c4): -1/4
    assert abs(1e8 * th.gaussian_sigma_hat_bias(1e8, ddof=1) + 0.25) < 1e-7
    # the large-m branch joins the gammaln branch smoothly
    ms = np.arange(30, 60)
    direct = np.sqrt(2 / ms) * np.exp(gammaln(ms / 2) - gammaln((ms - 1) / 2))
    np.testing.assert_allclose(th.gaussian_sigma_hat_mean(ms), direct, rtol=1e-13)


# ----------------------------------------------------------------------------
# fig2a: baseline bias
# ----------------------------------------------------------------------------
def test_baseline_bias_against_monte_carlo():
    rng = np.random.default_rng(7)
    p, a, tau, n = 0.5, 1.0, 0.5, 400_000
    theta = th.single_reward_theta(p, a)
    assert theta == 0.25
    assert th.baseline_estimator_mean(theta, 4, "self") == pytest.approx(0.1875)  # published theory
    for m in (2, 4, 8):
        r = (rng.random((n, m)) < p).astype(float)
        g = a * r + tau * rng.standard_normal((n, m))
        rbar = r.mean(1, keepdims=True)
        loo = (r.sum(1, keepdims=True) - r) / (m - 1)
        for baseline, b in (("self", rbar), ("loo", loo), ("oracle", p)):
            est, se = _mc_mean(((r - b) * g).mean(1))
            assert abs(est - th.baseline_estimator_mean(theta, m, baseline)) < Z * se, (m, baseline)
    np.testing.assert_allclose(th.baseline_estimator_mean(0.25, np.array([2, 4])), [0.125, 0.1875])


# ----------------------------------------------------------------------------
# Prop 4
# ----------------------------------------------------------------------------
def test_gamma_star_published():
    assert th.prop4_gamma_star(0.5, 0.6) == pytest.approx(1.25)
    assert th.prop4_beta(0.5, 0.6, 1.25) == pytest.approx(0.0, abs=1e-15)
    assert th.prop4_beta(0.5, 0.6, 2.0) > 0 > th.prop4_beta(0.5, 0.6, 1.0)


def test_prop4_beta_against_generative_model():
    rng = np.random.default_rng(8)
    n = 1_000_000
    for p_a, p_b, gamma, alpha_c, alpha_f, w_b in [(0.5, 0.6, 0.0, 1.0, 0.7, 1.0), (0.5, 0.6, 2.5, 1.0, 0.7, 1.0),
                                                    (0.3, 0.2, 1.0, 2.0, -0.5, 0.5)]:
        ra = (rng.random(n) < p_a).astype(float)
        rb = (rng.random(n) < p_b).astype(float)
        g = (alpha_c * (ra - p_a) + alpha_f * (rb - p_b) * ra + gamma * (rb - p_b) * (1 - ra)
             + 0.5 * rng.standard_normal(n))
        u = rb - rb * ra  # beta = w_b Cov(r_b - r_b r_a, g)
        prod = w_b * (u - u.mean()) * (g - g.mean())
        est, se = _mc_mean(prod)
        assert abs(est - th.prop4_beta(p_a, p_b, gamma, alpha_c, w_b)) < Z * se


def test_prop4_vectorized():
    gam = np.linspace(0, 3, 7)
    pa = np.array([[0.2], [0.5]])
    out = th.prop4_beta(pa, 0.6, gam)
    assert out.shape == (2, 7)
    np.testing.assert_allclose(out[1], 0.6 * 0.5 * (gam * 0.4 - 0.5))
    np.testing.assert_allclose(th.prop4_gamma_star(np.array([0.2, 0.5]), 0.6, 2.0), [1.0, 2.5])


# ----------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------
def test_bad_correlation_matrices():
    with pytest.raises(ValueError, match="not symmetric"):
        th.influence_na([1, 1], [[1.0, 0.5], [0.2, 1.0]])
    with pytest.raises(ValueError, match="not positive semi-definite"):
        th.influence_na([1, 1, 1], [[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]])
    with pytest.raises(ValueError, match="unit diagonal"):
        th.thm3_oracle_mse([1, 1], [[2.0, 0.5], [0.5, 1.0]], 4)
    with pytest.raises(ValueError, match="square"):
        th.expected_sample_correlation(np.ones((2, 3)), 4)


def test_bad_shapes_and_values():
    with pytest.raises(ValueError, match="w has length 3 but C has R = 2"):
        th.influence_na([1, 1, 1], np.eye(2))
    with pytest.raises(ValueError, match="sigma must be positive"):
        th.influence_an([1, 1], [1.0, 0.0], np.eye(2))
    with pytest.raises(ValueError, match="m must be >= 2"):
        th.expected_sample_correlation(np.eye(2), 1)
    with pytest.raises(ValueError, match="m must be >= 2"):
        th.gaussian_sigma_hat_mean(np.array([4, 1]))
    with pytest.raises(ValueError, match="m must be >= 1"):
        th.thm3_oracle_mse([1, 1], np.eye(2), 0)
    with pytest.raises(ValueError, match=r"p_a must lie in \[0, 1\]"):
        th.prop4_beta(1.2, 0.5, 1.0)
    with pytest.raises(ValueError, match=r"p_b must lie in \[0, 1\]"):
        th.prop4_gamma_star(0.5, -0.1)
    with pytest.raises(ValueError, match="gamma\\* is undefined"):
        th.prop4_gamma_star(0.5, 1.0)
    with pytest.raises(ValueError, match="no variance"):
        th.influence_an([1, -1], [1, 1], np.ones((2, 2)))


def test_bad_lattice_inputs():
    with pytest.raises(ValueError, match="positive integer weights"):
        th.sum_lattice_bound([1.0, 0.5], 3)
    with pytest.raises(ValueError, match="too many to enumerate"):
        th.product_lattice_condition(np.ones(12), 20)
    with pytest.raises(ValueError, match="too many to enumerate"):
        th.lattice_count(100, np.ones(5), mode="an")
    with pytest.raises(ValueError, match="needs sigma"):
        th.lattice_count(3, [1, 1], mode="na")
    with pytest.raises(ValueError, match="L must be an int >= 1"):
        th.lattice_count(0, [1, 1], mode="an")
    with pytest.raises(ValueError, match="unknown mode"):
        th.lattice_count(3, [1, 1], [1, 1], mode="single")
