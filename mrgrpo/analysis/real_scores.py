"""Theorem 3 under real policy scores.

The paper checks Theorem 3 with a score ``g ~ N(0, 1)`` drawn independently of
the rewards, which makes the check an identity. Here the score of rollout ``j``
is the real one, ``g_j = v^T grad_theta log pi(y_j | x)`` along a random unit
direction ``v`` (:mod:`mrgrpo.lm.scores`), computed on the same completion that the
rewards score. For each prompt ``p`` and group size ``m``:

- realized MSE: ``g_hat_pk = (1/m) sum_j A_pkj g_pkj`` for each of the ``K``
  seeds; its variance across seeds with ``ddof = 1`` (the mean ``E[g_hat]``, the
  policy-gradient signal, is not zero with real scores and is estimated);
- prediction: ``(tau_p^2 / m) w^T C_p w`` with ``tau_p^2`` the variance of ``g`` and
  ``C_p`` the correlation of the rewards over all ``K * m_max`` rollouts of the prompt;
- ratio: ``sum_p realized_p / sum_p predicted_p`` (summed over directions too), with a
  prompt-level bootstrap CI.

Decomposition of the gap:

- **reshuffle control**: scores permuted within each group, which makes them
  independent of the advantages. Its expected realized MSE is available exactly,
  ``mean_k mean_j(A_kj^2) s^2_{g,k} / m`` (``s^2_g`` the within-group variance of
  ``g``, ``ddof = 1``), so no permutation noise enters;
  :func:`reshuffle_within_groups` draws actual permutations (tests check the two agree);
- **diagonal term**: ``mean_kj A_kj^2 g_kj^2 / m``, the part of ``E[g_hat^2]`` from each
  rollout with itself; it differs from the reshuffle term through
  ``Cov(A^2, g^2)`` (reported relative, ``kappa``). The rest of the realized MSE
  (``realized - diagonal``) is the cross-rollout part net of the squared mean;
- **degenerate groups** (a channel constant within the group, so NA drops it): their
  share of the groups and their share of the shortfall ``w^T C w - mean_j A_j^2``.

Verdicts computed from these numbers: :func:`score_mean_check` (does ``E[g] = 0`` hold,
from the mean's ``z`` per direction) and :func:`dependence_sentence` (where the dependence
gap is resolved, and the smallest gap the run could detect where it is not,
:func:`minimum_detectable_effect`).

Data come from :func:`mrgrpo.corpus.real_scores.collect` (roll out a policy, score the
completions along ``n_directions`` directions) or :meth:`RealScoreData.load`.
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

import numpy as np

from mrgrpo.core.advantage import compute_advantage_batch, constant_channel_mask
from mrgrpo.core.checks import SeedLike, as_generator, check_weights
from mrgrpo.core.stats import sample_correlation
from mrgrpo.corpus.real_scores import DEFAULT_M_GRID, DEFAULT_W, RealScoreData
from mrgrpo.analysis.bootstrap import bootstrap_weights, percentile_ci
from mrgrpo.analysis.floor_target import degenerate_share
from mrgrpo.analysis.plots import readable, save_figure
from mrgrpo.analysis.verdicts import count_sentence, fmt, noise_check, range_sentence

__all__ = ["analyze_real_scores", "reshuffle_within_groups", "group_terms", "plot_ratios",
           "minimum_detectable_effect", "ScoreMeanCheck", "score_mean_check", "dependence_sentence"]


def reshuffle_within_groups(g: np.ndarray, seed: SeedLike = 0) -> np.ndarray:
    """Permute the scores ``(..., m, D)`` across the rollouts of each group (axis ``-2``).

    One permutation per group (shared by the directions of a rollout), which makes
    the scores independent of the group's rewards while keeping its scores.
    """
    g = np.asarray(g, dtype=float)
    rng = as_generator(seed)
    keys = rng.random(g.shape[:-1])
    perm = np.argsort(keys, axis=-1)
    return np.take_along_axis(g, perm[..., None], axis=-2)


def group_terms(rewards: np.ndarray, g: np.ndarray, w, mode: str) -> dict:
    """Per-group quantities of one estimator for groups of size ``m``.

    Parameters
    ----------
    rewards : ``(P, K, m, R)``; g : ``(P, K, m, D)``; w : ``(R,)``; mode : "na" or "an"

    Returns
    -------
    dict of arrays: ``ghat`` ``(P, K, D)``; ``a2`` ``(P, K)`` (``mean_j A_j^2``);
    ``shuffle`` ``(P, K, D)`` (``E_perm[g_hat^2] = a2 s_g^2 / m``); ``diag`` ``(P, K, D)``
    (``mean_j A_j^2 g_j^2 / m``); ``degenerate`` ``(P, K)`` bool (NA: a channel with
    nonzero weight constant in the group; AN: the weighted sum constant).
    """
    m = rewards.shape[-2]
    A = compute_advantage_batch(rewards, w, mode=mode)  # (P, K, m)
    a2 = (A * A).mean(axis=-1)
    ghat = np.einsum("pkj,pkjd->pkd", A, g) / m
    s2 = g.var(axis=-2, ddof=1)
    shuffle = a2[..., None] * s2 / m
    diag = np.einsum("pkj,pkjd->pkd", A * A, g * g) / m / m
    if mode == "na":
        degenerate = (constant_channel_mask(rewards) & (np.asarray(w) != 0)).any(axis=-1)
    else:
        s = rewards @ np.asarray(w, dtype=float)
        degenerate = constant_channel_mask(s[..., None])[..., 0]
    return {"ghat": ghat, "a2": a2, "shuffle": shuffle, "diag": diag, "degenerate": degenerate, "A": A}


# ----------------------------------------------------------------------------- analysis
def pooled_quadratic(rewards: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``w^T C_p w`` with ``C_p`` the correlation over all of prompt ``p``'s rollouts, ``(P,)``."""
    P, K, M, R = rewards.shape
    C = sample_correlation(rewards.reshape(P, K * M, R))
    return np.einsum("i,pij,j->p", w, C, w)


def analyze_real_scores(data: RealScoreData, w: Sequence[float] = DEFAULT_W, m_grid: Sequence[int] = DEFAULT_M_GRID,
                        normalize: str = "sum", n_boot: int = 2000, boot_seed: int = 0, ci: float = 0.95) -> dict:
    """Realized vs Theorem-3 MSE with real scores, per ``m``, for NA and AN.

    Groups of size ``m`` are the first ``m`` rollouts of each stored group.

    Returns
    -------
    dict of pandas DataFrames
        ``"ratios"``: one row per (m, mode, control in {"real", "reshuffled"}): ``ratio``,
        ``lo``, ``hi`` (bootstrap over prompts), ``realized`` and ``predicted`` (means
        over prompts and directions);
        ``"decomposition"``: one row per (m, mode): the real, reshuffle and diagonal
        ratios, the dependence gap ``real - reshuffled`` with its CI, ``kappa``
        (``Cov(A^2, g^2) / (E[A^2] E[g^2])``), the fraction of degenerate groups, the
        shortfall of ``mean_j A_j^2`` below ``w^T C w`` and the share of it from
        degenerate groups, and the reshuffle ratio over non-degenerate groups only;
        ``"per_direction"``: the real and reshuffled NA/AN ratios per direction;
        ``"score_checks"``: per direction, the mean score in units of its sd (the
        score identity says ``E[g] = 0``), its standard error, ``z`` (the mean in
        standard errors; :func:`score_mean_check` judges it) and ``tau^2``.
        The decomposition's ``gap_se`` is the bootstrap standard error of the
        dependence gap (times ``sqrt(P / (P - 1))``) and ``gap_mde`` the smallest gap
        a two-sided test at level ``1 - ci`` detects with 80% power
        (:func:`minimum_detectable_effect`).
    """
    import pandas as pd


    P, K, M, R = data.rewards.shape
    wv = check_weights(w, R)
    m_grid = [int(m) for m in m_grid]
    for m in m_grid:
        if not 2 <= m <= M:
            raise ValueError(f"every m must be in [2, {M}] (the stored group size), got {m}")
    g_all = data.g(normalize)
    D = g_all.shape[-1]
    tau2 = g_all.reshape(P, K * M, D).var(axis=1, ddof=1)  # (P, D)
    q_pop = pooled_quadratic(data.rewards, wv)  # (P,)
    W = bootstrap_weights(P, n_boot, boot_seed)

    def rci(num, den):
        """ratio of sums and its bootstrap CI; num/den (P, ...) summed over trailing axes."""
        n_p = num.reshape(P, -1).sum(axis=1)
        d_p = den.reshape(P, -1).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            boot = (W @ n_p) / (W @ d_p)
            return float(n_p.sum() / d_p.sum()), percentile_ci(boot[:, None], ci)[0]

    rows, dec, per_dir = [], [], []
    for m in m_grid:
        r = data.rewards[:, :, :m]
        g = g_all[:, :, :m]
        pred = tau2 * q_pop[:, None] / m  # (P, D)
        for mode in ("na", "an"):
            t = group_terms(r, g, wv, mode)
            realized = t["ghat"].var(axis=1, ddof=1)  # (P, D)
            shuffled = t["shuffle"].mean(axis=1)      # (P, D): exact permutation average
            diag = t["diag"].mean(axis=1)
            for control, num in (("real", realized), ("reshuffled", shuffled)):
                ratio, (lo, hi) = rci(num, pred)
                rows.append({"m": m, "mode": mode.upper(), "control": control, "ratio": ratio, "lo": lo, "hi": hi,
                             "realized": float(num.mean()), "predicted": float(pred.mean())})
                for d in range(D):
                    rd, (ld, hd) = rci(num[:, d], pred[:, d])
                    per_dir.append({"m": m, "mode": mode.upper(), "control": control, "direction": d,
                                    "ratio": rd, "lo": ld, "hi": hd})
            # dependence gap (real - reshuffled) with a bootstrap CI of the difference
            n1, n2, dd = realized.sum(axis=1), shuffled.sum(axis=1), pred.sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                boot_gap = (W @ n1 - W @ n2) / (W @ dd)
            gap_lo, gap_hi = percentile_ci(boot_gap[:, None], ci)[0]
            # the bootstrap's plug-in variance is (P - 1) / P of the usual one: undo that
            gap_se = float(np.nanstd(boot_gap, ddof=1) * np.sqrt(P / (P - 1))) if P > 1 else float("nan")
            # kappa: relative covariance of A^2 and g^2 over all K*m rollouts of a prompt, pooled
            A2 = (t["A"] ** 2)[..., None]                          # (P, K, m, 1)
            g2 = g * g                                             # (P, K, m, D)
            EA2 = A2.mean(axis=(1, 2))                             # (P, 1)
            Eg2 = g2.mean(axis=(1, 2))                             # (P, D)
            cov = (A2 * g2).mean(axis=(1, 2)) - EA2 * Eg2
            with np.errstate(divide="ignore", invalid="ignore"):
                kappa = float(cov.sum() / (EA2 * Eg2).sum())
            deg = t["degenerate"]
            short = q_pop[:, None] - t["a2"]                       # (P, K) shortfall of mean A^2
            nd = ~deg
            # the floor check's accounting of the shortfall, in [0, 1]; NaN without any shortfall
            s_deg, s_nd = float(short[deg].sum()), float(short[nd].sum())
            share_deg = degenerate_share(s_deg, s_nd) if abs(s_deg) + abs(s_nd) > 0 else float("nan")
            num_nd = (t["shuffle"] * nd[..., None]).sum(axis=1)    # (P, D)
            den_nd = pred * nd.sum(axis=1)[:, None]                # (P, D): pred per non-degenerate group
            ratio_nd = float(num_nd.sum() / den_nd.sum()) if den_nd.sum() > 0 else float("nan")
            ratio_real, _ = rci(realized, pred)
            ratio_shuf, _ = rci(shuffled, pred)
            ratio_diag, _ = rci(diag, pred)
            dec.append({"m": m, "mode": mode.upper(), "ratio_real": ratio_real, "ratio_reshuffled": ratio_shuf,
                        "ratio_diagonal": ratio_diag, "dependence_gap": ratio_real - ratio_shuf,
                        "gap_lo": gap_lo, "gap_hi": gap_hi, "gap_se": gap_se,
                        "gap_mde": minimum_detectable_effect(gap_se, alpha=1 - ci), "kappa": kappa,
                        "frac_degenerate": float(deg.mean()),
                        "mean_A2_over_wCw": float(t["a2"].sum() / (q_pop.sum() * K)) if q_pop.sum() > 0 else np.nan,
                        "shortfall_share_degenerate": share_deg,
                        "ratio_reshuffled_nondegenerate": ratio_nd})
    sd = g_all.reshape(P * K * M, D).std(axis=0, ddof=1)
    mean_over_sd = g_all.reshape(-1, D).mean(axis=0) / sd
    checks = pd.DataFrame({"direction": np.arange(D),
                           "mean_over_sd": mean_over_sd,
                           "se_of_mean_over_sd": 1 / np.sqrt(P * K * M),
                           "z": mean_over_sd * np.sqrt(P * K * M),
                           "tau2_mean": tau2.mean(axis=0)})
    return {"ratios": pd.DataFrame(rows), "decomposition": pd.DataFrame(dec),
            "per_direction": pd.DataFrame(per_dir), "score_checks": checks}


# ----------------------------------------------------------------------------- verdicts
def minimum_detectable_effect(se, alpha: float = 0.05, power: float = 0.8):
    """Smallest true effect a two-sided z-test at level ``alpha`` detects with probability ``power``.

    ``(z_{1 - alpha/2} + z_{power}) * se``: about ``2.80 se`` at the defaults. It
    ignores the (negligible) chance of rejecting on the wrong side.

    Parameters
    ----------
    se : float or array of float, any shape
        Standard error of the estimate; ``>= 0`` (NaN passes through as NaN).
    alpha : float in (0, 1)
    power : float in (0, 1)

    Returns
    -------
    float, or an array of ``se``'s shape
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power}")
    arr = np.asarray(se, dtype=float)
    if np.any(arr[np.isfinite(arr)] < 0):
        raise ValueError("se must be >= 0")
    nd = NormalDist()
    out = (nd.inv_cdf(1 - alpha / 2) + nd.inv_cdf(power)) * arr
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class ScoreMeanCheck:
    """The score-function identity ``E[g] = 0`` judged from the mean's ``z`` per direction.

    ``sentence`` is the full verdict; ``clause`` a short one for a summary paragraph.
    """

    max_abs_z: float
    bound: float
    alpha: float
    n_directions: int
    passes: bool
    sentence: str
    clause: str


def score_mean_check(z: Sequence[float], n_rollouts: int, alpha: float = 0.01) -> ScoreMeanCheck:
    """Does the mean score sit within noise of 0 on every direction?

    Parameters
    ----------
    z : sequence of float, shape ``(D,)``
        Mean of ``g`` over all rollouts in standard errors, per direction
        (``analyze_real_scores(...)["score_checks"]["z"]``).
    n_rollouts : int
        Rollouts the means are over (for the sentence).
    alpha : float
        Family-wise level over the ``D`` directions: the check fails when some ``|z|``
        exceeds Bonferroni's ``Phi^-1(1 - alpha / (2 D))``
        (:func:`mrgrpo.analysis.verdicts.noise_check`).
    """
    zs = np.asarray(z, dtype=float).ravel()
    if zs.size == 0 or not np.isfinite(zs).all():
        raise ValueError(f"z must be one or more finite numbers, got {zs.tolist()}")
    nc = noise_check(zs, alpha)
    worst = int(np.argmax(np.abs(zs)))
    dirs = "direction" if zs.size == 1 else f"{zs.size} directions"
    level = (f"the {nc.bound:.2f} that a two-sided test at family-wise level {alpha:.0%} over {dirs} allows"
             if zs.size > 1 else f"the {nc.bound:.2f} of a two-sided test at level {alpha:.0%}")
    if nc.ok:
        every = " on every direction" if zs.size > 1 else ""
        sentence = (f"The scores pass the one check they must: the mean of g over all {n_rollouts} rollouts is "
                    f"within {nc.max_z:.2f} standard errors of 0{every} (below {level}), as the "
                    f"score-function identity E[g] = 0 requires.")
        clause = "The scores have mean zero, as the score-function identity requires."
    else:
        sentence = (f"The scores fail the one check they must: the mean of g over all {n_rollouts} rollouts is "
                    f"{fmt(zs[worst], 2, signed=True)} standard errors from 0 on direction {worst} (beyond {level}), "
                    f"so E[g] = 0 does not hold: these are not the scores of the distribution the completions were "
                    f"drawn from (a sampling temperature the scores ignore does this), and every ratio below rests "
                    f"on them.")
        clause = (f"The scores do not have mean zero (|z| up to {nc.max_z:.2f}), so the score-function identity "
                  f"fails and the comparisons below are suspect.")
    return ScoreMeanCheck(float(nc.max_z), float(nc.bound), float(alpha), int(zs.size), bool(nc.ok), sentence, clause)


def dependence_sentence(gap: Sequence[float], lo: Sequence[float], hi: Sequence[float], mde: Sequence[float],
                        m_grid: Sequence[int], power: float = 0.8) -> str:
    """What the run says about the dependence gap (real minus reshuffled ratio), per group size.

    An interval that contains 0 is not evidence of a small gap: the sentence states
    the smallest gap the run detects with probability ``power`` there (``mde``, from
    :func:`minimum_detectable_effect`), so "not resolved" reads as "smaller than about
    this, or missed".

    Parameters
    ----------
    gap, lo, hi, mde : sequences of float, shape ``(n,)``
        The gap, its interval and its minimum detectable effect at each group size.
    m_grid : sequence of int, shape ``(n,)``
    """
    gap, lo, hi, mde = (np.asarray(x, dtype=float).ravel() for x in (gap, lo, hi, mde))
    ms = list(m_grid)
    if not (len(ms) == gap.size == lo.size == hi.size == mde.size) or not ms:
        raise ValueError("gap, lo, hi, mde and m_grid need one entry per group size, and at least one")
    resolved = (lo > 0) | (hi < 0)
    where = [m for m, r in zip(ms, resolved) if not r]
    parts = []
    if resolved.any():
        signs = {"above": gap[resolved] > 0, "below": gap[resolved] < 0}
        side = " and ".join(f"{k} 0" for k, v in signs.items() if v.any())
        parts.append(f"The dependence gap is resolved ({side}) at {count_sentence(resolved, ms, noun='group sizes')}.")
    if where:
        sub = ~resolved
        mde_text = range_sentence(mde[sub], where) if sub.sum() > 1 else f"{fmt(mde[sub][0], 2)} (m = {where[0]})"
        lead = "Its" if resolved.any() else "The dependence gap's"
        parts.append(f"{lead} interval contains 0 at {count_sentence(sub, ms, noun='group sizes')}, which does not "
                     f"make it small: there the smallest gap this run detects with {power:.0%} power is "
                     f"{mde_text}, as a share of the predicted MSE, so a dependence effect below that size is "
                     f"neither seen nor ruled out.")
    return " ".join(parts)


# ----------------------------------------------------------------------------- figure
def plot_ratios(ratios, path=None, title: str = ""):
    """Realized / predicted MSE against ``m`` for NA and AN, real vs reshuffled scores, with CIs.

    Parameters
    ----------
    ratios : DataFrame
        ``analyze_real_scores(...)["ratios"]``.
    path : optional
        Where to save the figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    styles = {"real": dict(marker="o", ls="-"), "reshuffled": dict(marker="s", ls="--", mfc="white")}
    shift = {"real": 0.97, "reshuffled": 1.03}  # side by side on the log axis, so the bars do not overlap
    for ax, mode in zip(axes, ("NA", "AN")):
        for control, st in styles.items():
            sub = ratios[(ratios["mode"] == mode) & (ratios["control"] == control)].sort_values("m")
            if sub.empty:
                continue
            yerr = np.vstack([sub["ratio"] - sub["lo"], sub["hi"] - sub["ratio"]])
            ax.errorbar(sub["m"] * shift[control], sub["ratio"], yerr=yerr, capsize=3, label=f"{control} scores",
                        **st)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xscale("log", base=2)
        ms = sorted(ratios["m"].unique())
        ax.set_xticks(ms)
        ax.set_xticklabels([str(m) for m in ms])
        ax.set_xlabel("group size m")
        ax.set_title(f"{mode}")
    axes[0].set_ylabel("realized / predicted MSE")
    axes[0].legend(frameon=False)
    if title:
        fig.suptitle(title)
    readable(fig)  # legible when the page scales the figure to its column (re-lays it out)
    if path is not None:
        save_figure(fig, path, dpi=150, bbox_inches="tight")
    return fig
