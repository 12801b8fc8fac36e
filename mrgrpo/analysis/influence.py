"""Proposition 1 on a reward tensor: realized per-channel influence vs the law.

The realized influence of channel ``l`` on an advantage ``A`` is the
within-group covariance ``(1/m) sum_j (A_j - A_bar)(z_jl - z_bar_l)`` with
``z`` the group-standardized channel, averaged over groups (the reference
package's definition). The prediction is Prop 1's oracle law,
:func:`mrgrpo.core.theory.influence_an` / :func:`mrgrpo.core.theory.influence_na`
(batched over prompts), evaluated per prompt at that prompt's population ``sigma_p`` and ``C_p``
(estimated from all its rollouts).

Note that for NA the realized influence equals ``(w^T C_hat)_l`` in every
group, so its test is the same one as the floor's (``E[C_hat]`` vs ``C``);
AN's plug-in ``sigma_hat`` makes its check a genuinely different one.
"""
from __future__ import annotations

import numpy as np

from mrgrpo.core.checks import check_rewards
from mrgrpo.core.checks import check_eps
from mrgrpo.core.kernels import channels_first, standardize
from mrgrpo.core.theory.influence import influence_an_unchecked, influence_na_unchecked

from .floor import population_stats

__all__ = ["realized_influence", "predicted_influence", "influence_prediction", "influence_shares"]

REF_EPS = 1e-8


def realized_influence_kernel(z: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Kernel: ``mean_j A_j z_jl`` from channel-major ``z`` ``(R, m, ...)`` and ``A`` ``(m, ...)`` -> ``(..., R)``.

    ``z`` has zero group means (it is centred), so this is the within-group
    covariance of ``A`` and ``z_l`` whatever ``A``'s mean.
    """
    return np.moveaxis((z * A).sum(axis=1), 0, -1) / A.shape[0]


def realized_influence(rewards: np.ndarray, A: np.ndarray, eps: float = REF_EPS) -> np.ndarray:
    """Within-group ``Cov(A, z_l)`` for every group.

    Parameters
    ----------
    rewards : array_like, shape ``(..., m, R)``
    A : array_like, shape ``(..., m)``
        Advantages of the same groups.
    eps : float
        Added to each channel's std in ``z`` (the reference uses ``1e-8``).

    Returns
    -------
    numpy.ndarray, shape ``(..., R)``
    """
    r = check_rewards(rewards)
    a = np.asarray(A, dtype=float)
    if a.shape != r.shape[:-1]:
        raise ValueError(f"A must have shape (..., m) = {r.shape[:-1]}, got {a.shape}")
    z = standardize(channels_first(r), check_eps(eps), axis=1)  # (R, m, ...)
    return realized_influence_kernel(z, np.moveaxis(a, -1, 0))


def predicted_influence(w: np.ndarray, sigma: np.ndarray, C: np.ndarray, varies: np.ndarray):
    """Prop 1 per prompt: ``(an (P, R), na (P, R))``; NaN rows where nothing varies.

    :func:`mrgrpo.core.theory.influence_an` / :func:`mrgrpo.core.theory.influence_na`
    (their kernels, on the batch of prompts). Channels constant over all of a
    prompt's rollouts get weight 0 (``C`` has an identity row for them).

    Parameters
    ----------
    w : ``(R,)``; sigma : ``(P, R)``; C : ``(P, R, R)``; varies : ``(P, R)`` bool
    """
    we = np.where(varies, w, 0.0)
    an = influence_an_unchecked(we, np.where(varies, sigma, 1.0), C)
    na = np.where((we != 0).any(axis=-1)[..., None], influence_na_unchecked(we, C), np.nan)
    return an, na


def influence_prediction(rewards, w) -> dict[str, np.ndarray]:
    """Proposition 1's influence of every channel under NA and AN, predicted from rollouts.

    Each prompt's population scales and correlation come from all of its rollouts (seeds
    pooled, :func:`mrgrpo.analysis.floor.population_stats`); the law is evaluated per prompt
    (:func:`predicted_influence`) and averaged over the prompts where it is defined. Fed the
    rollouts of an untrained policy, this is what the law predicts for the influences a
    training run logs (``influence/<channel>``, the within-group ``Cov(A, z_l)``).

    Parameters
    ----------
    rewards : array_like, shape ``(P, K, m, R)``
    w : array_like, shape ``(R,)``

    Returns
    -------
    dict ``{"NA": (R,), "AN": (R,)}``
    """
    from mrgrpo.core.checks import check_weights

    x = check_rewards(rewards, exact_ndim=4)
    P, K, m, R = x.shape
    wv = check_weights(w, R)
    C, sigma, varies = population_stats(x.reshape(P, K * m, R))
    an, na = predicted_influence(wv, sigma, C, varies)
    if np.isnan(an).all():
        raise ValueError("no prompt has a varying channel: Proposition 1 predicts nothing")
    return {"NA": np.nanmean(na, axis=0), "AN": np.nanmean(an, axis=0)}


def influence_shares(influence) -> np.ndarray:
    """Each channel's share of the total influence, ``v / sum(v)`` (shape ``(R,)`` or ``(..., R)``).

    The book's "share of influence" (a channel with a negative influence has a negative
    share); refused when a total is 0 or not finite.
    """
    v = np.asarray(influence, dtype=float)
    total = v.sum(axis=-1, keepdims=True)
    if not (np.isfinite(total).all() and (total != 0).all()):
        raise ValueError(f"influence shares need a finite, non-zero total, got {np.ravel(total).tolist()}")
    return v / total
