"""Proposition 4 on real rollouts: real gate and conditioned rewards, the model's synthetic score.

The paper (empirical section 2.2) takes the real pair (correctness, binarized length) of
its GSM8K rollouts and gives every rollout the score of Proposition 4's model,

    g = alpha_c (r_a - p_a) + alpha_f (r_b - p_b) r_a + gamma (r_b - p_b)(1 - r_a) + eps,

so that everything the proposition assumes holds except one thing: real ``r_a`` and
``r_b`` are not independent. The bias that conditioning removes is then
``beta(gamma) = w_b Cov(r_b (1 - r_a), g)``, linear in ``gamma``; on the empirical
distribution of the four rollout types ``(r_a, r_b)`` it is computed exactly (``eps`` has
no covariance with anything), so the observed sign flip and the observed slope need no
simulation. Under independence the slope is ``w_b p_b (1 - p_a)(1 - p_b)``; a positive
dependence lowers ``P(r_a = 0, r_b = 1)`` below ``(1 - p_a) p_b`` and flattens it: the
paper's "magnitude about 30% below the closed form".

Two readings are computed: *pooled* (all rollouts as one population, the paper's numbers)
and *within prompts* (each prompt its own population, as a GRPO group sees it; prompt
means). The conditioning MSEs of the three implementations are exact expectations for
groups of ``m`` rollouts drawn from each prompt's empirical type distribution, with the
within-prompt score and target ``theta* = w_a Cov(r_a, g) + w_b Cov(r_a r_b, g)`` (taking
the prompt's own rollouts as its population avoids the in-sample bias of scoring the
seeds' groups against a target computed from those same groups).

Every reading comes with a prompt-bootstrap interval (prompts are the independent unit):
``intervals`` holds ``p_a``, ``p_b``, ``gamma*``, the observed flip, ``flip - gamma*``
(paired) and the slope ratio, pooled and within prompts, and
:meth:`Prop4Real.reading_sentence` words one reading from them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from mrgrpo.analysis.bootstrap import bootstrap_weights
from mrgrpo.analysis.thresholds import excludes, flip_near
from mrgrpo.analysis.verdicts import fmt, fmt_interval
from mrgrpo.core.advantage import apply_conditioning
from mrgrpo.core.checks import check_rewards, check_weights
from mrgrpo.core.theory import prop4_beta, prop4_gamma_star

__all__ = ["Prop4Real", "prop4_real", "prop4_score", "binarize_channel", "READINGS", "QUANTITIES"]

IMPLS = ("none", "zero_fill", "subgroup")
#: The two readings of the bias law: all rollouts as one population (the paper's), and each prompt its own.
READINGS = ("pooled", "within prompts")
#: The quantities of each reading that :attr:`Prop4Real.intervals` gives with a prompt-bootstrap interval.
QUANTITIES = ("p_a", "p_b", "gamma_star", "gamma_flip", "flip_minus_gamma_star", "slope_ratio")


def prop4_score(r_a, r_b, p_a, p_b, gamma, alpha_c: float = 1.0, alpha_f: float = 1.0) -> np.ndarray:
    """The deterministic part of Proposition 4's score for given rewards (arrays broadcast)."""
    r_a, r_b = np.asarray(r_a, float), np.asarray(r_b, float)
    return alpha_c * (r_a - p_a) + alpha_f * (r_b - p_b) * r_a + gamma * (r_b - p_b) * (1.0 - r_a)


def binarize_channel(x: np.ndarray, threshold: Optional[float], name: str) -> np.ndarray:
    """A 0/1 channel as is, or a continuous one as ``x >= threshold``; anything else is refused."""
    x = np.asarray(x, dtype=float)
    if threshold is None:
        if not np.isin(x, (0.0, 1.0)).all():
            raise ValueError(f"the {name} channel is not binary (values other than 0 and 1); give a threshold")
        return x
    t = float(threshold)
    if not np.isfinite(t):
        raise ValueError(f"threshold of the {name} channel must be finite, got {threshold!r}")
    return (x >= t).astype(float)


def _cov(q: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Covariance of two functions of the four types under type probabilities ``q (..., 4)``."""
    return np.sum(q * x * y, -1) - np.sum(q * x, -1) * np.sum(q * y, -1)


# the four rollout types (r_a, r_b), in this order
_RA = np.array([0.0, 0.0, 1.0, 1.0])
_RB = np.array([0.0, 1.0, 0.0, 1.0])


def _beta_line(q: np.ndarray, alpha_c: float, alpha_f: float, w_b: float) -> tuple[np.ndarray, np.ndarray]:
    """``beta(gamma) = A + gamma B`` on type probabilities ``q (..., 4)``: returns ``(A, B)``."""
    p_a = np.sum(q * _RA, -1)[..., None]
    p_b = np.sum(q * _RB, -1)[..., None]
    target = _RB * (1 - _RA)
    at0 = prop4_score(_RA, _RB, p_a, p_b, 0.0, alpha_c, alpha_f)
    at1 = prop4_score(_RA, _RB, p_a, p_b, 1.0, alpha_c, alpha_f)
    A = w_b * _cov(q, target, at0)
    return A, w_b * _cov(q, target, at1) - A


def _readings(counts: np.ndarray, W: np.ndarray, alpha_c: float, alpha_f: float, w_b: float) -> dict:
    """Every quantity of both readings, for each row of prompt weights ``W``.

    Parameters
    ----------
    counts : shape ``(P, 4)``
        Each prompt's count of the four rollout types.
    W : shape ``(B, P)``
        Prompt multiplicities (a row of ones: the data; bootstrap counts: a resample).

    Returns
    -------
    dict ``(reading, quantity) -> array (B,)``; NaN where a quantity is undefined
    (no rollout passes the channel, a flat line).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        tot = W @ counts                                                    # (B, 4)
        q_pool = tot / tot.sum(-1, keepdims=True)
        p_a, p_b = q_pool @ _RA, q_pool @ _RB
        A, B = _beta_line(q_pool, alpha_c, alpha_f, w_b)
        g_star = np.where(p_b < 1, alpha_c * p_a / (1 - p_b), np.nan)
        closed = w_b * p_b * (1 - p_a) * (1 - p_b)
        q_pr = counts / counts.sum(-1, keepdims=True)                      # (P, 4)
        pa_p, pb_p = q_pr @ _RA, q_pr @ _RB
        A_p, B_p = _beta_line(q_pr, alpha_c, alpha_f, w_b)
        cA = -w_b * pb_p * (1 - pa_p) * alpha_c * pa_p                     # per-prompt closed form
        cB = w_b * pb_p * (1 - pa_p) * (1 - pb_p)
        n = W.sum(-1)
        mean = lambda v: (W @ v) / n  # noqa: E731  (prompt means under the weights)
        out = {("pooled", "p_a"): p_a, ("pooled", "p_b"): p_b, ("pooled", "gamma_star"): g_star,
               ("pooled", "gamma_flip"): np.where(B != 0, -A / B, np.nan),
               ("pooled", "slope_ratio"): np.where(closed != 0, B / closed, np.nan),
               ("within prompts", "p_a"): mean(pa_p), ("within prompts", "p_b"): mean(pb_p),
               ("within prompts", "gamma_star"): np.where(mean(cB) != 0, -mean(cA) / mean(cB), np.nan),
               ("within prompts", "gamma_flip"): np.where(mean(B_p) != 0, -mean(A_p) / mean(B_p), np.nan),
               ("within prompts", "slope_ratio"): np.where(mean(cB) != 0, mean(B_p) / mean(cB), np.nan)}
    for reading in READINGS:
        out[(reading, "flip_minus_gamma_star")] = out[(reading, "gamma_flip")] - out[(reading, "gamma_star")]
    return out


def _intervals(counts, alpha_c, alpha_f, w_b, n_boot, seed, ci):
    """Point estimates and percentile prompt-bootstrap intervals of every reading (a DataFrame)."""
    import pandas as pd

    point = _readings(counts, np.ones((1, counts.shape[0])), alpha_c, alpha_f, w_b)
    boot = _readings(counts, bootstrap_weights(counts.shape[0], n_boot, seed), alpha_c, alpha_f, w_b)
    a = (1.0 - ci) / 2.0
    rows = []
    for reading in READINGS:
        for q in QUANTITIES:
            b = boot[(reading, q)]
            b = b[np.isfinite(b)]
            lo, hi = np.quantile(b, [a, 1 - a]) if b.size else (np.nan, np.nan)
            rows.append({"reading": reading, "quantity": q, "estimate": float(point[(reading, q)][0]),
                         "lo": float(lo), "hi": float(hi), "undefined_share": 1.0 - b.size / n_boot})
    return pd.DataFrame(rows).set_index(["reading", "quantity"])


@dataclass
class Prop4Real:
    """Output of :func:`prop4_real`. ``summary`` has one row per reading (pooled, within prompts)."""

    p_a: float
    p_b: float
    corr_ab: float            # pooled correlation of the gate and the binarized channel
    gamma_star: float         # closed form alpha_c p_a / (1 - p_b), pooled rates
    gamma_flip: float         # where the pooled beta(gamma) crosses 0
    slope_ratio: float        # pooled observed slope / closed-form slope
    summary: object           # DataFrame: reading, gamma_star, gamma_flip, slope_ratio
    sweep: object             # DataFrame: gamma, beta (closed form), beta (observed), pooled and within prompts
    mse: object               # DataFrame: m, gamma, impl, mse, se, p_degenerate
    n_rollouts: int
    n_prompts: int
    intervals: object = None  # DataFrame (reading, quantity) -> estimate, lo, hi, undefined_share
    cov_within: float = float("nan")   # mean over prompts of each prompt's Cov(r_a, r_b)
    cov_between: float = float("nan")  # Cov over prompts of (p_a, p_b); pooled Cov = within + between
    ci: float = 0.95

    def interval(self, reading: str, quantity: str) -> tuple[float, float, float]:
        """``(estimate, lo, hi)`` of one quantity of one reading (see :data:`READINGS`, :data:`QUANTITIES`)."""
        if reading not in READINGS or quantity not in QUANTITIES:
            raise ValueError(f"unknown reading or quantity {reading!r}, {quantity!r}; readings {READINGS}, "
                             f"quantities {QUANTITIES}")
        r = self.intervals.loc[(reading, quantity)]
        return float(r["estimate"]), float(r["lo"]), float(r["hi"])

    def flip_lands(self, reading: str) -> str:
        """``"near"`` (within the relative threshold of :func:`~mrgrpo.analysis.thresholds.flip_near`),
        ``"off"`` (farther, and the paired interval of flip - gamma* excludes 0) or ``"not resolved"``."""
        flip, _, _ = self.interval(reading, "gamma_flip")
        g, _, _ = self.interval(reading, "gamma_star")
        _, lo, hi = self.interval(reading, "flip_minus_gamma_star")
        if np.isfinite(flip) and np.isfinite(g) and flip_near(flip, g).near:
            return "near"
        return "off" if bool(excludes(lo, hi, 0.0)) else "not resolved"

    def slope_reading(self, reading: str) -> str:
        """``"attenuated"`` / ``"amplified"`` when the slope ratio's interval lies below / above 1, else
        ``"not resolved from the closed form"``."""
        _, lo, hi = self.interval(reading, "slope_ratio")
        if hi < 1:
            return "attenuated"
        if lo > 1:
            return "amplified"
        return "not resolved from the closed form"

    def reading_sentence(self, reading: str) -> str:
        """One reading in words, with its intervals: where the flip lands against gamma* and what the slope does."""
        flip, fl, fh = self.interval(reading, "gamma_flip")
        g, gl, gh = self.interval(reading, "gamma_star")
        d, dl, dh = self.interval(reading, "flip_minus_gamma_star")
        s, sl, sh = self.interval(reading, "slope_ratio")
        where = {"near": "lands near", "off": "misses", "not resolved": "is not resolved from"}[self.flip_lands(reading)]
        return (f"{reading}, the flip at γ = {fmt_interval(flip, fl, fh, 2)} {where} γ* = {fmt_interval(g, gl, gh, 2)} "
                f"(flip − γ* = {fmt_interval(d, dl, dh, 2, signed=True)}), and the slope, "
                f"{fmt_interval(s - 1, sl - 1, sh - 1, 0, signed=True, percent=True)} against the closed form, is "
                f"{self.slope_reading(reading)}")


def prop4_real(rewards, gate: int = 0, cond: int = 1, threshold: Optional[float] = None,
               w: Sequence[float] = (1.0, 1.0), alpha_c: float = 1.0, alpha_f: float = 1.0, noise: float = 0.5,
               gammas: Optional[Sequence[float]] = None, mse_gammas: Optional[Sequence[float]] = None,
               m: Optional[int] = None, n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> Prop4Real:
    """Proposition 4's bias law and the conditioning MSEs on real rewards.

    Parameters
    ----------
    rewards : array_like, shape ``(P, K, m, R)``
        Real rollouts: prompts x seeds x group size x channels.
    gate, cond : int
        Channel indices of the gate ``r_a`` (binary) and the conditioned channel ``r_b``.
    threshold : float, optional
        Binarize ``r_b`` as ``r_b >= threshold`` (required when it is not already 0/1).
    w : (w_a, w_b)
        Weights of the gate and the conditioned channel.
    alpha_c, alpha_f, noise : float
        The model's gate coupling, target coefficient and noise SD (the paper's harness: 1, 1, 0.5).
    gammas : sequence of float, optional
        Contamination values of the bias sweep (default ``linspace(0, 3, 31)``).
    mse_gammas : sequence of float, optional
        Contamination values of the MSE comparison (default ``0, gamma*, 1.5, 3``).
    m : int, optional
        Group size of the MSE comparison (default: the tensor's).
    n_boot, seed, ci
        Prompt-bootstrap resamples, their seed and the interval's level (:attr:`Prop4Real.intervals`).

    Returns
    -------
    Prop4Real
    """
    import pandas as pd

    x = check_rewards(rewards, exact_ndim=4)
    P, K, m_data, R = x.shape
    m = m_data if m is None else m
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not 2 <= m <= 64:
        raise ValueError(f"m must be an int in [2, 64], got {m!r}")
    for name, idx in (("gate", gate), ("cond", cond)):
        if not isinstance(idx, (int, np.integer)) or isinstance(idx, bool) or not 0 <= idx < R:
            raise ValueError(f"{name} must be a channel index in [0, {R}), got {idx!r}")
    if gate == cond:
        raise ValueError("gate and cond must be different channels")
    wv = check_weights(w, 2)
    if not (isinstance(ci, (float, int)) and 0.0 < float(ci) < 1.0):
        raise ValueError(f"ci must be a level in (0, 1), got {ci!r}")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite standard deviation >= 0, got {noise!r}")
    r_a = binarize_channel(x[..., gate], None, "gate")
    r_b = binarize_channel(x[..., cond], threshold, "conditioned")
    types = (2 * r_a + r_b).astype(int)                                   # (P, K, m) in 0..3
    counts = np.stack([(types == t).sum(axis=(1, 2)) for t in range(4)], -1).astype(float)  # (P, 4)
    q_pool = counts.sum(0) / counts.sum()
    q_prompt = counts / counts.sum(-1, keepdims=True)

    p_a, p_b = float(q_pool @ _RA), float(q_pool @ _RB)
    sd = np.sqrt(p_a * (1 - p_a) * p_b * (1 - p_b))
    corr = float((q_pool[3] - p_a * p_b) / sd) if sd > 0 else float("nan")
    g_star = float(prop4_gamma_star(p_a, p_b, alpha_c)) if p_b < 1 else float("nan")

    gam = np.linspace(0.0, 3.0, 31) if gammas is None else np.asarray(gammas, float)
    A_pool, B_pool = _beta_line(q_pool, alpha_c, alpha_f, wv[1])
    A_pr, B_pr = _beta_line(q_prompt, alpha_c, alpha_f, wv[1])
    pa_p, pb_p = q_prompt @ _RA, q_prompt @ _RB
    closed_pool = prop4_beta(p_a, p_b, gam, alpha_c, wv[1])
    # per-prompt closed form, averaged: w_b p_b (1 - p_a) [gamma (1 - p_b) - alpha_c p_a]
    cA = -wv[1] * pb_p * (1 - pa_p) * alpha_c * pa_p
    cB = wv[1] * pb_p * (1 - pa_p) * (1 - pb_p)
    sweep = pd.DataFrame({
        "gamma": gam, "pooled: closed form": closed_pool, "pooled: observed": A_pool + gam * B_pool,
        "within prompts: closed form": cA.mean() + gam * cB.mean(), "within prompts: observed": A_pr.mean() + gam * B_pr.mean(),
    })

    def flip(A, B):
        return float(-A / B) if B != 0 else float("nan")

    closed_slope = float(wv[1] * p_b * (1 - p_a) * (1 - p_b))
    summary = pd.DataFrame([
        {"reading": "pooled (the paper's)", "gamma* (closed form)": g_star, "observed flip": flip(A_pool, B_pool),
         "slope, observed / closed form": float(B_pool / closed_slope) if closed_slope else float("nan")},
        {"reading": "within prompts (mean)", "gamma* (closed form)": flip(cA.mean(), cB.mean()),
         "observed flip": flip(A_pr.mean(), B_pr.mean()),
         "slope, observed / closed form": float(B_pr.mean() / cB.mean()) if cB.mean() else float("nan")},
    ]).set_index("reading")

    mg = [0.0, g_star, 1.5, 3.0] if mse_gammas is None else list(mse_gammas)
    mse = _conditioning_mse(q_prompt, m, [g for g in mg if np.isfinite(g)], wv, alpha_c, alpha_f, noise)
    return Prop4Real(p_a=p_a, p_b=p_b, corr_ab=corr, gamma_star=g_star, gamma_flip=flip(A_pool, B_pool),
                     slope_ratio=float(B_pool / closed_slope) if closed_slope else float("nan"),
                     summary=summary, sweep=sweep, mse=mse, n_rollouts=int(P * K * m_data), n_prompts=int(P),
                     intervals=_intervals(counts, alpha_c, alpha_f, wv[1], n_boot, seed, ci), ci=float(ci),
                     cov_within=float(np.mean(q_prompt[:, 3] - pa_p * pb_p)),
                     cov_between=float(np.mean(pa_p * pb_p) - pa_p.mean() * pb_p.mean()))


def _compositions(m: int) -> np.ndarray:
    """Every count vector ``(n00, n01, n10, n11)`` of ``m`` rollouts over the four types: ``(C, 4)``."""
    from itertools import combinations_with_replacement

    return np.array([np.bincount(c, minlength=4) for c in combinations_with_replacement(range(4), m)])


def _conditioning_mse(q_prompt, m, gammas, w, alpha_c, alpha_f, noise):
    """Exact MSE against each prompt's ``theta*`` of ``mean_j (w . x_j) g_j``, three implementations.

    Each prompt is its own population: a group is ``m`` draws from the prompt's empirical
    distribution of the four types ``q_p``, so the expectation is a finite sum over the
    type counts (``C(m+3, 3)`` terms). ``x`` is the group-centred pair after
    :func:`mrgrpo.core.advantage.apply_conditioning` (as in the Tier-1 harness); given the
    counts the estimator is Gaussian with mean ``sum_t n_t a_t h_t / m`` and variance
    ``noise^2 sum_t n_t a_t^2 / m^2``. The result is the mean over prompts.
    """
    import pandas as pd
    from scipy import special

    counts = _compositions(m)                                            # (C, 4)
    # one representative group per composition, rows ordered by type
    groups = np.stack([np.repeat(np.stack([_RA, _RB], -1), c, axis=0) for c in counts])   # (C, m, 2)
    start = np.concatenate([np.zeros((len(counts), 1), int), np.cumsum(counts, -1)[:, :-1]], -1)  # (C, 4)
    logc = special.gammaln(m + 1) - special.gammaln(counts + 1).sum(-1)                   # (C,)
    with np.errstate(divide="ignore"):
        logq = np.log(q_prompt)                                                           # (P, 4)
    logp = logc + (counts[None] * np.where(counts[None] > 0, logq[:, None, :], 0.0)).sum(-1)  # (P, C)
    prob = np.exp(logp)
    n_pass = counts[:, 2] + counts[:, 3]
    p_deg = float((prob * (n_pass < 2)).sum(-1).mean())
    pa_p, pb_p = q_prompt @ _RA, q_prompt @ _RB
    rows = []
    for impl in IMPLS:
        feat = apply_conditioning(groups, 0, 1, impl)
        feat = feat - feat.mean(-2, keepdims=True)
        a_rows = feat @ w                                                                 # (C, m)
        a_t = np.take_along_axis(a_rows, np.minimum(start, m - 1), axis=-1)              # (C, 4)
        a_t = np.where(counts > 0, a_t, 0.0)
        var = noise ** 2 * (counts * a_t * a_t).sum(-1) / m ** 2                         # (C,)
        for gm in gammas:
            ht = prop4_score(_RA, _RB, pa_p[:, None], pb_p[:, None], gm, alpha_c, alpha_f)   # (P, 4)
            theta = w[0] * _cov(q_prompt, _RA, ht) + w[1] * _cov(q_prompt, _RA * _RB, ht)  # (P,)
            mu = (counts[None] * a_t[None] * ht[:, None, :]).sum(-1) / m                  # (P, C)
            mse_p = (prob * ((mu - theta[:, None]) ** 2 + var[None])).sum(-1)             # (P,)
            rows.append({"m": m, "gamma": float(gm), "impl": impl, "mse": float(mse_p.mean()),
                         "p_degenerate": p_deg})
    return pd.DataFrame(rows)
