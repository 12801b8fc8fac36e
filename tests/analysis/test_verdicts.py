"""The book's verdict sentences follow their numbers: perturb the table, and the sentence changes.

Each test builds a verdict from a table like the one a chapter shows, then from the same
table perturbed across the verdict's threshold, and checks that the words change the
way the numbers did (not just that the text differs).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mrgrpo.analysis.replication import seed_passes, welch_p_range
from mrgrpo.analysis.thresholds import (FLIP_REL_SIMULATION, FLOOR_COST_MARGIN, agrees_to_digits, at_least_half,
                                        clearly_moved, contains, digits_tolerance, excludes, flip_near, judge_floor,
                                        judge_prediction, min_passes, near, nearly_all, optimum_spread,
                                        plausible_shares, prop4_averages_close, proportion_change, rejected,
                                        rescale_cancels, within_se)
from mrgrpo.analysis.verdicts import (compare_seeds, count_sentence, dashboard_entries, fmt, fmt_interval, fmt_p,
                                      join_words, kappa_comparison, lowest_regions, noise_check, precision_verdict,
                                      preference_sentence, range_sentence, ranking_agreement, regions_sentence,
                                      runs_where, intervals_sentence, trend_sentence, yes_no)


# --------------------------------------------------------------------------- formatting
def test_fmt_never_prints_negative_zero_or_nan():
    assert fmt(-0.0001) == "0.000" and fmt(-0.0) == "0.000"
    assert fmt(-0.0006) == "-0.001"
    assert fmt(float("nan")) == "n/a" and fmt(None) == "n/a"
    assert fmt(4.0, 0) == "4"
    # signed: the sign always shows, and a rounded zero is +0.000 (the held-out difference tables)
    assert fmt(-0.0001, signed=True) == "+0.000" and fmt(0.0123, signed=True) == "+0.012"
    assert fmt(-0.0123, signed=True) == "-0.012" and fmt(float("nan"), signed=True) == "n/a"


def test_fmt_percent_reads_like_the_percent_format_without_negative_zero():
    for x in (0.0, 0.004, 0.125, 0.5, 0.995, 1.0, 0.3333):
        assert fmt(x, 0, percent=True) == f"{x:.0%}" and fmt(x, 1, percent=True) == f"{x:.1%}"
    assert fmt(-0.001, 0, percent=True) == "0%"   # f"{-0.001:.0%}" is "-0%"
    assert fmt(float("nan"), 0, percent=True) == "n/a"


def test_fmt_interval_is_the_books_one_interval():
    # the spellings the chapters used before: value and ends alike, fewer decimals at the ends, bare ends
    assert fmt_interval(0.9551, 0.8812, 1.0349) == "0.955 [0.881, 1.035]"
    assert fmt_interval(1.025, 0.94, 1.12, ci_digits=2) == "1.025 [0.94, 1.12]"
    assert fmt_interval(None, 0.8812, 1.0349) == "[0.881, 1.035]"
    assert fmt_interval(12.34, 10.0, 15.55, 1) == "12.3 [10.0, 15.6]"
    assert fmt_interval(0.45, 0.404, 0.5, 0, percent=True) == "45% [40%, 50%]"
    assert fmt_interval(-0.0123, -0.0341, 0.00004, signed=True) == "-0.012 [-0.034, +0.000]"
    assert fmt_interval(None, -0.0004, 0.02) == "[0.000, 0.020]"  # a rounded zero loses its sign
    assert fmt_interval(float("nan"), 0.1, float("nan")) == "n/a [0.100, n/a]"


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
    # half a unit in the third significant digit: 1.240 is not 1.234 to 3 digits (its old 0.5% rule passed it)
    assert precision_verdict([1.240], [1.234]).startswith("reproduced to 0.5%, not to 3 significant digits")
    assert precision_verdict([1.2344], [1.2341]).startswith("reproduced to 3 significant digits at the one point")
    base = precision_verdict([1.0238, 0.5], [1.0, 0.5])
    assert base.startswith("reproduced to 2.4%, not to 3 significant digits (1 of 2 points misses")
    assert precision_verdict([1.0198, 0.5], [1.0, 0.5]).startswith("reproduced to 2.0%")
    assert precision_verdict([1.003, 0.5004], [1.0, 0.5]).startswith("reproduced to 3 significant digits at all 2")
    assert "not to 3" in precision_verdict([1.003, 0.5011], [1.0, 0.5])  # 0.5 allows 0.0005, not 0.005
    assert precision_verdict([float("nan")], [1.0]) == "n/a"
    with pytest.raises(ValueError, match="size"):
        precision_verdict([1.0, 2.0], [1.0])


def test_agrees_to_digits_is_half_a_unit_in_the_last_digit():
    assert not agrees_to_digits(1.240, 1.234) and agrees_to_digits(1.2344, 1.2341)
    assert digits_tolerance(1.234) == pytest.approx(0.005) and digits_tolerance(0.01234) == pytest.approx(5e-5)
    assert digits_tolerance(987.0, digits=2) == pytest.approx(5.0)
    # the relative tolerance runs from 0.05% (leading 9) to 0.5% (leading 1)
    assert agrees_to_digits(9.994, 9.99) and not agrees_to_digits(9.996, 9.99)
    assert agrees_to_digits(1.0049, 1.0) and not agrees_to_digits(1.0051, 1.0)
    assert agrees_to_digits([-1.2344, 0.0], [-1.2341, 0.0]).tolist() == [True, False]  # a zero reference never agrees
    with pytest.raises(ValueError, match="digits"):
        digits_tolerance(1.0, digits=0)


# --------------------------------------------------------------------------- the floor check's two answers
def test_judge_floor_fails_only_on_the_identity_or_a_cost_beyond_the_margin():
    ok = judge_floor((-0.02, 0.01), (0.002, 0.008))
    assert ok.holds and not ok.costly and ok.agrees and ok.margin == FLOOR_COST_MARGIN == 0.01
    assert not judge_floor((0.001, 0.03), (0.002, 0.008)).holds          # the identity fails
    assert judge_floor((-0.02, 0.01), (0.011, 0.03)).costly              # the cost is clearly beyond 1%
    assert not judge_floor((-0.02, 0.01), (0.008, 0.03)).costly          # not clearly: the interval reaches 1%
    assert judge_floor((-0.02, 0.01), (-0.05, -0.02)).costly             # a gain counts in size
    assert not judge_floor((-0.02, 0.01), (0.011, 0.03), margin=0.05).costly
    assert judge_floor((float("nan"), float("nan")), (0.0, 0.0)).holds  # no non-degenerate group: nothing to reject
    with pytest.raises(ValueError, match="margin"):
        judge_floor((0, 0), (0, 0), margin=-0.1)


def test_judge_prediction_reads_an_interval():
    flat = judge_prediction(0.93, 1.42, predicted=2.18, null=1.0)
    assert flat.falsified and not flat.null_excluded and not flat.inconclusive
    assert judge_prediction(1.1, 1.6, 2.18, 1.0).null_excluded
    wide = judge_prediction(0.8, 2.5, 2.18, 1.0)
    assert wide.inconclusive and not wide.falsified
    assert not judge_prediction(1.5, 2.5, 2.18, 1.0).falsified and judge_prediction(1.5, 2.5, 2.18, 1.0).null_excluded
    with pytest.raises(ValueError):
        judge_prediction(2.0, 1.0, 2.18, 1.0)


# --------------------------------------------------------------------------- replication: rounding and seeds
def test_welch_p_over_the_rounding_of_the_published_numbers():
    """NA 2.082 +- 0.013, AN 2.109 +- 0.007, 3 seeds: p = 0.049 as printed, 0.039 to 0.060 over the rounding."""
    r = welch_p_range(2.082, 0.013, 3, 2.109, 0.007, 3)
    assert r.p == pytest.approx(compare_seeds(2.082, 0.013, 3, 2.109, 0.007, 3).p)
    assert r.p_lo == pytest.approx(0.039, abs=0.001) and r.p_hi == pytest.approx(0.060, abs=0.001)
    assert r.verdict == "inconclusive" and "0.039 to 0.060" in r.sentence()
    se = welch_p_range(2.082, 0.013, 3, 2.109, 0.007, 3, spread="se")  # "+-" read as a standard error
    assert se.p == pytest.approx(0.16, abs=0.005) and se.verdict == "not significant" and se.p_lo > 0.14
    # more decimals shrink the box around p = 0.049: then it is significant
    assert welch_p_range(2.082, 0.013, 3, 2.109, 0.007, 3, decimals=5).verdict == "significant"
    with pytest.raises(ValueError, match="spread"):
        welch_p_range(2.0, 0.1, 3, 2.1, 0.1, 3, spread="var")


def test_seed_passes_counts_seeds_against_a_binomial_bound():
    assert min_passes(20) == 17  # P(Binomial(20, 0.95) <= 16) = 1.6% < 5% <= P(<= 17) = 7.5%
    rng = np.random.default_rng(3)
    holds = seed_passes([rng.standard_normal(16) for _ in range(20)])
    assert holds.n == 20 and holds.passes >= 17 and holds.ok and f"{holds.passes} of 20 seeds" in holds.sentence()
    broken = seed_passes([rng.standard_normal(16) + np.r_[3.5, np.zeros(15)] for _ in range(20)])
    assert broken.passes < 17 and not broken.ok   # one point off by 3.5 SE in every seed
    with pytest.raises(ValueError):
        seed_passes([])


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


# --------------------------------------------------------------------------- thresholds (analysis.thresholds)
def test_within_se_flips_at_two_standard_errors():
    # groupsize: the published exponent 0.318 +- 0.010 is 1.5 SE from 1/3; a smaller SE puts it beyond 2
    base = within_se(0.318, 1 / 3, 0.010)
    assert base.z == pytest.approx(-1.533, abs=1e-3) and base.within
    assert not within_se(0.318, 1 / 3, 0.007).within
    # prop4: a replicated deviation, already a z-score
    assert within_se(1.9).within and not within_se(-2.1).within and not within_se(2.0).within
    assert within_se(2.5, k=3).within
    with pytest.raises(ValueError, match="se"):
        within_se(0.3, 0.0, 0.0)


def test_proportion_change_against_binomial_noise():
    # integrations: the gate's pass rate in the first and last halves of a run, 512 completions each
    base = proportion_change(0.30, 0.35, 512, 512)
    assert base.se == pytest.approx(np.sqrt(0.3 * 0.7 / 512 + 0.35 * 0.65 / 512))
    assert base.change == pytest.approx(0.05) and base.bound == pytest.approx(2 * base.se)
    assert base.within
    moved = proportion_change(0.30, 0.37, 512, 512)
    assert not moved.within and moved.change == pytest.approx(0.07)
    assert proportion_change(0.30, 0.37, 128, 128).within  # fewer completions, wider noise
    with pytest.raises(ValueError, match="observation"):
        proportion_change(0.3, 0.4, 0, 10)


def test_flip_near_gamma_star_at_the_chapters_tolerances():
    # tier2: flip 0.489 against gamma* 0.468 on real rollouts (tolerance 20% of gamma*)
    base = flip_near(0.489, 0.468)
    assert base.near and base.tolerance == pytest.approx(0.0936)
    assert flip_near(0.468 * 1.19, 0.468).near and not flip_near(0.468 * 1.21, 0.468).near
    assert not flip_near(0.468 * 0.79, 0.468).near
    # prop4_conditioning: a simulated flip, tolerance 10%
    assert flip_near(1.30, 1.25, rel=FLIP_REL_SIMULATION).near
    assert not flip_near(1.40, 1.25, rel=FLIP_REL_SIMULATION).near
    with pytest.raises(ValueError, match="exactly one"):
        near(1.0, 1.0)


def test_prop4_averages_close_needs_both():
    assert prop4_averages_close(0.87, 0.78, 0.86, 0.75)
    assert not prop4_averages_close(0.89, 0.78, 0.86, 0.75)   # the MSE ratio 0.03 off
    assert not prop4_averages_close(0.87, 0.81, 0.86, 0.75)   # the winning share 0.06 off


def test_rescale_cancels_within_one_percent():
    assert rescale_cancels(1.2, 1 / 1.2 * 1.005).near
    assert not rescale_cancels(1.2, 1 / 1.2 * 1.02).near
    assert not rescale_cancels(1.2, 1 / 1.2 * 0.98).near


def test_nearly_all_at_ninety_percent():
    shares = [0.97, 1.0, 0.99, 0.95]   # real_scores: the degenerate groups' share of the shortfall
    assert nearly_all(shares)
    assert nearly_all([0.9, 1.0]) and not nearly_all([0.89, 1.0])
    assert nearly_all([0.95, float("nan")]) and not nearly_all([float("nan")])


def test_at_least_half_and_rejected():
    assert at_least_half([True, True, False, False]) and not at_least_half([True, False, False, False])
    assert rejected(0.049) and not rejected(0.051) and not rejected(float("nan"))
    assert rejected(0.009, alpha=0.01) and not rejected(0.011, alpha=0.01)


def test_clearly_moved_against_two_seed_sds():
    gains = pd.Series({"NA": 0.30, "AN": 0.05, "single-reward": -0.25})
    assert clearly_moved(gains, 0.1) == ["NA", "single-reward"]
    assert clearly_moved(gains, 0.14) == ["NA"]
    assert clearly_moved(gains, 0.2) == [] and clearly_moved(gains, float("nan")) == []


def test_optimum_spread_judges_conjecture_bound_and_flatness():
    base = optimum_spread([24, 24, 32, 32], predicted_spread=2.18, steps=1, bound_steps=1)
    assert base.spread == pytest.approx(4 / 3) and base.falsified and base.within_bound and not base.flat
    wide = optimum_spread([16, 24, 48], predicted_spread=2.18, steps=3, bound_steps=1)
    assert not wide.falsified and not wide.within_bound
    assert optimum_spread([24, 24], 2.18, 0, 1).flat
    with pytest.raises(ValueError):
        optimum_spread([], 2.0, 0, 1)


def test_contains_and_excludes_intervals():
    lo, hi = np.array([0.9, 1.01, 0.5, np.nan]), np.array([1.1, 1.2, 0.99, 1.0])
    assert contains(lo, hi, 1.0).tolist() == [True, False, False, False]
    assert excludes(lo, hi, 1.0).tolist() == [False, True, True, False]   # NaN excludes nothing
    assert bool(contains(0.93, 1.06, 0.9375)) and not bool(contains(0.94, 1.06, 0.9375))
    s = contains(pd.Series([0.9, 1.1]), pd.Series([1.0, 1.2]), pd.Series([0.95, 1.0]))
    assert s.tolist() == [True, False]


def test_plausible_shares_of_degenerate_groups():
    assert plausible_shares([0.31, 0.19, 0.10, 0.06])
    assert not plausible_shares([0.31, 0.19, 0.22, 0.06])   # rises with m
    assert not plausible_shares([0.31, 0.19, 0.10, -0.02])  # not a share
    assert not plausible_shares([1.2, 0.5]) and not plausible_shares([0.3, float("nan")])
