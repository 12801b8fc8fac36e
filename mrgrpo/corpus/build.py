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
``README.md`` card.

The folder follows :mod:`mrgrpo.core.run_folder` (:data:`CORPUS_FOLDER`): a build goes into a
missing or empty folder, or one whose marker says it holds an mrgrpo corpus; any other file (a
user's ``README.md`` included) is refused, never replaced. A finished corpus is replaced only with
``overwrite=True``, and only once the new build has written its first chunk; a build that stops
before that is undone (the previous corpus put back), so it neither counts as started nor blocks
the corrected command. ``resume=True`` on a finished corpus compares its settings
(``generation.json``): the same settings return it as is, changed ones are refused.
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
from mrgrpo.core.run_folder import (MARKER, FolderKind, FolderState, add_paths, adopt, claim, mark_started,
                                    move_away_hint, name_list, open_folder, rolled_back_on_failure)
from mrgrpo.corpus.io import load_parquet, save_npz, save_parquet
from mrgrpo.corpus.types import Corpus
from mrgrpo.lm.prompts import as_prompt

__all__ = ["build_corpus", "corpus_card", "BUILD_DIR", "FILES", "CORPUS_FOLDER"]

#: Where an unfinished build keeps its chunks and parameters, inside the output folder.
BUILD_DIR = ".build"
#: The files of a finished corpus.
FILES = ("corpus.parquet", "corpus.npz", "generation.json", "README.md")
#: A corpus folder for :mod:`mrgrpo.core.run_folder`: the paths a build makes.
CORPUS_FOLDER = FolderKind("rollout corpus", (*FILES, BUILD_DIR))


def _check_int(name: str, v: Any, lo: int) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    return int(v)


def _changes(saved: dict, params: dict, keys) -> list[str]:
    return [f"{k} ({saved.get(k)!r} -> {params.get(k)!r})" for k in sorted(keys) if saved.get(k) != params.get(k)]


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data


def _prepare(out: Path, params: dict, resume: bool, overwrite: bool) -> tuple[Path, list, Optional[dict]]:
    """The build folder and the groups to continue from (checked against ``params``), or, for
    ``resume`` on a finished corpus with these settings, its record."""
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other")
    state = open_folder(out, CORPUS_FOLDER)  # refuses anyone else's files; undoes a build that never started
    if resume and state.ours:
        return _resumed(out, state, params)
    shown = name_list(f + "/" * (out / f).is_dir() for f in state.ours)
    if state.unmarked:
        raise ValueError(f"{out} holds {shown} without a {MARKER}: a corpus written by an mrgrpo older than folder "
                         "markers, or someone else's files under a corpus's names; mrgrpo replaces only folders it "
                         f"marked: move it away ({move_away_hint(out)}), or choose another folder")
    if state.ours and not overwrite:
        done = [f for f in FILES if (out / f).exists()]
        if done:
            raise ValueError(f"{out} already holds a corpus ({', '.join(done)}); pass overwrite=True (--overwrite) "
                             "to replace it (it is kept until the new build writes its first chunk), or choose "
                             "another folder")
        raise ValueError(f"{out} holds an unfinished build ({BUILD_DIR}/); pass resume=True (--resume) to continue "
                         "it or overwrite=True (--overwrite) to start again")
    claim(out, CORPUS_FOLDER, replace=overwrite, paths=(BUILD_DIR,))  # the finished files are listed when written
    work = out / BUILD_DIR
    work.mkdir()
    atomic_write_text(work / "params.json", json.dumps(params, indent=1, sort_keys=True))
    return work, [], None


def _resumed(out: Path, state: FolderState, params: dict) -> tuple[Path, list, Optional[dict]]:
    """Continue what ``out`` holds: a finished corpus (its record, when its settings are ``params``) or an
    unfinished build (its chunks). Writes nothing but the marker of an unfinished build of an older mrgrpo."""
    work = out / BUILD_DIR
    if not work.exists() and (out / "generation.json").is_file():
        record = _json(out / "generation.json")
        changed = _changes(record, params, params)
        if changed:
            how = "pass overwrite=True (--overwrite) to rebuild it" if not state.unmarked else "move it away"
            raise ValueError(f"cannot resume in {out}: it holds a finished corpus built with other settings: "
                             f"{', '.join(changed)}; keep its settings to use it as is, {how}, or choose another "
                             "folder")
        return work, [], record
    if not (work / "params.json").is_file():
        raise ValueError(f"cannot resume in {out}: it holds {name_list(state.ours)} but neither a finished corpus "
                         f"(generation.json) nor an unfinished build ({BUILD_DIR}/params.json); choose another "
                         "folder")
    saved = _json(work / "params.json")
    changed = _changes(saved, params, set(saved) | set(params))
    if changed:
        raise ValueError(f"cannot resume the build in {out}: its configuration differs in " + ", ".join(changed))
    if state.unmarked:  # an unfinished build of an mrgrpo older than markers, recognised by its parameters
        if any(n != BUILD_DIR and not n.startswith(f".{BUILD_DIR}.") for n in state.ours):
            raise ValueError(f"cannot resume in {out}: besides the unfinished build it holds "
                             f"{name_list(n for n in state.ours if n != BUILD_DIR)} without a {MARKER}, which the "
                             "build would replace; move those away, or choose another folder")
        adopt(out, CORPUS_FOLDER, (BUILD_DIR,))
    chunk_file = work / "groups.parquet"
    return work, (list(load_parquet(chunk_file).rollouts) if chunk_file.exists() else []), None


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
        Continue the build in ``out`` (a finished one with the same settings is returned as is) /
        replace the corpus ``out`` holds (see the module docstring).
    keep_completions : bool
        Store the completion texts in ``corpus.parquet`` (``corpus.npz`` never holds texts).

    Returns
    -------
    dict
        The contents of ``generation.json``, and the corpus itself under ``"corpus"``
        (and ``"already_built": True`` when ``resume`` found it finished).
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
    work, groups, finished = _prepare(out, params, resume, overwrite)
    if finished is not None:  # resume on a finished corpus with these settings: nothing to build
        return {**finished, "already_built": True, "corpus": load_parquet(out / "corpus.parquet")}
    with rolled_back_on_failure(out):  # a build that stops before its first chunk is undone
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
            mark_started(out, CORPUS_FOLDER)  # the first chunk: a corpus it replaces is deleted now
        seconds = time.perf_counter() - t0
        corpus = _corpus(groups, grid, K, P, backend, prompts)
        if not keep_completions:
            for g in corpus.rollouts:
                g.completions = None
        add_paths(out, CORPUS_FOLDER, FILES)  # listed as ours before they are written
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
