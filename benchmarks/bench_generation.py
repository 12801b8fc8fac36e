"""Throughput of mrgrpo's sampler against ``transformers``' ``generate`` on the tiny policy.

Baseline: ``model.generate(do_sample=True)`` on the same left-padded batch of rows
(one global generator, so not reproducible per group). Ours: the KV-cached
inverse-CDF loop of :mod:`mrgrpo.generation`, which also runs each distinct
prompt once and shares its cache across the group's rows.

    OMP_NUM_THREADS=1 python benchmarks/bench_generation.py [--prompts 8 --m 32]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mrgrpo.generation import _generate_rows, group_uniforms, load_model, prompt_to_text
from mrgrpo.tasks.mini_math import make_mini_math
from mrgrpo.tiny import DEFAULT_MODEL_DIR, TINY_MAX_NEW_TOKENS


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--m", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, tok = load_model(args.model)
    texts = [prompt_to_text(p, tok) for p in make_mini_math(args.prompts, seed=0, split="test")]
    rows = [t for t in texts for _ in range(args.m)]
    T = TINY_MAX_NEW_TOKENS

    t0 = time.perf_counter()
    u = [r for t in texts for r in group_uniforms(t, 0, args.m, T)]
    comps, _, _ = _generate_rows(model, tok, rows, u, temperature=1.0, batch_size=args.batch_size)
    ours = time.perf_counter() - t0

    torch.manual_seed(0)
    t0 = time.perf_counter()
    n_base = 0
    with torch.inference_mode():
        for s in range(0, len(rows), args.batch_size):
            enc = tok(rows[s:s + args.batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            model.generate(**enc, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=T,
                           pad_token_id=tok.eos_token_id)
            n_base += enc["input_ids"].shape[0]
    base = time.perf_counter() - t0
    n = len(rows)
    print(f"{n} completions, {args.threads} thread(s)")
    print(f"baseline transformers generate: {n / base:8.1f} completions/s")
    print(f"mrgrpo sampler:                 {n / ours:8.1f} completions/s "
          f"(mean {np.mean([len(c) for c in comps]):.1f} chars)")
    print(f"speed-up vs baseline:           {base / ours:8.2f}x")


if __name__ == "__main__":
    main()
