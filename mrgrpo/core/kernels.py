"""Array kernels shared by the estimators and the analysis: no input checks.

Every public function of :mod:`mrgrpo.core` validates its input once and then
calls these kernels; :mod:`mrgrpo.analysis` calls them directly on arrays it has
already validated. Each formula (constant-group test, centring, variance,
covariance, correlation, standardization, the NA and AN aggregates) is written
once, here.

Kernels work *channel-major*: a reward array ``(..., m, R)`` is first laid out
as ``(R, m, ...)`` (:func:`channels_first`), so each channel is one contiguous
block and every reduction over the ``m`` rollouts is vectorized across all
groups at once.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "Moments", "constant_along", "moments", "channels_first", "channel_last", "channel_moments",
    "covariance", "correlation", "moment_correlation", "sample_correlation_kernel",
    "scaled", "standardize", "aggregate", "na_channel_major", "an_channel_major", "group_last",
    "na_advantage", "an_advantage", "single_advantage",
]


class Moments(NamedTuple):
    """Within-group moments along one axis (that axis kept with size 1).

    ``d`` is ``x - mean``, set to exactly 0 in a group whose values are all
    equal (``const``), so rounding in the mean never leaks into such a group.
    """

    mean: np.ndarray
    d: np.ndarray
    var: np.ndarray
    const: np.ndarray


def constant_along(x: np.ndarray, axis: int) -> np.ndarray:
    """True where all values along ``axis`` are exactly equal (``max == min``); ``axis`` kept."""
    return x.max(axis=axis, keepdims=True) == x.min(axis=axis, keepdims=True)


def moments(x: np.ndarray, axis: int, ddof: int = 0) -> Moments:
    """Mean, centred values, variance (``ddof``) and constant mask along ``axis``."""
    const = constant_along(x, axis)
    mean = x.mean(axis=axis, keepdims=True)
    d = x - mean
    d *= ~const
    var = (d * d).sum(axis=axis, keepdims=True) / (x.shape[axis] - ddof)
    return Moments(mean, d, var, const)


def channels_first(r: np.ndarray) -> np.ndarray:
    """``(..., m, R)`` -> contiguous ``(R, m, ...)`` (channel-major layout of the kernels)."""
    return np.ascontiguousarray(np.moveaxis(r, (-1, -2), (0, 1)))


def covariance(d: np.ndarray) -> np.ndarray:
    """Within-group covariance (``ddof = 0``) from channel-major centred values.

    Parameters
    ----------
    d : ``(R, m, ...)`` centred values (``Moments.d`` of the channel-major array)

    Returns
    -------
    numpy.ndarray, shape ``(..., R, R)``, exactly symmetric
    """
    R, m = d.shape[:2]
    cov = np.empty((*d.shape[2:], R, R))
    for a in range(R):  # R is small: one vectorized pass per channel pair
        for b in range(a, R):
            cov[..., a, b] = cov[..., b, a] = (d[a] * d[b]).sum(axis=0) / m
    return cov


def correlation(cov: np.ndarray, const: np.ndarray, eps: float) -> np.ndarray:
    """:math:`\\hat C_{\\ell k} = \\hat S_{\\ell k}/(\\sqrt{\\hat S_{\\ell\\ell}+\\varepsilon}\\sqrt{\\hat S_{kk}+\\varepsilon})`.

    ``cov`` ``(..., R, R)``; ``const`` ``(..., R)`` marks channels whose
    covariance row is exactly 0: their row and column stay 0 (no ``0/0``).
    """
    sd = np.where(const, 1.0, np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1) + eps))
    return cov / (sd[..., :, None] * sd[..., None, :])


def channel_moments(r: np.ndarray, ddof: int = 0) -> Moments:
    """Within-group moments of validated rewards ``(..., m, R)``, channel-major (``(R, 1, ...)``)."""
    return moments(channels_first(r), 1, ddof)


def channel_last(a: np.ndarray) -> np.ndarray:
    """A channel-major reduction ``(R, 1, ...)`` (a ``Moments`` field) -> ``(..., R)``."""
    return np.moveaxis(a[:, 0], 0, -1)


def moment_correlation(mom: Moments, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(cov, C_hat, const)`` from channel-major moments: ``(..., R, R)``, ``(..., R, R)``, ``(..., R)``."""
    cov = covariance(mom.d)
    const = channel_last(mom.const)
    return cov, correlation(cov, const, eps), const


def sample_correlation_kernel(r: np.ndarray, eps: float) -> np.ndarray:
    """Kernel of :func:`sample_correlation`: validated ``(..., m, R)`` -> ``(..., R, R)``."""
    return moment_correlation(channel_moments(r), eps)[1]


def scaled(mom: Moments, eps: float) -> np.ndarray:
    """:math:`(x - \\bar x)/(\\hat\\sigma + \\varepsilon)`, exactly 0 in a constant group."""
    return mom.d / np.where(mom.const, 1.0, np.sqrt(mom.var) + eps)


def standardize(x: np.ndarray, eps: float, ddof: int = 0, axis: int = -1) -> np.ndarray:
    """Standardize each group along ``axis``."""
    return scaled(moments(x, axis, ddof), eps)


def aggregate(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """:math:`\\sum_\\ell w_\\ell v_\\ell` over the leading (channel) axis: ``(R, ...)`` -> ``(...)``."""
    out = np.zeros(v.shape[1:])
    tmp = np.empty_like(out)
    for ell in np.flatnonzero(w):  # elementwise, not BLAS: equal rows give bit-equal sums
        np.multiply(v[ell], w[ell], out=tmp)
        out += tmp
    return out


def na_channel_major(xr: np.ndarray, w: np.ndarray, eps: float, ddof: int = 0):
    """NA on channel-major rewards ``(R, m, ...)``.

    Returns ``(A, z, moments)``: advantages ``(m, ...)``, standardized channels
    ``z`` ``(R, m, ...)`` and the channels' :class:`Moments` (for
    callers that also need the means or centred values).
    """
    mom = moments(xr, 1, ddof)
    z = scaled(mom, eps)
    return aggregate(z, w), z, mom


def an_channel_major(xr: np.ndarray, w: np.ndarray, eps: float, ddof: int = 0) -> np.ndarray:
    """AN on channel-major rewards ``(R, m, ...)``: advantages ``(m, ...)``."""
    return standardize(aggregate(xr, w), eps, ddof, axis=0)


def group_last(a: np.ndarray) -> np.ndarray:
    """``(m, ...)`` -> contiguous ``(..., m)``."""
    return np.ascontiguousarray(np.moveaxis(a, 0, -1))


def na_advantage(r: np.ndarray, w: np.ndarray, eps: float, ddof: int = 0) -> np.ndarray:
    """NA advantages of validated rewards ``(..., m, R)`` -> ``(..., m)``."""
    return group_last(na_channel_major(channels_first(r), w, eps, ddof)[0])


def an_advantage(r: np.ndarray, w: np.ndarray, eps: float, ddof: int = 0) -> np.ndarray:
    """AN advantages of validated rewards ``(..., m, R)`` -> ``(..., m)``."""
    return group_last(an_channel_major(channels_first(r), w, eps, ddof))


def single_advantage(r: np.ndarray, eps: float, ddof: int = 0) -> np.ndarray:
    """Channel 0 standardized: validated ``(..., m, R)`` -> ``(..., m)``."""
    return standardize(r[..., 0], eps, ddof)
