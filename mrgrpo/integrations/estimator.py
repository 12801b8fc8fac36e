"""mrgrpo's advantages on an engine's flat reward batch (shared by the TRL and verl integrations).

Distributed engines hand the advantage step one flat tensor of rewards, ``(N, R)`` with
``N = G m`` rows stored group by group (TRL), or rows with a group id (verl), and mark an
unscored reward with NaN (TRL turns a reward function's ``None`` into NaN). This module
turns such a batch into mrgrpo's advantages with the torch twin of :mod:`mrgrpo.core.advantage`
(``apply_conditioning`` then ``compute_advantage_batch``), so the engines use the formulas
of the rest of the package and nothing else. It works in float64 whatever the engine's dtype:
in float32 the rounding of a group mean is of the order of the paper's ``eps = 1e-8`` and can
turn a channel that should be exactly 0 (say, subgroup-centred equal rewards) into noise.

Settings (:class:`AdvantageSettings`) are checked once, before an engine loads a model:

- ``mode``: ``"na"``, ``"an"`` or ``"single"``;
- ``convention``: ``"paper"`` (within-group std with ddof 0, ``eps = 1e-8`` added to it) or
  ``"trl"`` (ddof 1, ``eps = 1e-4``, TRL's and most engines' choice);
- ``batch_rescale``: afterwards z-score the advantages over the whole batch, as TRL's
  ``normalize_then_sum`` always does;
- ``conditioning`` (``"none"``, ``"zero_fill"``, ``"subgroup"``), ``gate``, ``conditioned``,
  ``threshold``: gate the conditioned channels on the gate channel first.

Unscored rewards (NaN) follow TRL's rule: a reward that was not scored is left out of its
channel's group statistics, and a rollout with no scored reward at all gets advantage 0 and
stays out of the batch rescale. In detail, in a group that holds a NaN:

- ``"an"``: the rollout's aggregate is ``w . r`` over its scored channels; the group is
  standardized over its rollouts with at least one scored channel;
- ``"na"`` and ``"single"``: each channel is standardized over the rollouts it scored;
- conditioning: a rollout whose gate is unscored does not pass; a passing rollout whose
  conditioned reward is unscored stays unscored (left out of the subgroup mean too), a
  failing one gets the gated value 0.

A group with fewer than 2 scored values in a channel gets no signal from that channel.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from mrgrpo.core import advantage_torch as adv_t
from mrgrpo.core.advantage import gate_passes
from mrgrpo.core.checks import check_condition_indices, check_threshold, check_weights
from mrgrpo.core.conventions import CONDITIONING, EPS, MODES, TRL_DDOF, TRL_EPS

__all__ = ["CONVENTIONS", "AdvantageSettings", "AdvantageResult", "engine_advantages", "grouped_advantages",
           "rescale_scored", "advantage_metrics", "settings_kwargs"]

#: convention name -> (ddof of the within-group std, eps added to it)
CONVENTIONS: dict[str, tuple[int, float]] = {"paper": (0, EPS), "trl": (TRL_DDOF, TRL_EPS)}


def _check_choice(name: str, value, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


@dataclass(frozen=True)
class AdvantageSettings:
    """How an engine's rewards become advantages; validated on construction.

    Parameters
    ----------
    weights : sequence of float, shape ``(R,)``
        One finite weight per reward function (channel).
    mode : {"na", "an", "single"}
    convention : {"paper", "trl"}
    batch_rescale : bool
    conditioning : {"none", "zero_fill", "subgroup"}
    gate : int
        The gate channel (conditioning only).
    conditioned : int or sequence of int
        The gated channel(s), not the gate (conditioning only).
    threshold : float, optional
        Gate rule ``gate >= threshold``; default ``gate == 1``.

    Raises
    ------
    ValueError
        naming the field: unknown ``mode``/``convention``/``conditioning``, weights that are
        not a finite vector, conditioning with fewer than 2 channels, ``gate`` or
        ``conditioned`` out of range, the gate among the conditioned channels. Under
        ``conditioning="none"`` the gate fields are not used and not checked.
    """

    weights: tuple[float, ...]
    mode: str = "na"
    convention: str = "paper"
    batch_rescale: bool = False
    conditioning: str = "none"
    gate: int = 0
    conditioned: int | Sequence[int] = (1,)
    threshold: float | None = None
    names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        _check_choice("mode", self.mode, MODES)
        _check_choice("convention", self.convention, CONVENTIONS)
        _check_choice("conditioning", self.conditioning, CONDITIONING)
        if not isinstance(self.batch_rescale, (bool, np.bool_)):
            raise ValueError(f"batch_rescale must be True or False, got {self.batch_rescale!r}")
        if isinstance(self.weights, (str, bytes)) or np.ndim(self.weights) != 1:
            raise ValueError(f"weights must be a sequence of numbers, one per reward channel, got {self.weights!r}")
        try:
            w = check_weights(self.weights, len(self.weights), name="weights")
        except (TypeError, ValueError) as e:
            raise ValueError(f"weights must be finite numbers, got {self.weights!r} ({e})") from None
        R = len(w)
        if R < 1:
            raise ValueError("weights is empty: give one weight per reward function")
        set_ = object.__setattr__  # frozen dataclass: store the normalized values once
        set_(self, "weights", tuple(float(x) for x in w))
        set_(self, "batch_rescale", bool(self.batch_rescale))
        if isinstance(self.names, (str, bytes)) or (self.names and len(self.names) != R):
            raise ValueError(f"names must be {R} channel names, got {self.names!r}")
        set_(self, "names", tuple(str(n) for n in self.names))
        if isinstance(self.conditioned, (str, bytes)):
            raise ValueError(f"conditioned must be an int or a sequence of ints, got {self.conditioned!r}")
        if self.conditioning == "none":
            return
        if R < 2:
            raise ValueError(f"conditioning={self.conditioning!r} needs at least 2 reward functions "
                             f"(a gate and a conditioned channel), got {R}")
        try:
            gate, conds = check_condition_indices(self.gate, self.conditioned, R)
            threshold = check_threshold(self.threshold)
        except ValueError as e:
            raise ValueError(f"gate / conditioned / threshold: {e}") from None
        set_(self, "gate", gate)
        set_(self, "conditioned", tuple(conds))
        set_(self, "threshold", threshold)

    @property
    def R(self) -> int:
        return len(self.weights)

    @property
    def ddof(self) -> int:
        return CONVENTIONS[self.convention][0]

    @property
    def eps(self) -> float:
        return CONVENTIONS[self.convention][1]


def settings_kwargs(config) -> dict:
    """The estimator keyword arguments of an engine run from a :class:`mrgrpo.train.GRPOConfig`-like object.

    Reads ``mode``, ``adv_ddof``, ``adv_eps``, ``batch_rescale``, ``conditioning``, ``gate_idx``,
    ``cond_idx`` and ``cond_threshold``; returns ``mode``, ``convention``, ``batch_rescale``,
    ``conditioning``, ``gate``, ``conditioned``, ``threshold`` (the keyword arguments of
    ``MultiRewardGRPOTrainer`` and of :class:`AdvantageSettings`; the weights travel separately,
    as TRL's ``reward_weights``).

    Raises
    ------
    ValueError
        ``(adv_ddof, adv_eps)`` is neither convention's pair (the engines support those two).
    """
    pair = (config.adv_ddof, float(config.adv_eps))
    names = [name for name, conv in CONVENTIONS.items() if conv == pair]
    if not names:
        raise ValueError(f"adv_ddof = {pair[0]}, adv_eps = {pair[1]:g} is neither convention of the engines: "
                         + ", ".join(f"{n}: adv_ddof = {d}, adv_eps = {e:g}" for n, (d, e) in CONVENTIONS.items()))
    cond = config.cond_idx
    return dict(mode=config.mode, convention=names[0], batch_rescale=bool(config.batch_rescale),
                conditioning=config.conditioning, gate=config.gate_idx,
                conditioned=(cond,) if isinstance(cond, int) else tuple(cond), threshold=config.cond_threshold)


@dataclass(frozen=True)
class AdvantageResult:
    """Advantages of a batch and what the metrics need.

    Attributes
    ----------
    advantages : float64, shape ``(G, m)``, what the loss sees (after any batch rescale; 0
        for an unscorable rollout)
    unscaled : float64, shape ``(G, m)``, before the batch rescale
    rewards : shape ``(G, m, R)``, the rewards as given (NaN = unscored)
    """

    advantages: torch.Tensor
    unscaled: torch.Tensor
    rewards: torch.Tensor


def _condition_with_unscored(r: torch.Tensor, s: AdvantageSettings) -> torch.Tensor:
    """Conditioning of one group ``(m, R)`` that holds NaN (see the module docstring)."""
    out = r.clone()
    g = r[:, s.gate]
    fail = 0.0 if s.threshold is None else min(float(s.threshold), 0.0) * 2.0 - 1.0
    passes = torch.from_numpy(gate_passes(np.nan_to_num(g.cpu().numpy(), nan=fail), s.threshold)).to(r.device)
    for c in s.conditioned:
        rc = r[:, c]
        unscored = torch.isnan(g) | torch.isnan(rc)
        pair = torch.stack([torch.where(unscored, torch.full_like(g, fail), g),
                            torch.nan_to_num(rc, nan=0.0)], dim=-1)
        new = adv_t.apply_conditioning(pair, 0, 1, s.conditioning, s.threshold)[:, 1]
        out[:, c] = torch.where(torch.isnan(rc) & passes, torch.full_like(new, float("nan")), new)
    return out


def _group_with_unscored(r: torch.Tensor, s: AdvantageSettings) -> torch.Tensor:
    """Advantages ``(m,)`` of one group ``(m, R)`` that holds NaN, each statistic over scored values."""
    m = r.shape[0]
    adv = torch.zeros(m, dtype=r.dtype, device=r.device)
    if s.mode == "an":
        rows = ~torch.isnan(r).all(dim=1)
        if int(rows.sum()) >= 2:
            adv[rows] = adv_t.compute_advantage_batch(torch.nan_to_num(r[rows], nan=0.0), s.weights, "an",
                                                      s.eps, ddof=s.ddof)
        return adv
    channels = [0] if s.mode == "single" else [k for k in range(s.R) if s.weights[k] != 0.0]
    for k in channels:
        rows = ~torch.isnan(r[:, k])
        if int(rows.sum()) >= 2:  # one channel alone: NA with weight w_k is w_k times its z-score
            w_k = 1.0 if s.mode == "single" else s.weights[k]
            adv[rows] += adv_t.compute_advantage_batch(r[rows][:, k:k + 1], [w_k], "na", s.eps, ddof=s.ddof)
    return adv


def grouped_advantages(rewards: torch.Tensor, settings: AdvantageSettings) -> AdvantageResult:
    """mrgrpo advantages of grouped rewards.

    Parameters
    ----------
    rewards : torch.Tensor, shape ``(G, m, R)``
        NaN marks an unscored reward; any other non-finite value is an error.
    settings : AdvantageSettings

    Returns
    -------
    AdvantageResult
    """
    s = settings
    if rewards.ndim != 3 or rewards.shape[-1] != s.R:
        raise ValueError(f"rewards must have shape (G, m, R={s.R}), got {tuple(rewards.shape)}")
    r = rewards.detach().double()  # float32 rounding is of the order of eps = 1e-8: work in float64
    if torch.isinf(r).any():
        bad = tuple(int(i) for i in torch.nonzero(torch.isinf(r))[0].tolist())
        raise ValueError(f"rewards hold an infinite value at (group, rollout, channel) {bad}")
    nan = torch.isnan(r)
    with torch.no_grad():
        if not bool(nan.any()):
            rc = r if s.conditioning == "none" else adv_t.apply_conditioning(
                r, s.gate, list(s.conditioned), s.conditioning, s.threshold)
            unscaled = adv_t.compute_advantage_batch(rc, s.weights, s.mode, s.eps, ddof=s.ddof)
            final = adv_t.batch_rescale_advantages(unscaled) if s.batch_rescale else unscaled
            return AdvantageResult(final, unscaled, rewards)
        unscaled = torch.zeros(r.shape[:2], dtype=r.dtype, device=r.device)
        clean = ~nan.any(dim=(1, 2))
        if bool(clean.any()):
            rc = r[clean] if s.conditioning == "none" else adv_t.apply_conditioning(
                r[clean], s.gate, list(s.conditioned), s.conditioning, s.threshold)
            unscaled[clean] = adv_t.compute_advantage_batch(rc, s.weights, s.mode, s.eps, ddof=s.ddof)
        for gi in torch.nonzero(~clean).flatten().tolist():
            rg = r[gi] if s.conditioning == "none" else _condition_with_unscored(r[gi], s)
            unscaled[gi] = _group_with_unscored(rg, s)
        scored = ~nan.all(dim=2)  # a rollout with at least one scored reward
        unscaled = torch.where(scored, unscaled, torch.zeros_like(unscaled))
        final = rescale_scored(unscaled, scored) if s.batch_rescale else unscaled
    return AdvantageResult(final, unscaled, rewards)


def rescale_scored(adv: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
    """TRL's batch rescale (:func:`mrgrpo.core.advantage_torch.batch_rescale_advantages`) over the scored rollouts.

    ``adv`` and the bool mask ``scored`` have the same shape; unscored rollouts get 0.
    """
    out = torch.zeros_like(adv)
    if int(scored.sum()) >= 2:
        out[scored] = adv_t.batch_rescale_advantages(adv[scored])
    return out


def engine_advantages(rewards: torch.Tensor, m: int, settings: AdvantageSettings) -> AdvantageResult:
    """:func:`grouped_advantages` of a flat batch ``(N, R)``, rows stored group by group (``N = G m``)."""
    if rewards.ndim != 2 or rewards.shape[0] % m:
        raise ValueError(f"rewards must have shape (G*m, R) with m = {m}, got {tuple(rewards.shape)}")
    return grouped_advantages(rewards.view(-1, m, rewards.shape[1]), settings)


def advantage_metrics(result: AdvantageResult, settings: AdvantageSettings) -> dict[str, float]:
    """Per-channel metrics of one batch, for an engine's logs.

    - ``reward/<name>``: the channel's mean over its scored rewards;
    - ``reward/aggregate``, ``adv_mean``, ``adv_std``, ``influence/<name>`` (the
      within-group ``Cov(A, z_l)``), ``const_frac/<name>``: :func:`mrgrpo.train.metrics.reward_metrics`
      on the fully scored groups, with the advantages the loss sees;
    - ``degenerate_frac``: the fraction of groups whose advantages are all 0 (before any
      batch rescale): no learning signal;
    - ``unscored_frac``: the fraction of rewards that are ``None`` (NaN);
    - ``gate_pass_rate`` (under conditioning): the fraction of scored gate rewards that pass.
    """
    from mrgrpo.train.metrics import reward_metrics

    r = result.rewards.detach()
    names = settings.names or tuple(f"r{k}" for k in range(settings.R))
    nan = torch.isnan(r)
    clean = ~nan.any(dim=(1, 2))
    out: dict[str, float] = {}
    if bool(clean.any()):
        out.update(reward_metrics(r[clean], result.advantages[clean].detach(),
                                  torch.tensor(settings.weights), names))
    for k, name in enumerate(names):
        out[f"reward/{name}"] = float(torch.nanmean(r[..., k].double()))
    out["degenerate_frac"] = float((result.unscaled == 0).all(dim=1).double().mean())
    out["unscored_frac"] = float(nan.double().mean())
    if settings.conditioning != "none":
        g = r[..., settings.gate]
        scored = ~torch.isnan(g)
        if bool(scored.any()):
            out["gate_pass_rate"] = float(gate_passes(g[scored].cpu().double().numpy(), settings.threshold).mean())
    return out
