"""The tiny policy's Tier-2 rollout corpus (``data/mini-corpus``): build it and describe it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from mrgrpo.analysis import analyze
from mrgrpo.analysis.verdicts import fmt_interval
from mrgrpo.core.files import atomic_write_text
from mrgrpo.corpus import pack_for_analysis
from mrgrpo.corpus.build import build_corpus
from mrgrpo.tiny.evaluate import TINY_L0, TINY_MAX_NEW_TOKENS

__all__ = ["DEFAULT_CORPUS_DIR", "build_mini_corpus", "corpus_summary"]

#: Where the shipped mini Tier-2 corpus lives in a checkout.
DEFAULT_CORPUS_DIR = Path(__file__).resolve().parents[2] / "data" / "mini-corpus"


def build_mini_corpus(model: str | Path = "tiny-math", out: str | Path = DEFAULT_CORPUS_DIR, *, P: int = 150,
                      K: int = 16, m_grid: Sequence[int] = (4, 8, 16, 32), seed: int = 0, prompt_seed: int = 0,
                      temperature: float = 1.0, max_new_tokens: int = TINY_MAX_NEW_TOKENS, L0: float = TINY_L0,
                      batch_size: int = 512, keep_completions: bool = True, threads: int | None = 1,
                      overwrite: bool = False, command: str = "") -> dict:
    """Roll out the tiny policy on held-out mini-math and save the corpus (``data/mini-corpus``).

    :func:`mrgrpo.corpus.build.build_corpus` on the mini-math task (``P`` test-split problems
    x ``K`` seeds x ``max(m_grid)`` rollouts; smaller ``m`` are prefixes), then this corpus's
    own card: the Theorem-3 harness per ``m`` (:func:`corpus_summary`) in ``generation.json``
    and a ``README.md`` with the tiny policy's accuracy and within-group variability.

    Returns
    -------
    dict
        The contents of ``generation.json``.
    """
    record = build_corpus(model, "mini-math", out, P=P, K=K, m_grid=m_grid, seed=seed, prompt_seed=prompt_seed,
                          temperature=temperature, max_new_tokens=max_new_tokens, L0=L0, batch_size=batch_size,
                          chunk_prompts=P, threads=threads, keep_completions=keep_completions, overwrite=overwrite,
                          progress=False, command=command)
    corpus = record.pop("corpus")
    params = {**record, "n_prompts": P, "K_seeds": K, "seconds": record["seconds_this_session"],
              "reward": f"MathRewardFunction(L0={L0}, tokenizer=<tiny tokenizer>)",
              "summary": corpus_summary(corpus)}
    atomic_write_text(Path(out) / "generation.json", json.dumps(params, indent=2) + "\n")
    _write_corpus_readme(Path(out), params)
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
                    f"{vf['format']:.3f} | {s['frac_degenerate']:.3f} | "
                    f"{fmt_interval(s['ratio_na'], *s['ratio_na_ci'])} |")
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
