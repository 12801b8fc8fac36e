"""Theorem 3, the MSE law of the NA gradient estimator, and the expected sample correlation."""
from __future__ import annotations

import numpy as np
from scipy.special import hyp2f1

from mrgrpo.core.checks import check_eps
from mrgrpo.core.theory.bias import log_gamma_half_ratio_remainder
from mrgrpo.core.theory.validation import (as_batch_vector, as_group_size, as_output, broadcast_batches,
                                           check_correlation)

__all__ = ["thm3_oracle_mse", "expected_sample_correlation", "expected_sample_correlation_unchecked",
           "thm3_selfnorm_mse", "gaussian_expected_correlation"]


def _quadratic(w: np.ndarray, M: np.ndarray) -> np.ndarray:
    """:math:`w^\\top M w` over broadcast batches: ``(..., R)``, ``(..., R, R)`` -> ``(...)``."""
    return np.einsum("...i,...ij,...j->...", w, M, w)


def thm3_oracle_mse(w, C, m, tau2: float = 1.0):
    """Theorem 3, oracle NA: :math:`\\mathrm{MSE} = \\frac{\\tau^2}{m}\\, w^\\top C w` (exact, ``m >= 1``).

    Parameters
    ----------
    w : array_like, shape ``(R,)`` or ``(..., R)``
    C : array_like, shape ``(R, R)`` or ``(..., R, R)``
    m : int or array_like
    tau2 : float
        Score variance :math:`\\tau^2`.

    Returns
    -------
    float, or numpy.ndarray of the broadcast of ``w``'s and ``C``'s leading
    dimensions with ``m``'s shape (one ``C`` and an array ``m``: shaped like ``m``)
    """
    C = check_correlation(C)
    w = as_batch_vector(w, "w", C.shape[-1])
    mm = as_group_size(m, minimum=1)
    tau2 = check_eps(tau2, "tau2")
    broadcast_batches(w=w.shape[:-1], C=C.shape[:-2], m=mm.shape)
    return as_output(tau2 * _quadratic(w, C) / mm)


def expected_sample_correlation_unchecked(C: np.ndarray, m) -> np.ndarray:
    """Kernel of :func:`expected_sample_correlation` (no checks)."""
    mm = np.asarray(m, dtype=float)[..., None, None]
    out = C - C * (1.0 - C**2) / (2.0 * mm)
    R = C.shape[-1]
    out[..., np.arange(R), np.arange(R)] = 1.0
    return out


def expected_sample_correlation(C, m) -> np.ndarray:
    """Fisher's first-order expansion of the expected sample correlation.

    .. math::

        \\mathbb E[\\hat C_{\\ell k}] \\approx C_{\\ell k} - \\frac{C_{\\ell k}(1 - C_{\\ell k}^2)}{2m}
        \\quad (\\ell \\ne k), \\qquad \\mathbb E[\\hat C_{\\ell\\ell}] = 1,

    with an :math:`O(m^{-2})` remainder (the exact Gaussian value is
    :func:`gaussian_expected_correlation`).

    Parameters
    ----------
    C : array_like, shape ``(R, R)`` or ``(..., R, R)``
    m : int or array_like, ``>= 2``

    Returns
    -------
    numpy.ndarray, shape ``batch + (R, R)``, ``batch`` the broadcast of ``C``'s
    leading dimensions with ``m``'s shape (one ``C``: ``m.shape + (R, R)``)
    """
    C = check_correlation(C)
    mm = as_group_size(m)
    broadcast_batches(C=C.shape[:-2], m=mm.shape)
    return expected_sample_correlation_unchecked(C, mm)


def thm3_selfnorm_mse(w, C, m, tau2: float = 1.0):
    """Theorem 3, self-normalized NA: :math:`\\frac{\\tau^2}{m}\\, w^\\top \\mathbb E[\\hat C] w`.

    :math:`\\mathbb E[\\hat C]` from :func:`expected_sample_correlation` (the
    identity :math:`\\mathrm{MSE} = \\frac{\\tau^2}{m} w^\\top \\mathbb E[\\hat C] w` is
    exact; the expansion of :math:`\\mathbb E[\\hat C]` is first order).

    Parameters
    ----------
    w, C, m, tau2
        As in :func:`thm3_oracle_mse` (``m >= 2``).

    Returns
    -------
    float, or numpy.ndarray shaped as in :func:`thm3_oracle_mse`
    """
    C = check_correlation(C)
    w = as_batch_vector(w, "w", C.shape[-1])
    mm = as_group_size(m)
    tau2 = check_eps(tau2, "tau2")
    broadcast_batches(w=w.shape[:-1], C=C.shape[:-2], m=mm.shape)
    return as_output(tau2 * _quadratic(w, expected_sample_correlation_unchecked(C, mm)) / mm)


def gaussian_expected_correlation(rho, m):
    """Exact :math:`\\mathbb E[\\hat\\rho]` of the sample correlation of ``m`` bivariate-normal pairs.

    Hotelling's (1953) closed form,

    .. math::

        \\mathbb E[\\hat\\rho] = \\rho\\, \\frac{\\Gamma(m/2)^2}{\\Gamma(\\frac{m-1}{2})\\,\\Gamma(\\frac{m+1}{2})}\\,
        {}_2F_1\\big(\\tfrac12, \\tfrac12; \\tfrac{m+1}{2}; \\rho^2\\big)
        = \\rho - \\frac{\\rho(1-\\rho^2)}{2m} + O(m^{-2}),

    whose expansion is Fisher's (:func:`expected_sample_correlation`). The
    Gamma ratio is evaluated without cancellation for large ``m``; at ``m = 2``
    it gives :math:`\\frac{2}{\\pi}\\arcsin\\rho` (the sample correlation is :math:`\\pm 1`).

    Parameters
    ----------
    rho : float or array_like, in ``[-1, 1]``
        Population correlation.
    m : int or array_like, ``>= 2``
        Number of pairs; broadcast against ``rho``.

    Returns
    -------
    float, or numpy.ndarray (broadcast of ``rho`` and ``m``)
    """
    r = np.asarray(rho, dtype=float)
    if not np.isfinite(r).all() or (np.abs(r) > 1).any():
        raise ValueError(f"rho must lie in [-1, 1], got {rho!r}")
    mm = as_group_size(m)
    # log of the Gamma ratio = L((m-1)/2) - L(m/2), L(x) = log Gamma(x + 1/2) - log Gamma(x)
    log_k = 0.5 * np.log1p(-1.0 / mm) + log_gamma_half_ratio_remainder((mm - 1.0) / 2.0) \
        - log_gamma_half_ratio_remainder(mm / 2.0)
    return as_output(r * np.exp(log_k) * hyp2f1(0.5, 0.5, (mm + 1.0) / 2.0, r * r))
