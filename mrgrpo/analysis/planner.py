"""The reward-design planner: which channel set and weights make the quietest gradient?

By Theorem 3 the NA gradient noise of a design (channels ``S``, weights ``w``)
at group size ``m`` is ``tau^2 w^T C_S w / m``: the design's cost in rollouts is
set by ``w^T C w``, the weighted population correlation of its channels. Given
one corpus scored on every candidate channel, :func:`plan_designs` estimates
``w^T C w`` per design (per prompt from all its rollouts, then averaged, with a
prompt-bootstrap CI), ranks the designs, and reports the group size each needs
to match a reference design's noise level: ``m_needed = m_ref * (w^T C w) /
(target * w_ref^T C w_ref)``.

Caveat: ``w^T C w`` scales with ``|w|^2``; compare designs whose weights are on
the same footing (the table also shows ``w^T C w / w^T w``, which is 1 for
uncorrelated channels whatever the scale).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from mrgrpo.core.checks import check_rewards, check_weights
from mrgrpo.analysis.bootstrap import bootstrap_weights, percentile_ci
from mrgrpo.analysis.harness import group_stats, pooled_population

__all__ = ["RewardDesign", "PlanResult", "plan_designs", "unit_diagonal"]


def unit_diagonal(pooled) -> np.ndarray:
    """A pooled within-group ``C_hat`` divided by the square roots of its diagonal: a unit diagonal.

    A pooled ``C_hat`` (the mean of the groups' sample correlations, a constant channel
    contributing 0) has a diagonal below 1: the share of groups in which each channel varies.
    Rescaling gives a correlation-like matrix, an approximation of the population ``C`` (it also
    averages over groups in which only one of two channels is constant). The paper prints the
    pooled matrix itself; this is what the planner can price.

    Parameters
    ----------
    pooled : array_like, shape ``(R, R)``, symmetric with a positive diagonal

    Returns
    -------
    numpy.ndarray, shape ``(R, R)``, unit diagonal
    """
    p = np.asarray(pooled, dtype=float)
    if p.ndim != 2 or p.shape[0] != p.shape[1] or not np.allclose(p, p.T):
        raise ValueError(f"pooled must be a symmetric (R, R) matrix, got shape {p.shape}")
    d = np.diag(p)
    if not (np.isfinite(p).all() and (d > 0).all()):
        raise ValueError(f"pooled needs a finite matrix with a positive diagonal, got diagonal {d.tolist()}")
    s = np.sqrt(d)
    return p / np.outer(s, s)


@dataclass(frozen=True)
class RewardDesign:
    """A candidate design: which channels (names or indices) and their weights."""

    name: str
    channels: tuple
    w: tuple

    def __post_init__(self):
        if len(self.channels) == 0:
            raise ValueError(f"design {self.name!r} has no channels")
        if len(self.channels) != len(self.w):
            raise ValueError(f"design {self.name!r}: {len(self.channels)} channels but {len(self.w)} weights")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError(f"design {self.name!r} names a channel twice: {self.channels}")


@dataclass
class PlanResult:
    """Output of :func:`plan_designs`; :attr:`table` is sorted by ``wCw`` (quietest first)."""

    table: object  # pandas DataFrame
    reference: str
    m_ref: int
    target: float
    P: int
    K: int
    m: int

    def __str__(self) -> str:
        import pandas as pd

        with pd.option_context("display.width", 160, "display.max_columns", 20):
            head = (f"reward designs ranked by w'Cw (P={self.P}, K={self.K}, m={self.m}); m_needed matches "
                    f"{self.target:g} x the noise of {self.reference!r} at m = {self.m_ref}\n")
            return head + self.table.to_string(index=False, float_format=lambda v: f"{v:.4g}")


def _resolve(design: RewardDesign, names: Sequence[str]) -> list:
    idx = []
    for c in design.channels:
        if isinstance(c, str):
            if c not in names:
                raise ValueError(f"design {design.name!r}: unknown channel {c!r}; channels are {list(names)}")
            idx.append(list(names).index(c))
        elif isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            if not 0 <= int(c) < len(names):
                raise ValueError(f"design {design.name!r}: channel index {c} out of range for R = {len(names)}")
            idx.append(int(c))
        else:
            raise ValueError(f"design {design.name!r}: a channel must be a name or an index, got {c!r}")
    return idx


def plan_designs(rewards, designs: Union[Sequence[RewardDesign], Mapping[str, tuple]],
                 reference: Optional[str] = None, m_ref: Optional[int] = None, target: float = 1.0,
                 reward_names: Optional[Sequence[str]] = None, m: Optional[int] = None,
                 n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> PlanResult:
    """Rank reward designs by ``w^T C w`` and size their groups against a reference.

    Parameters
    ----------
    rewards : array_like ``(P, K, m, R)`` or :class:`mrgrpo.corpus.Corpus`
        Every candidate channel scored on the same rollouts.
    designs : sequence of RewardDesign, or mapping ``name -> (channels, w)``
    reference : str, optional
        The design whose noise is the target (default: the first).
    m_ref : int, optional
        The reference's group size (default: the corpus's ``m``).
    target : float
        Noise level to reach, as a multiple of the reference's (1 = match it).
    reward_names : sequence of str, optional
        Channel names (taken from the corpus when one is given).
    m : int, optional
        Group size to pack when ``rewards`` is a Corpus (default: its largest).
    n_boot, seed, ci
        Prompt-level bootstrap (paired across designs).

    Returns
    -------
    PlanResult
    """
    import pandas as pd

    if hasattr(rewards, "rollouts") and hasattr(rewards, "reward_names"):
        from mrgrpo.corpus import pack_for_analysis

        reward_names = reward_names or rewards.reward_names
        rewards = pack_for_analysis(rewards, m or max(rewards.m_grid))
    x = check_rewards(rewards, exact_ndim=4)
    P, K, mm, R = x.shape
    names = list(reward_names) if reward_names is not None else [str(i) for i in range(R)]
    if len(names) != R:
        raise ValueError(f"reward_names has {len(names)} names but the rewards have R = {R} channels")
    if isinstance(designs, Mapping):
        designs = [RewardDesign(k, tuple(v[0]), tuple(float(t) for t in v[1])) for k, v in designs.items()]
    designs = list(designs)
    if not designs:
        raise ValueError("no designs to plan")
    if len({d.name for d in designs}) != len(designs):
        raise ValueError("design names must be distinct")
    reference = designs[0].name if reference is None else reference
    if reference not in {d.name for d in designs}:
        raise ValueError(f"reference {reference!r} is not one of the designs {[d.name for d in designs]}")
    m_ref = mm if m_ref is None else int(m_ref)
    if m_ref < 2:
        raise ValueError(f"m_ref must be >= 2, got {m_ref}")
    if not (np.isfinite(target) and target > 0):
        raise ValueError(f"target must be a positive number, got {target}")

    st = group_stats(x, np.ones(R))
    C_p, _, varies = pooled_population(st["mean"], st["cov"])  # all channels at once
    W = bootstrap_weights(P, n_boot, seed)
    per = {}
    for d in designs:
        idx = _resolve(d, names)
        wv = check_weights(np.asarray(d.w, dtype=float), len(idx), name=f"w of design {d.name!r}")
        full = np.zeros(R)
        full[idx] = wv
        we = np.where(varies, full, 0.0)
        wcw = np.einsum("pi,pij,pj->p", we, C_p, we)
        per[d.name] = (d, idx, wv, wcw)
    ref_wcw = per[reference][3]
    rows = []
    B_ref = W @ ref_wcw
    for name, (d, idx, wv, wcw) in per.items():
        B = W @ wcw
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = float(wcw.sum() / ref_wcw.sum())
            ratio_ci = percentile_ci((B / B_ref)[:, None], ci)[0]
        mean_ci = percentile_ci((B / P)[:, None], ci)[0]
        need = lambda r: max(2, math.ceil(m_ref * r / target - 1e-9)) if np.isfinite(r) else np.nan  # noqa: E731
        rows.append({
            "design": name, "channels": ",".join(names[i] for i in idx),
            "w": ",".join(f"{v:g}" for v in wv), "wCw": float(wcw.mean()), "wCw_lo": mean_ci[0],
            "wCw_hi": mean_ci[1], "wCw_per_w2": float(wcw.mean() / (wv @ wv)) if wv @ wv > 0 else np.nan,
            "vs_reference": ratio, "vs_ref_lo": ratio_ci[0], "vs_ref_hi": ratio_ci[1],
            "m_needed": need(ratio), "m_needed_lo": need(ratio_ci[0]), "m_needed_hi": need(ratio_ci[1]),
        })
    table = pd.DataFrame(rows).sort_values("wCw", kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return PlanResult(table=table, reference=reference, m_ref=m_ref, target=float(target), P=P, K=K, m=mm)
