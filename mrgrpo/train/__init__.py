"""Multi-reward GRPO training: :class:`GRPOConfig` and :class:`GRPOTrainer`.

``config`` (the dataclass; standard library only), ``trainer`` (the loop), ``masks``
(which tokens count), ``losses`` (surrogate, k3 KL), ``checkpoint`` and ``rng_state``
(atomic, weights-only save / resume), ``run_guard`` (a run folder is never overwritten
or mixed), ``metrics`` (what is logged), ``experiment`` (the Tier-3 estimator comparison),
``engines`` (:func:`make_trainer`: the trainer ``config.engine`` names; ``engines.trl_engine``
and ``engines.trl_callbacks`` are the ``trl`` engine, TRL's loop with this run folder).

Names load on first use, so ``import mrgrpo.train.config`` does not import torch.
"""
from __future__ import annotations

from typing import Any

_LAZY = {
    "GRPOConfig": "mrgrpo.train.config",
    "GRPOTrainer": "mrgrpo.train.trainer",
    "make_trainer": "mrgrpo.train.engines",
    "MODE_LABELS": "mrgrpo.train.experiment",
    "Comparison": "mrgrpo.train.experiment",
    "compare_estimators": "mrgrpo.train.experiment",
    "held_out_summary": "mrgrpo.train.experiment",
    "evaluate_adapters": "mrgrpo.train.experiment",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mrgrpo.train' has no attribute {name!r}")
    from mrgrpo.core.extras import require  # a missing optional package names the extra to install

    value = getattr(require(module, feature=f"mrgrpo.train.{name}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
