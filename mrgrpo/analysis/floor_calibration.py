"""How often the floor check says "fails" when it should not: rejection rates over repeated corpora.

:func:`floor_calibration` draws ``n_rep`` corpora from a reward generator,
runs :func:`mrgrpo.analysis.floor.floor_check` on each and counts how often
each test rejects: the check's two answers (the identity on non-degenerate
groups, the degenerate groups' cost against the margin), its verdict, and the
tests it replaced or keeps as references (floor against target over all
groups, the unconditional ``expected`` test, Theorem 3's first order, Fisher's
expansion). Where the identity holds exactly, a calibrated test at level 95%
rejects about 5% of the time; a test that rejects far more often false-alarms.
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from mrgrpo.core.checks import as_generator

from .floor import floor_check
from .thresholds import FLOOR_COST_MARGIN

__all__ = ["floor_calibration", "CALIBRATION_COLUMNS"]

#: Rejection rates reported per design, in order: column -> what rejects.
CALIBRATION_COLUMNS = {
    "identity (non-degenerate)": "the identity's CI on non-degenerate groups excludes 0",
    "cost > margin": "the degenerate groups' cost lies wholly beyond the margin",
    "verdict fails": "the verdict is not 'agrees'",
    "floor vs target, all groups": "the old test: the CI of floor - target over all groups excludes 0",
    "expected, all groups": "the unconditional test against the exact value over all groups",
    "first order": "Theorem 3's first-order expansion (agrees_first_order false)",
    "Fisher": "Fisher's Gaussian-only expansion (agrees_fisher false)",
}


def _excludes_zero(ci) -> bool:
    return bool(ci[0] > 0.0 or ci[1] < 0.0)


def floor_calibration(designs: Mapping[str, Callable[[np.random.Generator], np.ndarray]], w, m: int,
                      n_rep: int = 40, seed=0, n_boot: int = 500, n_subsample: int = 256, ci: float = 0.95,
                      margin: float = FLOOR_COST_MARGIN):
    """Rejection rates of the floor check's tests over ``n_rep`` corpora per design.

    Parameters
    ----------
    designs : mapping ``name -> draw``
        ``draw(rng)`` returns one corpus of rewards, shape ``(P, K, M, R)`` with ``M >= m``.
    w : array_like, shape ``(R,)``
    m : int
        The group size checked.
    n_rep : int
        Corpora per design (each with its own generator and bootstrap seed).
    seed, n_boot, n_subsample, ci, margin
        As :func:`mrgrpo.analysis.floor.floor_check`; ``seed`` seeds the whole calibration.

    Returns
    -------
    pandas.DataFrame
        One row per design: the rejection rate of each test in :data:`CALIBRATION_COLUMNS`,
        the mean share of degenerate groups (``degenerate``), their mean cost as a share of
        the floor (``cost``) and ``n_rep``.
    """
    import pandas as pd

    if isinstance(n_rep, (bool, np.bool_)) or not isinstance(n_rep, (int, np.integer)) or n_rep < 1:
        raise ValueError(f"n_rep must be a positive int, got {n_rep!r}")
    if not designs:
        raise ValueError("floor_calibration needs at least one design")
    root = as_generator(seed)
    rows = {}
    for name, draw in designs.items():
        hits = np.zeros(len(CALIBRATION_COLUMNS))
        deg = cost = 0.0
        for _ in range(n_rep):
            rng = np.random.default_rng(root.integers(2**63))
            d = floor_check(draw(rng), w, m_grid=[m], n_boot=n_boot, seed=rng, ci=ci, n_subsample=n_subsample,
                            margin=margin).per_m[m]
            hits += [not d["holds_nondegenerate"], d["costly"], not d["agrees"], _excludes_zero(d["deficit_ci"]),
                     _excludes_zero(d["expected_diff_ci"]), not d["agrees_first_order"], not d["agrees_fisher"]]
            deg += d["frac_degenerate"]
            cost += d["cost_degenerate"]
        rows[name] = {**dict(zip(CALIBRATION_COLUMNS, hits / n_rep)), "degenerate": deg / n_rep,
                      "cost": cost / n_rep, "n_rep": int(n_rep)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("design")
