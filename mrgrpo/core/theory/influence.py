"""Proposition 1, the influence law: how much each channel moves the advantage under AN and NA."""
from __future__ import annotations

import numpy as np

from mrgrpo.core.theory.validation import as_batch_vector, batch_index, broadcast_batches, check_correlation

__all__ = ["influence_an", "influence_na", "influence_an_unchecked", "influence_na_unchecked"]


def influence_an_unchecked(w: np.ndarray, sigma: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Kernel of :func:`influence_an` (no checks); NaN where :math:`w^\\top\\Sigma w \\le 0`."""
    ws = w * sigma
    num = np.einsum("...k,...kl->...l", ws, C)
    var_s = np.einsum("...l,...l->...", num, ws)
    ok = var_s > 0
    return np.where(ok[..., None], num / np.sqrt(np.where(ok, var_s, 1.0))[..., None], np.nan)


def influence_na_unchecked(w: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Kernel of :func:`influence_na` (no checks)."""
    return np.einsum("...k,...kl->...l", w, C)


def influence_an(w, sigma, C) -> np.ndarray:
    """Oracle AN influence :math:`\\mathrm{Cov}(A^{AN}, z_\\ell)` of every channel.

    .. math::

        \\mathrm{infl}^{AN}_\\ell = \\frac{\\sum_k w_k \\sigma_k C_{k\\ell}}{\\sqrt{w^\\top \\Sigma w}},
        \\qquad \\Sigma = \\mathrm{diag}(\\sigma)\\, C\\, \\mathrm{diag}(\\sigma).

    Parameters
    ----------
    w : array_like, shape ``(R,)`` or ``(..., R)``
    sigma : array_like, shape ``(R,)`` or ``(..., R)``, positive
    C : array_like, shape ``(R, R)`` or ``(..., R, R)``, correlation matrices

    Returns
    -------
    numpy.ndarray, shape ``batch + (R,)``, ``batch`` the broadcast of the
    leading dimensions of ``w``, ``sigma`` and ``C``.

    Raises
    ------
    ValueError
        bad ``C`` or shapes, ``sigma <= 0``, or :math:`w^\\top \\Sigma w = 0`
        (the aggregated reward has no variance; the first such batch index named).
    """
    C = check_correlation(C)
    R = C.shape[-1]
    w = as_batch_vector(w, "w", R)
    sigma = as_batch_vector(sigma, "sigma", R)
    nonpos = (sigma <= 0).any(axis=-1)
    if nonpos.any():
        raise ValueError(f"sigma{batch_index(nonpos)} must be positive, got {sigma[nonpos][0].tolist()}")
    broadcast_batches(w=w.shape[:-1], sigma=sigma.shape[:-1], C=C.shape[:-2])
    out = influence_an_unchecked(w, sigma, C)
    undefined = np.isnan(out[..., 0])
    if undefined.any():
        ws = w * sigma
        var_s = np.einsum("...k,...kl,...l->...", ws, C, ws)
        raise ValueError(f"w^T Sigma w = {np.broadcast_to(var_s, undefined.shape)[undefined][0]:.3g}"
                         f"{' at ' + batch_index(undefined) if undefined.ndim else ''}: "
                         "the aggregated reward has no variance, influence undefined")
    return out


def influence_na(w, C) -> np.ndarray:
    """Oracle NA influence: :math:`\\mathrm{infl}^{NA}_\\ell = \\sum_k w_k C_{k\\ell}` (independent of sigma).

    Parameters
    ----------
    w : array_like, shape ``(R,)`` or ``(..., R)``
    C : array_like, shape ``(R, R)`` or ``(..., R, R)``

    Returns
    -------
    numpy.ndarray, shape ``batch + (R,)`` (``batch`` as in :func:`influence_an`)
    """
    C = check_correlation(C)
    w = as_batch_vector(w, "w", C.shape[-1])
    broadcast_batches(w=w.shape[:-1], C=C.shape[:-2])
    return influence_na_unchecked(w, C)
