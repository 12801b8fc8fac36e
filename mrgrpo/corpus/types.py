"""Rollout corpora as data: one group (:class:`Rollouts`) and every group of a run (:class:`Corpus`).

A *group* is ``m`` rollouts of one prompt under one seed, scored on ``R``
reward channels. A corpus holds every group of a run (``P`` prompts x ``K``
seeds, for each ``m`` of a grid) and packs into the ``(P, K, m, R)`` tensor the
Theorem-3 harness (:mod:`mrgrpo.analysis`) reads (:func:`pack_for_analysis`).
Files are :mod:`mrgrpo.corpus.io`'s job; generating groups is
:mod:`mrgrpo.corpus.run`'s.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

from mrgrpo.lm.prompts import prompt_text

__all__ = ["Rollouts", "Corpus", "pack_for_analysis", "pack_raw_length", "pack_completions"]


@dataclass
class Rollouts:
    """One group: ``m`` rollouts of prompt ``prompt_idx`` under seed ``seed_idx``.

    Attributes
    ----------
    prompt_idx, seed_idx : int
        Position of the prompt in the corpus and of the seed in ``range(K)``.
    prompt, gold : str
        Prompt text and reference answer.
    seed : int
        The integer seed the backend used for this group.
    m : int
        Group size (``>= 1``; the analysis needs ``m >= 2``).
    rewards : numpy.ndarray, shape ``(m, R)``
    raw_length : numpy.ndarray, shape ``(m,)``, optional
        Ungated length (Proposition 4 sweeps).
    completions : list of str, optional
        ``m`` completion texts.
    tokens : list of list of int, optional
        The ``m`` completions' sampled token ids, each one's EOS included when it ended on one.
    ended : numpy.ndarray of bool, shape ``(m,)``, optional
        Whether each completion stopped on EOS (else it reached the token budget).
    n_tokens : numpy.ndarray of int, shape ``(m,)``, optional
        Tokens drawn per completion, EOS included (from ``tokens`` when they are given;
        stored corpora keep the counts, not the ids).
    prompt_ids : list of int, optional
        The prompt's token ids as the model saw them.
    """

    prompt_idx: int
    seed_idx: int
    prompt: str
    gold: str
    seed: int
    m: int
    rewards: np.ndarray
    raw_length: Optional[np.ndarray] = None
    completions: Optional[list] = None
    tokens: Optional[list] = None
    ended: Optional[np.ndarray] = None
    prompt_ids: Optional[list] = None
    n_tokens: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        for name in ("prompt_idx", "seed_idx", "seed", "m"):
            v = getattr(self, name)
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise ValueError(f"Rollouts.{name} must be an int, got {v!r}")
            setattr(self, name, int(v))
        if self.m < 1:
            raise ValueError(f"Rollouts.m must be >= 1, got {self.m}")
        if self.prompt_idx < 0 or self.seed_idx < 0:
            raise ValueError(f"prompt_idx and seed_idx must be >= 0, got {self.prompt_idx}, {self.seed_idx}")
        r = np.asarray(self.rewards, dtype=float)
        if r.ndim != 2:
            raise ValueError(f"Rollouts.rewards must be (m, R), got shape {r.shape}")
        if r.shape[0] != self.m:
            raise ValueError(f"Rollouts.rewards has {r.shape[0]} rows but m = {self.m}")
        if r.shape[1] < 1:
            raise ValueError("Rollouts.rewards has no reward channels (R = 0)")
        self.rewards = r
        if self.raw_length is not None:
            rl = np.asarray(self.raw_length, dtype=float)
            if rl.shape != (self.m,):
                raise ValueError(f"Rollouts.raw_length must have shape ({self.m},), got {rl.shape}")
            self.raw_length = rl
        if self.completions is not None:
            if isinstance(self.completions, str) or len(self.completions) != self.m:
                raise ValueError(f"Rollouts.completions must be a list of m = {self.m} strings")
            self.completions = [str(c) for c in self.completions]
        if self.tokens is not None:
            if len(self.tokens) != self.m:
                raise ValueError(f"Rollouts.tokens must hold m = {self.m} token-id lists")
            self.tokens = [[int(x) for x in row] for row in self.tokens]
        if self.n_tokens is None and self.tokens is not None:
            self.n_tokens = np.array([len(row) for row in self.tokens], dtype=np.int64)
        if self.n_tokens is not None:
            n = np.asarray(self.n_tokens, dtype=np.int64)
            if n.shape != (self.m,) or (n < 0).any():
                raise ValueError(f"Rollouts.n_tokens must be {self.m} non-negative counts, got {self.n_tokens!r}")
            self.n_tokens = n
        if self.ended is not None:
            e = np.asarray(self.ended, dtype=bool)
            if e.shape != (self.m,):
                raise ValueError(f"Rollouts.ended must have shape ({self.m},), got {e.shape}")
            self.ended = e

    @property
    def R(self) -> int:
        return int(self.rewards.shape[1])

    def prefix(self, m: int) -> "Rollouts":
        """The first ``m`` rollouts of this group (a valid i.i.d. group of size ``m``)."""
        if not 1 <= m <= self.m:
            raise ValueError(f"prefix size must be in [1, {self.m}], got {m}")
        return dataclasses.replace(
            self, m=m, rewards=self.rewards[:m],
            raw_length=None if self.raw_length is None else self.raw_length[:m],
            completions=None if self.completions is None else self.completions[:m],
            tokens=None if self.tokens is None else self.tokens[:m],
            ended=None if self.ended is None else self.ended[:m],
            n_tokens=None if self.n_tokens is None else self.n_tokens[:m])


@dataclass
class Corpus:
    """Every group of a run: ``n_prompts`` prompts x ``K_seeds`` seeds for each ``m`` in ``m_grid``.

    ``subsample_from_max=True`` means groups of smaller ``m`` are the leading
    prefixes of the ``max(m_grid)`` groups of the same (prompt, seed).
    """

    rollouts: list
    m_grid: list
    K_seeds: int
    n_prompts: int
    reward_names: tuple
    backend_name: str
    subsample_from_max: bool = False
    prompts: Optional[list] = None  # prompt dicts (question, gold and extra keys) by prompt_idx

    def __post_init__(self) -> None:
        self.m_grid = sorted(int(m) for m in self.m_grid)
        self.reward_names = tuple(str(n) for n in self.reward_names)
        R = len(self.reward_names)
        for r in self.rollouts:
            if r.R != R:
                raise ValueError(f"group (prompt {r.prompt_idx}, seed {r.seed_idx}) has {r.R} channels, "
                                 f"the corpus has R = {R} ({self.reward_names})")

    @property
    def R(self) -> int:
        return len(self.reward_names)

    def groups(self, m: int) -> list:
        """Groups of size ``m`` (prefixes of the largest groups when subsampled and not stored)."""
        got = [r for r in self.rollouts if r.m == m]
        if got:
            return got
        m_max = max(self.m_grid)
        if self.subsample_from_max and 1 <= m <= m_max:
            return [r.prefix(m) for r in self.rollouts if r.m == m_max]
        have = sorted({r.m for r in self.rollouts})
        raise ValueError(f"the corpus has no groups of size m = {m}; sizes available: {have}"
                         + (f" (and prefixes up to {m_max})" if self.subsample_from_max else ""))

    def stored_groups(self) -> list:
        if self.subsample_from_max:
            m_max = max(self.m_grid)
            return [r for r in self.rollouts if r.m == m_max]
        return list(self.rollouts)

    def prompt_info(self, idx: int, fallback: Rollouts) -> tuple[str, str, str]:
        info = self.prompts[idx] if self.prompts and idx < len(self.prompts) else {}
        q = info.get("question", info.get("prompt", fallback.prompt)) if info else fallback.prompt
        return (prompt_text(q), str(info.get("gold_answer", info.get("gold", fallback.gold))),
                str(info.get("gold_reasoning", info.get("solution", ""))))



def _index_groups(corpus: Corpus, m: int) -> tuple[list, int, int]:
    groups = corpus.groups(m)
    P, K = corpus.n_prompts, corpus.K_seeds
    seen = np.zeros((P, K), dtype=bool)
    for g in groups:
        if g.prompt_idx >= P or g.seed_idx >= K:
            raise ValueError(f"group (prompt {g.prompt_idx}, seed {g.seed_idx}) is outside the corpus "
                             f"({P} prompts x {K} seeds)")
        seen[g.prompt_idx, g.seed_idx] = True
    if not seen.all():
        p, k = np.argwhere(~seen)[0]
        raise ValueError(f"the corpus lacks {int((~seen).sum())} of its {P * K} groups at m = {m} "
                         f"(first missing: prompt {p}, seed {k})")
    return groups, P, K


def pack_for_analysis(corpus: Corpus, m: int, n_prompts: Optional[int] = None,
                      return_raw_length: bool = False):
    """The corpus's groups of size ``m`` as a ``(P, K, m, R)`` reward tensor.

    With ``return_raw_length=True`` also returns the aligned ``(P, K, m)``
    raw lengths (NaN where a group has none).
    """
    groups, P, K = _index_groups(corpus, int(m))
    out = np.empty((P, K, int(m), corpus.R))
    pi = np.fromiter((g.prompt_idx for g in groups), dtype=np.int64, count=len(groups))
    ki = np.fromiter((g.seed_idx for g in groups), dtype=np.int64, count=len(groups))
    out[pi, ki] = np.stack([g.rewards for g in groups])
    if n_prompts is not None:
        out = out[:int(n_prompts)]
    if not return_raw_length:
        return out
    rl = np.full((P, K, int(m)), np.nan)
    rl[pi, ki] = np.stack([g.raw_length if g.raw_length is not None else np.full(int(m), np.nan)
                           for g in groups])
    return out, (rl[:int(n_prompts)] if n_prompts is not None else rl)


def pack_raw_length(corpus: Corpus, m: int) -> Optional[np.ndarray]:
    """``(P, K, m)`` raw lengths, or None unless every group has them."""
    groups = corpus.groups(int(m))
    if any(g.raw_length is None for g in groups):
        return None
    return pack_for_analysis(corpus, m, return_raw_length=True)[1]


def pack_completions(corpus: Corpus, m: int) -> np.ndarray:
    """The completion texts of the groups of size ``m`` as a ``(P, K, m)`` object array (aligned with
    :func:`pack_for_analysis`), e.g. to recompute a reward channel from the stored replies."""
    groups, P, K = _index_groups(corpus, int(m))
    if any(g.completions is None for g in groups):
        raise ValueError("the corpus does not store its completion texts")
    out = np.empty((P, K, int(m)), dtype=object)
    for g in groups:
        out[g.prompt_idx, g.seed_idx] = g.completions
    return out
