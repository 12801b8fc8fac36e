"""Making a corpus: the backend protocol and :func:`run_corpus`.

A backend turns prompts and seeds into scored groups (:class:`Backend`);
:func:`run_corpus` asks it for every (prompt, seed) at every group size and
collects the groups into a :class:`~mrgrpo.corpus.types.Corpus`. The backends are
:class:`~mrgrpo.corpus.mock.MockBackend` (rewards with a known correlation) and
:class:`~mrgrpo.corpus.hf.HFBackend` (a Hugging Face causal LM).
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

from mrgrpo.core.checks import as_sequence
from mrgrpo.core.progress import progress_bar
from mrgrpo.corpus.types import Corpus
from mrgrpo.lm.prompts import as_prompt, as_prompts

__all__ = ["Backend", "group_generator", "run_corpus"]


@runtime_checkable
class Backend(Protocol):
    """What :func:`run_corpus` needs from a rollout generator.

    ``generate_groups(prompts, m, seeds)`` returns, for every prompt (a
    :class:`~mrgrpo.lm.prompts.Prompt`) and every seed, one
    :class:`~mrgrpo.corpus.types.Rollouts` of ``m`` rollouts, ordered prompt-major
    (all seeds of prompt 0 first); ``prompt_idx``/``seed_idx`` are positions in
    the two lists.
    """

    name: str
    reward_names: tuple

    def generate_groups(self, prompts: list, m: int, seeds: list) -> list: ...


def group_generator(base_seed: int, prompt: Any, seed: int) -> np.random.Generator:
    """A generator for one (prompt, seed) group, identical in every process.

    The entropy is ``(base_seed, seed, sha256(prompt key))`` (the key of
    :class:`~mrgrpo.lm.prompts.Prompt`: its text, or its chat as JSON) fed to
    :class:`numpy.random.SeedSequence`; Python's ``hash()`` (salted per
    process) is never used.
    """
    for name, v in (("base_seed", base_seed), ("seed", seed)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be a non-negative int, got {v!r}")
    key = prompt if isinstance(prompt, str) else as_prompt(prompt).key
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([int(base_seed), int(seed), *words]))


def run_corpus(backend: Backend, prompts_with_gold: Iterable, m_grid: Sequence[int], K_seeds: int,
               subsample_from_max: bool = False, seed: int = 0) -> Corpus:
    """Generate ``K_seeds`` groups per prompt for each ``m`` in ``m_grid``.

    Parameters
    ----------
    backend : Backend
    prompts_with_gold : iterable of prompt items
        Strings, chat lists, dicts (``"prompt"`` or ``"messages"``, plus ``"gold"``
        and other metadata) or ``(prompt, gold)`` pairs; see :mod:`mrgrpo.lm.prompts`.
    m_grid : sequence of int
        Group sizes (each ``>= 2``).
    K_seeds : int
        Seeds (independent groups) per prompt and ``m``; ``>= 1``.
    subsample_from_max : bool
        Generate once at ``max(m_grid)`` and take leading prefixes for smaller
        ``m`` (a prefix of an i.i.d. group is an i.i.d. group).
    seed : int
        Base seed. The group seeds come from ``SeedSequence([seed, m])`` (or
        ``[seed]`` when subsampling), so different ``m`` get independent groups.

    Returns
    -------
    Corpus
    """
    prompts = as_prompts(as_sequence(prompts_with_gold, "prompts_with_gold"), "prompts_with_gold")
    grid = sorted({int(m) for m in m_grid})
    if not grid or any(m < 2 for m in grid):
        raise ValueError(f"m_grid must be non-empty group sizes >= 2, got {list(m_grid)}")
    if isinstance(K_seeds, (bool, np.bool_)) or not isinstance(K_seeds, (int, np.integer)) or K_seeds < 1:
        raise ValueError(f"K_seeds must be a positive int, got {K_seeds!r}")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")

    def _gen(m: int, seeds: list) -> list:
        groups = backend.generate_groups(prompts, m, seeds)
        if len(groups) != len(prompts) * len(seeds):
            raise ValueError(f"backend {backend.name!r} returned {len(groups)} groups for "
                             f"{len(prompts)} prompts x {len(seeds)} seeds")
        out = []
        for n, g in enumerate(groups):
            i, k = divmod(n, len(seeds))
            if g.m != m:
                raise ValueError(f"backend {backend.name!r} returned a group of size {g.m}, asked for {m}")
            out.append(dataclasses.replace(g, prompt_idx=i, seed_idx=k, seed=int(seeds[k])))
        return out

    sizes = [max(grid)] if subsample_from_max else grid
    bar = progress_bar(sizes, enabled=len(sizes) >= 2, desc=f"rollouts ({backend.name})")
    rollouts: list = []
    for m in bar:
        ss = np.random.SeedSequence([int(seed)] if subsample_from_max else [int(seed), int(m)])
        seeds = [int(s) for s in ss.generate_state(int(K_seeds), dtype=np.uint32)]
        full = _gen(m, seeds)
        rollouts.extend(full)
        if subsample_from_max:
            for mm in grid[:-1]:
                rollouts.extend(g.prefix(mm) for g in full)
    return Corpus(rollouts=rollouts, m_grid=grid, K_seeds=int(K_seeds), n_prompts=len(prompts),
                  reward_names=tuple(backend.reward_names), backend_name=str(backend.name),
                  subsample_from_max=bool(subsample_from_max), prompts=[q.record() for q in prompts])
