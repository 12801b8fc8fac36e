"""Every Tier-2 check of one rollout corpus, as one table: what the book sets side by side.

:func:`tier2_checks` runs, on the ``(P, K, m, R)`` reward tensors of a corpus, the checks the
Tier-2 chapter explains one by one:

- **the paper's check**: the NA ratio (paper convention, ``ddof = 0`` across seeds) with its
  bootstrap interval, and the ``(K - 1)/K`` it tends to for any rewards;
- **the identity**: the largest gap between ``mean_j A_j^2`` and ``w^T C_hat w`` over all groups;
- **AN's algebraic ratio**: the measured AN ratio and ``((K-1)/K)(1 - f_deg)/E[w^T C_hat w]``;
- **the falsifiable checks**: the population floor against its exact finite-m target
  (:func:`mrgrpo.analysis.floor.floor_check`) and the share of degenerate groups;
- **Proposition 4 on these rollouts** (:func:`mrgrpo.analysis.prop4_real.prop4_real`): the
  gate's pass rate, the conditioned channel's rate, gamma*, the observed sign flip and
  slope, and the exact MSE of no conditioning, zero-fill and subgroup.

The result is a long table (``check``, ``quantity``, ``m``, ``value``) of formatted cells, so
two corpora (and the paper's published numbers) line up row by row.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from mrgrpo.core.checks import check_weights

from .floor import floor_check
from .harness import analyze
from .identity import identity_gap
from .prop4_real import prop4_real

__all__ = ["tier2_checks", "side_by_side"]


def _ci(value: float, ci: Sequence[float], digits: int = 3) -> str:
    return f"{value:.{digits}f} [{ci[0]:.{digits - 1}f}, {ci[1]:.{digits - 1}f}]"


def tier2_checks(tensors: Mapping[int, np.ndarray], w: Sequence[float], *, channel_names: Sequence[str],
                 gate: int = 0, cond: int = 1, threshold: Optional[float] = None, prop4_m: Optional[int] = None,
                 prop4_rewards: Optional[np.ndarray] = None, score_seed: int = 12345, n_boot: int = 2000,
                 seed: int = 0) -> Any:
    """The Tier-2 checks of one corpus as a long table of formatted cells.

    Parameters
    ----------
    tensors : mapping ``m -> (P, K, m, R)``
        The corpus's groups of each size (:func:`mrgrpo.corpus.pack_for_analysis`).
    w : sequence of R floats
    channel_names : sequence of R str
    gate, cond, threshold
        Proposition 4's gate channel, conditioned channel and the conditioned channel's
        binarizing threshold (None: it is already 0/1).
    prop4_m : int, optional
        Group size of the conditioning MSEs (default the largest ``m`` up to 8).
    prop4_rewards : array, shape ``(P, K, M, R')``, optional
        Rewards for Proposition 4 in place of the largest tensor, e.g. with the conditioned
        channel recomputed *ungated* from the stored replies when the reward already gates it
        (``gate`` and ``cond`` index this array then).

    Returns
    -------
    pandas.DataFrame
        Columns ``check``, ``quantity``, ``m`` (``""`` where it does not apply), ``value`` (str).
    """
    import pandas as pd

    grid = sorted(int(m) for m in tensors)
    if not grid:
        raise ValueError("tensors is empty")
    x_max = tensors[grid[-1]]
    P, K, _, R = x_max.shape
    wv = check_weights(w, R)
    names = list(channel_names)
    if len(names) != R:
        raise ValueError(f"channel_names has {len(names)} names for R = {R} channels")
    rows: list[tuple] = [("corpus", "prompts x seeds", "", f"{P} x {K}")]
    rows += [("corpus", f"mean {n}", "", f"{x_max[..., c].mean():.3f}") for c, n in enumerate(names)]
    varies = np.ptp(x_max, axis=2) > 0
    rows += [("corpus", f"{n} varies within the group", grid[-1], f"{varies[..., c].mean():.2f}")
             for c, n in enumerate(names)]
    kf = (K - 1) / K
    for m in grid:
        paper = analyze(tensors[m], wv, score_seed=score_seed, convention="paper", n_boot=n_boot)
        rows.append(("paper's check", "NA ratio [95% CI]", m, _ci(paper.ratio_na, paper.ratio_na_ci)))
        rows.append(("paper's check", "(K-1)/K: the value for any rewards", m, f"{kf:.3f}"))
        gap = identity_gap(tensors[m], wv)
        rows.append(("identity", "max |mean A^2 - w'C_hat w|", m, f"{gap['max_abs']:.1e}"))
        f_deg = float((np.ptp(tensors[m] @ wv, axis=-1) == 0).mean())  # AN-degenerate: w'r constant in the group
        rows.append(("AN ratio", "measured", m, f"{paper.ratio_an:.3f}"))
        rows.append(("AN ratio", "((K-1)/K)(1 - f_deg)/E[w'C_hat w]", m, f"{kf * (1 - f_deg) / paper.floor_sample:.3f}"))
    floor = floor_check(dict(tensors), wv, n_boot=n_boot, seed=seed)
    ft = floor.table
    rows.append(("floor", "population w'Cw", "", f"{floor.population_wCw:.3f}"))
    for _, r in ft.iterrows():
        m = int(r["m"])
        rows.append(("floor", "floor - exact target [95% CI]", m,
                     f"{r['floor_minus_target']:+.3f} [{r['diff_lo']:+.3f}, {r['diff_hi']:+.3f}]"))
        rows.append(("floor", "verdict", m, str(r["verdict"])))
        rows.append(("degenerate groups", "share of groups", m, f"{r['frac_degenerate']:.2f}"))
        rows.append(("degenerate groups", "their share of the deficit", m, f"{r['share_degenerate']:.2f}"))
    m4 = prop4_m if prop4_m is not None else max([m for m in grid if m <= 8] or grid[:1])
    p4 = prop4_real(x_max if prop4_rewards is None else prop4_rewards, gate=gate, cond=cond, threshold=threshold, m=m4)
    rows += [("Prop 4", "p_a (gate pass rate)", "", f"{p4.p_a:.2f}"),
             ("Prop 4", "p_b (conditioned channel" + (f" >= {threshold:g})" if threshold is not None else ")"), "",
              f"{p4.p_b:.2f}"),
             ("Prop 4", "corr(gate, conditioned)", "", f"{p4.corr_ab:+.2f}"),
             ("Prop 4", "gamma* (closed form)", "", f"{p4.gamma_star:.2f}"),
             ("Prop 4", "observed sign flip", "", f"{p4.gamma_flip:.2f}"),
             ("Prop 4", "slope, observed vs closed form", "", f"{p4.slope_ratio - 1:+.0%}")]
    mse = p4.mse.pivot(index="gamma", columns="impl", values="mse")
    labels = {0.0: "gamma = 0", round(p4.gamma_star, 9): "gamma = gamma*", 1.5: "gamma = 1.5", 3.0: "gamma = 3"}
    for g in mse.index:
        cells = ", ".join(f"{impl} {mse.loc[g, impl]:.4f}" for impl in ("none", "zero_fill", "subgroup"))
        label = labels.get(round(float(g), 9), f"gamma = {g:.2f}")
        rows.append(("Prop 4", f"MSE at {label}", m4, f"{cells} (lowest: {mse.loc[g].idxmin()})"))
    table = pd.DataFrame(rows, columns=["check", "quantity", "m", "value"])
    rank = {c: i for i, c in enumerate(dict.fromkeys(table["check"]))}
    return table.sort_values("check", key=lambda s: s.map(rank), kind="stable").reset_index(drop=True)


def side_by_side(tables: Mapping[str, Any]) -> Any:
    """Several :func:`tier2_checks` tables as columns (``"n/a"`` where absent).

    Rows keep the first table's order; a row only a later table has joins its check's block
    (a corpus's own channels under "corpus"), so each check reads as one block.
    """
    import pandas as pd

    keyed = {label: t.set_index(["check", "quantity", "m"])["value"] for label, t in tables.items()}
    order = list(dict.fromkeys(k for s in keyed.values() for k in s.index))
    checks = list(dict.fromkeys(k[0] for k in order))
    order.sort(key=lambda k: checks.index(k[0]))  # stable: within a check, first-seen order
    out = pd.DataFrame({label: s.reindex(order) for label, s in keyed.items()}, index=pd.MultiIndex.from_tuples(
        order, names=["check", "quantity", "m"]))
    return out.fillna("n/a")
