"""Proposition 2, resolution: how many distinct advantage values an estimator can take."""
from __future__ import annotations

import numpy as np

from mrgrpo.core.theory.validation import as_vector

__all__ = ["lattice_count", "sum_lattice_bound", "product_lattice_condition"]

MAX_LATTICE_POINTS = 20_000_000


def _count_distinct(x: np.ndarray, rtol: float) -> int:
    """Distinct values of ``x``: sorted neighbours closer than ``rtol * max|x|`` are merged."""
    xs = np.sort(x.ravel())
    scale = max(float(np.abs(xs).max()), np.finfo(float).tiny)
    return int(1 + np.count_nonzero(np.diff(xs) > rtol * scale))


def lattice_count(L: int, w, sigma=None, mode: str = "na", *, values=None, rtol: float = 1e-9) -> int:
    """Number of distinct advantage values realizable on a grid (Prop 2), by enumeration.

    Each of the ``R`` channels takes one of ``L`` levels (``0, ..., L-1`` or the
    given ``values``). Group normalization is affine and injective, so the
    count equals the number of distinct values of the linear functional

    .. math::

        X^{AN}(r) = \\sum_\\ell w_\\ell r_\\ell, \\qquad
        X^{NA}(r) = \\sum_\\ell \\frac{w_\\ell}{\\sigma_\\ell} r_\\ell

    over all :math:`L^R` grid points. Two values count as one when they differ
    by at most ``rtol * max|X|`` (floating-point ties such as
    :math:`1 + 2 = 3`).

    Parameters
    ----------
    L : int
        Levels per channel (``>= 1``); ignored in favour of ``len(values)``
        when ``values`` is given.
    w : array_like, shape ``(R,)``
    sigma : array_like, shape ``(R,)``, positive; required for ``mode="na"``
        (ignored by AN, whose count does not depend on the scales).
    mode : {"na", "an"}
    values : array_like, shape ``(L,)``, optional
        The grid levels shared by every channel.
    rtol : float
        Relative tie tolerance.

    Returns
    -------
    int
    """
    if mode not in ("na", "an"):
        raise ValueError(f"unknown mode {mode!r}; expected 'na' or 'an'")
    w = as_vector(w, "w")
    R = w.shape[0]
    if values is None:
        if isinstance(L, (bool, np.bool_)) or not isinstance(L, (int, np.integer)) or L < 1:
            raise ValueError(f"L must be an int >= 1, got {L!r}")
        levels = np.arange(int(L), dtype=float)
    else:
        levels = as_vector(values, "values")
    if levels.size ** R > MAX_LATTICE_POINTS:
        raise ValueError(f"L^R = {levels.size}^{R} grid points is too many to enumerate (limit {MAX_LATTICE_POINTS})")
    if mode == "na":
        if sigma is None:
            raise ValueError("mode='na' needs sigma (the per-channel scales)")
        sigma = as_vector(sigma, "sigma", R)
        if (sigma <= 0).any():
            raise ValueError(f"sigma must be positive, got {sigma.tolist()}")
        coef = w / sigma
    else:
        coef = w
    # X over the full grid: sum of broadcast outer terms, shape (L,)*R
    X = np.zeros((1,) * R)
    for ell in range(R):
        shape = [1] * R
        shape[ell] = levels.size
        X = X + (coef[ell] * levels).reshape(shape)
    return _count_distinct(X, rtol)


def sum_lattice_bound(w, L: int) -> int:
    """Prop 2 part 1: :math:`N_{AN} \\le (\\sum_\\ell w_\\ell)(L-1) + 1` for positive integer weights.

    Raises
    ------
    ValueError
        if a weight is not a positive integer, or ``L < 1``.
    """
    w = as_vector(w, "w")
    if (w <= 0).any() or not np.all(w == np.round(w)):
        raise ValueError(f"the sum-lattice bound needs positive integer weights, got {w.tolist()}")
    if isinstance(L, (bool, np.bool_)) or not isinstance(L, (int, np.integer)) or L < 1:
        raise ValueError(f"L must be an int >= 1, got {L!r}")
    return int(round(w.sum())) * (int(L) - 1) + 1


def product_lattice_condition(a, L: int, *, rtol: float = 1e-9) -> bool:
    """Prop 2 part 2: is :math:`N_{NA} = L^R`?

    True iff there is no integer vector :math:`n \\ne 0` with
    :math:`|n_\\ell| \\le L-1` and :math:`\\sum_\\ell a_\\ell n_\\ell = 0`, where
    :math:`a_\\ell = w_\\ell/\\sigma_\\ell`. Decided by enumerating all
    :math:`(2L-1)^R` vectors; a sum counts as zero when
    :math:`|\\sum_\\ell a_\\ell n_\\ell| \\le \\texttt{rtol}\\,(L-1)\\sum_\\ell |a_\\ell|`.

    Parameters
    ----------
    a : array_like, shape ``(R,)``
    L : int, ``>= 1``

    Returns
    -------
    bool
    """
    a = as_vector(a, "a")
    if isinstance(L, (bool, np.bool_)) or not isinstance(L, (int, np.integer)) or L < 1:
        raise ValueError(f"L must be an int >= 1, got {L!r}")
    R = a.shape[0]
    if L == 1:
        return True  # a single grid point is trivially injective
    n_points = (2 * L - 1) ** R
    if n_points > MAX_LATTICE_POINTS:
        raise ValueError(f"(2L-1)^R = {n_points} integer vectors is too many to enumerate "
                         f"(limit {MAX_LATTICE_POINTS})")
    n = np.arange(-(L - 1), L, dtype=float)
    S = np.zeros((1,) * R)
    for ell in range(R):
        shape = [1] * R
        shape[ell] = n.size
        S = S + (a[ell] * n).reshape(shape)
    centre = (L - 1,) * R  # the n = 0 vector
    tol = rtol * (L - 1) * float(np.abs(a).sum())
    zero = np.abs(S) <= tol
    zero[centre] = False
    return not bool(zero.any())
