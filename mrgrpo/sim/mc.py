"""Small Monte-Carlo helpers shared by the Tier-1 experiments."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

# Draw trials in blocks of at most this many float64 elements per array, so a
# paper-size run stays within a few hundred MB; a loop over blocks, not trials.
MAX_BLOCK_ELEMS = 1 << 22


def blocks(n: int, elems_per_trial: int, max_elems: int = MAX_BLOCK_ELEMS) -> Iterator[int]:
    """Yield block sizes that add up to ``n`` trials."""
    size = max(1, max_elems // max(1, elems_per_trial))
    done = 0
    while done < n:
        k = min(size, n - done)
        done += k
        yield k


def blockwise(n: int, elems_per_trial: int, fn: Callable[[int], tuple[np.ndarray, ...]],
              max_elems: int = MAX_BLOCK_ELEMS) -> tuple[np.ndarray, ...]:
    """Run ``fn(k)`` on blocks of ``k`` trials and concatenate its per-trial outputs along axis 0."""
    parts = [fn(k) for k in blocks(n, elems_per_trial, max_elems)]
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(len(parts[0])))


def mean_se(x: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sample mean and its standard error (``ddof = 1``) along ``axis``."""
    x = np.asarray(x, dtype=float)
    n = x.shape[axis]
    return x.mean(axis=axis), x.std(axis=axis, ddof=1) / np.sqrt(n)


def row(experiment: str, quantity: str, theory: float, sim: float, se: float, n_trials: int,
        **setting) -> dict:
    """One tidy row: the setting, the theory value, the simulation mean and its SE."""
    theory, sim, se = float(theory), float(sim), float(se)
    z = (sim - theory) / se if se > 0 and np.isfinite(theory) else np.nan
    return {"experiment": experiment, **setting, "quantity": quantity, "theory": theory,
            "sim": sim, "se": se, "z": z, "n_trials": int(n_trials)}


def frame(rows: list[dict], **attrs) -> pd.DataFrame:
    """A DataFrame of tidy rows with summary scalars in ``.attrs``."""
    df = pd.DataFrame(rows)
    df.attrs.update(attrs)
    return df


def scaled(n: int, scale: float, minimum: int = 200) -> int:
    """A trial count scaled by ``scale`` (never below ``minimum``)."""
    return max(minimum, int(round(n * scale)))
