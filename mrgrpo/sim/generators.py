"""Correlated reward generators: Gaussian, Bernoulli (Gaussian copula) and mixed.

Every generator returns an array of shape ``(*n, m, R)``: ``n`` groups (an int,
or a tuple for a batch shape such as ``(P, K)``) of ``m`` i.i.d. rollouts scored
on ``R`` channels. Channels are correlated with a *target Pearson correlation*
``C`` between the observed channels (not between latent variables).

Binary channels come from thresholding a latent Gaussian vector,
``X_l = 1[Z_l > Phi^{-1}(1 - p_l)]``. For each pair of channels the latent
correlation that produces the target Pearson correlation is solved exactly:

- binary-binary: ``P(X_l = X_k = 1) = Phi_2(a_l, a_k; r)`` with ``a = Phi^{-1}(p)``,
  computed through Plackett's identity
  ``Phi_2(a, b; r) = Phi(a) Phi(b) + int_0^r phi_2(a, b; t) dt`` (increasing in ``r``),
  and solved for ``r`` by bisection (Brent);
- binary-continuous: ``Corr(X_l, Z_k) = r phi(a_l) / sqrt(p_l (1 - p_l))``;
- continuous-continuous: ``r`` is the target itself.

A target outside the Frechet bounds of a pair, or a latent matrix that is not
positive semi-definite, raises :class:`ValueError`.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import numpy as np
from scipy import integrate, optimize, stats

from mrgrpo.core.checks import SeedLike, as_generator

__all__ = [
    "gaussian_rewards",
    "bernoulli_rewards",
    "mixed_rewards",
    "copula_latent_correlation",
    "bernoulli_correlation_bounds",
    "bernoulli_pair_correlation",
]

ShapeLike = Union[int, Sequence[int]]
_PSD_TOL = 1e-10


# --------------------------------------------------------------------------- checks
def lead_shape(n: ShapeLike, m: int) -> tuple[int, ...]:
    shape = (n,) if isinstance(n, (int, np.integer)) else tuple(n)
    for s in shape:
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)) or s < 1:
            raise ValueError(f"n must be a positive int or a tuple of positive ints, got {n!r}")
    if isinstance(m, (bool, np.bool_)) or not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"m must be a positive int, got {m!r}")
    return tuple(int(s) for s in shape)


def _check_corr(C, name: str = "C") -> np.ndarray:
    C = np.atleast_2d(np.asarray(C, dtype=float))
    if C.ndim != 2 or C.shape[0] != C.shape[1]:
        raise ValueError(f"{name} must be a square (R, R) matrix, got shape {C.shape}")
    if not np.isfinite(C).all():
        raise ValueError(f"{name} must be finite")
    if not np.allclose(C, C.T, atol=1e-12):
        raise ValueError(f"{name} must be symmetric")
    if not np.allclose(np.diag(C), 1.0, atol=1e-12):
        raise ValueError(f"{name} must have a unit diagonal (a correlation matrix), got diag {np.diag(C)}")
    off = C[~np.eye(len(C), dtype=bool)]
    if off.size and np.abs(off).max() > 1 + 1e-12:
        raise ValueError(f"{name} has an off-diagonal entry outside [-1, 1]")
    return C


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
        if vals.min() < -_PSD_TOL:
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
    C = _check_corr(C)
    R = C.shape[0]
    sigma = _check_vector(sigma, R, "sigma", 1.0, positive=True)
    mu = _check_vector(mu, R, "mu", 0.0)
    L = _psd_factor(C, "C")
    z = as_generator(seed).standard_normal((*lead, m, R))
    return mu + (z @ (L.T * sigma))


# --------------------------------------------------------------------------- copula pieces
def bernoulli_correlation_bounds(p_l: float, p_k: float) -> tuple[float, float]:
    """Frechet bounds on the Pearson correlation of Bernoulli(p_l) and Bernoulli(p_k)."""
    s = np.sqrt(p_l * (1 - p_l) * p_k * (1 - p_k))
    lo = (max(0.0, p_l + p_k - 1.0) - p_l * p_k) / s
    hi = (min(p_l, p_k) - p_l * p_k) / s
    return float(lo), float(hi)


def _phi2(t: float, a: float, b: float) -> float:
    one = 1.0 - t * t
    return np.exp(-(a * a - 2 * t * a * b + b * b) / (2 * one)) / (2 * np.pi * np.sqrt(one))


def bernoulli_pair_correlation(p_l: float, p_k: float, r: float) -> float:
    """Pearson correlation of two thresholded Gaussians with latent correlation ``r``."""
    a, b = stats.norm.ppf(p_l), stats.norm.ppf(p_k)
    if r >= 1.0 or r <= -1.0:
        return bernoulli_correlation_bounds(p_l, p_k)[1 if r > 0 else 0]
    excess = integrate.quad(_phi2, 0.0, r, args=(a, b), epsabs=1e-13, epsrel=1e-11, limit=200)[0]
    return float(excess / np.sqrt(p_l * (1 - p_l) * p_k * (1 - p_k)))


def _solve_binary_pair(p_l: float, p_k: float, target: float, pair: tuple[int, int]) -> float:
    lo, hi = bernoulli_correlation_bounds(p_l, p_k)
    if not lo - 1e-12 <= target <= hi + 1e-12:
        raise ValueError(
            f"target correlation {target:.4g} between binary channels {pair[0]} (p={p_l:.4g}) and "
            f"{pair[1]} (p={p_k:.4g}) is infeasible: the Frechet bounds are [{lo:.4g}, {hi:.4g}]")
    if target >= hi - 1e-12:
        return 1.0
    if target <= lo + 1e-12:
        return -1.0
    return float(optimize.brentq(lambda r: bernoulli_pair_correlation(p_l, p_k, r) - target,
                                 -1.0 + 1e-15, 1.0 - 1e-15, xtol=1e-13, rtol=1e-13))


def _check_p(p, R: int | None = None) -> np.ndarray:
    """Probabilities, with ``None``/NaN marking a continuous channel."""
    arr = np.array([np.nan if v is None else v for v in np.atleast_1d(np.asarray(p, dtype=object))],
                   dtype=float)
    if R is not None and arr.shape != (R,):
        raise ValueError(f"p must have one entry per channel (R = {R}), got {arr.shape[0]}")
    binary = ~np.isnan(arr)
    bad = binary & ~((arr > 0) & (arr < 1))
    if bad.any():
        raise ValueError(f"Bernoulli probabilities must lie strictly in (0, 1) (a constant channel has "
                         f"no correlation); channel {int(np.argmax(bad))} has p = {arr[bad][0]}")
    return arr


def copula_latent_correlation(p, C_target) -> np.ndarray:
    """Latent Gaussian correlation matrix that realizes ``C_target`` after thresholding.

    Parameters
    ----------
    p : sequence, length ``R``
        ``p_l`` in (0, 1) for a binary channel; ``None`` or NaN for a continuous one.
    C_target : array_like, shape ``(R, R)``
        Target Pearson correlation of the observed channels.

    Returns
    -------
    numpy.ndarray, shape ``(R, R)``

    Raises
    ------
    ValueError
        A pair's target lies outside its feasible range (Frechet bounds for two
        binary channels, ``phi(a)/sqrt(p(1-p))`` for the point-biserial case), or
        the latent matrix is not positive semi-definite.
    """
    C_target = _check_corr(C_target, "C_target")
    R = C_target.shape[0]
    p = _check_p(p, R)
    binary = ~np.isnan(p)
    latent = np.eye(R)
    for l in range(R):
        for k in range(l + 1, R):
            t = C_target[l, k]
            if binary[l] and binary[k]:
                r = _solve_binary_pair(p[l], p[k], t, (l, k))
            elif binary[l] or binary[k]:
                q = p[l] if binary[l] else p[k]
                cap = stats.norm.pdf(stats.norm.ppf(q)) / np.sqrt(q * (1 - q))
                if abs(t) > cap + 1e-12:
                    raise ValueError(
                        f"target correlation {t:.4g} between binary channel (p={q:.4g}) and continuous "
                        f"channel ({l}, {k}) is infeasible: |corr| <= {cap:.4g} for this p")
                r = float(np.clip(t / cap, -1.0, 1.0))
            else:
                r = t
            latent[l, k] = latent[k, l] = r
    vals = np.linalg.eigvalsh(latent)
    if vals.min() < -_PSD_TOL:
        raise ValueError(f"the latent Gaussian correlation matrix that realizes C_target is not positive "
                         f"semi-definite (smallest eigenvalue {vals.min():.3g}); the target is not "
                         f"reachable by a Gaussian copula:\n{np.array2string(latent, precision=4)}")
    return latent


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
    pv = _check_p(p, R)
    sigma = _check_vector(sigma, R, "sigma", 1.0, positive=True)
    mu = _check_vector(mu, R, "mu", 0.0)
    z = gaussian_rewards(lead, m, latent, seed=seed)
    binary = ~np.isnan(pv)
    # X = 1[Z > Phi^{-1}(1 - p)]; thresholds of continuous channels are unused
    cut = np.where(binary, stats.norm.ppf(1.0 - np.where(binary, pv, 0.5)), 0.0)
    x = np.where(binary, (z > cut).astype(float), z)
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
