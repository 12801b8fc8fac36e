"""Compatibility path for rollout generation; the code lives in :mod:`mrgrpo.corpus` and :mod:`mrgrpo.lm`.

``from mrgrpo.generation import MockBackend, run_corpus, pack_for_analysis`` (and
``HFBackend``) keeps working; new code imports from :mod:`mrgrpo.corpus`.
"""
from __future__ import annotations

from typing import Any

from mrgrpo.corpus import Backend, Corpus, MockBackend, Rollouts, pack_for_analysis, run_corpus

__all__ = ["HFBackend", "MockBackend", "Rollouts", "run_corpus", "pack_for_analysis", "Corpus", "Backend"]


def __getattr__(name: str) -> Any:
    if name == "HFBackend":  # imports torch: only on first use
        from mrgrpo.corpus.hf import HFBackend

        return HFBackend
    raise AttributeError(f"module 'mrgrpo.generation' has no attribute {name!r}")
