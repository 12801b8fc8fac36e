"""One process of the 2-process ``MultiRewardGRPOTrainer`` test (run by ``accelerate launch``).

Trains the tiny policy for one step, 6 completions per process and 4 per prompt, so the
12 completions of the step form 3 groups and the middle group is split between the two
processes. Each process writes ``rank<r>.json`` to ``--out``: the rewards TRL gathered, the
rewards this process scored itself, this process's advantages (before TRL shuffles them)
and the advantages its loss saw. ``tests/test_integrations_trl.py`` compares them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = dict(mode="na", conditioning="zero_fill", gate=0, conditioned=[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    from trl import GRPOConfig

    from mrgrpo.integrations.trl import MultiRewardGRPOTrainer
    from mrgrpo.integrations.trl_inputs import channel_reward_funcs, prompt_dataset
    from mrgrpo.tasks.registry import task_setup

    from mrgrpo.lm.models import TINY_MATH_DIR

    tiny = str(TINY_MATH_DIR)
    setup = task_setup("mini-math", tokenizer=tiny, n_train=32, n_eval=0, seed=0, use_chat_template=False)
    funcs = channel_reward_funcs(setup.reward_fn)
    local_rewards: list[list[float]] = []

    def scored(k):
        def f(prompts, completions, **kw):
            vals = funcs[k](prompts, completions, **kw)
            if k == 0:
                local_rewards.extend([[v] for v in vals])
            else:
                for row, v in zip(local_rewards[-len(vals):], vals):
                    row.append(v)
            return vals

        f.__name__ = funcs[k].__name__
        return f

    rec: dict = {}

    class Recording(MultiRewardGRPOTrainer):
        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            rec["gathered"] = rewards.cpu().tolist()
            return rewards

        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            rec["advantages"] = out["advantages"].cpu().tolist()
            return out

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            rec.setdefault("loss_advantages", []).extend(inputs["advantages"].cpu().tolist())
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    args = GRPOConfig(output_dir=str(Path(a.out) / "trainer"), per_device_train_batch_size=6, num_generations=4,
                      max_completion_length=40, temperature=1.0, beta=0.0, learning_rate=1e-3, max_steps=1,
                      logging_steps=1, save_strategy="no", report_to=[], disable_tqdm=True, seed=0, use_cpu=True,
                      reward_weights=[1.0, 1.0, 0.5], dataloader_num_workers=0)
    tr = Recording(model=tiny, reward_funcs=[scored(k) for k in range(3)], args=args,
                   train_dataset=prompt_dataset(setup.train_prompts), **SETTINGS)
    tr.train()
    rank = tr.accelerator.process_index
    rec.update(rank=rank, world=tr.accelerator.num_processes, m=4, local_rewards=local_rewards, settings=SETTINGS)
    (Path(a.out) / f"rank{rank}.json").write_text(json.dumps(rec))


if __name__ == "__main__":
    sys.exit(main())
