"""Theorem 3 with real scores: the analysis on synthetic data with known answers, and a smoke run."""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

from mrgrpo.analysis.real_scores import analyze_real_scores, group_terms, plot_ratios, reshuffle_within_groups
from mrgrpo.corpus.real_scores import RealScoreData

sys.path.insert(0, str(Path(__file__).parents[1]))

W = np.array([1.0, 1.0, 0.5])
C3 = np.array([[1.0, -0.5, 0.3], [-0.5, 1.0, -0.1], [0.3, -0.1, 1.0]])


def _gaussian(P, K, M, D, seed, dependent=0.0):
    """Gaussian rewards with correlation C3; scores N(0, 1) times (1 + dependent * |z_0|)."""
    rng = np.random.default_rng(seed)
    L = np.linalg.cholesky(C3)
    z = rng.standard_normal((P, K, M, 3)) @ L.T
    scale = 1.0 + dependent * np.abs(z[..., :1])
    g = rng.standard_normal((P, K, M, D)) * scale
    return RealScoreData(z, g, np.full((P, K, M), 10))


def test_matches_the_harness_realized_mse():
    from mrgrpo.analysis import analyze

    data = _gaussian(12, 6, 8, 2, seed=0)
    for mode in ("na", "an"):
        t = group_terms(data.rewards, data.scores, W, mode)
        mine = t["ghat"].var(axis=1, ddof=1)
        for d in range(2):
            res = analyze(data.rewards, W, scores=data.scores[..., d], n_boot=10, population_checks=False)
            ref = res.realized_na if mode == "na" else res.realized_an
            np.testing.assert_allclose(mine[:, d], ref, rtol=1e-10)


def test_reshuffle_closed_form_equals_permutation_average():
    rng = np.random.default_rng(1)
    r = rng.integers(0, 3, size=(1, 1, 5, 3)).astype(float)
    r[..., 0] = [0, 1, 1, 0, 2]
    g = rng.standard_normal((1, 1, 5, 2))
    for mode in ("na", "an"):
        t = group_terms(r, g, W, mode)
        A = t["A"][0, 0]
        vals = np.array([[(A * g[0, 0, list(p), d]).mean() for d in range(2)]
                         for p in itertools.permutations(range(5))])
        np.testing.assert_allclose(vals.mean(axis=0), 0.0, atol=1e-12)
        np.testing.assert_allclose((vals**2).mean(axis=0), t["shuffle"][0, 0], rtol=1e-10)


def test_reshuffle_expected_variance_across_seeds_monte_carlo():
    data = _gaussian(3, 4, 6, 1, seed=2, dependent=2.0)
    t = group_terms(data.rewards, data.scores, W, "na")
    exact = t["shuffle"].mean(axis=1)[:, 0]
    rng = np.random.default_rng(3)
    n = 4000
    acc = np.zeros((n, 3))
    for i in range(n):
        gs = reshuffle_within_groups(data.scores, rng)
        acc[i] = group_terms(data.rewards, gs, W, "na")["ghat"].var(axis=1, ddof=1)[:, 0]
    se = acc.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(acc.mean(axis=0) - exact) < 4 * se)


def test_reshuffle_keeps_each_groups_scores():
    g = np.random.default_rng(0).standard_normal((2, 3, 5, 2))
    gs = reshuffle_within_groups(g, 0)
    np.testing.assert_allclose(np.sort(gs, axis=2), np.sort(g, axis=2))
    assert not np.allclose(gs, g)
    # one permutation per rollout, shared by the directions
    j = np.argwhere(gs[0, 0, :, 0][:, None] == g[0, 0, :, 0][None, :])
    np.testing.assert_allclose(gs[0, 0, j[:, 0], 1], g[0, 0, j[:, 1], 1])


def test_independent_scores_give_no_dependence_gap():
    """g independent of the rewards: real and reshuffled agree, NA's ratio is E[w'C_hat w] / w'Cw."""
    data = _gaussian(200, 8, 32, 2, seed=4)
    out = analyze_real_scores(data, W, m_grid=(8, 32), n_boot=400)
    dec = out["decomposition"].set_index(["m", "mode"])
    for m in (8, 32):
        row = dec.loc[(m, "NA")]
        assert row["gap_lo"] < 0 < row["gap_hi"]
        assert abs(row["kappa"]) < 0.05
        assert row["frac_degenerate"] == 0.0
    ratios = out["ratios"].set_index(["m", "mode", "control"])
    # the reshuffled NA ratio is E[w'C_hat w] / w'Cw: off by O(1/m) (here above 1, as the
    # negative correlations shrink towards 0), and the offset shrinks with m
    off = [abs(ratios.loc[(m, "NA", "reshuffled"), "ratio"] - 1) for m in (8, 32)]
    assert off[1] < off[0] and off[1] < 0.01
    for m in (8, 32):
        assert ratios.loc[(m, "NA", "reshuffled"), "ratio"] == pytest.approx(dec.loc[(m, "NA"), "mean_A2_over_wCw"],
                                                                            rel=0.01)
        # AN: mean_j A_j^2 = 1 in every group, so its ratio to the NA law is 1 / w'Cw
        assert ratios.loc[(m, "AN", "reshuffled"), "ratio"] == pytest.approx(1 / (W @ C3 @ W), rel=0.02)
    lo, hi = ratios.loc[(32, "NA", "real"), ["lo", "hi"]]
    assert lo < ratios.loc[(32, "NA", "reshuffled"), "ratio"] < hi


def test_score_reward_dependence_is_detected():
    """Scores whose size grows with |z_0| make A^2 and g^2 covary: real > reshuffled."""
    data = _gaussian(150, 8, 16, 2, seed=5, dependent=3.0)
    out = analyze_real_scores(data, W, m_grid=(16,), n_boot=400)
    row = out["decomposition"].iloc[0]
    assert row["mode"] == "NA"
    assert row["kappa"] > 0.1
    assert row["gap_lo"] > 0
    assert row["ratio_diagonal"] > row["ratio_reshuffled"]


def test_degenerate_groups_are_counted():
    rng = np.random.default_rng(6)
    P, K, M = 40, 6, 8
    r = np.stack([rng.random((P, K, M)) < 0.08, rng.standard_normal((P, K, M)), rng.random((P, K, M)) < 0.5],
                 axis=-1).astype(float)
    data = RealScoreData(r, rng.standard_normal((P, K, M, 1)), np.full((P, K, M), 5))
    out = analyze_real_scores(data, W, m_grid=(4, 8), n_boot=100)
    dec = out["decomposition"].set_index(["m", "mode"])
    const0 = (r[:, :, :4, 0].max(axis=-1) == r[:, :, :4, 0].min(axis=-1))
    const2 = (r[:, :, :4, 2].max(axis=-1) == r[:, :, :4, 2].min(axis=-1))
    assert dec.loc[(4, "NA"), "frac_degenerate"] == pytest.approx(float((const0 | const2).mean()))
    assert dec.loc[(4, "NA"), "frac_degenerate"] > dec.loc[(8, "NA"), "frac_degenerate"] > 0
    # degenerate groups drop whole channels: they carry most of NA's shortfall
    assert dec.loc[(4, "NA"), "shortfall_share_degenerate"] > 0.5
    assert dec.loc[(4, "NA"), "ratio_reshuffled_nondegenerate"] > dec.loc[(4, "NA"), "ratio_reshuffled"]


def test_outputs_and_figure(tmp_path):
    data = _gaussian(10, 4, 8, 2, seed=7)
    out = analyze_real_scores(data, W, m_grid=(4, 8), n_boot=50, normalize="mean")
    assert set(out) == {"ratios", "decomposition", "per_direction", "score_checks"}
    assert len(out["ratios"]) == 2 * 2 * 2
    assert len(out["per_direction"]) == 2 * 2 * 2 * 2
    assert (out["ratios"]["lo"] <= out["ratios"]["ratio"]).all()
    assert (out["ratios"]["ratio"] <= out["ratios"]["hi"]).all()
    fig = plot_ratios(out["ratios"], path=tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 0
    assert fig.axes[0].get_xlabel() == "group size m"


def test_save_load_roundtrip(tmp_path):
    data = _gaussian(3, 2, 4, 2, seed=8)
    data.meta = {"model": "x", "K": 2}
    back = RealScoreData.load(data.save(tmp_path / "d.npz"))
    np.testing.assert_array_equal(back.scores, data.scores)
    np.testing.assert_array_equal(back.rewards, data.rewards)
    assert back.meta == data.meta and back.channel_names == data.channel_names
    np.testing.assert_allclose(back.g("mean"), data.scores / 10)


def test_bad_input():
    data = _gaussian(3, 2, 4, 1, seed=9)
    with pytest.raises(ValueError, match="m must be in"):
        analyze_real_scores(data, W, m_grid=(8,))
    with pytest.raises(ValueError, match="normalize"):
        analyze_real_scores(data, W, m_grid=(4,), normalize="tokens")
    with pytest.raises(ValueError, match="scores must have shape"):
        RealScoreData(data.rewards, data.scores[:, :, :3], data.n_tokens)
    bad = data.scores.copy()
    bad[1, 0, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"\(1, 0, 2, 0\)"):
        RealScoreData(data.rewards, bad, data.n_tokens)
    with pytest.raises(ValueError, match="K >= 2"):
        RealScoreData(data.rewards[:, :1], data.scores[:, :1], data.n_tokens[:, :1])


def test_collect_smoke(tmp_path):
    """End to end on a random tiny LM: shapes, token counts, and scores equal to the naive reference."""
    from _tiny_lm import build_tiny_lm
    from transformers import AutoModelForCausalLM

    from mrgrpo.corpus.real_scores import collect
    from mrgrpo.lm.scores import score_projections_naive

    d = build_tiny_lm(tmp_path / "lm", hidden=32, layers=2)
    data = collect(d, n_prompts=2, K=2, m_max=3, n_directions=2, max_new_tokens=6, L0=4, progress=False)
    assert data.rewards.shape == (2, 2, 3, 3) and data.scores.shape == (2, 2, 3, 2)
    assert data.channel_names == ("correctness", "length", "format")
    assert np.all((data.n_tokens >= 1) & (data.n_tokens <= 6))
    # recompute the first group's scores with the per-sample backward reference
    model = AutoModelForCausalLM.from_pretrained(d).eval()
    from mrgrpo.corpus.hf import HFBackend
    from mrgrpo.tasks.registry import task_setup

    be = HFBackend(d, None, max_new_tokens=6, progress=False)
    setup = task_setup("mini-math", be.tokenizer, n_train=0, n_eval=2, seed=0, L0=4)
    be.set_reward_fn(setup.reward_fn)
    grp = be.generate_groups(setup.eval_prompts[:1], 3, [0])[0]
    np.testing.assert_allclose(grp.rewards, data.rewards[0, 0])
    assert [len(t) for t in grp.tokens] == data.n_tokens[0, 0].tolist()
    ref = score_projections_naive(model, None, [grp.prompt_ids] * 3, grp.tokens, directions=2, seed=0, eos=False)
    np.testing.assert_allclose(data.scores[0, 0], ref, rtol=1e-4, atol=1e-6 * np.abs(ref).max())


def test_collect_scores_the_sampling_temperature(tmp_path):
    """collect passes its temperature to the scores and stores it; T = 0 is refused before any model loads."""
    from _tiny_lm import build_tiny_lm
    from transformers import AutoModelForCausalLM

    from mrgrpo.corpus.hf import HFBackend
    from mrgrpo.corpus.real_scores import collect
    from mrgrpo.lm.scores import score_projections_naive
    from mrgrpo.tasks.registry import task_setup

    with pytest.raises(ValueError, match="greedy"):
        collect(tmp_path / "no-such-model", temperature=0, progress=False)
    d = build_tiny_lm(tmp_path / "lm", hidden=32, layers=2)
    data = collect(d, n_prompts=1, K=2, m_max=3, n_directions=2, max_new_tokens=6, L0=4, temperature=0.7,
                   progress=False)
    assert data.meta["temperature"] == 0.7
    assert RealScoreData.load(data.save(tmp_path / "d.npz")).meta["temperature"] == 0.7
    be = HFBackend(d, None, max_new_tokens=6, temperature=0.7, progress=False)
    setup = task_setup("mini-math", be.tokenizer, n_train=0, n_eval=1, seed=0, L0=4)
    be.set_reward_fn(setup.reward_fn)
    grp = be.generate_groups(setup.eval_prompts, 3, [0])[0]
    model = AutoModelForCausalLM.from_pretrained(d).eval()
    kw = dict(directions=2, seed=0, eos=False)
    ref = score_projections_naive(model, None, [grp.prompt_ids] * 3, grp.tokens, temperature=0.7, **kw)
    np.testing.assert_allclose(data.scores[0, 0], ref, rtol=1e-4, atol=1e-6 * np.abs(ref).max())
    at_one = score_projections_naive(model, None, [grp.prompt_ids] * 3, grp.tokens, **kw)
    assert np.abs(data.scores[0, 0] - at_one).max() > 1e-3 * np.abs(at_one).max()


# ----------------------------------------------------------------------------- verdicts
def test_minimum_detectable_effect_has_the_stated_power():
    from mrgrpo.analysis.real_scores import minimum_detectable_effect

    assert minimum_detectable_effect(1.0) == pytest.approx(1.959964 + 0.841621, abs=1e-5)
    np.testing.assert_allclose(minimum_detectable_effect(np.array([0.1, 0.2])), [0.28016, 0.56032], atol=1e-4)
    assert minimum_detectable_effect(0.1, alpha=0.01, power=0.9) == pytest.approx(0.1 * (2.575829 + 1.281552),
                                                                                  abs=1e-6)
    # a true effect equal to the MDE is detected by a two-sided 5% z-test 80% of the time
    rng = np.random.default_rng(0)
    se = 0.3
    est = minimum_detectable_effect(se) + se * rng.standard_normal(200_000)
    assert np.mean(np.abs(est / se) > 1.959964) == pytest.approx(0.80, abs=0.005)
    for kw in ({"alpha": 0.0}, {"power": 1.0}):
        with pytest.raises(ValueError, match="alpha|power"):
            minimum_detectable_effect(0.1, **kw)
    with pytest.raises(ValueError, match="se must be"):
        minimum_detectable_effect(-0.1)


def test_gap_standard_error_matches_the_spread_across_runs():
    """gap_se (bootstrap over 16 prompts) against the gap's SD over 60 independent runs of the same size."""
    gaps, ses = [], []
    for r in range(60):
        out = analyze_real_scores(_gaussian(16, 4, 16, 2, seed=100 + r), W, m_grid=(16,), n_boot=400, boot_seed=r)
        row = out["decomposition"].set_index("mode").loc["NA"]
        gaps.append(row["dependence_gap"])
        ses.append(row["gap_se"])
        assert row["gap_mde"] == pytest.approx(2.801585 * row["gap_se"], rel=1e-5)
    ratio = np.sqrt(np.mean(np.square(ses))) / np.std(gaps, ddof=1)
    assert 0.8 < ratio < 1.25  # the SD of 60 draws is known to about 9%


def test_score_mean_check_is_computed_from_z():
    from mrgrpo.analysis.real_scores import score_mean_check

    ok = score_mean_check([0.4, -1.3], n_rollouts=1024)
    assert ok.passes and ok.bound == pytest.approx(2.807, abs=1e-3)
    assert ok.sentence.startswith("The scores pass") and "1.30 standard errors" in ok.sentence
    assert "1024 rollouts" in ok.sentence and "mean zero" in ok.clause
    bad = score_mean_check([-3.64, -4.52], n_rollouts=1024)  # the stored SmolLM2 run before the fix
    assert not bad.passes
    assert bad.sentence.startswith("The scores fail") and "-4.52 standard errors" in bad.sentence
    assert "direction 1" in bad.sentence and "does not hold" in bad.sentence
    assert "do not have mean zero" in bad.clause
    # the verdict flips exactly at the stated level, in either sign
    for z, passes in ((2.80, True), (2.81, False), (-2.81, False)):
        assert score_mean_check([0.0, z], n_rollouts=100).passes is passes
    one = score_mean_check([2.5], n_rollouts=100)  # one direction: the level is 2.58
    assert one.passes and "2.58" in one.sentence
    with pytest.raises(ValueError, match="finite"):
        score_mean_check([np.nan], n_rollouts=10)


def test_dependence_sentence_states_what_the_run_can_detect():
    from mrgrpo.analysis.real_scores import dependence_sentence

    ms = [4, 8, 16, 32]
    gap, mde = [0.3, 0.05, -0.02, 0.01], [0.20, 0.25, 0.28, 0.31]
    lo, hi = [0.1, -0.1, -0.2, -0.2], [0.5, 0.2, 0.15, 0.2]
    s = dependence_sentence(gap, lo, hi, mde, ms)
    assert "resolved (above 0) at 1 of 4 group sizes (m = 4)" in s
    assert "contains 0 at 3 of 4 group sizes (m = 8, 16 and 32)" in s
    assert "between 0.25 (m = 8) and 0.31 (m = 32)" in s and "80% power" in s
    assert "not make it small" in s and "ruled out" in s
    # perturb: every interval excludes 0 -> nothing about undetectable gaps
    s_all = dependence_sentence([0.3, -0.4, 0.3, 0.3], [0.1, -0.6, 0.1, 0.1], [0.5, -0.2, 0.5, 0.5], mde, ms)
    assert "above 0 and below 0" in s_all and "all 4 group sizes" in s_all and "ruled out" not in s_all
    # perturb: none resolved -> the sentence is only the detectable size; the MDE moves the number
    s_none = dependence_sentence([0.0], [-0.1], [0.1], [0.42], [8])
    assert "resolved" not in s_none and "0.42 (m = 8)" in s_none
    assert "0.84 (m = 8)" in dependence_sentence([0.0], [-0.1], [0.1], [0.84], [8])
    with pytest.raises(ValueError, match="one entry per group size"):
        dependence_sentence([0.1], [0.0], [0.2], [0.1, 0.2], [4])
