"""The ``O(1/m)`` bias of the sample correlation, for any reward distribution.

Theorem 3's second equality rests on ``E[C_hat_m] = C + B/m + O(m^-2)``. The
coefficient ``B`` depends on the distribution. Fisher's ``-rho (1 - rho^2) / 2``
(:func:`mrgrpo.core.theory.expected_sample_correlation`) is the Gaussian case
only. The delta method gives it for any pair with enough finite moments, from
the pair's standardized mixed moments ``mu_ab = E[z_x^a z_y^b]``:

.. math::

    \\lim_{m\\to\\infty} m\\,(\\mathbb E[\\hat\\rho_m] - \\rho)
    = \\tfrac38 \\rho (\\mu_{40} + \\mu_{04}) + \\tfrac14 \\rho\\, \\mu_{22}
      - \\tfrac12 (\\mu_{31} + \\mu_{13})

(:func:`correlation_bias_coefficient`; :func:`moment_bias_matrix` for every
channel pair of a sample). It is Fisher's value for a Gaussian pair
(``mu40 = 3``, ``mu22 = 1 + 2 rho^2``, ``mu31 = 3 rho``) and 0 for a
Bernoulli(1/2) pair.

For two binary channels the finite-``m`` expectation is a finite sum over the
multinomial counts of the four outcome cells, with the project's convention
that a channel constant within the group contributes 0
(:func:`binary_pair_expected_correlation`): an exact reference at any ``m``,
degenerate groups included.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import gammaln

__all__ = ["correlation_bias_coefficient", "moment_bias_matrix", "binary_pair_cells",
           "BinaryPairExpectation", "binary_pair_expected_correlation"]

_MAX_ENUMERATION_M = 400


def _finite(name: str, v) -> np.ndarray:
    arr = np.asarray(v, dtype=float)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, got {v!r}")
    return arr


def correlation_bias_coefficient(rho, mu40, mu04, mu22, mu31, mu13):
    """First-order bias coefficient ``b`` of the sample correlation: ``E[rho_hat_m] = rho + b/m + O(m^-2)``.

    .. math::

        b = \\tfrac38 \\rho (\\mu_{40} + \\mu_{04}) + \\tfrac14 \\rho\\,\\mu_{22} - \\tfrac12 (\\mu_{31} + \\mu_{13})

    Derivation (delta method): with standardized ``x, y`` and ddof-0 sample
    moments ``S_xy = rho + a``, ``S_xx = 1 + u``, ``S_yy = 1 + v``, expand
    ``rho_hat = (rho + a)(1 + u)^(-1/2) (1 + v)^(-1/2)`` to second order. The
    sample means give ``E[a] = -rho/m`` and ``E[u] = E[v] = -1/m``, which cancel
    in the first-order terms; the second-order terms have
    ``m E[u^2] -> mu40 - 1``, ``m E[uv] -> mu22 - 1``, ``m E[au] -> mu31 - rho``,
    and their constants cancel too. Checked against exact enumeration of
    Bernoulli pairs and against Fisher's Gaussian value in the tests.

    Parameters
    ----------
    rho, mu40, mu04, mu22, mu31, mu13 : float or array_like (broadcast)
        Correlation and standardized mixed moments ``E[z_x^a z_y^b]``.

    Returns
    -------
    float or numpy.ndarray
    """
    rho, mu40, mu04, mu22, mu31, mu13 = (_finite(n, v) for n, v in zip(
        ("rho", "mu40", "mu04", "mu22", "mu31", "mu13"), (rho, mu40, mu04, mu22, mu31, mu13)))
    b = 0.375 * rho * (mu40 + mu04) + 0.25 * rho * mu22 - 0.5 * (mu31 + mu13)
    return float(b) if b.ndim == 0 else b


def moment_bias_matrix(x) -> np.ndarray:
    """:func:`correlation_bias_coefficient` of every channel pair, from a sample's own moments.

    Parameters
    ----------
    x : array_like, shape ``(..., N, R)``
        ``N`` draws of ``R`` channels (e.g. all rollouts of each prompt); they are
        standardized along ``N`` (``ddof = 0``).

    Returns
    -------
    numpy.ndarray, shape ``(..., R, R)``
        ``B_lk`` of the empirical distribution, so ``E[C_hat_m] ~ C + B/m``;
        0 on the diagonal (``C_hat_ll = 1``) and in the row and column of a
        channel that is constant along ``N``.
    """
    x = _finite("x", x)
    if x.ndim < 2 or x.shape[-2] < 2 or x.shape[-1] < 1:
        raise ValueError(f"x must have shape (..., N, R) with N >= 2 draws and R >= 1, got {x.shape}")
    N, R = x.shape[-2:]
    const = x.max(axis=-2, keepdims=True) == x.min(axis=-2, keepdims=True)
    d = np.where(const, 0.0, x - x.mean(axis=-2, keepdims=True))
    sd = np.sqrt((d * d).mean(axis=-2, keepdims=True))
    z = d / np.where(const, 1.0, sd)
    z2 = z * z
    rho = np.einsum("...ni,...nj->...ij", z, z) / N
    m22 = np.einsum("...ni,...nj->...ij", z2, z2) / N
    m31 = np.einsum("...ni,...nj->...ij", z2 * z, z) / N  # E[z_i^3 z_j]
    m4 = np.diagonal(m22, axis1=-2, axis2=-1)
    b = correlation_bias_coefficient(rho, m4[..., :, None], m4[..., None, :], m22, m31, np.swapaxes(m31, -1, -2))
    b[..., np.arange(R), np.arange(R)] = 0.0
    return b


def binary_pair_cells(p_x: float, p_y: float, rho: float) -> np.ndarray:
    """Cell probabilities ``(p11, p10, p01, p00)`` of two binary channels with the given correlation.

    Raises ValueError when no such joint distribution exists (a cell would be negative).
    """
    for name, v in (("p_x", p_x), ("p_y", p_y)):
        if not 0.0 < float(v) < 1.0:
            raise ValueError(f"{name} must lie in (0, 1), got {v!r}")
    if not -1.0 <= float(rho) <= 1.0:
        raise ValueError(f"rho must lie in [-1, 1], got {rho!r}")
    p11 = p_x * p_y + rho * np.sqrt(p_x * (1 - p_x) * p_y * (1 - p_y))
    cells = np.array([p11, p_x - p11, p_y - p11, 1.0 - p_x - p_y + p11])
    if (cells < -1e-12).any():
        raise ValueError(f"rho = {rho} is not attainable for Bernoulli({p_x}) and Bernoulli({p_y}): "
                         f"cell probabilities {np.round(cells, 6).tolist()}")
    return np.clip(cells, 0.0, 1.0)


class BinaryPairExpectation(NamedTuple):
    """Exact finite-``m`` moments of the sample correlation of two binary channels.

    ``corr``: ``E[C_hat_xy]`` with 0 in a group where either channel is constant;
    ``corr_nondegenerate``: ``E[C_hat_xy | both vary]``; ``p_const_x``,
    ``p_const_y``: probability that a channel is constant in the group;
    ``p_nondegenerate``: probability that both vary.
    """

    corr: float
    corr_nondegenerate: float
    p_const_x: float
    p_const_y: float
    p_nondegenerate: float


def binary_pair_expected_correlation(cells, m: int) -> BinaryPairExpectation:
    """Exact ``E[C_hat_m]`` of two binary channels by enumerating the multinomial cell counts.

    The sample correlation of a group with cell counts ``(a, b, c, d)``
    (``11, 10, 01, 00``), ``n_x = a + b``, ``n_y = a + c``, is
    ``(a m - n_x n_y) / sqrt(n_x (m - n_x) n_y (m - n_y))``; a group with a
    constant channel contributes 0 (the project's convention).

    Parameters
    ----------
    cells : array_like, shape ``(4,)``
        ``(p11, p10, p01, p00)``, summing to 1 (see :func:`binary_pair_cells`).
    m : int
        Group size, ``2 <= m <= 400`` (``O(m^3)`` terms).

    Returns
    -------
    BinaryPairExpectation
    """
    p = np.asarray(cells, dtype=float)
    if p.shape != (4,) or (p < 0).any() or abs(p.sum() - 1.0) > 1e-9:
        raise ValueError(f"cells must be 4 probabilities summing to 1, got {cells!r}")
    if isinstance(m, (bool, np.bool_)) or not isinstance(m, (int, np.integer)) or not 2 <= m <= _MAX_ENUMERATION_M:
        raise ValueError(f"m must be an int in [2, {_MAX_ENUMERATION_M}], got {m!r}")
    logp = np.log(np.where(p > 0, p, 1.0))
    corr = p_nd = p_cx = p_cy = 0.0
    bc = np.arange(m + 1)
    for a in range(m + 1):  # O(m) vectorized slices of the O(m^3) cell counts
        b, c = (g.ravel() for g in np.meshgrid(bc[: m - a + 1], bc[: m - a + 1], indexing="ij"))
        keep = b + c <= m - a
        b, c = b[keep], c[keep]
        d = m - a - b - c
        counts = np.stack([np.full_like(b, a), b, c, d])
        impossible = ((counts > 0) & (p[:, None] == 0)).any(axis=0)
        logw = gammaln(m + 1) - gammaln(counts + 1).sum(axis=0) + (counts * logp[:, None]).sum(axis=0)
        prob = np.where(impossible, 0.0, np.exp(logw))
        nx, ny = a + b, a + c
        vx = (nx > 0) & (nx < m)
        vy = (ny > 0) & (ny < m)
        both = vx & vy
        den = np.sqrt(np.where(both, nx * (m - nx) * ny * (m - ny), 1).astype(float))
        corr += float((prob * np.where(both, (a * m - nx * ny) / den, 0.0)).sum())
        p_nd += float(prob[both].sum())
        p_cx += float(prob[~vx].sum())
        p_cy += float(prob[~vy].sum())
    return BinaryPairExpectation(corr=corr, corr_nondegenerate=corr / p_nd if p_nd > 0 else float("nan"),
                                 p_const_x=p_cx, p_const_y=p_cy, p_nondegenerate=p_nd)
