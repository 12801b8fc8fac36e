"""The delta-method bias of the sample correlation, checked against exact enumeration and Fisher."""
from __future__ import annotations

import numpy as np
import pytest

from mrgrpo.core.theory import gaussian_expected_correlation
from mrgrpo.core.theory.correlation_bias import (binary_pair_cells, binary_pair_expected_correlation,
                                                 correlation_bias_coefficient, moment_bias_matrix)

PAIRS = [(0.5, 0.5, 0.6), (0.5, 0.5, -0.3), (0.3, 0.6, 0.4), (0.2, 0.5, 0.3), (0.3, 0.3, -0.2)]


def pair_moments(cells, p_x, p_y):
    """(rho, mu40, mu04, mu22, mu31, mu13) of a binary pair, from its four cells."""
    z = (np.array([[1, 1], [1, 0], [0, 1], [0, 0]]) - [p_x, p_y]) / np.sqrt([p_x * (1 - p_x), p_y * (1 - p_y)])
    return tuple(float((cells * z[:, 0] ** a * z[:, 1] ** b).sum())
                 for a, b in ((1, 1), (4, 0), (0, 4), (2, 2), (3, 1), (1, 3)))


@pytest.mark.parametrize("rho", [-0.8, -0.3, 0.0, 0.5, 0.9])
def test_gaussian_moments_give_fisher(rho):
    b = correlation_bias_coefficient(rho, 3.0, 3.0, 1 + 2 * rho**2, 3 * rho, 3 * rho)
    assert b == pytest.approx(-rho * (1 - rho**2) / 2, abs=1e-14)


@pytest.mark.parametrize("p_x, p_y, rho", PAIRS)
def test_delta_method_matches_exact_enumeration_of_binary_pairs(p_x, p_y, rho):
    """m (E[rho_hat_m | both vary] - rho) -> b; Richardson on m = 100, 200 removes the O(1/m) remainder."""
    cells = binary_pair_cells(p_x, p_y, rho)
    b = correlation_bias_coefficient(*pair_moments(cells, p_x, p_y))
    v = [m * (binary_pair_expected_correlation(cells, m).corr_nondegenerate - rho) for m in (100, 200)]
    assert 2 * v[1] - v[0] == pytest.approx(b, abs=2e-4)
    assert abs(v[1] - b) < 0.01  # and the plain value is already close
    if p_x == p_y == 0.5:
        assert b == pytest.approx(0.0, abs=1e-12)  # Bernoulli(1/2): no first-order bias (Fisher says -rho(1-rho^2)/2)


def test_exact_enumeration_matches_simulation_at_small_m():
    cells = binary_pair_cells(0.2, 0.6, 0.35)
    m, n = 5, 200_000
    idx = np.random.default_rng(0).choice(4, p=cells, size=(n, m))
    x, y = (idx <= 1).astype(float), (idx % 2 == 0).astype(float)
    dx, dy = x - x.mean(1, keepdims=True), y - y.mean(1, keepdims=True)
    vx, vy = (dx**2).sum(1), (dy**2).sum(1)
    both = (vx > 0) & (vy > 0)
    r = np.where(both, (dx * dy).sum(1) / np.sqrt(np.where(both, vx * vy, 1.0)), 0.0)
    e = binary_pair_expected_correlation(cells, m)
    assert e.corr == pytest.approx(r.mean(), abs=4 * r.std() / np.sqrt(n))
    assert e.p_nondegenerate == pytest.approx(both.mean(), abs=0.004)
    assert e.p_const_x == pytest.approx((vx == 0).mean(), abs=0.004)
    assert e.corr_nondegenerate == pytest.approx(r[both].mean(), abs=4 * r[both].std() / np.sqrt(both.sum()))
    two = binary_pair_expected_correlation(cells, 2)  # r is +-1 when both vary
    assert two.corr == pytest.approx(2 * cells[0] * cells[3] - 2 * cells[1] * cells[2])


def test_moment_bias_matrix_from_a_sample():
    rng = np.random.default_rng(1)
    L = np.array([[1.0, 0.5, -0.3], [0.5, 1.0, 0.0], [-0.3, 0.0, 1.0]])
    x = rng.standard_normal((200_000, 3)) @ np.linalg.cholesky(L).T * [1.0, 3.0, 0.2] + [0.0, 5.0, -1.0]
    B = moment_bias_matrix(x)
    np.testing.assert_allclose(B, -L * (1 - L**2) / 2, atol=0.01)  # Gaussian: Fisher's, whatever the scales
    assert (np.diag(B) == 0).all()
    x[:, 2] = 4.0  # a constant channel has no bias row
    B = moment_bias_matrix(np.stack([x[:1000], x[1000:2000]]))
    assert B.shape == (2, 3, 3) and (B[:, 2] == 0).all() and (B[:, :, 2] == 0).all()


def test_gaussian_exact_value_shows_the_second_order_at_m4():
    """Why a first-order target is weak at m = 4: Fisher's error there is many times its m = 32 error."""
    err = [abs(gaussian_expected_correlation(0.6, m) - (0.6 - 0.6 * 0.64 / (2 * m))) for m in (4, 32)]
    assert err[0] > 0.02 and err[0] > 50 * err[1]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="not attainable"):
        binary_pair_cells(0.1, 0.9, 0.9)
    with pytest.raises(ValueError, match="p_x"):
        binary_pair_cells(0.0, 0.5, 0.1)
    with pytest.raises(ValueError, match="cells"):
        binary_pair_expected_correlation([0.5, 0.5, 0.5, 0.0], 4)
    with pytest.raises(ValueError, match="m must"):
        binary_pair_expected_correlation(binary_pair_cells(0.5, 0.5, 0.0), 1)
    with pytest.raises(ValueError, match="mu22"):
        correlation_bias_coefficient(0.1, 3, 3, np.nan, 0.3, 0.3)
    with pytest.raises(ValueError, match="shape"):
        moment_bias_matrix(np.zeros(5))
