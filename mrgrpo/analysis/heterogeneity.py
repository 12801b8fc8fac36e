"""Channel-variance heterogeneity: Prop 1's prediction from rollouts, and the measured allocation.

The question (the paper's open experiment): does AN starve a high-weight channel whose
within-group variance is low? Proposition 1 predicts each channel's *influence* on the
advantage, ``Cov(A, z_l)``: under NA it follows the weights (``sum_k w_k C_kl``), under AN the
weights times the spreads (``sum_k w_k sigma_k C_kl / sqrt(w^T Sigma w)``). This module turns
the untrained policy's rollouts into that prediction, before any training, and reads the
same quantity back from training runs:

- :func:`group_stats` each channel's mean, within-group variance and share of constant groups;
- :func:`predicted_influence_from_rollouts` Prop 1's law per prompt, from each prompt's
  population ``sigma_p``, ``C_p`` (all its rollouts), averaged over prompts;
- :func:`realized_influence_from_groups` what the trainer logs (``influence/<channel>``) on
  the same rollouts cut into groups of ``m``;
- :func:`shares` a channel's share of the summed influence;
- :func:`measured_shares` the logged influence of training runs, as shares per run;
- :func:`conditioning_changes` whether zero-fill conditioning would change any reward;
- :func:`stated_margin` the equivalence margin a design file stated before the runs.

The held-out comparison itself is :func:`mrgrpo.analysis.held_out.compare_modes`.

Averaging convention: a prompt (or group) where a channel never varies gives that channel no
influence (0), as in the trainer's metric, which averages over every group.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mrgrpo.core.advantage import apply_conditioning, compute_advantage_batch
from mrgrpo.core.checks import check_rewards, check_weights

from .influence import predicted_influence, realized_influence

__all__ = ["group_stats", "predicted_influence_from_rollouts", "realized_influence_from_groups", "shares",
           "measured_shares", "conditioning_changes", "stated_margin"]

#: How a design file states its margin: a bold line ``**Equivalence margin: 0.05**``.
_MARGIN_RE = re.compile(r"\*\*Equivalence margin: ([0-9]*\.?[0-9]+)\*\*")


def group_stats(rewards: Any) -> dict[str, np.ndarray]:
    """Per-channel summaries of groups of rollouts.

    Parameters
    ----------
    rewards : array_like, shape ``(G, m, R)``
        ``G`` groups of ``m`` rollouts on ``R`` channels.

    Returns
    -------
    dict of numpy arrays, each shape ``(R,)``
        ``mean`` (over all rollouts), ``within_var`` (the mean over groups of the
        within-group variance, ddof 0, the paper's ``sigma-hat^2``), ``within_sd`` (its
        square root) and ``const_frac`` (share of groups in which the channel is constant).
    """
    r = check_rewards(rewards, exact_ndim=3)
    var = r.var(axis=1).mean(axis=0)
    return {"mean": r.mean(axis=(0, 1)), "within_var": var, "within_sd": np.sqrt(var),
            "const_frac": (r.max(axis=1) == r.min(axis=1)).mean(axis=0)}


def _population(r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-prompt ``sigma (P, R)``, correlation ``C (P, R, R)`` (identity rows where a channel is constant), ``varies``."""
    P, _, R = r.shape
    sigma = r.std(axis=1)
    varies = sigma > 0
    z = (r - r.mean(axis=1, keepdims=True)) / np.where(varies, sigma, 1.0)[:, None, :]
    C = np.einsum("pkr,pks->prs", z, z) / r.shape[1]
    eye = np.broadcast_to(np.eye(R), (P, R, R))
    both = varies[:, :, None] & varies[:, None, :]
    C = np.where(both, C, eye)
    return sigma, np.clip(C, -1.0, 1.0), varies


def predicted_influence_from_rollouts(rewards: Any, w: Sequence[float]) -> dict[str, np.ndarray]:
    """Prop 1's influence of every channel under AN and NA, predicted from rollouts of each prompt.

    Each prompt's population spread ``sigma_p`` and correlation ``C_p`` are estimated from
    all its rollouts (ddof 0); the law (:func:`mrgrpo.analysis.influence.predicted_influence`)
    is evaluated per prompt and averaged over prompts, a prompt where nothing varies counting 0.

    Parameters
    ----------
    rewards : array_like, shape ``(P, K, R)``
        ``K >= 2`` rollouts of each of ``P`` prompts.
    w : sequence of R floats

    Returns
    -------
    dict
        ``"an"``, ``"na"``: shape ``(R,)``, the mean predicted influence; ``"an_share"``,
        ``"na_share"``: the same as shares of their sum (:func:`shares`).
    """
    r = check_rewards(rewards, exact_ndim=3)
    wv = check_weights(w, r.shape[-1])
    sigma, C, varies = _population(r)
    an, na = predicted_influence(wv, sigma, C, varies)
    out = {"an": np.nan_to_num(an).mean(axis=0), "na": np.nan_to_num(na).mean(axis=0)}
    return {**out, "an_share": shares(out["an"]), "na_share": shares(out["na"])}


def realized_influence_from_groups(rewards: Any, w: Sequence[float], mode: str) -> np.ndarray:
    """The influence the trainer logs, ``mean over groups of Cov(A, z_l)``, on given groups.

    Parameters
    ----------
    rewards : array_like, shape ``(G, m, R)``
    w : sequence of R floats
    mode : {"na", "an", "single"}

    Returns
    -------
    numpy.ndarray, shape ``(R,)``
    """
    r = check_rewards(rewards, exact_ndim=3)
    A = compute_advantage_batch(r, w, mode=mode)
    return realized_influence(r, A).mean(axis=0)


def shares(influence: Any) -> np.ndarray:
    """Each channel's share of the summed influence, ``infl_l / sum_k infl_k`` (shape ``(R,)``).

    Raises
    ------
    ValueError
        The influences sum to 0 or less (no share is defined).
    """
    x = np.asarray(influence, dtype=float)
    total = x.sum(axis=-1, keepdims=True)
    if np.any(~np.isfinite(total)) or np.any(total <= 0):
        raise ValueError(f"influences {x.tolist()} do not sum to a positive number: shares undefined")
    return x / total


def measured_shares(curves: Any, channels: Sequence[str], steps: tuple[int, int] | None = None) -> Any:
    """Each run's logged influence (``influence/<channel>``), averaged over steps, as shares.

    Parameters
    ----------
    curves : pandas.DataFrame
        Training records with ``mode``, ``seed``, ``step`` and ``influence/<channel>``
        (:attr:`mrgrpo.train.experiment.Comparison.curves`).
    channels : channel names
    steps : (first, last), optional
        Only steps ``first <= step <= last`` (1-based, as logged); default every step.

    Returns
    -------
    pandas.DataFrame
        One row per run (``mode``, ``seed``), a column per channel: its share.
    """
    cols = [f"influence/{c}" for c in channels]
    missing = [c for c in cols + ["mode", "seed", "step"] if c not in curves.columns]
    if missing:
        raise ValueError(f"curves lack {missing}")
    rows = curves if steps is None else curves[(curves["step"] >= steps[0]) & (curves["step"] <= steps[1])]
    if rows.empty:
        raise ValueError(f"no training records in steps {steps}")
    mean = rows.groupby(["mode", "seed"], sort=False)[cols].mean()
    out = mean.div(mean.sum(axis=1), axis=0)
    out.columns = list(channels)
    return out.reset_index()


def conditioning_changes(rewards: Any, gate: int, conditioned: int | Sequence[int]) -> int:
    """How many rewards zero-fill conditioning would change (``gate`` gating ``conditioned``).

    Parameters
    ----------
    rewards : array_like, shape ``(..., m, R)``, the gate binary (0 or 1)
    gate, conditioned : channel indices

    Returns
    -------
    int
        The number of entries that :func:`mrgrpo.core.advantage.apply_conditioning`
        (``impl="zero_fill"``) changes; 0 means the conditioned run is the unconditioned one.
    """
    r = check_rewards(rewards)
    return int((apply_conditioning(r, gate, conditioned, impl="zero_fill") != r).sum())


def stated_margin(design: str | os.PathLike) -> float:
    """The equivalence margin of a design file (markdown), from its line ``**Equivalence margin: X**``.

    Raises
    ------
    ValueError
        The file states no margin, or states more than one, or a margin that is not positive.
    """
    found = _MARGIN_RE.findall(Path(design).read_text(encoding="utf-8"))
    if len(found) != 1:
        raise ValueError(f"{design}: expected one line '**Equivalence margin: X**', found {len(found)}")
    margin = float(found[0])
    if margin <= 0:
        raise ValueError(f"{design}: the equivalence margin must be positive, got {margin}")
    return margin
