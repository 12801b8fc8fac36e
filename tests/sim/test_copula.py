"""The one Gaussian-copula solver (``mrgrpo.sim.copula``) and its two users, on a grid of targets.

Each grid target (binary-binary, binary-continuous, continuous-continuous, from
the lower to the upper end of its attainable range, both ends included) is
solved once and checked (a) by the forward map, a round trip to 1e-9, and (b) by
Monte-Carlo through both users, :class:`MockBackend` and :func:`mixed_rewards`:
the sample correlation lies within ``K_SE`` standard errors of the target
(influence-function SE, fixed seeds). The forward map itself is checked against
an independent closed form (Owen's T). Infeasible targets give the same clear
error in both users.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import special, stats

from mrgrpo.corpus import MockBackend
from mrgrpo.sim import copula_latent_correlation, mixed_rewards
from mrgrpo.sim.copula import (FEASIBILITY_TOL, bernoulli_correlation_bounds, bernoulli_pair_correlation,
                               bernoulli_thresholds, copula_correlation_bounds, copula_pair_correlation,
                               point_biserial_cap, solve_latent_pair)

K_SE = 4.0
N_MC = 20_000

BINARY_PAIRS = [(0.5, 0.5), (0.3, 0.7), (0.1, 0.7), (0.7, 0.1), (0.1, 0.1), (0.05, 0.95), (0.2, 0.9)]
MIXED_PAIRS = [(0.1, None), (None, 0.5), (0.8, None)]
ALL_PAIRS = BINARY_PAIRS + MIXED_PAIRS + [(None, None)]


def grid(p_l, p_k, n: int = 7) -> np.ndarray:
    """``n`` targets from the lower to the upper attainable correlation, both included."""
    lo, hi = copula_correlation_bounds(p_l, p_k)
    return np.linspace(lo, hi, n)


def corr_and_se(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Pearson correlation and its SE from the influence function (valid for any distribution)."""
    xs = (x - x.mean()) / x.std()
    ys = (y - y.mean()) / y.std()
    r = float(np.mean(xs * ys))
    infl = xs * ys - r * (xs ** 2 + ys ** 2) / 2
    return r, float(infl.std(ddof=1) / np.sqrt(len(x)))


def label(p_l, p_k) -> str:
    return f"{p_l}-{p_k}"


# --------------------------------------------------------------------------- the forward map
def bvn_upper_owen(p_l: float, p_k: float, r: float) -> float:
    """``P(X_l = X_k = 1) = Phi_2(h, k; r)``, ``h = Phi^-1(p_l)``, by Owen's T (independent of Plackett)."""
    h, k = stats.norm.ppf(p_l), stats.norm.ppf(p_k)
    s = np.sqrt(1 - r * r)
    beta = 0.0 if h * k > 0 or (h * k == 0 and h + k >= 0) else 0.5
    return float(0.5 * stats.norm.cdf(h) + 0.5 * stats.norm.cdf(k) - special.owens_t(h, (k - r * h) / (h * s))
                 - special.owens_t(k, (h - r * k) / (k * s)) - beta)


def test_binary_pair_correlation_against_owens_t():
    worst = 0.0
    for p_l in (0.02, 0.1, 0.3, 0.7, 0.9):
        for p_k in (0.05, 0.2, 0.45, 0.6, 0.95):
            for r in (-0.9999, -0.9, -0.5, -0.1, 0.1, 0.3, 0.8, 0.99, 0.9999):
                want = (bvn_upper_owen(p_l, p_k, r) - p_l * p_k) / np.sqrt(p_l * (1 - p_l) * p_k * (1 - p_k))
                worst = max(worst, abs(bernoulli_pair_correlation(p_l, p_k, r) - want))
    assert worst < 1e-11, worst
    for r in (-0.8, 0.1, 0.7):  # p = 1/2: closed form 2/pi arcsin(r)
        assert abs(bernoulli_pair_correlation(0.5, 0.5, r) - 2 / np.pi * np.arcsin(r)) < 1e-12


@pytest.mark.parametrize("p_l, p_k", ALL_PAIRS, ids=[label(*p) for p in ALL_PAIRS])
def test_forward_map_is_increasing_and_reaches_the_bounds(p_l, p_k):
    lo, hi = copula_correlation_bounds(p_l, p_k)
    assert copula_pair_correlation(p_l, p_k, -1.0) == lo and copula_pair_correlation(p_l, p_k, 1.0) == hi
    values = np.array([copula_pair_correlation(p_l, p_k, r) for r in np.linspace(-0.999, 0.999, 41)])
    assert np.all(np.diff(values) > -1e-13) and values[-1] - values[0] > 0.05  # flat only near +-1
    assert lo - 1e-13 <= values.min() and values.max() <= hi + 1e-13
    assert copula_pair_correlation(p_l, p_k, 0.0) == 0.0


def test_bounds_closed_forms():
    lo, hi = bernoulli_correlation_bounds(0.1, 0.7)
    s = np.sqrt(0.09 * 0.21)
    assert hi == pytest.approx((0.1 - 0.07) / s, abs=1e-15) and lo == pytest.approx(-0.07 / s, abs=1e-15)
    assert bernoulli_correlation_bounds(0.7, 0.1) == (lo, hi)
    assert point_biserial_cap(0.5) == pytest.approx(np.sqrt(2 / np.pi), abs=1e-15)
    assert point_biserial_cap(0.1) == pytest.approx(point_biserial_cap(0.9), abs=1e-15)
    assert copula_correlation_bounds(None, np.nan) == (-1.0, 1.0)


def test_thresholds():
    p = [0.02, None, 0.5, 0.9, np.nan]
    t = bernoulli_thresholds(p)
    np.testing.assert_allclose(stats.norm.sf(t[[0, 2, 3]]), [0.02, 0.5, 0.9], rtol=1e-14)
    assert t[1] == 0.0 and t[4] == 0.0
    for bad in ([0.0, 0.5], [0.5, 1.0], "0.5"):
        with pytest.raises(ValueError, match="p"):
            bernoulli_thresholds(bad)


# --------------------------------------------------------------------------- the grid: (a) round trip
@pytest.mark.parametrize("p_l, p_k", ALL_PAIRS, ids=[label(*p) for p in ALL_PAIRS])
def test_grid_round_trip(p_l, p_k):
    lo, hi = copula_correlation_bounds(p_l, p_k)
    targets = grid(p_l, p_k, 13)
    for t in targets:
        r = solve_latent_pair(p_l, p_k, t)
        assert -1.0 <= r <= 1.0
        assert abs(copula_pair_correlation(p_l, p_k, r) - t) < 1e-9, (t, r)
    assert solve_latent_pair(p_l, p_k, lo) == -1.0 and solve_latent_pair(p_l, p_k, hi) == 1.0
    assert solve_latent_pair(p_l, p_k, 0.0) == 0.0
    if p_l is None and p_k is None:
        assert all(solve_latent_pair(None, None, t) == t for t in targets)


# --------------------------------------------------------------------------- the grid: (b) Monte-Carlo, both users
@pytest.mark.parametrize("p_l, p_k", ALL_PAIRS, ids=[label(*p) for p in ALL_PAIRS])
def test_grid_monte_carlo_through_mock_and_mixed_rewards(p_l, p_k):
    p = [p_l, p_k]
    for i, t in enumerate(grid(p_l, p_k)):
        C = np.array([[1.0, t], [t, 1.0]])
        mock = MockBackend(C=C, p=p)
        np.testing.assert_array_equal(mock.latent_C, copula_latent_correlation(p, C))  # one solver
        draws = {"mock": mock.sample(np.random.default_rng(100 + i), (N_MC,)),
                 "mixed_rewards": mixed_rewards(N_MC, 1, p, C, seed=200 + i)[:, 0]}
        for user, x in draws.items():
            for l in (0, 1):
                assert (p[l] is None) != bool(np.isin(x[:, l], (0.0, 1.0)).all()), user
            est, se = corr_and_se(x[:, 0], x[:, 1])
            assert abs(est - t) <= K_SE * se + 1e-9, (user, t, est, se)


def test_three_channel_mix_monte_carlo_through_both_users():
    p = [0.1, None, 0.7]
    C = np.array([[1.0, 0.4, 0.15], [0.4, 1.0, -0.3], [0.15, -0.3, 1.0]])
    mock = MockBackend(C=C, p=p)
    np.testing.assert_array_equal(mock.latent_C, copula_latent_correlation(p, C))
    for x in (mock.sample(np.random.default_rng(5), (N_MC,)), mixed_rewards(N_MC, 1, p, C, seed=6)[:, 0]):
        for a, b in ((0, 1), (0, 2), (1, 2)):
            est, se = corr_and_se(x[:, a], x[:, b])
            assert abs(est - C[a, b]) < K_SE * se, (a, b, est, se)


# --------------------------------------------------------------------------- infeasible targets, both users
def both_users(p, C, match: str) -> None:
    """The solver, the mock and mixed_rewards all refuse ``C`` with the same message."""
    with pytest.raises(ValueError, match=match) as solver:
        copula_latent_correlation(p, C)
    with pytest.raises(ValueError, match=match) as mixed:
        mixed_rewards(10, 2, p, C, seed=0)
    with pytest.raises(ValueError, match=match) as mock:
        MockBackend(C=C, p=p)
    assert str(solver.value) == str(mixed.value)
    # the mock also names its channels ('r0', ...) and calls the target C
    assert re.sub(r" '\w+'", "", str(mock.value)).replace("realizes C ", "realizes C_target ") == str(solver.value)


# (pair, side) whose bound is not +-1 (a target beyond +-1 is not a correlation; refused as such below)
OUTSIDE = [(p_l, p_k, side) for p_l, p_k in BINARY_PAIRS + MIXED_PAIRS for side in ("below", "above")
           if abs(copula_correlation_bounds(p_l, p_k)[side == "above"]) < 1 - 1e-9]


@pytest.mark.parametrize("p_l, p_k, side", OUTSIDE, ids=[f"{label(a, b)}-{s}" for a, b, s in OUTSIDE])
def test_outside_the_attainable_range(p_l, p_k, side):
    lo, hi = copula_correlation_bounds(p_l, p_k)
    t = hi + 1e-6 if side == "above" else lo - 1e-6
    def channel(i, v):  # the mock also gives the channel's name
        return f"{i}( '\\w+')? " + re.escape(f"({'gaussian' if v is None else f'bernoulli p={v}'})")

    want = (f"between channels {channel(0, p_l)} and {channel(1, p_k)} is infeasible.*"
            + re.escape(f"attainable range is [{lo:+.4f}, {hi:+.4f}]")
            + (".*Frechet" if None not in (p_l, p_k) else ".*point-biserial"))
    both_users([p_l, p_k], [[1, t], [t, 1]], want)
    # inside the tolerance it is the bound itself
    edge = hi + FEASIBILITY_TOL / 2 if side == "above" else lo - FEASIBILITY_TOL / 2
    assert solve_latent_pair(p_l, p_k, edge) == (1.0 if side == "above" else -1.0)


def test_the_mock_names_its_channels():
    with pytest.raises(ValueError, match=r"channels 0 'correctness' \(bernoulli p=0.1\) and 1 'length' \(gaussian\)"):
        MockBackend(C=[[1, 0.9], [0.9, 1]], p=[0.1, None], reward_names=("correctness", "length"))


def test_latent_matrix_not_psd_in_both_users():
    # every pair is feasible (|-0.5| is within the bounds for p = 1/2) and C itself is PSD (singular),
    # but the latent matrix (off-diagonal sin(-pi/4)) is not
    C = np.full((3, 3), -0.5) + 1.5 * np.eye(3)
    assert np.linalg.eigvalsh(C).min() > -1e-12
    both_users([0.5, 0.5, 0.5], C, r"latent Gaussian correlation matrix .* is not positive semi-definite")
    # a Bernoulli channel next to two strongly correlated Gaussians
    C = np.array([[1.0, 0.7, -0.7], [0.7, 1.0, 0.0], [-0.7, 0.0, 1.0]])
    both_users([0.5, None, None], C, r"not positive semi-definite \(smallest eigenvalue -0\.")


def test_target_not_a_correlation_matrix_in_both_users():
    C = np.array([[1, -0.9, -0.9], [-0.9, 1, -0.9], [-0.9, -0.9, 1.0]])
    with pytest.raises(ValueError, match="C_target is not positive semi-definite"):
        mixed_rewards(10, 2, [None, 0.5, None], C, seed=0)
    with pytest.raises(ValueError, match="C is not positive semi-definite"):
        MockBackend(C=C, p=[None, 0.5, None])
    for bad, match in [([[1, 1.2], [1.2, 1]], r"outside \[-1, 1\]"), ([[1, 0.2], [0.3, 1]], "symmetric"),
                       ([[1, 0.2], [0.2, 0.9]], "unit diagonal"), (np.zeros((0, 0)), "square")]:
        with pytest.raises(ValueError, match=match):
            mixed_rewards(10, 2, [0.5, None], bad, seed=0)
        with pytest.raises(ValueError, match=match):
            MockBackend(C=bad, p=[0.5, None])


@pytest.mark.parametrize("call, match", [
    (lambda: copula_pair_correlation(0.5, None, 1.5), r"latent correlation r must lie in \[-1, 1\]"),
    (lambda: copula_pair_correlation(1.0, 0.5, 0.2), "strictly in"),
    (lambda: bernoulli_pair_correlation(True, 0.5, 0.2), "strictly in"),
    (lambda: solve_latent_pair("0.5", 0.5, 0.2), "strictly in"),
    (lambda: copula_latent_correlation([0.5, 0.5], np.eye(2), names=["a"]), "names"),
    (lambda: copula_latent_correlation([0.5, 0.5, 0.5], np.eye(2)), "one entry per channel"),
    (lambda: copula_latent_correlation("ab", np.eye(2)), "sequence of probabilities"),
    (lambda: MockBackend(C=np.eye(2), p="0.5"), "p must be"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
