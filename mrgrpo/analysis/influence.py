"""Proposition 1 on a reward tensor: realized per-channel influence vs the law.

The realized influence of channel ``l`` on an advantage ``A`` is the
within-group covariance ``(1/m) sum_j (A_j - A_bar)(z_jl - z_bar_l)`` with
``z`` the group-standardized channel, averaged over groups (the reference
package's definition). The prediction is Prop 1's oracle law,
:func:`mrgrpo.theory.influence_an` / :func:`mrgrpo.theory.influence_na`
(vectorized over prompts here), evaluated per prompt at that prompt's population ``sigma_p`` and ``C_p``
(estimated from all its rollouts).

Note that for NA the realized influence equals ``(w^T C_hat)_l`` in every
group, so its test is the same one as the floor's (``E[C_hat]`` vs ``C``);
AN's plug-in ``sigma_hat`` makes its check a genuinely different one.
"""
from __future__ import annotations

import numpy as np

from mrgrpo.advantage import group_standardize

__all__ = ["realized_influence", "predicted_influence"]

REF_EPS = 1e-8


def realized_influence(rewards: np.ndarray, A: np.ndarray, eps: float = REF_EPS) -> np.ndarray:
    """Within-group ``Cov(A, z_l)`` for every group.

    Parameters
    ----------
    rewards : ``(..., m, R)`` (validated float array)
    A : ``(..., m)`` advantages of the same groups
    eps : float
        Added to each channel's std in ``z`` (the reference uses ``1e-8``).

    Returns
    -------
    numpy.ndarray, shape ``(..., R)``
    """
    z = group_standardize(np.swapaxes(rewards, -1, -2), eps=eps)  # (..., R, m)
    zc = z - z.mean(axis=-1, keepdims=True)
    Ac = A - A.mean(axis=-1, keepdims=True)
    return np.einsum("...rm,...m->...r", zc, Ac) / A.shape[-1]


def predicted_influence(w: np.ndarray, sigma: np.ndarray, C: np.ndarray, varies: np.ndarray):
    """Prop 1 per prompt, vectorized: ``(an (P, R), na (P, R))``; NaN rows where nothing varies.

    The same closed forms as :func:`mrgrpo.theory.influence_an` and
    :func:`mrgrpo.theory.influence_na` (the tests pin them equal prompt by
    prompt). Channels constant over all of a prompt's rollouts get weight 0 and
    an identity row in ``C``.
    """
    we = np.where(varies, w, 0.0)
    ws = we * np.where(varies, sigma, 1.0)
    na = np.einsum("pk,pkl->pl", we, C)
    num = np.einsum("pk,pkl->pl", ws, C)
    var_s = np.einsum("pl,pl->p", num, ws)
    ok = var_s > 0
    an = np.where(ok[:, None], num / np.sqrt(np.where(ok, var_s, 1.0))[:, None], np.nan)
    na = np.where((we != 0).any(axis=1)[:, None], na, np.nan)
    return an, na
