"""The tiny policy's Tier-2 rollout corpus (``data/mini-corpus``): build it and describe it."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from mrgrpo.analysis import analyze
from mrgrpo.core.files import atomic_write_text
from mrgrpo.corpus import pack_for_analysis, run_corpus, save_npz, save_parquet
from mrgrpo.corpus.hf import HFBackend
from mrgrpo.tasks.mini_math import make_mini_math
from mrgrpo.tiny.evaluate import DEFAULT_MODEL_DIR, TINY_L0, TINY_MAX_NEW_TOKENS, tiny_reward_fn

__all__ = ["DEFAULT_CORPUS_DIR", "build_mini_corpus", "corpus_summary"]

#: Where the shipped mini Tier-2 corpus lives in a checkout.
DEFAULT_CORPUS_DIR = Path(__file__).resolve().parents[2] / "data" / "mini-corpus"


def build_mini_corpus(model: str | Path = DEFAULT_MODEL_DIR, out: str | Path = DEFAULT_CORPUS_DIR, *, P: int = 150,
                      K: int = 16, m_grid: Sequence[int] = (4, 8, 16, 32), seed: int = 0, prompt_seed: int = 0,
                      temperature: float = 1.0, max_new_tokens: int = TINY_MAX_NEW_TOKENS, L0: float = TINY_L0,
                      batch_size: int = 512, keep_completions: bool = True, threads: int | None = 1,
                      command: str = "") -> dict:
    """Roll out the tiny policy on held-out mini-math and save the corpus.

    ``P`` test-split problems x ``K`` seeds x ``max(m_grid)`` rollouts are
    generated once; smaller ``m`` are the leading prefixes (``subsample_from_max``).
    Writes ``corpus.parquet`` (one row per rollout, with completions when
    ``keep_completions``), ``corpus.npz`` (``rewards_m{m}`` ``(P, K, m, R)``, no
    completions) and ``generation.json`` (every parameter, the timing and the
    throughput) into ``out``.

    Returns
    -------
    dict
        The contents of ``generation.json``.
    """
    import torch
    import transformers

    if threads is not None:
        torch.set_num_threads(int(threads))
    out = Path(out)
    backend = HFBackend(model, None, temperature=temperature, max_new_tokens=max_new_tokens,
                        batch_size=batch_size)
    backend.set_reward_fn(tiny_reward_fn(backend.tokenizer, L0))
    problems = [{**p, "gold_reasoning": p["solution"]} for p in make_mini_math(P, seed=prompt_seed, split="test")]
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    corpus = run_corpus(backend, problems, list(m_grid), K, subsample_from_max=True, seed=seed)
    seconds = time.perf_counter() - t0
    load_after = os.getloadavg()[0]
    out.mkdir(parents=True, exist_ok=True)
    if not keep_completions:
        for g in corpus.rollouts:
            g.completions = None
    save_parquet(corpus, out / "corpus.parquet")
    stripped = [g.completions for g in corpus.rollouts]
    for g in corpus.rollouts:
        g.completions = None
    save_npz(corpus, out / "corpus.npz")
    for g, c in zip(corpus.rollouts, stripped):
        g.completions = c
    n = P * K * max(m_grid)
    params = {
        "command": command, "model": str(model), "n_prompts": P, "K_seeds": K, "m_grid": sorted(m_grid),
        "subsample_from_max": True, "seed": seed,
        "prompts": f"make_mini_math({P}, seed={prompt_seed}, split='test')",
        "temperature": temperature, "max_new_tokens": max_new_tokens, "batch_size": batch_size,
        "reward": f"MathRewardFunction(L0={L0}, tokenizer=<tiny tokenizer>)", "L0": L0,
        "reward_names": list(corpus.reward_names), "threads": threads,
        "sampler": backend.generation_params()["sampler"],
        "completions": n, "seconds": round(seconds, 2), "completions_per_second": round(n / seconds, 1),
        "truncated_fraction": backend.last_stats.get("truncated_fraction"),
        "mean_new_tokens": backend.last_stats.get("mean_new_tokens"),
        "torch": torch.__version__, "transformers": transformers.__version__, "machine": platform.machine(),
        "cpu_count": os.cpu_count(), "load_average": [round(load_before, 2), round(load_after, 2)],
        "files": {"corpus.parquet": "one row per rollout (released-rollouts schema"
                                    + (", with completions)" if keep_completions else ")"),
                  "corpus.npz": "rewards_m{m} (P, K, m, R) and raw_length_m{m} (P, K, m)"},
    }
    params["summary"] = corpus_summary(corpus)
    atomic_write_text(out / "generation.json", json.dumps(params, indent=2) + "\n")
    _write_corpus_readme(out, params)
    return params


def corpus_summary(corpus, w: Sequence[float] = (1.0, 1.0, 0.5), n_boot: int = 2000) -> dict:
    """Per-``m`` channel means, within-group variability and the Theorem-3 NA ratio with its CI."""
    out: dict = {"w": list(w), "by_m": {}}
    for m in corpus.m_grid:
        x = pack_for_analysis(corpus, m)
        varies = np.ptp(x, axis=2) > 0  # (P, K, R)
        res = analyze(x, w=np.asarray(w, dtype=float), n_boot=n_boot)
        out["by_m"][str(m)] = {
            "channel_means": {n: float(x[..., c].mean()) for c, n in enumerate(corpus.reward_names)},
            "varies_fraction": {n: float(varies[..., c].mean()) for c, n in enumerate(corpus.reward_names)},
            "ratio_na": float(res.ratio_na), "ratio_na_ci": [float(v) for v in res.ratio_na_ci],
            "ratio_an": float(res.ratio_an), "ratio_an_ci": [float(v) for v in res.ratio_an_ci],
            "frac_degenerate": float(res.frac_degenerate),
        }
    return out


def _threads_text(params: dict) -> str:
    threads = params.get("threads")
    text = "the default torch threads" if threads is None else f"{threads} CPU thread{'s' if threads != 1 else ''}"
    if params.get("cpu_count"):
        text += f" of a {params['cpu_count']}-core machine"
    if params.get("load_average"):
        text += f", load average {params['load_average'][0]:.1f} at the start and {params['load_average'][1]:.1f} at the end"
    return text


def _write_corpus_readme(out: Path, params: dict) -> None:
    rows = []
    for m, s in params["summary"]["by_m"].items():
        vf, cm = s["varies_fraction"], s["channel_means"]
        rows.append(f"| {m} | {cm['correctness']:.3f} | {vf['correctness']:.3f} | {vf['length']:.3f} | "
                    f"{vf['format']:.3f} | {s['frac_degenerate']:.3f} | {s['ratio_na']:.3f} "
                    f"[{s['ratio_na_ci'][0]:.3f}, {s['ratio_na_ci'][1]:.3f}] |")
    table = "\n".join(rows)
    text = f"""# mini-corpus: Tier-2 rollouts of the tiny policy

Rollouts of `data/tiny-math` on held-out mini-math, in the layout of the paper's released GSM8K
rollouts (150 prompts x 16 seeds x 32 rollouts there): {params['n_prompts']} prompts
(`{params['prompts']}`) x {params['K_seeds']} seeds x {max(params['m_grid'])} rollouts, scored by
`{params['reward']}`. Smaller groups (m in {params['m_grid']}) are the leading prefixes of the
largest (`subsample_from_max`). Temperature {params['temperature']}, max_new_tokens
{params['max_new_tokens']}.

Regenerate ({params['seconds'] / 60:.0f} minutes at {params['completions_per_second']:.0f} completions/s on
{_threads_text(params)} when this copy was made):

```
{params['command'] or 'mrgrpo tiny corpus --out data/mini-corpus'}
```

Files: `corpus.parquet` (one row per rollout: channels, raw length, question, gold, seed and the
completion text), `corpus.npz` (`rewards_m{{m}}` of shape (P, K, m, 3) and `raw_length_m{{m}}`, no
texts), `generation.json` (every parameter, timing, and the summary below).

Theorem-3 harness (`mrgrpo.analysis.analyze`, w = {params['summary']['w']}, random scores, prompt
bootstrap 95% CI):

| m | accuracy | correctness varies | length varies | format varies | degenerate groups | NA ratio [95% CI] |
|---:|---:|---:|---:|---:|---:|---:|
{table}
"""
    atomic_write_text(out / "README.md", text)
