"""The book's verdict sentences follow their numbers: perturb the table, and the sentence changes.

Each test builds a verdict from a table like the one a chapter shows, then from the same
table perturbed across the verdict's threshold, and checks that the words change the
way the numbers did (not just that the text differs).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mrgrpo.analysis.verdicts import (compare_seeds, count_sentence, dashboard_entries, fmt, fmt_p, join_words,
                                      kappa_comparison, lowest_regions, noise_check, precision_verdict, preference_sentence,
                                      range_sentence, ranking_agreement, regions_sentence, runs_where,
                                      intervals_sentence, trend_sentence, yes_no)


# --------------------------------------------------------------------------- formatting
def test_fmt_never_prints_negative_zero_or_nan():
    assert fmt(-0.0001) == "0.000" and fmt(-0.0) == "0.000"
    assert fmt(-0.0006) == "-0.001"
    assert fmt(float("nan")) == "n/a" and fmt(None) == "n/a"
    assert fmt(4.0, 0) == "4"
    # signed: the sign always shows, and a rounded zero is +0.000 (the held-out difference tables)
    assert fmt(-0.0001, signed=True) == "+0.000" and fmt(0.0123, signed=True) == "+0.012"
    assert fmt(-0.0123, signed=True) == "-0.012" and fmt(float("nan"), signed=True) == "n/a"


def test_fmt_p_floors_at_double_precision():
    assert fmt_p(0.0) == "p < 1e-16"
    assert fmt_p(1.373159e-241) == "p < 1e-16"
    assert fmt_p(0.049) == "p = 0.049"
    assert fmt_p(3.2e-5) == "p = 3.2e-05"
    assert fmt_p(float("nan")) == "p = n/a"
    assert "e+00" not in fmt_p(0.0)
    assert fmt_p(0.0, prefix=False) == "< 1e-16" and fmt_p(0.4, prefix=False) == "0.4"
    assert fmt_p(float("nan"), prefix=False) == "n/a"


def test_join_words_and_yes_no():
    assert join_words(["a"]) == "a" and join_words(["a", "b"]) == "a and b"
    assert join_words(["a", "b", "c"]) == "a, b and c"
    assert yes_no(1.31 < 1.8, "1.310 < 1.800") == "yes (1.310 < 1.800)"
    assert yes_no(False) == "no"


def test_count_sentence_counts_and_names_the_rows():
    base = count_sentence([True, False, True, True], [4, 8, 16, 32])
    assert base == "3 of 4 rows (m = 4, 16 and 32)"
    assert count_sentence([False] * 4, [4, 8, 16, 32]) == "none of the 4 rows"
    assert count_sentence([True] * 4, [4, 8, 16, 32]) == "all 4 rows"
    assert count_sentence([True, False], [4.0, 8.0]) == "1 of 2 rows (m = 4)"  # no float group sizes
    with pytest.raises(ValueError):
        count_sentence([True], [4, 8])


def test_range_sentence_follows_the_extremes():
    base = range_sentence([1.248, 0.935, 1.016, 0.989], [4, 8, 16, 32])
    assert base == "between 0.94 (m = 8) and 1.25 (m = 4)"
    moved = range_sentence([0.99, 0.935, 1.016, 1.30], [4, 8, 16, 32])
    assert moved == "between 0.94 (m = 8) and 1.30 (m = 32)"
    assert range_sentence([1.0, 1.001], [4, 8]) == "1.00 at every m"


# --------------------------------------------------------------------------- intro: the worked example
def test_preference_follows_the_advantage_table():
    # The intro's table: y2 (the larger length reward) gets the larger advantage under both.
    adv = pd.DataFrame({"AN": {"y1": 0.759, "y2": 1.193}, "NA": {"y1": -0.342, "y2": 1.447}})
    base = preference_sentence(adv, "y1", "y2")
    assert base == "AN and NA both rank y2 above y1: by 0.434 under AN and 1.789 under NA"
    swapped = adv.copy()
    swapped.loc["y1", "NA"] = 2.0
    text = preference_sentence(swapped, "y1", "y2")
    assert text != base
    assert "NA ranks y1 above y2 (by 0.553)" in text and "AN ranks y2 above y1 (by 0.434)" in text
    tied = adv.copy()
    tied.loc["y1", "AN"] = tied.loc["y2", "AN"]
    assert "AN gives y1 and y2 the same advantage" in preference_sentence(tied, "y1", "y2")


# --------------------------------------------------------------------------- Tier 3: seeds
def test_seed_comparison_on_the_papers_published_numbers():
    # Paper: NA 2.082 +- 0.013, AN 2.109 +- 0.007, 3 seeds each; the gap 0.027 exceeds 2 x 0.013.
    c = compare_seeds(2.082, 0.013, 3, 2.109, 0.007, 3, "NA", "AN")
    assert c.difference == pytest.approx(0.027)
    assert c.threshold == pytest.approx(0.026)
    assert c.within is False
    assert c.t == pytest.approx(3.17, abs=0.01)
    assert c.p == pytest.approx(0.049, abs=0.002)
    assert c.significant is True
    assert "more than 2 seed SDs" in c.sentence() and "p = 0.049" in c.sentence()


def test_seed_comparison_changes_with_the_spread():
    base = compare_seeds(2.082, 0.013, 3, 2.109, 0.007, 3, "NA", "AN").sentence()
    wider = compare_seeds(2.082, 0.030, 3, 2.109, 0.020, 3, "NA", "AN")
    assert wider.within is True and wider.significant is False
    assert wider.sentence() != base
    assert "less than 2 seed SDs" in wider.sentence() and "not significant" in wider.sentence()
    one = compare_seeds(0.62, float("nan"), 1, 0.65, 0.03, 2, "NA", "AN")
    assert one.within is None and "no seed SD" in one.sentence()


# --------------------------------------------------------------------------- real scores
def test_kappa_comparison_counts_rows_both_ways():
    whole, normalized = [0.160, 0.132, 0.166, 0.160], [0.066, 0.214, 0.095, 0.090]
    base = kappa_comparison(whole, normalized, [4, 8, 16, 32], "the length-normalized score")
    assert base.startswith("the length-normalized score has the smaller κ in 3 of 4 rows (m = 4, 16 and 32)")
    assert "the larger in 1 of 4 rows (m = 8)" in base
    bigger = kappa_comparison(whole, [0.2, 0.3, 0.2, 0.2], [4, 8, 16, 32], "the length-normalized score")
    assert bigger == "the length-normalized score has the larger κ in all 4 rows"


# --------------------------------------------------------------------------- Theorem 3: precision
def test_precision_verdict_against_three_digits():
    base = precision_verdict(0.0238)
    assert base.startswith("reproduced to 2.4%, not to 3 significant digits")
    assert precision_verdict(0.0198).startswith("reproduced to 2.0%")
    assert precision_verdict(0.003).startswith("reproduced to 3 significant digits")
    assert precision_verdict(float("nan")) == "n/a"


# --------------------------------------------------------------------------- Prop 4: who wins where
P_A = np.linspace(0.1, 0.95, 18)


def _mse_table():
    """Shaped like figT1's exact MSEs: subgroup lowest at the ends, zero-fill in the middle."""
    none = np.full(18, 0.05)
    zero = np.where((P_A > 0.22) & (P_A < 0.72), 0.02, 0.06)
    sub = np.where((P_A > 0.22) & (P_A < 0.72), 0.03, 0.01)
    return {"none": none, "zero-fill": zero, "subgroup": sub}


def test_lowest_regions_follow_the_curves():
    base = regions_sentence(lowest_regions(P_A, _mse_table()), "p_a")
    assert base == "subgroup for p_a from 0.10 to 0.20 and from 0.75 to 0.95; zero-fill for p_a from 0.25 to 0.70"
    t = _mse_table()
    t["subgroup"] = np.full(18, 0.07)  # subgroup never best now
    moved = regions_sentence(lowest_regions(P_A, t), "p_a")
    assert moved != base and "subgroup" not in moved and "none for p_a from 0.10 to 0.20" in moved


def test_runs_where_one_loses_to_another():
    t = _mse_table()
    base = intervals_sentence(runs_where(P_A, t["zero-fill"] > t["none"]), "p_a")
    assert base == "p_a from 0.10 to 0.20 and from 0.75 to 0.95"
    assert intervals_sentence(runs_where(P_A, t["zero-fill"] > 1.0), "p_a") == "nowhere on the grid"


# --------------------------------------------------------------------------- group size: a trend
def test_trend_sentence_sees_steps_on_the_grid():
    grid = [4, 8, 16, 24, 32, 48, 64]
    base = trend_sentence([-0.6, 0.0, 0.6, 0.9], [24, 24, 32, 32], "ρ", "m*", grid)
    assert base == "m* rises from 24 to 32 as ρ goes from -0.6 to 0.9 (1 grid step)"
    flat = trend_sentence([-0.6, 0.0, 0.6, 0.9], [24, 24, 24, 24], "ρ", "m*", grid)
    assert flat == "m* stays at 24 as ρ goes from -0.6 to 0.9"
    down = trend_sentence([-0.6, 0.0, 0.6, 0.9], [48, 32, 24, 24], "ρ", "m*", grid)
    assert down.startswith("m* falls from 48 to 24") and "(2 grid steps)" in down
    zig = trend_sentence([-0.6, 0.0, 0.6, 0.9], [24, 32, 24, 32], "ρ", "m*", grid)
    assert "without a monotone trend" in zig


# --------------------------------------------------------------------------- planner: rankings
def test_ranking_agreement_says_where_rankings_part():
    names = ["paper", "correctness only", "correctness + length"]
    same = ranking_agreement(names, [1, 2, 3], [1, 2, 3], "ours", "the paper's C")
    assert same == "the same ranking under ours and the paper's C"
    top = ranking_agreement(names, [1, 2, 3], [2, 1, 3], "ours", "the paper's C")
    assert top == "a different ranking: first under ours is paper, under the paper's C correctness only"
    below = ranking_agreement(names, [1, 2, 3], [1, 3, 2], "ours", "the paper's C")
    assert "same first design (paper)" in below and "2 of 3 designs change places" in below


# --------------------------------------------------------------------------- dashboard rows
def test_dashboard_entries_refuse_empty_cells():
    row = dashboard_entries("dash", "claim", "1.0", "0.9", "reproduced")
    assert row == {"dash_claim": "claim", "dash_paper": "1.0", "dash_ours": "0.9", "dash_verdict": "reproduced"}
    with pytest.raises(ValueError, match="verdict"):
        dashboard_entries("dash", "claim", "1.0", "0.9", " ")


# --------------------------------------------------------------------------- Monte-Carlo deviations
def test_noise_check_uses_a_family_wise_bound():
    z = np.array([0.3, -2.06, 1.1] + [0.5] * 61)  # 64 points, largest 2.06 SE
    base = noise_check(z)
    assert base.n == 64 and base.max_z == pytest.approx(2.06)
    assert base.bound == pytest.approx(3.36, abs=0.01) and base.ok
    assert "within the 3.4 SE" in base.sentence()  # 3.36 rounded
    z[5] = 4.0
    off = noise_check(z)
    assert not off.ok and off.sentence() != base.sentence() and "beyond" in off.sentence()
    assert noise_check([1.0]).bound == pytest.approx(1.96, abs=0.01)
