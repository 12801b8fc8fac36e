"""The Theorem-3 harness on a ``(P, K, m, R)`` reward tensor.

For prompt ``p`` and seed ``k`` the group's NA (and AN) advantages meet a
per-rollout score ``g`` and give a gradient estimate
``g_hat = (1/m) sum_j A_j g_j``. The *realized* MSE of prompt ``p`` is measured
across its ``K`` seeds and compared with Theorem 3's prediction
``(tau^2/m) w^T C_hat w`` (``C_hat`` the within-group sample correlation,
averaged over the seeds).

What this check can and cannot show. With the random-score convention
(``g ~ N(0, 1)`` drawn independently of the rewards), ``mean_j A_j^2 = w^T C_hat w``
holds exactly in every group, so ``E[g_hat^2 | rewards] = w^T C_hat w / m`` for
*any* rewards: the ratio realized/predicted tends to 1 (``mse_estimator="unbiased"``,
the mean of ``g_hat^2``, ``E[g_hat] = 0`` being known) or to ``(K-1)/K``
(``mse_estimator="paper"``, the variance across seeds with ``ddof = 0``, as the
paper's package computes it) whatever the rewards are. The checks that can fail
are the population floor (:mod:`mrgrpo.analysis.floor`), the influence law
(:mod:`mrgrpo.analysis.influence`) and the MSE with real scores
(``scores=``): per-rollout score projections that come from the same
completions as the rewards, for which the independence assumption is tested
rather than assumed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from mrgrpo.core.checks import check_eps, check_rewards, check_weights
from mrgrpo.core.conventions import EPS
from mrgrpo.core.kernels import (an_channel_major, channel_last, channels_first, fit_to_range, moment_correlation,
                                 na_channel_major)

from .bootstrap import bootstrap_sums, percentile_ci
from .floor import fisher_floor, pooled_population
from .influence import realized_influence_kernel, predicted_influence
from .verdicts import fmt_interval

__all__ = ["Thm3Result", "analyze", "summary_print", "loglog_fit", "group_stats", "pooled_population", "MSE_ESTIMATORS"]

#: How the realized MSE is estimated (:func:`analyze`'s ``mse_estimator``).
MSE_ESTIMATORS = ("unbiased", "paper")
# elements of one (chunk, K, m, R) block; bounds the temporaries' memory
_CHUNK_ELEMENTS = 1 << 16  # small blocks stay in cache and reuse allocations


@dataclass
class Thm3Result:
    """Theorem-3 analysis of one ``(P, K, m, R)`` tensor.

    The first eleven fields are the reference package's
    (``multireward_grpo.analysis.Thm3Result``); the rest are added here.
    Per-prompt arrays have shape ``(P,)``; per-channel ones ``(R,)``;
    CIs are ``(lo, hi)`` from a prompt-level bootstrap.
    """

    m: int
    P: int
    K: int
    w: np.ndarray
    realized_an: np.ndarray
    realized_na: np.ndarray
    predicted_per_prompt: np.ndarray
    predicted_pooled: float
    influence_an: np.ndarray
    influence_na: np.ndarray
    pooled_C: np.ndarray
    # --- added ---
    mse_estimator: str = "unbiased"
    score_source: str = "random"        # "random" (g ~ N(0,1), seed score_seed) or "given"
    score_seed: Optional[int] = 0
    tau2: Optional[np.ndarray] = None   # (P,) score variance used in the prediction
    expected_ratio: float = 1.0         # what ratio_na tends to under the random-score identity
    ratio_na: float = float("nan")
    ratio_na_ci: np.ndarray = field(default_factory=lambda: np.full(2, np.nan))
    ratio_an: float = float("nan")
    ratio_an_ci: np.ndarray = field(default_factory=lambda: np.full(2, np.nan))
    slope_na: float = float("nan")
    r2_na: float = float("nan")
    slope_an: float = float("nan")
    r2_an: float = float("nan")
    frac_constant: np.ndarray = field(default_factory=lambda: np.zeros(0))   # (R,)
    frac_degenerate: float = float("nan")  # groups with at least one constant channel
    pooled_C_nondegenerate: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    n_nondegenerate: int = 0
    realized_influence_an: Optional[np.ndarray] = None  # (P, R) per prompt (mean over seeds)
    realized_influence_na: Optional[np.ndarray] = None
    influence_an_ci: Optional[np.ndarray] = None        # (R, 2)
    influence_na_ci: Optional[np.ndarray] = None
    influence_an_pred: Optional[np.ndarray] = None      # (R,) Prop 1, prompt mean
    influence_na_pred: Optional[np.ndarray] = None
    population_C: Optional[np.ndarray] = None           # (R, R) mean of per-prompt C_p
    floor_sample: float = float("nan")                  # mean w^T C_hat w (= m * predicted at tau2 = 1)
    floor_sample_ci: np.ndarray = field(default_factory=lambda: np.full(2, np.nan))
    floor_population: float = float("nan")              # mean_p w^T C_p w
    floor_fisher: float = float("nan")                  # mean_p w^T E_Fisher[C_hat_m](C_p) w
    n_boot: int = 0
    ci: float = 0.95

    def to_frame(self):
        """Per-prompt table (pandas DataFrame): realized, predicted, ratios, tau2."""
        import pandas as pd

        pred = self.predicted_per_prompt
        with np.errstate(divide="ignore", invalid="ignore"):
            df = pd.DataFrame({
                "prompt": np.arange(self.P), "realized_na": self.realized_na, "realized_an": self.realized_an,
                "predicted": pred, "ratio_na": self.realized_na / pred, "ratio_an": self.realized_an / pred,
            })
        if self.tau2 is not None:
            df["tau2"] = self.tau2
        return df

    def summary_frame(self):
        """The headline numbers, one row per quantity (pandas DataFrame)."""
        import pandas as pd

        rows = [
            ("predicted (pooled)", self.predicted_pooled, np.nan, np.nan),
            ("realized NA (mean)", float(np.mean(self.realized_na)), np.nan, np.nan),
            ("realized AN (mean)", float(np.mean(self.realized_an)), np.nan, np.nan),
            ("ratio NA", self.ratio_na, *self.ratio_na_ci),
            ("ratio AN", self.ratio_an, *self.ratio_an_ci),
            ("ratio expected under the identity", self.expected_ratio, np.nan, np.nan),
            ("log-log slope NA", self.slope_na, np.nan, np.nan),
            ("log-log R^2 NA", self.r2_na, np.nan, np.nan),
            ("floor m*E[w'C_hat w]", self.floor_sample, *self.floor_sample_ci),
            ("floor Fisher w'E[C_hat]w", self.floor_fisher, np.nan, np.nan),
            ("population w'Cw", self.floor_population, np.nan, np.nan),
            ("fraction degenerate groups", self.frac_degenerate, np.nan, np.nan),
        ]
        return pd.DataFrame(rows, columns=["quantity", "value", "ci_lo", "ci_hi"])

    def influence_frame(self):
        """Per-channel realized influence (with CIs) and Prop 1's prediction."""
        import pandas as pd

        R = len(self.w)
        nan2 = np.full((R, 2), np.nan)
        ci_an = self.influence_an_ci if self.influence_an_ci is not None else nan2
        ci_na = self.influence_na_ci if self.influence_na_ci is not None else nan2
        pan = self.influence_an_pred if self.influence_an_pred is not None else np.full(R, np.nan)
        pna = self.influence_na_pred if self.influence_na_pred is not None else np.full(R, np.nan)
        return pd.DataFrame({
            "channel": np.arange(R), "w": self.w,
            "AN realized": self.influence_an, "AN lo": ci_an[:, 0], "AN hi": ci_an[:, 1], "AN Prop1": pan,
            "NA realized": self.influence_na, "NA lo": ci_na[:, 0], "NA hi": ci_na[:, 1], "NA Prop1": pna,
            "frac constant": self.frac_constant,
        })


def loglog_fit(pred: np.ndarray, real: np.ndarray) -> tuple[float, float]:
    """Slope and R^2 of ``log(real)`` on ``log(pred)`` over entries where both are positive."""
    ok = (pred > 0) & (real > 0) & np.isfinite(pred) & np.isfinite(real)
    if ok.sum() < 3:
        return float("nan"), float("nan")
    x, y = np.log(pred[ok]), np.log(real[ok])
    xc, yc = x - x.mean(), y - y.mean()
    sxx, syy, sxy = float(xc @ xc), float(yc @ yc), float(xc @ yc)
    if sxx == 0:
        return float("nan"), float("nan")
    slope = sxy / sxx  # least squares; R^2 of a one-regressor fit is the squared correlation
    return slope, (sxy * sxy / (sxx * syy)) if syy > 0 else float("nan")


def _check_int(v, name: str, lo: int) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    return int(v)


def group_stats(x: np.ndarray, w: np.ndarray, eps: float = EPS, var_eps: Optional[float] = None) -> dict:
    """Every per-group quantity the harness needs, from one centring pass.

    Built from the kernels behind :func:`mrgrpo.core.advantage.compute_advantage_batch`
    (NA and AN) and :func:`mrgrpo.core.stats.sample_correlation` (``C_hat``), on one
    channel-major copy of the rewards whose moments are shared by all of them.

    Parameters
    ----------
    x : ``(..., m, R)`` validated float array
    w : ``(R,)``
    eps : float
        Added to each within-group std (``>= 0``).
    var_eps : float, optional
        Added to the variances inside ``C_hat``; default ``eps`` (the paper's convention).

    Returns
    -------
    dict with ``A_na``, ``A_an`` ``(..., m)`` (and ``A_na_m``, ``A_an_m``, the same
    with ``m`` first); ``mean`` ``(..., R)``; ``cov`` ``(..., R, R)`` (``ddof = 0``); ``C_hat`` ``(..., R, R)``;
    ``const`` ``(..., R)`` bool; ``infl_na``, ``infl_an`` ``(..., R)`` (within-group
    ``Cov(A, z_l)``, ``z`` the standardized channel).
    """
    eps = check_eps(eps)
    var_eps = eps if var_eps is None else check_eps(var_eps, "var_eps")
    xr = channels_first(x)  # (R, m, ...)
    A_na_m, z, mom = na_channel_major(xr, w, eps)
    A_an_m = an_channel_major(xr, w, eps)
    cov, C_hat, const = moment_correlation(mom, var_eps)
    mean = channel_last(mom.mean)
    if mom.divisor is not None:  # a group far smaller than the others was rescaled: moments back in reward units
        div = channel_last(mom.divisor)
        with np.errstate(under="ignore"):
            mean, cov = mean * div, cov * div[..., :, None] * div[..., None, :]
    return {"A_na": np.moveaxis(A_na_m, 0, -1), "A_an": np.moveaxis(A_an_m, 0, -1), "C_hat": C_hat,
            "const": const, "infl_na": realized_influence_kernel(z, A_na_m), "infl_an": realized_influence_kernel(z, A_an_m),
            "mean": mean, "cov": cov, "A_na_m": A_na_m, "A_an_m": A_an_m}


def analyze(rewards, w, score_seed: int = 0, scores=None, mse_estimator: str = "unbiased",
            n_boot: int = 2000, boot_seed: int = 0, ci: float = 0.95, eps: float = EPS,
            population_checks: bool = True, chunk_prompts: Optional[int] = None) -> Thm3Result:
    """Theorem-3 analysis of a reward tensor, vectorized over prompts and seeds.

    Parameters
    ----------
    rewards : array_like, shape ``(P, K, m, R)``
        ``P`` prompts x ``K`` seeds x ``m`` rollouts x ``R`` channels; ``K >= 2``, ``m >= 2``.
    w : array_like, shape ``(R,)``
    score_seed : int
        Seed of the random scores ``g = default_rng(score_seed).standard_normal((P, K, m))``
        (the reference package's draw), used when ``scores`` is None.
    scores : array_like, shape ``(P, K, m)``, optional
        Real per-rollout score projections. Then the realized MSE is the variance
        of ``g_hat`` across seeds around its estimated mean (``ddof = 1``; ``ddof = 0``
        with ``mse_estimator="paper"``) and the prediction uses ``tau^2_p``, the
        variance of ``g`` over prompt ``p``'s ``K * m`` rollouts (``ddof = 1``).
    mse_estimator : {"unbiased", "paper"}
        Random scores: ``"unbiased"`` estimates the MSE by the mean of
        ``g_hat^2`` (``E[g_hat] = 0`` is known); ``"paper"`` by the variance across
        seeds with ``ddof = 0`` (biased low by ``(K-1)/K``), reproducing
        ``multireward_grpo.analysis.analyze``.
    n_boot, boot_seed, ci
        Prompt-level bootstrap (``n_boot`` resamples of prompts; seeded).
    eps : float
        Added to within-group stds (and inside ``C_hat``'s square root), as the paper; ``>= 0``.
        Rewards near the float maximum are handled exactly (:func:`fit_to_range`).
    population_checks : bool
        Also compute Prop 1's predicted influence and the Fisher floor per
        prompt from its pooled rollouts (one closed-form call per prompt).
    chunk_prompts : int, optional
        Prompts per block (default: blocks of about 2M rewards), bounding memory.

    Returns
    -------
    Thm3Result
    """
    if mse_estimator not in MSE_ESTIMATORS:
        raise ValueError(f"mse_estimator must be one of {MSE_ESTIMATORS}, got {mse_estimator!r}")
    x = check_rewards(rewards, exact_ndim=4)
    P, K, m, R = x.shape
    if P < 1:
        raise ValueError(f"rewards has no prompts (P = 0), shape {x.shape}")
    if K < 2:
        raise ValueError(f"rewards needs K >= 2 seeds per prompt (axis 1) to measure an MSE, got K = {K}")
    wv = check_weights(w, R)
    eps = check_eps(eps)
    x, div = fit_to_range(x)
    eps, var_eps = eps / div, eps / div / div
    n_boot = _check_int(n_boot, "n_boot", 1)
    if isinstance(ci, (bool, np.bool_)) or not isinstance(ci, (int, float, np.floating)) or not 0 < ci < 1:
        raise ValueError(f"ci must be a number in (0, 1), got {ci!r}")
    if scores is None:
        score_seed = _check_int(score_seed, "score_seed", 0)
        g = np.random.default_rng(score_seed).standard_normal((P, K, m))
    else:
        g = np.asarray(scores, dtype=float)
        if g.shape != (P, K, m):
            raise ValueError(f"scores must have shape (P, K, m) = {(P, K, m)}, got {g.shape}")
        if not np.isfinite(g).all():
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(g))[0])
            raise ValueError(f"scores contains a non-finite value at (prompt, seed, rollout) {bad}")
    step = chunk_prompts or max(1, _CHUNK_ELEMENTS // max(1, K * m * R))
    step = _check_int(step, "chunk_prompts", 1)

    ghat_na = np.empty((P, K))
    ghat_an = np.empty((P, K))
    q_mean = np.empty(P)            # mean_k w^T C_hat w
    infl_an = np.empty((P, R))
    infl_na = np.empty((P, R))
    C_sum = np.zeros((R, R))
    C_nd_sum = np.zeros((R, R))
    n_nd = 0
    const_sum = np.zeros(R)
    deg_sum = 0
    if population_checks:
        C_pop = np.empty((P, R, R))
        sig_pop = np.empty((P, R))
        var_pop = np.empty((P, R), dtype=bool)
    for p0 in range(0, P, step):
        xb = x[p0:p0 + step]
        st = group_stats(xb, wv, eps, var_eps)
        gm = np.ascontiguousarray(np.moveaxis(g[p0:p0 + step], -1, 0))  # (m, chunk, K)
        ghat_na[p0:p0 + step] = (st["A_na_m"] * gm).sum(axis=0) / m
        ghat_an[p0:p0 + step] = (st["A_an_m"] * gm).sum(axis=0) / m
        Ch = st["C_hat"]
        q_mean[p0:p0 + step] = np.einsum("i,pkij,j->pk", wv, Ch, wv).mean(axis=1)
        C_sum += Ch.sum(axis=(0, 1))
        const = st["const"]
        deg = const.any(axis=-1)
        const_sum += const.sum(axis=(0, 1))
        deg_sum += int(deg.sum())
        C_nd_sum += Ch[~deg].sum(axis=0)
        n_nd += int((~deg).sum())
        infl_an[p0:p0 + step] = st["infl_an"].mean(axis=1)
        infl_na[p0:p0 + step] = st["infl_na"].mean(axis=1)
        if population_checks:
            c, s, v = pooled_population(st["mean"], st["cov"])
            C_pop[p0:p0 + step], sig_pop[p0:p0 + step], var_pop[p0:p0 + step] = c, s, v

    if scores is None:
        tau2 = np.ones(P)
        if mse_estimator == "paper":
            realized_na, realized_an = ghat_na.var(axis=1), ghat_an.var(axis=1)
            expected = (K - 1) / K
        else:
            realized_na, realized_an = (ghat_na**2).mean(axis=1), (ghat_an**2).mean(axis=1)
            expected = 1.0
    else:
        tau2 = g.reshape(P, K * m).var(axis=1, ddof=1)
        ddof = 0 if mse_estimator == "paper" else 1
        realized_na, realized_an = ghat_na.var(axis=1, ddof=ddof), ghat_an.var(axis=1, ddof=ddof)
        expected = (K - 1) / K if mse_estimator == "paper" else 1.0  # only under H0: g independent of r
    pred = tau2 * q_mean / m
    pooled_C = C_sum / (P * K)
    predicted_pooled = float(wv @ pooled_C @ wv / m) if scores is None else float(pred.mean())

    # one bootstrap for every statistic: prompt sums under resampled counts
    cols = np.column_stack([realized_na, realized_an, pred, q_mean, infl_an, infl_na])
    B = bootstrap_sums(cols, n_boot, boot_seed)  # (n_boot, 4 + 2R)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_na = float(realized_na.sum() / pred.sum())
        ratio_an = float(realized_an.sum() / pred.sum())
        boot = np.column_stack([B[:, 0] / B[:, 2], B[:, 1] / B[:, 2], B[:, 3:] / P])
    cis = percentile_ci(boot, ci)  # (2 + 1 + 2R, 2)
    slope_na, r2_na = loglog_fit(pred, realized_na)
    slope_an, r2_an = loglog_fit(pred, realized_an)
    res = Thm3Result(
        m=m, P=P, K=K, w=wv, realized_an=realized_an, realized_na=realized_na,
        predicted_per_prompt=pred, predicted_pooled=predicted_pooled,
        influence_an=infl_an.mean(axis=0), influence_na=infl_na.mean(axis=0), pooled_C=pooled_C,
        mse_estimator=mse_estimator, score_source="random" if scores is None else "given",
        score_seed=score_seed if scores is None else None, tau2=tau2, expected_ratio=expected,
        ratio_na=ratio_na, ratio_na_ci=cis[0], ratio_an=ratio_an, ratio_an_ci=cis[1],
        slope_na=slope_na, r2_na=r2_na, slope_an=slope_an, r2_an=r2_an,
        frac_constant=const_sum / (P * K), frac_degenerate=deg_sum / (P * K),
        pooled_C_nondegenerate=C_nd_sum / n_nd if n_nd else np.full((R, R), np.nan),
        n_nondegenerate=n_nd,
        realized_influence_an=infl_an, realized_influence_na=infl_na,
        influence_an_ci=cis[3:3 + R], influence_na_ci=cis[3 + R:],
        floor_sample=float(q_mean.mean()), floor_sample_ci=cis[2],
        n_boot=n_boot, ci=ci,
    )
    if population_checks:
        pan, pna = predicted_influence(wv, sig_pop, C_pop, var_pop)
        res.influence_an_pred = np.nanmean(pan, axis=0)
        res.influence_na_pred = np.nanmean(pna, axis=0)
        res.population_C = C_pop.mean(axis=0)
        w_eff = np.where(var_pop, wv, 0.0)
        res.floor_population = float(np.einsum("pi,pij,pj->p", w_eff, C_pop, w_eff).mean())
        res.floor_fisher = float(fisher_floor(wv, C_pop, var_pop, m).mean())
    return res


def _fmt_ci(ci) -> str:
    return fmt_interval(None, ci[0], ci[1])


def summary_print(result: Thm3Result, label: str = "", file=None) -> None:
    """Print a readable summary of a :class:`Thm3Result`."""
    out = []
    r = result
    out.append(f"=== Theorem-3 analysis {label}(m={r.m}, P={r.P}, K={r.K}, mse_estimator={r.mse_estimator}, "
               f"scores={r.score_source}) ===")
    out.append(f"  w = {np.array2string(r.w, precision=3)}")
    out.append("  pooled within-group correlation C_hat (all groups | non-degenerate groups):")
    for i, row in enumerate(r.pooled_C):
        nd = r.pooled_C_nondegenerate[i] if r.pooled_C_nondegenerate.size else np.full(len(row), np.nan)
        out.append("    " + "  ".join(f"{v:+.3f}" for v in row) + "   |  " + "  ".join(f"{v:+.3f}" for v in nd))
    out.append("  fraction of groups where each channel is constant: "
               + ", ".join(f"{v:.3f}" for v in r.frac_constant)
               + f"   (any channel: {r.frac_degenerate:.3f})")
    out.append(f"  predicted MSE (pooled)   : {r.predicted_pooled:.5f}")
    out.append(f"  realized NA (prompt mean): {np.mean(r.realized_na):.5f}   ratio {r.ratio_na:.3f} "
               f"{_fmt_ci(r.ratio_na_ci)}")
    out.append(f"  realized AN (prompt mean): {np.mean(r.realized_an):.5f}   ratio {r.ratio_an:.3f} "
               f"{_fmt_ci(r.ratio_an_ci)}")
    if r.score_source == "random":
        out.append(f"  NOTE: with random scores the NA ratio tends to {r.expected_ratio:.3f} for ANY rewards "
                   f"(mean_j A_j^2 = w'C_hat w in every group); it cannot falsify Theorem 3.")
    out.append(f"  per-prompt log-log fit NA: slope {r.slope_na:.3f}, R^2 {r.r2_na:.3f}")
    out.append(f"  floor: E[w'C_hat w] = {r.floor_sample:.4f} {_fmt_ci(r.floor_sample_ci)};  Fisher "
               f"{r.floor_fisher:.4f};  population w'Cw {r.floor_population:.4f}")
    out.append("  influence per channel (realized [CI] | Prop 1):")
    for l in range(len(r.w)):
        pa = r.influence_an_pred[l] if r.influence_an_pred is not None else np.nan
        pn = r.influence_na_pred[l] if r.influence_na_pred is not None else np.nan
        out.append(f"    ch {l}: AN {r.influence_an[l]:+.3f} {_fmt_ci(r.influence_an_ci[l])} | {pa:+.3f}"
                   f"    NA {r.influence_na[l]:+.3f} {_fmt_ci(r.influence_na_ci[l])} | {pn:+.3f}")
    print("\n".join(out), file=file)
