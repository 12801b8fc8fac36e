#!/usr/bin/env python
"""Tier 3's predictions, from the untrained SmolLM2 policy's rollouts, written before any run.

Reads the stored untrained rollouts of ``smollm2-135m-instruct`` on fintech (``--corpus``:
40 held-out prompts x 8 seeds x 16 replies at the training temperature 0.8 and budget of 64
new tokens, scored on compliance, politeness and action) and writes ``<out>/predictions.json``:

- each channel's mean, within-group variance and share of constant groups (groups of 8, the
  runs' group size);
- Proposition 1's predicted influence of each channel and its share under NA and AN on the
  paper's rewards (politeness gated by compliance: conditioning), and under NA on the
  ungated rewards (``fintech-ungated``, recomputed from the stored replies: reweighting only);
- the direction in which AN should move the allocation relative to NA, per channel;
- how many politeness rewards the gate changes on these rollouts (zero-fill conditioning of
  the ungated rewards gives the gated ones back exactly).

    python scripts/tier3_predict.py --out data/smollm2-tier3
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import numpy as np

from mrgrpo.analysis.heterogeneity import conditioning_changes, group_stats
from mrgrpo.analysis.influence import influence_prediction, influence_shares
from mrgrpo.core.advantage import apply_conditioning
from mrgrpo.core.files import atomic_write_text
from mrgrpo.corpus import load_corpus, pack_completions, pack_for_analysis
from mrgrpo.tasks import task_reward

WEIGHTS = (1.0, 1.0, 0.5)
GATE, CONDITIONED = 0, 1  # compliance gates politeness
M = 8  # the runs' group size


def _named(names, values) -> dict:
    return {n: round(float(v), 6) for n, v in zip(names, np.asarray(values).ravel())}


def predictions(corpus_path: str) -> dict:
    corpus = load_corpus(corpus_path)
    names = list(corpus.reward_names)
    if names != ["compliance", "politeness", "action"]:
        raise ValueError(f"{corpus_path} scores {names}, not fintech's compliance, politeness, action")
    rewards = pack_for_analysis(corpus, max(corpus.m_grid))           # (P, K, m, R)
    P, K, m, R = rewards.shape
    groups = rewards.reshape(P, K * m // M, M, R)                       # the groups of 8 a step sees
    ungated_fn = task_reward("fintech-ungated")
    texts = pack_completions(corpus, m)
    ungated = rewards.copy()
    ungated[..., CONDITIONED] = np.vectorize(ungated_fn.raw_politeness, otypes=[float])(texts)
    if not np.array_equal(apply_conditioning(ungated, GATE, CONDITIONED, "zero_fill"), rewards):
        raise ValueError("gating the recomputed politeness does not give the stored rewards back")
    paper = influence_prediction(rewards, WEIGHTS)
    arms = {"NA": paper["NA"], "AN": paper["AN"], "NA, ungated": influence_prediction(ungated, WEIGHTS)["NA"]}
    share = {arm: influence_shares(v) for arm, v in arms.items()}
    stats = group_stats(groups.reshape(-1, M, R))
    return {
        "written_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": "smollm2-135m-instruct", "task": "fintech", "weights": list(WEIGHTS), "channels": names,
        "rollouts": {"file": str(corpus_path), "prompts": P, "groups_per_prompt": K, "m_stored": m,
                     "m_runs": M, "temperature": 0.8, "max_new_tokens": 64},
        "channel_stats": {k: _named(names, v) for k, v in stats.items()},
        "prop1_influence": {arm: _named(names, v) for arm, v in arms.items()},
        "prop1_share": {arm: _named(names, v) for arm, v in share.items()},
        "an_minus_na_share": _named(names, share["AN"] - share["NA"]),
        "an_shifts_toward": [n for n, d in zip(names, share["AN"] - share["NA"]) if d > 0],
        "an_shifts_away_from": [n for n, d in zip(names, share["AN"] - share["NA"]) if d < 0],
        "gate_changes": conditioning_changes(ungated, GATE, CONDITIONED),
        "gate_changes_of": int(rewards[..., GATE].size),
        "noncompliant_share": round(float((rewards[..., GATE] == 0).mean()), 6),
        "ungated_politeness_mean_when_noncompliant": round(float(ungated[..., CONDITIONED][rewards[..., GATE] == 0]
                                                                 .mean()), 6),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="data/smollm2-fintech/corpus.parquet",
                    help="the untrained rollouts [data/smollm2-fintech/corpus.parquet]")
    ap.add_argument("--out", default="data/smollm2-tier3", help="output folder [data/smollm2-tier3]")
    args = ap.parse_args(argv)
    out = Path(args.out) / "predictions.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        print(f"{out} exists: predictions are written once, before the runs", file=sys.stderr)
        return 1
    result = predictions(args.corpus)
    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
