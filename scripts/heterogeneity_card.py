#!/usr/bin/env python
"""Write the card (``README.md``) of the SmolLM2-135M-Instruct heterogeneity runs from what has landed.

    python scripts/heterogeneity_card.py [--data data/heterogeneity/smollm2]

The files and their sizes, the commands, one row per exported run (training-step time from its
metrics, the whole command's wall and CPU time from ``runs.log``, the held-out aggregate before
and after training), and the versions of the machine that writes the card.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from mrgrpo.core.files import atomic_write_text
from mrgrpo.train.stored_runs import load_runs, machine_versions, run_times

#: The command that renders the stored SmolLM2 heterogeneity run from these records.
RENDER = ("mrgrpo book run heterogeneity -p data_dir ../data/heterogeneity/smollm2 -p smollm2_dir None "
          "--out chapters/runs/heterogeneity_smollm2.ipynb --overwrite")
#: A GNU time line of scripts/run_queue.sh: "<run>: <wall> s wall, <user> s user, <sys> s sys".
_TIME_RE = re.compile(r"^(\S+): ([0-9.]+) s wall, ([0-9.]+) s user, ([0-9.]+) s sys$", re.MULTILINE)


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def card(data: Path) -> str:
    runs = data / "runs"
    log = data / "runs.log"
    clock = {m[1]: (float(m[2]), float(m[3]) + float(m[4])) for m in _TIME_RE.finditer(log.read_text())} \
        if log.is_file() else {}
    comparison = load_runs(runs)
    times = run_times(comparison)
    after = comparison.evals.set_index(["mode", "seed"])["aggregate"]
    before = comparison.untrained["aggregate"]
    files = [("design.md", "the design, weights, endpoint and margin (0.05), written before the runs"),
             ("predictions.json", "channel statistics and Prop 1's predicted influence shares from the untrained "
                                  "replies, written before the runs"),
             ("untrained_rollouts.json", "those replies: 32 training problems x 2 groups x 8, with rewards"),
             ("runs", f"{len(times)} runs' records (config, run settings, metrics per step, held-out evaluations "
                      "and every held-out reply before and after training); no weights"),
             ("runs.log", "the training log: each run's start and its `/usr/bin/time` line")]
    lines = ["# The channel-heterogeneity experiment on SmolLM2-135M-Instruct: stored runs", "",
             "The SmolLM2 part of `chapters/heterogeneity.md` (\"When does AN starve a channel?\"): NA and AN "
             "on the task `mini-math-strict-instructed` (strict, weight 1; format, weight 0.5), paired seeds, one "
             "shared held-out split of 64 problems, greedy evaluation before and after training.", "",
             "| file | what | size |", "|---|---|--:|",
             *[f"| `{name}` | {what} | {_size(data / name) / 1024:.0f} kB |" for name, what in files
               if (data / name).exists()], "",
             "## Commands", "", "```",
             "OMP_NUM_THREADS=1 python scripts/heterogeneity_predict.py --out data/heterogeneity/smollm2 \\",
             "    --model smollm2-135m-instruct --task mini-math-strict-instructed --temperature 0.8 --prompts 32 "
             "--groups 2",
             "OMP_NUM_THREADS=1 PY=.venv/bin/python bash scripts/heterogeneity_smollm2_runs.sh   # two copies, one "
             "per core", RENDER, "```", "",
             "## Times", "",
             "One torch thread per run, two runs at a time on a 2-core x86_64 machine that also ran the book's CI "
             "check during the first runs, so wall times include waiting for a core; the median step is the "
             "run's speed. Command = the whole `mrgrpo train` (loading, two held-out evaluations, training).", "",
             "| run | steps | training steps, wall (s) | median step (s) | command wall (s) | command CPU (s) | "
             "mean reply tokens | held-out aggregate, step 0 -> last |",
             "|---|--:|--:|--:|--:|--:|--:|---|"]
    for (mode, seed), t in sorted(times.iterrows(), key=lambda kv: (kv[0][1], kv[0][0])):
        name = f"{mode.lower()}-s{seed}"
        wall, cpu = (f"{v:.0f}" for v in clock[name]) if name in clock else ("n/a", "n/a")
        lines.append(f"| {name} | {t['steps']:.0f} | {t['training-step time (s)']:.0f} | {t['median step (s)']:.1f} | "
                     f"{wall} | {cpu} | {t['mean reply tokens (trained)']:.1f} | "
                     f"{before:.3f} -> {after[(mode, seed)]:.3f} |")
    total = times["training-step time (s)"].sum()
    cpu_total = sum(c for _, c in clock.values())
    lines += ["", f"In all: {total / 60:.1f} minutes of training steps (wall), {cpu_total / 3600:.2f} core-hours of "
                  "CPU for the whole commands (the issue's budget: 6).", "",
              f"Versions of the machine that wrote this card: {machine_versions()}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/heterogeneity/smollm2", help="the experiment's folder")
    data = Path(ap.parse_args(argv).data)
    atomic_write_text(data / "README.md", card(data))
    print(f"wrote {data / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
