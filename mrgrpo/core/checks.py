"""Input validation shared by every public entry point.

Each check raises :class:`ValueError` with a message that names the problem
(which array, which index, which channel) so bad input never turns silently
into NaN advantages.
"""
from __future__ import annotations

import math
from typing import Sequence, Union

import numpy as np

from mrgrpo.core.conventions import CONDITIONING, MODES

SeedLike = Union[int, np.random.Generator, None]
IndexLike = Union[int, Sequence[int]]


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


def as_sequence(items, name: str) -> list:
    """``items`` as a list; ``ValueError`` for a bare ``str``/``bytes`` (never split into characters) or a non-iterable."""
    if isinstance(items, (str, bytes, bytearray)):
        raise ValueError(f"{name} must be a sequence, got a single {type(items).__name__} "
                         f"{items[:40]!r}; wrap it in a list")
    if items is None or not hasattr(items, "__iter__"):
        raise ValueError(f"{name} must be a sequence, got {type(items).__name__}")
    return list(items)


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


def weights_may_overflow(w: np.ndarray, m: int) -> bool:
    """Whether ``sum_l w_l z_l`` could overflow for standardized ``|z| <= sqrt(m)``.

    False for every ordinary weight vector; when True the caller checks its
    result for inf/NaN and raises (:func:`overflow_error`).
    """
    with np.errstate(over="ignore"):
        return not float(np.abs(w).sum()) * math.sqrt(m) < np.finfo(float).max


def overflow_error(w) -> ValueError:
    """The error of an advantage that overflowed because the weights are too large."""
    with np.errstate(over="ignore"):
        total = float(np.abs(np.asarray(w, dtype=float)).sum())
    return ValueError(f"the advantages overflow float range: the weights w (sum |w| = {total:.3g}) are too "
                      "large; rescale them")


def check_channel_index(idx, R: int, *, name: str) -> int:
    """Validate a channel index in ``[-R, R)`` and return it as a non-negative int."""
    if isinstance(idx, (bool, np.bool_)) or not isinstance(idx, (int, np.integer)):
        raise ValueError(f"{name} must be an int channel index, got {idx!r}")
    if not -R <= int(idx) < R:
        raise ValueError(f"{name} = {idx} is out of range for R = {R} channels")
    return int(idx) % R


def check_eps(eps: float, name: str = "eps") -> float:
    """``eps`` (or any other named tolerance/variance) as a float; ValueError unless finite and ``>= 0``."""
    eps_f = float(eps)
    if not np.isfinite(eps_f) or eps_f < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {eps!r}")
    return eps_f


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    return mode


def check_conditioning(impl: str, name: str = "conditioning impl") -> str:
    if not isinstance(impl, str) or impl not in CONDITIONING:
        raise ValueError(f"unknown {name} {impl!r}; expected one of {CONDITIONING}")
    return impl


def check_ddof(ddof: int, m: int, name: str = "ddof") -> int:
    if isinstance(ddof, (bool, np.bool_)) or not isinstance(ddof, (int, np.integer)) or ddof not in (0, 1):
        raise ValueError(f"{name} must be 0 or 1, got {ddof!r}")
    if m - ddof < 1:
        raise ValueError(f"{name} = {ddof} needs group size m > {ddof}, got m = {m}")
    return int(ddof)


def check_threshold(threshold, name: str = "threshold") -> float | None:
    if threshold is None:
        return None
    if isinstance(threshold, (bool, np.bool_)):
        raise ValueError(f"{name} must be a finite number or None, got {threshold!r}")
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number or None, got {threshold!r}") from None
    if not np.isfinite(t):
        raise ValueError(f"{name} must be finite, got {threshold!r}")
    return t


def as_index_list(cond_idx: IndexLike, name: str = "cond_idx") -> list:
    """``cond_idx`` (an int, a sequence, a numpy array or torch tensor of ints) as a list, unchecked."""
    if isinstance(cond_idx, (int, np.integer)) and not isinstance(cond_idx, (bool, np.bool_)):
        return [cond_idx]
    if isinstance(cond_idx, (str, bytes)) or not hasattr(cond_idx, "__iter__"):
        raise ValueError(f"{name} must be an int or a sequence of ints, got {cond_idx!r}")
    if hasattr(cond_idx, "tolist"):  # numpy array or torch tensor of indices
        as_list = cond_idx.tolist()
        return as_list if isinstance(as_list, list) else [as_list]
    return list(cond_idx)


def check_condition_indices(gate_idx, cond_idx: IndexLike, R: int, *, gate_name: str = "gate_idx",
                            cond_name: str = "cond_idx") -> tuple[int, list[int]]:
    """Validate the gate and conditioned channel indices; return them non-negative.

    ``gate_name`` and ``cond_name`` are the names the messages use (the paper API's
    ``gate_idx``/``cond_idx``, :class:`~mrgrpo.core.advantage_spec.AdvantageSpec`'s ``gate``/``conditioned``).
    """
    gate = check_channel_index(gate_idx, R, name=gate_name)
    raw = as_index_list(cond_idx, cond_name)
    if not raw:
        raise ValueError(f"{cond_name} is empty: name at least one channel to condition")
    conds = [check_channel_index(c, R, name=cond_name) for c in raw]
    if gate in conds:
        raise ValueError(f"{cond_name} {cond_idx!r} includes the gate channel {gate_name} = {gate_idx} "
                         f"(channel {gate}); a channel cannot gate itself")
    if len(set(conds)) != len(conds):
        raise ValueError(f"{cond_name} {cond_idx!r} names the same channel twice")
    return gate, conds
