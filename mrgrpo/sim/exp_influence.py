"""Proposition 1 (influence law, fig1b) and Proposition 2 (resolution lattice, figP2)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from mrgrpo.core.checks import SeedLike, as_generator
from mrgrpo.core import theory
from mrgrpo.sim.common import W2, corr2
from mrgrpo.sim.mc import frame, row
from mrgrpo.sim.generators import gaussian_rewards

__all__ = ["fig1b", "figP2"]


# =========================================================================== Prop 1 (influence)
def _ratio_se(a: np.ndarray, z1: np.ndarray, z2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``Cov(a, z2) / Cov(a, z1)`` along the last axis and its delta-method SE."""
    n = a.shape[-1]
    ac = a - a.mean(-1, keepdims=True)
    p1 = ac * (z1 - z1.mean(-1, keepdims=True))
    p2 = ac * (z2 - z2.mean(-1, keepdims=True))
    i1, i2 = p1.sum(-1) / (n - 1), p2.sum(-1) / (n - 1)
    ratio = i2 / i1
    infl = p2 - ratio[..., None] * p1                    # influence function of the ratio (times I1)
    se = infl.std(-1, ddof=1) / np.sqrt(n) / np.abs(i1)
    return ratio, se


def fig1b(n_trials: int = 200000, seed: SeedLike = 0, ratios=None, rho: float = 0.0,
          w=W2) -> pd.DataFrame:
    """Influence ratio ``I_2 / I_1`` of oracle AN and NA vs ``sigma_2 / sigma_1`` (Prop 1).

    ``I_l = Cov(A, z_l)`` estimated by the sample covariance over ``n_trials``
    i.i.d. reward vectors; AN standardizes ``s = w^T r`` by its known std
    ``sqrt(w^T Sigma w)`` (centred by the sample mean, as the paper's harness).
    Theory from :func:`mrgrpo.core.theory.influence_an` / :func:`~mrgrpo.core.theory.influence_na`.
    """
    rng, w = as_generator(seed), np.asarray(w, float)
    ratios = np.linspace(0.25, 4.0, 16) if ratios is None else np.asarray(ratios, float)
    C = corr2(rho)
    rows = []
    for ratio in ratios:
        sigma = np.array([1.0, ratio])
        z = gaussian_rewards(n_trials, 1, C, seed=rng)[:, 0, :]          # (n, 2) standardized
        r = z * sigma
        a_na = z @ w
        s = r @ w
        a_an = (s - s.mean()) / np.sqrt(w @ (sigma[:, None] * C * sigma[None, :]) @ w)
        for name, a, infl in (("AN", a_an, theory.influence_an(w, sigma, C)),
                              ("NA", a_na, theory.influence_na(w, C))):
            est, se = _ratio_se(a, z[:, 0], z[:, 1])
            infl = np.asarray(infl, float)
            rows.append(row("fig1b", "I2/I1", infl[1] / infl[0], est, se, n_trials,
                            estimator=name, sigma_ratio=float(ratio), rho=float(rho)))
    return frame(rows, published={"AN at 4": 4.05, "NA at 4": 1.003})


# =========================================================================== Prop 2 (lattice)
def figP2(n_trials: int | None = None, seed: SeedLike | None = None, Ls=range(2, 8), w=(1.0, 1.0),
          sigma_het=(1.0, np.sqrt(2.0))) -> pd.DataFrame:
    """Distinct advantage values over an ``L``-level grid, ``R = 2``: exact enumeration.

    No Monte-Carlo: ``n_trials`` and ``seed`` are accepted (so every experiment can be
    called alike) and ignored.

    Rows per ``L``: AN (any sigma), NA with equal sigma, NA with ``sigma = (1, sqrt 2)``;
    ``theory`` is the sum-lattice bound ``(sum w)(L-1)+1`` for AN and equal-sigma NA
    and ``L^R`` for heterogeneous NA (whose bounded-integer condition is reported in
    ``condition``). Counts come from :func:`mrgrpo.core.theory.lattice_count`; ``se = 0``.
    """
    w = np.asarray(w, float)
    sig_eq, sig_het = np.ones_like(w), np.asarray(sigma_het, float)
    published = {"AN": [3, 5, 7, 9, 11, 13], "NA equal sigma": [3, 5, 7, 9, 11, 13],
                 "NA het sigma": [4, 9, 16, 25, 36, 49]}
    rows = []
    for L in Ls:
        L = int(L)
        cases = (("AN", theory.lattice_count(L, w, sig_eq, "an"), theory.sum_lattice_bound(w, L)),
                 ("NA equal sigma", theory.lattice_count(L, w, sig_eq, "na"), theory.sum_lattice_bound(w, L)),
                 ("NA het sigma", theory.lattice_count(L, w, sig_het, "na"), L ** len(w)))
        for name, count, bound in cases:
            r_ = row("figP2", name, bound, count, 0.0, 1, L=L)
            r_["condition"] = bool(theory.product_lattice_condition(w / (sig_het if "het" in name else sig_eq), L))
            pub = published[name]
            r_["published"] = pub[L - 2] if 0 <= L - 2 < len(pub) else np.nan
            rows.append(r_)
    return frame(rows, published=published)
