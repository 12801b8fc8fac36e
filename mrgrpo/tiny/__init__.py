"""The tiny in-repo policy: a small Qwen2 causal LM that solves mini-math, sometimes.

It exists so that every real-policy experiment of the book (Tier 2 rollouts,
GRPO training) runs on a laptop CPU, offline, with the same code that takes a
Hugging Face model id at paper scale. Build it with::

    python -m mrgrpo.tiny pretrain --out data/tiny-math      # or: mrgrpo tiny pretrain
    python -m mrgrpo.tiny corpus --out data/mini-corpus       # its Tier-2 rollout corpus

Pieces: :mod:`mrgrpo.tiny.tokenizer` (character-level, byte-level spelling),
:mod:`mrgrpo.tiny.pretrain` (the training loop), and here the evaluation, the
model card and the corpus builder.
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["DEFAULT_MODEL_DIR", "DEFAULT_CORPUS_DIR", "TINY_L0", "TINY_MAX_NEW_TOKENS", "tiny_reward_fn",
           "evaluate_policy", "build_mini_corpus", "write_model_card"]

_REPO = Path(__file__).resolve().parents[2]
#: Where the shipped tiny policy lives in a checkout.
DEFAULT_MODEL_DIR = _REPO / "data" / "tiny-math"
#: Where the shipped mini Tier-2 corpus lives.
DEFAULT_CORPUS_DIR = _REPO / "data" / "mini-corpus"
#: Target length (characters = tokens) of the math length channel for the tiny
#: policy: between a one-step answer (about 20 characters) and a three-step one (about 50).
TINY_L0 = 32
#: Completion budget: the longest worked solution in mini-math is 53 characters.
TINY_MAX_NEW_TOKENS = 72


def tiny_reward_fn(tokenizer: Any = None, L0: float = TINY_L0):
    """``MathRewardFunction`` as used with the tiny policy (lengths counted in its tokens)."""
    from mrgrpo.rewards.math import MathRewardFunction

    return MathRewardFunction(L0=L0, tokenizer=tokenizer)


def evaluate_policy(model, tokenizer, problems: Sequence[dict], reward_fn: Any, *, m: int = 8, seed: int = 0,
                    max_new_tokens: int = TINY_MAX_NEW_TOKENS, batch_size: int = 512) -> dict:
    """Base-policy metrics on a list of problems.

    Greedy decoding gives one completion per problem; temperature 1 gives a group
    of ``m`` per problem. Reports accuracies, the mean of every channel, and for
    every channel the share of groups in which it is not constant (what GRPO
    needs: a constant channel carries no advantage signal).

    Returns
    -------
    dict
        ``greedy_accuracy``, ``t1_accuracy``, ``channel_means``, ``varies_fraction``
        (per channel name), ``any_varies_fraction``, ``mean_completion_chars``,
        ``accuracy_by_steps``, ``completions_per_second``, ``rewards_t1`` ``(P, m, R)``.
    """
    from mrgrpo.generation import sample_completions
    from mrgrpo.rewards.base import score_completions

    names = tuple(getattr(reward_fn, "channel_names", ()))
    P = len(problems)
    greedy = sample_completions(model, tokenizer, problems, 1, temperature=0.0, max_new_tokens=max_new_tokens,
                                seed=seed, batch_size=batch_size)
    g_rewards = score_completions(reward_fn, [c[0] for c in greedy], list(problems))
    t0 = time.perf_counter()
    groups = sample_completions(model, tokenizer, problems, m, temperature=1.0, max_new_tokens=max_new_tokens,
                                seed=seed, batch_size=batch_size)
    dt = time.perf_counter() - t0
    flat = [c for g in groups for c in g]
    rewards = score_completions(reward_fn, flat, [p for p in problems for _ in range(m)]).reshape(P, m, -1)
    names = names or tuple(f"r{c}" for c in range(rewards.shape[-1]))
    varies = np.ptp(rewards, axis=1) > 0  # (P, R)
    steps = np.array([p.get("n_steps", 0) for p in problems])
    return {
        "n_problems": P, "m": m, "seed": seed, "max_new_tokens": max_new_tokens,
        "greedy_accuracy": float(g_rewards[:, 0].mean()),
        "t1_accuracy": float(rewards[..., 0].mean()),
        "channel_means": {n: float(rewards[..., c].mean()) for c, n in enumerate(names)},
        "varies_fraction": {n: float(varies[:, c].mean()) for c, n in enumerate(names)},
        "any_varies_fraction": float(varies.any(axis=1).mean()),
        "all_vary_fraction": float(varies.all(axis=1).mean()),
        "mean_completion_chars": float(np.mean([len(c) for c in flat])),
        "accuracy_by_steps": {int(s): {"greedy": float(g_rewards[steps == s, 0].mean()),
                                       "t1": float(rewards[steps == s, :, 0].mean())}
                              for s in sorted(set(steps.tolist()))},
        "completions_per_second": P * m / dt if dt > 0 else float("inf"),
        "rewards_t1": rewards,
    }


def _mix_text(mix) -> str:
    if mix is None:
        return "the generator's own (about a third each of one-, two- and three-step problems)"
    return (f"{mix[0]:.0%} one-step, {mix[1]:.0%} two-step, {mix[2]:.0%} three-step problems "
            "(held-out evaluation uses the generator's own mix, about a third each)")


def _command_time(record: dict) -> str:
    secs = record.get("command_seconds")
    return "" if secs is None else f" ({secs:.0f} s, {secs / 60:.1f} min, for the whole command, evaluation included)"


def write_model_card(out: Path, record: dict) -> Path:
    """Write ``README.md`` (the model card) from a pretraining + evaluation record."""
    cfg, ev, tr = record["config"], record["eval"], record["training"]
    vf = ev["varies_fraction"]
    hist = "\n".join(f"| {h['step']} | {h['loss']:.3f} | {h['val_acc_t1']:.3f} | {h['seconds']:.0f} |"
                     for h in tr["history"])
    by_steps = "\n".join(f"| {s} | {v['greedy']:.3f} | {v['t1']:.3f} |" for s, v in ev["accuracy_by_steps"].items())
    text = f"""---
license: mit
library_name: transformers
pipeline_tag: text-generation
tags: [mrgrpo, tiny, mini-math, qwen2]
---
# tiny-math: the mrgrpo book's tiny policy

A {record['n_params']:,}-parameter causal LM with the Qwen2 architecture
(`transformers.Qwen2Config`: hidden {cfg['hidden']}, {cfg['layers']} layers, {cfg['heads']} heads,
{cfg['kv_heads']} key/value heads, MLP {cfg['intermediate']}, tied embeddings) and a character-level
tokenizer (one token per byte, spelled byte-level so that transformers' `Qwen2Tokenizer` reloads it
exactly; `<|endoftext|>` = id 0 is EOS and pad). It answers mini-math word problems
(`mrgrpo.tasks.mini_math`) in the GSM8K style, **imperfectly on purpose**: groups of samples disagree,
so multi-reward GRPO has signal in every channel. Files: {record['size_mb']:.2f} MB.

Prompt format (also the chat template, one user turn): `"Q: <question>\\nA:"`; the model continues
with `" <worked steps> #### <answer>"` and EOS.

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained("data/tiny-math")
tok = AutoTokenizer.from_pretrained("data/tiny-math")
```

## How it was made

```
{record['command']}
```

- Code: `mrgrpo/tiny/pretrain.py` (seed {cfg['seed']}, `torch.manual_seed` and numpy `SeedSequence`
  children of the seed for initialisation, problems, data order and evaluation samples;
  `torch.use_deterministic_algorithms(True)`, {cfg['threads']} thread(s)).
- Data: {cfg['n_train']:,} distinct problems of the mini-math `"train"` split
  (`make_mini_math(n, seed=<child seed>, split="train")`), one to three arithmetic steps, text
  `"Q: <question>\\nA: <solution>"` + EOS; loss on the answer part only. Problem mix:
  {_mix_text(cfg.get('step_mix'))}. In a seeded {cfg.get('alt_answer_fraction', 0.0):.0%} of the
  examples the solution ends `"the answer is N."` instead of `"#### N"`: the policy learns both
  forms, so its samples sometimes miss the expected format and the format channel varies within
  groups (correctness needs the `####` form, so such samples also score 0 on correctness).
- Optimiser: AdamW (lr {cfg['lr']}, betas (0.9, 0.98), weight decay {cfg['weight_decay']}), batch
  {cfg['batch_size']}, {cfg['warmup']} warm-up steps, cosine decay towards {cfg['min_lr_ratio']} x lr at step
  {cfg['max_steps']}, gradient clipping 1.0.
- Checkpoint choice: every {cfg['eval_every']} steps one temperature-1 sample on {cfg['n_val']} validation
  problems (train split, never trained on); training stops at the first evaluation that reaches
  the target accuracy {cfg['target_accuracy']}, and the evaluated checkpoint closest to the target is kept.
  Steps run: {tr['steps_run']} (stopped by: {tr['stopped_by']}); kept checkpoint: step {tr['best_step']}.
- Time: {tr['seconds']:.0f} s of training wall time{_command_time(record)} on {record['machine']}
  (torch {record['torch']}, transformers {record['transformers']}).{(' ' + record['notes']) if record.get('notes') else ''}
- Reproducibility: rerunning the command writes bitwise-identical weights with the same torch
  version and thread count; other versions or thread counts change float summation order and so
  the exact bits (and possibly which checkpoint is kept), not the recipe.

| step | loss (EMA) | validation accuracy, T=1 | seconds |
|---:|---:|---:|---:|
{hist}

## Base behaviour on held-out mini-math

{ev['n_problems']} problems of the `"test"` split (`make_mini_math({ev['n_problems']}, seed={record['eval_seed']},
split="test")`, problems whose arithmetic skeleton never occurs in training), reward
`MathRewardFunction(L0={record['L0']}, tokenizer=<this tokenizer>)` (channels correctness, length
`tanh(-|log(n_chars / L0)|)`, format), max_new_tokens {ev['max_new_tokens']}.

| metric | value |
|---|---:|
| accuracy, greedy | {ev['greedy_accuracy']:.3f} |
| accuracy, temperature 1 ({ev['m']} samples per problem) | {ev['t1_accuracy']:.3f} |
| groups of {ev['m']} (T=1) where correctness varies | {vf.get('correctness', float('nan')):.3f} |
| groups of {ev['m']} where length varies | {vf.get('length', float('nan')):.3f} |
| groups of {ev['m']} where format varies | {vf.get('format', float('nan')):.3f} |
| groups where all three vary | {ev['all_vary_fraction']:.3f} |
| mean format score (T=1) | {ev['channel_means'].get('format', float('nan')):.3f} |
| mean length score (T=1) | {ev['channel_means'].get('length', float('nan')):.3f} |
| mean completion length (characters) | {ev['mean_completion_chars']:.1f} |
| sampling throughput (T=1, {record.get('eval_threads', 1)} thread(s)) | {ev['completions_per_second']:.0f} completions/s |

| arithmetic steps | accuracy, greedy | accuracy, T=1 |
|---:|---:|---:|
{by_steps}
"""
    path = Path(out) / "README.md"
    path.write_text(text)
    return path


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

    from mrgrpo.generation import HFBackend
    from mrgrpo.rollouts import run_corpus
    from mrgrpo.tasks.mini_math import make_mini_math

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
    corpus.save_parquet(out / "corpus.parquet")
    stripped = [g.completions for g in corpus.rollouts]
    for g in corpus.rollouts:
        g.completions = None
    corpus.save_npz(out / "corpus.npz")
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
    (out / "generation.json").write_text(json.dumps(params, indent=2) + "\n")
    _write_corpus_readme(out, params)
    return params


def corpus_summary(corpus, w: Sequence[float] = (1.0, 1.0, 0.5), n_boot: int = 2000) -> dict:
    """Per-``m`` channel means, within-group variability and the Theorem-3 NA ratio with its CI."""
    from mrgrpo.analysis import analyze
    from mrgrpo.rollouts import pack_for_analysis

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
{params['command'] or 'python -m mrgrpo.tiny corpus --out data/mini-corpus'}
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
    (out / "README.md").write_text(text)
