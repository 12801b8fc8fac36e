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

Overflow. A group whose largest ``|value|`` lies outside
``[SAFE_MIN, SAFE_MAX]`` (``2**-480 .. 2**480``, about ``3e-145 .. 3e144``) would overflow ``d * d``
(or underflow it to 0) in double precision. The scale-free outputs
(standardized values, advantages, correlations) therefore divide such a group
by a power of two first, and its ``eps`` alike (:func:`rescale_divisor`,
``moments(..., rescale=True)``). A power of two changes no bit of a normal
number's mantissa and every IEEE operation commutes with it, so the result is
exactly the one infinite-range arithmetic would round to; groups inside the
window (every ordinary reward) are computed exactly as before, bit for bit.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

__all__ = [
    "SAFE_EXPONENT", "SAFE_MAX", "SAFE_MIN", "safe_exponent", "rescale_divisor", "power_of_two_below", "fit_to_range",
    "Moments", "constant_along", "moments", "channels_first", "channel_last", "channel_moments",
    "covariance", "correlation", "moment_correlation", "sample_correlation_kernel",
    "scaled", "standardize", "aggregate", "na_channel_major", "an_channel_major", "group_last",
    "na_advantage", "an_advantage", "single_advantage",
]


def safe_exponent(max_exponent: int) -> int:
    """Half-width ``k`` of the safe window ``[2**-k, 2**k]`` for a float type whose maximum is ``< 2**max_exponent``.

    Inside it, ``m * (2 * 2**k)**2`` stays finite for any ``m < 2**60`` (and
    squares of values down to ``2**-k`` stay normal): ``k = (max_exponent - 64) // 2``,
    480 for float64, 32 for float32 (float16: 1, for ``m < 4096``).
    """
    return max(1, (int(max_exponent) - 64) // 2)


SAFE_EXPONENT = safe_exponent(np.finfo(np.float64).maxexp)
#: Groups whose largest ``|value|`` is at most this (or 0) are standardized unscaled.
SAFE_MAX = 2.0 ** SAFE_EXPONENT
#: ... and at least this.
SAFE_MIN = 2.0 ** -SAFE_EXPONENT


def power_of_two_below(mag: np.ndarray) -> np.ndarray:
    """``2**(e - 1)`` with ``mag = f * 2**e``, ``0.5 <= f < 1``: ``mag / power`` lies in ``[1, 2)`` (``mag > 0``)."""
    return np.ldexp(1.0, np.frexp(mag)[1] - 1)


def rescale_divisor(hi: np.ndarray, lo: np.ndarray) -> Optional[np.ndarray]:
    """Power-of-two divisor of each group from its max ``hi`` and min ``lo`` (same shape).

    1 where ``max |x|`` lies in ``[SAFE_MIN, SAFE_MAX]`` or is 0, else the
    power of two that brings it into ``[1, 2)``; None when no group needs one.
    """
    mag = np.maximum(hi, -lo)
    unsafe = (mag > SAFE_MAX) | ((mag < SAFE_MIN) & (mag > 0))
    if not unsafe.any():
        return None
    return np.where(unsafe, power_of_two_below(np.where(unsafe, mag, 1.0)), 1.0)


class Moments(NamedTuple):
    """Within-group moments along one axis (that axis kept with size 1).

    ``d`` is ``x - mean``, set to exactly 0 in a group whose values are all
    equal (``const``), so rounding in the mean never leaks into such a group.
    ``divisor`` is the power of two each group was divided by before its
    moments were taken (``moments(..., rescale=True)``; see the module
    docstring): None when no group needed one. Then ``mean``, ``d`` and
    ``var`` are those of ``x / divisor``.
    """

    mean: np.ndarray
    d: np.ndarray
    var: np.ndarray
    const: np.ndarray
    divisor: Optional[np.ndarray] = None


def constant_along(x: np.ndarray, axis: int) -> np.ndarray:
    """True where all values along ``axis`` are exactly equal (``max == min``); ``axis`` kept."""
    return x.max(axis=axis, keepdims=True) == x.min(axis=axis, keepdims=True)


def moments(x: np.ndarray, axis: int, ddof: int = 0, *, rescale: bool = False,
            hi: Optional[np.ndarray] = None, lo: Optional[np.ndarray] = None) -> Moments:
    """Mean, centred values, variance (``ddof``) and constant mask along ``axis``.

    ``rescale``: first divide each group whose magnitude is outside the safe
    window by a power of two (:func:`rescale_divisor`). ``hi``/``lo``: the
    group max and min along ``axis`` (``keepdims``) when the caller has them.
    """
    if hi is None:
        hi, lo = x.max(axis=axis, keepdims=True), x.min(axis=axis, keepdims=True)
    const = hi == lo
    divisor = rescale_divisor(hi, lo) if rescale else None
    if divisor is not None:
        x = x / divisor
    mean = x.mean(axis=axis, keepdims=True)
    d = x - mean
    d *= ~const
    var = (d * d).sum(axis=axis, keepdims=True) / (x.shape[axis] - ddof)
    return Moments(mean, d, var, const, divisor)


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
    ``eps`` is a float or one per channel ``(..., R)``.
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
    """``(cov, C_hat, const)`` from channel-major moments: ``(..., R, R)``, ``(..., R, R)``, ``(..., R)``.

    ``cov`` is that of the rescaled channels when ``mom.divisor`` is set
    (``C_hat`` is scale-free: ``eps``, a variance, is divided by the divisor squared).
    """
    cov = covariance(mom.d)
    const = channel_last(mom.const)
    if mom.divisor is not None:
        with np.errstate(over="ignore", under="ignore"):
            eps = channel_last(eps / mom.divisor / mom.divisor)
    return cov, correlation(cov, const, eps), const


def sample_correlation_kernel(r: np.ndarray, eps: float) -> np.ndarray:
    """Kernel of :func:`sample_correlation`: validated ``(..., m, R)`` -> ``(..., R, R)``."""
    return moment_correlation(moments(channels_first(r), 1, rescale=True), eps)[1]


def scaled(mom: Moments, eps: float) -> np.ndarray:
    """:math:`(x - \\bar x)/(\\hat\\sigma + \\varepsilon)`, exactly 0 in a constant group.

    With ``mom.divisor`` set, ``eps`` is divided alike, so the result is the one of the unscaled values.
    """
    if mom.divisor is not None:
        with np.errstate(over="ignore", under="ignore"):
            eps = eps / mom.divisor
    return mom.d / np.where(mom.const, 1.0, np.sqrt(mom.var) + eps)


def standardize(x: np.ndarray, eps: float, ddof: int = 0, axis: int = -1) -> np.ndarray:
    """Standardize each group along ``axis`` (overflow-safe: see the module docstring)."""
    return scaled(moments(x, axis, ddof, rescale=True), eps)


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
    callers that also need the means or centred values; a group outside the
    safe window is rescaled, and ``moments.divisor`` says so).
    """
    mom = moments(xr, 1, ddof, rescale=True)
    z = scaled(mom, eps)
    return aggregate(z, w), z, mom


def an_channel_major(xr: np.ndarray, w: np.ndarray, eps: float, ddof: int = 0) -> np.ndarray:
    """AN on channel-major rewards ``(R, m, ...)``: advantages ``(m, ...)``.

    Where ``w^T r`` overflows (rewards near the float maximum), that group's
    rewards are divided by a power of two and summed again (``eps`` alike).

    Raises
    ------
    ValueError
        ``w^T r`` overflows even then (weights near the float maximum).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        s = aggregate(xr, w)
    hi, lo = s.max(axis=0, keepdims=True), s.min(axis=0, keepdims=True)
    ok = np.isfinite(hi) & np.isfinite(lo)
    if ok.all():
        return scaled(moments(s, 0, ddof, rescale=True, hi=hi, lo=lo), eps)
    mag = np.maximum(xr.max(axis=(0, 1)), -xr.min(axis=(0, 1)))
    g = np.where(ok[0], 1.0, power_of_two_below(np.where(ok[0], 1.0, mag)))  # (...): per group
    with np.errstate(over="ignore", invalid="ignore"):
        s = aggregate(xr / g, w)
    hi, lo = s.max(axis=0, keepdims=True), s.min(axis=0, keepdims=True)
    if not (np.isfinite(hi).all() and np.isfinite(lo).all()):
        raise ValueError(f"the aggregate w^T r overflows even with the rewards rescaled: the weights "
                         f"(sum |w| = {np.abs(w).sum():.3g}) are too large for float64")
    mom = moments(s, 0, ddof, rescale=True, hi=hi, lo=lo)
    return scaled(mom._replace(divisor=g if mom.divisor is None else g * mom.divisor), eps)


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


def fit_to_range(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Rewards near the float maximum (or all tiny) divided by one power of two: ``(x / div, div)``.

    Every within-group statistic (the harness's, the floor check's) is unchanged when all rewards are divided by
    a common power of two and ``eps`` alike (``eps / div`` where it is added to a
    std, ``eps / div**2`` where it is added to a variance, inside ``C_hat``);
    the division is exact, and the moments then fit in float64 (see this
    module's docstring). Ordinary rewards are returned as they are, ``div = 1``.
    """
    mag = max(float(x.max()), -float(x.min()))
    if mag > SAFE_MAX or 0 < mag < SAFE_MIN:
        div = float(power_of_two_below(mag))
        return x / div, div
    return x, 1.0
