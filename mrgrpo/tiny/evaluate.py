"""The tiny policy's evaluation: accuracies and per-channel variability of its groups."""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from mrgrpo.lm.models import TINY_MATH_DIR
from mrgrpo.lm.sampling import sample_completions
from mrgrpo.rewards.base import score_completions
from mrgrpo.rewards.math import MathRewardFunction
from mrgrpo.tasks.mini_math import MINI_MATH_L0, MINI_MATH_MAX_NEW_TOKENS

__all__ = ["DEFAULT_MODEL_DIR", "TINY_L0", "TINY_MAX_NEW_TOKENS", "tiny_reward_fn", "evaluate_policy"]

#: Where the shipped tiny policy's files are (package data; model id ``"tiny-math"``).
DEFAULT_MODEL_DIR = TINY_MATH_DIR
#: The tiny policy's task constants (mini-math's own: :mod:`mrgrpo.tasks.mini_math`).
TINY_L0 = MINI_MATH_L0
TINY_MAX_NEW_TOKENS = MINI_MATH_MAX_NEW_TOKENS


def tiny_reward_fn(tokenizer: Any = None, L0: float = TINY_L0) -> MathRewardFunction:
    """``MathRewardFunction`` as used with the tiny policy (lengths counted in its tokens)."""
    return MathRewardFunction(L0=L0, tokenizer=tokenizer)


def evaluate_policy(model, tokenizer, problems: Sequence[dict], reward_fn: Any, *, m: int = 8, seed: int = 0,
                    max_new_tokens: int = TINY_MAX_NEW_TOKENS, batch_size: int = 512) -> dict:
    """Base-policy metrics on a list of problems.

    Greedy decoding gives one completion per problem; temperature 1 gives a group
    of ``m`` per problem. Reports accuracies, the mean of every channel, and for
    every channel the share of groups in which it is not constant (what GRPO
    needs: a constant channel carries no advantage signal).

    Returns
    -------
    dict
        ``greedy_accuracy``, ``t1_accuracy``, ``channel_means``, ``varies_fraction``
        (per channel name), ``any_varies_fraction``, ``mean_completion_chars``,
        ``accuracy_by_steps``, ``completions_per_second``, ``rewards_t1`` ``(P, m, R)``.
    """
    names = tuple(getattr(reward_fn, "channel_names", ()))
    P = len(problems)
    greedy = sample_completions(model, tokenizer, problems, 1, temperature=0.0, max_new_tokens=max_new_tokens,
                                seed=seed, batch_size=batch_size)
    g_rewards = score_completions(reward_fn, [c[0] for c in greedy], list(problems))
    t0 = time.perf_counter()
    groups = sample_completions(model, tokenizer, problems, m, temperature=1.0, max_new_tokens=max_new_tokens,
                                seed=seed, batch_size=batch_size)
    dt = time.perf_counter() - t0
    flat = [c for g in groups for c in g]
    rewards = score_completions(reward_fn, flat, [p for p in problems for _ in range(m)]).reshape(P, m, -1)
    names = names or tuple(f"r{c}" for c in range(rewards.shape[-1]))
    varies = np.ptp(rewards, axis=1) > 0  # (P, R)
    steps = np.array([p.get("n_steps", 0) for p in problems])
    return {
        "n_problems": P, "m": m, "seed": seed, "max_new_tokens": max_new_tokens,
        "greedy_accuracy": float(g_rewards[:, 0].mean()),
        "t1_accuracy": float(rewards[..., 0].mean()),
        "channel_means": {n: float(rewards[..., c].mean()) for c, n in enumerate(names)},
        "varies_fraction": {n: float(varies[:, c].mean()) for c, n in enumerate(names)},
        "any_varies_fraction": float(varies.any(axis=1).mean()),
        "all_vary_fraction": float(varies.all(axis=1).mean()),
        "mean_completion_chars": float(np.mean([len(c) for c in flat])),
        "accuracy_by_steps": {int(s): {"greedy": float(g_rewards[steps == s, 0].mean()),
                                       "t1": float(rewards[steps == s, :, 0].mean())}
                              for s in sorted(set(steps.tolist()))},
        "completions_per_second": P * m / dt if dt > 0 else float("inf"),
        "rewards_t1": rewards,
    }
