#!/usr/bin/env python
"""Write the card (``README.md``) of the pre-registered Tier-3 runs from what has landed.

    python scripts/tier3_card.py [--data data/smollm2-tier3]

One row per exported run (training-step time summed from its metrics; held-out aggregate
before and after, scored with the paper's fintech reward), the runs still to come, the
command, and the versions of the machine that writes the card.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mrgrpo.analysis.preregistered import arm_labels, finished_seeds, load_design
from mrgrpo.core.files import atomic_write_text
from mrgrpo.tasks import task_reward
from mrgrpo.train.experiment import MODE_LABELS
from mrgrpo.train.stored_runs import load_runs, machine_versions, run_times


#: The command that renders the stored Tier-3 run from these records.
RENDER = ("mrgrpo book run tier3 -p runs_dir ../data/smollm2-tier3/runs -p task fintech -p model smollm2-135m-instruct "
          "-p influence_corpus ../data/smollm2-fintech/corpus.parquet -p compare_runs_dir None "
          "--out chapters/runs/tier3_smollm2.ipynb --overwrite")


def card(data: Path) -> str:
    design = load_design(data)
    runs = data / "runs"
    done, planned = sum(map(len, finished_seeds(design, runs).values())), design.n_runs
    lines = [f"# SmolLM2-135M-Instruct on fintech: pre-registered Tier-3 runs ({done} of {planned} finished)", "",
             "Design, predictions and the reasons for both: `DESIGN.md`, `design.json`, `predictions.json` "
             "(written before the first run). Each folder under `runs/` holds one finished run's records "
             "(`config.json`, `run_info.json`, `metrics.json`, `eval.json`, `eval_samples.json`: 64 shared "
             "held-out prompts, greedy, before training and after); no weights. Read by "
             "`chapters/tier3_preregistered.md` (the planned analysis) and by `chapters/tier3.md` (beside the tiny "
             "policy's runs, and the claim ledger's SmolLM2 cells).", "",
             "Made with (one run at a time, one torch thread, resumable):", "", "```",
             "OMP_NUM_THREADS=1 PY=.venv/bin/python bash scripts/tier3_runs.sh", "```", "",
             "The Tier-3 chapter executed on these runs alone is the stored run `chapters/runs/tier3_smollm2.ipynb`, "
             "rendered by", "", "```", RENDER, "```", "",
             "This folder was written as `data/smollm2-tier3-shared/` and replaced the earlier runs' folder "
             "(six runs of 24 steps, each seed on its own held-out split: `data/smollm2-tier3/` at commit "
             "`5f617ba`) once they were superseded; the design's files are unchanged, so `DESIGN.md` names the "
             "old folder.", ""]
    rows, total = [], 0.0
    if done:
        comparison = load_runs(runs, reward_fn=task_reward("fintech"), base_task="fintech")
        arm_of = {label: arm for arm, label in arm_labels(design, MODE_LABELS, base_task="fintech").items()}
        times = run_times(comparison)
        times.index = [f"{arm_of[label]}-s{seed}" for label, seed in times.index]
        times = times.sort_index()
        total = times["training-step time (s)"].sum()
        rows = [f"| {name} | {t['steps']:.0f} | {t['training-step time (s)']:.0f} | {t['median step (s)']:.1f} | "
                f"{t['longest step (s)']:.0f} | {t['mean reply tokens (trained)']:.1f} |"
                for name, t in times.iterrows()]
        lines += [f"Training-step time of the {done} runs stored: {total / 60:.1f} minutes in all "
                  "(evaluation and loading add about 3 minutes per run). A step is timed on the wall clock, so a "
                  "step during which its run was paused (SIGSTOP, to give the machine to a CI check) or shared "
                  "its core counts that time; the median step is the run's speed.", "",
                  "| run | steps | training-step time (s) | median step (s) | longest step (s) | "
                  "mean reply tokens (trained) |",
                  "|---|--:|--:|--:|--:|--:|", *rows, ""]
        untrained = comparison.untrained["aggregate"]
        lines += [f"Held-out aggregate of the untrained policy, scored with the paper's reward: {untrained:.3f}.", ""]
    todo = [f"{arm}-s{s}" for arm, a in design.arms.items() for s in a.seeds if not (runs / f"{arm}-s{s}").is_dir()]
    lines += ["Still to run: " + (", ".join(todo) if todo else "none") + ".", "",
              f"Versions of the machine that wrote this card: {machine_versions()}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/smollm2-tier3", help="the design's folder")
    args = ap.parse_args(argv)
    data = Path(args.data)
    atomic_write_text(data / "README.md", card(data))
    print(f"wrote {data / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
