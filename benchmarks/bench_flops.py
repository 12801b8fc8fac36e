"""A FLOP account of one GRPO step of mrgrpo's trainer, per precision: where the time goes, against the matmul peak.

Setup (as ``bench_grpo_step.py``): SmolLM2-135M-Instruct (``smollm2-135m-instruct`` from
``$MRGRPO_CACHE``), the fintech task, LoRA r = 16 on q/k/v/o, ``--m`` completions of
``--prompts`` prompts per step, ``--max-new-tokens`` at temperature 0.7, KL 0.05, one update per
batch, on the CPU. Each precision (``--dtypes``, e.g. ``float32,bfloat16``: ``GRPOConfig.dtype``)
runs in a fresh process; they alternate (``alternate.py``), and model loading and the first
``--warmup`` steps are not timed. Each run reports, per phase of a step:

- **generation** (``GRPOTrainer.rollout``: prefill of the distinct prompts, then one decode
  step per new token for every row, ended rows included);
- **reference** (``GRPOTrainer._reference_logprobs``: no-grad forward passes, adapter off);
- **policy** (forward and backward: the rest of ``GRPOTrainer._update`` but the optimizer);
- **optimizer** (gradient clipping is in ``policy``; AdamW's ``step`` here);

its seconds, its FLOPs counted from the model's shapes and the step's token counts (the positions
the hardware computes, padding included: linear layers ``2 n d_in d_out`` per position, LoRA,
attention ``4 L_q L_k d`` per layer, the lm head on the kept positions; a backward through frozen
weights costs one forward of activation gradients, attention and LoRA two), its GFLOP/s, and that
rate as a share of the **matmul peak** measured in the same process and precision (the best
GFLOP/s of a 2048 x 576 by 576 x 1536 product, the MLP's shape; the same for a 16-row product,
the decode step's shape, is printed beside it). An arm ``DTYPE@COMMIT`` (``float32@284284f``, the
commit before issue 22) runs that commit's sampler (``git show``) and the whole batch in one pass:
the step as it was before length batching, last-position prefill logits and dropping ended rows. With ``--profile``, one extra update runs under
``torch.profiler`` and the self time of its operators is grouped (matrix products, attention,
elementwise and casts, ...): where the rest of the time goes.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_flops.py --dtypes float32,bfloat16 --steps 1 --warmup 1 \\
        --prompts 2 --m 4 --max-new-tokens 32 --profile
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from alternate import run_alternating  # noqa: E402

MODEL = "smollm2-135m-instruct"
PHASES = ("generation", "reference", "policy", "optimizer")
LORA = ("q_proj", "k_proj", "v_proj", "o_proj")


class Shapes:
    """FLOPs of a llama-style decoder from its config, with LoRA r on q/k/v/o."""

    def __init__(self, cfg, r: int):
        h, self.layers, self.V = cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size
        d = getattr(cfg, "head_dim", None) or h // cfg.num_attention_heads
        self.q, kv, inter = cfg.num_attention_heads * d, cfg.num_key_value_heads * d, cfg.intermediate_size
        self.h = h
        self.linear = 2 * (h * self.q + 2 * h * kv + self.q * h + 3 * h * inter)       # per position and layer
        self.lora = 2 * r * ((h + self.q) + 2 * (h + kv) + (self.q + h))               # per position and layer

    def forward(self, n: int, L: int, keep: int, ctx: int | None = None) -> float:
        """``n`` rows of ``L`` new positions attending to ``ctx`` keys (default ``L``), ``keep`` logits per row."""
        ctx = L if ctx is None else ctx
        body = n * L * (self.linear + self.lora) + 4 * n * L * ctx * self.q
        return self.layers * body + 2 * n * keep * self.h * self.V

    def backward(self, n: int, L: int, keep: int) -> float:
        """Activation gradients through frozen weights, attention and LoRA twice (a training pass: ``ctx = L``)."""
        body = n * L * (self.linear + 2 * self.lora) + 8 * n * L * L * self.q
        return self.layers * body + 2 * n * keep * self.h * self.V


def matmul_peak(dtype, rows: int, repeats: int = 5) -> float:
    """Best GFLOP/s of a ``rows x 576 @ 576 x 1536`` product in ``dtype``."""
    import torch

    a, b = torch.randn(rows, 576).to(dtype), torch.randn(576, 1536).to(dtype)
    n = max(1, 2048 // rows) * 4
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            a @ b
        best = min(best, (time.perf_counter() - t0) / n)
    return 2 * rows * 576 * 1536 / best / 1e9


def profile_update(tr, roll, adv) -> dict:
    """Self CPU seconds of one ``_update`` by operator group, and its top operators."""
    from torch.profiler import ProfilerActivity, profile

    groups = {"matmul": {"mm", "addmm", "bmm", "matmul", "linear", "baddbmm", "_addmm_activation"},
              "copy / cast": {"copy_", "to", "_to_copy", "clone", "contiguous", "cat", "index", "index_select",
                              "gather", "expand", "slice", "select", "view", "reshape", "transpose", "t", "empty",
                              "empty_like", "zeros", "zeros_like", "ones", "fill_", "zero_", "as_strided",
                              "unsqueeze", "squeeze", "permute", "_reshape_alias", "new_zeros", "new_empty"},
              "softmax / logsumexp": {"softmax", "_softmax", "log_softmax", "_log_softmax", "logsumexp",
                                      "_softmax_backward_data", "_log_softmax_backward_data"}}
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        tr._update(roll, adv)
    by_group, ops = defaultdict(float), []
    for ev in prof.key_averages():
        sec = ev.self_cpu_time_total / 1e6
        name = ev.key.replace("aten::", "")
        if "attention" in name:
            group = "attention"
        else:
            group = next((g for g, keys in groups.items() if name in keys), "elementwise / other")
        by_group[group] += sec
        ops.append((sec, ev.key))
    ops.sort(reverse=True)
    return {"groups": dict(by_group), "top": [(k, s) for s, k in ops[:10]], "total": sum(by_group.values())}


def before(commit: str):
    """The sampler of ``commit`` (``git show``), and a one-pass ``length_chunks``: the step as it was there."""
    import subprocess
    import types

    import mrgrpo.train.trainer as trainer_mod

    root = Path(__file__).resolve().parents[1]
    src = subprocess.run(["git", "show", f"{commit}:mrgrpo/lm/sampling.py"], cwd=root, capture_output=True,
                         text=True, check=True).stdout
    old = sys.modules["sampling_before"] = types.ModuleType("sampling_before")
    exec(compile(src, f"{commit}:mrgrpo/lm/sampling.py", "exec"), old.__dict__)
    one_pass = trainer_mod.length_chunks
    trainer_mod.sample_tokens = old.sample_tokens
    trainer_mod.length_chunks = lambda roll, **kw: one_pass(roll, max_rows=roll["input_ids"].shape[0], cost=10**12)


def child(variant: str, threads: int, prompts: int, m: int, max_new: int, steps: int, warmup: int,
          profile: bool) -> dict:
    import torch

    from mrgrpo.tasks.registry import task_setup
    from mrgrpo.train import GRPOConfig, GRPOTrainer

    torch.set_num_threads(threads)
    dtype, _, commit = variant.partition("@")
    if commit:
        before(commit)
    setup = task_setup("fintech", n_train=64, n_eval=0, seed=0)
    cfg = GRPOConfig(model=MODEL, dtype=dtype, mode="na", weights=(1.0, 1.0, 0.5), use_lora=True, lora_r=16,
                     lora_alpha=32, lora_target_modules=LORA, m=m, batch_prompts=prompts, max_new_tokens=max_new,
                     temperature=0.7, kl_coef=0.05, lr=5e-6, num_iterations=1, loss_aggregation="token",
                     n_steps=warmup + steps, seed=0, device="cpu", progress=False)
    tr = GRPOTrainer(cfg, setup.reward_fn, setup.train_prompts)
    tr._load()
    prec = tr.precision
    peak = {"gemm": matmul_peak(prec.compute, 2048), "gemv16": matmul_peak(prec.compute, 16)}
    shapes = Shapes(tr.model.get_base_model().config, cfg.lora_r)
    n_train = sum(p.numel() for p in tr.model.parameters() if p.requires_grad)
    t, rolls, calls, now = defaultdict(list), [], [], ["other"]

    def record(module, args, kw):  # every forward of the base model: its phase and shape
        ids, mask = kw.get("input_ids"), kw.get("attention_mask")
        n, L = ids.shape
        keep = int(kw.get("logits_to_keep") or 0) or L
        calls.append((now[0], n, L, mask.shape[1] if mask is not None else L, keep, torch.is_grad_enabled()))

    def timed(fn, key, keep=None):
        def wrapper(*a, **k):
            outer, now[0] = now[0], key
            t0 = time.perf_counter()
            try:
                out = fn(*a, **k)
            finally:
                t[key].append(time.perf_counter() - t0)
                now[0] = outer
            if keep is not None:
                keep.append(out)
            return out
        return wrapper

    tr.model.get_base_model().register_forward_pre_hook(record, with_kwargs=True)
    tr.rollout = timed(tr.rollout, "generation", rolls)
    tr._reference_logprobs = timed(tr._reference_logprobs, "reference")
    tr._update = timed(tr._update, "policy")
    tr.optimizer.step = timed(tr.optimizer.step, "optimizer")
    paddings, marks = [], []
    tr.callbacks.append(lambda trainer, rec: paddings.append(dict(trainer.padding)) or marks.append(len(calls)))
    history = tr.train()
    prof = None
    if profile:
        adv = torch.linspace(-1, 1, len(rolls[-1]["texts"]))
        prof = profile_update(tr, rolls[-1], adv)
    out = {"dtype": variant, "compute": str(prec.compute), "threads": threads, "peak": peak, "steps": [],
           "profile": prof, "load": os.getloadavg()}
    for k, rec in enumerate(history):
        flops = dict.fromkeys(PHASES, 0.0)
        for phase, n, L, ctx, keep, grad in calls[(marks[k - 1] if k else 0):marks[k]]:
            flops[phase] += shapes.forward(n, L, keep, ctx) + (shapes.backward(n, L, keep) if grad else 0.0)
        flops["optimizer"] = 12.0 * n_train
        sec = {p: t[p][k] for p in ("generation", "reference", "optimizer")}
        sec["policy"] = t["policy"][k] - sec["reference"] - sec["optimizer"]
        out["steps"].append({"seconds": rec["step_time"], "tokens": rolls[k]["n_tokens"], "phase_seconds": sec,
                             "phase_flops": flops, "padding": paddings[k], "completion_len": rec["completion_len"],
                             "forwards": {p: sum(1 for c in calls[(marks[k - 1] if k else 0):marks[k]] if c[0] == p)
                                          for p in ("generation", "reference", "policy")}})
    return out


def summarize(records: list[dict], warmup: int) -> dict:
    steps = [s for r in records for s in r["steps"][warmup:]]
    med = lambda xs: statistics.median(xs)  # noqa: E731
    return {"tokens_per_s": med([s["tokens"] / s["seconds"] for s in steps]),
            "seconds": med([s["seconds"] for s in steps]),
            "phase_seconds": {p: med([s["phase_seconds"][p] for s in steps]) for p in PHASES},
            "phase_flops": {p: med([s["phase_flops"][p] for s in steps]) for p in PHASES},
            "peak": {k: max(r["peak"][k] for r in records) for k in ("gemm", "gemv16")},
            "padding": {k: med([s["padding"][k] for s in steps]) for k in ("before", "after", "passes")},
            "completion_len": med([s["completion_len"] for s in steps]), "n": len(steps),
            "forwards": steps[-1]["forwards"],
            "load": [r["load"][0] for r in records]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtypes", default="float32,bfloat16",
                    help="arms: GRPOConfig.dtype values; DTYPE@COMMIT runs that commit's sampler and one-pass update")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--m", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--steps", type=int, default=1, help="timed steps per run")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps at the start of each run")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="profile one extra update per run")
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.threads, a.prompts, a.m, a.max_new_tokens, a.steps, a.warmup, a.profile)))
        return
    dtypes = [d.strip() for d in a.dtypes.split(",") if d.strip()]
    args = ["--threads", a.threads, "--prompts", a.prompts, "--m", a.m, "--max-new-tokens", a.max_new_tokens,
            "--steps", a.steps, "--warmup", a.warmup] + (["--profile"] if a.profile else [])
    env = {"OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads), "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1"}
    print(f"uptime load before: {os.getloadavg()[0]:.2f}", flush=True)
    runs = run_alternating(__file__, dtypes, lambda v: args, a.repeats, env=env,
                           report=lambda rep, v, r: print(f"  repeat {rep} {v}: steps of " + ", ".join(
                               "%.1f" % s["seconds"] for s in r["steps"]) + f" s, load {r['load'][0]:.1f}", flush=True))
    if a.json:
        Path(a.json).write_text(json.dumps(runs, indent=1))
    print(f"\n{MODEL}, fintech, LoRA r=16 q/k/v/o, {a.prompts} prompts x m={a.m}, {a.max_new_tokens} new tokens, "
          f"threads={a.threads}; medians over {a.steps} timed step(s) x {a.repeats} repeat(s)")
    table = {d: summarize(runs[d], a.warmup) for d in dtypes}
    for d, s in table.items():
        pk = s["peak"]["gemm"]
        print(f"\n[{d}] {s['seconds']:.1f} s/step, {s['tokens_per_s']:.1f} completion tokens/s (mean length "
              f"{s['completion_len']:.1f}); matmul peak {pk:.1f} GFLOP/s (16-row product {s['peak']['gemv16']:.1f}); "
              f"padded positions {s['padding']['before']:.1%} in one pass -> {s['padding']['after']:.1%} in "
              f"{s['padding']['passes']:.0f} length-sorted passes; forward calls "
              + ", ".join(f"{p} {v}" for p, v in s["forwards"].items())
              + f"; load {', '.join(f'{x:.1f}' for x in s['load'])}")
        print(f"  {'phase':11s} {'seconds':>8s} {'share':>6s} {'GFLOP':>8s} {'GFLOP/s':>8s} {'% peak':>7s}")
        for p in PHASES:
            sec, fl = s["phase_seconds"][p], s["phase_flops"][p] / 1e9
            print(f"  {p:11s} {sec:8.2f} {sec / s['seconds']:6.0%} {fl:8.2f} {fl / sec:8.2f} {fl / sec / pk:7.1%}")
        other = s["seconds"] - sum(s["phase_seconds"].values())
        print(f"  {'other':11s} {other:8.2f} {other / s['seconds']:6.0%}   (scoring, advantages, metrics)")
        prof = runs[d][-1].get("profile")
        if prof:
            tot = prof["total"]
            print("  profile of one update (self CPU time): " + ", ".join(
                f"{g} {v / tot:.0%}" for g, v in sorted(prof["groups"].items(), key=lambda kv: -kv[1])))
            print("    top: " + "; ".join(f"{k} {v:.2f}s" for k, v in prof["top"][:6]))
    if len(dtypes) > 1:
        base = table[dtypes[0]]
        for d in dtypes[1:]:
            s = table[d]
            print(f"\n{d} / {dtypes[0]}: tokens/s {s['tokens_per_s'] / base['tokens_per_s']:.2f}x; speed-up per phase "
                  + ", ".join(f"{p} {base['phase_seconds'][p] / s['phase_seconds'][p]:.2f}x" for p in PHASES)
                  + f"; matmul peak {s['peak']['gemm'] / base['peak']['gemm']:.2f}x")


if __name__ == "__main__":
    main()
