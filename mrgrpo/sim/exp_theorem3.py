"""Theorem 3: oracle NA MSE (fig1a, fig1c) and the self-normalized lift (figS1, figS2)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from mrgrpo.core.checks import SeedLike, as_generator
from mrgrpo.core import theory
from mrgrpo.sim.common import W2, corr2, wCw2
from mrgrpo.sim.mc import blockwise, frame, mean_se, row
from mrgrpo.sim.generators import gaussian_rewards
from mrgrpo.core.theory import gaussian_expected_correlation

__all__ = ["fig1a", "fig1c", "figS1", "figS2"]


# =========================================================================== Theorem 3 (oracle)
def _oracle_const_score(n: int, m: int, rho: float, w, rng) -> np.ndarray:
    """Per-trial ``ghat^2`` of oracle NA with constant score: ``ghat = mean_j w^T z_j``."""
    C = corr2(rho)

    def one(k):
        z = gaussian_rewards(k, m, C, seed=rng)       # mu = 0, sigma = 1: z is already standardized
        ghat = (z @ w).mean(axis=-1)
        return (ghat * ghat,)
    return blockwise(n, 2 * m, one)[0]


def fig1a(n_trials: int = 40000, seed: SeedLike = 0, ms=(2, 4, 8, 16, 32, 64, 128),
          rhos=(-0.6, 0.0, 0.6), w=W2) -> pd.DataFrame:
    """Oracle NA gradient MSE vs group size: ``MSE = w^T C w / m`` (constant score).

    Returns rows ``(rho, m)`` with quantity ``"mse"``; theory from
    :func:`mrgrpo.core.theory.thm3_oracle_mse` with ``tau2 = 1``.
    """
    rng, w = as_generator(seed), np.asarray(w, float)
    rows = []
    for rho in rhos:
        for m in ms:
            mu, se = mean_se(_oracle_const_score(n_trials, int(m), rho, w, rng))
            rows.append(row("fig1a", "mse", theory.thm3_oracle_mse(w, corr2(rho), int(m), 1.0), mu, se,
                            n_trials, rho=float(rho), m=int(m)))
    return frame(rows, published="MSE = wCw/m to 3 significant digits")


def fig1c(n_trials: int = 40000, seed: SeedLike = 0, rhos=None, m: int = 64, w=W2) -> pd.DataFrame:
    """Coefficient ``m * MSE`` of oracle NA vs rho at ``m = 64``: traces ``w^T C w = 2 + 2 rho``."""
    rng, w = as_generator(seed), np.asarray(w, float)
    rhos = np.round(np.linspace(-0.9, 0.9, 19), 12) if rhos is None else np.asarray(rhos, float)
    rows = []
    for rho in rhos:
        mu, se = mean_se(m * _oracle_const_score(n_trials, m, float(rho), w, rng))
        rows.append(row("fig1c", "m_mse", m * theory.thm3_oracle_mse(w, corr2(rho), m, 1.0), mu, se,
                        n_trials, rho=float(rho), m=m))
    return frame(rows, published="m*MSE traces 2 + 2 rho")


# =========================================================================== Theorem 3 (self-normalized)
def _selfnorm_trials(n: int, m: int, rho: float, w, rng) -> tuple[np.ndarray, ...]:
    """Per-trial ``m ghat^2`` (oracle and self-normalized NA, random score) and ``w^T Chat w``."""
    from mrgrpo.core.advantage import compute_advantage_batch
    from mrgrpo.core.stats import sample_correlation
    C = corr2(rho)

    def one(k):
        r = gaussian_rewards(k, m, C, seed=rng)
        g = rng.standard_normal((k, m))
        g_or = ((r @ w) * g).mean(-1)
        g_sf = (compute_advantage_batch(r, w, "na") * g).mean(-1)
        wcw = np.einsum("i,nij,j->n", w, sample_correlation(r), w)
        return m * g_or * g_or, m * g_sf * g_sf, wcw
    return blockwise(n, 4 * m, one)


def _selfnorm_rows(exp: str, n: int, m: int, rho: float, w, rng, **setting) -> list[dict]:
    C = corr2(rho)
    orc, sf, wcw = _selfnorm_trials(n, m, rho, w, rng)
    pred = m * theory.thm3_selfnorm_mse(w, C, m, 1.0)            # w^T E[Chat] w, Fisher expansion
    ex = float(w @ w + 2 * w[0] * w[1] * gaussian_expected_correlation(rho, m))
    out = []
    for q, x, t in (("m_mse_oracle", orc, wCw2(w, rho)),
                    ("m_mse_self", sf, pred),
                    ("E_wChatw", wcw, pred),
                    ("m_mse_self - E_wChatw", sf - wcw, 0.0)):   # Thm 3's exact identity, paired
        mu, se = mean_se(x)
        r_ = row(exp, q, t, mu, se, n, rho=float(rho), m=int(m), **setting)
        r_["wCw"] = wCw2(w, rho)
        r_["exact"] = 0.0 if q.startswith("m_mse_self -") else (r_["wCw"] if q == "m_mse_oracle" else ex)
        out.append(r_)
    return out


def figS1(n_trials: int = 120000, seed: SeedLike = 0, ms=(4, 8, 16, 32, 64, 128), rhos=(0.0, 0.6),
          check_rhos=(-0.6, 0.0, 0.6), check_m: int = 32, w=W2) -> pd.DataFrame:
    """Self-normalized NA (random score): ``m MSE`` vs ``E[w^T Chat w]`` vs ``w^T C w``.

    Panel ``"grid"`` sweeps ``m`` for ``rhos``; panel ``"check"`` is the paper's
    table at ``m = 32`` (fresh draws). Quantities: ``m_mse_oracle`` (theory
    ``w^T C w``), ``m_mse_self`` and ``E_wChatw`` (theory ``m`` times
    :func:`mrgrpo.core.theory.thm3_selfnorm_mse`, the Fisher expansion of ``E[Chat]``), and
    their paired difference (theory 0: Theorem 3's exact identity). Column
    ``exact``: the exact Gaussian ``w^T E[Chat] w`` (Hotelling's formula,
    :func:`mrgrpo.core.theory.gaussian_expected_correlation`; ``R = 2``).
    """
    rng, w = as_generator(seed), np.asarray(w, float)
    rows = []
    for rho in rhos:
        for m in ms:
            rows += _selfnorm_rows("figS1", n_trials, int(m), rho, w, rng, panel="grid")
    for rho in check_rhos:
        rows += _selfnorm_rows("figS1", n_trials, check_m, rho, w, rng, panel="check")
    return frame(rows, published={"m=32, rho=0.6": {"m_mse_self": 3.1849, "E_wChatw": 3.1864,
                                                    "wCw": 3.2000}})


def figS2(n_trials: int = 80000, seed: SeedLike = 0, rhos=None, m: int = 16, w=W2) -> pd.DataFrame:
    """Self-normalized ``m MSE`` and ``E[w^T Chat w]`` vs rho at ``m = 16`` (see :func:`figS1`)."""
    rng, w = as_generator(seed), np.asarray(w, float)
    rhos = np.round(np.linspace(-0.9, 0.9, 15), 12) if rhos is None else np.asarray(rhos, float)
    rows = []
    for rho in rhos:
        rows += _selfnorm_rows("figS2", n_trials, m, float(rho), w, rng)
    return frame(rows)
