"""Exact moments of the discrete Tier-1 estimators, by enumeration.

The closed forms of the paper live in :mod:`mrgrpo.core.theory`. The quantities here
are experiment-specific *exact expectations* that need no formula beyond the
model itself: each is a finite sum over the distribution of the group's
sufficient statistics (a binomial count for one Bernoulli channel, a
multinomial count of the four ``(r_a, r_b)`` types for Proposition 4's model),
with the Gaussian score noise integrated out analytically (it enters linearly,
so given the rewards an estimator is Gaussian with a known mean and variance).
They give the simulations an exact target where the paper has none (the
Bernoulli sigma-hat bias, the U-statistic variance, the budget MSE, the
conditioning MSEs).
"""
from __future__ import annotations

from functools import lru_cache
from itertools import combinations_with_replacement

import numpy as np
from scipy import special, stats

__all__ = [
    "bernoulli_sigma_hat_mean",
    "single_reward_moments",
    "budget_mse_exact",
    "budget_theta",
    "prop4_population",
    "prop4_estimator_moments",
    "subgroup_degenerate_prob",
]


# --------------------------------------------------------------------------- one Bernoulli channel
def _binom(m: int, p: float) -> tuple[np.ndarray, np.ndarray]:
    k = np.arange(m + 1)
    return k, stats.binom.pmf(k, m, p)


def bernoulli_sigma_hat_mean(m: int, p: float = 0.5) -> float:
    """Exact :math:`E[\\hat\\sigma]` (``ddof = 0``) of ``m`` Bernoulli(p) draws.

    :math:`\\hat\\sigma = \\sqrt{\\hat p(1-\\hat p)}` with :math:`m\\hat p \\sim \\mathrm{Bin}(m, p)`.
    """
    k, pk = _binom(m, p)
    return float(np.sum(pk * np.sqrt(k / m * (1 - k / m))))


def single_reward_moments(m: int, p: float, a: float, tau: float) -> dict[str, float]:
    """Exact means and variances of the single-reward estimators of fig2a/fig2b.

    Model: ``r ~ Bern(p)``, ``g = a r + tau eps``; per group
    ``oracle = mean_j (r_j - p) g_j``, ``self = mean_j (r_j - rbar) g_j``,
    ``loo = mean_j (r_j - rbar_{-j}) g_j = m/(m-1) * self``.

    Returns
    -------
    dict with ``mean_oracle, mean_self, mean_loo, var_oracle, var_self, var_loo``.
    """
    k, pk = _binom(m, p)
    s = k / m * (1 - k / m)                               # mean_j (r_j - rbar) r_j
    mean_self = a * np.sum(pk * s)
    var_self = a * a * (np.sum(pk * s * s) - np.sum(pk * s) ** 2) + tau ** 2 * np.sum(pk * s) / m
    o_mu = a * (k / m) * (1 - p)                          # mean_j (r_j - p) r_j
    o_var = tau ** 2 * (k * (1 - p) ** 2 + (m - k) * p ** 2) / m ** 2
    mean_or = np.sum(pk * o_mu)
    var_or = np.sum(pk * (o_mu ** 2 + o_var)) - mean_or ** 2
    c = m / (m - 1)
    return {"mean_oracle": float(mean_or), "mean_self": float(mean_self), "mean_loo": float(c * mean_self),
            "var_oracle": float(var_or), "var_self": float(var_self), "var_loo": float(c * c * var_self)}


def _mixture_pmf(m: int, lo: float, hi: float) -> np.ndarray:
    """P(k) for ``k ~ Bin(m, p)``, ``p ~ U(lo, hi)``: (m + 1,) probabilities."""
    k = np.arange(m + 1)
    cdf = special.betainc(k + 1, m - k + 1, hi) - special.betainc(k + 1, m - k + 1, lo)
    return cdf / ((m + 1) * (hi - lo))


def budget_theta(a: float = 1.0, lo: float = 0.1, hi: float = 0.9) -> float:
    """Population target of fig2c: :math:`a\\,E_p[p(1-p)]`, ``p ~ U(lo, hi)``."""
    return float(a * (((hi ** 2 - lo ** 2) / 2) - ((hi ** 3 - lo ** 3) / 3)) / (hi - lo))


def budget_mse_exact(N: int, m: int, a: float = 1.0, tau: float = 0.5, lo: float = 0.1,
                     hi: float = 0.9) -> tuple[float, float, float]:
    """Exact (MSE, bias^2, variance) of fig2c's budget-averaged self-baseline estimator.

    ``P = max(N // m, 1)`` prompts with ``p_i ~ U(lo, hi)``, ``m`` rollouts each,
    ``r ~ Bern(p_i)``, ``g = a r + tau eps``; per prompt
    ``e_i = mean_j (r_j - rbar) g_j``; estimate ``mean_i e_i``; target :func:`budget_theta`.
    """
    P = max(N // m, 1)
    pk = _mixture_pmf(m, lo, hi)
    k = np.arange(m + 1)
    s = k / m * (1 - k / m)
    mean_e = a * np.sum(pk * s)
    var_e = a * a * (np.sum(pk * s * s) - np.sum(pk * s) ** 2) + tau ** 2 * np.sum(pk * s) / m
    bias2 = (mean_e - budget_theta(a, lo, hi)) ** 2
    var = var_e / P
    return float(bias2 + var), float(bias2), float(var)


# --------------------------------------------------------------------------- Proposition 4
# the four rollout types (r_a, r_b)
_TYPES = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])


def _type_probs(p_a, p_b) -> np.ndarray:
    p_a, p_b = np.asarray(p_a, float)[..., None], np.asarray(p_b, float)[..., None]
    ca, cb = _TYPES[:, 0], _TYPES[:, 1]
    return np.where(ca == 1, p_a, 1 - p_a) * np.where(cb == 1, p_b, 1 - p_b)   # (..., 4)


def _type_score(p_a, p_b, gamma, alpha_c, alpha_f) -> np.ndarray:
    """Deterministic part of the score for each type: (..., 4)."""
    e = [np.asarray(v, float)[..., None] for v in (p_a, p_b, gamma, alpha_c, alpha_f)]
    p_a, p_b, gamma, alpha_c, alpha_f = e
    ca, cb = _TYPES[:, 0], _TYPES[:, 1]
    return alpha_c * (ca - p_a) + alpha_f * (cb - p_b) * ca + gamma * (cb - p_b) * (1 - ca)


def prop4_population(p_a, p_b, gamma, alpha_c=1.0, alpha_f=1.0, w=(1.0, 1.0)) -> dict[str, np.ndarray]:
    """Population covariances of Proposition 4's model by summing over the four types.

    Returns ``cov_a_g = Cov(r_a, g)``, ``cov_b_g = Cov(r_b, g)``, ``cov_ab_g = Cov(r_a r_b, g)``,
    ``theta_star = w_a Cov(r_a, g) + w_b Cov(r_a r_b, g)`` and
    ``beta = w_b [Cov(r_b, g) - Cov(r_a r_b, g)]`` (arrays broadcast over the inputs).
    The score has mean 0, so each covariance is ``E[x g]``.
    """
    q = _type_probs(p_a, p_b)
    h = _type_score(p_a, p_b, gamma, alpha_c, alpha_f)
    ca, cb = _TYPES[:, 0], _TYPES[:, 1]
    cov_a = np.sum(q * ca * h, axis=-1)
    cov_b = np.sum(q * cb * h, axis=-1)
    cov_ab = np.sum(q * ca * cb * h, axis=-1)
    wa, wb = float(w[0]), float(w[1])
    return {"cov_a_g": cov_a, "cov_b_g": cov_b, "cov_ab_g": cov_ab,
            "theta_star": wa * cov_a + wb * cov_ab, "beta": wb * (cov_b - cov_ab)}


@lru_cache(maxsize=16)
def _compositions(m: int) -> np.ndarray:
    """All count vectors (n00, n01, n10, n11) summing to m: (K, 4), K = C(m+3, 3)."""
    out = np.array([np.bincount(c, minlength=4) for c in combinations_with_replacement(range(4), m)])
    out.setflags(write=False)
    return out


def _type_features(counts: np.ndarray, m: int, impl: str) -> np.ndarray:
    """Centered per-type rewards ``x_t`` for every composition: (K, 4, 2)."""
    n = counts.astype(float)
    ca, cb = _TYPES[:, 0], _TYPES[:, 1]
    n_pass = n[:, 2] + n[:, 3]
    abar = n_pass / m
    x = np.empty((len(n), 4, 2))
    x[:, :, 0] = ca[None] - abar[:, None]
    if impl in ("none", "loo"):
        x[:, :, 1] = cb[None] - ((n[:, 1] + n[:, 3]) / m)[:, None]
        if impl == "loo":
            x *= m / (m - 1)
    elif impl == "zero_fill":
        x[:, :, 1] = (ca * cb)[None] - (n[:, 3] / m)[:, None]
    elif impl == "subgroup":
        fbar = n[:, 3] / np.maximum(n_pass, 1)
        ok = (n_pass >= 2)[:, None]
        x[:, :, 1] = np.where(ok, ca[None] * (cb[None] - fbar[:, None]), 0.0)
    else:
        raise ValueError(f"impl must be none, loo, zero_fill or subgroup, got {impl!r}")
    return x


def prop4_estimator_moments(m: int, p_a, p_b, gamma, impl: str, alpha_c=1.0, alpha_f=1.0,
                            noise: float = 0.5, w=(1.0, 1.0)) -> dict[str, np.ndarray]:
    """Exact mean and MSE (against ``theta_star``) of a Proposition-4 estimator.

    The estimator is ``mean_j (w . x_j) g_j`` with ``x_j`` the group-centered
    rewards after conditioning (``impl`` = ``"none"``, ``"zero_fill"``,
    ``"subgroup"``, or ``"loo"`` for the unconditioned leave-one-out baseline).
    The expectation runs over the multinomial counts of the four ``(r_a, r_b)``
    types (``C(m+3, 3)`` terms); the Gaussian noise of ``g`` adds
    ``noise^2 sum_j (w . x_j)^2 / m^2`` to the conditional variance.

    Parameters broadcast; the result arrays have their broadcast shape.
    """
    counts = _compositions(m)                                          # (K, 4)
    x = _type_features(counts, m, impl)                                # (K, 4, 2)
    a = x @ np.asarray(w, dtype=float)                                 # (K, 4) advantage per type
    bshape = np.broadcast_shapes(*(np.shape(v) for v in (p_a, p_b, gamma, alpha_c, alpha_f)))
    q = _type_probs(np.broadcast_to(p_a, bshape), np.broadcast_to(p_b, bshape))            # (..., 4)
    h = _type_score(np.broadcast_to(p_a, bshape), np.broadcast_to(p_b, bshape), gamma, alpha_c, alpha_f)
    logq = np.log(np.clip(q, 1e-300, None))[..., None, :]                                   # (..., 1, 4)
    logc = special.gammaln(m + 1) - special.gammaln(counts + 1).sum(axis=1)                # (K,)
    with np.errstate(invalid="ignore"):
        logp = logc + np.sum(np.where(counts > 0, counts * logq, 0.0), axis=-1)            # (..., K)
    prob = np.exp(logp)
    mu = np.sum(counts * a * h[..., None, :], axis=-1) / m                                 # (..., K)
    var = noise ** 2 * np.sum(counts * a * a, axis=-1) / m ** 2                            # (K,)
    theta = prop4_population(p_a, p_b, gamma, alpha_c, alpha_f, w)["theta_star"]
    theta = np.broadcast_to(theta, bshape)
    mean = np.sum(prob * mu, axis=-1)
    mse = np.sum(prob * ((mu - theta[..., None]) ** 2 + var), axis=-1)
    return {"mean": mean, "bias": mean - theta, "mse": mse, "theta_star": theta}


def subgroup_degenerate_prob(m: int, p_a) -> np.ndarray:
    """P(fewer than 2 of ``m`` rollouts pass the gate) = P(Bin(m, p_a) < 2)."""
    return stats.binom.cdf(1, m, np.asarray(p_a, dtype=float))
