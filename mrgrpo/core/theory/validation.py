"""Input validation of the closed forms: vectors, stacks, correlation matrices, group sizes."""
from __future__ import annotations

import numpy as np

__all__ = ["as_vector", "batch_index", "check_correlation", "as_batch_vector", "broadcast_batches", "as_group_size",
           "as_probability", "as_output"]


def as_vector(x, name: str, R: int | None = None) -> np.ndarray:
    """A finite, non-empty 1-D vector (of length ``R`` when given)."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D vector, got shape {arr.shape}")
    return as_batch_vector(arr, name, arr.shape[0] if R is None else R)


def batch_index(bad: np.ndarray) -> str:
    """``""`` for a single item, else ``"[i, j]"``: the first batch index where ``bad`` holds."""
    if bad.ndim == 0:
        return ""
    return "[" + ", ".join(str(int(i)) for i in np.argwhere(bad)[0]) + "]"


def check_correlation(C, *, atol: float = 1e-10) -> np.ndarray:
    """Validate correlation matrices: square, finite, symmetric, unit diagonal, PSD.

    Parameters
    ----------
    C : array_like, shape ``(R, R)`` or a stack ``(..., R, R)``
    atol : float
        Tolerance for symmetry, the unit diagonal and the smallest eigenvalue.

    Returns
    -------
    numpy.ndarray, shape of ``C`` (float64)

    Raises
    ------
    ValueError
        naming the problem and, for a stack, the first offending matrix ``C[i, ...]``.
    """
    arr = np.asarray(C, dtype=float)
    if arr.ndim < 2 or arr.shape[-1] != arr.shape[-2] or arr.shape[-1] == 0:
        raise ValueError(f"C must be a square (R, R) matrix or a stack (..., R, R) of them, got shape {arr.shape}")
    finite = np.isfinite(arr).all(axis=(-2, -1))
    if not finite.all():
        raise ValueError(f"C{batch_index(~finite)} contains a non-finite entry")
    asym = np.abs(arr - np.swapaxes(arr, -1, -2)).max(axis=(-2, -1))
    if (asym > atol).any():
        bad = asym > atol
        raise ValueError(f"C{batch_index(bad)} is not symmetric (max |C - C^T| = {asym[bad].flat[0]:.3g})")
    diag = np.diagonal(arr, axis1=-2, axis2=-1)
    off = np.abs(diag - 1.0).max(axis=-1) > atol
    if off.any():
        raise ValueError(f"C{batch_index(off)} must have a unit diagonal (a correlation matrix), "
                         f"got diagonal {diag[off][0].tolist()}")
    lam = np.linalg.eigvalsh((arr + np.swapaxes(arr, -1, -2)) / 2).min(axis=-1)
    if (lam < -atol).any():
        bad = lam < -atol
        raise ValueError(f"C{batch_index(bad)} is not positive semi-definite (smallest eigenvalue {lam[bad].flat[0]:.3g})")
    return arr


def as_batch_vector(x, name: str, R: int) -> np.ndarray:
    """A length-``R`` vector or a stack ``(..., R)`` of them, finite."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise ValueError(f"{name} must be a non-empty vector (R,) or a stack (..., R), got shape {arr.shape}")
    if arr.shape[-1] != R:
        raise ValueError(f"{name} has length {arr.shape[-1]} but C has R = {R} channels")
    finite = np.isfinite(arr).all(axis=-1)
    if not finite.all():
        raise ValueError(f"{name}{batch_index(~finite)} must be finite, got {arr[~finite][0].tolist()}")
    return arr


def broadcast_batches(**batches: tuple) -> tuple:
    """The broadcast of the named batch shapes; ValueError naming them if they do not broadcast."""
    try:
        return np.broadcast_shapes(*batches.values())
    except ValueError:
        told = ", ".join(f"{k} {v}" for k, v in batches.items())
        raise ValueError(f"batch shapes do not broadcast: {told}") from None


def as_group_size(m, name: str = "m", minimum: int = 2) -> np.ndarray:
    arr = np.asarray(m, dtype=float)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, got {m!r}")
    if (arr < minimum).any():
        raise ValueError(f"{name} must be >= {minimum} for this formula, got {m!r}")
    return arr


def as_probability(p, name: str) -> np.ndarray:
    arr = np.asarray(p, dtype=float)
    if not np.isfinite(arr).all() or (arr < 0).any() or (arr > 1).any():
        raise ValueError(f"{name} must lie in [0, 1], got {p!r}")
    return arr


def as_output(x: np.ndarray):
    return float(x) if np.ndim(x) == 0 else x
