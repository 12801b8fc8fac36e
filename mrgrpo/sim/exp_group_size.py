"""Group size under a fixed rollout budget: the N^(1/3) law (fig2c) and m* vs rho (figM1)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from mrgrpo.core.checks import SeedLike, as_generator
from mrgrpo.sim import exact
from mrgrpo.sim.common import W2, corr2, wCw2
from mrgrpo.sim.mc import blockwise, frame, mean_se, row
from mrgrpo.sim.generators import gaussian_rewards

__all__ = ["fig2c", "figM1"]


# =========================================================================== budget law
_M_GRID_2C = (2, 3, 4, 6, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224,
              256, 320, 384)
_BUDGETS = (512, 2048, 8192, 32768, 131072, 524288)


def _refined_argmin(m_grid: np.ndarray, mse: np.ndarray) -> float:
    """Grid argmin refined by a quadratic in ``log2 m`` through it and its neighbours."""
    j = int(np.argmin(mse))
    lo, hi = max(j - 1, 0), min(j + 2, len(m_grid))
    if hi - lo == 3:
        aq, bq, _ = np.polyfit(np.log2(m_grid[lo:hi].astype(float)), np.log(mse[lo:hi]), 2)
        if aq > 0:
            return float(2 ** (-bq / (2 * aq)))
    return float(m_grid[j])


def _loglog_slope(N: np.ndarray, mstar: np.ndarray) -> tuple[float, float]:
    """OLS slope of ``log m*`` on ``log N`` and its SE (NaN with fewer than 3 budgets)."""
    if len(N) < 3:
        return float("nan"), float("nan")
    x, y = np.log(N), np.log(mstar)
    xb, yb = x.mean(), y.mean()
    slope = np.sum((x - xb) * (y - yb)) / np.sum((x - xb) ** 2)
    resid = y - (yb + slope * (x - xb))
    se = np.sqrt(np.sum(resid ** 2) / max(len(x) - 2, 1)) / np.sqrt(np.sum((x - xb) ** 2))
    return float(slope), float(se)


def _budget_trials(N: int, m: int, n_runs: int, rng, reduced: bool, a=1.0, tau=0.5, lo=0.1, hi=0.9):
    """Per-run budget-averaged self-baseline estimate (``P = N // m`` prompts, ``p_i ~ U(lo, hi)``).

    Reduced sampler: per prompt ``e_i = a s_k + tau N(0, s_k / m)`` depends on the
    rewards only through the count ``k_i``, i.i.d. across prompts with the
    uniform-mixture binomial law; the run draws the histogram of the ``P``
    counts (multinomial) and one Gaussian for the summed noise.
    """
    P = max(N // m, 1)
    if reduced:
        pk = exact._mixture_pmf(m, lo, hi)
        counts = rng.multinomial(P, pk / pk.sum(), size=n_runs)            # (n_runs, m+1)
        k = np.arange(m + 1)
        s = k / m * (1 - k / m)
        tot = counts @ s
        return (a * tot + tau * np.sqrt(tot / m) * rng.standard_normal(n_runs)) / P

    def one(kk):
        pis = rng.uniform(lo, hi, (kk, P, 1))
        r = (rng.random((kk, P, m)) < pis).astype(float)
        g = a * r + tau * rng.standard_normal((kk, P, m))
        return (((r - r.mean(-1, keepdims=True)) * g).mean(-1).mean(-1),)
    return blockwise(n_runs, 3 * P * m, one)[0]


def fig2c(n_trials: int = 4000, seed: SeedLike = 0, budgets=_BUDGETS, m_grid=_M_GRID_2C,
          reduced: bool = True) -> pd.DataFrame:
    """Fixed budget ``N = P m``: total MSE of the budget-averaged GRPO estimator vs ``m``.

    ``n_trials`` runs per (N, m) (the paper: 4000). Theory: the exact MSE
    (:func:`mrgrpo.sim.exact.budget_mse_exact`). Rows ``"mse"`` per
    (N, m) and ``"m_star"`` per N (grid argmin refined by a log-quadratic, as in
    the paper; theory from the exact curve, sim from the simulated curve).
    ``attrs``: the fitted exponent of ``m* ~ N^slope`` (sim, its OLS SE, and exact).
    """
    rng = as_generator(seed)
    theta = exact.budget_theta()
    m_grid = np.asarray(m_grid)
    rows, ms_sim, ms_ex = [], [], []
    for N in budgets:
        sims, exs = [], []
        for m in m_grid:
            est = _budget_trials(int(N), int(m), n_trials, rng, reduced)
            mu, se = mean_se((est - theta) ** 2)
            t = exact.budget_mse_exact(int(N), int(m))[0]
            rows.append(row("fig2c", "mse", t, mu, se, n_trials, N=int(N), m=int(m)))
            sims.append(mu), exs.append(t)
        ms_sim.append(_refined_argmin(m_grid, np.asarray(sims)))
        ms_ex.append(_refined_argmin(m_grid, np.asarray(exs)))
        rows.append(row("fig2c", "m_star", ms_ex[-1], ms_sim[-1], np.nan, n_trials, N=int(N), m=np.nan))
    Ns = np.asarray(budgets, float)
    slope, slope_se = _loglog_slope(Ns, np.asarray(ms_sim))
    slope_ex, _ = _loglog_slope(Ns, np.asarray(ms_ex))
    return frame(rows, exponent=slope, exponent_se=slope_se, exponent_exact=slope_ex,
                 published={"exponent": 0.318, "exponent_se": 0.010})


# =========================================================================== m* vs rho
def _mstar_trials(N: int, m: int, rho: float, n_runs: int, rng, w=W2, mu_th=0.5, sig_p=0.2, tau=1.0,
                  reduced: bool = True):
    """Per-run budget-averaged self-normalized NA estimate of the population gradient ``mu_th``.

    ``P = N // m`` prompts with per-prompt gradient ``th_i ~ N(mu_th, sig_p^2)``,
    rewards ``z ~ N(0, C)``, score ``g = th_i (w^T z) / (w^T C w) + tau eps``.

    Reduced sampler (``R = 2``): with ``S`` the ``ddof = 0`` sample covariance of a
    group and ``D = diag(S)^{1/2}``, ``mean_j A_j (w^T z_j) = w^T D^{-1} S w`` and,
    given the rewards, ``mean_j A_j eps_j ~ N(0, w^T Chat w / m)``; ``m S`` is
    Wishart(m - 1, C), drawn by the Bartlett decomposition. The run's summed noise
    is one Gaussian. It ignores ``eps = 1e-8`` in the std.
    """
    P = max(N // m, 1)
    C = corr2(rho)
    wcw = wCw2(w, rho)
    if reduced:
        L = np.linalg.cholesky(C)
        b11 = np.sqrt(rng.chisquare(m - 1, (n_runs, P)))
        b22 = np.sqrt(rng.chisquare(m - 2, (n_runs, P))) if m > 2 else np.zeros((n_runs, P))
        b21 = rng.standard_normal((n_runs, P))
        # m S = (L B)(L B)^T with B = [[b11, 0], [b21, b22]]
        f11 = L[0, 0] * b11
        f21, f22 = L[1, 0] * b11 + L[1, 1] * b21, L[1, 1] * b22
        s11, s22, s12 = f11 * f11, f21 * f21 + f22 * f22, f11 * f21      # entries of m S
        d1, d2 = np.sqrt(s11), np.sqrt(s22)
        k = (w[0] * (w[0] * s11 + w[1] * s12) / d1 + w[1] * (w[0] * s12 + w[1] * s22) / d2) / np.sqrt(m)
        wchw = w[0] ** 2 + w[1] ** 2 + 2 * w[0] * w[1] * s12 / (d1 * d2)
        th = rng.normal(mu_th, sig_p, (n_runs, P))
        noise = tau * np.sqrt(wchw.sum(-1) / m) * rng.standard_normal(n_runs)
        return ((th * k).sum(-1) / wcw + noise) / P

    from mrgrpo.core.advantage import compute_advantage_batch

    def one(k):
        th = rng.normal(mu_th, sig_p, (k, P, 1))
        z = gaussian_rewards((k, P), m, C, seed=rng)
        g = th * (z @ w) / wcw + tau * rng.standard_normal((k, P, m))
        return ((compute_advantage_batch(z, w, "na") * g).mean(-1).mean(-1),)
    return blockwise(n_runs, 4 * P * m, one)[0]


def figM1(n_trials: int = 4000, seed: SeedLike = 0, N: int = 3072, ms=(4, 8, 16, 24, 32, 48, 64),
          rhos=(-0.6, 0.0, 0.6, 0.9), w=W2, reduced: bool = True) -> pd.DataFrame:
    """Budget-optimal group size vs reward correlation (``N = 3072``): ``m*`` is flat in rho.

    Rows ``"mse"`` per (rho, m) (no closed form: theory NaN) and ``"m_star"``
    per rho (grid argmin; theory column: the falsified conjecture
    ``m* ~ sqrt(w^T C w)`` anchored at the simulated ``m*`` for rho = 0).
    """
    rng, w = as_generator(seed), np.asarray(w, float)
    rows, mstar = [], {}
    ms = np.asarray(ms)
    for rho in rhos:
        curve, ses = [], []
        for m in ms:
            mu, se = mean_se((_mstar_trials(N, int(m), rho, n_trials, rng, w, reduced=reduced) - 0.5) ** 2)
            rows.append(row("figM1", "mse", np.nan, mu, se, n_trials, rho=float(rho), m=int(m)))
            curve.append(mu), ses.append(se)
        mstar[float(rho)] = int(ms[int(np.argmin(curve))])
    anchor = mstar.get(0.0, next(iter(mstar.values())))
    for rho, ms_ in mstar.items():
        conj = anchor * np.sqrt(wCw2(w, rho) / wCw2(w, 0.0))
        rows.append(row("figM1", "m_star", conj, ms_, np.nan, n_trials, rho=rho, m=np.nan))
    steps = [list(ms).index(v) for v in mstar.values()]
    return frame(rows, m_star=mstar, grid_steps_spread=int(max(steps) - min(steps)),
                 conjecture_spread=float(np.sqrt(wCw2(w, max(rhos)) / wCw2(w, min(rhos)))),
                 published="m* flat (at most one grid step); conjecture predicts a 2.18x spread")
