"""Ready-made examples under the paper package's names.

``from mrgrpo.examples import FintechRewardFunction, make_fintech_prompts``;
GSM8K loaders live in :mod:`mrgrpo.examples.gsm8k`.
"""
from __future__ import annotations

from mrgrpo.rewards.fintech import FintechRewardFunction
from mrgrpo.tasks.fintech import make_fintech_prompts

__all__ = ["FintechRewardFunction", "make_fintech_prompts"]
