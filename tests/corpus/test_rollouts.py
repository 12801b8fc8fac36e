"""Rollout corpora: Rollouts validation, MockBackend correlation and seeds, run_corpus, files, released loader."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mrgrpo.corpus import (Corpus, load_npz, load_parquet, save_npz, save_parquet, MockBackend, ReleasedDataUnavailable, Rollouts, load_released_rollouts,
                             pack_for_analysis, run_corpus)

FIXTURE = Path(__file__).parents[1] / "fixtures" / "released_rollouts_sample.parquet"
C3 = np.array([[1.0, 0.8, 0.3], [0.8, 1.0, -0.2], [0.3, -0.2, 1.0]])


def _corr(x):
    return np.corrcoef(x.reshape(-1, x.shape[-1]).T)


# ---------------------------------------------------------------- Rollouts
def test_rollouts_validates_shapes():
    r = Rollouts(0, 0, "q", "1", 7, 4, np.zeros((4, 3)))
    assert r.R == 3 and r.prefix(2).rewards.shape == (2, 3)
    with pytest.raises(ValueError, match="rows but m"):
        Rollouts(0, 0, "q", "1", 7, 5, np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"\(m, R\)"):
        Rollouts(0, 0, "q", "1", 7, 4, np.zeros(4))
    with pytest.raises(ValueError, match="raw_length"):
        Rollouts(0, 0, "q", "1", 7, 4, np.zeros((4, 3)), raw_length=np.zeros(3))
    with pytest.raises(ValueError, match="completions"):
        Rollouts(0, 0, "q", "1", 7, 4, np.zeros((4, 3)), completions=["a"])
    with pytest.raises(ValueError, match="int"):
        Rollouts(0, 0, "q", "1", 7, 4.0, np.zeros((4, 3)))


# ---------------------------------------------------------------- MockBackend
@pytest.mark.parametrize("p", [None, [0.5, 0.5]])
def test_mock_correlation_matches_request(p):
    """A requested +0.8 comes out as +0.8, for Gaussian and for Bernoulli(1/2) channels."""
    b = MockBackend(C=[[1, 0.8], [0.8, 1]], p=p)
    x = b.sample(np.random.default_rng(1), (200_000,))
    rho = _corr(x)[0, 1]
    se = (1 - 0.8**2) / np.sqrt(200_000) * 2  # generous SE of a correlation (binary inflates it)
    assert abs(rho - 0.8) < 5 * se, rho
    if p is not None:
        assert set(np.unique(x)) == {0.0, 1.0}
        assert b.latent_C[0, 1] > 0.9  # the copula needed a stronger latent correlation


def test_mock_mixed_marginals_and_three_channels():
    C = np.array([[1.0, 0.3, 0.3], [0.3, 1.0, -0.2], [0.3, -0.2, 1.0]])
    b = MockBackend(C=C, p=[0.3, None, 0.7], scale=[1.0, 2.0, 1.0], loc=[0, 5, 0])
    x = b.sample(np.random.default_rng(2), (300_000,))
    np.testing.assert_allclose(_corr(x), C, atol=0.01)
    mean, sd = b.population_moments()
    np.testing.assert_allclose(x.mean(0), mean, atol=0.02)
    np.testing.assert_allclose(x.std(0), sd, atol=0.02)


def test_reference_mock_flips_the_sign():
    """The reference package's mock turns a requested +0.8 (correctness, length) into about -0.65."""
    from multireward_grpo import generation as ref
    C = np.array([[1.0, 0.8, 0.0], [0.8, 1.0, 0.0], [0.0, 0.0, 1.0]])
    rb = ref.MockBackend(C=C)
    x = np.concatenate([rb.generate_for_prompt("p", "0", 64, seed=s).rewards for s in range(300)])
    assert _corr(x)[0, 1] < -0.5
    for p in (None, [0.5, 0.5, 0.8]):
        ours = MockBackend(C=C, p=p).sample(np.random.default_rng(0), (20_000,))
        assert abs(_corr(ours)[0, 1] - 0.8) < 0.03
    with pytest.raises(ValueError, match=r"attainable range is \[-0.7979, \+0.7979\]"):
        MockBackend(C=C, p=[0.5, None, 0.8])  # a binary and a Gaussian channel cannot reach 0.8


def test_mock_rejects_bad_requests():
    with pytest.raises(ValueError, match="not attainable"):
        MockBackend(C=[[1, 0.5], [0.5, 1]], p=[0.3, 0.7])  # max phi for these marginals is 0.43
    with pytest.raises(ValueError, match="semi-definite"):
        MockBackend(C=C3, p=[0.5, 0.5, None])  # latent matrix needed is not PSD
    with pytest.raises(ValueError, match="symmetric"):
        MockBackend(C=[[1, 0.5], [0.2, 1]])
    with pytest.raises(ValueError, match="unit diagonal"):
        MockBackend(C=[[2, 0], [0, 1]])
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        MockBackend(C=np.eye(2), p=[0.0, 0.5])
    with pytest.raises(ValueError, match="seed"):
        MockBackend(C=np.eye(2), seed=-1)


def test_mock_seeds_are_stable_across_processes():
    code = ("import numpy as np; from mrgrpo.corpus import MockBackend;"
            "g = MockBackend(C=np.eye(2), p=[0.4, None], seed=3).generate_groups("
            "[{'prompt': 'what is 2+2?', 'gold': '4'}], 4, [11]);"
            "print(repr(g[0].rewards.tolist()))")
    outs = set()
    for hashseed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hashseed)
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                check=True).stdout)
    assert len(outs) == 1
    here = MockBackend(C=np.eye(2), p=[0.4, None], seed=3).generate_groups([("what is 2+2?", "4")], 4, [11])
    assert outs.pop().strip() == repr(here[0].rewards.tolist())


# ---------------------------------------------------------------- run_corpus / pack
def test_run_corpus_and_pack():
    b = MockBackend(C=np.eye(3), p=[0.5, None, 0.8])
    prompts = [(f"p{i}", str(i)) for i in range(5)] + [{"prompt": "extra", "gold": "x", "topic": "t"}]
    c = run_corpus(b, prompts, m_grid=[8, 4], K_seeds=3, seed=1)
    assert c.m_grid == [4, 8] and c.n_prompts == 6 and c.K_seeds == 3
    t4, t8 = pack_for_analysis(c, 4), pack_for_analysis(c, 8)
    assert t4.shape == (6, 3, 4, 3) and t8.shape == (6, 3, 8, 3)
    assert not np.allclose(t4, t8[:, :, :4])  # independent groups per m
    g = [r for r in c.rollouts if r.m == 8 and r.prompt_idx == 2 and r.seed_idx == 1][0]
    np.testing.assert_array_equal(t8[2, 1], g.rewards)
    sub = run_corpus(b, prompts, m_grid=[4, 8], K_seeds=3, subsample_from_max=True, seed=1)
    np.testing.assert_array_equal(pack_for_analysis(sub, 4), pack_for_analysis(sub, 8)[:, :, :4])
    again = run_corpus(b, prompts, m_grid=[4, 8], K_seeds=3, subsample_from_max=True, seed=1)
    np.testing.assert_array_equal(pack_for_analysis(again, 8), pack_for_analysis(sub, 8))
    with pytest.raises(ValueError, match="no groups of size"):
        pack_for_analysis(c, 16)
    with pytest.raises(ValueError, match="m_grid"):
        run_corpus(b, prompts, m_grid=[1], K_seeds=2)
    with pytest.raises(ValueError, match="prompt"):
        run_corpus(b, [("only one",)], m_grid=[4], K_seeds=2)


def test_pack_reports_missing_groups():
    b = MockBackend(C=np.eye(2))
    c = run_corpus(b, [("a", "1"), ("b", "2")], m_grid=[4], K_seeds=2)
    c.rollouts = c.rollouts[:-1]
    with pytest.raises(ValueError, match="lacks 1 of its 4 groups"):
        pack_for_analysis(c, 4)


# ---------------------------------------------------------------- files
def _corpus(sub=True, names=None, completions=False):
    b = MockBackend(C=np.eye(3), p=[0.5, None, 0.8], reward_names=names)
    c = run_corpus(b, [(f"question {i}", str(i)) for i in range(4)], m_grid=[4, 8], K_seeds=3,
                   subsample_from_max=sub, seed=2)
    for r in c.rollouts:
        r.raw_length = np.arange(r.m, dtype=float)
        if completions:
            r.completions = [f"c{j}" for j in range(r.m)]
    return c


@pytest.mark.parametrize("sub", [True, False])
def test_parquet_round_trip(tmp_path, sub):
    c = _corpus(sub=sub, completions=True)
    path = save_parquet(c, tmp_path / "c.parquet")
    import pandas as pd

    df = pd.read_parquet(path)
    for col in ("model", "prompt_idx", "seed_idx", "rollout_idx", "group_size_m_max", "correctness", "length",
                "format", "raw_length", "question", "gold_answer", "gold_reasoning", "completion"):
        assert col in df.columns
    assert len(df) == (4 * 3 * 8 if sub else 4 * 3 * (4 + 8))
    back = load_parquet(path)
    assert back.m_grid == [4, 8] and back.reward_names == c.reward_names and back.subsample_from_max == sub
    for m in (4, 8):
        np.testing.assert_array_equal(pack_for_analysis(back, m), pack_for_analysis(c, m))
    g = back.groups(8)[0]
    assert g.completions == [f"c{j}" for j in range(8)] and g.prompt == "question 0" and g.gold == "0"


def test_parquet_other_channel_names(tmp_path):
    c = _corpus(names=("compliance", "model", "action"))  # "model" collides with a fixed column
    path = save_parquet(c, tmp_path / "f.parquet")
    import pandas as pd

    assert {"compliance", "reward_model", "action"} <= set(pd.read_parquet(path).columns)
    back = load_parquet(path)
    assert back.reward_names == ("compliance", "model", "action")
    np.testing.assert_array_equal(pack_for_analysis(back, 8), pack_for_analysis(c, 8))


def test_npz_round_trip(tmp_path):
    c = _corpus(sub=False)
    path = save_npz(c, tmp_path / "c.npz")
    z = np.load(path)
    assert z["rewards_m8"].shape == (4, 3, 8, 3) and z["raw_length_m4"].shape == (4, 3, 4)
    back = load_npz(path)
    for m in (4, 8):
        np.testing.assert_array_equal(pack_for_analysis(back, m), pack_for_analysis(c, m))
    assert back.reward_names == c.reward_names and back.rollouts[0].prompt == "question 0"
    np.savez(tmp_path / "bad.npz", other=np.zeros(3))
    with pytest.raises(ValueError, match="rewards_m"):
        load_npz(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError):
        load_npz(tmp_path / "missing.npz")


# ---------------------------------------------------------------- released rollouts
def test_released_fixture_loads():
    c = load_released_rollouts("1.5b", local_path=FIXTURE)
    assert (c.n_prompts, c.K_seeds, c.R) == (3, 4, 3)
    assert c.reward_names == ("correctness", "length", "format") and c.m_grid == [4, 8]
    t8, t4 = pack_for_analysis(c, 8), pack_for_analysis(c, 4)
    assert t8.shape == (3, 4, 8, 3)
    np.testing.assert_array_equal(t4, t8[:, :, :4])  # smaller m are prefixes
    g = c.groups(8)[0]
    assert g.prompt.startswith("Natalia") and g.gold == "72" and g.completions is not None
    assert c.prompts[0]["gold_reasoning"].startswith("Natalia sold")
    assert c.backend_name == "Qwen2.5-1.5B-Instruct"
    _, rl = pack_for_analysis(c, 8, return_raw_length=True)
    assert np.isfinite(rl).all()


def test_released_fixture_as_directory(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.parquet").write_bytes(FIXTURE.read_bytes())
    assert load_released_rollouts("7b", local_path=tmp_path).n_prompts == 3


def test_released_missing_local_path_says_how(tmp_path):
    with pytest.raises(ReleasedDataUnavailable, match="huggingface-cli download eagle0504/multireward-grpo-gsm8k-rewards"):
        load_released_rollouts("1.5b", local_path=tmp_path / "nope.parquet")
    with pytest.raises(ValueError, match="which"):
        load_released_rollouts("13b")


def test_released_offline_fails_fast(tmp_path):
    code = ("from mrgrpo.corpus import load_released_rollouts\n"
            "try:\n    load_released_rollouts('7b')\n"
            "except FileNotFoundError as e:\n    print('ERR', type(e).__name__, e)\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert time.perf_counter() - t0 < 60
    assert "ERR ReleasedDataUnavailable" in out and "HF_HUB_OFFLINE" in out
    assert "eagle0504/multireward-grpo-gsm8k-rewards-qwen2.5-7b" in out and "local_path" in out
