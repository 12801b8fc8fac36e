"""Score projections: forward-mode jvp against per-sample backward passes, in one run.

1. Corpus: ``(P, K, m) = (64, 8, 32)`` = 16384 (prompt, completion) pairs on held-out
   mini-math. Completions are sampled from the tiny policy (``--source generate``) or, by
   default, a stand-in that costs no generation time: each problem's worked solution
   (``" " + solution`` plus EOS, about 36 tokens, the length of the tiny policy's own
   completions), 256 times per prompt. The model is ``data/tiny-math`` (a random
   model of its shape when it is missing).
2. Timed: :func:`mrgrpo.lm.scores.score_projections` (jvp, prompt cache shared by the rows of a
   prompt) over the whole corpus along ``--directions`` directions; and
   :func:`mrgrpo.lm.scores.score_projections_naive` (one forward and one backward pass per
   completion, then a dot product per direction) on the first ``--naive-rows`` rows.
   The ratio is naive / jvp time per completion (at the same number of directions),
   both measured in this run; the two are checked equal on the naive rows first.

Run: OMP_NUM_THREADS=1 python benchmarks/bench_scores.py [--P 64] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def corpus(tok, P, K, m, source, model=None):
    from mrgrpo.tasks.mini_math import make_mini_math

    problems = make_mini_math(P, seed=0, split="test")
    n = K * m
    if source == "generate":
        from mrgrpo.corpus.hf import HFBackend
        from mrgrpo.tiny import tiny_reward_fn

        be = HFBackend(model, None, progress=True)
        be.reward_fn = tiny_reward_fn(be.tokenizer)
        groups = be.generate_groups(problems, m, list(range(K)))
        # the sampler's own token ids, each with its EOS when it ended on one: nothing is re-encoded
        prompt_ids = [g.prompt_ids for g in groups for _ in range(m)]
        tokens = [list(t) for g in groups for t in g.tokens]
        return prompt_ids, tokens, [False] * len(tokens), None
    prompts = [p for p in problems for _ in range(n)]
    comps = [" " + p["solution"] for p in prompts]
    return prompts, comps, [True] * len(comps), tok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--P", type=int, default=64)
    ap.add_argument("--K", type=int, default=8)
    ap.add_argument("--m", type=int, default=32)
    ap.add_argument("--directions", type=int, default=1)
    ap.add_argument("--naive-rows", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--source", choices=["solutions", "generate"], default="solutions")
    args = ap.parse_args()

    import torch

    from mrgrpo.lm.scores import score_projections, score_projections_naive
    from mrgrpo.tiny import DEFAULT_MODEL_DIR

    torch.set_num_threads(args.threads)
    if (DEFAULT_MODEL_DIR / "config.json").is_file():
        from mrgrpo.lm.loader import load_model

        model, tok = load_model(DEFAULT_MODEL_DIR)
        which = "data/tiny-math"
    else:
        from transformers import Qwen2ForCausalLM

        from mrgrpo.tiny.pretrain import TinyConfig, build_model_config
        from mrgrpo.tiny.tokenizer import build_tokenizer

        tok = build_tokenizer()
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(build_model_config(TinyConfig(), len(tok), tok.eos_token_id)).eval()
        which = "random model of the tiny policy's shape (data/tiny-math missing)"
        if args.source == "generate":
            raise SystemExit("--source generate needs data/tiny-math")
    n_params = sum(p.numel() for p in model.parameters())
    prompts, comps, eos, row_tok = corpus(tok, args.P, args.K, args.m, args.source, DEFAULT_MODEL_DIR)
    n = len(comps)
    k = min(args.naive_rows, n)
    print(f"model: {which}, {n_params / 1e6:.2f}M parameters; threads {args.threads}")
    print(f"corpus: P={args.P} K={args.K} m={args.m} -> {n} completions ({args.source}); "
          f"directions {args.directions}")

    # correctness first, on the naive slice (rows of two prompts)
    sl = slice(0, k)
    t = time.perf_counter()
    ref = score_projections_naive(model, row_tok, prompts[sl], comps[sl], directions=args.directions, seed=0,
                                  eos=eos[sl])
    t_naive = time.perf_counter() - t
    t = time.perf_counter()
    g = score_projections(model, row_tok, prompts, comps, directions=args.directions, seed=0, eos=eos,
                          batch_size=args.batch_size, progress=True)
    t_jvp = time.perf_counter() - t
    err = float(np.abs(g[sl] - ref).max() / np.abs(ref).max())
    per_naive, per_jvp = t_naive / k, t_jvp / n
    print(f"jvp vs naive on {k} rows: max relative difference {err:.2e}")
    print(f"jvp  : {t_jvp:8.1f} s for {n} completions  ({1e3 * per_jvp:.2f} ms/completion)")
    print(f"naive: {t_naive:8.1f} s for {k} completions  ({1e3 * per_naive:.2f} ms/completion); "
          f"whole corpus would take {per_naive * n:.0f} s")
    print(f"ratio naive / jvp per completion ({args.directions} direction(s)): {per_naive / per_jvp:.2f}x")
    full = 64 * 8 * 32
    est = t_jvp if n == full else per_jvp * full
    how = "measured" if n == full else f"extrapolated from {n} completions"
    print(f"target: (64, 8, 32) corpus under 300 s -> {'met' if est < 300 else 'NOT met'} "
          f"({est:.0f} s, {how}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
