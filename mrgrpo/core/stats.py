"""Within-group sample statistics of reward arrays (the kernels live in :mod:`mrgrpo.core.kernels`)."""
from __future__ import annotations

import numpy as np

from mrgrpo.core.checks import check_eps, check_rewards
from mrgrpo.core.conventions import EPS
from mrgrpo.core.kernels import sample_correlation_kernel

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
    return sample_correlation_kernel(r, check_eps(eps))
