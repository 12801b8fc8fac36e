"""The learning-rate schedule: linear warmup, then constant or a linear decay to 0 at ``n_steps``."""
from __future__ import annotations

import functools
from typing import Callable

__all__ = ["lr_factor", "lr_lambda"]


def lr_factor(step: int, *, n_steps: int, warmup_steps: int = 0, schedule: str = "constant") -> float:
    """The multiplier of the base learning rate at optimizer step ``step`` (0-based)."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "linear":
        return max(0.0, (n_steps - step) / max(1, n_steps - warmup_steps))
    return 1.0


def lr_lambda(config) -> Callable[[int], float]:
    """:func:`lr_factor` with a config's ``n_steps``, ``warmup_steps`` and ``lr_schedule``, for ``LambdaLR``."""
    return functools.partial(lr_factor, n_steps=config.n_steps, warmup_steps=config.warmup_steps,
                             schedule=config.lr_schedule)
