"""An mrgrpo task as TRL inputs: per-channel reward functions and a prompt dataset.

mrgrpo's reward functions score one completion on all ``R`` channels at once
(``reward_fn(completion, prompt_item) -> R floats``, :mod:`mrgrpo.rewards`); TRL wants one
function per channel that scores a whole batch. :func:`channel_reward_funcs` makes the
``R`` TRL functions, which share one scoring pass per batch, and :func:`prompt_dataset`
turns prompt items (``{"prompt": ..., "gold": ...}``) into the ``datasets.Dataset`` whose
extra columns TRL hands back to the reward functions. No TRL import: these are plain
callables and a dataset.

:func:`engine_dataset` is what the TRL engine (:mod:`mrgrpo.train.engines.trl_engine`) uses
instead: each row holds the prompt exactly as mrgrpo's own trainer renders it (a chat
list, which TRL puts through the same chat template, or the finished text) and the
index of its prompt item (:data:`ITEM_INDEX`), so that the reward functions of
``channel_reward_funcs(reward_fn, items)`` see the very items ``GRPOTrainer`` would
hand them.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mrgrpo.core.extras import require
from mrgrpo.rewards.base import score_completions

__all__ = ["channel_reward_funcs", "prompt_dataset", "engine_dataset", "ChannelReward", "ITEM_INDEX"]

#: The dataset column of :func:`engine_dataset` that holds each row's prompt-item index.
ITEM_INDEX = "mrgrpo_item"

# keyword arguments TRL adds to every reward call that are not dataset columns
_TRL_KWARGS = {"trainer_state", "log_extra", "log_metric", "environments", "completion_ids"}


def _text(completion: Any) -> str:
    """A completion as text: TRL passes a string, or a message list for conversational prompts."""
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    return str(completion)


class _BatchScores:
    """Scores a batch on every channel once; the channel functions read their column."""

    def __init__(self, reward_fn: Any, items: Sequence[Any] | None = None):
        self.reward_fn = reward_fn
        self.items = None if items is None else list(items)
        self._key: tuple | None = None
        self._scores: np.ndarray | None = None

    def _items(self, prompts: Sequence[Any], columns: dict) -> list:
        if self.items is not None:
            if ITEM_INDEX not in columns:
                raise ValueError(f"the dataset has no {ITEM_INDEX!r} column: build it with engine_dataset")
            return [self.items[int(i)] for i in columns[ITEM_INDEX]]
        return [{"prompt": p, **{k: v[i] for k, v in columns.items()}} if columns else p
                for i, p in enumerate(prompts)]

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], columns: dict) -> np.ndarray:
        texts = [_text(c) for c in completions]
        key = (tuple(map(repr, prompts)), tuple(texts), tuple((k, repr(v)) for k, v in sorted(columns.items())))
        if key != self._key:
            self._scores = score_completions(self.reward_fn, texts, self._items(prompts, columns))
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


def channel_reward_funcs(reward_fn: Any, items: Sequence[Any] | None = None) -> list[ChannelReward]:
    """One TRL reward function per channel of ``reward_fn``, in channel order.

    Parameters
    ----------
    reward_fn : callable with ``channel_names``
        ``reward_fn(completion, prompt_item) -> R floats``. The prompt item it sees is
        ``{"prompt": prompt, **extra dataset columns}`` (the prompt alone if the dataset
        has no other column).
    items : sequence, optional
        The prompt items of an :func:`engine_dataset`: then the item ``reward_fn`` sees is
        ``items[row's ITEM_INDEX]``, as given.

    Returns
    -------
    list of ``R`` callables ``f(prompts, completions, **columns) -> list[float]``, named after the channels.
    """
    names = getattr(reward_fn, "channel_names", None)
    if not names or isinstance(names, str):
        raise ValueError(f"reward_fn needs channel_names (a tuple of channel names), got {names!r}")
    scores = _BatchScores(reward_fn, items)
    return [ChannelReward(scores, k, str(name)) for k, name in enumerate(names)]


def prompt_dataset(items: Sequence[Any]):
    """A ``datasets.Dataset`` with a ``prompt`` column (and every other key of dict items as a column).

    Parameters
    ----------
    items : sequence of str, chat-message list, or dict with ``"prompt"``
        Dict items must share their keys.
    """
    Dataset = require("datasets", "trl", "a TRL dataset").Dataset

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


def engine_dataset(prompts: Sequence[Any], tokenizer: Any, *, system_prompt: str | None = None,
                   use_chat_template: bool | str = "auto"):
    """The TRL dataset of mrgrpo prompt items: a ``prompt`` column TRL tokenizes as mrgrpo does, and :data:`ITEM_INDEX`.

    A prompt that mrgrpo puts through the chat template (:func:`mrgrpo.lm.prompts.render`)
    becomes its chat list (with the system turn), which TRL templates with
    ``add_generation_prompt=True`` and no extra special tokens, like
    :func:`mrgrpo.lm.prompts.encode`; any other prompt becomes its finished text, which TRL
    tokenizes with the tokenizer's own special tokens, again like ``encode``.

    Parameters
    ----------
    prompts : sequence of prompt items (see :mod:`mrgrpo.lm.prompts`)
    tokenizer : the policy's tokenizer
    system_prompt, use_chat_template : as in :class:`mrgrpo.train.GRPOConfig`
    """
    Dataset = require("datasets", "trl", "a TRL dataset").Dataset

    from mrgrpo.lm.prompts import as_prompts, has_chat_template, render

    normalized = as_prompts(prompts, "prompts")
    rows = []
    for p in normalized:
        text = render(p, tokenizer, system_prompt=system_prompt, use_chat_template=use_chat_template)
        if p.is_chat or (has_chat_template(tokenizer) and use_chat_template):
            messages = [dict(m) for m in p.body] if p.is_chat else [{"role": "user", "content": p.body}]
            if system_prompt and not any(m.get("role") == "system" for m in messages):
                messages = [{"role": "system", "content": system_prompt}, *messages]
            rows.append(messages)
        else:
            rows.append(text)
    if len({isinstance(r, str) for r in rows}) > 1:
        raise ValueError("prompts mix chat lists and plain text under use_chat_template=False; TRL needs one kind")
    return Dataset.from_dict({"prompt": rows, ITEM_INDEX: list(range(len(rows)))})
