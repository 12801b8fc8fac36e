"""Vectorized Monte-Carlo of every Tier-1 experiment of the paper.

Each ``figXX(n_trials=..., seed=0, ...)`` function reproduces one figure of the
paper's synthetic harness and returns a tidy :class:`pandas.DataFrame` with one
row per (setting, quantity): the setting columns, ``theory`` (the closed form
from :mod:`mrgrpo.core.theory`, or an exact enumeration from
:mod:`mrgrpo.sim.exact`; NaN where none exists), ``sim`` (the Monte-Carlo
mean), ``se`` (its standard error, from the simulation itself), ``z`` =
``(sim - theory) / se`` and ``n_trials``. Derived scalars (fitted exponents,
``m*``, published values) sit in ``df.attrs``. The functions live by theme in
``exp_theorem3``, ``exp_influence``, ``exp_single_reward``, ``exp_group_size``
and ``exp_prop4``; this module collects them in :data:`EXPERIMENTS`.

Defaults are the paper's Monte-Carlo sizes and grids (read off its harness
scripts ``grpo_harness.py``, ``grpo_selfnorm.py``, ``grpo_thm4.py``,
``grpo_mstar.py``, ``grpo_prop2.py``). Trials are vectorized (blocks of
trials, never a loop over trials); Python loops run only over a handful of
grid points.

Two conventions from the paper (proofs.md, "Two harness conventions"):
oracle figures use a constant score ``g = 1`` (``ghat`` = mean advantage);
self-normalized figures use a random score ``g ~ N(0, 1)`` independent of the
rewards. MSE is measured against the target 0 as the mean of ``ghat^2``.

Where the estimator depends on the rewards only through a small sufficient
statistic (one Bernoulli channel: the count ``k``; a Gaussian channel: its
sample variance; two Gaussian channels: the Wishart sample covariance;
Proposition 4: the counts of the four ``(r_a, r_b)`` types), ``reduced=True``
(the default of fig2a/b/c, figS3, figM1, figT1/2/3) draws that statistic and
the Gaussian score noise given it. This is exact in distribution (each
sampler's docstring gives the identity) and is checked against the direct
simulation (``reduced=False``) in the tests. figS1/figS2 always simulate
directly through :mod:`mrgrpo.core.advantage` and :mod:`mrgrpo.core.stats`: their
shortcut (``m ghat^2 = w^T Chat w * chi2_1`` given the rewards) is the very
identity those figures test.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from mrgrpo.core.checks import SeedLike
from mrgrpo.sim.mc import scaled
from mrgrpo.sim.exp_group_size import fig2c, figM1
from mrgrpo.sim.exp_influence import fig1b, figP2
from mrgrpo.sim.exp_prop4 import figT1, figT2, figT3
from mrgrpo.sim.exp_single_reward import fig2a, fig2b, figS3
from mrgrpo.sim.exp_theorem3 import fig1a, fig1c, figS1, figS2

__all__ = [
    "fig1a", "fig1b", "fig1c", "figS1", "figS2", "figS3", "fig2a", "fig2b", "fig2c",
    "figM1", "figP2", "figT1", "figT2", "figT3", "EXPERIMENTS", "PAPER_TRIALS", "run_all",
]


# =========================================================================== registry
EXPERIMENTS: dict[str, Callable[..., pd.DataFrame]] = {
    "fig1a": fig1a, "fig1b": fig1b, "fig1c": fig1c,
    "figS1": figS1, "figS2": figS2, "figS3": figS3,
    "fig2a": fig2a, "fig2b": fig2b, "fig2c": fig2c,
    "figM1": figM1, "figP2": figP2,
    "figT1": figT1, "figT2": figT2, "figT3": figT3,
}

# the paper's Monte-Carlo sizes (trials per grid point); figP2 is an exact enumeration
PAPER_TRIALS = {name: fn.__defaults__[0] for name, fn in EXPERIMENTS.items() if name != "figP2"}


def run_all(scale: float = 1.0, seed: SeedLike = 0, only=None, progress: bool = True) -> dict[str, pd.DataFrame]:
    """Run every Tier-1 experiment with ``n_trials = scale *`` the paper's size.

    Parameters
    ----------
    scale : float
        Multiplies each experiment's paper Monte-Carlo size (minimum 200 trials).
    seed : int
        Base seed; experiment ``i`` uses ``seed + i`` so each is reproducible alone.
    only : iterable of str, optional
        Names from :data:`EXPERIMENTS` to run (default: all).
    progress : bool
        Show a tqdm bar over experiments.

    Returns
    -------
    dict name -> DataFrame
    """
    names = list(EXPERIMENTS) if only is None else list(only)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"unknown experiment(s) {unknown}; choose from {list(EXPERIMENTS)}")
    if not (isinstance(scale, (int, float)) and np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    base = int(seed)
    it = names
    if progress:
        from mrgrpo.core.progress import progress_bar
        it = progress_bar(names, desc="Tier-1", unit="exp")
    out = {}
    for name in it:
        fn, s = EXPERIMENTS[name], base + list(EXPERIMENTS).index(name)
        out[name] = fn(seed=s) if name == "figP2" else fn(n_trials=scaled(PAPER_TRIALS[name], scale), seed=s)
    return out
