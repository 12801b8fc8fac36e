"""Tiny-policy pretraining: time per step, and the full recipe projected from it.

Baselines, measured in the same run on the same batches:

- the masked step: the same forward and backward pass with an explicit attention
  mask, as the loop did before it dropped the (redundant) mask; the two variants
  alternate batch by batch, so drifts in machine load hit both;
- one torch thread against ``--threads`` (default 2, the recipe's default).

Batches are built as :func:`mrgrpo.tiny.pretrain.pretrain` builds them: right-padded
batches of 16 from length-sorted windows of 1,024 training examples. A step here is
forward, backward, gradient clipping and the AdamW update of the default
:class:`TinyConfig` model.

    python benchmarks/bench_pretrain.py [--steps 40] [--threads 2]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mrgrpo.tiny.pretrain import TinyConfig, answer_batch, encode_examples, training_problems, build_model_config
from mrgrpo.tiny.tokenizer import build_tokenizer


def batches(cfg: TinyConfig, tok, n: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``n`` (ids, labels, mask) training batches, each ``(B, L)``."""
    problems = training_problems(TinyConfig(n_train=1024), seed)
    seqs, starts = encode_examples(tok, problems, np.zeros(len(problems), dtype=bool))
    order = np.argsort([len(s) for s in seqs], kind="stable")
    rng = np.random.default_rng(seed)
    out = []
    for b in rng.permutation(len(order) // cfg.batch_size)[:n]:
        idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
        ids, labels = answer_batch([seqs[i] for i in idx], [starts[i] for i in idx], tok.eos_token_id)
        lengths = torch.tensor([len(seqs[i]) for i in idx])
        out.append((ids, labels, (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()))
    return out


def seconds_per_step(cfg: TinyConfig, data, vocab_size: int, threads: int) -> dict[bool, float]:
    """Median seconds per step, ``{masked: seconds}``; the two variants alternate batch by batch."""
    from transformers import Qwen2ForCausalLM

    torch.set_num_threads(threads)
    runs = {}
    for masked in (True, False):
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(build_model_config(cfg, vocab_size, 0)).train()
        runs[masked] = (model, torch.optim.AdamW(model.parameters(), lr=cfg.lr), [])
    for ids, labels, mask in data:
        for masked, (model, opt, times) in runs.items():
            t = time.perf_counter()
            loss = model(input_ids=ids, labels=labels, attention_mask=mask if masked else None).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            times.append(time.perf_counter() - t)
    return {masked: float(np.median(times[3:])) for masked, (_, _, times) in runs.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40, help="timed steps per configuration")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    cfg, tok = TinyConfig(), build_tokenizer()
    data = batches(cfg, tok, args.steps)
    rows = {}
    for threads in sorted({1, args.threads}):
        for masked, sec in seconds_per_step(cfg, data, len(tok), threads).items():
            rows[threads, masked] = sec
            print(f"threads {threads}, {'with' if masked else 'without'} mask: "
                  f"{1000 * sec:.1f} ms/step (median of {args.steps - 3})")
    t = args.threads
    print(f"\nmask-free vs masked step, {t} thread(s): {rows[t, True] / rows[t, False]:.2f}x")
    print(f"{t} threads vs 1, mask-free: {rows[1, False] / rows[t, False]:.2f}x")
    print(f"projected {cfg.max_steps} steps (no evaluation, no set-up): "
          f"{cfg.max_steps * rows[t, False] / 60:.1f} min mask-free at {t} threads; "
          f"{cfg.max_steps * rows[1, True] / 60:.1f} min for the previous recipe (masked, 1 thread)")


if __name__ == "__main__":
    main()
