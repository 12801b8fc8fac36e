"""Reward functions: ``reward_fn(completion, prompt) -> R floats``, channel 0 the gate.

- :class:`RewardFunction` the protocol; :func:`score_completions` the checked caller
- :class:`MathRewardFunction` (correctness, length, format) for GSM8K-style math
- :class:`FintechRewardFunction` (compliance, politeness, action) for customer service
"""
from __future__ import annotations

from mrgrpo.rewards.base import RewardFunction, RewardFunctionError, score_completions
from mrgrpo.rewards.fintech import FintechRewardFunction
from mrgrpo.rewards.math import MathRewardFunction, extract_answer, length_score, parse_number

__all__ = [
    "RewardFunction",
    "RewardFunctionError",
    "score_completions",
    "MathRewardFunction",
    "FintechRewardFunction",
    "extract_answer",
    "parse_number",
    "length_score",
]
