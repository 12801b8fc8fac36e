"""The paper's closed forms.

Each function states its equation in the docstring and validates its input
(``ValueError`` naming the problem). Notation: ``R`` channels, weights
``w (R,)``, per-channel scales ``sigma (R,)``, population correlation
``C (R, R)``, group size ``m``.

Batches: the Prop-1 and Theorem-3 closed forms also take stacks
``w (..., R)``, ``sigma (..., R)``, ``C (..., R, R)`` (and an array ``m``);
the leading dimensions broadcast against each other by numpy's rules, and a
bad matrix is named by its batch index. Their unvalidated kernels
(``_influence_an``, ``_influence_na``, ``_expected_sample_correlation``) serve
callers that build valid inputs themselves (:mod:`mrgrpo.analysis`).

- Prop 1 (influence law): :func:`influence_an`, :func:`influence_na`.
- Prop 2 (resolution): :func:`lattice_count`, :func:`sum_lattice_bound`,
  :func:`product_lattice_condition`.
- Theorem 3 (MSE law): :func:`thm3_oracle_mse`, :func:`expected_sample_correlation`,
  :func:`thm3_selfnorm_mse`; the exact Gaussian :func:`gaussian_expected_correlation`.
- Supplement (figS3): :func:`gaussian_sigma_hat_mean`, :func:`gaussian_sigma_hat_bias`.
- Baseline bias (fig2a): :func:`single_reward_theta`, :func:`baseline_estimator_mean`.
- Prop 4 (bias law): :func:`prop4_beta`, :func:`prop4_gamma_star`.
"""
from __future__ import annotations

import numpy as np
from scipy.special import gammaln, hyp2f1

from mrgrpo.stats import _check_eps

__all__ = [
    "influence_an",
    "influence_na",
    "lattice_count",
    "sum_lattice_bound",
    "product_lattice_condition",
    "thm3_oracle_mse",
    "expected_sample_correlation",
    "thm3_selfnorm_mse",
    "gaussian_expected_correlation",
    "gaussian_sigma_hat_mean",
    "gaussian_sigma_hat_bias",
    "single_reward_theta",
    "baseline_estimator_mean",
    "prop4_beta",
    "prop4_gamma_star",
    "check_correlation",
]

_MAX_LATTICE_POINTS = 20_000_000


# ----------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------
def _vector(x, name: str, R: int | None = None) -> np.ndarray:
    """A finite, non-empty 1-D vector (of length ``R`` when given)."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D vector, got shape {arr.shape}")
    return _batch_vector(arr, name, arr.shape[0] if R is None else R)


def _at(bad: np.ndarray) -> str:
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
        raise ValueError(f"C{_at(~finite)} contains a non-finite entry")
    asym = np.abs(arr - np.swapaxes(arr, -1, -2)).max(axis=(-2, -1))
    if (asym > atol).any():
        bad = asym > atol
        raise ValueError(f"C{_at(bad)} is not symmetric (max |C - C^T| = {asym[bad].flat[0]:.3g})")
    diag = np.diagonal(arr, axis1=-2, axis2=-1)
    off = np.abs(diag - 1.0).max(axis=-1) > atol
    if off.any():
        raise ValueError(f"C{_at(off)} must have a unit diagonal (a correlation matrix), "
                         f"got diagonal {diag[off][0].tolist()}")
    lam = np.linalg.eigvalsh((arr + np.swapaxes(arr, -1, -2)) / 2).min(axis=-1)
    if (lam < -atol).any():
        bad = lam < -atol
        raise ValueError(f"C{_at(bad)} is not positive semi-definite (smallest eigenvalue {lam[bad].flat[0]:.3g})")
    return arr


def _batch_vector(x, name: str, R: int) -> np.ndarray:
    """A length-``R`` vector or a stack ``(..., R)`` of them, finite."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise ValueError(f"{name} must be a non-empty vector (R,) or a stack (..., R), got shape {arr.shape}")
    if arr.shape[-1] != R:
        raise ValueError(f"{name} has length {arr.shape[-1]} but C has R = {R} channels")
    finite = np.isfinite(arr).all(axis=-1)
    if not finite.all():
        raise ValueError(f"{name}{_at(~finite)} must be finite, got {arr[~finite][0].tolist()}")
    return arr


def _broadcast(**batches: tuple) -> tuple:
    """The broadcast of the named batch shapes; ValueError naming them if they do not broadcast."""
    try:
        return np.broadcast_shapes(*batches.values())
    except ValueError:
        told = ", ".join(f"{k} {v}" for k, v in batches.items())
        raise ValueError(f"batch shapes do not broadcast: {told}") from None


def _group_size(m, name: str = "m", minimum: int = 2) -> np.ndarray:
    arr = np.asarray(m, dtype=float)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, got {m!r}")
    if (arr < minimum).any():
        raise ValueError(f"{name} must be >= {minimum} for this formula, got {m!r}")
    return arr


def _probability(p, name: str) -> np.ndarray:
    arr = np.asarray(p, dtype=float)
    if not np.isfinite(arr).all() or (arr < 0).any() or (arr > 1).any():
        raise ValueError(f"{name} must lie in [0, 1], got {p!r}")
    return arr


def _out(x: np.ndarray):
    return float(x) if np.ndim(x) == 0 else x


# ----------------------------------------------------------------------------
# Prop 1: influence law
# ----------------------------------------------------------------------------
def _influence_an(w: np.ndarray, sigma: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Kernel of :func:`influence_an` (no checks); NaN where :math:`w^\\top\\Sigma w \\le 0`."""
    ws = w * sigma
    num = np.einsum("...k,...kl->...l", ws, C)
    var_s = np.einsum("...l,...l->...", num, ws)
    ok = var_s > 0
    return np.where(ok[..., None], num / np.sqrt(np.where(ok, var_s, 1.0))[..., None], np.nan)


def _influence_na(w: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Kernel of :func:`influence_na` (no checks)."""
    return np.einsum("...k,...kl->...l", w, C)


def influence_an(w, sigma, C) -> np.ndarray:
    """Oracle AN influence :math:`\\mathrm{Cov}(A^{AN}, z_\\ell)` of every channel.

    .. math::

        \\mathrm{infl}^{AN}_\\ell = \\frac{\\sum_k w_k \\sigma_k C_{k\\ell}}{\\sqrt{w^\\top \\Sigma w}},
        \\qquad \\Sigma = \\mathrm{diag}(\\sigma)\\, C\\, \\mathrm{diag}(\\sigma).

    Parameters
    ----------
    w : array_like, shape ``(R,)`` or ``(..., R)``
    sigma : array_like, shape ``(R,)`` or ``(..., R)``, positive
    C : array_like, shape ``(R, R)`` or ``(..., R, R)``, correlation matrices

    Returns
    -------
    numpy.ndarray, shape ``batch + (R,)``, ``batch`` the broadcast of the
    leading dimensions of ``w``, ``sigma`` and ``C``.

    Raises
    ------
    ValueError
        bad ``C`` or shapes, ``sigma <= 0``, or :math:`w^\\top \\Sigma w = 0`
        (the aggregated reward has no variance; the first such batch index named).
    """
    C = check_correlation(C)
    R = C.shape[-1]
    w = _batch_vector(w, "w", R)
    sigma = _batch_vector(sigma, "sigma", R)
    nonpos = (sigma <= 0).any(axis=-1)
    if nonpos.any():
        raise ValueError(f"sigma{_at(nonpos)} must be positive, got {sigma[nonpos][0].tolist()}")
    _broadcast(w=w.shape[:-1], sigma=sigma.shape[:-1], C=C.shape[:-2])
    out = _influence_an(w, sigma, C)
    undefined = np.isnan(out[..., 0])
    if undefined.any():
        ws = w * sigma
        var_s = np.einsum("...k,...kl,...l->...", ws, C, ws)
        raise ValueError(f"w^T Sigma w = {np.broadcast_to(var_s, undefined.shape)[undefined][0]:.3g}"
                         f"{' at ' + _at(undefined) if undefined.ndim else ''}: "
                         "the aggregated reward has no variance, influence undefined")
    return out


def influence_na(w, C) -> np.ndarray:
    """Oracle NA influence: :math:`\\mathrm{infl}^{NA}_\\ell = \\sum_k w_k C_{k\\ell}` (independent of sigma).

    Parameters
    ----------
    w : array_like, shape ``(R,)`` or ``(..., R)``
    C : array_like, shape ``(R, R)`` or ``(..., R, R)``

    Returns
    -------
    numpy.ndarray, shape ``batch + (R,)`` (``batch`` as in :func:`influence_an`)
    """
    C = check_correlation(C)
    w = _batch_vector(w, "w", C.shape[-1])
    _broadcast(w=w.shape[:-1], C=C.shape[:-2])
    return _influence_na(w, C)


# ----------------------------------------------------------------------------
# Prop 2: resolution
# ----------------------------------------------------------------------------
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
    w = _vector(w, "w")
    R = w.shape[0]
    if values is None:
        if isinstance(L, (bool, np.bool_)) or not isinstance(L, (int, np.integer)) or L < 1:
            raise ValueError(f"L must be an int >= 1, got {L!r}")
        levels = np.arange(int(L), dtype=float)
    else:
        levels = _vector(values, "values")
    if levels.size ** R > _MAX_LATTICE_POINTS:
        raise ValueError(f"L^R = {levels.size}^{R} grid points is too many to enumerate (limit {_MAX_LATTICE_POINTS})")
    if mode == "na":
        if sigma is None:
            raise ValueError("mode='na' needs sigma (the per-channel scales)")
        sigma = _vector(sigma, "sigma", R)
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
    w = _vector(w, "w")
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
    a = _vector(a, "a")
    if isinstance(L, (bool, np.bool_)) or not isinstance(L, (int, np.integer)) or L < 1:
        raise ValueError(f"L must be an int >= 1, got {L!r}")
    R = a.shape[0]
    if L == 1:
        return True  # a single grid point is trivially injective
    n_points = (2 * L - 1) ** R
    if n_points > _MAX_LATTICE_POINTS:
        raise ValueError(f"(2L-1)^R = {n_points} integer vectors is too many to enumerate "
                         f"(limit {_MAX_LATTICE_POINTS})")
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


# ----------------------------------------------------------------------------
# Theorem 3: MSE law
# ----------------------------------------------------------------------------
def _quadratic(w: np.ndarray, M: np.ndarray) -> np.ndarray:
    """:math:`w^\\top M w` over broadcast batches: ``(..., R)``, ``(..., R, R)`` -> ``(...)``."""
    return np.einsum("...i,...ij,...j->...", w, M, w)


def thm3_oracle_mse(w, C, m, tau2: float = 1.0):
    """Theorem 3, oracle NA: :math:`\\mathrm{MSE} = \\frac{\\tau^2}{m}\\, w^\\top C w` (exact, ``m >= 1``).

    Parameters
    ----------
    w : array_like, shape ``(R,)`` or ``(..., R)``
    C : array_like, shape ``(R, R)`` or ``(..., R, R)``
    m : int or array_like
    tau2 : float
        Score variance :math:`\\tau^2`.

    Returns
    -------
    float, or numpy.ndarray of the broadcast of ``w``'s and ``C``'s leading
    dimensions with ``m``'s shape (one ``C`` and an array ``m``: shaped like ``m``)
    """
    C = check_correlation(C)
    w = _batch_vector(w, "w", C.shape[-1])
    mm = _group_size(m, minimum=1)
    tau2 = _check_eps(tau2, "tau2")
    _broadcast(w=w.shape[:-1], C=C.shape[:-2], m=mm.shape)
    return _out(tau2 * _quadratic(w, C) / mm)


def _expected_sample_correlation(C: np.ndarray, m) -> np.ndarray:
    """Kernel of :func:`expected_sample_correlation` (no checks)."""
    mm = np.asarray(m, dtype=float)[..., None, None]
    out = C - C * (1.0 - C**2) / (2.0 * mm)
    R = C.shape[-1]
    out[..., np.arange(R), np.arange(R)] = 1.0
    return out


def expected_sample_correlation(C, m) -> np.ndarray:
    """Fisher's first-order expansion of the expected sample correlation.

    .. math::

        \\mathbb E[\\hat C_{\\ell k}] \\approx C_{\\ell k} - \\frac{C_{\\ell k}(1 - C_{\\ell k}^2)}{2m}
        \\quad (\\ell \\ne k), \\qquad \\mathbb E[\\hat C_{\\ell\\ell}] = 1,

    with an :math:`O(m^{-2})` remainder (the exact Gaussian value is
    :func:`gaussian_expected_correlation`).

    Parameters
    ----------
    C : array_like, shape ``(R, R)`` or ``(..., R, R)``
    m : int or array_like, ``>= 2``

    Returns
    -------
    numpy.ndarray, shape ``batch + (R, R)``, ``batch`` the broadcast of ``C``'s
    leading dimensions with ``m``'s shape (one ``C``: ``m.shape + (R, R)``)
    """
    C = check_correlation(C)
    mm = _group_size(m)
    _broadcast(C=C.shape[:-2], m=mm.shape)
    return _expected_sample_correlation(C, mm)


def thm3_selfnorm_mse(w, C, m, tau2: float = 1.0):
    """Theorem 3, self-normalized NA: :math:`\\frac{\\tau^2}{m}\\, w^\\top \\mathbb E[\\hat C] w`.

    :math:`\\mathbb E[\\hat C]` from :func:`expected_sample_correlation` (the
    identity :math:`\\mathrm{MSE} = \\frac{\\tau^2}{m} w^\\top \\mathbb E[\\hat C] w` is
    exact; the expansion of :math:`\\mathbb E[\\hat C]` is first order).

    Parameters
    ----------
    w, C, m, tau2
        As in :func:`thm3_oracle_mse` (``m >= 2``).

    Returns
    -------
    float, or numpy.ndarray shaped as in :func:`thm3_oracle_mse`
    """
    C = check_correlation(C)
    w = _batch_vector(w, "w", C.shape[-1])
    mm = _group_size(m)
    tau2 = _check_eps(tau2, "tau2")
    _broadcast(w=w.shape[:-1], C=C.shape[:-2], m=mm.shape)
    return _out(tau2 * _quadratic(w, _expected_sample_correlation(C, mm)) / mm)


def gaussian_expected_correlation(rho, m):
    """Exact :math:`\\mathbb E[\\hat\\rho]` of the sample correlation of ``m`` bivariate-normal pairs.

    Hotelling's (1953) closed form,

    .. math::

        \\mathbb E[\\hat\\rho] = \\rho\\, \\frac{\\Gamma(m/2)^2}{\\Gamma(\\frac{m-1}{2})\\,\\Gamma(\\frac{m+1}{2})}\\,
        {}_2F_1\\big(\\tfrac12, \\tfrac12; \\tfrac{m+1}{2}; \\rho^2\\big)
        = \\rho - \\frac{\\rho(1-\\rho^2)}{2m} + O(m^{-2}),

    whose expansion is Fisher's (:func:`expected_sample_correlation`). The
    Gamma ratio is evaluated without cancellation for large ``m``; at ``m = 2``
    it gives :math:`\\frac{2}{\\pi}\\arcsin\\rho` (the sample correlation is :math:`\\pm 1`).

    Parameters
    ----------
    rho : float or array_like, in ``[-1, 1]``
        Population correlation.
    m : int or array_like, ``>= 2``
        Number of pairs; broadcast against ``rho``.

    Returns
    -------
    float, or numpy.ndarray (broadcast of ``rho`` and ``m``)
    """
    r = np.asarray(rho, dtype=float)
    if not np.isfinite(r).all() or (np.abs(r) > 1).any():
        raise ValueError(f"rho must lie in [-1, 1], got {rho!r}")
    mm = _group_size(m)
    # log of the Gamma ratio = L((m-1)/2) - L(m/2), L(x) = log Gamma(x + 1/2) - log Gamma(x)
    log_k = 0.5 * np.log1p(-1.0 / mm) + _log_gamma_half_ratio_rem((mm - 1.0) / 2.0) \
        - _log_gamma_half_ratio_rem(mm / 2.0)
    return _out(r * np.exp(log_k) * hyp2f1(0.5, 0.5, (mm + 1.0) / 2.0, r * r))


# ----------------------------------------------------------------------------
# figS3: Gaussian sigma-hat bias
# ----------------------------------------------------------------------------
def gaussian_sigma_hat_mean(m, sigma: float = 1.0, *, ddof: int = 0):
    """Exact :math:`\\mathbb E[\\hat\\sigma]` for ``m`` i.i.d. Gaussian draws.

    With :math:`\\hat\\sigma^2 = \\frac{1}{m - \\mathrm{ddof}}\\sum_j (x_j - \\bar x)^2`,

    .. math::

        \\mathbb E[\\hat\\sigma] = \\sigma \\sqrt{\\frac{2}{m - \\mathrm{ddof}}}\\,
        \\frac{\\Gamma(m/2)}{\\Gamma((m-1)/2)}
        = \\sigma\\Big(1 - \\frac{3}{4m} + O(m^{-2})\\Big) \\quad (\\mathrm{ddof}=0),

    (for ``ddof=1`` this is the classical :math:`c_4(m)\\sigma = \\sigma(1 - \\frac{1}{4m} + \\dots)`).
    Evaluated through ``gammaln`` so large ``m`` does not overflow.

    Parameters
    ----------
    m : int or array_like, ``>= 2``
    sigma : float, ``> 0``
    ddof : {0, 1}

    Returns
    -------
    float, or numpy.ndarray shaped like ``m``
    """
    mm = _group_size(m)
    s = float(sigma)
    if not np.isfinite(s) or s <= 0:
        raise ValueError(f"sigma must be a positive finite number, got {sigma!r}")
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 or 1, got {ddof!r}")
    return _out(s * np.exp(_log_sigma_hat_ratio(mm, ddof)))


def _log_gamma_half_ratio_rem(x: np.ndarray) -> np.ndarray:
    """:math:`\\log\\Gamma(x + \\tfrac12) - \\log\\Gamma(x) - \\tfrac12\\log x`, accurate to ~1e-15 for ``x >= 1/2``.

    For ``x < 20`` straight from ``gammaln``; above, the difference of two huge
    ``gammaln`` values would cancel, so use the asymptotic series
    :math:`-\\tfrac{1}{8x} + \\tfrac{1}{192x^3} - \\tfrac{1}{640x^5} + \\tfrac{17}{14336x^7} + O(x^{-9})`.
    """
    x = np.asarray(x, dtype=float)
    small = x < 20
    xs = np.where(small, x, 20.0)
    direct = gammaln(xs + 0.5) - gammaln(xs) - 0.5 * np.log(xs)
    xb = np.where(small, 20.0, x)
    series = -1.0 / (8 * xb) + 1.0 / (192 * xb**3) - 1.0 / (640 * xb**5) + 17.0 / (14336 * xb**7)
    return np.where(small, direct, series)


def _log_sigma_hat_ratio(m: np.ndarray, ddof: int) -> np.ndarray:
    """:math:`\\log(\\mathbb E[\\hat\\sigma]/\\sigma)` for ``m >= 2``.

    :math:`\\tfrac12\\log\\frac{2}{m-\\mathrm{ddof}} + \\log\\Gamma(x+\\tfrac12) - \\log\\Gamma(x)`,
    ``x = (m-1)/2``; the two logs combine into
    :math:`\\tfrac12\\log(1 + \\frac{\\mathrm{ddof}-1}{m-\\mathrm{ddof}})`.
    """
    m = np.asarray(m, dtype=float)
    return 0.5 * np.log1p((ddof - 1.0) / (m - ddof)) + _log_gamma_half_ratio_rem((m - 1.0) / 2.0)


def gaussian_sigma_hat_bias(m, sigma: float = 1.0, *, ddof: int = 0):
    """:math:`\\mathbb E[\\hat\\sigma] - \\sigma` (see :func:`gaussian_sigma_hat_mean`).

    ``m * bias -> -3 sigma / 4`` for ``ddof = 0`` (``-sigma / 4`` for ``ddof = 1``);
    computed with ``expm1`` so it stays accurate for very large ``m``.
    """
    mm = _group_size(m)
    gaussian_sigma_hat_mean(mm, sigma, ddof=ddof)  # validates sigma and ddof
    return _out(float(sigma) * np.expm1(_log_sigma_hat_ratio(mm, ddof)))


# ----------------------------------------------------------------------------
# fig2a: single-reward baseline bias
# ----------------------------------------------------------------------------
def single_reward_theta(p, a: float = 1.0):
    """Estimand of the fig2a model :math:`r \\sim \\mathrm{Bern}(p)`, :math:`g = a r + \\tau\\varepsilon`:
    :math:`\\theta = \\mathrm{Cov}(r, g) = a\\,p(1-p)`."""
    pp = _probability(p, "p")
    return _out(float(a) * pp * (1.0 - pp))


def baseline_estimator_mean(theta, m, baseline: str = "self"):
    """Mean of the single-reward gradient estimator :math:`\\frac1m\\sum_j (r_j - b_j) g_j`.

    For i.i.d. pairs :math:`(r_j, g_j)` with :math:`\\theta = \\mathrm{Cov}(r, g)`:

    - ``"self"`` (GRPO, :math:`b_j = \\bar r` includes rollout ``j``):
      :math:`\\mathbb E = \\frac{m-1}{m}\\,\\theta` (the U-statistic gap);
    - ``"loo"`` (leave-one-out :math:`b_j = \\frac{1}{m-1}\\sum_{k\\ne j} r_k`): :math:`\\theta`, unbiased;
    - ``"oracle"`` (:math:`b_j = \\mathbb E[r]`): :math:`\\theta`.

    Parameters
    ----------
    theta : float or array_like
    m : int or array_like, ``>= 2``
    baseline : {"self", "loo", "oracle"}

    Returns
    -------
    float, or numpy.ndarray (broadcast of ``theta`` and ``m``)
    """
    if baseline not in ("self", "loo", "oracle"):
        raise ValueError(f"unknown baseline {baseline!r}; expected 'self', 'loo' or 'oracle'")
    th = np.asarray(theta, dtype=float)
    if not np.isfinite(th).all():
        raise ValueError(f"theta must be finite, got {theta!r}")
    mm = _group_size(m)
    if baseline == "self":
        return _out((mm - 1.0) / mm * th)
    return _out(np.broadcast_to(th, np.broadcast_shapes(th.shape, mm.shape)).copy())


# ----------------------------------------------------------------------------
# Prop 4: conditioning bias law
# ----------------------------------------------------------------------------
def prop4_beta(p_a, p_b, gamma, alpha_c=1.0, w_b=1.0):
    """Cross-objective bias removed by conditioning (Prop 4), vectorized.

    Under :math:`r_a \\sim \\mathrm{Bern}(p_a) \\perp r_b \\sim \\mathrm{Bern}(p_b)` and
    :math:`g = \\alpha_c (r_a - p_a) + \\alpha_f (r_b - p_b) r_a + \\gamma (r_b - p_b)(1 - r_a) + \\varepsilon`,

    .. math::

        \\beta_{ab} = w_b\\big[\\mathrm{Cov}(r_b, g) - \\mathrm{Cov}(r_b r_a, g)\\big]
                   = w_b\\, p_b (1 - p_a)\\big[\\gamma (1 - p_b) - \\alpha_c p_a\\big]

    (independent of :math:`\\alpha_f`).

    Returns
    -------
    float, or numpy.ndarray (broadcast of the inputs)
    """
    pa = _probability(p_a, "p_a")
    pb = _probability(p_b, "p_b")
    g, ac, wb = (np.asarray(x, dtype=float) for x in (gamma, alpha_c, w_b))
    for name, x in (("gamma", g), ("alpha_c", ac), ("w_b", wb)):
        if not np.isfinite(x).all():
            raise ValueError(f"{name} must be finite")
    return _out(wb * pb * (1.0 - pa) * (g * (1.0 - pb) - ac * pa))


def prop4_gamma_star(p_a, p_b, alpha_c=1.0):
    """Indifference contamination :math:`\\gamma^\\star = \\alpha_c\\, p_a / (1 - p_b)` where
    :math:`\\beta_{ab}` changes sign (1.25 at :math:`p_a = 0.5, p_b = 0.6`).

    Raises
    ------
    ValueError
        if ``p_b == 1`` (no contamination term, :math:`\\gamma^\\star` undefined).
    """
    pa = _probability(p_a, "p_a")
    pb = _probability(p_b, "p_b")
    ac = np.asarray(alpha_c, dtype=float)
    if not np.isfinite(ac).all():
        raise ValueError("alpha_c must be finite")
    if (pb == 1.0).any():
        raise ValueError("p_b = 1: the conditioned channel never fails, gamma* is undefined")
    return _out(ac * pa / (1.0 - pb))
