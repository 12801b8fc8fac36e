"""Within-group sample statistics of reward arrays."""
from __future__ import annotations

import numpy as np

from mrgrpo._checks import check_rewards

EPS = 1e-8

__all__ = ["sample_correlation"]


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
    eps_f = float(eps)
    if not np.isfinite(eps_f) or eps_f < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    m = r.shape[-2]
    const = r.max(axis=-2) == r.min(axis=-2)  # (..., R)
    rc = r - r.mean(axis=-2, keepdims=True)
    rc = np.where(const[..., None, :], 0.0, rc)
    cov = (np.swapaxes(rc, -1, -2) @ rc) / m  # (..., R, R)
    var = np.diagonal(cov, axis1=-2, axis2=-1)
    # a constant channel has var 0; with eps = 0 keep it 0 instead of 0/0
    sd = np.sqrt(var + eps_f)
    sd = np.where(const, 1.0, sd)
    return cov / (sd[..., :, None] * sd[..., None, :])
