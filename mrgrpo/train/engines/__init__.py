"""One call for either training engine: :func:`make_trainer` dispatches on ``GRPOConfig.engine``.

- ``"ours"``: :class:`mrgrpo.train.GRPOTrainer`, one process, the reference implementation;
- ``"trl"``: :class:`mrgrpo.train.engines.trl_engine.TRLEngineTrainer`, TRL's ``GRPOTrainer`` with
  mrgrpo's advantages (imports TRL only then).

Both take the same arguments, expose ``train()``, ``evaluate()``, ``history``,
``eval_history``, ``step``, ``channel_names`` and ``eval_table()``, and write the same run
folder (:class:`mrgrpo.train.checkpoint.RunLayout`), so ``mrgrpo hub push-adapter`` and the
book read a run of either.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

__all__ = ["make_trainer"]


def make_trainer(config: Any, reward_fn: Callable, prompts: Sequence[Any], eval_prompts: Optional[Sequence[Any]] = None,
                 callbacks: Sequence[Callable] = (), run_info: Optional[dict] = None) -> Any:
    """The trainer of ``config.engine`` (see the module docstring), built with these arguments."""
    from mrgrpo.train.config import ENGINES, GRPOConfig

    if not isinstance(config, GRPOConfig):
        raise ValueError(f"config must be a GRPOConfig, got {type(config).__name__}")
    if config.engine == "trl":
        from mrgrpo.train.engines.trl_engine import TRLEngineTrainer as cls
    elif config.engine == "ours":
        from mrgrpo.train.trainer import GRPOTrainer as cls
    else:  # pragma: no cover - GRPOConfig checks the choice
        raise ValueError(f"unknown engine {config.engine!r}; choose one of {', '.join(ENGINES)}")
    return cls(config, reward_fn, prompts, eval_prompts=eval_prompts, callbacks=callbacks, run_info=run_info)
