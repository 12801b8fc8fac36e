"""Helpers shared by the Tier-1 experiment modules."""
from __future__ import annotations

import numpy as np

W2 = np.array([1.0, 1.0])


def corr2(rho: float) -> np.ndarray:
    """The 2 x 2 correlation matrix with off-diagonal ``rho``."""
    return np.array([[1.0, rho], [rho, 1.0]])


def wCw2(w, rho) -> float:
    """``w^T C w`` for the 2 x 2 correlation matrix with off-diagonal ``rho``."""
    return float(np.asarray(w) @ corr2(rho) @ np.asarray(w))
