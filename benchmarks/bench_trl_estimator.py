"""What mrgrpo's estimator costs inside TRL: ``MultiRewardGRPOTrainer`` vs TRL's own ``normalize_then_sum``.

The same TRL 1.16 run three ways, on the tiny policy (``data/tiny-math``) and mini-math
(correctness, length, format; weights 1, 1, 0.5): 4 prompts x m = 8 completions per step,
``max_completion_length`` 48, temperature 1, beta 0.05, LoRA r = 16 / alpha 32 on q, k, v, o,
lr 1e-3, ``loss_type="dapo"``, one update per batch, ``OMP_NUM_THREADS=1``.

- ``trl``: ``trl.GRPOTrainer`` with ``multi_objective_aggregation="normalize_then_sum"``;
- ``mrgrpo``: ``MultiRewardGRPOTrainer(mode="na", normalization="trl", batch_rescale=True)``, the
  same estimator through mrgrpo, so the two runs sample the same completions (equal work:
  the script checks the completion lengths agree);
- ``mrgrpo-paper``: ``mode="na"`` with the paper's normalization and zero-fill conditioning of
  the length channel (a different policy trajectory: compare its tokens/s).

Each run is a fresh subprocess, repeated and interleaved; the first ``--warmup`` steps are not
timed. Reported: median steps/s and completion tokens/s, mean completion length (tokens, EOS
included), the ratios against ``trl`` (target: at least 0.98x), and the time of one call of the
estimator plus its metrics on a batch of this size. Every rate is given twice: per wall-clock
second and per CPU second of the process (``time.process_time``; one thread, so the CPU time is
the work done). On a shared machine the wall-clock rates swing with the other jobs; the CPU
rates do not.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_trl_estimator.py [--steps 30] [--repeats 2]
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

from alternate import run_alternating  # benchmarks/alternate.py

P, M, MAX_NEW, BETA, LR = 4, 8, 48, 0.05, 1e-3
W = [1.0, 1.0, 0.5]
BACKENDS = {
    "trl": None,
    "mrgrpo": dict(mode="na", normalization="trl", batch_rescale=True),
    "mrgrpo-paper": dict(mode="na", normalization="paper", conditioning="zero_fill", gate=0, conditioned=(1,)),
}


def child(backend: str, steps: int, warmup: int) -> dict:
    import torch
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from mrgrpo.integrations.trl import MultiRewardGRPOTrainer
    from mrgrpo.integrations.trl_inputs import channel_reward_funcs, prompt_dataset
    from mrgrpo.lm.models import TINY_MATH_DIR
    from mrgrpo.tasks.registry import task_setup

    torch.set_num_threads(1)
    setup = task_setup("mini-math", tokenizer=str(TINY_MATH_DIR), n_train=256, n_eval=0, seed=0,
                       use_chat_template=False)
    funcs = channel_reward_funcs(setup.reward_fn)
    stamps, cpu_stamps, tokens = [], [], []

    def counted(prompts, completions, completion_ids, **kw):
        tokens.append(sum(len(c) for c in completion_ids))  # tokens up to and including EOS
        return funcs[0](prompts, completions, **kw)

    counted.__name__ = funcs[0].__name__

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            stamps.append(time.perf_counter())
            cpu_stamps.append(time.process_time())

    with tempfile.TemporaryDirectory() as tmp:
        args = GRPOConfig(output_dir=tmp, per_device_train_batch_size=P * M, num_generations=M,
                          max_completion_length=MAX_NEW, temperature=1.0, beta=BETA, num_iterations=1,
                          learning_rate=LR, max_steps=steps, loss_type="dapo", logging_steps=10**6,
                          save_strategy="no", report_to=[], disable_tqdm=True, seed=0, use_cpu=True,
                          dataloader_num_workers=0, reward_weights=W,
                          multi_objective_aggregation="normalize_then_sum")
        lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj",
                                                                                  "o_proj"], task_type="CAUSAL_LM")
        common = dict(model=str(TINY_MATH_DIR), reward_funcs=[counted, *funcs[1:]], args=args, peft_config=lora,
                      train_dataset=prompt_dataset(setup.train_prompts), callbacks=[Stamp()])
        kw = BACKENDS[backend]
        trainer = GRPOTrainer(**common) if kw is None else MultiRewardGRPOTrainer(**common, **kw)
        trainer.train()
    # the window from the end of step `warmup` to the end of the last step holds steps warmup+1 ...
    n, timed_tokens = len(stamps) - 1 - warmup, sum(tokens[warmup + 1:len(stamps)])
    dt, dcpu = stamps[-1] - stamps[warmup], cpu_stamps[-1] - cpu_stamps[warmup]
    return {"backend": backend, "steps_per_s": n / dt, "tokens_per_s": timed_tokens / dt,
            "steps_per_cpu_s": n / dcpu, "tokens_per_cpu_s": timed_tokens / dcpu,
            "completion_len": sum(tokens) / (len(tokens) * P * M), "n_steps": len(stamps)}


def estimator_call_ms(repeats: int = 200) -> float:
    """Median time of one ``AdvantageSpec.advantages`` + ``advantage_metrics`` call on a (P*M, 3) batch."""
    import torch

    from mrgrpo.core.advantage_diagnostics import advantage_metrics
    from mrgrpo.core.advantage_spec import AdvantageSpec

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    r = torch.stack([torch.randint(0, 2, (P * M,), generator=g).float(), -torch.rand(P * M, generator=g),
                     torch.randint(0, 2, (P * M,), generator=g).float()], dim=1)
    s = AdvantageSpec(weights=tuple(W), mode="na", conditioning="zero_fill", channel_names=("c", "l", "f"))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        advantage_metrics(s.advantages(r.view(-1, M, 3)), s)
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--child", choices=tuple(BACKENDS), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.steps < a.warmup + 2:
        ap.error("--steps counts the warm-up steps too: it must be at least --warmup + 2")
    if a.child:
        print(json.dumps(child(a.child, a.steps, a.warmup)))
        return
    import trl

    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1"}
    def report(rep: int, backend: str, rec: dict) -> None:
        print(f"  repeat {rep}: {backend:12s} {rec['steps_per_s']:6.2f} steps/s {rec['tokens_per_s']:7.0f} "
              f"tokens/s | per CPU s: {rec['steps_per_cpu_s']:6.2f} steps {rec['tokens_per_cpu_s']:7.0f} tokens | "
              f"completion length {rec['completion_len']:.1f}", flush=True)

    results = run_alternating(__file__, list(BACKENDS), lambda _: ["--steps", a.steps, "--warmup", a.warmup],
                              a.repeats, env=env, report=report)
    keys = ("steps_per_s", "tokens_per_s", "steps_per_cpu_s", "tokens_per_cpu_s", "completion_len")
    med = {b: {k: statistics.median(r[k] for r in rs) for k in keys} for b, rs in results.items()}
    total = {b: {round(r["completion_len"] * r["n_steps"] * P * M) for r in results[b]} for b in ("trl", "mrgrpo")}
    ms = estimator_call_ms()
    print(f"\nsetup: tiny-math, mini-math (3 channels), {P} prompts x m={M}, max_completion_length={MAX_NEW}, "
          f"beta={BETA}, LoRA r=16, OMP_NUM_THREADS=1, trl {trl.__version__}, {a.steps} steps ({a.warmup} untimed) "
          f"x {a.repeats} repeats")
    for b in BACKENDS:
        m, t = med[b], med["trl"]
        print(f"{b:13s} {m['steps_per_s']:6.2f} steps/s  {m['tokens_per_s']:7.0f} tokens/s  "
              f"({m['steps_per_cpu_s']:.2f} steps, {m['tokens_per_cpu_s']:.0f} tokens per CPU s)  "
              f"completion length {m['completion_len']:.1f}\n{'':14s}ratio vs trl: "
              f"{m['steps_per_s'] / t['steps_per_s']:.3f}x steps/s, {m['tokens_per_s'] / t['tokens_per_s']:.3f}x "
              f"tokens/s; per CPU second {m['steps_per_cpu_s'] / t['steps_per_cpu_s']:.3f}x steps, "
              f"{m['tokens_per_cpu_s'] / t['tokens_per_cpu_s']:.3f}x tokens")
    print(f"completion tokens sampled over the {a.steps} steps: trl {sorted(total['trl'])}, mrgrpo "
          f"{sorted(total['mrgrpo'])} (equal: the same completions; TRL's float32 and mrgrpo's float64 advantages "
          "can flip a rare sample late in a run)")
    print(f"one estimator + metrics call on {P * M} x 3 rewards: {ms:.2f} ms "
          f"({ms / 1e3 * med['trl']['steps_per_cpu_s'] * 100:.2f}% of a TRL step's CPU time)")


if __name__ == "__main__":
    main()
