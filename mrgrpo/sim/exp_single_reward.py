"""Single-channel experiments: sigma-hat bias (figS3), U-statistic bias and variance (fig2a, fig2b)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from mrgrpo.core.checks import SeedLike, as_generator
from mrgrpo.sim import exact
from mrgrpo.core import theory
from mrgrpo.sim.mc import blockwise, frame, mean_se, row

__all__ = ["figS3", "fig2a", "fig2b"]


# =========================================================================== sigma-hat bias
def _selfnorm_bias_trials(kind: str, n: int, m: int, rng, reduced: bool, tau: float = 0.5):
    """Per-trial ``ghat = mean_j A_j g_j`` (single channel, ``g = r + tau eps``) and ``theta``.

    ``theta = Cov(r, g) / sigma = sigma``. Given the rewards, ``mean_j A_j eps_j``
    is ``N(0, 1/m)`` exactly (``sum_j A_j^2 = m`` when the group is not
    constant), so ``ghat = sigma_hat + tau Z / sqrt(m)``: the reduced sampler
    draws ``sigma_hat`` (``m sigma_hat^2 ~ chi2_{m-1}`` for Gaussian rewards,
    ``k ~ Bin(m, 1/2)`` for Bernoulli) and ``Z``. It ignores ``eps = 1e-8``.
    """
    theta = 1.0 if kind == "gauss" else 0.5
    if reduced:
        if kind == "gauss":
            sh = np.sqrt(rng.chisquare(m - 1, n) / m)
        else:
            k = rng.binomial(m, 0.5, n)
            sh = np.sqrt(k / m * (1 - k / m))
        return np.where(sh > 0, sh + tau * rng.standard_normal(n) / np.sqrt(m), 0.0), theta

    from mrgrpo.core.advantage import group_standardize

    def one(k):
        r = rng.standard_normal((k, m)) if kind == "gauss" else (rng.random((k, m)) < 0.5).astype(float)
        g = r + tau * rng.standard_normal((k, m))
        return ((group_standardize(r) * g).mean(-1),)
    return blockwise(n, 3 * m, one)[0], theta


def figS3(n_trials: int = 400000, seed: SeedLike = 0, ms=(4, 6, 8, 12, 16, 24, 32, 48, 64),
          reduced: bool = True) -> pd.DataFrame:
    """Self-normalization bias ``m (E[ghat] - theta)`` for Gaussian and Bernoulli(1/2) rewards.

    ``E[ghat] = E[sigma_hat]`` exactly in this model, so the theory is
    ``m (E[sigma_hat] - sigma)``: the Gamma formula
    (:func:`mrgrpo.core.theory.gaussian_sigma_hat_mean`) for Gaussian rewards and the
    exact binomial sum (:func:`mrgrpo.sim.exact.bernoulli_sigma_hat_mean`)
    for Bernoulli(1/2). Column ``asymptote`` is the ``m -> inf`` limit:
    ``-3 theta / 4`` (Gaussian) and ``-theta / 2`` (Bernoulli(1/2); in units of
    sigma the leading coefficient is ``-(1/2 + (kurtosis - 1)/8)``, kurtosis 1).
    """
    rng = as_generator(seed)
    rows = []
    for kind in ("gauss", "bern"):
        for m in ms:
            m = int(m)
            gh, theta = _selfnorm_bias_trials(kind, n_trials, m, rng, reduced)
            mu, se = mean_se(m * (gh - theta))
            if kind == "gauss":
                t = m * (theory.gaussian_sigma_hat_mean(m, 1.0) - 1.0)
                asym = -0.75 * theta
            else:
                t = m * (exact.bernoulli_sigma_hat_mean(m, 0.5) - 0.5)
                asym = -0.5 * theta
            r_ = row("figS3", "m_bias", t, mu, se, n_trials, reward=kind, m=m, theta=theta)
            r_["asymptote"] = asym
            rows.append(r_)
    return frame(rows, published={"gauss": "-3/4 theta", "bern": "-theta/2 (theta = 0.5)"})


# =========================================================================== single reward (Zhou)
def _single_reward_trials(n: int, m: int, p: float, a: float, tau: float, rng, reduced: bool):
    """Per-trial oracle, self (GRPO) and leave-one-out estimators of ``theta = Cov(r, g)``.

    ``r ~ Bern(p)``, ``g = a r + tau eps``. Reduced sampler: with ``k`` the
    count of ones, ``self = a s_k + tau N_1`` with ``s_k = (k/m)(1 - k/m)`` and
    ``N_1 = mean_j (r_j - rbar) eps_j ~ N(0, s_k / m)``; ``loo = m/(m-1) self``
    (exact algebra); ``oracle = a (k/m)(1 - p) + tau (N_1 + (rbar - p) N_2)`` with
    ``N_2 = mean_j eps_j ~ N(0, 1/m)`` independent of ``N_1``.
    """
    if reduced:
        k = rng.binomial(m, p, n)
        rbar = k / m
        s = rbar * (1 - rbar)
        n1 = np.sqrt(s / m) * rng.standard_normal(n)
        n2 = rng.standard_normal(n) / np.sqrt(m)
        est_self = a * s + tau * n1
        est_or = a * rbar * (1 - p) + tau * (n1 + (rbar - p) * n2)
        return est_or, est_self, m / (m - 1) * est_self

    def one(kk):
        r = (rng.random((kk, m)) < p).astype(float)
        g = a * r + tau * rng.standard_normal((kk, m))
        rbar = r.mean(-1, keepdims=True)
        rloo = (r.sum(-1, keepdims=True) - r) / (m - 1)
        return (((r - p) * g).mean(-1), ((r - rbar) * g).mean(-1), ((r - rloo) * g).mean(-1))
    return blockwise(n, 3 * m, one)


_MS2 = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)


def fig2a(n_trials: int = 200000, seed: SeedLike = 0, ms=_MS2, p: float = 0.5, a: float = 1.0,
          tau: float = 0.5, reduced: bool = True) -> pd.DataFrame:
    """Single-reward baseline bias: the self (GRPO) baseline has mean ``(m-1)/m theta``,
    leave-one-out and oracle are unbiased (``theta = a p (1 - p)``).

    Theory: :func:`mrgrpo.core.theory.baseline_estimator_mean` with ``theta`` from
    :func:`mrgrpo.core.theory.single_reward_theta`.
    """
    rng = as_generator(seed)
    theta = float(theory.single_reward_theta(p, a))
    rows = []
    for m in ms:
        m = int(m)
        e_or, e_self, e_loo = _single_reward_trials(n_trials, m, p, a, tau, rng, reduced)
        for name, x in (("oracle", e_or), ("self", e_self), ("loo", e_loo)):
            t = theory.baseline_estimator_mean(theta, m, name)
            mu, se = mean_se(x)
            rows.append(row("fig2a", f"mean_{name}", t, mu, se, n_trials, m=m))
    return frame(rows, theta=theta, published={"self at m=4": {"sim": 0.1876, "theory": 0.1875}})


def _var_se(x: np.ndarray) -> tuple[float, float]:
    """Unbiased sample variance and its standard error from the fourth central moment."""
    n = len(x)
    d = x - x.mean()
    v = float(d @ d / (n - 1))
    m4 = float(np.mean(d ** 4))
    return v, float(np.sqrt(max(m4 - v * v * (n - 3) / (n - 1), 0.0) / n))


def _wls(X: np.ndarray, y: np.ndarray, wts: np.ndarray) -> tuple[np.ndarray, float]:
    """Weighted least squares: coefficients and the weighted residual sum of squares."""
    Xw = X * np.sqrt(wts)[:, None]
    yw = y * np.sqrt(wts)
    coef, *_ = np.linalg.lstsq(Xw, yw, rcond=None)
    return coef, float(np.sum((yw - Xw @ coef) ** 2))


def fig2b(n_trials: int = 200000, seed: SeedLike = 0, ms=_MS2, p: float = 0.5, a: float = 1.0,
          tau: float = 0.5, reduced: bool = True) -> pd.DataFrame:
    """Variance of the leave-one-out U-statistic vs ``m``, fit ``a/m + b/m^2``.

    Theory: the exact variance (binomial enumeration,
    :func:`mrgrpo.sim.exact.single_reward_moments`). ``attrs`` carry the
    paper's weighted fit (weights ``1 / var^2``) of the simulated variances (with
    SEs propagated from the variances' SEs, weights held fixed), the
    same fit of the exact variances, and a goodness-of-fit test of a pure
    ``a/m`` law with weights ``1 / se^2`` (chi-square with ``len(ms) - 1``
    degrees of freedom; ``p_pure`` is its p-value; the two-term law's p-value is
    ``p_two_term``).
    """
    from scipy import stats
    rng = as_generator(seed)
    rows, v_sim, v_se, v_ex = [], [], [], []
    for m in ms:
        m = int(m)
        _, _, e_loo = _single_reward_trials(n_trials, m, p, a, tau, rng, reduced)
        v, se = _var_se(e_loo)
        t = exact.single_reward_moments(m, p, a, tau)["var_loo"]
        rows.append(row("fig2b", "var_loo", t, v, se, n_trials, m=m))
        v_sim.append(v), v_se.append(se), v_ex.append(t)
    ms_f = np.asarray(ms, float)
    v_sim, v_se, v_ex = map(np.asarray, (v_sim, v_se, v_ex))
    X2 = np.column_stack([1 / ms_f, 1 / ms_f ** 2])
    coef_paper, _ = _wls(X2, v_sim, 1 / v_sim ** 2)
    Wp = X2.T * (1 / v_sim ** 2)
    A = np.linalg.solve(Wp @ X2, Wp)                     # coef = A y: propagate the SEs of y
    coef_paper_se = np.sqrt(np.diag(A @ np.diag(v_se ** 2) @ A.T))
    coef_exact, _ = _wls(X2, v_ex, 1 / v_ex ** 2)
    coef_se, chi2_two = _wls(X2, v_sim, 1 / v_se ** 2)
    c1, chi2_one = _wls(ms_f[:, None] ** -1.0, v_sim, 1 / v_se ** 2)
    k = len(ms_f)
    return frame(rows, fit_a=float(coef_paper[0]), fit_b=float(coef_paper[1]),
                 fit_a_se=float(coef_paper_se[0]), fit_b_se=float(coef_paper_se[1]),
                 exact_fit_a=float(coef_exact[0]), exact_fit_b=float(coef_exact[1]),
                 pure_a=float(c1[0]), chi2_pure=chi2_one, p_pure=float(stats.chi2.sf(chi2_one, k - 1)),
                 chi2_two_term=chi2_two, p_two_term=float(stats.chi2.sf(chi2_two, k - 2)),
                 published={"a": 0.058, "b": 0.298})
