"""verl ``compute_score`` for GSM8K-style math with mrgrpo's channels (see ``mrgrpo_grpo.yaml``).

Returns the dict verl's ``gdpo`` reward manager expects: ``"score"`` (the weighted sum, which
verl logs) plus one entry per channel, which verl copies into ``non_tensor_batch`` for the
``mrgrpo_*`` estimators:

- ``correctness``: 1 if the final answer equals ``ground_truth``;
- ``length_bonus``: ``1 + length``, mrgrpo's length score shifted into ``[0, 1]`` (1 at the
  target length). Gate a non-negative score: zero-filling the raw length (in ``[-1, 0]``)
  would give every wrong answer the best length score (see ``MathRewardFunction``);
- ``format``: 1 if the answer is given as ``#### N`` or ``\\boxed{N}``.
"""
from __future__ import annotations

from mrgrpo.rewards.math import MathRewardFunction

WEIGHTS = {"correctness": 1.0, "length_bonus": 1.0, "format": 0.5}
_REWARD = MathRewardFunction(L0=200)


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> dict:
    correctness, length, fmt = _REWARD(solution_str, {"gold": str(ground_truth)})
    channels = {"correctness": correctness, "length_bonus": 1.0 + length, "format": fmt}
    return {"score": sum(WEIGHTS[k] * v for k, v in channels.items()), **channels}
