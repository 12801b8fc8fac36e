#!/usr/bin/env python
"""Prop 1's prediction for the channel-heterogeneity experiment, from the untrained policy, before training.

Samples ``groups`` groups of ``m`` replies of the policy (the shipped tiny policy unless
``--model`` names another) for each of the first ``prompts`` training prompts of the task
(``mini-math-strict``; the prompts the runs train on, data seed 0), with the sampler the
trainer uses (temperature 1 unless ``--temperature``), scores them, and writes

- ``<out>/untrained_rollouts.json``: the prompts, the replies and their rewards;
- ``<out>/predictions.json``: each channel's mean, within-group variance and share of
  constant groups; Prop 1's predicted influence shares under AN and NA (per prompt, from
  each prompt's rollouts); the influence the trainer would log on these groups; and whether
  zero-fill conditioning would change any reward.

    OMP_NUM_THREADS=1 python scripts/heterogeneity_predict.py --out data/heterogeneity
    OMP_NUM_THREADS=1 python scripts/heterogeneity_predict.py --out data/heterogeneity/smollm2 \
        --model smollm2-135m-instruct --task mini-math-strict-instructed --temperature 0.8 --prompts 32 --groups 2
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from mrgrpo.analysis.heterogeneity import (conditioning_changes, group_stats, predicted_influence_from_rollouts,
                                           realized_influence_from_groups, shares)
from mrgrpo.core.files import atomic_write_text
from mrgrpo.corpus.hf import HFBackend
from mrgrpo.tasks.registry import STRICT_TASKS, task_max_new_tokens, task_setup

WEIGHTS = (1.0, 0.5)


def _rounded(x) -> list:
    return [round(float(v), 6) for v in np.asarray(x).ravel()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data/heterogeneity", help="output folder [data/heterogeneity]")
    ap.add_argument("--prompts", type=int, default=64, help="training prompts to roll out [64]")
    ap.add_argument("--groups", type=int, default=4, help="groups (sampling seeds) per prompt [4]")
    ap.add_argument("--m", type=int, default=8, help="replies per group, the runs' group size [8]")
    ap.add_argument("--model", default="tiny-math", help="the policy: a model id or folder [tiny-math]")
    ap.add_argument("--task", default="mini-math-strict", choices=STRICT_TASKS, help="[mini-math-strict]")
    ap.add_argument("--temperature", type=float, default=1.0, help="sampling temperature of the runs [1.0]")
    args = ap.parse_args(argv)
    if min(args.prompts, args.groups) < 1 or args.m < 2:
        ap.error("--prompts and --groups must be >= 1 and --m >= 2")
    t0, c0 = time.perf_counter(), time.process_time()
    setup = task_setup(args.task, args.model, n_train=400, n_eval=256, seed=0)
    prompts = setup.train_prompts[:args.prompts]
    budget = task_max_new_tokens(args.task)
    backend = HFBackend(args.model, setup.reward_fn, temperature=args.temperature, max_new_tokens=budget,
                        progress=False)
    seeds = list(range(args.groups))
    groups = backend.generate_groups(prompts, args.m, seeds)  # prompt-major: all seeds of prompt 0, then 1, ...
    R = len(setup.channel_names)
    rewards = np.stack([g.rewards for g in groups]).reshape(len(prompts), len(seeds), args.m, R)
    names = list(setup.channel_names)
    stats = group_stats(rewards.reshape(-1, args.m, R))
    predicted = predicted_influence_from_rollouts(rewards.reshape(len(prompts), -1, R), WEIGHTS)
    realized = {mode: realized_influence_from_groups(rewards.reshape(-1, args.m, R), WEIGHTS, mode)
                for mode in ("an", "na")}
    out = Path(args.out)
    rollouts = {
        "task": args.task, "model": args.model, "temperature": args.temperature, "max_new_tokens": budget, "m": args.m,
        "sampling_seeds": seeds, "channels": names,
        "prompts": [p["prompt"] for p in prompts], "gold": [p["gold"] for p in prompts],
        "completions": [[list(g.completions) for g in groups[i * len(seeds):(i + 1) * len(seeds)]]
                        for i in range(len(prompts))],
        "rewards": rewards.tolist(),
    }
    atomic_write_text(out / "untrained_rollouts.json", json.dumps(rollouts, separators=(",", ":")))
    predictions = {
        "written_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "task": args.task, "model": args.model, "weights": list(WEIGHTS), "channels": names,
        "rollouts": {"prompts": len(prompts), "groups_per_prompt": len(seeds), "m": args.m,
                     "file": "untrained_rollouts.json"},
        "channel_stats": {k: dict(zip(names, _rounded(v))) for k, v in stats.items()},
        "prop1_predicted": {k: dict(zip(names, _rounded(v))) for k, v in predicted.items()},
        "trainer_metric_on_these_groups": {
            **{mode: dict(zip(names, _rounded(v))) for mode, v in realized.items()},
            **{f"{mode}_share": dict(zip(names, _rounded(shares(v)))) for mode, v in realized.items()}},
        "zero_fill_changes": {"format gates strict": conditioning_changes(rewards, 1, 0),
                              "strict gates format": conditioning_changes(rewards, 0, 1)},
        "seconds": {"wall": round(time.perf_counter() - t0, 1), "cpu": round(time.process_time() - c0, 1)},
        "python": platform.python_version(),
    }
    atomic_write_text(out / "predictions.json", json.dumps(predictions, indent=1) + "\n")
    print(json.dumps(predictions, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
