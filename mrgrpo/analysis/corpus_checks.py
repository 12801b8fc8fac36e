"""Every Tier-2 check of one rollout corpus, as numbers: what the book sets side by side.

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

The result, :class:`Tier2Checks`, holds numbers only; a chapter formats them at the edge
(``chapters/tier2.md`` writes the long table ``check, quantity, m, value`` of several corpora
and the paper, lined up row by row with :func:`side_by_side`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from mrgrpo.core.checks import check_weights

from .floor import floor_check
from .harness import analyze
from .identity import identity_gap
from .prop4_real import Prop4Real, prop4_real

__all__ = ["Tier2Checks", "tier2_checks", "side_by_side", "check_blocks", "EMPTY_CELLS"]

#: Cells that say "nothing here": a column made only of them is left out of a check's table.
EMPTY_CELLS = ("", "n/a")


@dataclass(frozen=True)
class Tier2Checks:
    """The Tier-2 checks of one corpus (:func:`tier2_checks`), as numbers.

    ``by_m`` and ``floor`` are pandas DataFrames indexed by the group size ``m``:

    - ``by_m``: ``ratio_na``, ``ratio_na_lo``, ``ratio_na_hi`` (the paper's check and its
      bootstrap interval), ``expected_ratio`` (``(K-1)/K``), ``identity_max_abs``
      (``max |mean A^2 - w^T C_hat w|``), ``ratio_an`` (measured) and ``ratio_an_formula``
      (``((K-1)/K)(1 - f_deg)/E[w^T C_hat w]``);
    - ``floor``: ``floor_minus_target``, ``diff_lo``, ``diff_hi`` (on non-degenerate groups),
      ``verdict`` (the floor check's label), ``frac_degenerate``, ``share_degenerate`` and
      ``cost_degenerate``, ``cost_lo``, ``cost_hi`` (their cost as a share of the floor).

    ``prop4_mse`` is the exact conditioning MSE at group size ``prop4_m``: one row per gamma,
    one column per implementation (``none``, ``subgroup``, ``zero_fill``).
    """

    P: int
    K: int
    channel_names: tuple[str, ...]
    channel_means: np.ndarray        # (R,) mean reward of each channel over the largest groups
    varies: np.ndarray               # (R,) share of the largest groups in which each channel varies
    m_max: int
    by_m: Any
    floor: Any
    population_wCw: float
    prop4: Prop4Real
    prop4_m: int
    prop4_mse: Any
    threshold: Optional[float]
    gate: int = 0                    # Proposition 4's channels (indices into channel_names)
    cond: int = 1


def tier2_checks(tensors: Mapping[int, np.ndarray], w: Sequence[float], *, channel_names: Sequence[str],
                 gate: int = 0, cond: int = 1, threshold: Optional[float] = None, prop4_m: Optional[int] = None,
                 prop4_rewards: Optional[np.ndarray] = None, score_seed: int = 12345, n_boot: int = 2000,
                 seed: int = 0) -> Tier2Checks:
    """The Tier-2 checks of one corpus, as numbers.

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
    Tier2Checks
    """
    import pandas as pd

    grid = sorted(int(m) for m in tensors)
    if not grid:
        raise ValueError("tensors is empty")
    x_max = tensors[grid[-1]]
    P, K, _, R = x_max.shape
    wv = check_weights(w, R)
    names = tuple(channel_names)
    if len(names) != R:
        raise ValueError(f"channel_names has {len(names)} names for R = {R} channels")
    kf = (K - 1) / K
    by_m = {}
    for m in grid:
        paper = analyze(tensors[m], wv, score_seed=score_seed, mse_estimator="paper", n_boot=n_boot)
        f_deg = float((np.ptp(tensors[m] @ wv, axis=-1) == 0).mean())  # AN-degenerate: w'r constant in the group
        by_m[m] = {"ratio_na": paper.ratio_na, "ratio_na_lo": paper.ratio_na_ci[0], "ratio_na_hi": paper.ratio_na_ci[1],
                   "expected_ratio": kf, "identity_max_abs": identity_gap(tensors[m], wv)["max_abs"],
                   "ratio_an": paper.ratio_an, "ratio_an_formula": kf * (1 - f_deg) / paper.floor_sample}
    floor = floor_check(dict(tensors), wv, n_boot=n_boot, seed=seed)
    ft = floor.table.assign(m=lambda t: t["m"].astype(int)).set_index("m")
    m4 = prop4_m if prop4_m is not None else max([m for m in grid if m <= 8] or grid[:1])
    p4 = prop4_real(x_max if prop4_rewards is None else prop4_rewards, gate=gate, cond=cond, threshold=threshold, m=m4,
                    n_boot=n_boot, seed=seed)
    mse = p4.mse.pivot(index="gamma", columns="impl", values="mse")
    return Tier2Checks(
        P=int(P), K=int(K), channel_names=names, channel_means=np.array([x_max[..., c].mean() for c in range(R)]),
        varies=(np.ptp(x_max, axis=2) > 0).mean(axis=(0, 1)), m_max=grid[-1],
        by_m=pd.DataFrame.from_dict(by_m, orient="index").rename_axis("m"),
        floor=ft[["floor_minus_target", "diff_lo", "diff_hi", "verdict", "frac_degenerate", "share_degenerate",
                  "cost_degenerate", "cost_lo", "cost_hi"]],
        population_wCw=float(floor.population_wCw), prop4=p4, prop4_m=int(m4), prop4_mse=mse,
        threshold=None if threshold is None else float(threshold), gate=int(gate), cond=int(cond))


def side_by_side(tables: Mapping[str, Any]) -> Any:
    """Several long tables (``check``, ``quantity``, ``m``, ``value``) as columns (``"n/a"`` where absent).

    Each table is one corpus's :class:`Tier2Checks` as the chapter formats it.

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


def check_blocks(frame: Any) -> dict:
    """:func:`side_by_side`'s frame split into one table per check (``{check: DataFrame}``, in order).

    A check whose rows all carry a group size ``m`` becomes one row per ``m`` and one column per
    (source, quantity), labelled ``"source: quantity"``; any other check keeps one row per quantity
    (its ``m`` appended to the label where it has one) and one column per source. Columns that hold
    only :data:`EMPTY_CELLS` are left out, so a source that publishes nothing for a check takes no
    room in its table.
    """
    import pandas as pd

    out = {}
    for check in dict.fromkeys(frame.index.get_level_values("check")):
        block = frame.xs(check, level="check")
        ms = block.index.get_level_values("m")
        if all(m != "" for m in ms):
            quantities = list(dict.fromkeys(block.index.get_level_values("quantity")))
            cols = {}
            for source in block.columns:
                for q in quantities:
                    cols[f"{source}: {q}"] = block[source].xs(q, level="quantity")
            table = pd.DataFrame(cols)
            table.index = pd.Index([int(m) for m in table.index], name="m")
        else:
            labels = [q if m == "" else f"{q} (m = {m})" for q, m in block.index]
            table = pd.DataFrame(block.to_numpy(), index=pd.Index(labels, name=check), columns=block.columns)
        table = table.fillna("n/a")
        keep = [c for c in table.columns if not table[c].isin(EMPTY_CELLS).all()]
        out[check] = table[keep]
    return out
