"""The Theorem-3 harness: reference equivalence, conventions, ratios and CIs, real scores, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from mrgrpo.core.advantage import compute_advantage_batch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mrgrpo.analysis import (Thm3Result, analyze, identity_demo, identity_gap, identity_sides, realized_influence,
                             summary_print)
from mrgrpo.analysis.harness import group_stats, loglog_fit
from mrgrpo.corpus import MockBackend, pack_for_analysis, run_corpus
from mrgrpo.core.stats import sample_correlation

W3 = np.array([1.0, 1.0, 0.5])
REF_FIELDS = ("realized_an", "realized_na", "predicted_per_prompt", "predicted_pooled", "influence_an",
              "influence_na", "pooled_C")


def _tensors():
    rng = np.random.default_rng(7)
    gauss = rng.standard_normal((6, 5, 8, 3)) * [1.0, 3.0, 0.2] + [0, 1, 2]
    binary = (rng.random((5, 4, 6, 3)) < [0.2, 0.5, 0.9]).astype(float)
    mixed = binary.copy()
    mixed[..., 1] = np.tanh(rng.standard_normal((5, 4, 6)))
    mixed[0, :, :, 0] = 1.0  # a prompt whose correctness never varies
    cauchy = rng.standard_cauchy((4, 3, 5, 2)) ** 3
    return [(gauss, W3), (binary, W3), (mixed, np.array([1.0, -2.0, 0.5])), (cauchy, np.array([0.3, 1.0]))]


@pytest.mark.parametrize("case", range(4))
def test_paper_convention_reproduces_reference(case):
    from multireward_grpo import analysis as ref
    x, w = _tensors()[case]
    for seed in (0, 12345):
        a = ref.analyze(x, w, score_seed=seed)
        b = analyze(x, w, score_seed=seed, mse_estimator="paper", n_boot=50)
        assert (b.m, b.P, b.K) == (a.m, a.P, a.K)
        for f in REF_FIELDS:
            np.testing.assert_allclose(getattr(b, f), getattr(a, f), rtol=0, atol=1e-10, err_msg=f)


def test_group_stats_match_the_estimators():
    """The harness runs the public estimators' own kernels: equal to the last bit."""
    for x, w in _tensors():
        st = group_stats(x, w)
        np.testing.assert_array_equal(st["A_na"], compute_advantage_batch(x, w, mode="na"))
        np.testing.assert_array_equal(st["A_an"], compute_advantage_batch(x, w, mode="an"))
        np.testing.assert_array_equal(st["C_hat"], sample_correlation(x))
        assert not np.isnan(st["C_hat"]).any()
        np.testing.assert_array_equal(st["infl_na"], realized_influence(x, st["A_na"]))
        np.testing.assert_array_equal(st["infl_an"], realized_influence(x, st["A_an"]))


def test_realized_influence_is_the_within_group_covariance():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 6, 3)) * [1.0, 5.0, 0.1] + [0.0, 2.0, -3.0]
    x[1, :, 2] = 0.7  # a constant channel: z = 0, influence 0
    A = rng.standard_normal((4, 6)) + 3.0  # any A, mean not 0
    got = realized_influence(x, A, eps=0.0)
    for g in range(4):
        for ell in range(3):
            col = x[g, :, ell]
            z = np.zeros(6) if np.ptp(col) == 0 else (col - col.mean()) / col.std()
            want = np.mean((A[g] - A[g].mean()) * (z - z.mean()))
            assert got[g, ell] == pytest.approx(want, abs=1e-14)
    with pytest.raises(ValueError, match="A must have shape"):
        realized_influence(x, A[:, :5])
    with pytest.raises(ValueError, match="non-finite"):
        realized_influence(np.full((2, 3), np.nan), np.zeros(2))


def test_chunking_does_not_change_results():
    x, w = _tensors()[2]
    a = analyze(x, w, n_boot=100)
    b = analyze(x, w, n_boot=100, chunk_prompts=2)
    for f in REF_FIELDS + ("ratio_na", "ratio_na_ci", "floor_fisher", "influence_an_pred", "frac_constant"):
        np.testing.assert_allclose(getattr(b, f), getattr(a, f), atol=1e-12, rtol=0, err_msg=f)


def test_unbiased_vs_paper_relation():
    x, w = _tensors()[0]
    u = analyze(x, w, mse_estimator="unbiased", n_boot=50)
    p = analyze(x, w, mse_estimator="paper", n_boot=50)
    np.testing.assert_allclose(u.predicted_per_prompt, p.predicted_per_prompt)
    # mean of g^2 >= variance (ddof 0) prompt by prompt
    assert (u.realized_na >= p.realized_na - 1e-15).all()
    assert u.expected_ratio == 1.0 and p.expected_ratio == pytest.approx(4 / 5)


def test_degenerate_accounting():
    x, w = _tensors()[2]
    r = analyze(x, w, n_boot=50)
    from mrgrpo.core.advantage import constant_channel_mask

    const = constant_channel_mask(x)
    np.testing.assert_allclose(r.frac_constant, const.mean(axis=(0, 1)))
    assert r.frac_degenerate == pytest.approx(const.any(-1).mean())
    nd = ~const.any(-1)
    np.testing.assert_allclose(r.pooled_C_nondegenerate, sample_correlation(x)[nd].mean(0))
    np.testing.assert_allclose(np.diag(r.pooled_C_nondegenerate), 1.0, atol=1e-6)
    assert np.diag(r.pooled_C).min() < 0.9  # the published "diagonal below 1" is degenerate groups


@pytest.mark.parametrize("m", [4, 8, 16, 32])
def test_done_when_gaussian_unbiased_ratio_contains_one(m):
    """Done-when of issue 3: independent Gaussian mock rewards, unbiased NA ratio CI contains 1."""
    b = MockBackend(C=np.eye(3), seed=1)
    corpus = run_corpus(b, [(f"p{i}", "0") for i in range(40)], m_grid=[m], K_seeds=50, seed=m)
    r = analyze(pack_for_analysis(corpus, m), W3, score_seed=m, n_boot=1000)
    lo, hi = r.ratio_na_ci
    assert lo <= 1.0 <= hi, (m, r.ratio_na, r.ratio_na_ci)
    assert hi - lo < 0.2  # the interval is informative, not vacuous


def test_random_scores_cannot_fail_but_real_scores_can():
    """With independent scores the ratio is 1 whatever tau^2; scores that depend on the rollout break it."""
    rng = np.random.default_rng(3)
    P, K, m = 40, 60, 8
    x = rng.standard_normal((P, K, m, 3))
    g_indep = 2.0 * rng.standard_normal((P, K, m))  # tau^2 = 4, independent of rewards
    r = analyze(x, W3, scores=g_indep, n_boot=1000)
    assert r.score_source == "given" and r.score_seed is None
    assert np.median(r.tau2) == pytest.approx(4.0, rel=0.1)
    se = (r.ratio_na_ci[1] - r.ratio_na_ci[0]) / 3.92  # bootstrap SE
    assert abs(r.ratio_na - 1.0) < 4 * se, (r.ratio_na, se)
    # a score whose size grows with |reward_0|: E[g^2 | r] = r_0^2 is not independent of A^2
    g_dep = np.abs(x[..., 0]) * rng.standard_normal((P, K, m))
    d = analyze(x, W3, scores=g_dep, n_boot=1000)
    assert d.ratio_na_ci[0] > 1.05, d.ratio_na_ci


def test_scores_mean_is_estimated():
    """With real scores a nonzero gradient (mean of g_hat) is not counted as noise."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((30, 40, 8, 3))
    A = compute_advantage_batch(x, W3)
    noise = rng.standard_normal(A.shape)
    g = noise + 5.0 * A  # strong signal: E[g_hat] != 0 but constant-ish across seeds
    r = analyze(x, W3, scores=g, n_boot=200)
    ghat = (A * g).mean(-1)
    np.testing.assert_allclose(r.realized_na, ghat.var(axis=1, ddof=1))


def test_result_tables_and_summary(capsys):
    x, w = _tensors()[1]
    r = analyze(x, w, n_boot=100)
    assert isinstance(r, Thm3Result)
    df = r.to_frame()
    assert list(df.columns[:4]) == ["prompt", "realized_na", "realized_an", "predicted"] and len(df) == r.P
    assert set(r.summary_frame()["quantity"]) >= {"ratio NA", "log-log slope NA"}
    assert len(r.influence_frame()) == 3
    summary_print(r, label="test ")
    out = capsys.readouterr().out
    assert "ratio" in out and "cannot falsify" in out and "influence" in out


def test_loglog_fit():
    p = np.array([1.0, 2.0, 4.0, 8.0])
    s, r2 = loglog_fit(p, 3 * p**2)
    assert s == pytest.approx(2.0) and r2 == pytest.approx(1.0)
    assert np.isnan(loglog_fit(p[:2], p[:2])[0])


def test_bootstrap_ci_is_seeded_and_covers():
    x, w = _tensors()[0]
    a = analyze(x, w, n_boot=300, boot_seed=5)
    b = analyze(x, w, n_boot=300, boot_seed=5)
    c = analyze(x, w, n_boot=300, boot_seed=6)
    np.testing.assert_array_equal(a.ratio_na_ci, b.ratio_na_ci)
    assert not np.array_equal(a.ratio_na_ci, c.ratio_na_ci)
    assert a.ratio_na_ci[0] <= a.ratio_na <= a.ratio_na_ci[1]


# ---------------------------------------------------------------- identity
def test_identity_holds_per_group_to_machine_precision():
    rng = np.random.default_rng(0)
    cases = [rng.standard_cauchy((50, 8, 3)) ** 3, (rng.random((50, 8, 3)) < 0.2).astype(float),
             rng.integers(0, 3, (50, 5, 4)).astype(float), rng.standard_normal((20, 2, 2))]
    for x in cases:
        w = np.linspace(-1, 2, x.shape[-1])
        gap = identity_gap(x, w)
        assert gap["max_rel"] < 1e-12 and gap["max_abs"] < 1e-9, gap
    # the paper's eps breaks it only at O(eps / sigma)
    assert identity_gap(cases[1], [1, 1, 0.5], eps=1e-8)["max_abs"] < 1e-6


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=3, min_side=2, max_side=6),
                  elements=st.sampled_from([0.0, 1.0, -2.5, 3.0, 1e3]) | st.floats(-1e3, 1e3, width=32)),
       st.floats(-3, 3))
def test_identity_property(x, w0):
    """mean_j A_j^2 = w'C_hat w for any group, ties and constant channels included."""
    w = w0 + np.arange(x.shape[-1], dtype=float)
    lhs, rhs = identity_sides(x, w)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-9, atol=1e-9 * (1 + np.abs(w).sum() ** 2))


def test_identity_demo_cauchy_cubed():
    d = identity_demo(P=200, K=16, m=8, seed=0, n_boot=2000)
    assert d.max_abs_gap < 1e-12
    assert d.contains_expected(), (d.paper_ratio, d.paper_ratio_ci)  # (K-1)/K = 0.9375
    assert d.unbiased_ratio_ci[0] <= 1.0 <= d.unbiased_ratio_ci[1]


# ---------------------------------------------------------------- bad input
def test_bad_input():
    x = np.random.default_rng(0).standard_normal((3, 4, 5, 3))
    bad = x.copy()
    bad[1, 2, 3, 0] = np.nan
    with pytest.raises(ValueError, match=r"group \(1, 2\), rollout \(row\) 3, channel 0"):
        analyze(bad, W3)
    with pytest.raises(ValueError, match="4 dimensions"):
        analyze(x[0], W3)
    with pytest.raises(ValueError, match="K >= 2"):
        analyze(x[:, :1], W3)
    with pytest.raises(ValueError, match="m >= 2"):
        analyze(x[:, :, :1], W3)
    with pytest.raises(ValueError, match="2 weights but the rewards have R = 3"):
        analyze(x, [1.0, 1.0])
    with pytest.raises(ValueError, match="mse_estimator"):
        analyze(x, W3, mse_estimator="ddof0")
    with pytest.raises(ValueError, match="scores must have shape"):
        analyze(x, W3, scores=np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match="non-finite"):
        analyze(x, W3, scores=np.full((3, 4, 5), np.inf))
    with pytest.raises(ValueError, match="n_boot"):
        analyze(x, W3, n_boot=0)


def test_bootstrap_helpers():
    from mrgrpo.analysis.bootstrap import bootstrap_sums, bootstrap_weights, mean_ci, ratio_ci

    W = bootstrap_weights(7, 150, seed=3)
    assert W.shape == (150, 7) and (W.sum(axis=1) == 7).all()
    cols = np.arange(14.0).reshape(7, 2)
    np.testing.assert_array_equal(bootstrap_sums(cols, 150, seed=3), W @ cols)
    x = np.random.default_rng(0).standard_normal(200) + 3.0
    lo, hi = mean_ci(x, bootstrap_weights(200, 2000, 1))
    assert lo < x.mean() < hi and hi - lo == pytest.approx(2 * 1.96 * x.std() / np.sqrt(200), rel=0.15)
    lo, hi = ratio_ci(x, np.ones(200), bootstrap_weights(200, 500, 1))
    assert lo < x.mean() < hi
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_weights(5, 0)
