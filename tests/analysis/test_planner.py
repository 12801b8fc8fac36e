"""The reward-design planner: ranks designs by w'Cw with CIs and sizes their groups."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mrgrpo.analysis.planner import RewardDesign, plan_designs
from mrgrpo.corpus import MockBackend, run_corpus

C = np.array([[1.0, 0.6, -0.4], [0.6, 1.0, 0.0], [-0.4, 0.0, 1.0]])


@pytest.fixture(scope="module")
def corpus():
    b = MockBackend(C=C, reward_names=("acc", "len", "fmt"), seed=0)
    return run_corpus(b, [(f"p{i}", "0") for i in range(40)], m_grid=[8], K_seeds=40, seed=0)


def test_planner_ranks_and_sizes(corpus):
    designs = [RewardDesign("acc+len", ("acc", "len"), (1.0, 1.0)),
               RewardDesign("acc+fmt", ("acc", "fmt"), (1.0, 1.0)),
               RewardDesign("acc only", ("acc",), (1.0,)),
               RewardDesign("all", (0, 1, 2), (1.0, 1.0, 1.0))]
    plan = plan_designs(corpus, designs, reference="acc+fmt", m_ref=8, n_boot=1000)
    t = plan.table
    truth = {"acc+len": 3.2, "acc+fmt": 1.2, "acc only": 1.0, "all": 3.0 + 2 * (0.6 - 0.4)}
    assert list(t["design"]) == sorted(truth, key=truth.get)  # quietest first
    for _, row in t.iterrows():
        assert row["wCw_lo"] <= truth[row["design"]] <= row["wCw_hi"], row.to_dict()
        assert row["wCw_hi"] - row["wCw_lo"] < 0.3
    ref = t.set_index("design").loc["acc+fmt"]
    assert ref["vs_reference"] == pytest.approx(1.0) and ref["m_needed"] == 8
    row = t.set_index("design").loc["acc+len"]
    assert row["m_needed"] == math.ceil(8 * row["vs_reference"])
    assert row["m_needed_lo"] <= math.ceil(8 * 3.2 / 1.2) <= row["m_needed_hi"]
    assert "ranked by w'Cw" in str(plan)


def test_planner_target_and_mapping(corpus):
    plan = plan_designs(corpus, {"a": (("acc",), (1.0,)), "b": (("acc", "len"), (1.0, 1.0))},
                        target=0.5, n_boot=200)
    t = plan.table.set_index("design")
    assert plan.reference == "a" and t.loc["a", "m_needed"] == 16  # half the noise: twice the rollouts


def test_planner_bad_input(corpus):
    with pytest.raises(ValueError, match="unknown channel 'speed'"):
        plan_designs(corpus, [RewardDesign("x", ("speed",), (1.0,))])
    with pytest.raises(ValueError, match="2 channels but 1 weights"):
        RewardDesign("x", ("acc", "len"), (1.0,))
    with pytest.raises(ValueError, match="reference"):
        plan_designs(corpus, [RewardDesign("x", ("acc",), (1.0,))], reference="y")
    with pytest.raises(ValueError, match="out of range"):
        plan_designs(corpus, [RewardDesign("x", (5,), (1.0,))])
    with pytest.raises(ValueError, match="distinct"):
        plan_designs(corpus, [RewardDesign("x", ("acc",), (1.0,))] * 2)


def test_unit_diagonal_rescales_the_papers_pooled_matrix():
    from mrgrpo.analysis.planner import unit_diagonal

    pooled = np.array([[0.79, -0.64, 0.28], [-0.64, 0.84, -0.10], [0.28, -0.10, 0.87]])  # the paper's, as printed
    C = unit_diagonal(pooled)
    assert np.allclose(np.diag(C), 1.0) and np.allclose(C, C.T)
    assert C[0, 1] == pytest.approx(-0.64 / np.sqrt(0.79 * 0.84)) and round(C[0, 1], 2) == -0.79
    with pytest.raises(ValueError, match="positive diagonal"):
        unit_diagonal(np.array([[0.0, 0.1], [0.1, 1.0]]))
    with pytest.raises(ValueError, match="symmetric"):
        unit_diagonal(np.array([[1.0, 0.2], [0.1, 1.0]]))
