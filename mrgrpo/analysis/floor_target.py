"""What the population floor should be: targets that are right for any reward distribution.

The floor check measures ``E[w^T C_hat_m w]`` over groups of ``m`` rollouts of
a prompt (the ``m * MSE`` of Theorem 3). Three references, coarsest first:

- the population ``w^T C w``, Theorem 3's limit;
- Theorem 3's first-order expansion ``w^T (C + B/m) w``, with ``B`` the
  delta-method bias of the sample correlation from the prompt's own
  standardized moments (:func:`first_order_floor`; the closed form is
  :mod:`mrgrpo.core.theory.correlation_bias`). Right for any distribution as
  ``m`` grows, but an expansion: at ``m = 4`` its ``O(m^-2)`` remainder shows,
  and for a rare binary channel (``m p`` small) it does not describe the groups;
- the exact finite-``m`` value, with no expansion (:func:`subsampled_floor`).
  A group of ``m`` distinct rollouts drawn at random from a prompt's ``N``
  pooled rollouts is an i.i.d. sample of size ``m`` from the prompt's reward
  distribution, so the mean of ``w^T C_hat_m w`` over such subsets is unbiased
  for its expectation at that ``m``. Drawing *without* replacement matters: a
  bootstrap repeats rollouts and makes constant channels more common.

The check's target is the exact value over *non-degenerate* groups,
``E[w^T C_hat_m w | non-degenerate]``: a group is degenerate when a weighted
channel that can vary (the caller's ``varies``; :func:`mrgrpo.analysis.floor.floor_check`
counts every channel that varies anywhere in the corpus) is constant within it.
In a degenerate group the constant channel's row and column of ``C_hat`` are 0
(the project's convention, which Theorem 3's expansion knows nothing of); the
target leaves them out, so the measured floor falls short of it by what
degenerate groups cost, and :func:`split_deficit` says how much of a gap they carry.

Judged per group, not against the prompt's own pool, a prompt whose pool never
shows a rare channel varying has no non-degenerate subset and weight 0 in the
non-degenerate comparison. That keeps the target level unbiased when the pool
is small against a rare channel: a subset's ``q * nd`` and ``nd`` are unbiased
for their expectations whatever the pool, so a level weighted by each prompt's
non-degenerate share is a ratio of unbiased means (a per-prompt ratio, or one
judged against the pool, is not: pool 32, ``p = 0.08`` put it 5% low).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from mrgrpo.core.kernels import channel_moments, moment_correlation
from mrgrpo.core.theory.correlation_bias import moment_bias_matrix

__all__ = ["first_order_floor", "group_quadratic", "subsample_groups", "subsampled_floor", "split_deficit",
           "degenerate_share"]

_CHUNK_ELEMENTS = 2_000_000
_GROWTH = 16  # each extra subsampling round for a thin prompt is this much larger


def first_order_floor(w: np.ndarray, C: np.ndarray, varies: np.ndarray, pooled: np.ndarray,
                      m_grid) -> np.ndarray:
    """Theorem 3's first order ``w_eff^T (C_p + B_p / m) w_eff`` per prompt and ``m``.

    Parameters
    ----------
    w : ``(R,)``; C : ``(P, R, R)`` population correlation; varies : ``(P, R)`` bool
    pooled : ``(P, N, R)``
        The rollouts whose standardized moments give ``B_p`` (:func:`moment_bias_matrix`).
    m_grid : sequence of int

    Returns
    -------
    numpy.ndarray, shape ``(len(m_grid), P)``
    """
    we = np.where(varies, w, 0.0)
    pop = np.einsum("pi,pij,pj->p", we, C, we)
    slope = np.einsum("pi,pij,pj->p", we, moment_bias_matrix(pooled), we)
    return pop[None, :] + slope[None, :] / np.asarray(m_grid, dtype=float)[:, None]


def group_quadratic(x: np.ndarray, w: np.ndarray, varies: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``w^T C_hat w`` of every group (``eps = 0``), and which groups are degenerate.

    Parameters
    ----------
    x : ``(P, G, m, R)`` groups; w : ``(R,)``
    varies : ``(P, R)`` bool
        The channels that can vary: a group in which one of them (weighted) is constant is degenerate.

    Returns
    -------
    q : ``(P, G)``
    deg : ``(P, G)`` bool
        A weighted channel that can vary is constant in the group.
    const : ``(P, G, R)`` bool
        Those channels.
    """
    _, Ch, const_g = moment_correlation(channel_moments(x), 0.0)
    q = np.einsum("i,pgij,j->pg", w, Ch, w)
    const = const_g & varies[:, None, :] & (w != 0)
    return q, const.any(axis=-1), const


def subsample_groups(pooled: np.ndarray, m: int, n_groups: int, rng: np.random.Generator) -> np.ndarray:
    """``n_groups`` groups of ``m`` distinct rollouts per prompt (without replacement).

    Each random permutation of a prompt's ``N`` rollouts is cut into ``N // m``
    disjoint groups, each a uniformly random ``m``-subset.

    Parameters
    ----------
    pooled : ``(P, N, R)``, ``N >= m``

    Returns
    -------
    numpy.ndarray, shape ``(P, n_groups, m, R)``
    """
    P, N, _ = pooled.shape
    per_perm = N // m
    n_perm = -(-n_groups // per_perm)
    idx = np.argsort(rng.random((P, n_perm, N)), axis=-1)[..., : per_perm * m]
    idx = idx.reshape(P, n_perm * per_perm, m)[:, :n_groups]
    return pooled[np.arange(P)[:, None, None], idx]


def _subsample_sums(pooled, w, varies, m, n_groups, rng) -> np.ndarray:
    """Per prompt, over ``n_groups`` random subsets: sums of ``q`` on non-degenerate ones,
    their count, sums of ``q``, and the count of degenerate ones; ``(P, 4)``.

    Works in blocks of about ``_CHUNK_ELEMENTS`` rewards (prompts x subsets), so memory stays
    bounded however many subsets a thin prompt needs."""
    P, _, R = pooled.shape
    out = np.zeros((P, 4))
    budget = max(1, _CHUNK_ELEMENTS // (m * R))  # subsets per block, all prompts together
    g_step = min(n_groups, budget)
    p_step = max(1, budget // g_step)
    for g0 in range(0, n_groups, g_step):
        n = min(g_step, n_groups - g0)
        for p0 in range(0, P, p_step):
            sl = slice(p0, p0 + p_step)
            q, deg, _ = group_quadratic(subsample_groups(pooled[sl], m, n, rng), w, varies[sl])
            out[sl] += np.column_stack([np.where(deg, 0.0, q).sum(axis=1), (~deg).sum(axis=1),
                                        q.sum(axis=1), deg.sum(axis=1)])
    return out


def subsampled_floor(pooled: np.ndarray, w: np.ndarray, varies: np.ndarray, m: int, n_groups: int,
                     rng: np.random.Generator, fallback: Optional[np.ndarray] = None, min_nondegenerate: int = 16,
                     max_rounds: int = 3) -> dict:
    """The exact finite-``m`` floor of each prompt, estimated from random ``m``-subsets of its rollouts.

    Parameters
    ----------
    pooled : ``(P, N, R)``, ``N >= m``; w : ``(R,)``; varies : ``(P, R)`` bool
    m, n_groups : int
        Group size and subsets per prompt (first round).
    rng : numpy.random.Generator
    fallback : ``(P,)``, optional
        Target of a prompt none of whose subsets is non-degenerate; default its
        ``expected`` (then its degenerate groups cost nothing).
    min_nondegenerate, max_rounds : int
        A prompt with fewer non-degenerate subsets than ``min_nondegenerate``
        (one whose weighted channel rarely varies in a group of ``m``) gets up
        to ``max_rounds - 1`` more rounds, each 16 times larger; a prompt with
        a counted channel constant over all its rollouts has no
        non-degenerate subset and gets none.

    Returns
    -------
    dict of ``(P,)`` arrays
        ``target``: ``E[w^T C_hat_m w | non-degenerate]``; ``expected``:
        ``E[w^T C_hat_m w]`` over all groups (degenerate ones under the
        convention); ``frac_degenerate``: the probability that a group is
        degenerate; ``n_groups``, ``n_nondegenerate``: subsets drawn;
        ``fallback`` (bool): the prompt's target is ``fallback``.
    """
    sums = _subsample_sums(pooled, w, varies, m, n_groups, rng)
    possible = ~((pooled == pooled[:, :1]).all(axis=1) & varies & (w != 0)).any(axis=1)
    size = n_groups
    for _ in range(max_rounds - 1):
        thin = np.flatnonzero((sums[:, 1] < min_nondegenerate) & possible)
        if thin.size == 0:
            break
        size *= _GROWTH
        sums[thin] += _subsample_sums(pooled[thin], w, varies[thin], m, size, rng)
    total = sums[:, 1] + sums[:, 3]
    fb = sums[:, 1] == 0
    expected = sums[:, 2] / total
    target = np.where(fb, expected if fallback is None else fallback, sums[:, 0] / np.where(fb, 1.0, sums[:, 1]))
    return {"target": target, "expected": expected, "frac_degenerate": sums[:, 3] / total,
            "n_groups": total, "n_nondegenerate": sums[:, 1], "fallback": fb}


def split_deficit(q: np.ndarray, deg: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split each prompt's ``target - floor`` into the parts its degenerate and other groups carry.

    ``target_p - mean_k q_pk = mean_k [deg_pk (target_p - q_pk)] + mean_k [(1 - deg_pk)(target_p - q_pk)]``:
    an identity, with no division.

    Parameters
    ----------
    q, deg : ``(P, K)``; target : ``(P,)``

    Returns
    -------
    (deficit_degenerate, deficit_nondegenerate), each ``(P,)``
    """
    gap = target[:, None] - q
    return np.where(deg, gap, 0.0).mean(axis=1), np.where(deg, 0.0, gap).mean(axis=1)


def degenerate_share(deficit_degenerate: float, deficit_nondegenerate: float) -> float:
    """``|D_deg| / (|D_deg| + |D_other|)``: in ``[0, 1]`` by construction; 0 when there is no deficit.

    The two parts can have either sign (negative weights, anti-correlated
    channels, noise), so a signed ratio ``D_deg / (D_deg + D_other)`` can leave
    ``[0, 1]``; this share of the absolute gap cannot.
    """
    total = abs(deficit_degenerate) + abs(deficit_nondegenerate)
    return float(abs(deficit_degenerate) / total) if total > 0 else 0.0
