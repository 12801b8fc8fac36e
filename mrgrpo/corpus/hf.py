"""A Hugging Face causal LM as a rollout backend.

:class:`HFBackend` samples groups with :mod:`mrgrpo.lm.sampling` (reproducible
per prompt and seed), scores them with a reward function and returns
:class:`~mrgrpo.corpus.types.Rollouts` that keep each completion's token ids
and whether it ended on EOS, so :func:`~mrgrpo.corpus.run.run_corpus` turns them
into a corpus and the real-score code scores exactly the tokens that were drawn.
"""
from __future__ import annotations

import logging
import math
import os
import time
from typing import Any, Optional, Sequence

import numpy as np

from mrgrpo.core.checks import as_sequence
from mrgrpo.core.progress import progress_bar
from mrgrpo.corpus.types import Rollouts
from mrgrpo.lm.loader import eos_token_ids, load_model
from mrgrpo.lm.models import model_label
from mrgrpo.lm.prompts import as_prompts
from mrgrpo.lm.sampling import sample_groups
from mrgrpo.rewards.base import score_completions

__all__ = ["HFBackend", "SAMPLER"]

logger = logging.getLogger(__name__)

#: How the backend's samples are drawn (stored with a corpus).
SAMPLER = "mrgrpo.lm.sampling inverse-CDF with SeedSequence([seed, sha256(prompt)])"


def _positive_int(name: str, v: Any) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")
    return int(v)


class HFBackend:
    """A Hugging Face causal LM as a rollout backend.

    Parameters
    ----------
    model : str or path
        A model id (``"tiny-math"``, ``"smollm2-135m-instruct"``), a local
        folder or a hub id (``"Qwen/Qwen2.5-1.5B-Instruct"``).
    reward_fn : callable or None
        ``reward_fn(completion, prompt) -> R floats``, ideally with
        ``channel_names``; an optional ``raw_length(completion, prompt)`` is kept.
        None defers the choice (e.g. to a reward that counts tokens with this
        backend's tokenizer): call :meth:`set_reward_fn` before generating.
    device : str
        ``"cpu"``, ``"cuda"``, ...
    dtype : torch dtype or its name, optional
        e.g. ``"bfloat16"`` on a GPU; default the checkpoint's.
    temperature : float
        Sampling temperature; 0 is greedy (every row of a group then agrees).
    max_new_tokens : int
        Completion budget; a row that reaches it without EOS is cut there.
    batch_size : int
        Rows (completions) per forward batch.
    adapter : path, optional
        A peft LoRA adapter to load on top of ``model``.
    system_prompt : str, optional
        A system turn before every prompt (see :func:`mrgrpo.lm.prompts.render`).
    use_chat_template : bool or "auto"
    progress : bool
        Show a tqdm bar over completions.

    Attributes
    ----------
    completions_per_second : float
        Throughput of the last :meth:`generate_groups` call (generation and
        scoring), also logged at INFO level.
    last_stats : dict
        Completions, seconds, mean new tokens and truncated fraction of the last call.
    """

    def __init__(self, model: str | os.PathLike, reward_fn: Any, device: str = "cpu", dtype: Any = None,
                 temperature: float = 1.0, max_new_tokens: int = 64, batch_size: int = 256,
                 adapter: str | os.PathLike | None = None, system_prompt: Optional[str] = None,
                 use_chat_template: bool | str = "auto", progress: bool = True):
        self.max_new_tokens = _positive_int("max_new_tokens", max_new_tokens)
        self.batch_size = _positive_int("batch_size", batch_size)
        if not (math.isfinite(float(temperature)) and temperature >= 0):
            raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
        self.model_name = os.fspath(model)
        self.model, self.tokenizer = load_model(model, device=device, dtype=dtype, adapter=adapter)
        self.eos_ids = eos_token_ids(self.tokenizer, self.model)
        self.temperature = float(temperature)
        self.system_prompt = system_prompt
        self.use_chat_template = use_chat_template
        self.progress = progress
        self.name = f"hf:{model_label(self.model_name)}"
        self.set_reward_fn(reward_fn)
        self.completions_per_second = float("nan")
        self.last_stats: dict[str, float] = {}

    def set_reward_fn(self, reward_fn: Any) -> "HFBackend":
        """Use ``reward_fn`` from now on (its ``channel_names`` become ``reward_names``)."""
        if reward_fn is not None and not callable(reward_fn):
            raise ValueError(f"reward_fn must be callable(completion, prompt), got {type(reward_fn).__name__}")
        self.reward_fn = reward_fn
        names = getattr(reward_fn, "channel_names", None)
        self.reward_names = tuple(names) if names is not None else ()
        return self

    def generation_params(self) -> dict[str, Any]:
        """The parameters that define this backend's samples (stored with a corpus)."""
        return {"model": self.model_name, "temperature": self.temperature, "max_new_tokens": self.max_new_tokens,
                "eos_ids": list(self.eos_ids), "system_prompt": self.system_prompt,
                "use_chat_template": self.use_chat_template, "sampler": SAMPLER,
                "reward_fn": type(self.reward_fn).__name__, "reward_names": list(self.reward_names)}

    def generate_groups(self, prompts: Sequence[Any], m: int, seeds: Sequence[int]) -> list:
        """Sample and score ``m`` completions for every (prompt, seed).

        Returns
        -------
        list of :class:`~mrgrpo.corpus.types.Rollouts`, prompt-major
            ``len(prompts) * len(seeds)`` groups: all seeds of prompt 0, then prompt 1, ...
        """
        m = _positive_int("m", m)
        if self.reward_fn is None:
            raise ValueError("HFBackend has no reward function: pass reward_fn or call set_reward_fn first")
        items, seeds = as_prompts(as_sequence(prompts, "prompts")), [int(s) for s in seeds]
        total = len(items) * len(seeds) * m
        bar = None
        if self.progress:
            bar = progress_bar(total=total, desc=f"{self.name} generate", unit="compl", leave=False)
        t0 = time.perf_counter()
        try:
            done = sample_groups(self.model, self.tokenizer, items, m, seeds, temperature=self.temperature,
                                 max_new_tokens=self.max_new_tokens, batch_size=self.batch_size, eos_ids=self.eos_ids,
                                 system_prompt=self.system_prompt, use_chat_template=self.use_chat_template,
                                 progress=bar)
        finally:
            if bar is not None:
                bar.close()
        t_gen = time.perf_counter() - t0
        row_items = [p.item for p in items for _ in seeds for _ in range(m)]
        rewards = score_completions(self.reward_fn, done.texts, row_items)
        if not self.reward_names:
            self.reward_names = tuple(f"r{c}" for c in range(rewards.shape[1]))
        raw_fn = getattr(self.reward_fn, "raw_length", None)
        raw = np.array([float(raw_fn(c, p)) for c, p in zip(done.texts, row_items)]) if callable(raw_fn) else None
        elapsed = time.perf_counter() - t0
        self.completions_per_second = total / elapsed if elapsed > 0 else float("inf")
        self.last_stats = {"completions": total, "seconds": elapsed, "generate_seconds": t_gen,
                           "completions_per_second": self.completions_per_second,
                           "mean_new_tokens": float(done.n_tokens.mean()) if total else 0.0,
                           "truncated_fraction": float(1 - done.ended.mean()) if total else 0.0}
        logger.info("%s: %d completions in %.1f s (%.1f completions/s)", self.name, total, elapsed,
                    self.completions_per_second)
        out, k = [], 0
        for pi, p in enumerate(items):
            for si, s in enumerate(seeds):
                sl = slice(k, k + m)
                out.append(Rollouts(prompt_idx=pi, seed_idx=si, prompt=p.text, gold=p.gold, seed=s, m=m,
                                    rewards=rewards[sl], raw_length=None if raw is None else raw[sl],
                                    completions=done.texts[sl], tokens=done.tokens[sl], ended=done.ended[sl],
                                    prompt_ids=done.prompt_ids[k]))
                k += m
        return out
