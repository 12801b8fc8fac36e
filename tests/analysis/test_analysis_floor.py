"""The checks that can fail: the population floor and the influence law (Prop 1).

The floor check must agree on any rewards with almost no degenerate groups
and fail, blaming degenerate groups, where many groups have a constant
channel. Monte-Carlo assertions are at ``STRICT`` (about 3 standard errors)
with fixed seeds.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_ndtr, ndtri

from mrgrpo.analysis import analyze, floor_check, population_stats, predicted_influence
from mrgrpo.analysis.bootstrap import bootstrap_weights, mean_ci
from mrgrpo.analysis.floor import fisher_floor
from mrgrpo.analysis.floor_calibration import CALIBRATION_COLUMNS, floor_calibration
from mrgrpo.analysis.floor_target import (degenerate_share, first_order_floor, group_quadratic, split_deficit,
                                          subsample_groups, subsampled_floor)
from mrgrpo.analysis.harness import group_stats, pooled_population
from mrgrpo.core.theory import expected_sample_correlation, gaussian_expected_correlation, influence_an, influence_na
from mrgrpo.core.theory.correlation_bias import (binary_pair_cells, binary_pair_expected_correlation,
                                                 moment_bias_matrix)
from mrgrpo.corpus import MockBackend, pack_for_analysis, run_corpus
from mrgrpo.sim.generators import gaussian_rewards, mixed_rewards

W3 = np.array([1.0, 1.0, 0.5])
OFF = np.outer(W3, W3) * (1 - np.eye(3))  # w_l w_k off the diagonal
RHO = 0.5
C_EQ = np.full((3, 3), RHO) + (1 - RHO) * np.eye(3)
L3 = np.array([[1.0, 0.6, 0.3], [0.6, 1.0, -0.2], [0.3, -0.2, 1.0]])  # latent correlation of the copula
STRICT = 0.998  # CI level of the Monte-Carlo assertions: about +-3.1 standard errors


def copula_rewards(kind: str, P: int, K: int, M: int, seed: int, L: np.ndarray = L3) -> np.ndarray:
    """Rewards ``(P, K, M, 3)`` with Gaussian-copula dependence (latent ``L``) and the named marginals."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((P, K, M, L.shape[0])) @ np.linalg.cholesky(L).T

    def expo(v):  # Exp(1) marginal
        return -log_ndtr(-v)

    if kind == "gaussian":
        return z
    if kind == "exponential":
        return expo(z)
    if kind == "bernoulli":  # a success rate per prompt and channel in [0.3, 0.7]
        return (z > ndtri(1 - rng.uniform(0.3, 0.7, size=(P, 1, 1, 3)))).astype(float)
    if kind == "mixed":  # Bernoulli(1/2), Gaussian, exponential
        return np.stack([(z[..., 0] > 0).astype(float), z[..., 1], expo(z[..., 2])], axis=-1)
    if kind == "degenerate":  # rare correctness, continuous length, common format: like real rollouts
        p = rng.uniform(0.03, 0.2, size=(P, 1, 1))
        return np.stack([(z[..., 0] > ndtri(1 - p)).astype(float), z[..., 1],
                         (z[..., 2] > ndtri(0.1)).astype(float)], axis=-1)
    raise ValueError(kind)


def contains_zero(ci) -> bool:
    return ci[0] <= 0.0 <= ci[1]


def target_ci(d: dict, level: float = STRICT, seed: int = 9) -> np.ndarray:
    """Prompt-bootstrap CI of the mean target (its own uncertainty, for checks against an exact value)."""
    t = d["target_per_prompt"]
    return mean_ci(t, bootstrap_weights(t.shape[0], 1000, seed), level)


# ---------------------------------------------------------------------------------------------
# the check agrees on any rewards without degenerate groups
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, m_grid", [("gaussian", [4, 8, 16, 32]), ("exponential", [4, 8, 16, 32]),
                                          ("bernoulli", [16, 32]), ("mixed", [16, 32])])
def test_floor_agrees_for_any_rewards(kind, m_grid):
    """Almost no degenerate groups: the check agrees at every m, whatever the marginals."""
    x = copula_rewards(kind, P=60, K=64, M=32, seed=11)
    f = floor_check(x, W3, m_grid=m_grid, n_boot=1000, seed=3, ci=STRICT, n_subsample=512)
    for m in m_grid:
        d = f.per_m[m]
        assert d["frac_degenerate"] < 0.01, (m, d["frac_degenerate"])
        assert d["agrees"] and d["verdict"] == "agrees", (kind, m, d["floor"], d["target"], d["diff_ci"])
        assert 0.0 <= d["share_degenerate"] <= 1.0
        assert contains_zero(d["expected_diff_ci"])
        assert d["n_target_fallback"] == 0
        if kind == "gaussian":  # the target is the exact expectation (Hotelling), not an expansion
            exact = W3 @ W3 + (OFF * gaussian_expected_correlation(L3, m)).sum()
            lo, hi = target_ci(d)
            assert lo <= exact <= hi, (m, exact, lo, hi)


def test_the_issue_false_alarm_is_gone():
    """Bernoulli(1/2), reward rho 0.6, m = 16: Fisher's Gaussian-only target is rejected, the general one is not."""
    rl = np.sin(0.6 * np.pi / 2)  # latent correlation that gives reward correlation 0.6
    L = np.array([[1, rl, 0], [rl, 1, 0], [0, 0, 1.0]])
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((100, 256, 16, 3)) @ np.linalg.cholesky(L).T > 0).astype(float)
    d = floor_check(x, W3, m_grid=[16], n_boot=1000, seed=1, n_subsample=512).per_m[16]
    assert d["agrees"] and d["verdict"] == "agrees"
    assert not d["agrees_fisher"] and d["fisher"] < d["floor_ci"][0]
    assert d["population"] - d["fisher"] == pytest.approx(2 * 0.6 * 0.64 / 32, abs=0.005)
    # the delta-method bias of a Bernoulli(1/2) pair is 0: the first order sits on the population
    assert abs(d["floor"] - d["first_order"]) < 0.005 < 0.015 < d["floor"] - d["fisher"]
    assert 0.0 <= d["share_degenerate"] <= 1.0


def test_first_order_expansion_is_weak_at_m4():
    """Gaussian rewards, m = 4: the exact target agrees; Theorem 3's first order (Fisher's, here) does not."""
    x = copula_rewards("gaussian", P=100, K=512, M=4, seed=12)
    d = floor_check(x, W3, m_grid=[4], n_boot=1000, seed=4, ci=STRICT, n_subsample=512).per_m[4]
    assert d["agrees"] and not d["agrees_first_order"] and not d["agrees_fisher"]
    fisher = L3 - L3 * (1 - L3**2) / 8
    gap = (OFF * (gaussian_expected_correlation(L3, 4) - fisher)).sum()  # exact - first order
    assert gap < -0.04
    assert d["target"] - d["first_order"] == pytest.approx(gap, abs=0.01)
    assert d["first_order"] == pytest.approx(d["fisher"], abs=0.01)  # delta method = Fisher for Gaussians


def test_floor_with_a_given_C_on_the_gaussian_mock(gaussian_corpus):
    f = floor_check(gaussian_corpus, W3, m_grid=[4, 8, 16, 32], C=C_EQ, n_boot=1000, seed=1, ci=STRICT,
                    n_subsample=512)
    assert f.C_source == "given" and f.population_wCw == pytest.approx(W3 @ C_EQ @ W3)
    for m in (4, 8, 16, 32):
        d = f.per_m[m]
        exact = W3 @ W3 + OFF.sum() * gaussian_expected_correlation(RHO, m)
        lo, hi = target_ci(d)
        assert lo <= exact <= hi and d["floor_ci"][0] <= exact <= d["floor_ci"][1], (m, exact, d["floor_ci"])
        assert d["agrees"] and d["frac_degenerate"] == 0.0 and d["share_degenerate"] == 0.0
        assert d["floor"] < f.population_wCw  # E[C_hat] shrinks towards 0 (positive rho)
    g = floor_check(gaussian_corpus, W3, m_grid=[8], n_boot=200)
    assert g.population_wCw == pytest.approx(W3 @ C_EQ @ W3, abs=0.03)
    assert g.C_source.startswith("all rollouts")
    t = f.to_frame()
    assert list(t["m"]) == [4, 8, 16, 32] and list(t.columns[:8]) == [
        "m", "floor", "floor_lo", "floor_hi", "target", "floor_minus_target", "diff_lo", "diff_hi"]
    assert {"agrees", "verdict", "holds_nondegenerate", "cost_degenerate", "cost_lo", "cost_hi", "fisher",
            "first_order", "population", "frac_degenerate", "share_degenerate"} <= set(t.columns)
    assert not {"agrees_first_order", "agrees_fisher"} & set(t.columns)  # they false-alarm: no table shows them


# ---------------------------------------------------------------------------------------------
# it fails, and blames degenerate groups, where many groups have a constant channel
# ---------------------------------------------------------------------------------------------
def test_floor_fails_and_blames_degenerate_groups():
    x = copula_rewards("degenerate", P=60, K=64, M=32, seed=13)
    f = floor_check(x, W3, m_grid=[4, 8, 16], n_boot=1000, seed=5, ci=STRICT, n_subsample=512)
    for m in (4, 8, 16):
        d = f.per_m[m]
        assert d["frac_degenerate"] > 0.25
        assert not d["agrees"] and d["verdict"] == "fails: degenerate groups", (m, d["verdict"])
        assert d["share_degenerate"] > 0.9
        assert contains_zero(d["deficit_nondegenerate_ci"]) and d["deficit_degenerate_ci"][0] > 0
        assert contains_zero(d["expected_diff_ci"])  # the floor is what the convention predicts for these groups
        assert not d["agrees_first_order"]
    assert f.per_m[4]["deficit"] > f.per_m[8]["deficit"] > f.per_m[16]["deficit"]


def test_floor_binary_small_p_mock_blames_degenerate_groups():
    C = np.array([[1.0, 0.3], [0.3, 1.0]])
    b = MockBackend(C=C, p=[0.1, 0.5], seed=2)
    c = run_corpus(b, [(f"p{i}", "0") for i in range(40)], m_grid=[16], K_seeds=60, seed=2)
    f = floor_check(pack_for_analysis(c, 16), np.ones(2), m_grid=[4, 8, 16], C=C, n_boot=1000, seed=0, ci=STRICT)
    for m in (4, 8):
        d = f.per_m[m]
        assert 0.9**m - 0.05 < d["frac_degenerate"] < 0.9**m + 0.05 + 0.5**m  # correctness constant ~0.9^m
        assert d["floor_ci"][1] < d["fisher"] - 0.1  # far below what any O(1/m) expansion predicts
        assert d["verdict"] == "fails: degenerate groups" and d["share_degenerate"] > 0.9
        assert d["diag_deficit"] > 0.3 and d["floor_nondegenerate"] > d["floor"]
    assert f.per_m[4]["deficit"] > f.per_m[8]["deficit"] > f.per_m[16]["deficit"]


def test_target_is_exact_for_a_binary_pair_with_many_degenerate_groups():
    """Against exact enumeration: the target, the all-groups value and the degenerate probability."""
    cells = binary_pair_cells(0.15, 0.5, 0.3)
    idx = np.random.default_rng(8).choice(4, p=cells, size=(80, 32, 16))  # cells 11, 10, 01, 00
    x = np.stack([idx <= 1, idx % 2 == 0], axis=-1).astype(float)
    w = np.array([1.0, 0.7])
    f = floor_check(x, w, m_grid=[4, 8], n_boot=1000, seed=2, ci=STRICT, n_subsample=512)
    for m in (4, 8):
        e = binary_pair_expected_correlation(cells, m)
        d = f.per_m[m]
        lo, hi = target_ci(d)
        assert lo <= w @ w + 2 * w[0] * w[1] * e.corr_nondegenerate <= hi, (m, lo, hi)
        exact_all = w[0] ** 2 * (1 - e.p_const_x) + w[1] ** 2 * (1 - e.p_const_y) + 2 * w[0] * w[1] * e.corr
        assert d["expected"] == pytest.approx(exact_all, abs=0.03)
        assert d["frac_degenerate_expected"] == pytest.approx(1 - e.p_nondegenerate, abs=0.01)
        assert d["verdict"] == "fails: degenerate groups"


# ---------------------------------------------------------------------------------------------
# the target level stays unbiased with a small pool against a rare channel
# ---------------------------------------------------------------------------------------------
def _rare_pair(rng, shape, p=0.08, r=0.5):
    """A Bernoulli(p) channel and a Gaussian one, latent correlation r: shape + (2,)."""
    z = rng.standard_normal(shape + (2,))
    z[..., 1] = r * z[..., 0] + np.sqrt(1 - r * r) * z[..., 1]
    return np.stack([(z[..., 0] > ndtri(1 - p)).astype(float), z[..., 1]], axis=-1)


def test_target_level_unbiased_with_a_small_pool_and_a_rare_channel():
    """Pool 32 (4 seeds x 8), p = 0.08: 7% of prompts never see a success. Weighting prompts by their
    non-degenerate groups keeps the target level on the truth; the plain mean of per-prompt targets is 5% low."""
    rng = np.random.default_rng(24)
    w = np.ones(2)
    q, deg, _ = group_quadratic(_rare_pair(rng, (1, 400_000, 8)), w, np.ones((1, 2), dtype=bool))
    truth = q[~deg].mean()  # E[w' C_hat_8 w | the rare channel varies], by brute force
    P = 3000
    d = floor_check(_rare_pair(rng, (P, 4, 8)), w, m_grid=[8], n_boot=200, seed=5, n_subsample=256).per_m[8]
    nd = 1 - d["frac_degenerate_per_prompt"]
    t = d["target_per_prompt"]
    se = np.std(nd * (t - d["target"])) / np.sqrt(P) / nd.mean()  # delta method, prompts independent
    assert abs(d["target"] - truth) < 3 * se, (d["target"], truth, se)
    assert se < 0.004 * truth  # the test resolves a 1% bias
    assert t.mean() < truth * 0.97  # what the unweighted level did
    assert d["n_target_fallback"] > 0.04 * P  # the prompts whose pool never shows a success
    assert abs(d["diff"]) < 3 * se * 2 and d["holds_nondegenerate"]


def test_a_prompt_whose_channel_never_varies_costs_nothing():
    """Correctness always 0 on one prompt: all its groups are degenerate, its target is its own expected value."""
    x = copula_rewards("gaussian", P=20, K=16, M=8, seed=3)
    x[..., 0] = (x[..., 0] > 0).astype(float)
    x[0, ..., 0] = 0.0
    d = floor_check(x, W3, m_grid=[8], n_boot=200, seed=1, n_subsample=256).per_m[8]
    assert d["frac_degenerate_per_prompt"][0] == 1.0 and d["n_target_fallback"] == 1
    dd, _ = split_deficit(*group_quadratic(x[:1], W3, np.ones((1, 3), dtype=bool))[:2], d["target_per_prompt"][:1])
    assert abs(dd[0]) < 0.05  # its groups cost (about) nothing: the channel carries no noise there


def test_the_verdict_is_calibrated_where_the_old_one_was_not():
    """Rejection rates over 40 corpora per design (the calibration table, small)."""
    C = np.array([[1.0, 0.4, 0.2], [0.4, 1.0, 0.2], [0.2, 0.2, 1.0]])
    designs = {"gaussian": lambda rng: gaussian_rewards((40, 8), 8, C, seed=rng),
               "mixed": lambda rng: mixed_rewards((40, 8), 8, [0.5, None, 0.3], C, seed=rng),
               "rare": lambda rng: mixed_rewards((40, 8), 8, [0.05, None, 0.5], C, seed=rng)}
    t = floor_calibration(designs, W3, 8, n_rep=40, seed=0, margin=0.05)
    assert list(t.columns[:len(CALIBRATION_COLUMNS)]) == list(CALIBRATION_COLUMNS)
    # the identity on non-degenerate groups: about 5% everywhere (40 runs: at most 6 rejections)
    assert (t["identity (non-degenerate)"] <= 0.15).all(), t
    # a few degenerate groups costing about 2% of the floor, under a 5% margin: the verdict holds,
    # the old floor-vs-target test over all groups rejects
    assert t.loc["mixed", "cost"] < 0.03 and t.loc["mixed", "degenerate"] > 0.03
    assert t.loc["mixed", "verdict fails"] <= 0.2 < 0.4 <= t.loc["mixed", "floor vs target, all groups"]
    assert t.loc["gaussian", "verdict fails"] <= 0.15 and t.loc["gaussian", "cost > margin"] == 0.0
    # a rare channel: degenerate groups cost most of the floor, and the verdict says so every time
    assert t.loc["rare", "cost"] > 0.5 and t.loc["rare", "cost > margin"] == 1.0 == t.loc["rare", "verdict fails"]
    assert (t["expected, all groups"] <= 0.15).all()  # the unconditional exact test is calibrated too
    with pytest.raises(ValueError, match="n_rep"):
        floor_calibration(designs, W3, 8, n_rep=0)


def test_floor_margin_is_checked():
    x = copula_rewards("gaussian", P=5, K=4, M=8, seed=1)
    for bad in (-0.01, 1.0, "x"):
        with pytest.raises(ValueError, match="margin"):
            floor_check(x, W3, m_grid=[8], n_boot=10, margin=bad)


# ---------------------------------------------------------------------------------------------
# the accounting: a share is a share, the deficit splits exactly
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_share_is_a_share_and_the_deficit_splits_exactly(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((8, 3, 8, 3))
    x[..., 0] = (rng.random((8, 3, 8)) < rng.uniform(0.05, 0.5)).astype(float)
    x[..., 2] = np.round(x[..., 2])  # a coarse channel: ties, some constant groups
    w = rng.normal(size=3)  # negative weights too
    f = floor_check(x, w, m_grid=[2, 4, 8], n_boot=200, seed=seed, n_subsample=64)
    for d in f.per_m.values():
        assert 0.0 <= d["share_degenerate"] <= 1.0
        assert d["deficit"] == pytest.approx(d["deficit_degenerate"] + d["deficit_nondegenerate"], abs=1e-12)
        assert d["deficit"] == pytest.approx(d["target_per_prompt"].mean() - d["floor"], abs=1e-12)


def test_split_deficit_and_share():
    q = np.array([[1.0, 3.0, 2.0], [0.5, 2.5, 2.5]])
    deg = np.array([[True, False, False], [False, True, False]])
    target = np.array([2.0, 2.0])
    dd, dn = split_deficit(q, deg, target)
    np.testing.assert_allclose(dd, [1 / 3, -0.5 / 3])
    np.testing.assert_allclose(dn, [-1 / 3, 1 / 3])
    np.testing.assert_allclose(dd + dn, target - q.mean(axis=1))
    assert degenerate_share(-0.3, 0.1) == pytest.approx(0.75)  # opposite signs: the old ratio gave 1.5
    assert degenerate_share(0.0, 0.0) == 0.0
    assert degenerate_share(0.2, 0.0) == 1.0


def test_subsampled_groups_hold_distinct_rollouts():
    P, N, m = 3, 20, 6
    pooled = np.broadcast_to(np.arange(N, dtype=float)[None, :, None], (P, N, 1))
    g = subsample_groups(pooled, m, 3000, np.random.default_rng(0))[..., 0]
    assert g.shape == (P, 3000, m)
    assert (np.diff(np.sort(g, axis=-1), axis=-1) > 0).all()  # no rollout twice in a group
    freq = np.bincount(g.astype(int).ravel(), minlength=N) / g.size
    np.testing.assert_allclose(freq, 1 / N, atol=0.004)


def test_a_rarely_varying_channel_gets_more_subsets_or_the_fallback():
    rng = np.random.default_rng(1)
    pooled = np.stack([np.zeros((2, 64)), rng.standard_normal((2, 64))], axis=-1)
    pooled[0, 5, 0] = 1.0  # one success in 64 rollouts: a group of 4 varies with probability 1/16
    pooled[1, :32, 0] = 1.0
    varies = np.ones((2, 2), dtype=bool)
    w = np.ones(2)
    out = subsampled_floor(pooled, w, varies, 4, 32, rng, fallback=np.array([-1.0, -1.0]))
    assert out["n_groups"][0] > 32 and out["n_groups"][1] == 32  # only the thin prompt got a second round
    assert out["n_nondegenerate"][0] >= 16 and not out["fallback"].any()
    assert 1.0 < out["target"][0] < 3.0
    one = subsampled_floor(pooled, w, varies, 4, 1, np.random.default_rng(2), fallback=np.array([-1.0, -1.0]),
                           max_rounds=1)
    assert (one["target"][one["fallback"]] == -1.0).all()
    assert np.isfinite(one["target"]).all()


def test_floor_accepts_per_m_tensors(gaussian_corpus):
    tens = {8: gaussian_corpus[:, :, :8], 16: gaussian_corpus[:, :, 8:24]}
    f = floor_check(tens, W3, n_boot=100, n_subsample=64)
    assert f.m_grid == [8, 16]
    with pytest.raises(ValueError, match="group size"):
        floor_check({8: gaussian_corpus[:, :, :4]}, W3)
    with pytest.raises(ValueError, match="outside"):
        floor_check(gaussian_corpus, W3, m_grid=[64])
    with pytest.raises(ValueError, match="shape"):
        floor_check(gaussian_corpus, W3, C=np.eye(2))
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="n_subsample"):
            floor_check(gaussian_corpus, W3, n_subsample=bad)


@pytest.fixture(scope="module")
def gaussian_corpus():
    b = MockBackend(C=C_EQ, seed=5)
    c = run_corpus(b, [(f"p{i}", "0") for i in range(60)], m_grid=[32], K_seeds=120, seed=5)
    return pack_for_analysis(c, 32)


def test_vectorized_closed_forms_equal_theory():
    rng = np.random.default_rng(0)
    x = (rng.random((6, 5, 8, 3)) < [0.3, 0.5, 0.9]).astype(float)
    x[..., 1] = rng.standard_normal((6, 5, 8)) * 2
    x[0, :, :, 2] = 1.0  # channel constant over a whole prompt
    st = group_stats(x, W3)
    C, sigma, varies = pooled_population(st["mean"], st["cov"])
    C2, sigma2, varies2 = population_stats(x.reshape(6, 40, 3))
    np.testing.assert_allclose(C, C2, atol=1e-12)
    np.testing.assert_allclose(sigma, sigma2, atol=1e-12)
    assert (varies == varies2).all() and not varies[0, 2]
    an, na = predicted_influence(W3, sigma, C, varies)
    fl = fisher_floor(W3, C, varies, 8)
    for p in range(6):
        we = np.where(varies[p], W3, 0.0)
        np.testing.assert_allclose(na[p], influence_na(we, C[p]), atol=1e-12)
        np.testing.assert_allclose(an[p], influence_an(we, np.where(varies[p], sigma[p], 1.0), C[p]), atol=1e-12)
        assert fl[p] == pytest.approx(we @ expected_sample_correlation(C[p], 8) @ we, abs=1e-12)
    # Theorem 3's first order: w_eff^T (C_p + B_p / m) w_eff, B_p from the prompt's own moments
    pooled = x.reshape(6, 40, 3)
    fo = first_order_floor(W3, C, varies, pooled, [8, 16])
    assert fo.shape == (2, 6)
    for p in range(6):
        we = np.where(varies[p], W3, 0.0)
        B = moment_bias_matrix(pooled[p])
        assert fo[0, p] == pytest.approx(we @ C[p] @ we + we @ B @ we / 8, abs=1e-12)
        assert fo[1, p] == pytest.approx(we @ C[p] @ we + we @ B @ we / 16, abs=1e-12)
    assert np.abs(fo[0] - fl).max() > 1e-3  # not Fisher's: these channels are not Gaussian


def test_pooled_population_constant_channel_with_inexact_mean():
    """A channel constant at 0.1 over a prompt does not vary, although its group means round."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 2))
    x[0, :, :, 1] = 0.1  # 3 groups of 5: the mean of the group means is not exactly 0.1
    st = group_stats(x, np.ones(2))
    assert st["mean"][0, :, 1].mean() != st["mean"][0, 0, 1]  # the rounding this guards against
    C, sigma, varies = pooled_population(st["mean"], st["cov"])
    C2, sigma2, varies2 = population_stats(x.reshape(2, 15, 2))
    assert not varies[0, 1] and not varies2[0, 1] and varies[1].all()
    assert sigma[0, 1] == 0.0 and sigma2[0, 1] == 0.0
    np.testing.assert_array_equal(C[0], np.eye(2))
    np.testing.assert_allclose(C, C2, atol=1e-12)
    # so Prop 1 and the floor give the constant channel no weight
    an, na = predicted_influence(np.ones(2), sigma, C, varies)
    assert na[0, 1] == 0.0 and an[0, 1] == 0.0
    assert fisher_floor(np.ones(2), C, varies, 5)[0] == 1.0


def test_influence_law_on_gaussian_mock():
    """fig1b's setting: C = I, sigma2/sigma1 = 4: AN influence ratio tracks 4, NA's stays 1."""
    b = MockBackend(C=np.eye(2), scale=[1.0, 4.0], seed=3)
    c = run_corpus(b, [(f"p{i}", "0") for i in range(30)], m_grid=[32], K_seeds=60, seed=3)
    r = analyze(pack_for_analysis(c, 32), [1.0, 1.0], n_boot=1000)
    # Prop 1 from the tensor's own sigmas and C
    np.testing.assert_allclose(r.influence_an_pred, [1 / np.sqrt(17), 4 / np.sqrt(17)], atol=0.02)
    np.testing.assert_allclose(r.influence_na_pred, [1.0, 1.0], atol=0.02)
    assert r.influence_an[1] / r.influence_an[0] == pytest.approx(4.0, rel=0.05)
    assert r.influence_na[1] / r.influence_na[0] == pytest.approx(1.0, abs=0.02)
    # the realized influence lies within O(1/m) of the law
    np.testing.assert_allclose(r.influence_an, r.influence_an_pred, atol=0.05)
    np.testing.assert_allclose(r.influence_na, r.influence_na_pred, atol=0.05)


def test_influence_with_correlation_matches_prop1():
    C = np.array([[1.0, -0.4, 0.2], [-0.4, 1.0, 0.0], [0.2, 0.0, 1.0]])
    b = MockBackend(C=C, scale=[1.0, 2.0, 0.5], seed=4)
    c = run_corpus(b, [(f"p{i}", "0") for i in range(30)], m_grid=[32], K_seeds=50, seed=4)
    r = analyze(pack_for_analysis(c, 32), W3, n_boot=500)
    sig = np.array([1.0, 2.0, 0.5])
    np.testing.assert_allclose(r.influence_na_pred, influence_na(W3, C), atol=0.03)
    np.testing.assert_allclose(r.influence_an_pred, influence_an(W3, sig, C), atol=0.03)
    np.testing.assert_allclose(r.influence_na, r.influence_na_pred, atol=0.06)
    np.testing.assert_allclose(r.influence_an, r.influence_an_pred, atol=0.06)
