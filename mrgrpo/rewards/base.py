"""The reward-function contract and a checked way to call one.

A reward function maps one completion, and the prompt item it answers, to ``R``
channel scores. Channel 0 is the gate that conditioning uses (correctness,
compliance). :func:`score_completions` is how every other module calls a reward
function: it turns any failure (an exception, a NaN or inf, the wrong number of
channels) into a :class:`RewardFunctionError` that names the prompt index, the
prompt and the completion, so one bad rollout in a corpus of thousands is easy
to find.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Set
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from mrgrpo.lm.prompts import prompt_text

__all__ = [
    "RewardFunction",
    "RewardFunctionError",
    "score_completions",
    "shorten",
]


@runtime_checkable
class RewardFunction(Protocol):
    """What the generation and training code expects of a reward function.

    Attributes
    ----------
    channel_names : tuple of str
        One name per channel; ``R = len(channel_names)``. Channel 0 is the gate.

    Notes
    -----
    ``__call__(completion, prompt)`` returns ``R`` floats. ``prompt`` is the item
    the caller was given: a string, a chat-message list, or a dict such as
    ``{"prompt": ..., "gold": ...}`` whose extra keys the function may read.
    A reward function may also define ``raw_length(completion, prompt) -> float``,
    the ungated length score the Prop-4 analysis keeps beside the channels;
    callers check for it with ``hasattr``.
    """

    channel_names: tuple[str, ...]

    def __call__(self, completion: str, prompt: Any) -> Sequence[float]:  # pragma: no cover - protocol
        ...


class RewardFunctionError(ValueError):
    """A reward function failed on one (completion, prompt) pair.

    Attributes
    ----------
    index : int
        Position of the pair in the lists given to :func:`score_completions`.
    """

    def __init__(self, message: str, index: int):
        super().__init__(message)
        self.index = index


def shorten(text: str, limit: int = 80) -> str:
    """``repr`` of ``text`` cut to about ``limit`` characters (head ... tail)."""
    if len(text) <= limit:
        return repr(text)
    half = max(limit // 2 - 3, 1)
    return repr(text[:half]) + " ... " + repr(text[-half:]) + f" ({len(text)} chars)"


def _where(index: int, completion: Any, prompt: Any) -> str:
    return (f"prompt index {index} (prompt {shorten(prompt_text(prompt))}, "
            f"completion {shorten(str(completion))})")


def _fn_name(reward_fn: Any) -> str:
    return getattr(reward_fn, "__name__", type(reward_fn).__name__)


def score_completions(reward_fn: Any, completions: Sequence[str], prompts: Sequence[Any],
                      n_channels: int | None = None) -> np.ndarray:
    """Score each completion against its prompt, checking every result.

    Parameters
    ----------
    reward_fn : callable
        ``reward_fn(completion, prompt) -> R floats``.
    completions : sequence of str, length ``n``
    prompts : sequence, length ``n``
        ``prompts[i]`` is the prompt item that ``completions[i]`` answers.
    n_channels : int, optional
        Expected ``R``. Defaults to ``len(reward_fn.channel_names)`` when the
        function has that attribute, else the length of the first result.

    Returns
    -------
    numpy.ndarray, shape ``(n, R)``, float64

    Raises
    ------
    ValueError
        ``completions`` and ``prompts`` differ in length, or either is a bare
        string (which would be split into characters).
    RewardFunctionError
        The function raised (chained as ``__cause__``), returned something that is
        not a flat sequence of numbers (a string such as ``"101"`` is refused, not
        read as ``[1, 0, 1]``; so are bytes, dicts and sets), the wrong number of
        channels, or a NaN or inf; the message names the prompt index, the
        prompt, the completion and the cause.
    """
    for name, seq in (("completions", completions), ("prompts", prompts)):
        if isinstance(seq, (str, bytes, bytearray)):
            raise ValueError(f"{name} must be a sequence (one item per completion), got a single "
                             f"{type(seq).__name__} {shorten(str(seq), 40)}; wrap it in a list")
    completions = list(completions)
    prompts = list(prompts)
    if len(completions) != len(prompts):
        raise ValueError(f"got {len(completions)} completions but {len(prompts)} prompts; "
                         "pass one prompt item per completion")
    if n_channels is None and getattr(reward_fn, "channel_names", None) is not None:
        n_channels = len(reward_fn.channel_names)
    if n_channels is not None and (isinstance(n_channels, bool) or int(n_channels) < 1):
        raise ValueError(f"n_channels must be a positive int, got {n_channels!r}")
    name = _fn_name(reward_fn)
    rows: list[list[float]] = []
    for i, (completion, prompt) in enumerate(zip(completions, prompts)):
        try:
            raw = reward_fn(completion, prompt)
        except Exception as exc:
            raise RewardFunctionError(
                f"reward function {name} raised {type(exc).__name__}: {exc} at {_where(i, completion, prompt)}",
                i) from exc
        try:
            if isinstance(raw, (str, bytes, bytearray, Mapping, Set)):
                raise TypeError(f"a {type(raw).__name__} is not a sequence of channel scores")
            items = list(raw.tolist() if isinstance(raw, np.ndarray) else raw)
            if any(isinstance(v, (str, bytes, bytearray)) for v in items):
                raise TypeError("a channel score is a string, not a number")
            values = [float(v) for v in items]
        except (TypeError, ValueError) as exc:
            raise RewardFunctionError(
                f"reward function {name} returned a {type(raw).__name__} ({repr(raw)[:60]}), "
                f"not a flat sequence of numbers, "
                f"at {_where(i, completion, prompt)}", i) from exc
        expected = n_channels if n_channels is not None else (len(rows[0]) if rows else len(values))
        if len(values) != expected:
            raise RewardFunctionError(
                f"reward function {name} returned {len(values)} channels, expected {expected}, "
                f"at {_where(i, completion, prompt)}", i)
        bad = [c for c, v in enumerate(values) if not math.isfinite(v)]
        if bad:
            c = bad[0]
            label = reward_fn.channel_names[c] if len(getattr(reward_fn, "channel_names", ())) > c else str(c)
            raise RewardFunctionError(
                f"reward function {name} returned a non-finite value ({values[c]}) in channel {c} ({label}) "
                f"at {_where(i, completion, prompt)}", i)
        rows.append(values)
    if not rows:
        return np.zeros((0, n_channels or 0), dtype=float)
    return np.asarray(rows, dtype=float)
