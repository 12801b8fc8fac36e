"""Throughput of mrgrpo's sampler against ``transformers``' ``generate``, the same rows in the same run.

Baseline: ``model.generate(do_sample=True, top_k=0, top_p=1)`` on the same left-padded
batches of rows (one global generator, so not reproducible per group). Ours:
:func:`mrgrpo.lm.sampling.sample_rows`, the KV-cached inverse-CDF loop that runs each
distinct prompt once and shares its cache across the group's rows. Both stop a row on
the model's EOS ids and are timed on the same prompts, group size and budget; the
report gives completions/s, tokens/s (new tokens, EOS included) and the ratio of each.

    OMP_NUM_THREADS=1 python benchmarks/bench_generation.py [--model tiny-math --prompts 8 --m 32]
    python benchmarks/bench_generation.py --model smollm2-135m-instruct --task fintech --prompts 4 --m 8 \\
        --max-new-tokens 64 --threads 1 2
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mrgrpo.lm.loader import eos_token_ids, load_model
from mrgrpo.lm.prompts import encode, render
from mrgrpo.lm.sampling import group_uniforms, sample_rows
from mrgrpo.tasks.registry import task_max_new_tokens, task_setup


def run(model, tok, prompts, m: int, T: int, batch_size: int) -> dict:
    eos = eos_token_ids(tok, model)
    texts = [render(p, tok) for p in prompts]
    ids = [encode(p, tok) for p in prompts]
    rows = [i for i in ids for _ in range(m)]
    u = [r for t in texts for r in group_uniforms(t, 0, m, T)]
    with torch.inference_mode():
        t0 = time.perf_counter()
        toks, _ = sample_rows(model, rows, u, temperature=1.0, eos_ids=eos, pad_id=tok.pad_token_id,
                              batch_size=batch_size)
        ours = time.perf_counter() - t0
        torch.manual_seed(0)
        t0 = time.perf_counter()
        n_base_tokens = 0
        for s in range(0, len(rows), batch_size):
            enc = tok.pad({"input_ids": rows[s:s + batch_size]}, return_tensors="pt")
            out = model.generate(**enc, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=T,
                                 eos_token_id=list(eos), pad_token_id=tok.pad_token_id)
            new = out[:, enc["input_ids"].shape[1]:]
            ended = torch.isin(new, torch.tensor(eos)).int()
            first = torch.where(ended.any(1), ended.argmax(1) + 1, torch.full_like(ended[:, 0], new.shape[1]))
            n_base_tokens += int(first.sum())
        base = time.perf_counter() - t0
    n = len(rows)
    n_ours = sum(len(t) for t in toks)
    return {"n": n, "ours_s": ours, "base_s": base, "ours_tok": n_ours, "base_tok": n_base_tokens}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny-math")
    ap.add_argument("--task", default="mini-math")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--m", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    args = ap.parse_args()
    model, tok = load_model(args.model)
    prompts = task_setup(args.task, tok, n_train=0, n_eval=args.prompts, seed=0).eval_prompts
    T = args.max_new_tokens or task_max_new_tokens(args.task)
    for threads in args.threads:
        torch.set_num_threads(threads)
        r = run(model, tok, prompts, args.m, T, args.batch_size)
        print(f"{args.model}: {r['n']} completions of up to {T} tokens, {threads} thread(s)")
        for label, s, k in (("transformers generate", r["base_s"], r["base_tok"]), ("mrgrpo sampler", r["ours_s"],
                                                                                  r["ours_tok"])):
            print(f"  {label:22s} {r['n'] / s:8.1f} completions/s {k / s:9.1f} tokens/s "
                  f"(mean {k / r['n']:.1f} new tokens)")
        print(f"  speed-up: {r['base_s'] / r['ours_s']:.2f}x completions/s, "
              f"{(r['ours_tok'] / r['ours_s']) / (r['base_tok'] / r['base_s']):.2f}x tokens/s")


if __name__ == "__main__":
    main()
