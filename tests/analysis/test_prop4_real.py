"""Proposition 4 on real rollouts (mrgrpo.analysis.prop4_real): exact where it can be, Monte-Carlo where not."""
from __future__ import annotations

import numpy as np
import pytest

from mrgrpo.analysis.prop4_real import prop4_real, prop4_score
from mrgrpo.core.theory import prop4_gamma_star
from mrgrpo.sim import exact
from mrgrpo.sim.prop4 import prop4_model


def test_independent_rewards_reproduce_the_closed_form():
    # Rewards drawn from the model itself: r_a and r_b independent, so the observed bias line
    # is the closed form up to the sampling noise of the empirical type frequencies.
    rewards, _ = prop4_model((100, 16), 16, 0.4, 0.3, 1.5, seed=0)
    res = prop4_real(rewards, gate=0, cond=1, mse_gammas=[])
    assert res.p_a == pytest.approx(0.4, abs=0.01) and res.p_b == pytest.approx(0.3, abs=0.01)
    assert abs(res.corr_ab) < 0.03
    assert res.gamma_star == pytest.approx(float(prop4_gamma_star(res.p_a, res.p_b, 1.0)))
    assert res.gamma_flip == pytest.approx(res.gamma_star, abs=0.05)
    assert res.slope_ratio == pytest.approx(1.0, abs=0.05)


def test_observed_bias_is_the_exact_covariance_of_the_rollouts():
    # Dependent channels (r_b copies r_a half of the time): the observed line must equal
    # w_b Cov(r_b (1 - r_a), g) computed directly over all rollouts, and its slope falls
    # below the independent closed form.
    rng = np.random.default_rng(1)
    r_a = (rng.random((40, 8, 16)) < 0.4).astype(float)
    r_b = np.where(rng.random(r_a.shape) < 0.5, r_a, (rng.random(r_a.shape) < 0.3).astype(float))
    rewards = np.stack([r_a, r_b], -1)
    res = prop4_real(rewards, w=(1.0, 0.5), gammas=[0.0, 1.0, 2.5], mse_gammas=[])
    p_a, p_b = r_a.mean(), r_b.mean()
    for gamma, observed in zip(res.sweep["gamma"], res.sweep["pooled: observed"]):
        g = prop4_score(r_a, r_b, p_a, p_b, gamma)
        target = r_b * (1 - r_a)
        direct = 0.5 * (np.mean(target * g) - target.mean() * g.mean())
        assert observed == pytest.approx(direct, abs=1e-12)
    assert res.corr_ab > 0.3
    assert res.slope_ratio < 0.9


def test_conditioning_mse_matches_exact_enumeration():
    # A prompt whose 64 rollouts have exactly independent type frequencies (p_a 1/2, p_b 1/4):
    # its MSEs are the Tier-1 model's exact ones (mrgrpo.sim.exact), for every implementation.
    counts = {(0, 0): 24, (0, 1): 8, (1, 0): 24, (1, 1): 8}
    rows = np.array([t for t, n in counts.items() for _ in range(n)], dtype=float)
    rewards = np.random.default_rng(0).permutation(rows).reshape(1, 4, 16, 2)
    res = prop4_real(rewards, mse_gammas=[0.0, 1.5, 3.0])
    for _, row in res.mse.iterrows():
        want = float(exact.prop4_estimator_moments(16, 0.5, 0.25, row["gamma"], row["impl"])["mse"])
        assert row["mse"] == pytest.approx(want, rel=1e-10), (row["impl"], row["gamma"])
    assert res.mse["p_degenerate"].iloc[0] == pytest.approx(float(exact.subgroup_degenerate_prob(16, 0.5)))
    # another group size from the same population
    res8 = prop4_real(rewards, mse_gammas=[1.5], m=8)
    want = float(exact.prop4_estimator_moments(8, 0.5, 0.25, 1.5, "zero_fill")["mse"])
    assert res8.mse.set_index("impl").loc["zero_fill", "mse"] == pytest.approx(want, rel=1e-10)


def test_bad_input_is_refused_with_the_field_named():
    rewards, _ = prop4_model((4, 2), 8, 0.4, 0.3, 1.5, seed=0)
    cont = rewards.copy()
    cont[..., 1] = cont[..., 1] * 0.5 - 0.2
    with pytest.raises(ValueError, match="conditioned channel is not binary"):
        prop4_real(cont)
    assert prop4_real(cont, threshold=0.0, mse_gammas=[]).p_b == pytest.approx((rewards[..., 1] == 1).mean())
    gate = rewards.copy()
    gate[0, 0, 0, 0] = 0.5
    with pytest.raises(ValueError, match="gate channel is not binary"):
        prop4_real(gate)
    with pytest.raises(ValueError, match="different channels"):
        prop4_real(rewards, gate=1, cond=1)
    with pytest.raises(ValueError, match="cond must be a channel index"):
        prop4_real(rewards, cond=2)
    with pytest.raises(ValueError, match="4 dimensions"):
        prop4_real(rewards[0])


def _heterogeneous(P, seed):
    """Prompts whose gate rate varies (0.1 to 0.9) and whose channel is independent of it within a prompt."""
    rng = np.random.default_rng(seed)
    p_a = rng.uniform(0.1, 0.9, size=(P, 1, 1))
    rewards, _ = prop4_model((P, 4), 16, p_a, 0.3, 1.0, seed=rng)
    return rewards


def test_within_prompt_reading_is_the_mean_of_each_prompts_closed_form():
    # Channels independent within every prompt: each prompt's observed line is its own closed form up to the
    # empirical type frequencies, so the within-prompt flip sits on the mean closed form's zero, while the
    # pooled reading mixes prompts (the gate rate varies) and lands elsewhere.
    rewards = _heterogeneous(200, 0)
    res = prop4_real(rewards, mse_gammas=[], n_boot=400)
    ra, rb = rewards[..., 0], rewards[..., 1]
    pa, pb = ra.mean(axis=(1, 2)), rb.mean(axis=(1, 2))
    cA, cB = -pb * (1 - pa) * pa, pb * (1 - pa) * (1 - pb)
    g_within, _, _ = res.interval("within prompts", "gamma_star")
    assert g_within == pytest.approx(-cA.mean() / cB.mean(), rel=1e-12)
    assert res.interval("within prompts", "gamma_flip")[0] == pytest.approx(g_within, rel=0.1)
    assert res.interval("pooled", "gamma_star")[0] == pytest.approx(res.gamma_star, rel=1e-12)
    assert res.interval("pooled", "gamma_flip")[0] == pytest.approx(res.gamma_flip, rel=1e-12)
    assert res.interval("within prompts", "slope_ratio")[0] == pytest.approx(
        res.summary.iloc[1]["slope, observed / closed form"], rel=1e-12)
    # the two readings differ here: mixing prompts correlates the pooled gate and channel
    assert abs(res.interval("pooled", "gamma_star")[0] - g_within) > 0.1
    pooled_cov = (ra * rb).mean() - ra.mean() * rb.mean()
    assert res.cov_within + res.cov_between == pytest.approx(pooled_cov, abs=1e-12)
    assert abs(res.cov_within) < 0.01  # independent within every prompt
    for (reading, q), row in res.intervals.iterrows():
        assert row["lo"] <= row["estimate"] <= row["hi"], (reading, q)
    again = prop4_real(rewards, mse_gammas=[], n_boot=400)
    assert again.intervals.equals(res.intervals)  # the bootstrap is seeded


def test_bootstrap_intervals_have_the_sampling_spread():
    # Across independent data sets the within-prompt flip and slope scatter with some SD; the bootstrap's
    # interval (half-width / 1.96) must estimate that SD, not a fraction or a multiple of it.
    flips, slopes, half_f, half_s = [], [], [], []
    for seed in range(24):
        res = prop4_real(_heterogeneous(60, 100 + seed), mse_gammas=[], n_boot=300, seed=seed)
        f, fl, fh = res.interval("within prompts", "gamma_flip")
        s, sl, sh = res.interval("within prompts", "slope_ratio")
        flips.append(f), slopes.append(s), half_f.append((fh - fl) / 2 / 1.96), half_s.append((sh - sl) / 2 / 1.96)
    assert np.median(half_f) / np.std(flips, ddof=1) == pytest.approx(1.0, abs=0.4)
    assert np.median(half_s) / np.std(slopes, ddof=1) == pytest.approx(1.0, abs=0.4)


def test_reading_words_follow_the_intervals():
    rewards = _heterogeneous(100, 3)
    res = prop4_real(rewards, mse_gammas=[], n_boot=200)
    t = res.intervals

    def set_(reading, q, est, lo, hi):
        t.loc[(reading, q), ["estimate", "lo", "hi"]] = [est, lo, hi]

    set_("pooled", "gamma_star", 1.0, 0.9, 1.1)
    set_("pooled", "gamma_flip", 1.1, 1.0, 1.2)
    set_("pooled", "flip_minus_gamma_star", 0.1, 0.05, 0.15)
    assert res.flip_lands("pooled") == "near"           # within 20% of gamma*, even though resolved
    set_("pooled", "gamma_flip", 1.5, 1.4, 1.6)
    set_("pooled", "flip_minus_gamma_star", 0.5, 0.4, 0.6)
    assert res.flip_lands("pooled") == "off"
    set_("pooled", "flip_minus_gamma_star", 0.5, -0.1, 1.1)
    assert res.flip_lands("pooled") == "not resolved"
    set_("pooled", "slope_ratio", 0.8, 0.7, 0.95)
    assert res.slope_reading("pooled") == "attenuated"
    set_("pooled", "slope_ratio", 1.3, 1.1, 1.5)
    assert res.slope_reading("pooled") == "amplified"
    set_("pooled", "slope_ratio", 0.9, 0.7, 1.05)
    assert res.slope_reading("pooled") == "not resolved from the closed form"
    text = res.reading_sentence("pooled")
    assert "is not resolved from γ* = 1.00 [0.90, 1.10]" in text and "-10% [-30%, +5%]" in text
    with pytest.raises(ValueError, match="unknown reading or quantity"):
        res.interval("pooled", "slope")
    with pytest.raises(ValueError, match="ci must be a level"):
        prop4_real(rewards, mse_gammas=[], ci=1.5)
