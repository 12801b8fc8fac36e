"""How the training engines compute their decoupled (NA / GDPO) advantage, read from their code.

:data:`ENGINE_CONVENTIONS` records, for each engine, the option that selects NA, the
within-group standard deviation (``ddof``, and the ``eps`` added to it), what happens after
the weighted sum of the standardized channels, whether a channel can be gated on another,
what a ``None`` reward does, and the source files it was read from.
:func:`engine_na_advantages` computes an engine's NA advantages on finite rewards from
those numbers, with mrgrpo's estimator (:func:`mrgrpo.core.advantage.compute_advantage_batch`)
for the per-group part, so that the conventions can be compared on the same rollouts.

Checked against the engines' own code where they are installed: the TRL row by
``tests/integrations/test_integrations_trl.py`` (mrgrpo's ``ddof=1, eps=1e-4, batch_rescale=True``
reproduces TRL 1.16's ``normalize_then_sum`` training losses step for step, ``None`` rewards
included) and the verl row by ``tests/integrations/test_integrations_verl.py`` (verl 0.9.1's ``gdpo``
estimator against :func:`engine_na_advantages`, and a ``None`` reward). The ms-swift and
NVlabs/GDPO rows are read from their repositories at the commits named in ``source``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np

from mrgrpo.core.advantage import batch_rescale_advantages, compute_advantage_batch
from mrgrpo.core.checks import check_rewards
from mrgrpo.core.conventions import BATCH_RESCALE_EPS, EPS, TRL_DDOF, TRL_EPS

__all__ = ["EngineConvention", "ENGINE_CONVENTIONS", "engine_na_advantages", "whiten_over_tokens",
           "VERL_EPS", "VERL_WHITEN_EPS"]

#: verl's ``compute_grpo_outcome_advantage`` default ``epsilon`` (added to the group std).
VERL_EPS = 1e-6
#: ``verl.utils.torch_functional.masked_whiten``: ``(x - mean) * rsqrt(var + 1e-8)``.
VERL_WHITEN_EPS = 1e-8


@dataclass(frozen=True)
class EngineConvention:
    """One engine's NA advantage.

    Attributes
    ----------
    engine : str
        Name and version.
    option : str
        How a user selects NA.
    ddof, eps : int, float
        Within-group standard deviation ``sd_ddof``, and what is added to it.
    after_sum : {"none", "batch", "whiten"}
        After the weighted sum: nothing; ``(A - mean) / (sd_1 + rescale_eps)`` over the batch;
        or verl's token-weighted whitening ``(A - mean) / sqrt(var_1 + rescale_eps)``.
    rescale_eps : float or None
    conditioning : str
        Gating of a channel on another.
    unscored : str
        What a ``None`` reward does.
    source : str
        Where this was read (files, and the commit for repositories not installed here), in
        Markdown (code names in backticks).
    """

    engine: str
    option: str
    ddof: int
    eps: float
    after_sum: str
    rescale_eps: Optional[float]
    conditioning: str
    unscored: str
    source: str


ENGINE_CONVENTIONS: Mapping[str, EngineConvention] = {
    "mrgrpo": EngineConvention(
        "mrgrpo (paper convention)", 'mode="na", normalization="paper"', 0, EPS, "none", None,
        "zero_fill, subgroup",
        "as TRL's (in mrgrpo's TRL and verl integrations)",
        "`mrgrpo/core/advantage.py`, `mrgrpo/core/advantage_spec.py`"),
    "trl": EngineConvention(
        "TRL 1.16", 'multi_objective_aggregation="normalize_then_sum"', TRL_DDOF, TRL_EPS, "batch",
        BATCH_RESCALE_EPS, "none",
        "left out of its channel's group statistics; a rollout with no scored reward gets 0",
        "`trl/trainer/grpo_trainer.py` (`GRPOTrainer._generate_and_score_completions`), `trl/trainer/utils.py` "
        "(`nanstd`)"),
    "verl": EngineConvention(
        "verl 0.9.1", 'algorithm.adv_estimator=gdpo, gdpo_reward_keys / gdpo_reward_weights', 1, VERL_EPS,
        "whiten", VERL_WHITEN_EPS, "none",
        "not a number; the whitening spreads it to every advantage of the batch",
        "`verl/trainer/ppo/core_algos.py` (`compute_gdpo_outcome_advantage`, `compute_grpo_outcome_advantage`), "
        "`verl/utils/torch_functional.py` (`masked_whiten`)"),
    "ms-swift": EngineConvention(
        "ms-swift (main, 2026)", 'scale_rewards="gdpo"', 1, 1e-8, "batch", 1e-8, "none",
        "left out of its channel's group statistics; its own standardized value is 0",
        "modelscope/ms-swift at 3602360: `swift/rl_core/advantage.py` (`compute_advantages`), "
        "`swift/utils/torch_utils.py` (`nanstd`)"),
    "gdpo": EngineConvention(
        "NVlabs/GDPO (TRL 0.18 fork)", "apply_gdpo=True", 1, 1e-4, "batch", 1e-4, "none",
        "counted as a reward of 0 (nan_to_num before the group statistics)",
        "NVlabs/GDPO at b080e63: `trl-GDPO/trl-0.18.0-gdpo/trl/trainer/grpo_trainer.py` (the `apply_gdpo` "
        "branch); its verl fork (`verl-GDPO/verl/trainer/ppo/ray_trainer.py`) sums two fixed channels and "
        "whitens like verl"),
}


def whiten_over_tokens(adv, lengths=None, eps: float = VERL_WHITEN_EPS) -> np.ndarray:
    """verl's ``masked_whiten`` of per-rollout advantages repeated over each response's tokens.

    Parameters
    ----------
    adv : array_like, any shape (one advantage per rollout)
    lengths : array_like of the same shape, optional
        Response lengths in tokens (the mask's row sums); default 1 each, a plain batch whitening.
    eps : float
        Added to the variance inside the square root.

    Returns
    -------
    numpy.ndarray, the shape of ``adv``: ``(A - mean) / sqrt(var + eps)``, mean and variance
    (Bessel-corrected over the tokens) weighted by the lengths.
    """
    a = np.asarray(adv, dtype=float)
    n = np.ones_like(a) if lengths is None else np.broadcast_to(np.asarray(lengths, dtype=float), a.shape)
    if (n < 0).any() or n.sum() < 2:
        raise ValueError("lengths must be non-negative and cover at least 2 tokens")
    mean = (a * n).sum() / n.sum()
    var = ((a - mean) ** 2 * n).sum() / n.sum() * n.sum() / (n.sum() - 1)
    return (a - mean) / np.sqrt(var + eps)


def engine_na_advantages(rewards, w, engine: str, lengths=None) -> np.ndarray:
    """An engine's NA advantages of a batch of finite rewards.

    Parameters
    ----------
    rewards : array_like, shape ``(..., m, R)``
        The batch: every leading index is one group.
    w : array_like, shape ``(R,)``
    engine : a key of :data:`ENGINE_CONVENTIONS`
    lengths : array_like, shape ``(..., m)``, optional
        Response lengths, for verl's token-weighted whitening (default: equal).

    Returns
    -------
    numpy.ndarray, shape ``(..., m)``
    """
    if engine not in ENGINE_CONVENTIONS:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINE_CONVENTIONS)}")
    c = ENGINE_CONVENTIONS[engine]
    adv = compute_advantage_batch(check_rewards(rewards), w, "na", c.eps, ddof=c.ddof)
    if c.after_sum == "batch":
        return batch_rescale_advantages(adv, c.rescale_eps)
    if c.after_sum == "whiten":
        return whiten_over_tokens(adv, lengths, c.rescale_eps)
    return adv
