"""Throughput of mrgrpo's sampler against ``transformers``' ``generate``, the same rows in the same run.

Baseline: ``model.generate(do_sample=True, top_k=0, top_p=1)`` on the same left-padded
batches of rows (one global generator, so not reproducible per group). Ours:
:func:`mrgrpo.lm.sampling.sample_rows`, the KV-cached inverse-CDF loop that runs each
distinct prompt once and shares its cache across the group's rows. Both stop a row on
the model's EOS ids and are timed on the same prompts, group size and budget; the
report gives completions/s, tokens/s (new tokens, EOS included) and the ratio of each.

With ``--dtypes float32 bfloat16`` every precision runs too: the model loaded in that dtype and
both samplers under ``torch.autocast`` in it (:mod:`mrgrpo.lm.precision`'s rule for a LoRA policy),
all arms alternating; the report adds each precision's speed-up over the first.

    OMP_NUM_THREADS=1 python benchmarks/bench_generation.py [--model tiny-math --prompts 8 --m 32]
    python benchmarks/bench_generation.py --model smollm2-135m-instruct --task fintech --prompts 4 --m 8 \\
        --max-new-tokens 64 --threads 1 2 [--dtypes float32 bfloat16]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from mrgrpo.lm.loader import eos_token_ids, load_model
from mrgrpo.lm.precision import precision
from mrgrpo.lm.prompts import encode, render
from mrgrpo.lm.sampling import group_uniforms, sample_rows
from mrgrpo.tasks.registry import task_max_new_tokens, task_setup


def ours(model, tok, rows, u, eos, temperature: float, batch_size: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    toks, _ = sample_rows(model, rows, u, temperature=temperature, eos_ids=eos, pad_id=tok.pad_token_id,
                          batch_size=batch_size)
    return time.perf_counter() - t0, sum(len(t) for t in toks)


def baseline(model, tok, rows, eos, T: int, temperature: float, batch_size: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    n_tokens = 0
    for s in range(0, len(rows), batch_size):
        enc = tok.pad({"input_ids": rows[s:s + batch_size]}, return_tensors="pt", padding_side="left")
        out = model.generate(**enc, do_sample=True, temperature=temperature, top_k=0, top_p=1.0, max_new_tokens=T,
                             eos_token_id=list(eos), pad_token_id=tok.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        ended = torch.isin(new, torch.tensor(eos)).int()
        first = torch.where(ended.any(1), ended.argmax(1) + 1, torch.full_like(ended[:, 0], new.shape[1]))
        n_tokens += int(first.sum())
    return time.perf_counter() - t0, n_tokens


def run(models: dict, tok, prompts, m: int, T: int, batch_size: int, temperature: float, repeats: int) -> dict:
    """Alternate every (precision, sampler) arm, reversed on odd repeats, so a changing machine load hits all alike.

    ``models`` maps a dtype name to its model; arms are keyed ``(dtype, "ours" | "base")``.
    """
    first = next(iter(models.values()))
    eos = eos_token_ids(tok, first)
    texts = [render(p, tok) for p in prompts]
    ids = [encode(p, tok) for p in prompts]
    rows = [i for i in ids for _ in range(m)]
    u = [r for t in texts for r in group_uniforms(t, 0, m, T)]
    arms = [(d, name) for d in models for name in ("ours", "base")]
    times: dict = {a: [] for a in arms}
    with torch.inference_mode():
        torch.manual_seed(0)
        for k in range(repeats):
            for d, name in (arms if k % 2 == 0 else arms[::-1]):
                model = models[d]
                with precision(d, "cpu", lora=True).autocast():
                    if name == "ours":
                        times[d, name].append(ours(model, tok, rows, u, eos, temperature, batch_size))
                    else:
                        times[d, name].append(baseline(model, tok, rows, eos, T, temperature, batch_size))
    tok_s = {k: np.array([n / s for s, n in v]) for k, v in times.items()}
    comp_s = {k: np.array([len(rows) / s for s, _ in v]) for k, v in times.items()}
    return {"n": len(rows), "tok_s": tok_s, "comp_s": comp_s,
            "mean_tokens": {k: float(np.mean([n for _, n in v])) / len(rows) for k, v in times.items()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny-math")
    ap.add_argument("--task", default="mini-math")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--m", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=2, help="alternating repetitions of each engine")
    ap.add_argument("--dtypes", nargs="+", default=["float32"], choices=["float32", "bfloat16", "float16"],
                    help="precisions (weights loaded in it, autocast); ratios against the first")
    args = ap.parse_args()
    models, tok = {}, None
    for d in args.dtypes:
        models[d], tok = load_model(args.model, dtype=precision(d, "cpu", lora=True).weights)
    prompts = task_setup(args.task, tok, n_train=0, n_eval=args.prompts, seed=0).eval_prompts
    T = args.max_new_tokens or task_max_new_tokens(args.task)
    for threads in args.threads:
        torch.set_num_threads(threads)
        r = run(models, tok, prompts, args.m, T, args.batch_size, args.temperature, args.repeats)
        print(f"{args.model}: {r['n']} completions of up to {T} tokens, temperature {args.temperature}, "
              f"{threads} thread(s), {args.repeats} alternating repetitions (medians), load {os.getloadavg()[0]:.1f}")
        med = {k: float(np.median(v)) for k, v in r["tok_s"].items()}
        for d in args.dtypes:
            for label, k in (("transformers generate", "base"), ("mrgrpo sampler", "ours")):
                print(f"  {d:8s} {label:22s} {np.median(r['comp_s'][d, k]):8.2f} completions/s "
                      f"{med[d, k]:9.1f} tokens/s (mean {r['mean_tokens'][d, k]:.1f} new tokens)")
            comp = np.median(r['comp_s'][d, 'ours']) / np.median(r['comp_s'][d, 'base'])
            print(f"  {d:8s} ours / baseline: {comp:.2f}x "
                  f"completions/s, {med[d, 'ours'] / med[d, 'base']:.2f}x tokens/s")
        for d in args.dtypes[1:]:
            d0 = args.dtypes[0]
            print(f"  {d} / {d0} tokens/s: mrgrpo {med[d, 'ours'] / med[d0, 'ours']:.2f}x, "
                  f"generate {med[d, 'base'] / med[d0, 'base']:.2f}x")


if __name__ == "__main__":
    main()
