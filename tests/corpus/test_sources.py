"""``mrgrpo.corpus.sources.load_rollouts``: every Tier-2 source gives a corpus the analysis can pack."""
from __future__ import annotations

import numpy as np
import pytest

from mrgrpo.corpus import pack_for_analysis
from mrgrpo.corpus.sources import PAPER_POOLED_C, SOURCES, describe_source, load_rollouts
from mrgrpo.tiny import DEFAULT_CORPUS_DIR, DEFAULT_MODEL_DIR


def test_stored_corpus_npz_and_parquet_agree():
    a = load_rollouts("corpus", corpus_path=DEFAULT_CORPUS_DIR / "corpus.npz")
    b = load_rollouts("corpus", corpus_path=DEFAULT_CORPUS_DIR / "corpus.parquet")
    assert a.m_grid == b.m_grid and a.reward_names == b.reward_names == ("correctness", "length", "format")
    m = a.m_grid[0]
    np.testing.assert_allclose(pack_for_analysis(a, m), pack_for_analysis(b, m))


def test_mock_has_the_paper_pooled_correlation():
    corpus = load_rollouts("mock", n_prompts=40, K=8, m_grid=[4, 32], seed=0)
    x = pack_for_analysis(corpus, 32)
    assert x.shape == (40, 8, 32, 3)
    # pooled over 40 * 8 * 32 = 10240 rollouts, a correlation's standard error is <= 0.01
    C = np.corrcoef(x.reshape(-1, 3), rowvar=False)
    np.testing.assert_allclose(C, PAPER_POOLED_C, atol=0.04)
    # groups of 4 are the leading prefixes of the groups of 32
    np.testing.assert_array_equal(pack_for_analysis(corpus, 4), x[:, :, :4])


def test_generate_with_the_tiny_policy_uses_mini_math():
    corpus = load_rollouts("generate", model=DEFAULT_MODEL_DIR, n_prompts=3, K=2, m_grid=[2, 4], seed=0,
                           progress=False)
    x = pack_for_analysis(corpus, 4)
    assert x.shape == (3, 2, 4, 3) and corpus.reward_names == ("correctness", "length", "format")
    assert set(np.unique(x[..., 0])) <= {0.0, 1.0}
    assert all(p["id"].startswith("mm-") for p in corpus.prompts)
    assert describe_source("generate", model=DEFAULT_MODEL_DIR).endswith("tiny-math on mini-math")


def test_bad_sources_fail_clearly():
    assert set(SOURCES) == {"corpus", "generate", "released", "mock"}
    with pytest.raises(ValueError, match="unknown source 'file'"):
        load_rollouts("file")
    with pytest.raises(ValueError, match="needs corpus_path"):
        load_rollouts("corpus")
    with pytest.raises(ValueError, match="needs model"):
        load_rollouts("generate")
    with pytest.raises(ValueError, match="math task with gold answers"):
        load_rollouts("generate", model=DEFAULT_MODEL_DIR, task="fintech")
    assert describe_source("corpus", corpus_path="x/corpus.npz") == "a stored corpus (corpus.npz)"
