"""Training steps per second: ``mrgrpo.train.GRPOTrainer`` vs TRL's ``GRPOTrainer`` (trl 1.16).

The identical setup for both: the tiny policy (``data/tiny-math``; a random tiny
Qwen2 of the same shape if it is missing), LoRA r = 16 / alpha 32 on q, k, v, o,
4 prompts x m = 8 completions per step, ``max_new_tokens`` 16, temperature 1,
beta (KL) 0.05, one update per batch, per-token ("dapo" / "token") loss
aggregation, lr 1e-3, two reward channels, ``OMP_NUM_THREADS=1``.

Each backend runs in its own fresh subprocess (so neither sees the other's
imports or memory), repeated and interleaved; the first ``--warmup`` steps of a
run are not timed. Reported: median steps/s, median completion tokens/s (EOS
included; the two policies drift apart during training and sample completions of
different lengths, so steps/s alone compares unequal work), mean completion length,
the ratios ours / TRL of both rates, and peak memory during training (CPU: the peak
resident set size, reset just before training; GPU: ``torch.cuda.max_memory_allocated``).
The rates are also given per CPU second of the process (``time.process_time``, one
thread): on a shared machine the wall-clock rates swing with the other jobs, these do not.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_trainer_vs_trl.py [--steps 30] [--repeats 2]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from alternate import run_alternating  # benchmarks/alternate.py

ROOT = Path(__file__).resolve().parents[1]
P, M, MAX_NEW, BETA, LR, TEMP = 4, 8, 16, 0.05, 1e-3, 1.0
PROMPTS = [f"Q: {a} + {b} = ?\nA:" for a in range(10) for b in range(10)]


def rewards(completion: str) -> tuple[float, float]:
    return float("=" in completion), sum(c.isdigit() for c in completion) / max(len(completion), 1)


def model_path(tmp: str) -> str:
    shipped = ROOT / "data" / "tiny-math"
    if (shipped / "config.json").exists():
        return str(shipped)
    sys.path.insert(0, str(ROOT / "tests"))
    from _tiny_lm import build_tiny_lm

    return build_tiny_lm(Path(tmp) / "tiny", hidden=64, init_std=0.02)


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(path: str, steps: int, warmup: int, tmp: str) -> dict:
    from mrgrpo.train import GRPOConfig, GRPOTrainer

    stamps = []

    def reward_fn(c, p):
        return list(rewards(c))

    reward_fn.channel_names = ("has_eq", "digits")
    cfg = GRPOConfig(model=path, mode="na", weights=(1.0, 1.0), n_steps=steps, batch_prompts=P, m=M,
                     max_new_tokens=MAX_NEW, temperature=TEMP, kl_coef=BETA, lr=LR, lora_r=16, lora_alpha=32,
                     num_iterations=1, loss_aggregation="token", progress=False, seed=0,
                     use_chat_template=False)  # TRL sends plain-string prompts as they are
    tr = GRPOTrainer(cfg, reward_fn, PROMPTS,
                     callbacks=[lambda t, r: stamps.append((time.perf_counter(), time.process_time()))])
    tr._load()  # model loading is not training
    _reset_peak()
    t0 = time.perf_counter()
    hist = tr.train()
    tokens = [r["completion_len"] * P * M for r in hist]  # completion tokens of each step
    return {"t0": t0, "stamps": stamps, "tokens": tokens, "peak_mb": _peak_mb()}


def run_trl(path: str, steps: int, warmup: int, tmp: str) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    stamps, lens = [], []

    def has_eq(prompts, completions, completion_ids, **kw):
        lens.extend(len(c) for c in completion_ids)  # tokens up to and including EOS, as ours
        return [rewards(c)[0] for c in completions]

    def digits(prompts, completions, **kw):
        return [rewards(c)[1] for c in completions]

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            stamps.append((time.perf_counter(), time.process_time()))

    import torch

    args = GRPOConfig(output_dir=str(Path(tmp) / "trl"), per_device_train_batch_size=P * M, num_generations=M,
                      max_completion_length=MAX_NEW, temperature=TEMP, beta=BETA, num_iterations=1,
                      learning_rate=LR, max_steps=steps, loss_type="dapo", logging_steps=10**6,
                      save_strategy="no", report_to=[], disable_tqdm=True, seed=0,
                      use_cpu=not torch.cuda.is_available(), bf16=torch.cuda.is_available(),
                      dataloader_num_workers=0)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                      task_type="CAUSAL_LM")
    trainer = GRPOTrainer(model=path, reward_funcs=[has_eq, digits], args=args, peft_config=lora,
                          train_dataset=Dataset.from_dict({"prompt": PROMPTS}), callbacks=[Stamp()])
    _reset_peak()
    t0 = time.perf_counter()
    trainer.train()
    tokens = [sum(lens[i:i + P * M]) for i in range(0, len(lens), P * M)]  # one reward call per step
    return {"t0": t0, "stamps": stamps, "tokens": tokens, "peak_mb": _peak_mb()}


def child(backend: str, steps: int, warmup: int) -> None:
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = model_path(tmp)
        out = (run_ours if backend == "ours" else run_trl)(path, steps, warmup, tmp)
    st, tokens = out["stamps"], out["tokens"]
    if len(tokens) != len(st):
        sys.exit(f"{backend}: {len(tokens)} token counts for {len(st)} steps")
    if len(st) < warmup + 2:
        sys.exit(f"{backend}: {len(st)} steps leave none to time after {warmup} warm-up steps")
    # the window from the end of step `warmup` to the end of the last step holds steps warmup+1 ...
    n, timed_tokens = len(st) - 1 - warmup, sum(tokens[warmup + 1:])
    dt, dcpu = st[-1][0] - st[warmup][0], st[-1][1] - st[warmup][1]
    print(json.dumps({"backend": backend, "steps_per_s": n / dt, "tokens_per_s": timed_tokens / dt,
                      "steps_per_cpu_s": n / dcpu, "tokens_per_cpu_s": timed_tokens / dcpu,
                      "completion_len": sum(tokens) / (len(tokens) * P * M),
                      "peak_mb": out["peak_mb"], "n_steps": len(st)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--child", choices=("ours", "trl"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.steps < a.warmup + 2:
        ap.error("--steps counts the warm-up steps too: it must be at least --warmup + 2")
    if a.child:
        child(a.child, a.steps, a.warmup)
        return
    import statistics

    import trl

    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    def report(rep: int, backend: str, rec: dict) -> None:
        print(f"  repeat {rep}: {backend:4s} {rec['steps_per_s']:6.2f} steps/s, "
              f"{rec['tokens_per_s']:7.0f} tokens/s ({rec['steps_per_cpu_s']:.2f} steps, "
              f"{rec['tokens_per_cpu_s']:.0f} tokens per CPU s), completion length {rec['completion_len']:.1f}, "
              f"peak memory {rec['peak_mb']:.0f} MiB", flush=True)

    results = run_alternating(__file__, ["ours", "trl"], lambda _: ["--steps", a.steps, "--warmup", a.warmup],
                              a.repeats, env=env, report=report)
    keys = ("steps_per_s", "tokens_per_s", "steps_per_cpu_s", "tokens_per_cpu_s", "completion_len")
    med = {b: {k: statistics.median(r[k] for r in results[b]) for k in keys} for b in results}
    mem = {b: max(r["peak_mb"] for r in results[b]) for b in results}
    print(f"\nsetup: {P} prompts x m={M}, max_new_tokens={MAX_NEW}, beta={BETA}, LoRA r=16, one update per batch, "
          f"OMP_NUM_THREADS=1, trl {trl.__version__}, {a.steps} steps ({a.warmup} untimed) x {a.repeats} repeats")
    for name, b in (("mrgrpo GRPOTrainer:", "ours"), ("TRL GRPOTrainer:   ", "trl")):
        print(f"{name} {med[b]['steps_per_s']:.2f} steps/s   {med[b]['tokens_per_s']:.0f} tokens/s   "
              f"({med[b]['steps_per_cpu_s']:.2f} steps, {med[b]['tokens_per_cpu_s']:.0f} tokens per CPU s)   "
              f"completion length {med[b]['completion_len']:.1f} tokens   peak memory {mem[b]:.0f} MiB")
    print(f"ratio (ours / TRL): {med['ours']['steps_per_s'] / med['trl']['steps_per_s']:.2f}x steps/s, "
          f"{med['ours']['tokens_per_s'] / med['trl']['tokens_per_s']:.2f}x tokens/s (per completion token), "
          f"{mem['ours'] / mem['trl']:.2f}x peak memory")
    print(f"per CPU second (ours / TRL): {med['ours']['steps_per_cpu_s'] / med['trl']['steps_per_cpu_s']:.2f}x steps, "
          f"{med['ours']['tokens_per_cpu_s'] / med['trl']['tokens_per_cpu_s']:.2f}x tokens")


if __name__ == "__main__":
    main()
