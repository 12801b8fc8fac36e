"""TRL integration: :class:`MultiRewardGRPOTrainer`, TRL's ``GRPOTrainer`` with mrgrpo's advantages.

Everything TRL does stays TRL's (generation, vLLM, accelerate / DeepSpeed / FSDP, PEFT,
the loss, logging, checkpoints) except the advantage of each completion, which comes from
mrgrpo's estimator (:mod:`mrgrpo.integrations.estimator`, on the torch twin of
:mod:`mrgrpo.core.advantage`)::

    from trl import GRPOConfig
    from mrgrpo.integrations.trl import MultiRewardGRPOTrainer

    trainer = MultiRewardGRPOTrainer(
        model="Qwen/Qwen2.5-1.5B-Instruct", reward_funcs=[correctness, length, fmt],
        args=GRPOConfig(output_dir="out", reward_weights=[1.0, 1.0, 0.5], num_generations=8),
        train_dataset=dataset, mode="na", conditioning="zero_fill", gate=0, conditioned=(1,))
    trainer.train()

One reward function per channel, in channel order (channel 0 is the gate).
``args.reward_weights`` are the channel weights. ``mode``, ``convention``,
``batch_rescale`` and the conditioning arguments replace TRL's
``multi_objective_aggregation`` (ignored); ``scale_rewards`` must keep its default
``"group"``. TRL's own two modes are special cases:

- ``mode="an", convention="trl"`` is TRL's ``sum_then_normalize``;
- ``mode="na", convention="trl", batch_rescale=True`` is TRL's ``normalize_then_sum``.

**Extension point.** Tested against TRL 1.16.0 (the ``[trl]`` extra pins ``trl>=1.16,<1.17``;
another version gets a warning at construction, and the checks below). TRL computes the
advantages inline in ``GRPOTrainer._generate_and_score_completions``. Two facts of that
method are all this class relies on: it calls ``self._calculate_rewards(inputs, prompts,
completions, completion_ids_list)``, which returns the rewards of *all* processes gathered,
``(num_processes * local_batch, R)``, NaN where a reward function returned ``None``; and it
returns a dict whose ``"advantages"`` is this process's slice ``[rank * local_batch :
(rank + 1) * local_batch]`` of the advantages of those gathered rewards. The subclass keeps
the gathered rewards, computes its own advantages on the whole batch (so a group split
across processes is normalized as one group) and replaces that entry with its slice. It
checks both facts at construction (method signatures) and on every call (the rewards were
captured, the shapes agree); if a TRL release changes them, it raises
:class:`ExtensionPointError` instead of training with TRL's advantages.

Advantages are computed in float64 and handed to TRL in its dtype. Against TRL's own modes
the logged losses agree to about 1e-7 (float32 rounding); one deliberate difference remains:
a channel that is exactly constant within a group contributes exactly 0 here (mrgrpo's
convention), where TRL's float32 ``(x - mean) / (std + 1e-4)`` can leave a residue of order
1e-4 when the mean of equal values rounds.

Reward functions are checked as they run: ``None`` is TRL's "unscored" (kept: see
:mod:`mrgrpo.integrations.estimator`), while a NaN or infinite reward raises a
``ValueError`` that names the function, the sample and its prompt and completion.

Metrics, in TRL's logs under ``mrgrpo/``: channel means (``reward/<name>``), the per-channel
influence ``Cov(A, z_l)`` (``influence/<name>``), constant-channel fractions
(``const_frac/<name>``), the fraction of groups with no signal (``degenerate_frac``) and,
under conditioning, the gate pass rate (``gate_pass_rate``).
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import warnings
from typing import Sequence

import torch
import trl
from trl import GRPOTrainer
from trl.trainer.utils import get_callable_name, is_async_callable

from mrgrpo.integrations.estimator import AdvantageSettings, advantage_metrics, engine_advantages
from mrgrpo.lm.prompts import prompt_text
from mrgrpo.rewards.base import shorten

__all__ = ["MultiRewardGRPOTrainer", "ExtensionPointError", "TESTED_TRL", "check_extension_point",
           "check_trl_version"]

#: TRL versions this module is tested against (the ``[trl]`` extra pins them).
TESTED_TRL = ">=1.16,<1.17"

# the signatures of TRL 1.16's extension point
_EXPECTED = {
    "_calculate_rewards": ["self", "inputs", "prompts", "completions", "completion_ids_list"],
    "_generate_and_score_completions": ["self", "inputs"],
}


class ExtensionPointError(RuntimeError):
    """TRL's ``GRPOTrainer`` no longer has the extension point this integration was tested on."""


def check_extension_point(base: type = GRPOTrainer) -> None:
    """Raise :class:`ExtensionPointError` unless ``base`` has TRL 1.16's two methods with their signatures."""
    for name, params in _EXPECTED.items():
        method = getattr(base, name, None)
        got = list(inspect.signature(method).parameters) if callable(method) else None
        if got != params:
            raise ExtensionPointError(
                f"trl {trl.__version__}: GRPOTrainer.{name} has parameters {got}, expected {params}. "
                f"MultiRewardGRPOTrainer is tested against trl{TESTED_TRL}; it will not train with TRL's own "
                "advantages silently. Install a tested trl version.")


def check_trl_version(version: str | None = None) -> bool:
    """True if ``version`` (default: the installed TRL) is in :data:`TESTED_TRL`; a ``UserWarning`` if not."""
    from packaging.specifiers import SpecifierSet

    version = trl.__version__ if version is None else version
    ok = version in SpecifierSet(TESTED_TRL)
    if not ok:
        warnings.warn(f"MultiRewardGRPOTrainer is tested against trl{TESTED_TRL}, found trl {version}; "
                      "it checks TRL's extension point as it runs", UserWarning, stacklevel=3)
    return ok


def _check_values(values, name: str, prompts, completions) -> None:
    """ValueError on a NaN or infinite reward (``None`` is TRL's 'unscored' and passes)."""
    for i, v in enumerate(values):
        if v is None:
            continue
        try:
            bad = not math.isfinite(float(v))
        except (TypeError, ValueError):
            raise ValueError(f"reward function {name!r} returned {v!r} for sample {i}: "
                             "rewards must be numbers or None") from None
        if bad:
            raise ValueError(f"reward function {name!r} returned {v!r} for sample {i} (prompt "
                             f"{shorten(prompt_text(prompts[i]))}, completion {shorten(str(completions[i]))}); "
                             "return None for a completion it cannot score")


class CheckedReward:
    """A TRL reward function whose outputs are checked (:func:`_check_values`); keeps the name."""

    def __init__(self, func):
        self.func = func
        self.__name__ = get_callable_name(func)

    def __call__(self, prompts, completions, **kwargs):
        out = self.func(prompts=prompts, completions=completions, **kwargs)
        _check_values(out, self.__name__, prompts, completions)
        return out


class AsyncCheckedReward(CheckedReward):
    """:class:`CheckedReward` for an ``async`` reward function."""

    async def __call__(self, prompts, completions, **kwargs):
        out = await self.func(prompts=prompts, completions=completions, **kwargs)
        _check_values(out, self.__name__, prompts, completions)
        return out


def _checked(func):
    if isinstance(func, (str, torch.nn.Module)):
        return func  # a reward model: its scores are checked after the forward pass
    return AsyncCheckedReward(func) if is_async_callable(func) else CheckedReward(func)


class MultiRewardGRPOTrainer(GRPOTrainer):
    """TRL's ``GRPOTrainer`` with mrgrpo's multi-reward advantages.

    Parameters
    ----------
    model, reward_funcs, args, train_dataset, **trl_kwargs
        As for ``trl.GRPOTrainer``. ``reward_funcs``: one per channel; ``args.reward_weights``:
        the channel weights (default all 1).
    mode : {"na", "an", "single"}
    convention : {"paper", "trl"}
        ``"paper"``: within-group std with ddof 0, ``eps = 1e-8`` added; ``"trl"``: ddof 1, ``eps = 1e-4``.
    batch_rescale : bool
        Afterwards z-score the advantages over the whole batch (TRL's ``normalize_then_sum``).
    conditioning : {"none", "zero_fill", "subgroup"}
    gate : int
    conditioned : int or sequence of int
    threshold : float, optional
        Gate rule ``gate >= threshold`` instead of ``gate == 1``.

    Raises
    ------
    ValueError
        before any model loads: unknown ``mode``, ``convention`` or ``conditioning``,
        conditioning with fewer than 2 reward functions, ``gate``/``conditioned`` out of
        range, ``reward_weights`` of the wrong length, ``scale_rewards`` other than ``"group"``.
    ExtensionPointError
        the installed TRL lacks the extension point (see the module docstring).
    """

    def __init__(self, model, reward_funcs=None, args=None, train_dataset=None, *, mode: str = "na",
                 convention: str = "paper", batch_rescale: bool = False, conditioning: str = "none",
                 gate: int = 0, conditioned: int | Sequence[int] = (1,), threshold: float | None = None,
                 **trl_kwargs):
        check_trl_version()
        check_extension_point(GRPOTrainer)
        if reward_funcs is None:
            raise ValueError("reward_funcs is required: one reward function per channel")
        funcs = list(reward_funcs) if isinstance(reward_funcs, (list, tuple)) else [reward_funcs]
        weights = getattr(args, "reward_weights", None)
        if weights is None:
            weights = [1.0] * len(funcs)
        elif len(weights) != len(funcs):
            raise ValueError(f"args.reward_weights has {len(weights)} weights for {len(funcs)} reward functions")
        scale = getattr(args, "scale_rewards", "group")
        if scale not in ("group", True):
            raise ValueError(f"args.scale_rewards={scale!r} is not supported: mode and convention set the "
                             "scaling (keep scale_rewards='group')")
        self.mrgrpo_settings = AdvantageSettings(weights=tuple(weights), mode=mode, convention=convention,
                                                 batch_rescale=batch_rescale, conditioning=conditioning,
                                                 gate=gate, conditioned=conditioned, threshold=threshold)
        self._mrgrpo_rewards: torch.Tensor | None = None
        super().__init__(model, [_checked(f) for f in funcs], args=args, train_dataset=train_dataset,
                         **trl_kwargs)
        if len(self.reward_funcs) != self.mrgrpo_settings.R:  # e.g. an environment added its reward
            raise ValueError(f"TRL has {len(self.reward_funcs)} reward functions after setup but the weights "
                             f"name {self.mrgrpo_settings.R}; MultiRewardGRPOTrainer needs them equal")
        self.mrgrpo_settings = dataclasses.replace(self.mrgrpo_settings, names=tuple(self.reward_func_names))

    # -- the extension point ------------------------------------------------------------
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        for i, func in enumerate(self.reward_funcs):
            if isinstance(func, torch.nn.Module):
                bad = ~torch.isfinite(rewards[:, i])
                if bool(bad.any()):
                    j = int(torch.nonzero(bad)[0])
                    raise ValueError(f"reward model {self.reward_func_names[i]!r} scored sample {j} (of the "
                                     f"gathered batch) {float(rewards[j, i])}")
        self._mrgrpo_rewards = rewards
        return rewards

    def _generate_and_score_completions(self, inputs):
        self._mrgrpo_rewards = None
        output = super()._generate_and_score_completions(inputs)
        rewards, self._mrgrpo_rewards = self._mrgrpo_rewards, None
        n_local, world = len(inputs), self.accelerator.num_processes
        where = f"(trl {trl.__version__}; MultiRewardGRPOTrainer is tested against trl{TESTED_TRL})"
        if rewards is None:
            raise ExtensionPointError(f"GRPOTrainer._generate_and_score_completions did not call "
                                      f"_calculate_rewards {where}")
        if tuple(rewards.shape) != (n_local * world, self.mrgrpo_settings.R):
            raise ExtensionPointError(f"_calculate_rewards returned shape {tuple(rewards.shape)}, expected the "
                                      f"gathered ({n_local * world}, {self.mrgrpo_settings.R}) {where}")
        theirs = output.get("advantages") if isinstance(output, dict) else None
        if not isinstance(theirs, torch.Tensor) or tuple(theirs.shape) != (n_local,):
            raise ExtensionPointError(f"_generate_and_score_completions returned no 'advantages' of shape "
                                      f"({n_local},) {where}")
        mode = "train" if self.model.training else "eval"
        m = self.num_generations if mode == "train" else self.num_generations_eval
        result = engine_advantages(rewards, m, self.mrgrpo_settings)
        flat = result.advantages.reshape(-1)
        rank = self.accelerator.process_index
        output["advantages"] = flat[rank * n_local:(rank + 1) * n_local].to(theirs.dtype).to(theirs.device)
        logged = self._logs["advantages"]  # TRL appended its own advantages for the completions table
        for _ in range(min(len(logged), flat.numel())):
            logged.pop()
        logged.extend(flat.tolist())
        for key, value in advantage_metrics(result, self.mrgrpo_settings).items():
            self._metrics[mode][f"mrgrpo/{key}"].append(value)
        return output
