"""Input validation shared by every public entry point.

Each check raises :class:`ValueError` with a message that names the problem
(which array, which index, which channel) so bad input never turns silently
into NaN advantages.
"""
from __future__ import annotations

from typing import Union

import numpy as np

SeedLike = Union[int, np.random.Generator, None]


def as_generator(seed: SeedLike) -> np.random.Generator:
    """Return a :class:`numpy.random.Generator` for an int seed or a generator.

    ``None`` is refused: every random function in ``mrgrpo`` is reproducible.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        raise ValueError("a seed (int) or numpy.random.Generator is required; None is not reproducible")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int or numpy.random.Generator, got {type(seed).__name__}")
    return np.random.default_rng(int(seed))


def check_rewards(rewards, *, min_ndim: int = 2, exact_ndim: int | None = None,
                  name: str = "rewards", min_m: int = 2) -> np.ndarray:
    """Validate a reward array of shape ``(..., m, R)`` and return it as float64.

    Raises
    ------
    ValueError
        wrong number of dimensions, ``m < min_m``, ``R == 0``, or a NaN/inf entry
        (the message names the first offending index and its channel).
    """
    arr = np.asarray(rewards, dtype=float)
    if exact_ndim is not None and arr.ndim != exact_ndim:
        raise ValueError(f"{name} must have {exact_ndim} dimensions, got shape {arr.shape}")
    if arr.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions (..., m, R), got shape {arr.shape}")
    m, R = arr.shape[-2], arr.shape[-1]
    if R < 1:
        raise ValueError(f"{name} has no reward channels (R = 0), shape {arr.shape}")
    if m < min_m:
        raise ValueError(f"{name} needs group size m >= {min_m} (axis -2), got m = {m}, shape {arr.shape}")
    finite = np.isfinite(arr)
    if not finite.all():
        bad = tuple(int(i) for i in np.argwhere(~finite)[0])
        value = arr[bad]
        *lead, row, chan = bad
        where = f"rollout (row) {row}, channel {chan}"
        if lead:
            where = f"group {tuple(lead)}, " + where
        raise ValueError(f"{name} contains a non-finite value ({value}) at {where}; "
                         f"{int((~finite).sum())} non-finite entries in all")
    return arr


def check_weights(w, R: int, *, name: str = "w") -> np.ndarray:
    """Validate a weight vector of length ``R`` (finite; negative weights allowed)."""
    arr = np.asarray(w, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D vector of {R} weights, got shape {arr.shape}")
    if arr.shape[0] != R:
        raise ValueError(f"{name} has {arr.shape[0]} weights but the rewards have R = {R} channels")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    return arr


def check_channel_index(idx, R: int, *, name: str) -> int:
    """Validate a channel index in ``[-R, R)`` and return it as a non-negative int."""
    if isinstance(idx, (bool, np.bool_)) or not isinstance(idx, (int, np.integer)):
        raise ValueError(f"{name} must be an int channel index, got {idx!r}")
    if not -R <= int(idx) < R:
        raise ValueError(f"{name} = {idx} is out of range for R = {R} channels")
    return int(idx) % R
