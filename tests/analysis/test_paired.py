"""``mrgrpo.analysis.paired``: intervals that cover, a TOST of the right size, power that holds, verdicts that flip.

Coverage and size are checked by simulation with fixed seeds: a rate over ``R``
replications must be within three binomial standard errors of the nominal level.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from mrgrpo.analysis.paired import (VERDICTS, compare_arms, equivalence_test, paired_difference, paired_power,
                                    power_table, seeds_needed, sign_test)


def null_arms(rng, S, P, tau, sigma, mu=0.0, ternary=False):
    """Two arms whose paired difference is ``mu + u_s + e_sp`` (seed effect ``u ~ N(0, tau)``)."""
    b = rng.uniform(0, 2, size=(S, P))
    noise = rng.choice([-1.0, 0.0, 0.0, 1.0], size=(S, P)) * sigma if ternary else rng.normal(0, sigma, (S, P))
    return b + mu + rng.normal(0, tau, (S, 1)) + noise, b


def within_3se(rate, level, R):
    return abs(rate - level) <= 3 * math.sqrt(level * (1 - level) / R)


# --------------------------------------------------------------------------- coverage
@pytest.mark.parametrize("S, P, tau, sigma", [(2, 32, 0.2, 0.5), (4, 64, 0.1, 0.5), (8, 16, 0.3, 0.2)])
def test_t_interval_covers_at_the_nominal_level(S, P, tau, sigma):
    rng, R = np.random.default_rng(11), 2000
    hits = 0
    for _ in range(R):
        a, b = null_arms(rng, S, P, tau, sigma, mu=0.3)
        d = paired_difference(a, b, n_boot=1, seed=rng)
        hits += d.t_lo <= 0.3 <= d.t_hi
    assert within_3se(hits / R, 0.95, R), hits / R


@pytest.mark.parametrize("S, P, tau, sigma, ternary", [
    (4, 64, 0.1, 0.5, False),    # seeds and prompts both matter
    (4, 64, 0.3, 0.5, False),    # seed-to-seed spread dominates
    (4, 64, 0.0, 0.5, False),    # prompt noise only (the variance correction clips to the prompt stage)
    (8, 32, 0.1, 0.5, False),
    (4, 64, 0.2, 1.0, True),     # discrete differences with ties, like reward channels
])
def test_two_stage_bootstrap_covers_at_the_nominal_level(S, P, tau, sigma, ternary):
    rng, R = np.random.default_rng(5), 600
    hits = 0
    for _ in range(R):
        a, b = null_arms(rng, S, P, tau, sigma, ternary=ternary)
        d = paired_difference(a, b, n_boot=1000, seed=rng)
        hits += d.boot_lo <= 0.0 <= d.boot_hi
    assert within_3se(hits / R, 0.95, R), hits / R


def test_one_seed_gives_a_prompt_level_interval_without_nans():
    rng, R = np.random.default_rng(3), 1000
    hits = 0
    for _ in range(R):
        a, b = null_arms(rng, 1, 40, 0.0, 0.5)
        d = paired_difference(a, b, n_boot=200, seed=rng)
        hits += d.t_lo <= 0.0 <= d.t_hi
    assert within_3se(hits / R, 0.95, R)
    assert d.df == 0 and d.interval_over == "prompts" and d.n_seeds == 1 and d.n_prompts == 40
    assert all(np.isfinite([d.mean, d.se, d.t_lo, d.t_hi, d.boot_lo, d.boot_hi]))
    two = paired_difference(*null_arms(rng, 3, 10, 0.1, 0.5), n_boot=50)
    assert two.df == 2 and two.interval_over == "seeds" and two.per_seed.shape == (3,)


def test_mean_is_the_mean_of_per_seed_paired_means_and_identical_arms_give_zero():
    a = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 3.0]])
    b = np.array([[0.0, 2.0, 2.0], [1.0, 0.0, 0.0]])
    d = paired_difference(a, b, n_boot=100)
    np.testing.assert_allclose(d.per_seed, [2 / 3, 2 / 3])
    assert d.mean == pytest.approx(2 / 3) and d.se == 0.0 and d.t_lo == d.t_hi == pytest.approx(2 / 3)
    z = paired_difference(a, a, n_boot=100)
    assert (z.mean, z.t_lo, z.t_hi, z.boot_lo, z.boot_hi) == (0.0, 0.0, 0.0, 0.0, 0.0)


# --------------------------------------------------------------------------- TOST
def test_tost_size_at_the_margin_is_alpha():
    rng, R, margin = np.random.default_rng(7), 4000, 0.05
    for true in (margin, -margin):
        rate = np.mean([equivalence_test(rng.normal(true, 0.02, 8), margin).equivalent for _ in range(R)])
        assert rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / R), rate
        assert within_3se(rate, 0.05, R), rate  # the far side is negligible here, so the size is alpha itself


def test_tost_finds_equivalence_inside_the_margin_and_matches_its_interval():
    x = np.array([0.01, -0.005, 0.0, 0.012, 0.004, -0.002])
    e = equivalence_test(x, 0.05)
    assert e.equivalent and e.p == max(e.p_lower, e.p_upper) and e.df == 5 and e.n == 6
    lo, hi = e.interval
    q = stats.t.ppf(0.95, 5)
    assert lo == pytest.approx(x.mean() - q * x.std(ddof=1) / math.sqrt(6))
    # equivalent exactly when the 90% interval is inside the margin: move the margin across its end
    edge = max(abs(lo), abs(hi))
    assert equivalence_test(x, edge * 1.001).equivalent and not equivalence_test(x, edge * 0.999).equivalent
    assert not equivalence_test(x + 0.2, 0.05).equivalent


def test_tost_with_no_spread_decides_by_the_mean():
    assert equivalence_test([0.01, 0.01], 0.05).equivalent
    assert not equivalence_test([0.06, 0.06], 0.05).equivalent


# --------------------------------------------------------------------------- verdict
def arms_with_gap(gap, S=6, P=20, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    b = rng.uniform(0, 1, (S, P))
    return b + gap + rng.normal(0, noise, (S, 1)) + rng.normal(0, noise, (S, P)), b


def test_verdicts_follow_the_interval_and_the_equivalence_test():
    assert compare_arms(*arms_with_gap(0.3), margin=0.05, expected_sign=1).verdict == "higher"
    assert compare_arms(*arms_with_gap(-0.3), margin=0.05, expected_sign=1).verdict == "lower"
    assert compare_arms(*arms_with_gap(0.0, noise=0.005), margin=0.05, expected_sign=0).verdict == "equivalent"
    assert compare_arms(*arms_with_gap(0.0, noise=0.5), margin=0.05, expected_sign=0).verdict == "inconclusive"
    assert set(VERDICTS) == {"higher", "lower", "equivalent", "inconclusive"}


def test_verdict_flips_when_the_difference_crosses_zero():
    a, b = arms_with_gap(0.05, noise=0.05, seed=2)
    base = compare_arms(a, b, margin=0.01, expected_sign=1)
    shift = base.difference.t_lo  # moving every difference by c moves the interval by c
    above = compare_arms(a - shift + 1e-6, b, margin=0.01, expected_sign=1)
    below = compare_arms(a - shift - 1e-6, b, margin=0.01, expected_sign=1)
    assert above.verdict == "higher" and below.verdict == "inconclusive"
    up = compare_arms(a - base.difference.t_hi - 1e-6, b, margin=0.01, expected_sign=1)
    assert up.verdict == "lower" and up.against_expected and "against the expected direction" in up.sentence()


def test_verdict_flips_between_equivalent_and_inconclusive_at_the_margin():
    a, b = arms_with_gap(0.0, noise=0.01, seed=4)
    e = compare_arms(a, b, margin=1.0, expected_sign=0).equivalence
    edge = max(abs(e.interval[0]), abs(e.interval[1]))
    assert compare_arms(a, b, margin=edge * 1.001, expected_sign=0).verdict == "equivalent"
    assert compare_arms(a, b, margin=edge * 0.999, expected_sign=0).verdict == "inconclusive"


def test_against_expected_and_the_sentence():
    a, b = arms_with_gap(0.2)
    paper_says_lower = compare_arms(a, b, margin=0.05, expected_sign=-1, names=("AN", "NA"), what="the aggregate")
    assert paper_says_lower.verdict == "higher" and paper_says_lower.against_expected
    text = paper_says_lower.sentence()
    assert text.startswith("AN is higher than NA, against the expected direction (AN lower)")
    assert "AN - NA on the aggregate is +0.2" in text and "t-interval over 6 seeds" in text
    assert not compare_arms(a, b, margin=0.05, expected_sign=1).against_expected
    assert compare_arms(a, b, margin=0.05, expected_sign=0).against_expected
    eq = compare_arms(*arms_with_gap(0.0, noise=0.005), margin=0.05, expected_sign=-1)
    assert not eq.against_expected and "equivalent within ±0.050" in eq.sentence()


def test_one_seed_comparison_tests_over_prompts():
    a, b = arms_with_gap(0.3, S=1, P=30)
    c = compare_arms(a, b, margin=0.05, expected_sign=1)
    assert c.verdict == "higher" and c.equivalence.n == 30 and "one seed" in c.sentence()


def test_the_sentence_says_when_the_bootstrap_disagrees():
    # two seeds that agree by luck: a narrow t-interval, while prompt noise is large
    rng = np.random.default_rng(0)
    d = rng.normal(0, 1.0, (2, 32))
    d -= d.mean(axis=1, keepdims=True) - np.array([[0.14], [0.141]])
    c = compare_arms(d, np.zeros_like(d), margin=0.05, expected_sign=0)
    assert c.verdict == "higher" and not c.bootstrap_agrees
    assert "the bootstrap interval holds 0 where the t-interval does not" in c.sentence()


# --------------------------------------------------------------------------- sign test
def test_sign_test_counts_and_p():
    s = sign_test(np.array([[0.1, 0.2, -0.1, 0.0], [0.3, 0.0, 0.5, 0.2]]))
    assert (s.ahead, s.behind, s.ties) == (5, 1, 2)
    assert s.p == pytest.approx(stats.binomtest(5, 6, 0.5).pvalue)
    assert sign_test([0.0, 0.0]).p == 1.0
    assert "A ahead on 5 prompts" in s.sentence()


# --------------------------------------------------------------------------- power
def test_seeds_needed_matches_the_textbook_and_is_the_smallest():
    assert seeds_needed(0.5, 1.0) == 34      # one-sample t, d = 0.5, alpha 0.05 two-sided, power 0.8
    assert seeds_needed(-0.5, 1.0) == 34
    for eff, sd in [(0.027, 0.05), (0.14, 0.1), (1.0, 0.1)]:
        n = seeds_needed(eff, sd)
        assert paired_power(n, eff, sd) >= 0.8
        assert n == 2 or paired_power(n - 1, eff, sd) < 0.8
    # a large noncentrality (scipy's far tail returns NaN there) still gives a power, not NaN
    assert paired_power(5, 0.14, 0.02) == pytest.approx(1.0) and paired_power(4, 0.14, 0.005) == pytest.approx(1.0)
    powers = [paired_power(n, 0.027, 0.05) for n in range(2, 40)]
    assert all(np.diff(powers) > 0)


def test_power_holds_in_simulation():
    rng, R, eff, sd = np.random.default_rng(9), 4000, 0.027, 0.04
    n = seeds_needed(eff, sd)
    x = rng.normal(eff, sd, (R, n))
    t = x.mean(axis=1) / (x.std(axis=1, ddof=1) / math.sqrt(n))
    rate = np.mean(np.abs(t) > stats.t.ppf(0.975, n - 1))
    assert within_3se(rate, paired_power(n, eff, sd), R), (rate, paired_power(n, eff, sd))
    assert rate >= 0.8 - 3 * math.sqrt(0.16 / R)


def test_power_table_is_formatted_and_agrees_with_seeds_needed():
    t = power_table({"paper (0.027)": 0.027, "observed": 0.14}, 0.05, at=(2, 4))
    assert list(t.columns) == ["gap", "gap / SD", "seeds for 80% power", "power with 2 seeds", "power with 4 seeds"]
    assert t.index.name == "comparison" and t.loc["observed", "gap"] == "0.140"
    assert t.loc["paper (0.027)", "seeds for 80% power"] == seeds_needed(0.027, 0.05)
    assert t.loc["observed", "power with 4 seeds"] == f"{paired_power(4, 0.14, 0.05):.0%}"


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("a, b, match", [
    (np.ones((2, 3)), np.ones((2, 4)), "same shape"),
    (np.ones(3), np.ones(3), "shape"),
    (np.ones((2, 3, 1)), np.ones((2, 3, 1)), "shape"),
    ("abc", np.ones((2, 3)), "string"),
    (np.array([["a", "b"], ["c", "d"]]), np.ones((2, 2)), "numbers"),
    (np.array([[1.0, np.nan]]), np.ones((1, 2)), "non-finite"),
    (np.array([[1.0, np.inf], [0, 0]]), np.ones((2, 2)), "non-finite"),
    (np.ones((1, 1)), np.ones((1, 1)), "one seed and one prompt"),
    (np.ones((0, 3)), np.ones((0, 3)), "empty"),
])
def test_paired_difference_rejects_bad_arrays(a, b, match):
    with pytest.raises(ValueError, match=match):
        paired_difference(a, b)


def test_other_bad_inputs_are_rejected():
    ok = np.ones((2, 3))
    for kw, match in [({"n_boot": 0}, "n_boot"), ({"n_boot": True}, "n_boot"), ({"alpha": 1.0}, "alpha"),
                      ({"alpha": "0.05"}, "alpha")]:
        with pytest.raises(ValueError, match=match):
            paired_difference(ok, ok, **kw)
    for margin in (0.0, -1.0, float("nan"), "0.1"):
        with pytest.raises(ValueError, match="margin"):
            equivalence_test([0.1, 0.2], margin)
    with pytest.raises(ValueError, match="at least two"):
        equivalence_test([0.1], 0.05)
    with pytest.raises(ValueError, match="alpha"):
        equivalence_test([0.1, 0.2], 0.05, alpha=0.5)
    for sign in (2, True, "+"):
        with pytest.raises(ValueError, match="expected_sign"):
            compare_arms(ok, ok, margin=0.1, expected_sign=sign)
    with pytest.raises(ValueError, match="names"):
        compare_arms(ok, ok, margin=0.1, expected_sign=1, names=("A",))
    with pytest.raises(ValueError, match="nonzero"):
        seeds_needed(0.0, 1.0)
    with pytest.raises(ValueError, match="sd must be positive"):
        seeds_needed(0.1, 0.0)
    with pytest.raises(ValueError, match="finite"):
        seeds_needed(float("inf"), 1.0)
    with pytest.raises(ValueError, match="power"):
        seeds_needed(0.1, 1.0, power=1.0)
    with pytest.raises(ValueError, match="n must be"):
        paired_power(1, 0.1, 1.0)
    with pytest.raises(ValueError, match="effects"):
        power_table({}, 1.0)
    with pytest.raises(ValueError, match="numbers"):
        sign_test(["a", "b"])
