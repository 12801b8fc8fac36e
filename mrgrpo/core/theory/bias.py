"""Biases: the Gaussian sigma-hat, the single-reward baseline and Proposition 4's conditioning bias."""
from __future__ import annotations

import numpy as np
from scipy.special import gammaln

from mrgrpo.core.theory.validation import as_group_size, as_output, as_probability

__all__ = ["log_gamma_half_ratio_remainder", "gaussian_sigma_hat_mean", "gaussian_sigma_hat_bias", "single_reward_theta", "baseline_estimator_mean",
           "prop4_beta", "prop4_gamma_star"]


# ----------------------------------------------------------------------------
# figS3: Gaussian sigma-hat bias
# ----------------------------------------------------------------------------
def gaussian_sigma_hat_mean(m, sigma: float = 1.0, *, ddof: int = 0):
    """Exact :math:`\\mathbb E[\\hat\\sigma]` for ``m`` i.i.d. Gaussian draws.

    With :math:`\\hat\\sigma^2 = \\frac{1}{m - \\mathrm{ddof}}\\sum_j (x_j - \\bar x)^2`,

    .. math::

        \\mathbb E[\\hat\\sigma] = \\sigma \\sqrt{\\frac{2}{m - \\mathrm{ddof}}}\\,
        \\frac{\\Gamma(m/2)}{\\Gamma((m-1)/2)}
        = \\sigma\\Big(1 - \\frac{3}{4m} + O(m^{-2})\\Big) \\quad (\\mathrm{ddof}=0),

    (for ``ddof=1`` this is the classical :math:`c_4(m)\\sigma = \\sigma(1 - \\frac{1}{4m} + \\dots)`).
    Evaluated through ``gammaln`` so large ``m`` does not overflow.

    Parameters
    ----------
    m : int or array_like, ``>= 2``
    sigma : float, ``> 0``
    ddof : {0, 1}

    Returns
    -------
    float, or numpy.ndarray shaped like ``m``
    """
    mm = as_group_size(m)
    s = float(sigma)
    if not np.isfinite(s) or s <= 0:
        raise ValueError(f"sigma must be a positive finite number, got {sigma!r}")
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 or 1, got {ddof!r}")
    return as_output(s * np.exp(_log_sigma_hat_ratio(mm, ddof)))


def log_gamma_half_ratio_remainder(x: np.ndarray) -> np.ndarray:
    """:math:`\\log\\Gamma(x + \\tfrac12) - \\log\\Gamma(x) - \\tfrac12\\log x`, accurate to ~1e-15 for ``x >= 1/2``.

    For ``x < 20`` straight from ``gammaln``; above, the difference of two huge
    ``gammaln`` values would cancel, so use the asymptotic series
    :math:`-\\tfrac{1}{8x} + \\tfrac{1}{192x^3} - \\tfrac{1}{640x^5} + \\tfrac{17}{14336x^7} + O(x^{-9})`.
    """
    x = np.asarray(x, dtype=float)
    small = x < 20
    xs = np.where(small, x, 20.0)
    direct = gammaln(xs + 0.5) - gammaln(xs) - 0.5 * np.log(xs)
    xb = np.where(small, 20.0, x)
    series = -1.0 / (8 * xb) + 1.0 / (192 * xb**3) - 1.0 / (640 * xb**5) + 17.0 / (14336 * xb**7)
    return np.where(small, direct, series)


def _log_sigma_hat_ratio(m: np.ndarray, ddof: int) -> np.ndarray:
    """:math:`\\log(\\mathbb E[\\hat\\sigma]/\\sigma)` for ``m >= 2``.

    :math:`\\tfrac12\\log\\frac{2}{m-\\mathrm{ddof}} + \\log\\Gamma(x+\\tfrac12) - \\log\\Gamma(x)`,
    ``x = (m-1)/2``; the two logs combine into
    :math:`\\tfrac12\\log(1 + \\frac{\\mathrm{ddof}-1}{m-\\mathrm{ddof}})`.
    """
    m = np.asarray(m, dtype=float)
    return 0.5 * np.log1p((ddof - 1.0) / (m - ddof)) + log_gamma_half_ratio_remainder((m - 1.0) / 2.0)


def gaussian_sigma_hat_bias(m, sigma: float = 1.0, *, ddof: int = 0):
    """:math:`\\mathbb E[\\hat\\sigma] - \\sigma` (see :func:`gaussian_sigma_hat_mean`).

    ``m * bias -> -3 sigma / 4`` for ``ddof = 0`` (``-sigma / 4`` for ``ddof = 1``);
    computed with ``expm1`` so it stays accurate for very large ``m``.
    """
    mm = as_group_size(m)
    gaussian_sigma_hat_mean(mm, sigma, ddof=ddof)  # validates sigma and ddof
    return as_output(float(sigma) * np.expm1(_log_sigma_hat_ratio(mm, ddof)))


# ----------------------------------------------------------------------------
# fig2a: single-reward baseline bias
# ----------------------------------------------------------------------------
def single_reward_theta(p, a: float = 1.0):
    """Estimand of the fig2a model :math:`r \\sim \\mathrm{Bern}(p)`, :math:`g = a r + \\tau\\varepsilon`:
    :math:`\\theta = \\mathrm{Cov}(r, g) = a\\,p(1-p)`."""
    pp = as_probability(p, "p")
    return as_output(float(a) * pp * (1.0 - pp))


def baseline_estimator_mean(theta, m, baseline: str = "self"):
    """Mean of the single-reward gradient estimator :math:`\\frac1m\\sum_j (r_j - b_j) g_j`.

    For i.i.d. pairs :math:`(r_j, g_j)` with :math:`\\theta = \\mathrm{Cov}(r, g)`:

    - ``"self"`` (GRPO, :math:`b_j = \\bar r` includes rollout ``j``):
      :math:`\\mathbb E = \\frac{m-1}{m}\\,\\theta` (the U-statistic gap);
    - ``"loo"`` (leave-one-out :math:`b_j = \\frac{1}{m-1}\\sum_{k\\ne j} r_k`): :math:`\\theta`, unbiased;
    - ``"oracle"`` (:math:`b_j = \\mathbb E[r]`): :math:`\\theta`.

    Parameters
    ----------
    theta : float or array_like
    m : int or array_like, ``>= 2``
    baseline : {"self", "loo", "oracle"}

    Returns
    -------
    float, or numpy.ndarray (broadcast of ``theta`` and ``m``)
    """
    if baseline not in ("self", "loo", "oracle"):
        raise ValueError(f"unknown baseline {baseline!r}; expected 'self', 'loo' or 'oracle'")
    th = np.asarray(theta, dtype=float)
    if not np.isfinite(th).all():
        raise ValueError(f"theta must be finite, got {theta!r}")
    mm = as_group_size(m)
    if baseline == "self":
        return as_output((mm - 1.0) / mm * th)
    return as_output(np.broadcast_to(th, np.broadcast_shapes(th.shape, mm.shape)).copy())


# ----------------------------------------------------------------------------
# Prop 4: conditioning bias law
# ----------------------------------------------------------------------------
def prop4_beta(p_a, p_b, gamma, alpha_c=1.0, w_b=1.0):
    """Cross-objective bias removed by conditioning (Prop 4), vectorized.

    Under :math:`r_a \\sim \\mathrm{Bern}(p_a) \\perp r_b \\sim \\mathrm{Bern}(p_b)` and
    :math:`g = \\alpha_c (r_a - p_a) + \\alpha_f (r_b - p_b) r_a + \\gamma (r_b - p_b)(1 - r_a) + \\varepsilon`,

    .. math::

        \\beta_{ab} = w_b\\big[\\mathrm{Cov}(r_b, g) - \\mathrm{Cov}(r_b r_a, g)\\big]
                   = w_b\\, p_b (1 - p_a)\\big[\\gamma (1 - p_b) - \\alpha_c p_a\\big]

    (independent of :math:`\\alpha_f`).

    Returns
    -------
    float, or numpy.ndarray (broadcast of the inputs)
    """
    pa = as_probability(p_a, "p_a")
    pb = as_probability(p_b, "p_b")
    g, ac, wb = (np.asarray(x, dtype=float) for x in (gamma, alpha_c, w_b))
    for name, x in (("gamma", g), ("alpha_c", ac), ("w_b", wb)):
        if not np.isfinite(x).all():
            raise ValueError(f"{name} must be finite")
    return as_output(wb * pb * (1.0 - pa) * (g * (1.0 - pb) - ac * pa))


def prop4_gamma_star(p_a, p_b, alpha_c=1.0):
    """Indifference contamination :math:`\\gamma^\\star = \\alpha_c\\, p_a / (1 - p_b)` where
    :math:`\\beta_{ab}` changes sign (1.25 at :math:`p_a = 0.5, p_b = 0.6`).

    Raises
    ------
    ValueError
        if ``p_b == 1`` (no contamination term, :math:`\\gamma^\\star` undefined).
    """
    pa = as_probability(p_a, "p_a")
    pb = as_probability(p_b, "p_b")
    ac = np.asarray(alpha_c, dtype=float)
    if not np.isfinite(ac).all():
        raise ValueError("alpha_c must be finite")
    if (pb == 1.0).any():
        raise ValueError("p_b = 1: the conditioned channel never fails, gamma* is undefined")
    return as_output(ac * pa / (1.0 - pb))
