"""Real-score data: the rewards and score projections of real rollouts (Theorem 3 with real scores).

:func:`collect` rolls out a policy, rewards the completions and projects each
completion's score ``g_j = v^T grad_theta log pi(y_j | x)`` on random unit
directions ``v`` (:mod:`mrgrpo.lm.scores`), on exactly the tokens the sampler
drew (its EOS included when the completion ended on one); nothing is
re-encoded. :class:`RealScoreData` holds the result and saves it as ``.npz``.
The analysis is :mod:`mrgrpo.analysis.real_scores`.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from mrgrpo.core.checks import check_rewards
from mrgrpo.core.files import atomic_path
from mrgrpo.lm.models import TINY_MATH

__all__ = ["RealScoreData", "collect", "PAPER_PARAMETERS", "DEFAULT_W", "DEFAULT_M_GRID"]

DEFAULT_W = (1.0, 1.0, 0.5)
DEFAULT_M_GRID = (4, 8, 16, 32)
#: The papermill parameters of ``chapters/real_scores.md`` for a run at paper scale on a GPU.
PAPER_PARAMETERS = {"model": "Qwen/Qwen2.5-1.5B-Instruct", "adapter": None, "n_prompts": 150, "K": 16,
                    "m_max": 32, "n_directions": 4, "device": "cuda", "dtype": "bfloat16",
                    "params": "all", "max_new_tokens": 512, "L0": 200, "gen_batch_size": 512,
                    "score_batch_size": 32}


@dataclass
class RealScoreData:
    """Rewards and score projections of ``P x K x M`` rollouts.

    Attributes
    ----------
    rewards : ``(P, K, M, R)``
    scores : ``(P, K, M, D)``
        ``v_d^T grad log pi(y | x)`` of the whole completion (EOS included when it
        ended on one) along ``D`` directions.
    n_tokens : ``(P, K, M)``
        Tokens in each completion's log-probability (for the length-normalized score).
    channel_names : tuple of str
    meta : dict
        How the data were made (model, sizes, seeds, timings).
    """

    rewards: np.ndarray
    scores: np.ndarray
    n_tokens: np.ndarray
    channel_names: tuple = ()
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rewards = check_rewards(self.rewards, exact_ndim=4)
        P, K, M, R = self.rewards.shape
        self.scores = np.asarray(self.scores, dtype=float)
        if self.scores.ndim != 4 or self.scores.shape[:3] != (P, K, M):
            raise ValueError(f"scores must have shape (P, K, M, D) = ({P}, {K}, {M}, D), got {self.scores.shape}")
        if not np.isfinite(self.scores).all():
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(self.scores))[0])
            raise ValueError(f"scores has a non-finite value at (prompt, seed, rollout, direction) {bad}")
        self.n_tokens = np.asarray(self.n_tokens)
        if self.n_tokens.shape != (P, K, M):
            raise ValueError(f"n_tokens must have shape {(P, K, M)}, got {self.n_tokens.shape}")
        if K < 2:
            raise ValueError(f"need K >= 2 seeds per prompt to measure an MSE, got K = {K}")
        self.channel_names = tuple(self.channel_names) or tuple(f"r{c}" for c in range(R))

    def g(self, normalize: str = "sum") -> np.ndarray:
        """Scores ``(P, K, M, D)`` of the summed or the length-normalized log-probability."""
        if normalize == "sum":
            return self.scores
        if normalize == "mean":
            return self.scores / np.maximum(self.n_tokens, 1)[..., None]
        raise ValueError(f"normalize must be 'sum' or 'mean', got {normalize!r}")

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, rewards=self.rewards, scores=self.scores, n_tokens=self.n_tokens,
                                channel_names=np.array(self.channel_names), meta=np.array(json.dumps(self.meta)))
        return path

    @classmethod
    def load(cls, path) -> "RealScoreData":
        with np.load(Path(path), allow_pickle=False) as z:
            return cls(z["rewards"], z["scores"], z["n_tokens"], tuple(str(c) for c in z["channel_names"]),
                       json.loads(str(z["meta"])))


def collect(model: str | os.PathLike = TINY_MATH, *, task: str = "mini-math", n_prompts: int = 16, K: int = 8,
            m_max: int = 32, n_directions: int = 2, device: str = "cpu", dtype: Any = None,
            adapter: Optional[str] = None, params: str = "auto", seed: int = 0, prompt_seed: int = 0,
            direction_seed: int = 0, temperature: float = 1.0, max_new_tokens: Optional[int] = None,
            L0: Optional[float] = None, gen_batch_size: int = 512, score_batch_size: int = 256,
            progress: bool = True) -> RealScoreData:
    """Roll out a policy on a task's held-out prompts, reward the completions and score them.

    ``n_prompts`` held-out prompts of ``task`` (:func:`mrgrpo.tasks.registry.task_setup`
    with seed ``prompt_seed``) x ``K`` seeds x ``m_max`` rollouts, sampled by
    :class:`mrgrpo.corpus.hf.HFBackend` (seeds ``seed, ..., seed + K - 1``) and
    rewarded by the task's reward function; the scores come from
    :func:`mrgrpo.lm.scores.score_projections` along ``n_directions`` random unit
    directions (seed ``direction_seed``) in the ``params`` space, on the token ids
    the sampler drew (EOS included when a completion ended on it), as scores of
    the sampling distribution ``softmax(logits / temperature)`` (so that
    ``E[g] = 0``); ``meta["temperature"]`` records it. ``temperature = 0``
    (greedy) is refused: a deterministic policy has no score.

    ``max_new_tokens`` and ``L0`` default to the task's own
    (:func:`mrgrpo.tasks.registry.task_max_new_tokens`, the task's length target).
    """
    from mrgrpo.corpus.hf import HFBackend
    from mrgrpo.lm.scores import check_temperature, score_projections
    from mrgrpo.tasks.registry import task_max_new_tokens, task_setup

    temperature = check_temperature(temperature)  # before any model is loaded

    for name, v, lo in (("n_prompts", n_prompts, 1), ("K", K, 2), ("m_max", m_max, 2),
                        ("n_directions", n_directions, 1)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    max_new_tokens = task_max_new_tokens(task) if max_new_tokens is None else int(max_new_tokens)
    backend = HFBackend(model, None, device=device, dtype=dtype, temperature=temperature,
                        max_new_tokens=max_new_tokens, batch_size=gen_batch_size, adapter=adapter,
                        progress=progress)
    setup = task_setup(task, backend.tokenizer, n_train=0, n_eval=n_prompts, seed=prompt_seed, L0=L0)
    backend.set_reward_fn(setup.reward_fn)
    t0 = time.perf_counter()
    groups = backend.generate_groups(setup.eval_prompts, m_max, list(range(seed, seed + K)))
    t_gen = time.perf_counter() - t0
    R = groups[0].rewards.shape[1]
    rewards = np.stack([gr.rewards for gr in groups]).reshape(n_prompts, K, m_max, R)
    prompt_ids = [gr.prompt_ids for gr in groups for _ in range(m_max)]
    tokens = [row for gr in groups for row in gr.tokens]  # as drawn, EOS included when it ended on one
    ended = np.concatenate([gr.ended for gr in groups])
    t0 = time.perf_counter()
    g = score_projections(backend.model, None, prompt_ids, tokens, directions=int(n_directions), seed=direction_seed,
                          params=params, normalize="sum", eos=False, batch_size=score_batch_size, progress=progress,
                          temperature=temperature)
    t_score = time.perf_counter() - t0
    n_tok = np.array([len(row) for row in tokens]).reshape(n_prompts, K, m_max)
    meta = {"model": os.fspath(model), "adapter": adapter, "task": task, "n_prompts": n_prompts, "K": K,
            "m_max": m_max, "n_directions": int(n_directions), "params": params, "device": device,
            "dtype": str(dtype), "seeds": [seed, seed + K - 1], "prompt_seed": prompt_seed,
            "direction_seed": direction_seed, "temperature": temperature, "max_new_tokens": max_new_tokens,
            "L0": getattr(setup.reward_fn, "L0", None), "eos_ids": list(backend.eos_ids),
            "prompts": f"task_setup({task!r}, n_eval={n_prompts}, seed={prompt_seed}).eval_prompts",
            "generate_seconds": round(t_gen, 2), "score_seconds": round(t_score, 2),
            "truncated_fraction": float(1 - ended.mean()), "mean_completion_tokens": float(n_tok.mean())}
    return RealScoreData(rewards, g.reshape(n_prompts, K, m_max, -1), n_tok, backend.reward_names, meta)


