"""verl integration: mrgrpo's estimators as registered verl advantage estimators.

Importing this module registers three estimators in verl's registry
(``verl.trainer.ppo.core_algos.register_adv_est``):

==================  =====================================================
``mrgrpo_na``       normalize each channel within its group, then ``w``-sum
``mrgrpo_an``       ``w``-sum the channels, then normalize within the group
``mrgrpo_single``   channel 0 alone, normalized within its group
==================  =====================================================

They take verl's ``gdpo`` signature (``token_level_rewards, response_mask, index, epsilon,
norm_adv_by_std_in_grpo, config, non_tensor_batch, batch``) and read the per-channel rewards
as ``gdpo`` does: one entry of ``non_tensor_batch`` per key of ``algorithm.gdpo_reward_keys``
(the keys of the dict your ``compute_score`` returns), weights from
``algorithm.gdpo_reward_weights`` (default all 1). mrgrpo's own options sit in a nested
``algorithm.mrgrpo`` dict::

    algorithm:
      adv_estimator: mrgrpo_na
      gdpo_reward_keys: [correctness, length_bonus, format]
      gdpo_reward_weights: [1.0, 1.0, 0.5]
      mrgrpo:
        normalization: paper     # paper (ddof 0, eps 1e-8) | trl (ddof 1, eps 1e-4); or adv_ddof, adv_eps
        batch_rescale: false     # true: z-score over the batch afterwards (TRL's NA)
        conditioning: zero_fill  # none | zero_fill | subgroup
        gate: correctness        # a key or an index
        conditioned: [length_bonus]
        gate_threshold: null     # null: the gate passes at 1 (a 0/1 gate); a number: gate >= it

Groups are the rows that share a ``uid`` (``index``); groups may differ in size; a group of
one rollout gets advantage 0 (no baseline) and stays out of a batch rescale. A ``None`` channel reward is unscored (see
:mod:`mrgrpo.core.advantage_spec`). :func:`spec_from_config` reads these settings into one
:class:`~mrgrpo.core.advantage_spec.AdvantageSpec`. verl's ``epsilon`` argument is not used: the
normalization (``adv_eps``) sets eps. ``norm_adv_by_std_in_grpo=False`` (Dr. GRPO) is refused: every mrgrpo
estimator standardizes within groups.

**verl 0.9.1 forwards ``non_tensor_batch`` only to ``gdpo``.** Its
``ray_trainer.compute_advantage`` passes ``non_tensor_batch``/``batch`` to the estimator only
when ``adv_estimator == "gdpo"``, so :func:`install` also wraps that function (and the v1
trainer's reference to it) to forward them to the ``mrgrpo_*`` estimators too, and wraps its
``compute_data_metrics`` to log what the estimators measured (:func:`batch_metrics`, as
``mrgrpo/<key>/mean|std|max|min``, ``mrgrpo/influence/<key>``, ``mrgrpo/const_frac/<key>``,
``mrgrpo/degenerate_frac``, ``mrgrpo/gate_pass_rate``: what ``gdpo`` logs as ``gdpo/<key>/*``, and more).

**Reaching every process.** A verl run picks all of this up through verl's plugin hooks, in the
driver and in every Ray worker, since each runs ``import verl``:

- the ``verl.plugins`` entry point, present wherever mrgrpo is installed: install it on every
  node of the Ray cluster, e.g. ``pip install -e '.[verl]'`` from a clone (or
  ``pip install 'mrgrpo[verl] @ git+<repository URL>'``), before ``ray start``;
- or ``VERL_USE_EXTERNAL_MODULES=mrgrpo.integrations.verl_plugin`` in the environment of every
  process: verl 0.9.1 does not forward it to workers of a cluster started beforehand, so set it
  where each node starts (``VERL_USE_EXTERNAL_MODULES=mrgrpo.integrations.verl_plugin ray start
  ...``) or in the job's runtime environment (``ray job submit --runtime-env-json
  '{"env_vars": {"VERL_USE_EXTERNAL_MODULES": "mrgrpo.integrations.verl_plugin"}}' -- python3 -m
  verl.trainer.main_ppo ...``).

verl logs a plugin that fails to import at DEBUG level only; :mod:`mrgrpo.integrations.verl_plugin`
prints a warning naming the error at once.
The per-channel rewards reach the advantage step only in verl's legacy trainer
(``trainer.use_v1=false``); the v1 trainer of 0.9.1 keeps only ``uid`` in that step (gdpo
has the same limit). Tested against verl 0.9.1 (``configs/verl/`` has a full example).
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any, Callable, Optional

import numpy as np

from mrgrpo.core.extras import require

for _package in ("verl", "torch"):  # one missing: one line naming the [verl] extra
    require(_package, "verl", __name__)

import torch  # noqa: E402

from mrgrpo.core.advantage_spec import AdvantageSpec, rescale_scored

__all__ = ["ESTIMATORS", "TESTED_VERL", "OPTIONS", "METRICS_KEY", "batch_metrics", "spec_from_config", "channel_rewards", "install", "register",
           "patch_ray_trainer", "compute_mrgrpo_na_outcome_advantage", "compute_mrgrpo_an_outcome_advantage",
           "compute_mrgrpo_single_outcome_advantage"]

#: verl versions this module is tested against (the ``[verl]`` extra pins them).
TESTED_VERL = ">=0.9.1,<0.10"
#: Where the advantage step leaves its metrics in ``DataProto.meta_info`` for ``compute_data_metrics``.
METRICS_KEY = "mrgrpo_metrics"
#: The keys of ``algorithm.mrgrpo`` (the weights, mode and channel names come from verl's own keys).
OPTIONS = ("normalization", *(f.name for f in dataclasses.fields(AdvantageSpec)
                              if f.name not in ("weights", "mode", "channel_names")))


def _get(config: Any, key: str, default=None):
    if config is None:
        return default
    getter = getattr(config, "get", None)
    return getter(key, default) if callable(getter) else getattr(config, key, default)


def _plain(value):
    """OmegaConf containers -> plain Python (lists, dicts)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, (DictConfig, ListConfig)):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover - verl depends on omegaconf
        pass
    return value


def _channel_index(value, keys: list[str], name: str) -> int:
    if isinstance(value, str):
        if value not in keys:
            raise ValueError(f"algorithm.mrgrpo.{name} = {value!r} is not one of gdpo_reward_keys {keys}")
        return keys.index(value)
    return value


def spec_from_config(mode: str, config: Any) -> tuple[list[str], AdvantageSpec]:
    """The reward keys and :class:`~mrgrpo.core.advantage_spec.AdvantageSpec` of an estimator from verl's
    ``algorithm`` config: the one place it is read.

    Parameters
    ----------
    mode : {"na", "an", "single"}
    config : mapping (dict, ``omegaconf.DictConfig`` or verl's ``AlgoConfig``)

    Returns
    -------
    (keys, spec)
        ``spec.channel_names`` are the keys.

    Raises
    ------
    ValueError
        no ``gdpo_reward_keys``, or any invalid setting (the field is named).
    """
    keys = _plain(_get(config, "gdpo_reward_keys"))
    if not keys or isinstance(keys, str):
        raise ValueError(f"adv_estimator=mrgrpo_{mode} needs algorithm.gdpo_reward_keys: a list of the "
                         f"per-channel keys your compute_score returns, got {keys!r}")
    keys = [str(k) for k in keys]
    weights = _plain(_get(config, "gdpo_reward_weights"))
    weights = [1.0] * len(keys) if weights is None else weights
    if isinstance(weights, (str, bytes)) or not hasattr(weights, "__len__") or len(weights) != len(keys):
        raise ValueError(f"algorithm.gdpo_reward_weights must be one weight per gdpo_reward_keys entry "
                         f"({len(keys)}), got {weights!r}")
    opts = _plain(_get(config, "mrgrpo")) or {}
    if not isinstance(opts, dict):
        raise ValueError(f"algorithm.mrgrpo must be a mapping of options, got {opts!r}")
    opts = dict(opts)  # a copy: gate and conditioned become indices
    unknown = set(opts) - set(OPTIONS)
    if unknown:
        raise ValueError(f"algorithm.mrgrpo has unknown option(s) {sorted(unknown)}; the options are "
                         + ", ".join(OPTIONS))
    if "gate" in opts:
        opts["gate"] = _channel_index(opts["gate"], keys, "gate")
    if "conditioned" in opts:
        c = opts["conditioned"]
        opts["conditioned"] = ([_channel_index(x, keys, "conditioned") for x in c] if isinstance(c, (list, tuple))
                               else _channel_index(c, keys, "conditioned"))
    try:
        spec = AdvantageSpec.from_options(weights=tuple(weights) if isinstance(weights, (list, tuple)) else weights,
                                          mode=mode, channel_names=tuple(keys), **opts)
    except ValueError as exc:
        raise ValueError(f"adv_estimator=mrgrpo_{mode}: {exc}") from None
    return keys, spec


def channel_rewards(non_tensor_batch: Optional[dict], keys: list[str], n: int) -> torch.Tensor:
    """Per-channel rewards ``(n, R)`` float64 from ``non_tensor_batch``; ``None`` becomes NaN."""
    if non_tensor_batch is None:
        raise ValueError("the mrgrpo estimators read per-channel rewards from non_tensor_batch, and got none. "
                         "verl 0.9.1's trainer forwards non_tensor_batch only to adv_estimator=gdpo: call "
                         "mrgrpo.integrations.verl.install() in the driver, or load the plugin with "
                         "VERL_USE_EXTERNAL_MODULES=mrgrpo.integrations.verl_plugin (declared by mrgrpo's [verl] extra)")
    cols = []
    for key in keys:
        if key not in non_tensor_batch:
            raise ValueError(f"reward key {key!r} (algorithm.gdpo_reward_keys) is not in non_tensor_batch; "
                             f"available: {sorted(non_tensor_batch)}. Return it from compute_score's dict")
        col = np.array([np.nan if v is None else v for v in np.asarray(non_tensor_batch[key], dtype=object)],
                       dtype=float)
        if col.shape != (n,):
            raise ValueError(f"non_tensor_batch[{key!r}] has shape {col.shape}, expected ({n},)")
        cols.append(col)
    return torch.from_numpy(np.stack(cols, axis=1))


def _outcome_advantage(mode: str, token_level_rewards: torch.Tensor, response_mask: torch.Tensor,
                       index: np.ndarray, norm_adv_by_std_in_grpo: bool, config: Any,
                       non_tensor_batch: Optional[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    if not norm_adv_by_std_in_grpo:
        raise ValueError(f"adv_estimator=mrgrpo_{mode} standardizes within groups; "
                         "algorithm.norm_adv_by_std_in_grpo=False is not supported")
    keys, spec = spec_from_config(mode, config)
    n = response_mask.shape[0]
    if index is None or len(index) != n:
        raise ValueError(f"index (the uid of each row) must have {n} entries, got "
                         f"{None if index is None else len(index)}")
    rewards = channel_rewards(non_tensor_batch, keys, n)
    groups: dict[Any, list[int]] = {}
    for row, uid in enumerate(index):
        groups.setdefault(uid, []).append(row)
    by_size: dict[int, list[list[int]]] = {}
    for rows in groups.values():
        by_size.setdefault(len(rows), []).append(rows)
    unscaled = torch.zeros(n, dtype=torch.float64)
    grouped = torch.zeros(n, dtype=torch.bool)
    no_rescale = spec.replace(batch_rescale=False)  # groups of each size apart, then one batch rescale
    parts = []
    for size, members in by_size.items():
        if size < 2:
            continue  # no baseline: advantage 0, and no part in a batch rescale
        rows = torch.tensor(members)  # (G, m)
        result = no_rescale.advantages(rewards[rows])
        unscaled[rows] = result.advantages
        grouped[rows.flatten()] = True
        parts.append((rows, result))
    scored = grouped & ~torch.isnan(rewards).all(dim=1)
    final = rescale_scored(unscaled, scored) if spec.batch_rescale else unscaled
    metrics = batch_metrics(spec, rewards, final, parts)
    adv = final.to(device=response_mask.device, dtype=torch.float32).unsqueeze(-1) * response_mask
    return adv, adv, metrics


def batch_metrics(spec: AdvantageSpec, rewards: torch.Tensor, adv: torch.Tensor, parts: list) -> dict[str, float]:
    """What the ``mrgrpo_*`` estimators log each step, as ``mrgrpo/<key>`` (verl's ``gdpo`` logs ``gdpo/<key>/*``).

    Per reward key ``k``: ``k/mean``, ``k/std``, ``k/max``, ``k/min`` over the batch's scored rewards
    (``gdpo``'s four). Then :func:`~mrgrpo.core.advantage_diagnostics.advantage_metrics` (without its
    channel means, logged above): ``influence/<k>``, ``const_frac/<k>`` (of the rewards after
    conditioning; the raw ones under ``raw/``) and ``degenerate_frac``, pooled over the group sizes
    by their group counts; ``adv_mean``, ``adv_std`` over the fully scored groups; the aggregate
    ``reward/aggregate`` (and ``_std``), ``unscored_frac``, ``gate_pass_rate`` and
    ``conditioned/reward/<k>`` over all grouped rollouts.

    Parameters
    ----------
    spec : AdvantageSpec
    rewards : ``(n, R)`` float64, NaN where unscored
    adv : ``(n,)`` the final advantages
    parts : list of ``(rows (G, m) tensor, AdvantageResult)``, one per group size
    """
    from mrgrpo.core.advantage_diagnostics import advantage_metrics
    from mrgrpo.core.advantage_spec import AdvantageResult

    out: dict[str, float] = {}
    r = rewards.numpy()
    for k, name in enumerate(spec.names):
        col = r[:, k][~np.isnan(r[:, k])]
        if col.size:
            out.update({f"{name}/mean": float(col.mean()), f"{name}/std": float(col.std()),
                        f"{name}/max": float(col.max()), f"{name}/min": float(col.min())})
    if not parts:
        return out
    pooled: dict[str, list[float]] = {}
    clean_adv = []
    for rows, res in parts:
        clean = ~torch.isnan(res.rewards).any(dim=(1, 2))
        clean_adv.append(adv[rows][clean].reshape(-1))
        got = advantage_metrics(AdvantageResult(adv[rows], res.unscaled, res.rewards, res.conditioned_rewards), spec)
        for key, value in got.items():
            if key.startswith(("influence/", "const_frac/", "raw/influence/", "raw/const_frac/")) or key == "degenerate_frac":
                wgt = float(len(rows)) if key == "degenerate_frac" else float(clean.sum())
                acc = pooled.setdefault(key, [0.0, 0.0])
                acc[0], acc[1] = acc[0] + wgt * value, acc[1] + wgt
    out.update({key: num / den for key, (num, den) in pooled.items() if den})
    a = torch.cat(clean_adv)
    if a.numel():
        out["adv_mean"], out["adv_std"] = float(a.mean()), float(a.std(unbiased=False))
    cat = [torch.cat([res.rewards.reshape(-1, spec.R) for _, res in parts])[None],
           torch.cat([res.conditioned_rewards.reshape(-1, spec.R) for _, res in parts])[None]]
    whole = torch.cat([adv[rows].reshape(-1) for rows, _ in parts])[None]
    got = advantage_metrics(AdvantageResult(whole, whole, cat[0], cat[1]), spec)  # all grouped rows as one
    out.update({k: v for k, v in got.items() if k in ("reward/aggregate", "reward/aggregate_std", "unscored_frac",
                                                       "gate_pass_rate", "raw/reward/aggregate")
                or k.startswith("conditioned/reward/")})
    return out


def _make(mode: str) -> Callable:
    def estimator(token_level_rewards: torch.Tensor, response_mask: torch.Tensor, index: np.ndarray = None,
                  epsilon: float = 1e-6, norm_adv_by_std_in_grpo: bool = True, config: Any = None,
                  non_tensor_batch: Optional[dict] = None, batch: Optional[dict] = None,
                  **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        return _outcome_advantage(mode, token_level_rewards, response_mask, index, norm_adv_by_std_in_grpo,
                                  config, non_tensor_batch)[:2]

    estimator.__name__ = estimator.__qualname__ = f"compute_mrgrpo_{mode}_outcome_advantage"
    estimator.__doc__ = (f"verl estimator ``mrgrpo_{mode}`` (see :mod:`mrgrpo.integrations.verl`).\n\n"
                         "Returns ``(advantages, returns)``, both ``(bs, response_length)``: the per-rollout "
                         "advantage broadcast over the response tokens.")
    return estimator


compute_mrgrpo_na_outcome_advantage = _make("na")
compute_mrgrpo_an_outcome_advantage = _make("an")
compute_mrgrpo_single_outcome_advantage = _make("single")

#: registry name -> estimator function
ESTIMATORS: dict[str, Callable] = {
    "mrgrpo_na": compute_mrgrpo_na_outcome_advantage,
    "mrgrpo_an": compute_mrgrpo_an_outcome_advantage,
    "mrgrpo_single": compute_mrgrpo_single_outcome_advantage,
}


def register() -> None:
    """Register the ``mrgrpo_*`` estimators in verl's registry (idempotent)."""
    from verl.trainer.ppo import core_algos

    for name, fn in ESTIMATORS.items():
        core_algos.register_adv_est(name)(fn)


def _forwarding(compute_advantage: Callable) -> Callable:
    """``compute_advantage`` that hands ``non_tensor_batch`` and ``batch`` to the ``mrgrpo_*`` estimators."""
    if getattr(compute_advantage, "mrgrpo_forwarding", False):
        return compute_advantage
    signature = inspect.signature(compute_advantage)

    @functools.wraps(compute_advantage)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        call = bound.arguments
        name = getattr(call["adv_estimator"], "value", call["adv_estimator"])
        if name not in ESTIMATORS:
            return compute_advantage(*args, **kwargs)
        data = call["data"]
        if "response_mask" not in data.batch.keys():
            from verl.trainer.ppo.ray_trainer import compute_response_mask

            data.batch["response_mask"] = compute_response_mask(data)
        adv, ret, metrics = _outcome_advantage(
            name[len("mrgrpo_"):], data.batch["token_level_rewards"], data.batch["response_mask"],
            data.non_tensor_batch.get("uid"), call.get("norm_adv_by_std_in_grpo", True), call.get("config"),
            data.non_tensor_batch)
        data.batch["advantages"] = adv
        data.batch["returns"] = ret
        data.meta_info[METRICS_KEY] = metrics  # compute_data_metrics (wrapped below) logs them
        return data

    wrapper.mrgrpo_forwarding = True
    return wrapper


def _with_our_metrics(compute_data_metrics: Callable) -> Callable:
    """verl's ``compute_data_metrics`` plus the ``mrgrpo/...`` metrics the advantage step left in ``meta_info``."""
    if getattr(compute_data_metrics, "mrgrpo_metrics", False):
        return compute_data_metrics

    @functools.wraps(compute_data_metrics)
    def wrapper(batch, *args, **kwargs):
        out = compute_data_metrics(batch, *args, **kwargs)
        ours = getattr(batch, "meta_info", {}).pop(METRICS_KEY, None)
        return {**out, **{f"mrgrpo/{k}": v for k, v in (ours or {}).items()}}

    wrapper.mrgrpo_metrics = True
    return wrapper


def patch_ray_trainer() -> None:
    """Make verl's ``compute_advantage`` forward ``non_tensor_batch`` to the ``mrgrpo_*`` estimators, and
    its ``compute_data_metrics`` log their metrics (:func:`batch_metrics`) (idempotent).

    Wraps ``verl.trainer.ppo.ray_trainer.compute_advantage`` and the v1 trainer's imported
    reference to it; every other estimator goes through verl's function unchanged.
    """
    from verl.trainer.ppo import ray_trainer

    ray_trainer.compute_advantage = _forwarding(ray_trainer.compute_advantage)
    ray_trainer.compute_data_metrics = _with_our_metrics(ray_trainer.compute_data_metrics)
    try:
        from verl.trainer.ppo.v1 import utils as v1_utils
    except ImportError:  # pragma: no cover - absent in other verl versions
        return
    v1_utils.compute_advantage = _forwarding(v1_utils.compute_advantage)


def install() -> None:
    """:func:`register` and :func:`patch_ray_trainer`: everything a verl run needs."""
    register()
    patch_ray_trainer()


register()
