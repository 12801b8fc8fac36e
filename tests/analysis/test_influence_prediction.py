"""Proposition 1 predicted from rollouts (mrgrpo.analysis.influence.influence_prediction) and influence shares."""
from __future__ import annotations

import numpy as np
import pytest

from mrgrpo.analysis.influence import influence_prediction, influence_shares
from mrgrpo.core.theory import influence_an, influence_na


def test_prediction_recovers_the_law_at_the_population_scales_and_correlation():
    C = np.array([[1.0, 0.5, -0.3], [0.5, 1.0, 0.0], [-0.3, 0.0, 1.0]])
    sigma = np.array([1.0, 3.0, 0.5])
    w = np.array([1.0, 1.0, 0.5])
    rng = np.random.default_rng(0)
    z = rng.standard_normal((60, 8, 16, 3)) @ np.linalg.cholesky(C).T
    rewards = 2.0 + z * sigma
    pred = influence_prediction(rewards, w)
    assert pred["NA"] == pytest.approx(influence_na(w, C), abs=0.05)
    assert pred["AN"] == pytest.approx(influence_an(w, sigma, C), abs=0.05)
    # the scale of a channel moves AN's prediction and leaves NA's alone
    narrow = np.array([1.0, 0.3, 0.5])
    other = influence_prediction(2.0 + z * narrow, w)
    assert other["NA"] == pytest.approx(pred["NA"], abs=1e-12)
    assert other["AN"] == pytest.approx(influence_an(w, narrow, C), abs=0.05)
    assert other["AN"][1] < pred["AN"][1] - 0.2


def test_a_constant_channel_gets_no_weight_in_its_prompt():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 2, 8, 2))
    x[..., 1] = 0.0  # channel 1 never varies
    pred = influence_prediction(x, [1.0, 1.0])
    assert pred["NA"] == pytest.approx([1.0, 0.0], abs=1e-12)
    with pytest.raises(ValueError, match="predicts nothing"):
        influence_prediction(np.zeros((2, 2, 4, 2)), [1.0, 1.0])


def test_shares_sum_to_one_and_refuse_a_zero_total():
    assert influence_shares([1.0, 3.0]) == pytest.approx([0.25, 0.75])
    assert influence_shares([[1.0, 1.0], [2.0, 6.0]])[1] == pytest.approx([0.25, 0.75])
    with pytest.raises(ValueError, match="non-zero total"):
        influence_shares([1.0, -1.0])
