"""Rollout corpora: groups of scored completions, the backends that make them, and their files.

- :mod:`~mrgrpo.corpus.types`   :class:`Rollouts` (one group), :class:`Corpus`, :func:`pack_for_analysis`
- :mod:`~mrgrpo.corpus.io`      the Parquet / ``.npz`` schema (atomic writes)
- :mod:`~mrgrpo.corpus.run`     the :class:`Backend` protocol and :func:`run_corpus`
- :mod:`~mrgrpo.corpus.mock`    :class:`MockBackend`: rewards with a known correlation
- :mod:`~mrgrpo.corpus.hf`      :class:`HFBackend`: completions of a Hugging Face causal LM (torch)
- :mod:`~mrgrpo.corpus.released` the paper's released rollouts
- :mod:`~mrgrpo.corpus.sources` the Tier-2 chapter's rollout sources
- :mod:`~mrgrpo.corpus.real_scores` rewards and score projections of real rollouts (torch)

Importing this package does not import torch: :class:`HFBackend` loads on first use.
"""
from __future__ import annotations

from typing import Any

from mrgrpo.corpus.io import load_corpus, load_npz, load_parquet, save_corpus, save_npz, save_parquet, to_frame
from mrgrpo.corpus.mock import MockBackend
from mrgrpo.corpus.released import ReleasedDataUnavailable, load_released_rollouts
from mrgrpo.corpus.run import Backend, group_generator, run_corpus
from mrgrpo.corpus.sources import PAPER_POOLED_C, SOURCES, describe_source, load_rollouts
from mrgrpo.corpus.types import Corpus, Rollouts, pack_completions, pack_for_analysis, pack_raw_length

__all__ = ["Rollouts", "Corpus", "pack_for_analysis", "pack_raw_length", "pack_completions", "load_corpus", "save_corpus", "load_npz",
           "save_npz", "load_parquet", "save_parquet", "to_frame", "Backend", "group_generator", "run_corpus",
           "MockBackend", "HFBackend", "ReleasedDataUnavailable", "load_released_rollouts", "SOURCES",
           "PAPER_POOLED_C", "load_rollouts", "describe_source"]


def __getattr__(name: str) -> Any:
    if name == "HFBackend":
        from mrgrpo.corpus.hf import HFBackend

        return HFBackend
    raise AttributeError(f"module 'mrgrpo.corpus' has no attribute {name!r}")
