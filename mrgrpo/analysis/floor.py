"""The population floor: does ``E[w^T C_hat_m w]`` approach ``w^T C w`` as Theorem 3 says?

Theorem 3 (self-normalized) has two parts: the exact identity
``m * MSE = w^T E[C_hat_m] w`` (which holds for any rewards, see
:mod:`mrgrpo.analysis.identity`) and the expansion
``E[C_hat_m] = C - C (1 - C^2) / (2m) + O(m^-2)`` off the diagonal, with a unit
diagonal. The second part is a claim about the rewards and can fail: a group
in which a channel is constant has ``C_hat_ll = 0`` (its row and column are
zero), so binary channels with small success rates pull the floor below the
population value by far more than ``O(1/m)``.

:func:`floor_check` estimates each prompt's population correlation ``C_p``
from all of its rollouts (every seed pooled; or takes a known ``C``), then for
each group size ``m`` compares the mean of ``w^T C_hat_m w`` over groups with
``w^T C_p w`` and with the Fisher expansion
(:func:`mrgrpo.core.theory.expected_sample_correlation`), with prompt-bootstrap
CIs, and splits the deficit into the part carried by degenerate
(constant-channel) groups and the rest.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import numpy as np

from mrgrpo.core.checks import check_rewards, check_weights
from mrgrpo.core.kernels import channel_moments, correlation, moment_correlation
from mrgrpo.core.theory import check_correlation
from mrgrpo.core.theory.mse import expected_sample_correlation_unchecked

from .bootstrap import bootstrap_weights, mean_ci

__all__ = ["FloorResult", "floor_check", "population_stats", "pooled_population", "fisher_floor"]


def _population(S: np.ndarray, varies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correlation and std from covariances ``S`` ``(..., R, R)``; ``varies`` ``(..., R)``.

    A channel that does not vary gets an identity row/column in ``C`` and
    ``sigma = 0``; the diagonal is exactly 1.
    """
    S = np.where(varies[..., :, None] & varies[..., None, :], S, 0.0)
    C = correlation(S, ~varies, 0.0)
    R = C.shape[-1]
    C[..., np.arange(R), np.arange(R)] = 1.0
    return C, np.sqrt(np.diagonal(S, axis1=-2, axis2=-1))


def population_stats(pooled: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-prompt population correlation, std and which channels vary.

    Parameters
    ----------
    pooled : numpy.ndarray, shape ``(P, N, R)``
        All ``N`` rollouts of each prompt (seeds pooled).

    Returns
    -------
    C : ``(P, R, R)``
        Sample correlation over the ``N`` rollouts (``ddof = 0``, no eps); a
        channel constant over all of a prompt's rollouts gets an identity
        row/column (it carries no noise, and ``varies`` flags it).
    sigma : ``(P, R)``
        Standard deviation over the ``N`` rollouts (``ddof = 0``); 0 where constant.
    varies : ``(P, R)`` bool
    """
    cov, _, const = moment_correlation(channel_moments(pooled), 0.0)
    return (*_population(cov, ~const), ~const)


def pooled_population(mean: np.ndarray, cov: np.ndarray):
    """:func:`population_stats` from per-group moments, without re-reading the rollouts.

    Law of total covariance over ``K`` equal-size groups:
    ``S_p = mean_k cov_pk + mean_k (mu_pk - mu_p)(mu_pk - mu_p)^T``. A channel
    varies over the prompt unless every group has it constant (zero variance)
    at one common value.

    Parameters
    ----------
    mean : ``(P, K, R)`` group means; cov : ``(P, K, R, R)`` group covariances (``ddof = 0``)

    Returns
    -------
    C ``(P, R, R)``, sigma ``(P, R)``, varies ``(P, R)`` bool, as :func:`population_stats`
    """
    dm = mean - mean.mean(axis=1, keepdims=True)
    S = cov.mean(axis=1) + np.einsum("pka,pkb->pab", dm, dm) / mean.shape[1]
    flat = (np.diagonal(cov, axis1=-2, axis2=-1) == 0).all(axis=1) & (mean == mean[:, :1]).all(axis=1)
    return (*_population(S, ~flat), ~flat)


def fisher_floor(w: np.ndarray, C: np.ndarray, varies: np.ndarray, m: int) -> np.ndarray:
    """Per-prompt ``w_eff^T E_Fisher[C_hat_m](C_p) w_eff``, vectorized over prompts.

    ``E_Fisher`` is :func:`mrgrpo.core.theory.expected_sample_correlation` (its
    kernel, on the batch ``C``); ``w_eff`` zeroes the channels that do not vary
    within the prompt.

    Parameters
    ----------
    w : ``(R,)``; C : ``(P, R, R)``; varies : ``(P, R)`` bool; m : int

    Returns
    -------
    numpy.ndarray, shape ``(P,)``
    """
    we = np.where(varies, w, 0.0)
    return np.einsum("pi,pij,pj->p", we, expected_sample_correlation_unchecked(C, m), we)


@dataclass
class FloorResult:
    """Output of :func:`floor_check` (per ``m`` rows in :attr:`table`)."""

    w: np.ndarray
    P: int
    K: int
    m_grid: list
    C_source: str
    population_wCw: float
    population_wCw_ci: np.ndarray
    per_m: dict = field(repr=False)
    ci: float = 0.95

    def to_frame(self):
        """One row per ``m`` (a pandas DataFrame)."""
        import pandas as pd

        rows = []
        for m in self.m_grid:
            d = self.per_m[m]
            rows.append({
                "m": m, "floor": d["floor"], "floor_lo": d["floor_ci"][0], "floor_hi": d["floor_ci"][1],
                "fisher": d["fisher"], "population": d["population"],
                "floor_minus_fisher": d["diff"], "diff_lo": d["diff_ci"][0], "diff_hi": d["diff_ci"][1],
                "agrees": d["agrees"], "frac_degenerate": d["frac_degenerate"],
                "floor_nondegenerate": d["floor_nondegenerate"], "deficit": d["deficit"],
                "deficit_degenerate": d["deficit_degenerate"], "share_degenerate": d["share_degenerate"],
                "diag_deficit": d["diag_deficit"],
            })
        return pd.DataFrame(rows)

    table = property(to_frame)


def _as_tensors(rewards, m_grid) -> tuple[dict, np.ndarray]:
    if isinstance(rewards, Mapping):
        tens = {int(m): check_rewards(t, exact_ndim=4, name=f"rewards[{m}]") for m, t in rewards.items()}
        for m, t in tens.items():
            if t.shape[2] != m:
                raise ValueError(f"rewards[{m}] has group size {t.shape[2]}, expected {m}")
        shapes = {(t.shape[0], t.shape[1], t.shape[3]) for t in tens.values()}
        if len(shapes) != 1:
            raise ValueError(f"the per-m tensors disagree on (P, K, R): {sorted(shapes)}")
        biggest = tens[max(tens)]
        if m_grid is not None:
            missing = [m for m in m_grid if int(m) not in tens]
            if missing:
                raise ValueError(f"no tensor for m = {missing}; have {sorted(tens)}")
            tens = {int(m): tens[int(m)] for m in m_grid}
        return tens, biggest
    full = check_rewards(rewards, exact_ndim=4)
    M = full.shape[2]
    grid = [int(m) for m in m_grid] if m_grid is not None else \
        [m for m in (2 ** np.arange(1, 12)).tolist() if 4 <= m <= M] or [M]
    bad = [m for m in grid if not 2 <= m <= M]
    if bad:
        raise ValueError(f"m_grid values {bad} are outside [2, {M}] (the stored group size)")
    return {m: full[:, :, :m] for m in sorted(set(grid))}, full


def floor_check(rewards, w, m_grid: Optional[Sequence[int]] = None, C=None, n_boot: int = 2000,
                seed=0, ci: float = 0.95) -> FloorResult:
    """Compare ``E[w^T C_hat_m w]`` with ``w^T C w`` and Fisher's expansion across ``m``.

    Parameters
    ----------
    rewards : array_like ``(P, K, M, R)`` or mapping ``{m: (P, K, m, R)}``
        With one tensor, groups of size ``m`` are its leading prefixes; with a
        mapping (e.g. the released per-``m`` tensors) each ``m`` uses its own
        tensor and the population is estimated from the largest.
    w : array_like, shape ``(R,)``
    m_grid : sequence of int, optional
        Default: powers of two from 4 up to ``M`` (or the mapping's keys).
    C : array_like ``(R, R)`` or ``(P, R, R)``, optional
        Known population correlation (e.g. a mock's); default: estimated per
        prompt from all its rollouts.
    n_boot, seed, ci
        Prompt-level bootstrap.

    Returns
    -------
    FloorResult
    """
    tens, biggest = _as_tensors(rewards, m_grid)
    P, K, M, R = biggest.shape
    wv = check_weights(w, R)
    if K * M < 2:
        raise ValueError("need at least 2 rollouts per prompt to estimate the population correlation")
    pooled = biggest.reshape(P, K * M, R)
    C_p, _, varies = population_stats(pooled)
    source = "all rollouts of each prompt (seeds pooled)"
    if C is not None:
        Cg = np.asarray(C, dtype=float)
        if Cg.shape == (R, R):
            Cg = np.broadcast_to(check_correlation(Cg), (P, R, R))
        elif Cg.shape == (P, R, R):
            check_correlation(Cg)
        else:
            raise ValueError(f"C must have shape ({R}, {R}) or ({P}, {R}, {R}), got {Cg.shape}")
        C_p, varies, source = np.array(Cg), np.ones((P, R), dtype=bool), "given"
    w_eff = np.where(varies, wv, 0.0)  # (P, R)
    pop = np.einsum("pi,pij,pj->p", w_eff, C_p, w_eff)
    W = bootstrap_weights(P, n_boot, seed)
    per_m = {}
    for m, x in sorted(tens.items()):
        _, Ch, const_g = moment_correlation(channel_moments(x), 0.0)  # Ch (P, K, R, R)
        q = np.einsum("i,pkij,j->pk", wv, Ch, wv)
        const = const_g & varies[:, None, :] & (wv != 0)
        deg = const.any(axis=-1)  # (P, K)
        fisher = fisher_floor(wv, C_p, varies, m)  # (P,)
        floor_p = q.mean(axis=1)
        diag_def = (const * wv**2).sum(axis=-1).mean(axis=1)
        def_deg_p = (deg * (fisher[:, None] - q)).mean(axis=1)
        n_nondeg = (~deg).sum(axis=1)
        q_nondeg = np.where(deg, 0.0, q).sum(axis=1)
        deficit = float(fisher.mean() - floor_p.mean())
        d_deg = float(def_deg_p.mean())
        diff_ci = mean_ci(floor_p - fisher, W, ci)
        per_m[m] = {
            "floor": float(floor_p.mean()), "floor_ci": mean_ci(floor_p, W, ci),
            "fisher": float(fisher.mean()), "population": float(pop.mean()),
            "diff": float((floor_p - fisher).mean()), "diff_ci": diff_ci,
            "agrees": bool(diff_ci[0] <= 0.0 <= diff_ci[1]),
            "frac_degenerate": float(deg.mean()),
            "floor_nondegenerate": float(q_nondeg.sum() / n_nondeg.sum()) if n_nondeg.sum() else float("nan"),
            "deficit": deficit, "deficit_degenerate": d_deg,
            "share_degenerate": d_deg / deficit if deficit != 0 else float("nan"),
            "diag_deficit": float(diag_def.mean()),
            "floor_per_prompt": floor_p, "fisher_per_prompt": fisher,
            "frac_degenerate_per_prompt": deg.mean(axis=1),
        }
    return FloorResult(w=wv, P=P, K=K, m_grid=sorted(per_m), C_source=source,
                       population_wCw=float(pop.mean()), population_wCw_ci=mean_ci(pop, W, ci),
                       per_m=per_m, ci=ci)
