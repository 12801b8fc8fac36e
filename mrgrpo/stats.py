"""Within-group sample statistics of reward arrays.

The public function validates its input once and calls an internal kernel.
The kernels (leading underscore) take already-validated float arrays and do no
checks; :mod:`mrgrpo.advantage` and :mod:`mrgrpo.analysis` build on them, so
each formula (constant-group test, centring, variance, covariance,
correlation) is written once, here.

Kernels work *channel-major*: a reward array ``(..., m, R)`` is first laid out
as ``(R, m, ...)`` (:func:`_channels_first`), so each channel is one
contiguous block and every reduction over the ``m`` rollouts is vectorized
across all groups at once.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mrgrpo._checks import check_rewards

EPS = 1e-8

__all__ = ["sample_correlation"]


class Moments(NamedTuple):
    """Within-group moments along one axis (that axis kept with size 1).

    ``d`` is ``x - mean``, set to exactly 0 in a group whose values are all
    equal (``const``), so rounding in the mean never leaks into such a group.
    """

    mean: np.ndarray
    d: np.ndarray
    var: np.ndarray
    const: np.ndarray


def _check_eps(eps: float, name: str = "eps") -> float:
    """``eps`` (or any other named tolerance/variance) as a float; ValueError unless finite and ``>= 0``."""
    eps_f = float(eps)
    if not np.isfinite(eps_f) or eps_f < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {eps!r}")
    return eps_f


def _constant(x: np.ndarray, axis: int) -> np.ndarray:
    """True where all values along ``axis`` are exactly equal (``max == min``); ``axis`` kept."""
    return x.max(axis=axis, keepdims=True) == x.min(axis=axis, keepdims=True)


def _moments(x: np.ndarray, axis: int, ddof: int = 0) -> Moments:
    """Mean, centred values, variance (``ddof``) and constant mask along ``axis``."""
    const = _constant(x, axis)
    mean = x.mean(axis=axis, keepdims=True)
    d = x - mean
    d *= ~const
    var = (d * d).sum(axis=axis, keepdims=True) / (x.shape[axis] - ddof)
    return Moments(mean, d, var, const)


def _channels_first(r: np.ndarray) -> np.ndarray:
    """``(..., m, R)`` -> contiguous ``(R, m, ...)`` (channel-major layout of the kernels)."""
    return np.ascontiguousarray(np.moveaxis(r, (-1, -2), (0, 1)))


def _covariance(d: np.ndarray) -> np.ndarray:
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


def _correlation(cov: np.ndarray, const: np.ndarray, eps: float) -> np.ndarray:
    """:math:`\\hat C_{\\ell k} = \\hat S_{\\ell k}/(\\sqrt{\\hat S_{\\ell\\ell}+\\varepsilon}\\sqrt{\\hat S_{kk}+\\varepsilon})`.

    ``cov`` ``(..., R, R)``; ``const`` ``(..., R)`` marks channels whose
    covariance row is exactly 0: their row and column stay 0 (no ``0/0``).
    """
    sd = np.where(const, 1.0, np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1) + eps))
    return cov / (sd[..., :, None] * sd[..., None, :])


def _channel_moments(r: np.ndarray, ddof: int = 0) -> Moments:
    """Within-group moments of validated rewards ``(..., m, R)``, channel-major (``(R, 1, ...)``)."""
    return _moments(_channels_first(r), 1, ddof)


def _channel_last(a: np.ndarray) -> np.ndarray:
    """A channel-major reduction ``(R, 1, ...)`` (a ``Moments`` field) -> ``(..., R)``."""
    return np.moveaxis(a[:, 0], 0, -1)


def _moment_correlation(mom: Moments, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(cov, C_hat, const)`` from channel-major moments: ``(..., R, R)``, ``(..., R, R)``, ``(..., R)``."""
    cov = _covariance(mom.d)
    const = _channel_last(mom.const)
    return cov, _correlation(cov, const, eps), const


def _sample_correlation(r: np.ndarray, eps: float) -> np.ndarray:
    """Kernel of :func:`sample_correlation`: validated ``(..., m, R)`` -> ``(..., R, R)``."""
    return _moment_correlation(_channel_moments(r), eps)[1]


def sample_correlation(rewards, eps: float = EPS) -> np.ndarray:
    """Within-group sample correlation matrix :math:`\\hat C` of each group.

    .. math::

        \\hat S_{\\ell k} = \\frac1m \\sum_j (r_{j\\ell} - \\bar r_\\ell)(r_{jk} - \\bar r_k),
        \\qquad
        \\hat C_{\\ell k} = \\frac{\\hat S_{\\ell k}}{\\sqrt{\\hat S_{\\ell\\ell} + \\varepsilon}\\,
                                              \\sqrt{\\hat S_{kk} + \\varepsilon}}

    (``ddof = 0``; ``eps`` is added to the *variance* inside the square root,
    the convention of the paper's analysis code, so the diagonal is
    :math:`\\hat S_{\\ell\\ell}/(\\hat S_{\\ell\\ell} + \\varepsilon)`, i.e. 1 up to
    ``eps / var``). A channel that is exactly constant within its group gives
    an exactly zero row and column, diagonal entry included, so
    :math:`w^\\top \\hat C w` counts only the channels that vary.

    Parameters
    ----------
    rewards : array_like, shape ``(..., m, R)``
        Any leading batch shape; ``m >= 2``.
    eps : float
        Variance floor (default ``1e-8``), ``>= 0``.

    Returns
    -------
    numpy.ndarray, shape ``(..., R, R)``
    """
    r = check_rewards(rewards)
    return _sample_correlation(r, _check_eps(eps))
