"""The checks that can fail: the population floor and the influence law (Prop 1)."""
from __future__ import annotations

import numpy as np
import pytest

from mrgrpo.analysis import analyze, floor_check, population_stats, predicted_influence
from mrgrpo.analysis.floor import fisher_floor
from mrgrpo.analysis.harness import group_stats, pooled_population
from mrgrpo.corpus import MockBackend, pack_for_analysis, run_corpus
from mrgrpo.core.theory import expected_sample_correlation, gaussian_expected_correlation, influence_an, influence_na

W3 = np.array([1.0, 1.0, 0.5])
RHO = 0.5
C_EQ = np.full((3, 3), RHO) + (1 - RHO) * np.eye(3)


@pytest.fixture(scope="module")
def gaussian_corpus():
    b = MockBackend(C=C_EQ, seed=5)
    c = run_corpus(b, [(f"p{i}", "0") for i in range(60)], m_grid=[32], K_seeds=120, seed=5)
    return pack_for_analysis(c, 32)


def test_floor_gaussian_agrees_with_theory(gaussian_corpus):
    """Done-when: on Gaussian mock rewards the floor check agrees with theory."""
    f = floor_check(gaussian_corpus, W3, m_grid=[4, 8, 16, 32], C=C_EQ, n_boot=2000, seed=1)
    off = W3.sum() ** 2 - (W3**2).sum()  # sum of w_l w_k over l != k
    for m in (4, 8, 16, 32):
        d = f.per_m[m]
        exact = (W3**2).sum() + off * gaussian_expected_correlation(RHO, m)
        assert d["floor_ci"][0] <= exact <= d["floor_ci"][1], (m, d["floor"], d["floor_ci"], exact)
        assert d["frac_degenerate"] == 0.0
        if m >= 8:  # Fisher's first order, O(1/m^2) off: agrees once m is moderate
            assert d["agrees"], (m, d["floor"], d["fisher"], d["diff_ci"])
        assert d["floor"] < f.population_wCw  # E[C_hat] shrinks towards 0 (positive rho)
    assert f.population_wCw == pytest.approx(W3 @ C_EQ @ W3)
    # estimated population (all rollouts pooled) is close to the true one
    g = floor_check(gaussian_corpus, W3, m_grid=[8], n_boot=200)
    assert g.population_wCw == pytest.approx(W3 @ C_EQ @ W3, abs=0.03)
    assert g.C_source.startswith("all rollouts")
    assert list(f.to_frame()["m"]) == [4, 8, 16, 32]


def test_floor_binary_small_p_shows_the_degenerate_deficit():
    C = np.array([[1.0, 0.3], [0.3, 1.0]])
    b = MockBackend(C=C, p=[0.1, 0.5], seed=2)
    c = run_corpus(b, [(f"p{i}", "0") for i in range(40)], m_grid=[16], K_seeds=60, seed=2)
    x = pack_for_analysis(c, 16)
    w = np.array([1.0, 1.0])
    f = floor_check(x, w, m_grid=[4, 8, 16], C=C, n_boot=1000, seed=0)
    for m in (4, 8):
        d = f.per_m[m]
        assert 0.9**m - 0.05 < d["frac_degenerate"] < 0.9**m + 0.05 + 0.5**m  # correctness constant ~0.9^m
        assert d["floor_ci"][1] < d["fisher"] - 0.1  # far below what Fisher's O(1/m) predicts
        assert not d["agrees"]
        assert d["share_degenerate"] > 0.8  # degenerate groups carry the gap
        assert d["diag_deficit"] > 0.3
        assert d["floor_nondegenerate"] > d["floor"]
    assert f.per_m[4]["deficit"] > f.per_m[8]["deficit"] > f.per_m[16]["deficit"]


def test_floor_accepts_per_m_tensors(gaussian_corpus):
    tens = {8: gaussian_corpus[:, :, :8], 16: gaussian_corpus[:, :, 8:24]}
    f = floor_check(tens, W3, n_boot=100)
    assert f.m_grid == [8, 16]
    with pytest.raises(ValueError, match="group size"):
        floor_check({8: gaussian_corpus[:, :, :4]}, W3)
    with pytest.raises(ValueError, match="outside"):
        floor_check(gaussian_corpus, W3, m_grid=[64])
    with pytest.raises(ValueError, match="shape"):
        floor_check(gaussian_corpus, W3, C=np.eye(2))


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
