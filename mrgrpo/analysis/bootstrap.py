"""Prompt-level bootstrap: resample prompts (the independent unit), vectorized.

A bootstrap replicate is a multinomial count vector over the ``P`` prompts; a
statistic that is a ratio of prompt sums (or a mean) is then one matrix
product per replicate set, with no Python loop over replicates.
"""
from __future__ import annotations

import numpy as np

from mrgrpo.core.checks import SeedLike, as_generator

__all__ = ["bootstrap_weights", "bootstrap_sums", "mean_ci", "ratio_ci", "percentile_ci"]


_BLOCK = 64  # resamples drawn at a time: small buffers stay in cache and are reused


def _count_blocks(P: int, n_boot: int, seed: SeedLike):
    """Yield ``(start, counts (n, P))`` blocks of the resample counts (the one random stream)."""
    if P < 1:
        raise ValueError(f"bootstrap needs at least one prompt, got P = {P}")
    if isinstance(n_boot, (bool, np.bool_)) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, got {n_boot!r}")
    rng = as_generator(seed)
    offsets = np.arange(_BLOCK)[:, None] * P
    for b0 in range(0, int(n_boot), _BLOCK):
        n = min(_BLOCK, int(n_boot) - b0)
        idx = rng.integers(0, P, size=(n, P))
        idx += offsets[:n]
        yield b0, np.bincount(idx.ravel(), minlength=n * P).reshape(n, P).astype(float)


def bootstrap_weights(P: int, n_boot: int, seed: SeedLike = 0) -> np.ndarray:
    """Counts of each prompt in ``n_boot`` resamples of ``P`` prompts with replacement.

    Returns
    -------
    numpy.ndarray, shape ``(n_boot, P)`` (float64; each row sums to ``P``)
    """
    W = np.empty((int(n_boot), P)) if isinstance(n_boot, (int, np.integer)) and n_boot > 0 else None
    for b0, counts in _count_blocks(P, n_boot, seed):
        W[b0:b0 + counts.shape[0]] = counts
    return W


def bootstrap_sums(cols: np.ndarray, n_boot: int, seed: SeedLike = 0) -> np.ndarray:
    """Prompt sums of ``cols`` ``(P, q)`` under each resample: ``bootstrap_weights(P, n_boot, seed) @ cols``.

    Computed block by block (same draws as :func:`bootstrap_weights`), without
    materializing the ``(n_boot, P)`` weights.
    """
    cols = np.asarray(cols, dtype=float)
    out = np.empty((int(n_boot), cols.shape[1])) if isinstance(n_boot, (int, np.integer)) and n_boot > 0 else None
    for b0, counts in _count_blocks(cols.shape[0], n_boot, seed):
        out[b0:b0 + counts.shape[0]] = counts @ cols
    return out


def percentile_ci(samples: np.ndarray, ci: float = 0.95) -> np.ndarray:
    """Percentile interval along axis 0: shape ``samples.shape[1:] + (2,)``."""
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    a = (1.0 - ci) / 2.0
    lo, hi = np.quantile(samples, [a, 1.0 - a], axis=0)
    return np.stack([lo, hi], axis=-1)


def mean_ci(x: np.ndarray, W: np.ndarray, ci: float = 0.95) -> np.ndarray:
    """Bootstrap CI of the prompt mean of ``x`` ``(P, ...)`` under weights ``W`` ``(n_boot, P)``."""
    x = np.asarray(x, dtype=float)
    flat = x.reshape(x.shape[0], -1)
    boot = (W @ flat) / W.sum(axis=1, keepdims=True)
    return percentile_ci(boot, ci).reshape(*x.shape[1:], 2)


def ratio_ci(num: np.ndarray, den: np.ndarray, W: np.ndarray, ci: float = 0.95) -> np.ndarray:
    """Bootstrap CI of ``sum_p num_p / sum_p den_p``; ``num``/``den`` shape ``(P, ...)``."""
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    n = W @ num.reshape(num.shape[0], -1)
    d = W @ den.reshape(den.shape[0], -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = n / d
    return percentile_ci(boot, ci).reshape(*num.shape[1:], 2)
