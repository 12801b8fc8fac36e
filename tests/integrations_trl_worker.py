"""The reward module of the 2-process test: what a user names in ``reward_funcs``, plus a recorder.

``tests/integrations/test_integrations_trl.py`` runs the documented command on it,

    accelerate launch --config_file <the shipped cpu_2proc.yaml> -m mrgrpo.integrations.trl --config run.yaml

with ``reward_funcs: [<this file>:correctness, <this file>:length, <this file>:format]``: the
tiny policy trains one step, 6 completions per process and 4 per prompt, so the 12 completions
of the step form 3 groups and the middle group is split between the two processes.

The three functions are mini-math's channels (:func:`mrgrpo.integrations.trl_inputs.channel_reward_funcs`);
each process records the rewards it scored itself. Importing this file (the command does, to load
the reward functions, before it builds the trainer) also wraps three methods of
``MultiRewardGRPOTrainer`` to record the rewards TRL gathered, this process's advantages (before
TRL shuffles them) and the advantages its loss saw; after training each process writes
``rank<r>.json`` to the run's ``output_dir``.
"""
from __future__ import annotations

import json
from pathlib import Path

from mrgrpo.integrations import trl as mt
from mrgrpo.integrations.trl_inputs import channel_reward_funcs
from mrgrpo.lm.loader import model_path
from mrgrpo.tasks.registry import task_reward

#: The advantage settings of run.yaml (the test writes them there and checks against them).
SETTINGS = dict(mode="na", conditioning="zero_fill", gate=0, conditioned=[1])
M = 4

_funcs = channel_reward_funcs(task_reward("mini-math", model_path("tiny-math")))
_local: list[list[float]] = []
_rec: dict = {}


def _scored(k: int):
    def f(prompts, completions, **kw):
        values = _funcs[k](prompts, completions, **kw)
        if k == 0:
            _local.extend([[v] for v in values])
        else:
            for row, v in zip(_local[-len(values):], values):
                row.append(v)
        return values

    f.__name__ = _funcs[k].__name__
    return f


correctness, length, format = (_scored(k) for k in range(3))  # noqa: A001 - the channel's name

_calculate, _generate, _loss, _train = (mt.MultiRewardGRPOTrainer._calculate_rewards,
                                        mt.MultiRewardGRPOTrainer._generate_and_score_completions,
                                        mt.MultiRewardGRPOTrainer.compute_loss, mt.MultiRewardGRPOTrainer.train)


def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
    rewards = _calculate(self, inputs, prompts, completions, completion_ids_list)
    _rec["gathered"] = rewards.cpu().tolist()
    return rewards


def _generate_and_score_completions(self, inputs):
    out = _generate(self, inputs)
    _rec["advantages"] = out["advantages"].cpu().tolist()
    return out


def _compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
    _rec.setdefault("loss_advantages", []).extend(inputs["advantages"].cpu().tolist())
    return _loss(self, model, inputs, return_outputs, num_items_in_batch)


def _train_and_write(self, *args, **kwargs):
    out = _train(self, *args, **kwargs)
    rank = self.accelerator.process_index
    _rec.update(rank=rank, world=self.accelerator.num_processes, m=M, local_rewards=_local, settings=SETTINGS,
                spec_mode=self.advantage_spec.mode, spec_conditioning=self.advantage_spec.conditioning)
    (Path(self.args.output_dir) / f"rank{rank}.json").write_text(json.dumps(_rec))
    return out


mt.MultiRewardGRPOTrainer._calculate_rewards = _calculate_rewards
mt.MultiRewardGRPOTrainer._generate_and_score_completions = _generate_and_score_completions
mt.MultiRewardGRPOTrainer.compute_loss = _compute_loss
mt.MultiRewardGRPOTrainer.train = _train_and_write
