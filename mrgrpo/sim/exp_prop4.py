"""Proposition 4: the conditioning bias law (figT2) and conditioning MSEs (figT1, figT3)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from mrgrpo.core.checks import SeedLike, as_generator
from mrgrpo.sim import exact
from mrgrpo.core import theory
from mrgrpo.sim.common import W2
from mrgrpo.sim.mc import blockwise, frame, mean_se, row
from mrgrpo.sim.prop4 import prop4_model

__all__ = ["figT1", "figT2", "figT3"]


# =========================================================================== Proposition 4
_P_B, _ALPHA_C, _ALPHA_F, _NOISE = 0.6, 1.0, 1.0, 0.5


def _prop4_estimates(r: np.ndarray, g: np.ndarray, w=W2) -> dict[str, np.ndarray]:
    """Per-trial estimators ``mean_j (w . x_j) g_j``: x centred over the group after conditioning
    (``none``, ``zero_fill``, ``subgroup`` through :func:`mrgrpo.core.advantage.apply_conditioning`),
    and the unconditioned leave-one-out baseline ``loo``."""
    from mrgrpo.core.advantage import apply_conditioning
    m = r.shape[-2]
    out = {"loo": (((m / (m - 1)) * (r - r.mean(-2, keepdims=True)) @ w) * g).mean(-1)}
    for impl in ("none", "zero_fill", "subgroup"):
        x = apply_conditioning(r, 0, 1, impl)
        x = x - x.mean(-2, keepdims=True)
        out[impl] = ((x @ w) * g).mean(-1)
    return out


def _prop4_trials(n: int, m: int, p_a: float, p_b: float, gamma: float, alpha_c: float, w, rng,
                  reduced: bool) -> dict[str, np.ndarray]:
    """Per-trial Prop-4 estimators (keys ``none, zero_fill, subgroup, loo``) and ``n_pass``.

    Reduced sampler: every estimator is ``(1/m) sum_j a(t_j) (h(t_j) + noise eps_j)``
    where ``t_j`` is the rollout's ``(r_a, r_b)`` type, ``a`` the centred
    conditioned advantage (a function of the type counts) and ``h`` the
    deterministic score; so it depends on the rewards only through the
    multinomial type counts ``n_t``, and on the noise only through the per-type
    sums ``E_t ~ N(0, n_t)``, drawn jointly for all estimators (exact in
    distribution, pairs included).
    """
    if not reduced:
        def one(k):
            r, g = prop4_model(k, m, p_a, p_b, gamma, alpha_c, _ALPHA_F, _NOISE, seed=rng)
            e = _prop4_estimates(r, g, w)
            return (e["none"], e["zero_fill"], e["subgroup"], e["loo"], r[..., 0].sum(-1))
        en, ez, es, el, npass = blockwise(n, 6 * m, one)
        return {"none": en, "zero_fill": ez, "subgroup": es, "loo": el, "n_pass": npass}
    q = exact._type_probs(p_a, p_b)
    counts = rng.multinomial(m, q / q.sum(), size=n)                               # (n, 4)
    h = exact._type_score(p_a, p_b, gamma, alpha_c, _ALPHA_F)                      # (4,)
    e_t = np.sqrt(counts) * rng.standard_normal((n, 4))                            # per-type noise sums
    out = {"n_pass": (counts[:, 2] + counts[:, 3]).astype(float)}
    for impl in ("none", "zero_fill", "subgroup", "loo"):
        a_t = exact._type_features(counts, m, impl) @ np.asarray(w, float)         # (n, 4)
        out[impl] = ((counts * a_t * h).sum(-1) + _NOISE * (a_t * e_t).sum(-1)) / m
    return out


def figT2(n_trials: int = 150000, seed: SeedLike = 0, gammas=None, p_a: float = 0.5, p_b: float = _P_B,
          alpha_c: float = _ALPHA_C, m: int = 16, w=W2, reduced: bool = True) -> pd.DataFrame:
    """Prop 4's bias law, isolated with the leave-one-out baseline (unbiased for its covariance).

    ``sim`` = mean of the unconditioned LOO estimator minus ``theta*``; theory
    :func:`mrgrpo.core.theory.prop4_beta`. ``attrs['gamma_star']`` from
    :func:`mrgrpo.core.theory.prop4_gamma_star` and the simulated zero crossing.
    ``reduced`` selects the exact count-based sampler (see ``_prop4_trials``).
    """
    rng, w = as_generator(seed), np.asarray(w, float)
    gammas = np.linspace(0, 3, 16) if gammas is None else np.asarray(gammas, float)
    rows = []
    for gm in gammas:
        theta = exact.prop4_population(p_a, p_b, gm, alpha_c, _ALPHA_F, w)["theta_star"]
        e = _prop4_trials(n_trials, m, p_a, p_b, float(gm), alpha_c, w, rng, reduced)
        mu, se = mean_se(e["loo"] - theta)
        rows.append(row("figT2", "beta", theory.prop4_beta(p_a, p_b, gm, alpha_c, w[1]), mu, se, n_trials,
                        gamma=float(gm), p_a=p_a, p_b=p_b, alpha_c=alpha_c, m=m))
    df = frame(rows)
    sim = df["sim"].to_numpy()
    k = np.where(np.diff(np.sign(sim)) != 0)[0]
    cross = (float(gammas[k[0]] - sim[k[0]] * (gammas[k[0] + 1] - gammas[k[0]]) / (sim[k[0] + 1] - sim[k[0]]))
             if len(k) else np.nan)
    df.attrs.update(gamma_star=float(theory.prop4_gamma_star(p_a, p_b, alpha_c)), gamma_cross_sim=cross,
                    max_abs_diff=float(np.max(np.abs(df["sim"] - df["theory"]))),
                    published={"gamma_star": 1.25, "max_abs_diff": 2e-3})
    return df


def figT1(n_trials: int = 60000, seed: SeedLike = 0, p_as=None, gamma: float = 1.5, p_b: float = _P_B,
          alpha_c: float = _ALPHA_C, m: int = 16, w=W2, reduced: bool = True) -> pd.DataFrame:
    """MSE against ``theta*`` of no conditioning, zero-fill and subgroup, vs ``p_a`` (``gamma = 1.5``).

    Theory: exact enumeration (:func:`mrgrpo.sim.exact.prop4_estimator_moments`)
    for each estimator's MSE and bias; ``P(#pass < 2)`` (subgroup degeneracy)
    exact from the binomial. ``attrs['zf_over_none']``: mean zero-fill MSE over
    mean unconditioned MSE across the sweep (the paper's 0.86x), sim and exact.
    """
    rng, w = as_generator(seed), np.asarray(w, float)
    p_as = np.linspace(0.1, 0.95, 18) if p_as is None else np.asarray(p_as, float)
    rows, tot = [], {k: [0.0, 0.0] for k in ("none", "zero_fill", "subgroup")}
    for pa in p_as:
        theta = exact.prop4_population(pa, p_b, gamma, alpha_c, _ALPHA_F, w)["theta_star"]
        e = _prop4_trials(n_trials, m, float(pa), p_b, gamma, alpha_c, w, rng, reduced)
        for impl in ("none", "zero_fill", "subgroup"):
            err = e[impl] - theta
            ex = exact.prop4_estimator_moments(m, pa, p_b, gamma, impl, alpha_c, _ALPHA_F, _NOISE, w)
            mu, se = mean_se(err * err)
            rows.append(row("figT1", f"mse_{impl}", ex["mse"], mu, se, n_trials, p_a=float(pa), gamma=gamma, m=m))
            mu, se = mean_se(err)
            rows.append(row("figT1", f"bias_{impl}", ex["bias"], mu, se, n_trials, p_a=float(pa), gamma=gamma, m=m))
            tot[impl][0] += float(np.mean(err * err))
            tot[impl][1] += float(ex["mse"])
        mu, se = mean_se((e["n_pass"] < 2).astype(float))
        rows.append(row("figT1", "p_degenerate", exact.subgroup_degenerate_prob(m, pa), mu, se, n_trials,
                        p_a=float(pa), gamma=gamma, m=m))
    return frame(rows, zf_over_none_sim=tot["zero_fill"][0] / tot["none"][0],
                 zf_over_none_exact=tot["zero_fill"][1] / tot["none"][1],
                 zf_over_subgroup_sim=tot["zero_fill"][0] / tot["subgroup"][0],
                 zf_over_subgroup_exact=tot["zero_fill"][1] / tot["subgroup"][1],
                 published={"zf_over_none": 0.86})


def figT3(n_trials: int = 12000, seed: SeedLike = 0, p_as=None, gammas=None, p_b: float = _P_B,
          alpha_c: float = _ALPHA_C, m: int = 16, w=W2, reduced: bool = True) -> pd.DataFrame:
    """Phase diagram over ``(p_a, gamma)``: ``MSE(none) - MSE(zero-fill)`` (> 0: zero-fill wins).

    One row per grid cell with the paired difference (sim, SE) and its exact
    value. ``attrs``: the fraction of cells where zero-fill wins (sim and exact),
    how many cells are within 2 SE of a tie, and per ``p_a`` the exact ``gamma``
    band where no conditioning wins (``losing_bands``) next to the bias-zero
    ``gamma* = alpha_c p_a / (1 - p_b)``; ``gamma_star_in_losing_band`` is the
    fraction of columns whose band contains ``gamma*``.
    """
    rng, w = as_generator(seed), np.asarray(w, float)
    p_as = np.linspace(0.12, 0.9, 16) if p_as is None else np.asarray(p_as, float)
    gammas = np.linspace(0, 3, 16) if gammas is None else np.asarray(gammas, float)
    rows = []
    for gm in gammas:
        ex_n = exact.prop4_estimator_moments(m, p_as, p_b, gm, "none", alpha_c, _ALPHA_F, _NOISE, w)["mse"]
        ex_z = exact.prop4_estimator_moments(m, p_as, p_b, gm, "zero_fill", alpha_c, _ALPHA_F, _NOISE, w)["mse"]
        for j, pa in enumerate(p_as):
            theta = exact.prop4_population(pa, p_b, gm, alpha_c, _ALPHA_F, w)["theta_star"]
            e = _prop4_trials(n_trials, m, float(pa), p_b, float(gm), alpha_c, w, rng, reduced)
            mu, se = mean_se((e["none"] - theta) ** 2 - (e["zero_fill"] - theta) ** 2)
            rows.append(row("figT3", "mse_none - mse_zero_fill", ex_n[j] - ex_z[j], mu, se, n_trials,
                            p_a=float(pa), gamma=float(gm), m=m))
    df = frame(rows)
    bands = _losing_bands(p_as, p_b, alpha_c, m, w, float(gammas.min()), float(gammas.max()))
    inside = [b["lo"] <= b["gamma_star"] <= b["hi"] for b in bands if np.isfinite(b["lo"])]
    df.attrs.update(win_fraction_sim=float((df["sim"] > 0).mean()),
                    win_fraction_exact=float((df["theory"] > 0).mean()),
                    ambiguous_cells=int((np.abs(df["sim"]) < 2 * df["se"]).sum()),
                    losing_bands=bands,
                    gamma_star_in_losing_band=float(np.mean(inside)) if inside else np.nan,
                    published={"win_fraction": 0.75,
                               "boundary": "tracks gamma = alpha_c p_a / (1 - p_b)"})
    return df


def _losing_bands(p_as, p_b, alpha_c, m, w, g_lo, g_hi, n_grid: int = 121) -> list[dict]:
    """Per ``p_a``: the ``gamma`` interval in ``[g_lo, g_hi]`` where no conditioning beats
    zero-fill (exact MSEs; end points by root finding), next to the bias-zero ``gamma*``."""
    from scipy.optimize import brentq

    def diff(g, pa):
        n = exact.prop4_estimator_moments(m, pa, p_b, g, "none", alpha_c, _ALPHA_F, _NOISE, w)["mse"]
        z = exact.prop4_estimator_moments(m, pa, p_b, g, "zero_fill", alpha_c, _ALPHA_F, _NOISE, w)["mse"]
        return n - z

    grid = np.linspace(g_lo, g_hi, n_grid)
    out = []
    for pa in p_as:
        v = np.asarray(diff(grid, float(pa)), float)
        lose = v < 0
        gs = float(theory.prop4_gamma_star(float(pa), p_b, alpha_c))
        if not lose.any():
            out.append({"p_a": float(pa), "gamma_star": gs, "lo": np.nan, "hi": np.nan})
            continue
        i0, i1 = int(np.argmax(lose)), int(len(lose) - 1 - np.argmax(lose[::-1]))
        lo = grid[0] if i0 == 0 else brentq(lambda g: float(diff(g, pa)), grid[i0 - 1], grid[i0])
        hi = grid[-1] if i1 == len(grid) - 1 else brentq(lambda g: float(diff(g, pa)), grid[i1], grid[i1 + 1])
        out.append({"p_a": float(pa), "gamma_star": gs, "lo": float(lo), "hi": float(hi)})
    return out
