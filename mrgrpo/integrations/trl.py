"""TRL integration: :class:`MultiRewardGRPOTrainer`, TRL's ``GRPOTrainer`` with mrgrpo's advantages.

Everything TRL does stays TRL's (generation, vLLM, accelerate / DeepSpeed / FSDP, PEFT,
the loss, logging, checkpoints) except the advantage of each completion, which comes from
mrgrpo's :class:`~mrgrpo.core.advantage_spec.AdvantageSpec` (on the torch twin of
:mod:`mrgrpo.core.advantage`)::

    from trl import GRPOConfig
    from mrgrpo.integrations.trl import MultiRewardGRPOTrainer

    trainer = MultiRewardGRPOTrainer(
        model="Qwen/Qwen2.5-1.5B-Instruct", reward_funcs=[correctness, length, fmt],
        args=GRPOConfig(output_dir="out", reward_weights=[1.0, 1.0, 0.5], num_generations=8),
        train_dataset=dataset, mode="na", conditioning="zero_fill", gate=0, conditioned=(1,))
    trainer.train()

One reward function per channel, in channel order (channel 0 is the gate).
``args.reward_weights`` are the channel weights (or ``weights=``; give them once). The
keyword arguments :data:`SPEC_OPTIONS` (``mode``, ``normalization`` or ``adv_ddof``/``adv_eps``,
``batch_rescale``, ``conditioning``, ``gate``, ``conditioned``, ``gate_threshold``), a whole
``advantage_spec=``, or the same fields of ``args=MultiRewardGRPOConfig(...)``, replace TRL's
``multi_objective_aggregation`` (which, when set explicitly, must agree with them); ``scale_rewards``
must keep its default ``"group"``. :func:`advantage_spec_from_trl` parses them, with TRL's
arguments, into one ``AdvantageSpec``. TRL's own two modes are special cases:

- ``mode="an", normalization="trl"`` is TRL's ``sum_then_normalize``;
- ``mode="na", normalization="trl", batch_rescale=True`` is TRL's ``normalize_then_sum``.

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
:mod:`mrgrpo.core.advantage_spec`), while a NaN or infinite reward, a string, a single number
for the whole batch, or a magnitude beyond float32 (TRL stores rewards in float32, where it
would become inf) raises a ``ValueError`` that names the function, the sample and its prompt
and completion.

Metrics (:func:`~mrgrpo.core.advantage_diagnostics.advantage_metrics`), in TRL's logs under
``mrgrpo/``: the per-channel influence ``Cov(A, z_l)`` (``influence/<name>``) and constant-channel
fractions (``const_frac/<name>``) of the rewards the estimator used (after conditioning), the
fraction of groups with no signal (``degenerate_frac``), ``adv_mean``, ``adv_std``,
``unscored_frac`` and, under conditioning, the gate pass rate (``gate_pass_rate``), each
conditioned channel's mean after conditioning (``conditioned/reward/<name>``) and the raw rewards'
values (``raw/influence/<name>``, ``raw/const_frac/<name>``, ``raw/reward/aggregate``). TRL's own
keys that describe its scalar aggregation are corrected: ``reward`` and ``reward_std`` are the
mean and std of ``w . r`` after conditioning (TRL's values when there is none), and
``frac_reward_zero_std`` (groups whose *weighted sum* is constant, which under NA still carry
signal) is dropped for ``mrgrpo/degenerate_frac``. A channel's mean is TRL's
``rewards/<function>/mean`` (the raw rewards), logged once.

:class:`~mrgrpo.integrations.trl_config.MultiRewardGRPOConfig` holds the settings as
``GRPOConfig`` fields (``TrlParser``, YAML, saved with every checkpoint as JSON), and
``python -m mrgrpo.integrations.trl --config my.yaml`` (:mod:`mrgrpo.integrations.trl_cli`) trains
your own reward functions from the command line.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import warnings

from mrgrpo.core.extras import require

for _package in ("trl", "torch", "transformers"):  # one missing: one line naming the [trl] extra
    require(_package, "trl", __name__)

import torch  # noqa: E402
import trl  # noqa: E402
from trl import GRPOTrainer  # noqa: E402
from trl.trainer.utils import get_callable_name, is_async_callable  # noqa: E402

from mrgrpo.core.advantage_diagnostics import advantage_metrics
from mrgrpo.core.advantage_spec import AdvantageSpec
from mrgrpo.integrations.trl_config import (MultiRewardGRPOConfig, check_trl_options, read_settings,
                                            settings_conflicts, write_settings)
from mrgrpo.lm.prompts import prompt_text
from mrgrpo.rewards.base import shorten

__all__ = ["MultiRewardGRPOTrainer", "MultiRewardGRPOConfig", "ExtensionPointError", "TESTED_TRL", "SPEC_OPTIONS",
           "advantage_spec_from_trl", "check_extension_point", "check_trl_version"]

#: TRL versions this module is tested against (the ``[trl]`` extra pins them).
TESTED_TRL = ">=1.16,<1.17"

# the signatures of TRL 1.16's extension point
_EXPECTED = {
    "_calculate_rewards": ["self", "inputs", "prompts", "completions", "completion_ids_list"],
    "_generate_and_score_completions": ["self", "inputs"],
}


#: The keyword arguments of :class:`MultiRewardGRPOTrainer` that set the advantage (the others go to TRL).
SPEC_OPTIONS = ("normalization", *(f.name for f in dataclasses.fields(AdvantageSpec) if f.name != "channel_names"))


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


#: The largest reward magnitude TRL can hold: ``_calculate_rewards`` stores rewards in float32
#: (``torch.tensor(..., dtype=torch.float32)``), where anything larger becomes inf.
FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _bad_reward(name: str, returned: str, i: int, prompts, completions, fix: str) -> ValueError:
    """The one message for a reward TRL must not get: the function, what it returned, the sample, its prompt
    and completion, and what to do."""
    return ValueError(f"reward function {name!r} returned {returned} for sample {i} (prompt "
                      f"{shorten(prompt_text(prompts[i]))}, completion {shorten(str(completions[i]))}); {fix}")


def _check_values(values, name: str, prompts, completions) -> None:
    """ValueError, naming the function and the sample, unless ``values`` is one finite float32-sized number
    (or ``None``, TRL's 'unscored') per completion: a string, a single number for the whole batch, NaN, inf
    and a magnitude above :data:`FLOAT32_MAX` are refused."""
    n = len(completions)
    single = isinstance(values, (str, bytes, bytearray, dict)) or not hasattr(values, "__len__") \
        or getattr(values, "ndim", 1) != 1
    if single and n:
        raise _bad_reward(name, f"a single {type(values).__name__} ({_show(values)})", 0, prompts,
                          completions, f"return a list of {n} rewards, one per completion (None where it "
                          "cannot score one)")
    if single or len(values) != n:
        got = _show(values) if single else f"{len(values)} rewards"
        raise ValueError(f"reward function {name!r} returned {got} for {n} completions; return one per "
                         "completion (None where it cannot score one)")
    for i, v in enumerate(values):
        if v is None:
            continue
        try:
            if isinstance(v, (str, bytes, bytearray)):
                raise TypeError
            x = float(v)
        except OverflowError:  # an int beyond any float: refused below as too large
            x = 2 * FLOAT32_MAX
        except (TypeError, ValueError):
            raise _bad_reward(name, f"{_show(v)} (a {type(v).__name__})", i, prompts, completions,
                              "rewards must be numbers (int, float) or None") from None
        if not math.isfinite(x):
            raise _bad_reward(name, _show(v), i, prompts, completions, "return None for a completion it cannot score")
        if abs(x) > FLOAT32_MAX:
            raise _bad_reward(name, _show(v), i, prompts, completions,
                              f"TRL keeps rewards in float32, where a magnitude above {FLOAT32_MAX:.4g} becomes inf; "
                              "rescale the reward")


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


def advantage_spec_from_trl(args, n_funcs: int, advantage_spec: AdvantageSpec | None = None,
                            **options) -> AdvantageSpec:
    """The :class:`~mrgrpo.core.advantage_spec.AdvantageSpec` of a :class:`MultiRewardGRPOTrainer`, from TRL's
    arguments and our keyword options: the one place they are read.

    Parameters
    ----------
    args : trl.GRPOConfig, MultiRewardGRPOConfig or None
        Read: ``reward_weights`` (the weights, default all 1), ``scale_rewards`` and
        ``multi_objective_aggregation`` (:func:`~mrgrpo.integrations.trl_config.check_trl_options`);
        a :class:`~mrgrpo.integrations.trl_config.MultiRewardGRPOConfig` carries the whole spec.
    n_funcs : int
        The number of reward functions (channels).
    advantage_spec : AdvantageSpec, optional
        A whole spec; then ``options`` must be empty and ``args.reward_weights`` unset or equal to its weights.
    **options
        :data:`SPEC_OPTIONS` (see :meth:`AdvantageSpec.from_options
        <mrgrpo.core.advantage_spec.AdvantageSpec.from_options>`).

    Raises
    ------
    ValueError
        an invalid option (named), the weights given twice, a weight count other than ``n_funcs``,
        the settings given both in a ``MultiRewardGRPOConfig`` and as options, TRL options that
        contradict the spec (``scale_rewards`` other than ``"group"``, an aggregation of another mode).
    """
    trl_weights = getattr(args, "reward_weights", None)
    if isinstance(args, MultiRewardGRPOConfig):
        if options or advantage_spec is not None:
            given = sorted(options) if options else ["advantage_spec"]
            raise ValueError(f"the advantage settings are given twice, in MultiRewardGRPOConfig and as {given}: "
                             "give them once (the config's fields, or a plain trl.GRPOConfig with keywords)")
        spec, source = args.advantage_spec(n_funcs), "args.reward_weights"
    elif advantage_spec is not None:
        if options:
            raise ValueError(f"give advantage_spec or the options {sorted(options)}, not both")
        if not isinstance(advantage_spec, AdvantageSpec):
            raise ValueError(f"advantage_spec must be an AdvantageSpec, got {type(advantage_spec).__name__}")
        if trl_weights is not None and [float(w) for w in trl_weights] != list(advantage_spec.weights):
            raise ValueError(f"args.reward_weights {list(trl_weights)} differ from advantage_spec.weights "
                             f"{list(advantage_spec.weights)}: give the weights once")
        spec, source = advantage_spec, "advantage_spec.weights"
    else:
        if "weights" in options and trl_weights is not None:
            raise ValueError("the weights are given twice, as args.reward_weights and as weights=: give them once")
        source = "weights" if "weights" in options else "args.reward_weights"
        weights = options.pop("weights", trl_weights)
        weights = [1.0] * n_funcs if weights is None else weights
        spec = AdvantageSpec.from_options(weights=tuple(weights) if isinstance(weights, list) else weights,
                                          **options)
    if spec.R != n_funcs:
        raise ValueError(f"{source} has {spec.R} weights for {n_funcs} reward functions")
    check_trl_options(args, spec)
    return spec


class MultiRewardGRPOTrainer(GRPOTrainer):
    """TRL's ``GRPOTrainer`` with mrgrpo's multi-reward advantages.

    Parameters
    ----------
    model, reward_funcs, args, train_dataset, **trl_kwargs
        As for ``trl.GRPOTrainer``. ``reward_funcs``: one per channel; ``args.reward_weights``:
        the channel weights (default all 1). ``args`` may be a
        :class:`~mrgrpo.integrations.trl_config.MultiRewardGRPOConfig`, whose fields are the
        advantage settings (then none of the keywords below).
    advantage_spec : AdvantageSpec, optional
        The whole advantage at once (then none of the options below).
    **options
        The advantage options :data:`SPEC_OPTIONS`, as in
        :meth:`AdvantageSpec.from_options <mrgrpo.core.advantage_spec.AdvantageSpec.from_options>`:
        ``mode`` ({"na", "an", "single"}), ``normalization`` ({"paper", "trl"}: ddof 0 and eps
        1e-8, or ddof 1 and eps 1e-4) or ``adv_ddof``/``adv_eps``, ``batch_rescale`` (afterwards
        z-score over the whole batch, TRL's ``normalize_then_sum``), ``conditioning``
        ({"none", "zero_fill", "subgroup"}), ``gate``, ``conditioned``, ``gate_threshold``
        (gate rule ``gate >= gate_threshold`` instead of ``gate == 1``), ``weights`` (instead of
        ``args.reward_weights``).

    Attributes
    ----------
    advantage_spec : AdvantageSpec
        What the advantages are computed with (channel names from TRL's reward function names).

    Raises
    ------
    ValueError
        before any model loads: any invalid advantage option (named), weights given twice or of
        the wrong length, TRL options that contradict the advantage settings (``scale_rewards`` other
        than ``"group"``, a ``multi_objective_aggregation`` of another mode). On ``train(resume_from_checkpoint=...)``:
        a checkpoint without :data:`~mrgrpo.integrations.trl_config.SETTINGS_FILE` or saved with other settings.
    ExtensionPointError
        the installed TRL lacks the extension point (see the module docstring).
    """

    def __init__(self, model, reward_funcs=None, args=None, train_dataset=None, *,
                 advantage_spec: AdvantageSpec | None = None, **kwargs):
        check_trl_version()
        check_extension_point(GRPOTrainer)
        if reward_funcs is None:
            raise ValueError("reward_funcs is required: one reward function per channel")
        funcs = list(reward_funcs) if isinstance(reward_funcs, (list, tuple)) else [reward_funcs]
        options = {k: kwargs.pop(k) for k in SPEC_OPTIONS if k in kwargs}
        spec = advantage_spec_from_trl(args, len(funcs), advantage_spec, **options)
        self._mrgrpo_rewards: torch.Tensor | None = None
        super().__init__(model, [_checked(f) for f in funcs], args=args, train_dataset=train_dataset, **kwargs)
        if len(self.reward_funcs) != spec.R:  # e.g. an environment added its reward
            raise ValueError(f"TRL has {len(self.reward_funcs)} reward functions after setup but the weights "
                             f"name {spec.R}; MultiRewardGRPOTrainer needs them equal")
        self.advantage_spec = spec if spec.channel_names else spec.replace(channel_names=tuple(self.reward_func_names))
        # TRL's own copy of the weights feeds only its logged "reward": written from the spec, never read back
        self.reward_weights = torch.tensor(spec.weights, dtype=torch.float32)
        if self.multi_objective_aggregation is None:  # unset in MultiRewardGRPOConfig; TRL's result is replaced
            self.multi_objective_aggregation = "sum_then_normalize"

    # -- checkpoints: the settings as JSON beside training_args.bin ----------------------
    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """TRL's ``save_model`` (each checkpoint calls it), then :data:`~mrgrpo.integrations.trl_config.SETTINGS_FILE`."""
        super().save_model(output_dir, _internal_call=_internal_call)
        if self.args.should_save:
            settings = self.args.settings() if isinstance(self.args, MultiRewardGRPOConfig) else {}
            write_settings(output_dir or self.args.output_dir, self.advantage_spec, settings)

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        """TRL's ``train``; a resumed checkpoint must hold the same advantage settings (its JSON is read, no pickle)."""
        if resume_from_checkpoint:
            from transformers.trainer_utils import get_last_checkpoint

            folder = resume_from_checkpoint
            if folder is True:
                folder = get_last_checkpoint(self.args.output_dir)
                if folder is None:
                    raise ValueError(f"resume_from_checkpoint=True but {self.args.output_dir} holds no checkpoint")
            conflicts = settings_conflicts(read_settings(folder), self.advantage_spec)
            if conflicts:
                raise ValueError(f"{folder} was trained with other advantage settings ({'; '.join(conflicts)}); "
                                 "resume with the checkpoint's settings or start a new output_dir")
        return super().train(resume_from_checkpoint, *args, **kwargs)

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
        spec = self.advantage_spec
        if tuple(rewards.shape) != (n_local * world, spec.R):
            raise ExtensionPointError(f"_calculate_rewards returned shape {tuple(rewards.shape)}, expected the "
                                      f"gathered ({n_local * world}, {spec.R}) {where}")
        theirs = output.get("advantages") if isinstance(output, dict) else None
        if not isinstance(theirs, torch.Tensor) or tuple(theirs.shape) != (n_local,):
            raise ExtensionPointError(f"_generate_and_score_completions returned no 'advantages' of shape "
                                      f"({n_local},) {where}")
        phase = "train" if self.model.training else "eval"
        m = self.num_generations if phase == "train" else self.num_generations_eval
        if rewards.shape[0] % m:
            raise ExtensionPointError(f"the gathered batch of {rewards.shape[0]} rewards is not whole groups of "
                                      f"{m} {where}")
        result = spec.advantages(rewards.view(-1, m, spec.R))  # rows are stored group by group
        flat = result.advantages.reshape(-1)
        rank = self.accelerator.process_index
        output["advantages"] = flat[rank * n_local:(rank + 1) * n_local].to(theirs.dtype).to(theirs.device)
        logged = self._logs["advantages"]  # TRL appended its own advantages for the completions table
        for _ in range(min(len(logged), flat.numel())):
            logged.pop()
        logged.extend(flat.tolist())
        self._log_metrics(advantage_metrics(result, spec), phase)
        return output

    def _log_metrics(self, metrics: dict[str, float], phase: str) -> None:
        """mrgrpo's metrics into TRL's log, where TRL's own would say something else (module docstring)."""
        logged = self._metrics[phase]
        for trl_key, ours in (("reward", "reward/aggregate"), ("reward_std", "reward/aggregate_std")):
            if logged.get(trl_key):  # TRL's w . r of the raw rewards: the aggregate after conditioning instead
                logged[trl_key][-1] = metrics[ours]
        logged.pop("frac_reward_zero_std", None)  # TRL's scalar aggregation's; mrgrpo/degenerate_frac is ours
        for key, value in metrics.items():
            if not key.startswith("reward/"):  # channel means: TRL's rewards/<function>/mean; the aggregate: reward
                logged[f"mrgrpo/{key}"].append(value)


if __name__ == "__main__":  # python -m mrgrpo.integrations.trl --config my.yaml (TRL's `trl grpo` style)
    import runpy

    # the command lives in trl_cli, which imports this module: run it as a script, not as an import cycle
    runpy.run_module("mrgrpo.integrations.trl_cli", run_name="__main__", alter_sys=True)
