"""Is a verdict robust: to the rounding of published numbers, and to the seed of a simulation?

- :func:`welch_p_range`: Welch's p-value for published ``mean ± spread`` over the box of
  values that round to the printed ones (``tier3``: the paper's NA/AN difference, p 0.039 to
  0.060, so "inconclusive" rather than "significant (p = 0.049)").
- :func:`seed_passes`: how many independent seeds pass a Monte-Carlo noise check
  (``prop4_conditioning``: the bias law over 20 seeds), against what a law that holds gives.

The words come with the numbers (a ``sentence`` or ``verdict``); the thresholds live in
:mod:`mrgrpo.analysis.thresholds`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .thresholds import min_passes
from .verdicts import fmt, fmt_p, noise_check

__all__ = ["WelchRange", "welch_p_range", "SeedPasses", "seed_passes"]


# --------------------------------------------------------------------------- rounding of published numbers
@dataclass(frozen=True)
class WelchRange:
    """Welch's p-value at published means and spreads, and its range over their rounding."""

    p: float        # at the numbers as printed
    p_lo: float     # smallest and largest p over the rounding box
    p_hi: float
    alpha: float
    spread: str     # what the printed "±" was taken to be: "sd" or "se"

    @property
    def verdict(self) -> str:
        """``"significant"`` (every p in the box below ``alpha``), ``"not significant"`` (none), or ``"inconclusive"``."""
        if self.p_hi < self.alpha:
            return "significant"
        return "not significant" if self.p_lo >= self.alpha else "inconclusive"

    def sentence(self) -> str:
        what = "the standard deviation over seeds" if self.spread == "sd" else "the standard error of each mean"
        return (f"{self.verdict} at the {self.alpha:.0%} level: Welch's p runs from {fmt(self.p_lo)} to "
                f"{fmt(self.p_hi)} over the rounding of the published numbers ({fmt_p(self.p)} as printed), "
                f"taking \u00b1 as {what}")


def welch_p_range(mean_a: float, spread_a: float, n_a: int, mean_b: float, spread_b: float, n_b: int,
                  decimals: int = 3, spread: str = "sd", alpha: float = 0.05, points: int = 11) -> WelchRange:
    """Welch's two-sided p-value for published ``mean ± spread`` over ``n`` seeds, and its range over their rounding.

    Numbers printed to ``decimals`` places are known only to half a unit of the last place, so
    each of the four lies in ``[x - h, x + h]`` with ``h = 0.5 * 10**-decimals``; the p-value is
    evaluated on a grid of ``points`` values per side of that box (its corners included). A
    verdict that changes inside the box is ``"inconclusive"``.

    Parameters
    ----------
    mean_a, spread_a, n_a, mean_b, spread_b, n_b
        The printed numbers: ``spread`` is a standard deviation over the ``n`` seeds
        (``spread="sd"``) or the standard error of the mean (``spread="se"``).
    decimals : int
        Decimal places printed. ``alpha`` : the test's level. ``points`` : grid values per side (>= 2).
    """
    from scipy import stats

    if spread not in ("sd", "se"):
        raise ValueError(f"spread must be 'sd' or 'se', got {spread!r}")
    if min(n_a, n_b) < 2 or points < 2 or decimals < 0:
        raise ValueError("need n >= 2 on each side, points >= 2 and decimals >= 0")
    h = 0.5 * 10.0 ** -int(decimals)
    side = np.linspace(-h, h, int(points))
    ma, sa, mb, sb = np.meshgrid(mean_a + side, spread_a + side, mean_b + side, spread_b + side, indexing="ij",
                                 sparse=True)

    def p_of(ma, sa, mb, sb):
        sa, sb = np.maximum(sa, 0.0), np.maximum(sb, 0.0)
        if spread == "se":
            sa, sb = sa * math.sqrt(n_a), sb * math.sqrt(n_b)
        va, vb = sa ** 2 / n_a, sb ** 2 / n_b
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.abs(ma - mb) / np.sqrt(va + vb)
            dof = (va + vb) ** 2 / (va ** 2 / (n_a - 1) + vb ** 2 / (n_b - 1))
        return 2 * stats.t.sf(t, dof)

    box = p_of(ma, sa, mb, sb)
    return WelchRange(float(p_of(mean_a, spread_a, mean_b, spread_b)), float(np.nanmin(box)), float(np.nanmax(box)),
                      float(alpha), spread)


# --------------------------------------------------------------------------- seeds
@dataclass(frozen=True)
class SeedPasses:
    """How many independent seeds pass :func:`noise_check`, against what a law that holds gives."""

    passes: int
    n: int
    alpha: float
    needed: int      # fewer passes than this has probability below alpha when the law holds

    @property
    def ok(self) -> bool:
        return bool(self.passes >= self.needed)

    def sentence(self) -> str:
        return (f"{self.passes} of {self.n} seeds pass at the {self.alpha:.0%} level (a law that holds passes at "
                f"least {self.needed} with probability {1 - self.alpha:.0%})")


def seed_passes(z_by_seed: Sequence[Sequence[float]], alpha: float = 0.05) -> SeedPasses:
    """Count the seeds whose deviations ``z`` pass :func:`noise_check` at level ``alpha`` (``prop4_conditioning``).

    Parameters
    ----------
    z_by_seed : sequence of sequences of float
        One array of standardized deviations per independent seed.

    Each seed passes with probability at least ``1 - alpha`` when the law holds, so the count is
    judged against :func:`mrgrpo.analysis.thresholds.min_passes` (17 of 20 at 5%). It replaces
    re-simulating the worst point of one seed, which lets a run pass whenever its largest
    deviation does not replicate, however the other points fare.
    """
    checks = [noise_check(z, alpha) for z in z_by_seed]
    if not checks:
        raise ValueError("seed_passes needs at least one seed")
    return SeedPasses(sum(c.ok for c in checks), len(checks), float(alpha),
                      min_passes(len(checks), 1 - alpha, alpha))
