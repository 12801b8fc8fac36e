"""mrgrpo: multi-reward GRPO, checked.

The library behind the *mrgrpo-book* companion to "When and Why Decoupling and
Conditioning Beat Reweighting in Multi-Reward GRPO: A U-Statistic Treatment".

Layers, bottom to top (a layer imports only the layers below it):

- :mod:`mrgrpo.core`       numpy only: input checks, within-group statistics, the advantages
                           (AN / NA / single, conditioning; a torch twin), the paper's closed forms
- :mod:`mrgrpo.sim`        the copula, correlated reward generators, the Tier-1 Monte-Carlo
- :mod:`mrgrpo.lm`         torch / Hugging Face: model ids and the one loader, prompts, the one
                           sampler, padding, KV cache, score projections
- :mod:`mrgrpo.rewards`, :mod:`mrgrpo.tasks`  reward functions and prompt sources
- :mod:`mrgrpo.corpus`     rollout corpora, their backends (mock, Hugging Face) and files
- :mod:`mrgrpo.train`, :mod:`mrgrpo.analysis`, :mod:`mrgrpo.integrations`  ``GRPOConfig`` /
                           ``GRPOTrainer``; the Theorem-3 harness; mrgrpo inside TRL and verl
- :mod:`mrgrpo.tiny`       the shipped tiny policy (tokenizer, pretraining, card, corpus)
- :mod:`mrgrpo.ops`, :mod:`mrgrpo.cli`  cloud runner, Hub publishing, book runner; the ``mrgrpo`` command

Heavy dependencies (torch, transformers) load only when the names that need
them are first used, so ``import mrgrpo`` stays fast.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "compute_advantage": "mrgrpo.core.advantage",
    "compute_advantage_batch": "mrgrpo.core.advantage",
    "apply_conditioning": "mrgrpo.core.advantage",
    "AdvantageSpec": "mrgrpo.core.advantage_spec",
    "analyze": "mrgrpo.analysis",
    "summary_print": "mrgrpo.analysis",
    "Thm3Result": "mrgrpo.analysis",
    "MockBackend": "mrgrpo.corpus",
    "Rollouts": "mrgrpo.corpus",
    "run_corpus": "mrgrpo.corpus",
    "pack_for_analysis": "mrgrpo.corpus",
    "GRPOConfig": "mrgrpo.train",
    "GRPOTrainer": "mrgrpo.train",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mrgrpo' has no attribute {name!r}")
    from mrgrpo.core.extras import require  # a missing optional package names the extra to install

    value = getattr(require(module, feature=f"mrgrpo.{name}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
