"""The thresholds that decide the book's verdicts: one named function each, returning flags and numbers.

A chapter's sentence often turns on one comparison: "within two standard errors", "the flip
lands near gamma*", "nearly all of the shortfall". Each such comparison lives here, with its
threshold as a documented default, and returns a flag or a small typed result holding the
numbers behind it; the chapter only chooses the words. ``tests/analysis/test_verdicts.py`` moves
every input across its threshold and checks that the flag flips.

Comparisons that only name a sign (a correlation "positive", a floor "below" the population)
are definitions, not thresholds, and stay where the words are chosen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np

__all__ = [
    "Deviation", "within_se", "ProportionChange", "proportion_change", "Closeness", "near", "flip_near",
    "FLIP_REL_ROLLOUTS", "FLIP_REL_SIMULATION", "prop4_averages_close", "rescale_cancels", "nearly_all",
    "at_least_half", "rejected", "clearly_moved", "OptimumSpread", "optimum_spread", "contains", "excludes",
    "plausible_shares", "FLOOR_COST_MARGIN", "FloorJudgement", "judge_floor", "IntervalJudgement",
    "judge_prediction", "agrees_to_digits", "digits_tolerance", "min_passes",
]

#: How close (relative to gamma*) a sign flip measured on real rollouts must land to count as "near" it.
FLIP_REL_ROLLOUTS = 0.2
#: The same for a simulated flip, whose Monte-Carlo noise is far smaller.
FLIP_REL_SIMULATION = 0.1


# --------------------------------------------------------------------------- in standard errors
@dataclass(frozen=True)
class Deviation:
    """An estimate against a target in units of its standard error: ``z = (estimate - target) / se``."""

    estimate: float
    target: float
    se: float
    k: float

    @property
    def z(self) -> float:
        return (self.estimate - self.target) / self.se

    @property
    def within(self) -> bool:
        """``|z| < k``: consistent with the target at ``k`` standard errors."""
        return bool(abs(self.z) < self.k)


def within_se(estimate: float, target: float = 0.0, se: float = 1.0, k: float = 2.0) -> Deviation:
    """Is ``estimate`` within ``k`` standard errors of ``target``? With the defaults ``estimate`` is a z-score.

    Used for the fitted group-size exponent against 1/3 (``groupsize``) and for a
    replicated Monte-Carlo deviation (``prop4_conditioning``).
    """
    se = float(se)
    if not se > 0:
        raise ValueError(f"se must be positive, got {se}")
    return Deviation(float(estimate), float(target), se, float(k))


@dataclass(frozen=True)
class ProportionChange:
    """A change between two observed proportions, against ``k`` standard errors of sampling noise."""

    first: float
    last: float
    se: float        # sqrt(p1 (1 - p1) / n1 + p2 (1 - p2) / n2)
    k: float

    @property
    def change(self) -> float:
        return self.last - self.first

    @property
    def bound(self) -> float:
        return self.k * self.se

    @property
    def within(self) -> bool:
        """``|change| <= k * se``: no more than sampling noise."""
        return bool(abs(self.change) <= self.bound)


def proportion_change(p_first: float, p_last: float, n_first: int, n_last: int, k: float = 2.0) -> ProportionChange:
    """Did a pass rate move beyond ``k`` binomial standard errors between two halves of a run (``integrations``)?"""
    if n_first < 1 or n_last < 1:
        raise ValueError(f"both halves need at least one observation, got {n_first} and {n_last}")
    p1, p2 = float(p_first), float(p_last)
    se = math.sqrt(p1 * (1 - p1) / n_first + p2 * (1 - p2) / n_last)
    return ProportionChange(p1, p2, se, float(k))


# --------------------------------------------------------------------------- close to a target
@dataclass(frozen=True)
class Closeness:
    """``value`` against ``target`` with an absolute ``tolerance``: near when ``|value - target| < tolerance``."""

    value: float
    target: float
    tolerance: float

    @property
    def gap(self) -> float:
        return abs(self.value - self.target)

    @property
    def near(self) -> bool:
        return bool(self.gap < self.tolerance)


def near(value: float, target: float, *, atol: Optional[float] = None, rel: Optional[float] = None) -> Closeness:
    """``value`` against ``target``, within ``atol`` or within ``rel * |target|`` (exactly one of them)."""
    if (atol is None) == (rel is None):
        raise ValueError("give exactly one of atol and rel")
    tol = float(atol) if atol is not None else float(rel) * abs(float(target))
    return Closeness(float(value), float(target), tol)


def flip_near(gamma_flip: float, gamma_star: float, rel: float = FLIP_REL_ROLLOUTS) -> Closeness:
    """Does an observed sign flip of Proposition 4's bias land near the closed form's gamma*?

    Near: within ``rel * gamma*`` (``tier2``: 0.2 on real rollouts; ``prop4_conditioning``
    passes :data:`FLIP_REL_SIMULATION`, 0.1, for a simulation).
    """
    return near(gamma_flip, gamma_star, rel=rel)


def prop4_averages_close(zf_over_none: float, win_fraction: float, published_zf_over_none: float,
                   published_win_fraction: float, atol_ratio: float = 0.02, atol_share: float = 0.05) -> bool:
    """Are Proposition 4's two averages close to the published ones (``prop4_conditioning``)?

    Zero-fill's MSE over no conditioning within ``atol_ratio`` and the share of the plane
    where zero-fill wins within ``atol_share``, both.
    """
    return (near(zf_over_none, published_zf_over_none, atol=atol_ratio).near
            and near(win_fraction, published_win_fraction, atol=atol_share).near)


def rescale_cancels(factor: float, batch_sd: float, atol: float = 1e-2) -> Closeness:
    """Does a batch rescale cancel the group std's convention (``integrations``)?

    It does when ``factor * batch_sd`` is within ``atol`` of 1.
    """
    return near(float(factor) * float(batch_sd), 1.0, atol=atol)


# --------------------------------------------------------------------------- shares and counts
def nearly_all(shares: Sequence[float], at_least: float = 0.9) -> bool:
    """Is every share (NaN skipped) at least ``at_least``, "nearly all" (``real_scores``)? False when none is finite."""
    v = np.asarray(shares, dtype=float)
    v = v[np.isfinite(v)]
    return bool(v.size > 0 and v.min() >= at_least)


def at_least_half(flags: Sequence[bool]) -> bool:
    """Do at least half of ``flags`` hold (``real_scores``: the smaller kappa in most group sizes)?"""
    f = np.asarray(flags, dtype=bool)
    return bool(2 * int(f.sum()) >= f.size)


def rejected(p: float, alpha: float = 0.05) -> bool:
    """Does a test with p-value ``p`` reject at level ``alpha`` (``p < alpha``; NaN never rejects)? (``thm3``)"""
    return bool(float(p) < alpha)


def clearly_moved(gains: Mapping[str, float], sd: float, k: float = 2.0) -> list[str]:
    """The names whose gain exceeds ``k`` seed SDs in size (``tier3``); none when the SD is not finite."""
    if not np.isfinite(sd):
        return []
    return [name for name, g in gains.items() if abs(g) > k * sd]


# --------------------------------------------------------------------------- the budget-optimal group size
@dataclass(frozen=True)
class OptimumSpread:
    """How far the grid optimum ``m*`` moves across correlations, against a conjecture and a published bound."""

    spread: float       # largest m* / smallest m*
    predicted: float    # the conjecture's spread
    steps: int          # grid steps between the extreme m*
    bound_steps: int    # the published bound, in grid steps

    @property
    def falsified(self) -> bool:
        """The conjecture predicts a larger spread than observed."""
        return bool(self.spread < self.predicted)

    @property
    def within_bound(self) -> bool:
        return bool(self.steps <= self.bound_steps)

    @property
    def flat(self) -> bool:
        return self.steps == 0


def optimum_spread(m_star: Sequence[float], predicted_spread: float, steps: int, bound_steps: int) -> OptimumSpread:
    """Judge the spread of ``m*`` over correlations (``groupsize``): against the conjecture, the bound, flatness.

    Parameters
    ----------
    m_star : sequence of float, shape ``(n_rho,)``
        The grid optimum at each correlation.
    predicted_spread : float
        The spread (largest over smallest ``m*``) the conjecture predicts.
    steps, bound_steps : int
        Grid steps between the extreme ``m*``, and the published bound on them.
    """
    v = np.asarray(m_star, dtype=float)
    if v.size == 0 or not (v > 0).all():
        raise ValueError("m_star needs at least one positive value")
    return OptimumSpread(float(v.max() / v.min()), float(predicted_spread), int(steps), int(bound_steps))


# --------------------------------------------------------------------------- intervals
def contains(lo, hi, value):
    """Elementwise ``lo <= value <= hi`` (arrays or pandas objects in, the same shape of flags out)."""
    return (lo <= value) & (value <= hi)


def excludes(lo, hi, value):
    """Elementwise ``value < lo`` or ``value > hi``: the interval is resolved away from ``value``.

    A NaN end excludes nothing.
    """
    return (lo > value) | (hi < value)


def plausible_shares(shares: Sequence[float]) -> bool:
    """Could ``shares`` (ordered by growing group size) be shares of degenerate groups: all in [0, 1], never rising?"""
    v = np.asarray(shares, dtype=float)
    return bool(((v >= 0) & (v <= 1)).all() and (np.diff(v) <= 0).all())


# --------------------------------------------------------------------------- the population floor (Tier 2)
#: The floor check's practical margin: degenerate groups may cost up to this share of the floor.
FLOOR_COST_MARGIN = 0.01


@dataclass(frozen=True)
class FloorJudgement:
    """The floor check's two answers at one group size.

    ``diff_lo, diff_hi``: CI of floor - target over the non-degenerate groups (the identity);
    ``cost_lo, cost_hi``: CI of the degenerate groups' deficit as a share of the floor.
    """

    diff_lo: float
    diff_hi: float
    cost_lo: float
    cost_hi: float
    margin: float

    @property
    def holds(self) -> bool:
        """The identity holds on non-degenerate groups: the CI does not exclude 0 (a NaN CI, no such groups, cannot)."""
        return not bool(excludes(self.diff_lo, self.diff_hi, 0.0))

    @property
    def costly(self) -> bool:
        """Degenerate groups cost more than ``margin`` of the floor: the whole CI lies beyond +-margin."""
        return bool(self.cost_lo > self.margin or self.cost_hi < -self.margin)

    @property
    def agrees(self) -> bool:
        return self.holds and not self.costly


def judge_floor(diff_ci: Sequence[float], cost_ci: Sequence[float], margin: float = FLOOR_COST_MARGIN
                ) -> FloorJudgement:
    """Judge the floor check (``tier2``): the identity on non-degenerate groups, and what degenerate groups cost.

    It fails only when the first CI excludes 0 or the cost's CI lies wholly beyond
    ``margin`` (a share of the floor, default :data:`FLOOR_COST_MARGIN`).
    """
    if not margin >= 0:
        raise ValueError(f"margin must be a non-negative share of the floor, got {margin}")
    return FloorJudgement(float(diff_ci[0]), float(diff_ci[1]), float(cost_ci[0]), float(cost_ci[1]), float(margin))


# --------------------------------------------------------------------------- a prediction against an interval
@dataclass(frozen=True)
class IntervalJudgement:
    """An interval ``[lo, hi]`` of a measured quantity against a prediction and a null value."""

    lo: float
    hi: float
    predicted: float
    null: float

    @property
    def falsified(self) -> bool:
        """The prediction lies outside the interval."""
        return bool(excludes(self.lo, self.hi, self.predicted))

    @property
    def null_excluded(self) -> bool:
        return bool(excludes(self.lo, self.hi, self.null))

    @property
    def inconclusive(self) -> bool:
        """The interval holds both the prediction and the null: the data cannot tell them apart."""
        return not self.falsified and not self.null_excluded


def judge_prediction(lo: float, hi: float, predicted: float, null: float) -> IntervalJudgement:
    """Does an interval rule out a prediction, the null, both or neither (``groupsize``: m* against a conjecture)?"""
    if not lo <= hi:
        raise ValueError(f"need lo <= hi, got lo = {lo}, hi = {hi}")
    return IntervalJudgement(float(lo), float(hi), float(predicted), float(null))


# --------------------------------------------------------------------------- significant digits
def digits_tolerance(reference, digits: int = 3):
    """Half a unit in the ``digits``-th significant digit of ``reference`` (elementwise): 0.005 for 1.234 at 3.

    The usual definition (Higham, *Accuracy and Stability of Numerical Algorithms*, 1.2): ``x_hat``
    agrees with ``x`` to ``p`` significant digits when ``|x_hat - x|`` is below half a unit in the
    ``p``-th significant digit of ``x``, a relative error of 0.05% to 0.5% at ``p = 3``, set by
    the leading digit.
    """
    if int(digits) != digits or digits < 1:
        raise ValueError(f"digits must be a positive int, got {digits!r}")
    ref = np.abs(np.asarray(reference, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        exponent = np.floor(np.log10(np.where(ref > 0, ref, np.nan)))
    return 0.5 * 10.0 ** (exponent - int(digits) + 1)


def agrees_to_digits(value, reference, digits: int = 3):
    """Elementwise: does ``value`` agree with ``reference`` to ``digits`` significant digits (``thm3``)?

    ``|value - reference| < digits_tolerance(reference, digits)``: 1.240 against 1.234 does not
    (0.006 >= 0.005), 1.2344 against 1.2341 does. A zero or NaN reference agrees with nothing.
    """
    err = np.abs(np.asarray(value, dtype=float) - np.asarray(reference, dtype=float))
    tol = digits_tolerance(reference, digits)
    return np.where(np.isfinite(tol), err < np.nan_to_num(tol, nan=-1.0), False)


# --------------------------------------------------------------------------- passes over seeds
def min_passes(n: int, level: float = 0.95, alpha: float = 0.05) -> int:
    """The fewest passes of ``n`` independent seeds that a law holding exactly still gives with probability ``1 - alpha``.

    A check that passes each seed with probability at least ``level`` (a 5% Bonferroni
    bound passes with at least 95%) gives fewer than ``min_passes`` passes with
    probability below ``alpha`` (``prop4_conditioning``: 17 of 20).
    """
    from scipy.stats import binom

    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    k = 0
    while binom.cdf(k, n, level) < alpha:  # P(passes <= k) under the law
        k += 1
    return int(k)
