"""An mrgrpo task as TRL inputs: per-channel reward functions and a prompt dataset.

mrgrpo's reward functions score one completion on all ``R`` channels at once
(``reward_fn(completion, prompt_item) -> R floats``, :mod:`mrgrpo.rewards`); TRL wants one
function per channel that scores a whole batch. :func:`channel_reward_funcs` makes the
``R`` TRL functions, which share one scoring pass per batch, and :func:`prompt_dataset`
turns prompt items (``{"prompt": ..., "gold": ...}``) into the ``datasets.Dataset`` whose
extra columns TRL hands back to the reward functions. No TRL import: these are plain
callables and a dataset.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mrgrpo.rewards.base import score_completions

__all__ = ["channel_reward_funcs", "prompt_dataset", "ChannelReward"]

# keyword arguments TRL adds to every reward call that are not dataset columns
_TRL_KWARGS = {"trainer_state", "log_extra", "log_metric", "environments", "completion_ids"}


def _text(completion: Any) -> str:
    """A completion as text: TRL passes a string, or a message list for conversational prompts."""
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    return str(completion)


class _BatchScores:
    """Scores a batch on every channel once; the channel functions read their column."""

    def __init__(self, reward_fn: Any):
        self.reward_fn = reward_fn
        self._key: tuple | None = None
        self._scores: np.ndarray | None = None

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], columns: dict) -> np.ndarray:
        texts = [_text(c) for c in completions]
        key = (tuple(map(repr, prompts)), tuple(texts), tuple((k, repr(v)) for k, v in sorted(columns.items())))
        if key != self._key:
            items = [{"prompt": p, **{k: v[i] for k, v in columns.items()}} if columns else p
                     for i, p in enumerate(prompts)]
            self._scores = score_completions(self.reward_fn, texts, items)
            self._key = key
        return self._scores


class ChannelReward:
    """Channel ``k`` of an mrgrpo reward function as a TRL reward function (named after the channel)."""

    def __init__(self, scores: _BatchScores, k: int, name: str):
        self.scores, self.k, self.__name__ = scores, k, name

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        columns = {key: list(v) for key, v in kwargs.items()
                   if key not in _TRL_KWARGS and not isinstance(v, (str, bytes, dict)) and hasattr(v, "__len__")
                   and hasattr(v, "__getitem__") and len(v) == len(prompts)}
        return self.scores(prompts, completions, columns)[:, self.k].tolist()


def channel_reward_funcs(reward_fn: Any) -> list[ChannelReward]:
    """One TRL reward function per channel of ``reward_fn``, in channel order.

    Parameters
    ----------
    reward_fn : callable with ``channel_names``
        ``reward_fn(completion, prompt_item) -> R floats``. The prompt item it sees is
        ``{"prompt": prompt, **extra dataset columns}`` (the prompt alone if the dataset
        has no other column).

    Returns
    -------
    list of ``R`` callables ``f(prompts, completions, **columns) -> list[float]``, named after the channels.
    """
    names = getattr(reward_fn, "channel_names", None)
    if not names or isinstance(names, str):
        raise ValueError(f"reward_fn needs channel_names (a tuple of channel names), got {names!r}")
    scores = _BatchScores(reward_fn)
    return [ChannelReward(scores, k, str(name)) for k, name in enumerate(names)]


def prompt_dataset(items: Sequence[Any]):
    """A ``datasets.Dataset`` with a ``prompt`` column (and every other key of dict items as a column).

    Parameters
    ----------
    items : sequence of str, chat-message list, or dict with ``"prompt"``
        Dict items must share their keys.
    """
    from datasets import Dataset

    if isinstance(items, (str, bytes)) or not len(items):
        raise ValueError("items must be a non-empty sequence of prompt items")
    if all(isinstance(x, dict) for x in items):
        keys = list(items[0])
        if "prompt" not in keys:
            raise ValueError(f"dict prompt items need a 'prompt' key, got keys {keys}")
        for i, x in enumerate(items):
            if list(x) != keys and set(x) != set(keys):
                raise ValueError(f"prompt item {i} has keys {sorted(x)}, item 0 has {sorted(keys)}")
        return Dataset.from_dict({k: [x[k] for x in items] for k in keys})
    if any(isinstance(x, dict) for x in items):
        raise ValueError("mix of dict and non-dict prompt items")
    return Dataset.from_dict({"prompt": list(items)})
