"""The population floor: is ``E[w^T C_hat_m w]`` what Theorem 3 says, at each group size?

Theorem 3 (self-normalized) has two parts: the exact identity
``m * MSE = w^T E[C_hat_m] w`` (it holds for any rewards, see
:mod:`mrgrpo.analysis.identity`) and the expansion ``E[C_hat_m] = C + O(1/m)``.
The second is a claim about the rewards and can fail: in a group where a
channel is constant that channel's row and column of ``C_hat`` are 0 (the
project's convention), so binary channels with small success rates pull the
floor far below ``w^T C w``.

:func:`floor_check` estimates each prompt's population correlation ``C_p``
from all of its rollouts (every seed pooled; or takes a known ``C``). For each
group size ``m`` it compares the measured mean of ``w^T C_hat_m w`` with a
target that is right for any reward distribution: the exact finite-``m`` value
over non-degenerate groups, estimated by drawing groups of ``m`` distinct
rollouts from each prompt's own rollouts (:mod:`mrgrpo.analysis.floor_target`,
which says why). It gives two answers, each with a prompt-bootstrap CI:

1. does the identity hold on the non-degenerate groups (their floor against
   the target, weighted as those groups occur)? Calibrated: with the target
   computed from the same rollouts, the difference has mean 0 given them;
2. what do degenerate groups cost: their share, and the deficit they cause as
   a share of the floor.

The verdict fails only when (1) fails or the cost lies beyond a practical
margin (:data:`mrgrpo.analysis.thresholds.FLOOR_COST_MARGIN`, 1% of the floor):
with any degenerate group and enough prompts a test of floor against target
over all groups would reject, however little they cost. Beside it the result
gives Theorem 3's first-order expansion with the delta-method bias (right for
any distribution as ``m`` grows) and Fisher's Gaussian-only expansion (the old
target): references, not tests. Their flags ``agrees_first_order`` and
``agrees_fisher`` false-alarm where the check is calibrated: over 40 corpora of
200 prompts x 16 seeds at ``m = 12``, the first order rejects 12% (Gaussian),
15% (Bernoulli(1/2), Gaussian, exponential) and 100% (Bernoulli and
exponential) of the time, Fisher's 10%, 100% and 100%, while answer 1 rejects
0 to 8% (:func:`mrgrpo.analysis.floor_calibration.floor_calibration`). No
table shows them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import numpy as np

from mrgrpo.core.checks import as_generator, check_rewards, check_weights
from mrgrpo.core.kernels import channel_moments, correlation, fit_to_range, moment_correlation
from mrgrpo.core.theory import check_correlation
from mrgrpo.core.theory.mse import expected_sample_correlation_unchecked

from .bootstrap import bootstrap_weights, mean_ci, ratio_ci
from .floor_target import degenerate_share, first_order_floor, group_quadratic, split_deficit, subsampled_floor
from .thresholds import FLOOR_COST_MARGIN, FloorJudgement, judge_floor

__all__ = ["FloorResult", "floor_check", "population_stats", "pooled_population", "fisher_floor",
           "FRAME_COLUMNS"]


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


#: Columns of :meth:`FloorResult.to_frame` copied from ``per_m`` (besides ``m`` and the CI bounds).
FRAME_COLUMNS = ("floor", "target", "agrees", "verdict", "holds_nondegenerate", "cost_degenerate", "first_order",
                 "fisher", "population", "expected", "frac_degenerate", "frac_degenerate_expected",
                 "floor_nondegenerate", "deficit", "deficit_degenerate", "deficit_nondegenerate",
                 "share_degenerate", "diag_deficit", "n_target_fallback")


@dataclass
class FloorResult:
    """Output of :func:`floor_check`: one entry of :attr:`per_m` (and one row of :attr:`table`) per ``m``.

    Per ``m`` (means over prompts; ``*_ci`` are prompt-bootstrap intervals at level :attr:`ci`).
    A group is degenerate when a weighted channel that varies anywhere in the
    corpus is constant within it.

    - ``floor``, ``floor_ci``: measured ``E[w^T C_hat_m w]`` over all groups.
    - ``floor_nondegenerate``: measured over the non-degenerate groups; ``target``:
      ``E[w^T C_hat_m w | non-degenerate]``, exact at this ``m`` (subsampled
      from each prompt's rollouts), weighted over prompts as the non-degenerate
      groups occur; ``diff`` = floor_nondegenerate - target with ``diff_ci``;
      ``holds_nondegenerate``: ``diff_ci`` does not exclude 0 (answer 1).
    - ``cost_degenerate``, ``cost_degenerate_ci``: ``deficit_degenerate / floor``,
      what degenerate groups cost as a share of the floor (answer 2), judged
      against ``margin``.
    - ``verdict``: ``"agrees"``, ``"fails: degenerate groups"`` (they cost more
      than the margin), ``"fails: non-degenerate groups"`` (the identity fails)
      or ``"fails: both"``; ``agrees``: the verdict is ``"agrees"``.
    - ``first_order``, ``agrees_first_order``, ``first_order_diff_ci``:
      Theorem 3's ``w^T (C + B/m) w`` with the delta-method ``B`` (a reference;
      the flag false-alarms, see the module notes).
    - ``fisher``, ``agrees_fisher``, ``fisher_diff_ci``: Fisher's Gaussian-only
      expansion (the old target, a reference).
    - ``population``: ``w^T C w``. ``expected``, ``expected_diff_ci``: the exact
      value over all groups, degenerate ones under the convention.
    - ``frac_degenerate``: measured share of groups with a constant weighted
      channel (``frac_degenerate_expected``: its subsampled probability).
    - ``deficit`` = mean over prompts of (prompt target - prompt floor), with
      ``deficit_ci``, = ``deficit_degenerate`` + ``deficit_nondegenerate`` (each
      with a ``*_ci``); ``share_degenerate`` =
      ``|deficit_degenerate| / (|deficit_degenerate| + |deficit_nondegenerate|)``, in ``[0, 1]``.
    - ``diag_deficit``: mean ``sum_l w_l^2`` over the constant channels of a group.
    - ``n_target_fallback``: prompts with no non-degenerate subset (a channel
      constant over all their rollouts); their prompt target is their
      ``expected`` value, so their degenerate groups cost nothing.
    - ``*_per_prompt`` arrays ``(P,)``.
    """

    w: np.ndarray
    P: int
    K: int
    m_grid: list
    C_source: str
    population_wCw: float
    population_wCw_ci: np.ndarray
    per_m: dict = field(repr=False)
    ci: float = 0.95
    n_subsample: int = 1024
    margin: float = FLOOR_COST_MARGIN

    def to_frame(self):
        """One row per ``m`` (a pandas DataFrame)."""
        import pandas as pd

        rows = []
        for m in self.m_grid:
            d = self.per_m[m]
            row = {"m": m, "floor_lo": d["floor_ci"][0], "floor_hi": d["floor_ci"][1],
                   "floor_minus_target": d["diff"], "diff_lo": d["diff_ci"][0], "diff_hi": d["diff_ci"][1],
                   "cost_lo": d["cost_degenerate_ci"][0], "cost_hi": d["cost_degenerate_ci"][1],
                   "floor_minus_fisher": d["floor"] - d["fisher"]}
            row.update({k: d[k] for k in FRAME_COLUMNS})
            rows.append(row)
        cols = ["m", "floor", "floor_lo", "floor_hi", "target", "floor_minus_target", "diff_lo", "diff_hi"]
        return pd.DataFrame(rows)[cols + [c for c in rows[0] if c not in cols]] if rows else pd.DataFrame()

    table = property(to_frame)


def _verdict(j: FloorJudgement) -> str:
    """The verdict's words from the two answers (:func:`mrgrpo.analysis.thresholds.judge_floor`)."""
    if j.agrees:
        return "agrees"
    if j.costly and not j.holds:
        return "fails: both"
    return "fails: degenerate groups" if j.costly else "fails: non-degenerate groups"


def _contains_zero(ci: np.ndarray) -> bool:
    return bool(ci[0] <= 0.0 <= ci[1])


def _as_tensors(rewards, m_grid) -> tuple[dict, np.ndarray]:
    if isinstance(rewards, Mapping):
        tens = {int(m): check_rewards(t, exact_ndim=4, name=f"rewards[{m}]") for m, t in rewards.items()}
        div = max(fit_to_range(t)[1] for t in tens.values())  # one power of two for all: exact, scale-free
        tens = {m: t / div for m, t in tens.items()}
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
    full = fit_to_range(check_rewards(rewards, exact_ndim=4))[0]  # exact: w'C_hat w is scale-free, eps = 0
    M = full.shape[2]
    grid = [int(m) for m in m_grid] if m_grid is not None else \
        [m for m in (2 ** np.arange(1, 12)).tolist() if 4 <= m <= M] or [M]
    bad = [m for m in grid if not 2 <= m <= M]
    if bad:
        raise ValueError(f"m_grid values {bad} are outside [2, {M}] (the stored group size)")
    return {m: full[:, :, :m] for m in sorted(set(grid))}, full


def floor_check(rewards, w, m_grid: Optional[Sequence[int]] = None, C=None, n_boot: int = 2000,
                seed=0, ci: float = 0.95, n_subsample: int = 1024, margin: float = FLOOR_COST_MARGIN) -> FloorResult:
    """Compare the measured ``E[w^T C_hat_m w]`` with a target that is right for any rewards, across ``m``.

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
        Known population correlation (e.g. a mock's), used for ``population``,
        ``first_order`` and ``fisher``; default: estimated per prompt from all
        its rollouts. The target always comes from the rollouts.
    n_boot, seed, ci
        Prompt-level bootstrap (``seed`` also draws the subsets).
    n_subsample : int
        Random ``m``-subsets per prompt for the target (more for a prompt whose
        subsets are rarely non-degenerate).
    margin : float
        The practical margin: degenerate groups fail the check only when they
        cost more than this share of the floor (CI wholly beyond it).

    Returns
    -------
    FloorResult
    """
    tens, biggest = _as_tensors(rewards, m_grid)
    P, K, M, R = biggest.shape
    wv = check_weights(w, R)
    if isinstance(n_subsample, (bool, np.bool_)) or not isinstance(n_subsample, (int, np.integer)) \
            or n_subsample < 1:
        raise ValueError(f"n_subsample must be a positive int, got {n_subsample!r}")
    if not (isinstance(margin, (int, float, np.floating)) and 0 <= margin < 1):
        raise ValueError(f"margin must be a share of the floor in [0, 1), got {margin!r}")
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
        C_p, source = np.array(Cg), "given"
    w_eff = np.where(varies, wv, 0.0)  # a channel constant over all of a prompt's rollouts carries no noise
    pop = np.einsum("pi,pij,pj->p", w_eff, C_p, w_eff)
    rng = as_generator(seed)
    W = bootstrap_weights(P, n_boot, rng)
    grid = sorted(tens)
    first = dict(zip(grid, first_order_floor(wv, C_p, varies, pooled, grid)))
    # degenerate: a weighted channel that varies anywhere in the corpus is constant in the group (judged per
    # group, not against the prompt's pool, which may never show a rare channel varying)
    counted = np.broadcast_to(varies.any(axis=0), varies.shape)
    per_m = {}
    for m in grid:
        q, deg, const = group_quadratic(tens[m], wv, counted)  # (P, K)
        floor_p = q.mean(axis=1)
        fisher = fisher_floor(wv, C_p, varies, m)
        sub = subsampled_floor(pooled, wv, counted, m, int(n_subsample), rng)
        target = sub["target"]
        d_deg, d_nd = split_deficit(q, deg, target)
        nd_share = (~deg).mean(axis=1)  # B_p; the measured non-degenerate floor is sum(A_p) / sum(B_p)
        cis = mean_ci(np.column_stack([floor_p, target - floor_p, floor_p - first[m], floor_p - fisher,
                                       d_deg, d_nd, floor_p - sub["expected"]]), W, ci)
        diff_ci, cost_ci = ratio_ci(np.column_stack([-d_nd, d_deg]), np.column_stack([nd_share, floor_p]), W, ci)
        D_deg, D_nd = float(d_deg.mean()), float(d_nd.mean())
        nd_total = float(nd_share.sum())
        judged = judge_floor(diff_ci, cost_ci, margin)
        verdict = _verdict(judged)
        per_m[m] = {
            "floor": float(floor_p.mean()), "floor_ci": cis[0],
            "floor_nondegenerate": float(np.where(deg, 0.0, q).mean(axis=1).sum() / nd_total) if nd_total else
            float("nan"),
            "target": float((nd_share * target).sum() / nd_total) if nd_total else float("nan"),
            "diff": float(-d_nd.sum() / nd_total) if nd_total else float("nan"), "diff_ci": diff_ci,
            "holds_nondegenerate": judged.holds,
            "cost_degenerate": D_deg / float(floor_p.mean()) if floor_p.mean() > 0 else float("nan"),
            "cost_degenerate_ci": cost_ci, "costly": judged.costly,
            "agrees": verdict == "agrees", "verdict": verdict,
            "first_order": float(first[m].mean()), "first_order_diff_ci": cis[2],
            "agrees_first_order": _contains_zero(cis[2]),
            "fisher": float(fisher.mean()), "fisher_diff_ci": cis[3], "agrees_fisher": _contains_zero(cis[3]),
            "population": float(pop.mean()),
            "expected": float(sub["expected"].mean()), "expected_diff_ci": cis[6],
            "frac_degenerate": float(deg.mean()), "frac_degenerate_expected": float(sub["frac_degenerate"].mean()),
            "deficit": D_deg + D_nd, "deficit_ci": cis[1], "deficit_degenerate": D_deg,
            "deficit_degenerate_ci": cis[4], "deficit_nondegenerate": D_nd, "deficit_nondegenerate_ci": cis[5],
            "share_degenerate": degenerate_share(D_deg, D_nd),
            "diag_deficit": float((const * wv**2).sum(axis=-1).mean()),
            "n_target_fallback": int(sub["fallback"].sum()),
            "floor_per_prompt": floor_p, "target_per_prompt": target, "first_order_per_prompt": first[m],
            "fisher_per_prompt": fisher, "frac_degenerate_per_prompt": deg.mean(axis=1),
        }
    return FloorResult(w=wv, P=P, K=K, m_grid=grid, C_source=source, population_wCw=float(pop.mean()),
                       population_wCw_ci=mean_ci(pop, W, ci), per_m=per_m, ci=ci, n_subsample=int(n_subsample),
                       margin=float(margin))
