"""``mrgrpo.analysis.corpus_checks``: one corpus's Tier-2 checks as numbers, several corpora side by side."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mrgrpo.analysis import analyze
from mrgrpo.analysis.corpus_checks import Tier2Checks, side_by_side, tier2_checks


def _table(rows):
    return pd.DataFrame(rows, columns=["check", "quantity", "m", "value"])


def test_rows_only_a_later_corpus_has_join_their_checks_block():
    tiny = _table([("corpus", "mean correctness", "", "0.34"), ("floor", "verdict", 4, "agrees"),
                   ("Prop 4", "p_a", "", "0.34")])
    smol = _table([("corpus", "mean compliance", "", "0.95"), ("floor", "verdict", 4, "fails"),
                   ("Prop 4", "p_a", "", "0.95"), ("Prop 4", "p_b (>= 0.25)", "", "0.38")])
    both = side_by_side({"tiny": tiny, "smol": smol})
    assert [k[0] for k in both.index] == ["corpus", "corpus", "floor", "Prop 4", "Prop 4"]
    assert list(both.index.get_level_values("quantity")) == ["mean correctness", "mean compliance", "verdict", "p_a",
                                                             "p_b (>= 0.25)"]
    assert both.loc[("corpus", "mean compliance", ""), "tiny"] == "n/a"
    assert both.loc[("floor", "verdict", 4)].tolist() == ["agrees", "fails"]


def _rewards(P=12, K=6, M=8, seed=0):
    """(P, K, M, 3): a binary gate (channel 0), a continuous channel and a binary format channel."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.2, 0.8, size=(P, 1, 1))
    gate = (rng.uniform(size=(P, K, M)) < p).astype(float)
    length = 0.5 * gate + rng.normal(size=(P, K, M))
    fmt_ = (rng.uniform(size=(P, K, M)) < 0.7).astype(float)
    return np.stack([gate, length, fmt_], axis=-1)


def test_tier2_checks_returns_numbers_the_chapter_formats():
    x = _rewards()
    tensors = {4: x[:, :, :4], 8: x}
    w = np.array([1.0, 1.0, 0.5])
    c = tier2_checks(tensors, w, channel_names=["correctness", "length", "format"], cond=1, threshold=0.0,
                     n_boot=200)
    assert isinstance(c, Tier2Checks) and (c.P, c.K, c.m_max, c.prop4_m) == (12, 6, 8, 8)
    assert c.channel_means == pytest.approx(x.mean(axis=(0, 1, 2)))
    assert c.varies == pytest.approx((np.ptp(x, axis=2) > 0).mean(axis=(0, 1)))
    b = c.by_m
    assert list(b.index) == [4, 8] and all(b[col].dtype.kind == "f" for col in b.columns)
    assert ((b.ratio_na_lo <= b.ratio_na) & (b.ratio_na <= b.ratio_na_hi)).all()
    assert (b.expected_ratio == 5 / 6).all() and (b.identity_max_abs < 1e-10).all()
    f_deg = (np.ptp(x[:, :, :4] @ w, axis=-1) == 0).mean()
    paper4 = analyze(x[:, :, :4], w, score_seed=12345, mse_estimator="paper", n_boot=200)
    assert b.loc[4, "ratio_na"] == pytest.approx(paper4.ratio_na)
    assert b.loc[4, "ratio_an"] == pytest.approx(paper4.ratio_an)
    assert b.loc[4, "ratio_an_formula"] == pytest.approx(5 / 6 * (1 - f_deg) / paper4.floor_sample)
    assert list(c.floor.index) == [4, 8] and c.floor.verdict.map(type).eq(str).all()
    assert c.floor.frac_degenerate.between(0, 1).all() and c.population_wCw > 0
    assert c.threshold == 0.0 and 0 < c.prop4.p_a < 1
    assert set(c.prop4_mse.columns) == {"none", "zero_fill", "subgroup"} and c.prop4_mse.to_numpy().dtype.kind == "f"
    with pytest.raises(ValueError, match="channel_names"):
        tier2_checks(tensors, w, channel_names=["a", "b"])
