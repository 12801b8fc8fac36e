"""Theorem 3 with real scores: the analysis on synthetic data with known answers, and a smoke run."""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

from mrgrpo.analysis.real_scores import analyze_real_scores, group_terms, plot_ratios, reshuffle_within_groups
from mrgrpo.corpus.real_scores import RealScoreData

sys.path.insert(0, str(Path(__file__).parent))

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
