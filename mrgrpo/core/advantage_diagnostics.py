"""What a batch of rewards and advantages says about the learning signal (torch): the logged metrics.

:func:`reward_metrics` summarizes one step of fully scored rewards ``(P, m, R)`` and the
``(P, m)`` advantages the update used:

- ``reward/<channel>`` and ``reward/aggregate`` (``w . r``): batch means;
- ``adv_mean``, ``adv_std``: over all ``P m`` advantages;
- ``influence/<channel>``: the within-group covariance of the advantage with the
  channel's standardized reward, ``Cov(A, z_l)`` (the paper's Prop 1 quantity),
  averaged over groups; under NA it is about ``sum_k w_k C_kl``, under AN it
  grows with the channel's spread;
- ``const_frac/<channel>``: the fraction of groups where the channel is constant
  (it then contributes nothing to NA).

:func:`advantage_metrics` is what an engine logs, from an
:class:`~mrgrpo.core.advantage_spec.AdvantageResult` (unscored rewards, NaN, allowed). Its
influence, constant fractions and aggregate describe the rewards the estimator used, after
conditioning (``AdvantageResult.conditioned_rewards``): with a gate that never passes, a
zero-filled channel is constant and has influence 0. The raw rewards' values keep their own
names (``raw/...``). Both trainers log these: mrgrpo's (:mod:`mrgrpo.train.trainer`) and TRL's
(:mod:`mrgrpo.integrations.trl`); verl's estimators too (:mod:`mrgrpo.integrations.verl`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from mrgrpo.core.advantage import gate_passes
from mrgrpo.core.advantage_spec import AdvantageResult, AdvantageSpec
from mrgrpo.core.advantage_torch import group_standardize
from mrgrpo.core.conventions import EPS

__all__ = ["reward_metrics", "step_metrics", "advantage_metrics"]


def reward_metrics(rewards: torch.Tensor, adv: torch.Tensor, weights: torch.Tensor,
                   names: Sequence[str], eps: float = EPS) -> dict[str, float]:
    """Reward, advantage and influence summaries of one step.

    Parameters
    ----------
    rewards : shape ``(P, m, R)``, the raw (unconditioned) rewards
    adv : shape ``(P, m)``
    weights : shape ``(R,)``
    names : R channel names
    eps : the eps of the standardization behind ``influence/<channel>``
    """
    r = rewards.double()
    a = adv.double()
    out: dict[str, float] = {}
    ch_mean = r.mean(dim=(0, 1))
    for k, name in enumerate(names):
        out[f"reward/{name}"] = float(ch_mean[k])
    out["reward/aggregate"] = float((r @ weights.double()).mean())
    out["adv_mean"] = float(a.mean())
    out["adv_std"] = float(a.std(unbiased=False))
    z = group_standardize(r.transpose(1, 2), eps)  # (P, R, m)
    a_c = a - a.mean(dim=1, keepdim=True)
    infl = (z * a_c.unsqueeze(1)).mean(dim=2).mean(dim=0)  # (R,)
    const = (r.amax(dim=1) == r.amin(dim=1)).double().mean(dim=0)  # (R,)
    for k, name in enumerate(names):
        out[f"influence/{name}"] = float(infl[k])
        out[f"const_frac/{name}"] = float(const[k])
    return out


def step_metrics(spec: AdvantageSpec, rewards: torch.Tensor, adv: torch.Tensor, names: Sequence[str],
                 eps: float = EPS) -> dict[str, float]:
    """:func:`reward_metrics` of a fully scored step, on the rewards ``spec`` used (what mrgrpo's trainer logs).

    Without conditioning it is :func:`reward_metrics` itself. Under conditioning ``influence/<name>``,
    ``const_frac/<name>`` and ``reward/aggregate`` are those of the conditioned rewards, the raw
    rewards' values are ``raw/...`` and each conditioned channel's mean after conditioning is
    ``conditioned/reward/<name>``; ``reward/<name>`` stays the raw channel mean.

    Parameters
    ----------
    spec : AdvantageSpec
    rewards : shape ``(P, m, R)``, the raw rewards
    adv : shape ``(P, m)``, the advantages ``spec`` computed from them
    names : R channel names
    eps : as in :func:`reward_metrics`
    """
    w = torch.tensor(spec.weights, dtype=torch.float64)
    out = reward_metrics(rewards, adv, w, names, eps)
    if spec.conditioning == "none":
        return out
    rc = spec.advantages(rewards.double()).conditioned_rewards
    used = reward_metrics(rc, adv, w, names, eps)
    for key in [k for k in out if k.startswith(("influence/", "const_frac/")) or k == "reward/aggregate"]:
        out[f"raw/{key}"], out[key] = out[key], used[key]
    for c in spec.conditioned:
        out[f"conditioned/reward/{names[c]}"] = used[f"reward/{names[c]}"]
    return out


def advantage_metrics(result: AdvantageResult, spec: AdvantageSpec) -> dict[str, float]:
    """Per-channel metrics of one batch, for an engine's logs.

    - ``reward/<name>``: the channel's mean over its scored rewards, as the reward function returned them;
    - ``reward/aggregate``, ``reward/aggregate_std``: mean and std (ddof 1) of ``w . r`` over the rollouts
      with a scored reward (unscored channels left out of the sum, TRL's rule), on the rewards after
      conditioning;
    - ``adv_mean``, ``adv_std``, ``influence/<name>``, ``const_frac/<name>``: :func:`reward_metrics` on
      the fully scored groups, with the conditioned rewards and the advantages the loss sees;
    - ``degenerate_frac``: the fraction of groups whose advantages are all 0 (before any batch
      rescale): no learning signal;
    - ``unscored_frac``: the fraction of rewards that are ``None`` (NaN);
    - under conditioning: ``gate_pass_rate`` (the fraction of scored gate rewards that pass),
      ``conditioned/reward/<name>`` (each conditioned channel's mean after conditioning) and the raw
      rewards' ``raw/reward/aggregate``, ``raw/influence/<name>``, ``raw/const_frac/<name>``.

    Parameters
    ----------
    result : AdvantageResult
        Of :meth:`AdvantageSpec.advantages` on rewards ``(..., m, R)`` (numpy or torch).
    spec : AdvantageSpec
        The spec that computed it; ``spec.names`` name the channels.
    """
    r = torch.as_tensor(result.rewards).detach().double()
    m = r.shape[-2]
    r = r.reshape(-1, m, spec.R)
    rc = torch.as_tensor(result.conditioned_rewards).detach().double().reshape(-1, m, spec.R)
    adv = torch.as_tensor(result.advantages).detach().reshape(-1, m)
    unscaled = torch.as_tensor(result.unscaled).reshape(-1, m)
    w = torch.tensor(spec.weights, dtype=torch.float64, device=r.device)
    nan = torch.isnan(r)
    clean = ~nan.any(dim=(1, 2))
    scored = ~nan.all(dim=2)  # rollouts with at least one scored reward
    conditioned = spec.conditioning != "none"
    out: dict[str, float] = {}
    for k, name in enumerate(spec.names):
        out[f"reward/{name}"] = float(torch.nanmean(r[..., k]))
    for prefix, x in [("", rc), ("raw/", r)][:2 if conditioned else 1]:
        agg = torch.nansum(x * w, dim=-1)[scored]
        out[f"{prefix}reward/aggregate"] = float(agg.mean()) if agg.numel() else float("nan")
        if not prefix:
            out["reward/aggregate_std"] = float(agg.std()) if agg.numel() > 1 else float("nan")
        if bool(clean.any()):
            got = reward_metrics(x[clean], adv[clean], w, spec.names)
            out.update({f"{prefix}{k}": v for k, v in got.items() if not k.startswith("reward/")
                        and (not prefix or not k.startswith("adv_"))})
    out["degenerate_frac"] = float((unscaled == 0).all(dim=1).double().mean())
    out["unscored_frac"] = float(nan.double().mean())
    if conditioned:
        for c in spec.conditioned:
            out[f"conditioned/reward/{spec.names[c]}"] = float(torch.nanmean(rc[..., c]))
        g = r[..., spec.gate]
        ok = ~torch.isnan(g)
        if bool(ok.any()):
            out["gate_pass_rate"] = float(np.mean(gate_passes(g[ok].cpu().numpy(), spec.gate_threshold)))
    return out
