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
