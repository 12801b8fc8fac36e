"""Build a stored rollout corpus from any model and task, in chunks that survive a kill.

:func:`build_corpus` rolls out ``P`` held-out prompts of a task (:func:`mrgrpo.tasks.registry.task_setup`)
x ``K`` seeds x ``max(m_grid)`` completions with :class:`~mrgrpo.corpus.hf.HFBackend`; smaller
group sizes are the leading prefixes (``subsample_from_max``). It works through the prompts
a few at a time and, after each chunk, writes the groups so far to ``<out>/.build/`` (atomically,
with the build's parameters): ``resume=True`` continues from there and refuses a changed
configuration. Because every group's randomness is keyed by (prompt text, seed)
(:mod:`mrgrpo.lm.sampling`), a resumed build writes exactly what an uninterrupted one would.

The finished folder holds ``corpus.parquet`` (one row per rollout, the released-rollouts
schema, with completion texts, token counts and EOS flags), ``corpus.npz`` (the reward
tensors, no texts), ``generation.json`` (every parameter, sizes, timings, versions) and a
``README.md`` card. A finished corpus is never overwritten silently (``overwrite=True``).
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from mrgrpo.core.files import atomic_write_text
from mrgrpo.corpus.io import load_parquet, save_npz, save_parquet
from mrgrpo.corpus.types import Corpus
from mrgrpo.lm.prompts import as_prompt

__all__ = ["build_corpus", "corpus_card", "BUILD_DIR", "FILES"]

#: Where an unfinished build keeps its chunks and parameters, inside the output folder.
BUILD_DIR = ".build"
#: The files of a finished corpus.
FILES = ("corpus.parquet", "corpus.npz", "generation.json", "README.md")


def _check_int(name: str, v: Any, lo: int) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    return int(v)


def _prepare(out: Path, params: dict, resume: bool, overwrite: bool) -> tuple[Path, list]:
    """The build folder, and the groups of an unfinished build to continue from (checked against ``params``)."""
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other")
    done = [f for f in FILES if (out / f).exists()]
    work = out / BUILD_DIR
    if done and not resume:
        if not overwrite:
            raise ValueError(f"{out} already holds a corpus ({', '.join(done)}); pass overwrite=True (--overwrite) to "
                             "replace it, or choose another folder")
        for f in done:
            (out / f).unlink()
        shutil.rmtree(work, ignore_errors=True)
    if work.exists() and not resume:
        if not overwrite:
            raise ValueError(f"{out} holds an unfinished build ({BUILD_DIR}/); pass resume=True (--resume) to continue "
                             "it or overwrite=True (--overwrite) to start again")
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    saved_path = work / "params.json"
    if resume and saved_path.exists():
        saved = json.loads(saved_path.read_text())
        changed = sorted(k for k in set(saved) | set(params) if saved.get(k) != params.get(k))
        if changed:
            raise ValueError(f"cannot resume the build in {out}: its configuration differs in "
                             + ", ".join(f"{k} ({saved.get(k)!r} -> {params.get(k)!r})" for k in changed))
    else:
        atomic_write_text(saved_path, json.dumps(params, indent=1, sort_keys=True))
    chunk_file = work / "groups.parquet"
    groups = list(load_parquet(chunk_file).rollouts) if resume and chunk_file.exists() else []
    return work, groups


def build_corpus(model: str | os.PathLike, task: str, out: str | os.PathLike, *, P: int, K: int,
                 m_grid: Sequence[int] = (4, 8, 16), seed: int = 0, prompt_seed: int = 0, temperature: float = 1.0,
                 max_new_tokens: Optional[int] = None, L0: Optional[float] = None, system_prompt: Optional[str] = None,
                 batch_size: int = 256, chunk_prompts: int = 4, threads: Optional[int] = None, device: str = "cpu",
                 dtype: Any = None, resume: bool = False, overwrite: bool = False, progress: bool = True,
                 keep_completions: bool = True, command: str = "") -> dict:
    """Roll out a model on a task's held-out prompts and store the corpus in ``out``.

    Parameters
    ----------
    model : str or path
        A model id, a local folder or a hub id.
    task : {"mini-math", "fintech", "gsm8k"}
    P, K : int
        Held-out prompts and seeds (independent groups) per prompt.
    m_grid : sequence of int
        Group sizes; ``max(m_grid)`` completions are drawn per group, smaller sizes are prefixes.
    seed, prompt_seed : int
        The group seeds are ``SeedSequence([seed]).generate_state(K)``; ``prompt_seed`` picks the prompts.
    max_new_tokens, L0 : optional
        Default: the task's own budget and length target.
    chunk_prompts : int
        Prompts per chunk between two saves of the unfinished build.
    threads : int, optional
        ``torch.set_num_threads`` for the build.
    resume, overwrite : bool
        Continue an unfinished build in ``out`` / replace what ``out`` holds.
    keep_completions : bool
        Store the completion texts in ``corpus.parquet`` (``corpus.npz`` never holds texts).

    Returns
    -------
    dict
        The contents of ``generation.json``, and the corpus itself under ``"corpus"``.
    """
    import torch
    import transformers

    from mrgrpo.corpus.hf import HFBackend
    from mrgrpo.tasks.registry import task_max_new_tokens, task_setup

    P, K, chunk_prompts = _check_int("P", P, 1), _check_int("K", K, 1), _check_int("chunk_prompts", chunk_prompts, 1)
    grid = sorted({_check_int("m", m, 2) for m in m_grid})
    if not grid:
        raise ValueError("m_grid is empty")
    budget = task_max_new_tokens(task) if max_new_tokens is None else _check_int("max_new_tokens", max_new_tokens, 1)
    if threads is not None:
        torch.set_num_threads(_check_int("threads", threads, 1))
    out = Path(out)
    params = {"model": os.fspath(model), "task": task, "P": P, "K": K, "m_grid": grid, "seed": seed,
              "prompt_seed": prompt_seed, "temperature": float(temperature), "max_new_tokens": budget,
              "L0": L0, "system_prompt": system_prompt}
    from mrgrpo.lm.loader import resolve_model

    resolve_model(model)  # a missing model is a clear error before anything is written
    work, groups = _prepare(out, params, resume, overwrite)
    t_load = time.perf_counter()
    backend = HFBackend(model, None, device=device, dtype=dtype, temperature=temperature, max_new_tokens=budget,
                        batch_size=batch_size, system_prompt=system_prompt, progress=progress)
    setup = task_setup(task, backend.tokenizer, n_train=0, n_eval=P, seed=prompt_seed, L0=L0)
    backend.set_reward_fn(setup.reward_fn)
    load_seconds = time.perf_counter() - t_load
    prompts = setup.eval_prompts
    seeds = [int(s) for s in np.random.SeedSequence([int(seed)]).generate_state(K, dtype=np.uint32)]
    m_max = grid[-1]
    start, load_before, t0 = len(groups) // K, os.getloadavg()[0], time.perf_counter()
    tokens_drawn = 0
    for first in range(start, P, chunk_prompts):
        chunk = prompts[first:first + chunk_prompts]
        new = backend.generate_groups(chunk, m_max, seeds)
        for g in new:
            g.prompt_idx += first
            tokens_drawn += sum(len(t) for t in g.tokens)
        groups += new
        save_parquet(_corpus(groups, grid[-1:], K, first + len(chunk), backend, prompts), work / "groups.parquet")
    seconds = time.perf_counter() - t0
    corpus = _corpus(groups, grid, K, P, backend, prompts)
    if not keep_completions:
        for g in corpus.rollouts:
            g.completions = None
    save_parquet(corpus, out / "corpus.parquet")
    save_npz(corpus, out / "corpus.npz")
    n = P * K * m_max
    record = {**params, "command": command, "m_max": m_max, "completions": n, "subsample_from_max": True,
              "prompts": f"task_setup({task!r}, n_eval={P}, seed={prompt_seed}).eval_prompts",
              "reward": type(setup.reward_fn).__name__, "reward_names": list(corpus.reward_names),
              "generation": backend.generation_params(), "threads": torch.get_num_threads(),
              "load_seconds": round(load_seconds, 2),
              "seconds_this_session": round(seconds, 2), "resumed_from_prompt": start,
              "completions_per_second": round((P - start) * K * m_max / seconds, 2) if seconds > 0 else None,
              "tokens_per_second": round(tokens_drawn / seconds, 1) if seconds > 0 else None,
              "mean_new_tokens": float(np.mean([g.n_tokens for g in corpus.stored_groups()])),
              "truncated_fraction": float(1 - np.mean([g.ended for g in corpus.stored_groups()])),
              "torch": torch.__version__, "transformers": transformers.__version__, "machine": platform.machine(),
              "cpu_count": os.cpu_count(), "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
              "sizes_bytes": {f: (out / f).stat().st_size for f in ("corpus.parquet", "corpus.npz")}}
    atomic_write_text(out / "generation.json", json.dumps(record, indent=2) + "\n")
    atomic_write_text(out / "README.md", corpus_card(record))
    shutil.rmtree(work, ignore_errors=True)
    record["corpus"] = corpus
    return record


def _corpus(groups: list, grid: list, K: int, n_prompts: int, backend: Any, prompts: list) -> Corpus:
    return Corpus(rollouts=list(groups), m_grid=grid, K_seeds=K, n_prompts=n_prompts,
                  reward_names=tuple(backend.reward_names), backend_name=backend.name, subsample_from_max=True,
                  prompts=[as_prompt(p).record() for p in prompts[:n_prompts]])


def corpus_card(record: dict) -> str:
    """The ``README.md`` of a stored corpus, from its ``generation.json`` record."""
    sizes = ", ".join(f"`{f}` {b / 2**20:.2f} MB" for f, b in record["sizes_bytes"].items())
    minutes = record["seconds_this_session"] / 60
    resumed = (f" (this session resumed at prompt {record['resumed_from_prompt']})"
               if record["resumed_from_prompt"] else "")
    return f"""# {Path(record['model']).name or record['model']} on {record['task']}: a Tier-2 rollout corpus

{record['P']} held-out prompts (`{record['prompts']}`) x {record['K']} seeds x {record['m_max']} completions of `{record['model']}`, scored by `{record['reward']}` on the channels {', '.join(record['reward_names'])}. Smaller groups (m in {record['m_grid']}) are the leading prefixes of the largest. Temperature {record['temperature']}, at most {record['max_new_tokens']} new tokens; mean {record['mean_new_tokens']:.1f} new tokens per completion, {100 * record['truncated_fraction']:.1f}% cut at the budget without EOS.

Made with:

```
{record['command'] or 'mrgrpo corpus build ...'}
```

in {minutes:.1f} minutes{resumed} on {record['threads']} torch thread(s) of a {record['cpu_count']}-core {record['machine']} machine (load average {record['load_average'][0]} at the start, {record['load_average'][1]} at the end, from other work on the machine): {record['completions_per_second']} completions/s, {record['tokens_per_second']} new tokens/s; torch {record['torch']}, transformers {record['transformers']}. Files: {sizes}; `generation.json` holds every parameter.

The sampler (`mrgrpo.lm.sampling`) keys each group's randomness by (prompt text, seed), so the same command rebuilds these rollouts exactly, in one go or resumed after an interruption (`--resume`).
"""
