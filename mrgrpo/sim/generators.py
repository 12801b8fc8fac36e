"""Correlated reward generators: Gaussian, Bernoulli (Gaussian copula) and mixed.

Every generator returns an array of shape ``(*n, m, R)``: ``n`` groups (an int,
or a tuple for a batch shape such as ``(P, K)``) of ``m`` i.i.d. rollouts scored
on ``R`` channels. Channels are correlated with a *target Pearson correlation*
``C`` between the observed channels (not between latent variables).

Binary channels come from thresholding a latent Gaussian vector,
``X_l = 1[Z_l > Phi^{-1}(1 - p_l)]``. The latent correlation that produces the
target is solved by :mod:`mrgrpo.sim.copula` (the one copula solver of the
package, shared with the mock rollout backend); its public pieces are
re-exported here. A target outside a pair's attainable range, or a latent
matrix that is not positive semi-definite, raises :class:`ValueError`.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import numpy as np

from mrgrpo.core.checks import SeedLike, as_generator
from mrgrpo.sim.copula import (PSD_TOL, bernoulli_correlation_bounds, bernoulli_pair_correlation,
                               bernoulli_thresholds, check_correlation_matrix, check_marginals,
                               copula_latent_correlation)

__all__ = [
    "gaussian_rewards",
    "bernoulli_rewards",
    "mixed_rewards",
    "copula_latent_correlation",
    "bernoulli_correlation_bounds",
    "bernoulli_pair_correlation",
]

ShapeLike = Union[int, Sequence[int]]


# --------------------------------------------------------------------------- checks
def lead_shape(n: ShapeLike, m: int) -> tuple[int, ...]:
    """Validate a leading batch shape ``n`` (int or tuple of positive ints) and a group size ``m``.

    Returns
    -------
    tuple of int
        The leading shape, e.g. ``(n,)`` or ``(P, K)``.
    """
    shape = (n,) if isinstance(n, (int, np.integer)) else tuple(n)
    for s in shape:
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)) or s < 1:
            raise ValueError(f"n must be a positive int or a tuple of positive ints, got {n!r}")
    if isinstance(m, (bool, np.bool_)) or not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"m must be a positive int, got {m!r}")
    return tuple(int(s) for s in shape)


def _check_vector(x, R: int, name: str, default: float, positive: bool = False) -> np.ndarray:
    if x is None:
        return np.full(R, default)
    arr = np.broadcast_to(np.asarray(x, dtype=float), (R,)).copy() if np.ndim(x) == 0 else np.asarray(x, dtype=float)
    if arr.shape != (R,):
        raise ValueError(f"{name} must have length R = {R}, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    if positive and (arr <= 0).any():
        raise ValueError(f"{name} must be > 0, got {arr.tolist()}")
    return arr


def _psd_factor(M: np.ndarray, name: str) -> np.ndarray:
    """A factor ``F`` with ``F F^T = M``: Cholesky when positive definite, else eigen (PSD)."""
    try:
        return np.linalg.cholesky(M)
    except np.linalg.LinAlgError:
        vals, vecs = np.linalg.eigh(M)
        if vals.min() < -PSD_TOL:
            raise ValueError(f"{name} is not positive semi-definite (smallest eigenvalue {vals.min():.3g})") from None
        return vecs * np.sqrt(np.clip(vals, 0.0, None))


# --------------------------------------------------------------------------- Gaussian
def gaussian_rewards(n: ShapeLike, m: int, C, sigma=None, mu=None, *, seed: SeedLike) -> np.ndarray:
    """Gaussian rewards with correlation ``C``, scales ``sigma`` and means ``mu``.

    ``r = mu + sigma * (L z)`` with ``L L^T = C`` (Cholesky; an eigen factor when
    ``C`` is only positive semi-definite) and ``z`` standard normal.

    Parameters
    ----------
    n : int or tuple of int
        Number of groups, or a leading batch shape.
    m : int
        Group size (rollouts per group).
    C : array_like, shape ``(R, R)``
        Target correlation matrix (symmetric, unit diagonal, PSD).
    sigma, mu : array_like, shape ``(R,)``, optional
        Per-channel standard deviations (default 1) and means (default 0).
    seed : int or numpy.random.Generator

    Returns
    -------
    numpy.ndarray, shape ``(*n, m, R)``
    """
    lead = lead_shape(n, m)
    C = check_correlation_matrix(C)
    R = C.shape[0]
    sigma = _check_vector(sigma, R, "sigma", 1.0, positive=True)
    mu = _check_vector(mu, R, "mu", 0.0)
    L = _psd_factor(C, "C")
    z = as_generator(seed).standard_normal((*lead, m, R))
    return mu + (z @ (L.T * sigma))


# --------------------------------------------------------------------------- Bernoulli / mixed
def mixed_rewards(n: ShapeLike, m: int, p, C_target, sigma=None, mu=None, *, seed: SeedLike) -> np.ndarray:
    """Binary and continuous channels with a target Pearson correlation (Gaussian copula).

    Channel ``l`` is ``mu_l + sigma_l * X_l`` where ``X_l`` is Bernoulli(``p_l``)
    (values 0/1) when ``p_l`` is a probability, or standard normal when ``p_l`` is
    ``None``/NaN. Positive scales and shifts leave the correlation unchanged.

    Parameters
    ----------
    n : int or tuple of int
        Number of groups, or a leading batch shape.
    m : int
        Group size.
    p : sequence, length ``R``
        Success probabilities in (0, 1) for binary channels; ``None``/NaN for continuous ones.
    C_target : array_like, shape ``(R, R)``
        Target correlation between the observed channels.
    sigma, mu : array_like, shape ``(R,)``, optional
        Per-channel scale (default 1) and shift (default 0).
    seed : int or numpy.random.Generator

    Returns
    -------
    numpy.ndarray, shape ``(*n, m, R)``
    """
    lead = lead_shape(n, m)
    latent = copula_latent_correlation(p, C_target)
    R = latent.shape[0]
    pv = check_marginals(p, R)
    sigma = _check_vector(sigma, R, "sigma", 1.0, positive=True)
    mu = _check_vector(mu, R, "mu", 0.0)
    z = gaussian_rewards(lead, m, latent, seed=seed)
    binary = ~np.isnan(pv)
    x = np.where(binary, (z > bernoulli_thresholds(pv)).astype(float), z)
    return mu + sigma * x


def bernoulli_rewards(n: ShapeLike, m: int, p, C_target, *, seed: SeedLike) -> np.ndarray:
    """Bernoulli(``p_l``) channels (values 0/1) with target Pearson correlation ``C_target``.

    Parameters
    ----------
    n : int or tuple of int
        Number of groups, or a leading batch shape.
    m : int
        Group size.
    p : array_like, shape ``(R,)``
        Success probabilities, each strictly in (0, 1).
    C_target : array_like, shape ``(R, R)``
        Target correlation; each pair must respect its Frechet bounds
        (:func:`bernoulli_correlation_bounds`).
    seed : int or numpy.random.Generator

    Returns
    -------
    numpy.ndarray, shape ``(*n, m, R)``
    """
    try:
        pv = np.asarray(p, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"p must be a 1-D vector of probabilities in (0, 1), got {p!r}") from None
    if pv.ndim != 1 or np.isnan(pv).any():
        raise ValueError(f"p must be a 1-D vector of probabilities in (0, 1), got {p!r}")
    return mixed_rewards(n, m, pv, C_target, seed=seed)
