"""``AdvantageSpec``: every setting of the advantage, in one frozen value checked once.

Every path that turns rewards into advantages reads one spec: our trainer
(``GRPOConfig.advantage_spec``), the TRL engine and ``MultiRewardGRPOTrainer``
(:func:`mrgrpo.integrations.trl.advantage_spec_from_trl`) and the verl estimators
(:func:`mrgrpo.integrations.verl.spec_from_config`). The fields:

- ``weights`` ``(R,)``: one finite weight per reward channel, not all 0 (except under ``single``);
- ``mode``: ``"na"``, ``"an"`` or ``"single"``;
- ``adv_ddof``, ``adv_eps``: the within-group std's ddof (0 or 1) and the eps added to it.
  :data:`NORMALIZATIONS` names the two usual pairs, ``"paper"`` ``(0, 1e-8)`` and ``"trl"``
  ``(1, 1e-4)`` (TRL's and most engines' choice): ``AdvantageSpec.from_options(normalization="trl", ...)``;
- ``batch_rescale``: afterwards z-score the advantages over the whole batch (TRL's ``normalize_then_sum``);
- ``conditioning`` (``"none"``, ``"zero_fill"``, ``"subgroup"``), ``gate``, ``conditioned``,
  ``gate_threshold``: gate the conditioned channels on the gate channel first. With
  ``gate_threshold=None`` a rollout passes when its gate reward equals 1, so the gate must be
  binary (0 or 1): :meth:`AdvantageSpec.advantages` refuses any other gate value rather than
  failing every rollout silently;
- ``channel_names``: names for messages and metrics (optional).

:meth:`AdvantageSpec.advantages` computes the advantages of a reward batch ``(..., m, R)`` with
the torch twin of :mod:`mrgrpo.core.advantage` in float64 (numpy in, numpy out; torch in, torch
out; it needs torch either way). In float32 the rounding of a group mean is of the order of the
paper's ``eps = 1e-8`` and could turn a channel that should be exactly 0 into noise.

NaN marks an unscored reward (TRL turns a reward function's ``None`` into NaN) and follows
TRL's rule: it is left out of its channel's group statistics, and a rollout with no scored
reward at all gets advantage 0 and stays out of the batch rescale. In a group that holds a NaN:

- ``"an"``: the rollout's aggregate is ``w . r`` over its scored channels; the group is
  standardized over its rollouts with at least one scored channel;
- ``"na"`` and ``"single"``: each channel is standardized over the rollouts it scored;
- conditioning: a rollout whose gate is unscored does not pass; a passing rollout whose
  conditioned reward is unscored stays unscored (left out of the subgroup mean too), a
  failing one gets the gated value 0.

A group with fewer than 2 scored values in a channel gets no signal from that channel.
"""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Optional

import numpy as np

from mrgrpo.core.advantage import gate_passes
from mrgrpo.core.checks import (as_index_list, check_condition_indices, check_conditioning, check_ddof, check_eps,
                                check_mode, check_threshold, check_weights)
from mrgrpo.core.conventions import EPS, TRL_DDOF, TRL_EPS

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["AdvantageSpec", "AdvantageResult", "NORMALIZATIONS", "rescale_scored"]

#: normalization name -> (``adv_ddof``, ``adv_eps``)
NORMALIZATIONS: Mapping[str, tuple[int, float]] = MappingProxyType({"paper": (0, EPS), "trl": (TRL_DDOF, TRL_EPS)})


def _torch():
    try:
        import torch
    except ModuleNotFoundError:  # pragma: no cover - the [llm] extra installs it
        raise ModuleNotFoundError("AdvantageSpec.advantages needs torch: pip install -e '.[llm]' in a clone "
                                  "(mrgrpo.compute_advantage_batch needs numpy only)") from None
    return torch


@dataclass(frozen=True)
class AdvantageResult:
    """Advantages of a reward batch and what the metrics need (numpy or torch, as the rewards came).

    Attributes
    ----------
    advantages : float64, shape ``(..., m)``, what the loss sees (after any batch rescale; 0
        for an unscorable rollout)
    unscaled : float64, shape ``(..., m)``, before the batch rescale
    rewards : shape ``(..., m, R)``, the rewards as given (NaN = unscored)
    conditioned_rewards : float64, shape ``(..., m, R)``, after conditioning (NaN kept where unscored)
    """

    advantages: Any
    unscaled: Any
    rewards: Any
    conditioned_rewards: Any


@dataclass(frozen=True)
class AdvantageSpec:
    """How rewards become advantages; validated on construction (see the module docstring).

    Parameters
    ----------
    weights : sequence of float, shape ``(R,)``
    mode : {"na", "an", "single"}
    adv_ddof : {0, 1}
    adv_eps : float >= 0
    batch_rescale : bool
    conditioning : {"none", "zero_fill", "subgroup"}
    gate : int
        The gate channel (conditioning only; negative counts from the end).
    conditioned : int or sequence of int
        The gated channel(s), not the gate (conditioning only); stored as a tuple.
    gate_threshold : float, optional
        Gate rule ``gate >= gate_threshold``; None: ``gate == 1`` (a binary gate).
    channel_names : sequence of str
        ``R`` names, or empty.

    Raises
    ------
    ValueError
        naming the field: unknown ``mode``/``conditioning``, weights that are not a finite
        vector or are all 0 (outside ``single``), ``adv_ddof`` not 0 or 1, a negative
        ``adv_eps``, conditioning with fewer than 2 channels, ``gate`` or ``conditioned`` out of
        range, the gate among the conditioned channels, a non-finite ``gate_threshold``. Under
        ``conditioning="none"`` the channel ranges are not used and not checked.
    """

    weights: tuple[float, ...]
    mode: str = "na"
    adv_ddof: int = 0
    adv_eps: float = EPS
    batch_rescale: bool = False
    conditioning: str = "none"
    gate: int = 0
    conditioned: tuple[int, ...] = (1,)
    gate_threshold: Optional[float] = None
    channel_names: tuple[str, ...] = ()

    NORMALIZATIONS: ClassVar[Mapping[str, tuple[int, float]]] = NORMALIZATIONS

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: store the normalized values once
        check_mode(self.mode)
        w = self.weights
        if isinstance(w, (str, bytes)) or np.ndim(w) != 1:
            raise ValueError(f"weights must be a sequence of numbers, one per reward channel, got {w!r}")
        try:
            w = check_weights(w, len(w), name="weights")
        except (TypeError, ValueError) as e:
            raise ValueError(f"weights must be finite numbers, got {self.weights!r} ({e})") from None
        if len(w) < 1:
            raise ValueError("weights is empty: give one weight per reward channel")
        if self.mode != "single" and not np.any(w != 0):
            raise ValueError(f"weights are all 0 ({w.tolist()}): every advantage would be 0 and nothing would "
                             "train; give at least one non-zero weight")
        set_(self, "weights", tuple(float(x) for x in w))
        R = len(w)
        set_(self, "adv_ddof", check_ddof(self.adv_ddof, 2, name="adv_ddof"))
        if isinstance(self.adv_eps, (bool, np.bool_)):
            raise ValueError(f"adv_eps must be a finite number >= 0, got {self.adv_eps!r}")
        set_(self, "adv_eps", check_eps(self.adv_eps, "adv_eps"))
        if not isinstance(self.batch_rescale, (bool, np.bool_)):
            raise ValueError(f"batch_rescale must be True or False, got {self.batch_rescale!r}")
        set_(self, "batch_rescale", bool(self.batch_rescale))
        check_conditioning(self.conditioning, "conditioning")
        names = self.channel_names
        if isinstance(names, (str, bytes)) or (len(names) and len(names) != R):
            raise ValueError(f"channel_names must be {R} names (one per weight), got {names!r}")
        set_(self, "channel_names", tuple(str(n) for n in names))
        set_(self, "gate_threshold", check_threshold(self.gate_threshold, "gate_threshold"))
        if self.conditioning == "none":  # unused: types only
            if isinstance(self.gate, (bool, np.bool_)) or not isinstance(self.gate, (int, np.integer)):
                raise ValueError(f"gate must be an int channel index, got {self.gate!r}")
            conds = as_index_list(self.conditioned, "conditioned")
            if any(isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)) for c in conds):
                raise ValueError(f"conditioned must be an int or a sequence of ints, got {self.conditioned!r}")
            set_(self, "gate", int(self.gate))
            set_(self, "conditioned", tuple(int(c) for c in conds))
            return
        if R < 2:
            raise ValueError(f"conditioning={self.conditioning!r} needs at least 2 reward channels "
                             f"(a gate and a conditioned channel), got {R}")
        gate, conds = check_condition_indices(self.gate, self.conditioned, R, gate_name="gate",
                                              cond_name="conditioned")
        set_(self, "gate", gate)
        set_(self, "conditioned", tuple(conds))

    # ------------------------------------------------------------------ building
    @classmethod
    def from_options(cls, *, normalization: Optional[str] = None, **fields: Any) -> "AdvantageSpec":
        """A spec from keyword options, with the ``normalization`` shortcut.

        Parameters
        ----------
        normalization : {"paper", "trl"}, optional
            Sets ``(adv_ddof, adv_eps)`` to :data:`NORMALIZATIONS` ``[normalization]``; giving
            ``adv_ddof`` or ``adv_eps`` too is an error unless they agree.
        **fields
            The fields of :class:`AdvantageSpec` (``weights`` required).
        """
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(fields) - set(known))
        if unknown:
            raise ValueError(f"unknown advantage setting(s) {unknown}; the settings are normalization, "
                             + ", ".join(known))
        if "weights" not in fields:
            raise ValueError("weights is required: one weight per reward channel")
        if normalization is not None:
            if not isinstance(normalization, str) or normalization not in NORMALIZATIONS:
                raise ValueError(f"unknown normalization {normalization!r}; choose one of {tuple(NORMALIZATIONS)}")
            pair = dict(zip(("adv_ddof", "adv_eps"), NORMALIZATIONS[normalization]))
            for name, value in pair.items():
                if name in fields and fields[name] != value:
                    raise ValueError(f"normalization={normalization!r} sets {name} = {value:g}, and {name} = "
                                     f"{fields[name]!r} was given too: give one of them")
            fields.update(pair)
        return cls(**fields)

    def replace(self, **changes: Any) -> "AdvantageSpec":
        """A copy with some fields changed, checked again."""
        return dataclasses.replace(self, **changes)

    @property
    def R(self) -> int:
        """The number of reward channels."""
        return len(self.weights)

    @property
    def normalization(self) -> Optional[str]:
        """The name of ``(adv_ddof, adv_eps)`` in :data:`NORMALIZATIONS`, or None for another pair."""
        return next((k for k, v in NORMALIZATIONS.items() if v == (self.adv_ddof, self.adv_eps)), None)

    @property
    def names(self) -> tuple[str, ...]:
        """``channel_names``, or ``r0, r1, ...`` when none were given."""
        return self.channel_names or tuple(f"r{k}" for k in range(self.R))

    def check_channels(self, n_channels: int) -> "AdvantageSpec":
        """``ValueError`` unless the reward function's channel count equals ``len(weights)``; returns ``self``."""
        if n_channels != self.R:
            raise ValueError(f"weights has {self.R} entries but the reward function has {n_channels} channels")
        return self

    # ------------------------------------------------------------------ computing
    def advantages(self, rewards) -> AdvantageResult:
        """The advantages of a reward batch, with NaN as unscored (see the module docstring).

        Parameters
        ----------
        rewards : numpy array, torch tensor or nested list, shape ``(..., m, R)``
            Groups of ``m >= 2`` rollouts along axis -2. NaN marks an unscored reward; any
            other non-finite value is an error.

        Returns
        -------
        AdvantageResult
            torch tensors (float64, on the rewards' device) for a torch input, else numpy arrays.

        Raises
        ------
        ValueError
            a wrong shape, an infinite reward, or (``gate_threshold=None`` under conditioning)
            a gate reward other than 0 and 1: the gate channel and the values seen are named.
        """
        torch_mod = sys.modules.get("torch")
        is_torch = torch_mod is not None and isinstance(rewards, torch_mod.Tensor)
        torch = _torch()
        given = rewards if is_torch else np.asarray(rewards, dtype=float)
        r = (given.detach() if is_torch else torch.from_numpy(given)).double()
        if r.ndim < 2 or r.shape[-1] != self.R or r.shape[-2] < 2:
            raise ValueError(f"rewards must have shape (..., m, R={self.R}) with m >= 2, got {tuple(r.shape)}")
        lead, m = tuple(r.shape[:-2]), r.shape[-2]
        r = r.reshape(-1, m, self.R)
        if bool(torch.isinf(r).any()):
            bad = tuple(int(i) for i in torch.nonzero(torch.isinf(r))[0].tolist())
            raise ValueError(f"rewards hold an infinite value at (group, rollout, channel) {bad}")
        self._check_gate(r)
        with torch.no_grad():
            adv, unscaled, rc = _grouped(r, self)
        out = [x.reshape(*lead, m) for x in (adv, unscaled)] + [rc.reshape(*lead, m, self.R)]
        if not is_torch:
            out = [x.numpy() for x in out]
        return AdvantageResult(out[0], out[1], given, out[2])

    def _check_gate(self, r: "torch.Tensor") -> None:
        """Under ``gate_threshold=None`` the gate passes at exactly 1: refuse a gate that is not 0/1."""
        if self.conditioning == "none" or self.gate_threshold is not None:
            return
        import torch

        g = r[..., self.gate]
        bad = ~torch.isnan(g) & (g != 0) & (g != 1)
        if not bool(bad.any()):
            return
        seen = sorted(set(torch.unique(g[bad]).tolist()))
        shown = ", ".join(f"{v:g}" for v in seen[:6]) + (", ..." if len(seen) > 6 else "")
        label = (f"{self.channel_names[self.gate]!r} (channel {self.gate})" if self.channel_names
                 else f"channel {self.gate}")
        raise ValueError(f"gate {label} is not binary: with gate_threshold None a rollout passes only when its gate "
                         f"reward is exactly 1, and the gate returned {shown}; make the gate reward 0 or 1, or set "
                         "gate_threshold (a rollout passes when gate >= gate_threshold)")


def rescale_scored(adv: "torch.Tensor", scored: "torch.Tensor") -> "torch.Tensor":
    """TRL's batch rescale (:func:`mrgrpo.core.advantage_torch.batch_rescale_advantages`) over the scored rollouts.

    ``adv`` and the bool mask ``scored`` have the same shape; unscored rollouts get 0.
    """
    from mrgrpo.core import advantage_torch as adv_t

    torch = _torch()
    out = torch.zeros_like(adv)
    if int(scored.sum()) >= 2:
        out[scored] = adv_t.batch_rescale_advantages(adv[scored])
    return out


# ---------------------------------------------------------------------- the computation (torch, float64)
def _condition(r: "torch.Tensor", s: AdvantageSpec) -> "torch.Tensor":
    from mrgrpo.core import advantage_torch as adv_t

    return adv_t.apply_conditioning(r, s.gate, list(s.conditioned), s.conditioning, s.gate_threshold)


def _condition_with_unscored(r: "torch.Tensor", s: AdvantageSpec) -> "torch.Tensor":
    """Conditioning of one group ``(m, R)`` that holds NaN (see the module docstring)."""
    import torch

    from mrgrpo.core import advantage_torch as adv_t

    out = r.clone()
    g = r[:, s.gate]
    t = s.gate_threshold
    fail = 0.0 if t is None else min(float(t), 0.0) * 2.0 - 1.0  # a gate value that never passes
    passes = torch.from_numpy(gate_passes(np.nan_to_num(g.cpu().numpy(), nan=fail), t)).to(r.device)
    for c in s.conditioned:
        rc = r[:, c]
        unscored = torch.isnan(g) | torch.isnan(rc)
        pair = torch.stack([torch.where(unscored, torch.full_like(g, fail), g),
                            torch.nan_to_num(rc, nan=0.0)], dim=-1)
        new = adv_t.apply_conditioning(pair, 0, 1, s.conditioning, t)[:, 1]
        out[:, c] = torch.where(torch.isnan(rc) & passes, torch.full_like(new, float("nan")), new)
    return out


def _group_with_unscored(r: "torch.Tensor", s: AdvantageSpec) -> "torch.Tensor":
    """Advantages ``(m,)`` of one group ``(m, R)`` that holds NaN, each statistic over scored values."""
    import torch

    from mrgrpo.core import advantage_torch as adv_t

    m = r.shape[0]
    adv = torch.zeros(m, dtype=r.dtype, device=r.device)
    if s.mode == "an":
        rows = ~torch.isnan(r).all(dim=1)
        if int(rows.sum()) >= 2:
            adv[rows] = adv_t.compute_advantage_batch(torch.nan_to_num(r[rows], nan=0.0), s.weights, "an",
                                                      s.adv_eps, ddof=s.adv_ddof)
        return adv
    channels = [0] if s.mode == "single" else [k for k in range(s.R) if s.weights[k] != 0.0]
    for k in channels:
        rows = ~torch.isnan(r[:, k])
        if int(rows.sum()) >= 2:  # one channel alone: NA with weight w_k is w_k times its z-score
            w_k = 1.0 if s.mode == "single" else s.weights[k]
            adv[rows] += adv_t.compute_advantage_batch(r[rows][:, k:k + 1], [w_k], "na", s.adv_eps, ddof=s.adv_ddof)
    return adv


def _grouped(r: "torch.Tensor", s: AdvantageSpec) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    """(advantages, unscaled, conditioned rewards) of float64 rewards ``(G, m, R)`` without inf."""
    import torch

    from mrgrpo.core import advantage_torch as adv_t

    nan = torch.isnan(r)
    if not bool(nan.any()):
        rc = r if s.conditioning == "none" else _condition(r, s)
        unscaled = adv_t.compute_advantage_batch(rc, s.weights, s.mode, s.adv_eps, ddof=s.adv_ddof)
        final = adv_t.batch_rescale_advantages(unscaled) if s.batch_rescale else unscaled
        return final, unscaled, rc
    unscaled = torch.zeros(r.shape[:2], dtype=r.dtype, device=r.device)
    rc_all = r.clone()
    clean = ~nan.any(dim=(1, 2))
    if bool(clean.any()):
        rc = r[clean] if s.conditioning == "none" else _condition(r[clean], s)
        rc_all[clean] = rc
        unscaled[clean] = adv_t.compute_advantage_batch(rc, s.weights, s.mode, s.adv_eps, ddof=s.adv_ddof)
    for gi in torch.nonzero(~clean).flatten().tolist():
        rg = r[gi] if s.conditioning == "none" else _condition_with_unscored(r[gi], s)
        rc_all[gi] = rg
        unscaled[gi] = _group_with_unscored(rg, s)
    scored = ~nan.all(dim=2)  # a rollout with at least one scored reward
    unscaled = torch.where(scored, unscaled, torch.zeros_like(unscaled))
    final = rescale_scored(unscaled, scored) if s.batch_rescale else unscaled
    return final, unscaled, rc_all
