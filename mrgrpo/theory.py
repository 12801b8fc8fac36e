"""The paper's closed forms.

Each function states its equation in the docstring and validates its input
(``ValueError`` naming the problem). Notation: ``R`` channels, weights
``w (R,)``, per-channel scales ``sigma (R,)``, population correlation
``C (R, R)``, group size ``m``.

- Prop 1 (influence law): :func:`influence_an`, :func:`influence_na`.
- Prop 2 (resolution): :func:`lattice_count`, :func:`sum_lattice_bound`,
  :func:`product_lattice_condition`.
- Theorem 3 (MSE law): :func:`thm3_oracle_mse`, :func:`expected_sample_correlation`,
  :func:`thm3_selfnorm_mse`.
- Supplement (figS3): :func:`gaussian_sigma_hat_mean`, :func:`gaussian_sigma_hat_bias`.
- Baseline bias (fig2a): :func:`single_reward_theta`, :func:`baseline_estimator_mean`.
- Prop 4 (bias law): :func:`prop4_beta`, :func:`prop4_gamma_star`.
"""
from __future__ import annotations

import numpy as np
from scipy.special import gammaln

__all__ = [
    "influence_an",
    "influence_na",
    "lattice_count",
    "sum_lattice_bound",
    "product_lattice_condition",
    "thm3_oracle_mse",
    "expected_sample_correlation",
    "thm3_selfnorm_mse",
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
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D vector, got shape {arr.shape}")
    if R is not None and arr.shape[0] != R:
        raise ValueError(f"{name} has length {arr.shape[0]} but C has R = {R} channels")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    return arr


def check_correlation(C, *, atol: float = 1e-10) -> np.ndarray:
    """Validate a correlation matrix: square, finite, symmetric, unit diagonal, PSD.

    Parameters
    ----------
    C : array_like, shape ``(R, R)``
    atol : float
        Tolerance for symmetry, the unit diagonal and the smallest eigenvalue.

    Returns
    -------
    numpy.ndarray, shape ``(R, R)`` (float64)
    """
    arr = np.asarray(C, dtype=float)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] == 0:
        raise ValueError(f"C must be a square (R, R) matrix, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("C contains a non-finite entry")
    asym = np.abs(arr - arr.T).max()
    if asym > atol:
        raise ValueError(f"C is not symmetric (max |C - C^T| = {asym:.3g})")
    diag = np.diag(arr)
    if np.abs(diag - 1.0).max() > atol:
        raise ValueError(f"C must have a unit diagonal (a correlation matrix), got diagonal {diag.tolist()}")
    lam = np.linalg.eigvalsh((arr + arr.T) / 2).min()
    if lam < -atol:
        raise ValueError(f"C is not positive semi-definite (smallest eigenvalue {lam:.3g})")
    return arr


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
def influence_an(w, sigma, C) -> np.ndarray:
    """Oracle AN influence :math:`\\mathrm{Cov}(A^{AN}, z_\\ell)` of every channel.

    .. math::

        \\mathrm{infl}^{AN}_\\ell = \\frac{\\sum_k w_k \\sigma_k C_{k\\ell}}{\\sqrt{w^\\top \\Sigma w}},
        \\qquad \\Sigma = \\mathrm{diag}(\\sigma)\\, C\\, \\mathrm{diag}(\\sigma).

    Parameters
    ----------
    w : array_like, shape ``(R,)``
    sigma : array_like, shape ``(R,)``, positive
    C : array_like, shape ``(R, R)``, correlation matrix

    Returns
    -------
    numpy.ndarray, shape ``(R,)``
    """
    C = check_correlation(C)
    R = C.shape[0]
    w = _vector(w, "w", R)
    sigma = _vector(sigma, "sigma", R)
    if (sigma <= 0).any():
        raise ValueError(f"sigma must be positive, got {sigma.tolist()}")
    ws = w * sigma
    var_s = float(ws @ C @ ws)
    if var_s <= 0:
        raise ValueError(f"w^T Sigma w = {var_s:.3g}: the aggregated reward has no variance, influence undefined")
    return (ws @ C) / np.sqrt(var_s)


def influence_na(w, C) -> np.ndarray:
    """Oracle NA influence: :math:`\\mathrm{infl}^{NA}_\\ell = \\sum_k w_k C_{k\\ell}` (independent of sigma).

    Parameters
    ----------
    w : array_like, shape ``(R,)``
    C : array_like, shape ``(R, R)``

    Returns
    -------
    numpy.ndarray, shape ``(R,)``
    """
    C = check_correlation(C)
    w = _vector(w, "w", C.shape[0])
    return w @ C


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
def thm3_oracle_mse(w, C, m, tau2: float = 1.0):
    """Theorem 3, oracle NA: :math:`\\mathrm{MSE} = \\frac{\\tau^2}{m}\\, w^\\top C w` (exact, ``m >= 1``).

    Parameters
    ----------
    w : array_like, shape ``(R,)``
    C : array_like, shape ``(R, R)``
    m : int or array_like
    tau2 : float
        Score variance :math:`\\tau^2`.

    Returns
    -------
    float, or numpy.ndarray shaped like ``m``
    """
    C = check_correlation(C)
    w = _vector(w, "w", C.shape[0])
    mm = _group_size(m, minimum=1)
    tau2 = _check_tau2(tau2)
    return _out(tau2 * float(w @ C @ w) / mm)


def _check_tau2(tau2) -> float:
    t = float(tau2)
    if not np.isfinite(t) or t < 0:
        raise ValueError(f"tau2 must be a finite number >= 0, got {tau2!r}")
    return t


def expected_sample_correlation(C, m) -> np.ndarray:
    """Fisher's first-order expansion of the expected sample correlation.

    .. math::

        \\mathbb E[\\hat C_{\\ell k}] \\approx C_{\\ell k} - \\frac{C_{\\ell k}(1 - C_{\\ell k}^2)}{2m}
        \\quad (\\ell \\ne k), \\qquad \\mathbb E[\\hat C_{\\ell\\ell}] = 1,

    with an :math:`O(m^{-2})` remainder.

    Parameters
    ----------
    C : array_like, shape ``(R, R)``
    m : int or array_like, ``>= 2``

    Returns
    -------
    numpy.ndarray, shape ``m.shape + (R, R)``
    """
    C = check_correlation(C)
    mm = _group_size(m)[..., None, None]
    out = C - C * (1.0 - C**2) / (2.0 * mm)
    R = C.shape[0]
    out[..., np.arange(R), np.arange(R)] = 1.0
    return out


def thm3_selfnorm_mse(w, C, m, tau2: float = 1.0):
    """Theorem 3, self-normalized NA: :math:`\\frac{\\tau^2}{m}\\, w^\\top \\mathbb E[\\hat C] w`.

    :math:`\\mathbb E[\\hat C]` from :func:`expected_sample_correlation` (the
    identity :math:`\\mathrm{MSE} = \\frac{\\tau^2}{m} w^\\top \\mathbb E[\\hat C] w` is
    exact; the expansion of :math:`\\mathbb E[\\hat C]` is first order).

    Returns
    -------
    float, or numpy.ndarray shaped like ``m``
    """
    C = check_correlation(C)
    w = _vector(w, "w", C.shape[0])
    mm = _group_size(m)
    tau2 = _check_tau2(tau2)
    EC = expected_sample_correlation(C, mm)
    quad = np.einsum("i,...ij,j->...", w, EC, w)
    return _out(tau2 * quad / mm)


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


def _log_sigma_hat_ratio(m: np.ndarray, ddof: int) -> np.ndarray:
    """:math:`\\log(\\mathbb E[\\hat\\sigma]/\\sigma)`, accurate to ~1e-15 for every ``m >= 2``.

    For small ``m`` straight from ``gammaln``; for ``m >= 41`` the difference
    of two huge ``gammaln`` values would cancel, so use the asymptotic series
    :math:`\\log\\Gamma(x + \\tfrac12) - \\log\\Gamma(x) = \\tfrac12\\log x - \\tfrac{1}{8x}
    + \\tfrac{1}{192x^3} - \\tfrac{1}{640x^5} + \\tfrac{17}{14336x^7} + O(x^{-9})`, ``x = (m-1)/2``.
    """
    m = np.asarray(m, dtype=float)
    small = m < 41
    ms = np.where(small, m, 41.0)
    direct = 0.5 * np.log(2.0 / (ms - ddof)) + gammaln(ms / 2.0) - gammaln((ms - 1.0) / 2.0)
    x = np.where(small, 20.0, (m - 1.0) / 2.0)
    series = -1.0 / (8 * x) + 1.0 / (192 * x**3) - 1.0 / (640 * x**5) + 17.0 / (14336 * x**7)
    # 0.5*log(2/(m-ddof)) + 0.5*log((m-1)/2) = 0.5*log1p((ddof-1)/(m-ddof))
    mb = np.where(small, 41.0, m)
    series = series + 0.5 * np.log1p((ddof - 1.0) / (mb - ddof))
    return np.where(small, direct, series)


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
