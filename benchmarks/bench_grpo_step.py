"""The cost of one GRPO step on SmolLM2-135M-Instruct: mrgrpo's engine against the TRL engine.

One setup, run through both engines of ``mrgrpo train`` (``GRPOConfig.engine``): the model id
``smollm2-135m-instruct`` (loaded from mrgrpo's cache, ``$MRGRPO_CACHE``), the fintech task
(three channels, w = (1, 1, 0.5), NA), LoRA r = 16 / alpha 32 on q, k, v, o, m = 8 completions
per prompt, 2 prompts per step (``--prompts 2,4`` adds 4), 64 new tokens at temperature 0.7,
KL beta 0.05, one update per batch, per-token loss aggregation, ``OMP_NUM_THREADS=1`` (or
``--threads``).

Each (engine, prompts) run is a fresh subprocess; the runs alternate engines (ours, trl, then
trl, ours, ...). Model loading is not timed, and the first ``--warmup`` steps of a run are left
out. Reported per engine and prompt count, as medians over the timed steps of all repeats:

- seconds per step, completions per second and completion tokens per second (EOS included;
  the two engines sample different completions, so tokens/s is the rate of equal work);
- the mean completion length;
- the split of a step: **generation** (sampling the completions: ``GRPOTrainer.rollout``;
  TRL's ``_generate``), **scoring** (the reward function: ``GRPOTrainer._score``; TRL's
  ``_calculate_rewards``), **update** (everything else in the step: reference and old
  log-probs, loss, backward, optimizer; for mrgrpo ``GRPOTrainer._update``, for TRL the step
  time minus generation and scoring), and the remainder for mrgrpo (advantages, metrics);
- the ratio ours / TRL of steps/s and tokens/s at each prompt count.

The split is measured by wrapping those methods on the trainer instance (this script only).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_grpo_step.py \\
        --steps 5 --warmup 1 --prompts 2,4 --repeats 2
    python benchmarks/bench_grpo_step.py --steps 1 --warmup 0 --prompts 2     # does it work? (minutes on CPU)
    OMP_NUM_THREADS=1 python benchmarks/bench_grpo_step.py --engines trl --dtypes float32,bfloat16 \\
        --prompts 2 --m 4 --max-new-tokens 32 --steps 1 --warmup 0         # one engine in two precisions

``--dtypes`` runs every engine in each ``GRPOConfig.dtype`` (default ``auto``) and adds the ratio of each
precision to the first, per engine.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

MODEL = "smollm2-135m-instruct"
M, MAX_NEW, TEMP, BETA, LR = 8, 64, 0.7, 0.05, 5e-6
LORA = ("q_proj", "k_proj", "v_proj", "o_proj")


def config(engine: str, prompts: int, steps: int, device: str, dtype: str = "auto", m: int = M,
           max_new: int = MAX_NEW):
    from mrgrpo.train.config import GRPOConfig

    return GRPOConfig(model=MODEL, engine=engine, mode="na", weights=(1.0, 1.0, 0.5), use_lora=True, lora_r=16,
                      lora_alpha=32, lora_target_modules=LORA, m=m, batch_prompts=prompts, max_new_tokens=max_new,
                      temperature=TEMP, kl_coef=BETA, lr=LR, num_iterations=1, loss_aggregation="token",
                      n_steps=steps, seed=0, device=device, progress=False, use_chat_template="auto", dtype=dtype)


def timed(fn, into: list):
    """``fn`` that appends its wall time to ``into`` on every call."""
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            into.append(time.perf_counter() - t0)
    return wrapper


def child(engine: str, prompts: int, steps: int, device: str, threads: int, dtype: str = "auto", m: int = M,
          max_new: int = MAX_NEW) -> dict:
    import torch

    from mrgrpo.train.engines import make_trainer
    from mrgrpo.tasks.registry import task_setup

    torch.set_num_threads(threads)
    setup = task_setup("fintech", n_train=64, n_eval=0, seed=0)
    parts: dict[str, list] = defaultdict(list)
    with tempfile.TemporaryDirectory():
        tr = make_trainer(config(engine, prompts, steps, device, dtype, m, max_new), setup.reward_fn,
                          setup.train_prompts)
        if engine == "ours":
            tr._load()  # model loading is not timed
            tr.rollout = timed(tr.rollout, parts["generation"])
            tr._score = timed(tr._score, parts["scoring"])
            tr._update = timed(tr._update, parts["update"])
        else:
            tr.load()
            trl = tr.trainer
            trl._generate = timed(trl._generate, parts["generation"])
            trl._calculate_rewards = timed(trl._calculate_rewards, parts["scoring"])
        history = tr.train()
    out = {"engine": engine, "prompts": prompts, "dtype": dtype, "m": m, "steps": [], "load": os.getloadavg()}
    for k, rec in enumerate(history):
        step = {"seconds": rec["step_time"], "completion_len": rec["completion_len"],
                "generation": parts["generation"][k], "scoring": parts["scoring"][k]}
        if engine == "ours":
            step["update"] = parts["update"][k]
            step["other"] = rec["step_time"] - step["generation"] - step["scoring"] - step["update"]
        else:
            step["update"] = rec["step_time"] - step["generation"] - step["scoring"]
        out["steps"].append(step)
    return out


def summarize(runs: list[dict], warmup: int) -> dict:
    """``{(engine, prompts): medians}`` over the timed steps of every run."""
    table: dict = {}
    groups: dict = defaultdict(list)
    for run in runs:
        groups[(run["engine"], run["prompts"], run.get("dtype", "auto"))] += run["steps"][warmup:]
    for (engine, prompts, dtype), steps in groups.items():
        if not steps:
            continue
        n = prompts * runs[0].get("m", M)
        med = {k: statistics.median(s[k] for s in steps) for k in steps[0]}
        med.update(completions_per_s=statistics.median(n / s["seconds"] for s in steps),
                   tokens_per_s=statistics.median(n * s["completion_len"] / s["seconds"] for s in steps),
                   timed_steps=len(steps))
        table[(engine, prompts, dtype)] = med
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per run")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps at the start of each run")
    ap.add_argument("--prompts", default="2", help="comma list of prompts per step (m = 8 each)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--engines", default="ours,trl")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--dtypes", default="auto", help="comma list of GRPOConfig.dtype values; each runs per engine")
    ap.add_argument("--m", type=int, default=M, help="completions per prompt")
    ap.add_argument("--max-new-tokens", type=int, default=MAX_NEW)
    ap.add_argument("--json", default=None, help="also write every measured step to this file")
    ap.add_argument("--child", nargs=3, metavar=("ENGINE", "PROMPTS", "DTYPE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    total = a.steps + a.warmup
    if a.child:
        print(json.dumps(child(a.child[0], int(a.child[1]), total, a.device, a.threads, a.child[2], a.m,
                               a.max_new_tokens)))
        return
    dtypes = [d.strip() for d in a.dtypes.split(",") if d.strip()]
    engines = [(e.strip(), d) for e in a.engines.split(",") if e.strip() for d in dtypes]
    prompt_counts = [int(p) for p in a.prompts.split(",")]
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads),
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    runs = []
    for rep in range(a.repeats):
        for prompts in prompt_counts:
            order = engines if (rep + prompt_counts.index(prompts)) % 2 == 0 else engines[::-1]
            for engine, dtype in order:
                cmd = [sys.executable, __file__, "--child", engine, str(prompts), dtype, "--steps", str(a.steps),
                       "--warmup", str(a.warmup), "--device", a.device, "--threads", str(a.threads),
                       "--m", str(a.m), "--max-new-tokens", str(a.max_new_tokens)]
                t0 = time.perf_counter()
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if proc.returncode != 0:
                    sys.exit(f"{engine} {dtype} run ({prompts} prompts) failed:\n{proc.stderr[-3000:]}")
                run = json.loads(proc.stdout.strip().splitlines()[-1])
                runs.append(run)
                sec = [f"{s['seconds']:.1f}" for s in run["steps"]]
                print(f"  repeat {rep}, {prompts} prompts x m={a.m}, {engine:4s} {dtype}: steps of {', '.join(sec)} s "
                      f"(run {time.perf_counter() - t0:.0f} s with loading; load {run['load'][0]:.1f})", flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"args": vars(a), "runs": runs}, fh, indent=1)
    table = summarize(runs, a.warmup)
    import torch
    import trl

    print(f"\n{MODEL}, fintech, LoRA r=16 q/k/v/o, m={a.m}, {a.max_new_tokens} new tokens, T={TEMP}, beta={BETA}, "
          f"threads={a.threads}, device={a.device} ({'cuda' if torch.cuda.is_available() else 'cpu'}), trl "
          f"{trl.__version__}; medians over the timed steps ({a.warmup} warm-up step(s) per run left out)")
    print(f"{'engine':6s} {'dtype':8s} {'P':>2s} {'s/step':>7s} {'compl/s':>8s} {'tok/s':>7s} {'len':>5s} "
          f"{'generation':>15s} {'scoring':>13s} {'update':>15s} {'other':>7s} {'steps':>5s}")
    for (engine, prompts, dtype), r in sorted(table.items(), key=lambda kv: (kv[0][1], kv[0][0], kv[0][2])):
        share = lambda k: f"{r[k]:6.2f} ({r[k] / r['seconds']:4.0%})"  # noqa: E731
        other = f"{r['other']:7.2f}" if "other" in r else f"{'-':>7s}"
        print(f"{engine:6s} {dtype:8s} {prompts:2d} {r['seconds']:7.2f} {r['completions_per_s']:8.2f} "
              f"{r['tokens_per_s']:7.1f} "
              f"{r['completion_len']:5.1f} {share('generation'):>15s} {share('scoring'):>13s} "
              f"{share('update'):>15s} {other} {r['timed_steps']:5d}")
    for prompts in prompt_counts:
        for dtype in dtypes:
            ours, theirs = table.get(("ours", prompts, dtype)), table.get(("trl", prompts, dtype))
            if ours and theirs:
                print(f"ratio ours / TRL at {prompts} prompts, {dtype}: {theirs['seconds'] / ours['seconds']:.2f}x "
                      f"steps/s, {ours['tokens_per_s'] / theirs['tokens_per_s']:.2f}x tokens/s")
        for engine in dict.fromkeys(e for e, _ in engines):
            base = table.get((engine, prompts, dtypes[0]))
            for dtype in dtypes[1:]:
                other = table.get((engine, prompts, dtype))
                if base and other:
                    print(f"ratio {dtype} / {dtypes[0]}, {engine} at {prompts} prompts: "
                          f"{other['tokens_per_s'] / base['tokens_per_s']:.2f}x tokens/s, "
                          f"{base['seconds'] / other['seconds']:.2f}x steps/s")


if __name__ == "__main__":
    main()
