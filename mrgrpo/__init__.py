"""mrgrpo: multi-reward GRPO, checked.

The library behind the *mrgrpo-book* companion to "When and Why Decoupling and
Conditioning Beat Reweighting in Multi-Reward GRPO: A U-Statistic Treatment".

Submodules, one job each:

- :mod:`mrgrpo.advantage`  AN / NA / single advantages and conditioning (numpy; torch twin)
- :mod:`mrgrpo.theory`     the paper's closed forms
- :mod:`mrgrpo.simulate`   correlated reward generators and the Tier-1 Monte-Carlo
- :mod:`mrgrpo.analysis`   the Theorem-3 harness on a ``(P, K, m, R)`` reward tensor
- :mod:`mrgrpo.rollouts` / :mod:`mrgrpo.generation`  rollout corpora and backends
- :mod:`mrgrpo.rewards`, :mod:`mrgrpo.tasks`  reward functions and prompt sources
- :mod:`mrgrpo.train`      ``GRPOConfig`` / ``GRPOTrainer``

Heavy dependencies (torch, transformers) load only when the names that need
them are first used, so ``import mrgrpo`` stays fast.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "compute_advantage": "mrgrpo.advantage",
    "compute_advantage_batch": "mrgrpo.advantage",
    "apply_conditioning": "mrgrpo.advantage",
    "analyze": "mrgrpo.analysis",
    "summary_print": "mrgrpo.analysis",
    "Thm3Result": "mrgrpo.analysis",
    "MockBackend": "mrgrpo.rollouts",
    "Rollouts": "mrgrpo.rollouts",
    "run_corpus": "mrgrpo.rollouts",
    "pack_for_analysis": "mrgrpo.rollouts",
    "GRPOConfig": "mrgrpo.train",
    "GRPOTrainer": "mrgrpo.train",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mrgrpo' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
