"""``mrgrpo.analysis.held_out``: the Tier-3 findings on held-out replies, with intervals that can fail."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mrgrpo.analysis.held_out import (aggregate_finding, allocation_finding, collapse_finding, mode_difference,
                                      prompt_means, reply_lengths)

CH = ["compliance", "politeness", "action"]
W = [1.0, 1.0, 0.5]


def make_samples(shift_an=(0.0, 0.0, 0.0), empty_single=0.0, P=60, seeds=(0, 1), seed=0):
    """Replies of four modes on the same P prompts; AN's channels shifted by ``shift_an``."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.2, 0.8, size=(P, 3))
    rows = []
    for mode, shift, empty in [("untrained", (0, 0, 0), 0.0), ("NA", (0, 0, 0), 0.0), ("AN", shift_an, 0.0),
                               ("single-reward", (0, 0, 0), empty_single)]:
        for s in seeds if mode != "untrained" else seeds[:1]:
            r = np.clip(base + np.asarray(shift) + rng.normal(0, 0.05, size=(P, 3)), 0, 1)
            is_empty = rng.random(P) < empty
            for p in range(P):
                rows.append({"mode": mode, "seed": s, "step": 20, "prompt": f"p{p:03d}",
                             "completion": "" if is_empty[p] else "a reply " * int(rng.integers(3, 12)),
                             **dict(zip(CH, r[p])), "n_tokens": 1 if is_empty[p] else int(rng.integers(10, 60)),
                             "ended": True})
    return pd.DataFrame(rows)


def test_prompt_means_average_the_seeds():
    s = make_samples()
    m = prompt_means(s, "NA", CH)
    assert m.shape == (60, 3)
    first = s[(s["mode"] == "NA") & (s["prompt"] == "p000")][CH].mean()
    np.testing.assert_allclose(m.iloc[0].to_numpy(), first.to_numpy())
    with pytest.raises(ValueError, match="no evaluated replies"):
        prompt_means(s, "XX", CH)


def test_no_difference_is_found_when_there_is_none_and_found_when_there_is():
    same = mode_difference(make_samples(), "NA", "AN", CH, W)
    assert same.loc["aggregate", "lo"] <= 0 <= same.loc["aggregate", "hi"]
    assert aggregate_finding(same)[0]
    shifted = mode_difference(make_samples(shift_an=(0.0, 0.1, 0.1)), "NA", "AN", CH, W)
    assert shifted.loc["aggregate", "difference"] == pytest.approx(0.15, abs=0.03)
    assert shifted.loc["aggregate", "lo"] > 0
    shown, text = aggregate_finding(shifted)
    assert not shown and "AN is higher" in text


def test_allocation_verdict_follows_its_intervals():
    served = mode_difference(make_samples(shift_an=(0.0, -0.1, 0.2)), "NA", "AN", CH, W)
    shown, text = allocation_finding(served, "action", "politeness")
    assert shown and "more on action and less on politeness" in text
    only_up = mode_difference(make_samples(shift_an=(0.0, 0.0, 0.2)), "NA", "AN", CH, W)
    shown, text = allocation_finding(only_up, "action", "politeness")
    assert not shown and "not detectably less" in text
    flat = mode_difference(make_samples(), "NA", "AN", CH, W)
    assert allocation_finding(flat, "action", "politeness") == (False, allocation_finding(flat, "action",
                                                                                          "politeness")[1])
    assert "no detectable shift" in allocation_finding(flat, "action", "politeness")[1]


def test_collapse_needs_most_replies_empty():
    collapsed = reply_lengths(make_samples(empty_single=0.9))
    assert collapsed.loc["single-reward", "empty share"] > 0.8
    assert collapse_finding(collapsed)[0]
    fine = reply_lengths(make_samples(empty_single=0.0))
    shown, text = collapse_finding(fine)
    assert not shown and "no collapse" in text and fine.loc["untrained", "empty share"] == 0.0
    half = reply_lengths(make_samples(empty_single=0.5))
    assert not collapse_finding(half)[0]  # about half empty: not "most", on the interval


def test_mode_difference_refuses_prompts_that_differ():
    s = make_samples()
    s.loc[(s["mode"] == "AN") & (s["prompt"] == "p000"), "prompt"] = "other"
    with pytest.raises(ValueError, match="same prompts"):
        mode_difference(s, "NA", "AN", CH, W)


def test_seed_prompt_scores_pair_within_seed_and_share_the_untrained_policy():
    from mrgrpo.analysis.held_out import seed_prompt_scores

    s = make_samples(P=10, seeds=(0, 1, 2))
    sc = seed_prompt_scores(s, "NA", "untrained", CH, W)
    assert sc["seeds"] == [0, 1, 2]
    A, B = sc["aggregate"]
    assert A.shape == B.shape == (3, 10)
    np.testing.assert_allclose(B[0], B[2])  # one untrained evaluation, matched to every seed
    na1 = s[(s["mode"] == "NA") & (s["seed"] == 1)].sort_values("prompt")
    np.testing.assert_allclose(A[1], na1[CH].to_numpy() @ np.asarray(W))
    with pytest.raises(ValueError, match="no evaluated replies"):
        seed_prompt_scores(s, "NA", "zero-fill", CH, W)


def test_compare_modes_detects_a_shift_and_declares_equivalence_only_by_tost():
    from mrgrpo.analysis.held_out import compare_modes, comparison_table

    margins = {"compliance": 0.05, "politeness": 0.05, "action": 0.10, "aggregate": 0.10}
    expected = {"compliance": 0, "politeness": -1, "action": 1, "aggregate": -1}
    up = compare_modes(make_samples(shift_an=(0.0, 0.15, 0.0), seeds=(0, 1, 2, 3)), "AN", "NA", CH, W,
                       margins=margins, expected=expected)
    assert up["politeness"][0].verdict == "higher" and up["politeness"][0].against_expected
    assert up["politeness"][1].ahead > up["politeness"][1].behind
    same = compare_modes(make_samples(seeds=(0, 1, 2, 3)), "AN", "NA", CH, W, margins=margins, expected=expected)
    assert same["aggregate"][0].verdict == "equivalent"
    assert not same["aggregate"][0].against_expected
    table = comparison_table(up)
    assert list(table.index) == [*CH, "aggregate"] and "against" in table.loc["politeness", "verdict"]
    assert "AN - NA [95% t]" in table.columns and "a - b" not in table.columns
    # two pairs of arms in one table: one difference column, each row naming its arms, no empty cells
    mixed = {"AN vs NA": up["aggregate"], "NA vs AN": compare_modes(
        make_samples(seeds=(0, 1, 2, 3)), "NA", "AN", CH, W, margins=margins, expected=expected)["aggregate"]}
    table = comparison_table(mixed)
    assert table["a - b"].tolist() == ["AN - NA", "NA - AN"] and "a - b [95% t]" in table.columns
    assert not table.isna().any(axis=None)
    with pytest.raises(ValueError, match="no margin"):
        compare_modes(make_samples(), "AN", "NA", CH, W, margins={"aggregate": 0.1}, expected=expected)


def test_format_summary_writes_the_seed_spread_only_where_there_is_one():
    from mrgrpo.analysis.held_out import format_summary
    summary = pd.DataFrame({"compliance": [0.5, 0.98765], "aggregate": [1.2, 2.0004], "aggregate sd": [np.nan, 0.25],
                            "runs": [1.0, 4.0]}, index=["untrained", "NA"])
    t = format_summary(summary)
    assert list(t.columns) == ["compliance", "aggregate", "runs"]
    assert t.loc["untrained", "aggregate"] == "1.200" and t.loc["NA", "aggregate"] == "2.000 ± 0.250"
    assert t.loc["NA", "compliance"] == "0.988" and t["runs"].tolist() == [1, 4]
    assert format_summary(summary, digits=1).loc["NA", "aggregate"] == "2.0 ± 0.2"
    with pytest.raises(ValueError, match="not a held-out summary"):
        format_summary(summary.drop(columns="runs"))
