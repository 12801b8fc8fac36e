"""The Gaussian copula: latent normal correlations that give a target reward correlation.

Channel ``l`` of a reward vector is a *marginal* of a latent standard normal
vector ``Z ~ N(0, L)``:

- Gaussian (``p_l`` is ``None`` or NaN): ``X_l = Z_l`` (any positive scale and
  shift leave correlations unchanged);
- Bernoulli (``p_l`` in (0, 1)): ``X_l = 1[Z_l > t_l]`` with the threshold
  ``t_l = Phi^{-1}(1 - p_l)`` (:func:`bernoulli_thresholds`).

For one pair of channels with latent correlation ``r`` the Pearson correlation
of the rewards (:func:`copula_pair_correlation`) is

- Gaussian-Gaussian: ``r``;
- Bernoulli-Gaussian (point-biserial): ``r phi(t_l) / sqrt(p_l (1 - p_l))``, so
  ``|corr| <= phi(t_l) / sqrt(p_l (1 - p_l))`` (:func:`point_biserial_cap`);
- Bernoulli-Bernoulli: ``(Phi_2(a_l, a_k; r) - p_l p_k) / sqrt(p_l q_l p_k q_k)``
  with ``a = Phi^{-1}(p)``, computed through Plackett's identity
  ``Phi_2(a, b; r) = Phi(a) Phi(b) + int_0^r phi_2(a, b; s) ds`` (increasing in
  ``r``); at ``r = +-1`` it reaches the Frechet bounds
  (:func:`bernoulli_correlation_bounds`).

:func:`copula_latent_correlation` inverts this pair by pair (exactly for the
linear cases, by Brent's method for a Bernoulli pair) and checks that the latent
matrix is positive semi-definite. An infeasible target raises
:class:`ValueError` naming the pair, the marginals and the attainable range.
Both users, :func:`mrgrpo.sim.generators.mixed_rewards` and
:class:`mrgrpo.corpus.mock.MockBackend`, call this module and nothing else.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import numpy as np
from scipy import integrate, optimize, stats

__all__ = [
    "PSD_TOL", "FEASIBILITY_TOL",
    "check_correlation_matrix", "check_marginals", "bernoulli_thresholds",
    "bernoulli_correlation_bounds", "point_biserial_cap", "copula_correlation_bounds",
    "bernoulli_pair_correlation", "copula_pair_correlation", "solve_latent_pair",
    "copula_latent_correlation", "describe_marginal",
]

#: Smallest eigenvalue (negated) a correlation matrix may have and still count as PSD.
PSD_TOL = 1e-10
#: How far a target may lie outside its attainable range (float noise) before it is refused.
FEASIBILITY_TOL = 1e-12
# the bracket of the Bernoulli-pair solve; r = +-1 themselves are handled as the bounds
_R_EDGE = 1.0 - 1e-15

Marginal = Optional[float]


# --------------------------------------------------------------------------- checks
def check_correlation_matrix(C, name: str = "C") -> np.ndarray:
    """Validate a correlation matrix: square, finite, symmetric, unit diagonal, entries in [-1, 1].

    Parameters
    ----------
    C : array_like, shape ``(R, R)``
    name : str
        The argument's name, used in the error messages.

    Returns
    -------
    numpy.ndarray, shape ``(R, R)``, float64
    """
    C = np.atleast_2d(np.asarray(C, dtype=float))
    if C.ndim != 2 or C.shape[0] != C.shape[1] or C.shape[0] < 1:
        raise ValueError(f"{name} must be a square (R, R) matrix with R >= 1, got shape {C.shape}")
    if not np.isfinite(C).all():
        raise ValueError(f"{name} must be finite")
    if not np.allclose(C, C.T, atol=1e-12):
        raise ValueError(f"{name} must be symmetric")
    if not np.allclose(np.diag(C), 1.0, atol=1e-12):
        raise ValueError(f"{name} must have a unit diagonal (a correlation matrix), got diag {np.diag(C)}")
    off = C[~np.eye(len(C), dtype=bool)]
    if off.size and np.abs(off).max() > 1 + 1e-12:
        raise ValueError(f"{name} has an off-diagonal entry outside [-1, 1]")
    return C


def check_marginals(p, R: Optional[int] = None, name: str = "p") -> np.ndarray:
    """Marginals as a float vector: ``p_l`` in (0, 1) for Bernoulli, NaN for Gaussian.

    Parameters
    ----------
    p : sequence of (float or None), length ``R``
        ``None`` or NaN marks a Gaussian channel.
    R : int, optional
        Required length.

    Returns
    -------
    numpy.ndarray, shape ``(R,)``
    """
    if isinstance(p, (str, bytes)):
        raise ValueError(f"{name} must be a sequence of probabilities (None for Gaussian), got {p!r}")
    try:
        arr = np.array([np.nan if v is None else v for v in np.atleast_1d(np.asarray(p, dtype=object))],
                       dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of probabilities (None for Gaussian), got {p!r}") from None
    if arr.ndim != 1 or (R is not None and arr.shape != (R,)):
        need = "" if R is None else f" (R = {R})"
        raise ValueError(f"{name} must be a 1-D sequence with one entry per channel{need}, got shape {arr.shape}")
    binary = ~np.isnan(arr)
    bad = binary & ~((arr > 0) & (arr < 1))
    if bad.any():
        raise ValueError(f"Bernoulli probabilities must lie strictly in (0, 1) (a constant channel has "
                         f"no correlation); channel {int(np.argmax(bad))} has {name} = {arr[bad][0]}")
    return arr


def _is_real(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _is_gaussian(p: Marginal) -> bool:
    """``None`` or NaN marks a Gaussian marginal."""
    return p is None or (_is_real(p) and bool(np.isnan(p)))


def _check_probability(p: float, name: str) -> float:
    if not _is_real(p) or not 0.0 < float(p) < 1.0:
        raise ValueError(f"{name} must be a probability strictly in (0, 1), got {p!r}")
    return float(p)


def describe_marginal(p: Marginal) -> str:
    """``"gaussian"`` or ``"bernoulli p=0.3"``: how error messages name a marginal."""
    return "gaussian" if _is_gaussian(p) else f"bernoulli p={float(p):.6g}"


# --------------------------------------------------------------------------- forward map
def bernoulli_thresholds(p) -> np.ndarray:
    """Latent thresholds ``t_l = Phi^{-1}(1 - p_l)``: ``P(Z_l > t_l) = p_l``.

    Parameters
    ----------
    p : sequence, length ``R``
        Bernoulli probabilities; ``None``/NaN (Gaussian channels) get threshold 0 (unused).

    Returns
    -------
    numpy.ndarray, shape ``(R,)``
    """
    pv = check_marginals(p)
    binary = ~np.isnan(pv)
    return np.where(binary, stats.norm.isf(np.where(binary, pv, 0.5)), 0.0)


def bernoulli_correlation_bounds(p_l: float, p_k: float) -> tuple[float, float]:
    """Frechet bounds ``(lo, hi)`` on the Pearson correlation of Bernoulli(p_l) and Bernoulli(p_k)."""
    p_l, p_k = _check_probability(p_l, "p_l"), _check_probability(p_k, "p_k")
    s = np.sqrt(p_l * (1 - p_l) * p_k * (1 - p_k))
    lo = (max(0.0, p_l + p_k - 1.0) - p_l * p_k) / s
    hi = (min(p_l, p_k) - p_l * p_k) / s
    return float(max(lo, -1.0)), float(min(hi, 1.0))  # +-1 exactly when p_l = p_k or p_l = 1 - p_k


def point_biserial_cap(p: float) -> float:
    """Largest ``|corr|`` of a Bernoulli(p) copula channel with a Gaussian one: ``phi(Phi^{-1}(p)) / sqrt(p(1-p))``."""
    p = _check_probability(p, "p")
    return float(stats.norm.pdf(stats.norm.ppf(p)) / np.sqrt(p * (1 - p)))


def copula_correlation_bounds(p_l: Marginal, p_k: Marginal) -> tuple[float, float]:
    """Attainable reward correlation ``(lo, hi)`` of a copula pair (latent ``r`` from -1 to 1).

    Parameters
    ----------
    p_l, p_k : float or None
        Bernoulli probability, or ``None``/NaN for a Gaussian channel.
    """
    gl, gk = _is_gaussian(p_l), _is_gaussian(p_k)
    if gl and gk:
        return -1.0, 1.0
    if gl or gk:
        cap = point_biserial_cap(p_k if gl else p_l)
        return -cap, cap
    return bernoulli_correlation_bounds(p_l, p_k)


def _check_latent(r: float) -> float:
    r = float(r)
    if not -1.0 <= r <= 1.0:
        raise ValueError(f"the latent correlation r must lie in [-1, 1], got {r}")
    return r


def _phi2(s: float, a: float, b: float) -> float:
    one = 1.0 - s * s
    return np.exp(-(a * a - 2 * s * a * b + b * b) / (2 * one)) / (2 * np.pi * np.sqrt(one))


def bernoulli_pair_correlation(p_l: float, p_k: float, r: float) -> float:
    """Pearson correlation of two thresholded Gaussians with latent correlation ``r`` (Plackett's identity).

    Parameters
    ----------
    p_l, p_k : float
        Success probabilities in (0, 1).
    r : float
        Latent correlation in [-1, 1]; ``+-1`` give the Frechet bounds.
    """
    p_l, p_k = _check_probability(p_l, "p_l"), _check_probability(p_k, "p_k")
    r = _check_latent(r)
    if r >= 1.0 or r <= -1.0:
        return bernoulli_correlation_bounds(p_l, p_k)[1 if r > 0 else 0]
    a, b = stats.norm.ppf(p_l), stats.norm.ppf(p_k)
    excess = integrate.quad(_phi2, 0.0, r, args=(a, b), epsabs=1e-13, epsrel=1e-11, limit=200)[0]
    return float(excess / np.sqrt(p_l * (1 - p_l) * p_k * (1 - p_k)))


def copula_pair_correlation(p_l: Marginal, p_k: Marginal, r: float) -> float:
    """Pearson correlation of two copula marginals (any mix) given the latent correlation ``r``.

    Parameters
    ----------
    p_l, p_k : float or None
        Bernoulli probability, or ``None``/NaN for a Gaussian channel.
    r : float
        Latent normal correlation in [-1, 1].
    """
    gl, gk = _is_gaussian(p_l), _is_gaussian(p_k)
    r = _check_latent(r)
    if gl and gk:
        return r
    if gl or gk:
        return r * point_biserial_cap(p_k if gl else p_l)
    return bernoulli_pair_correlation(p_l, p_k, r)


# --------------------------------------------------------------------------- inverse map
def solve_latent_pair(p_l: Marginal, p_k: Marginal, target: float, pair: tuple[int, int] = (0, 1),
                      names: Optional[Sequence[str]] = None) -> float:
    """The latent correlation ``r`` with ``copula_pair_correlation(p_l, p_k, r) == target``.

    Parameters
    ----------
    p_l, p_k : float or None
        Marginals of channels ``pair[0]`` and ``pair[1]`` (``None``/NaN: Gaussian).
    target : float
        Target Pearson correlation of the rewards.
    pair : tuple of int
        Channel indices, for the error message.
    names : sequence of str, optional
        Channel names of the whole vector, for the error message.

    Raises
    ------
    ValueError
        ``target`` lies outside :func:`copula_correlation_bounds` (by more than
        :data:`FEASIBILITY_TOL`); the message names the pair, the marginals and
        the attainable range.
    """
    target = float(target)
    lo, hi = copula_correlation_bounds(p_l, p_k)
    if not lo - FEASIBILITY_TOL <= target <= hi + FEASIBILITY_TOL:
        raise ValueError(_infeasible_message(p_l, p_k, target, lo, hi, pair, names))
    gl, gk = _is_gaussian(p_l), _is_gaussian(p_k)
    if target == 0.0 or (gl and gk):
        return target
    if gl or gk:
        return float(np.clip(target / hi, -1.0, 1.0))
    if target >= hi - FEASIBILITY_TOL:
        return 1.0
    if target <= lo + FEASIBILITY_TOL:
        return -1.0
    return float(optimize.brentq(lambda r: bernoulli_pair_correlation(p_l, p_k, r) - target,
                                 -_R_EDGE, _R_EDGE, xtol=1e-13, rtol=1e-13))


def _infeasible_message(p_l, p_k, target, lo, hi, pair, names) -> str:
    def channel(i: int, p) -> str:
        label = f" {names[i]!r}" if names is not None else ""
        return f"{i}{label} ({describe_marginal(p)})"

    binary = (not _is_gaussian(p_l)) + (not _is_gaussian(p_k))
    why = ("the Frechet bounds of two Bernoulli channels" if binary == 2 else
           "the point-biserial cap phi(Phi^-1(p)) / sqrt(p (1 - p)) of a Bernoulli and a Gaussian channel")
    excess = target - hi if target > hi else lo - target
    return (f"target correlation {target:+.6g} between channels {channel(pair[0], p_l)} and "
            f"{channel(pair[1], p_k)} is infeasible (not attainable with these marginals): the attainable "
            f"range is [{lo:+.4f}, {hi:+.4f}] ({why}); the target is outside it by {excess:.3g}")


def copula_latent_correlation(p, C_target, names: Optional[Sequence[str]] = None,
                              name: str = "C_target") -> np.ndarray:
    """Latent Gaussian correlation matrix that realizes ``C_target`` for these marginals.

    Parameters
    ----------
    p : sequence, length ``R``
        ``p_l`` in (0, 1) for a Bernoulli channel; ``None`` or NaN for a Gaussian one.
    C_target : array_like, shape ``(R, R)``
        Target Pearson correlation of the rewards (symmetric, unit diagonal, PSD).
    names : sequence of str, optional
        Channel names, used in error messages.
    name : str
        The target's name in error messages.

    Returns
    -------
    numpy.ndarray, shape ``(R, R)``
        Symmetric, unit diagonal, positive semi-definite (eigenvalues >= ``-PSD_TOL``).

    Raises
    ------
    ValueError
        ``C_target`` is not a correlation matrix or not PSD; a pair's target lies
        outside its attainable range (Frechet bounds for two Bernoulli channels,
        the point-biserial cap for a Bernoulli and a Gaussian one); or the latent
        matrix is not positive semi-definite.
    """
    C = check_correlation_matrix(C_target, name)
    R = C.shape[0]
    pv = check_marginals(p, R)
    if names is not None and (isinstance(names, (str, bytes)) or len(names) != R):
        raise ValueError(f"names must be a sequence of R = {R} channel names, got {names!r}")
    low = np.linalg.eigvalsh(C).min()
    if low < -PSD_TOL:
        raise ValueError(f"{name} is not positive semi-definite (smallest eigenvalue {low:.3g}): "
                         "no random vector has this correlation matrix")
    marg = [None if np.isnan(v) else float(v) for v in pv]
    latent = np.eye(R)
    for l in range(R):
        for k in range(l + 1, R):
            latent[l, k] = latent[k, l] = solve_latent_pair(marg[l], marg[k], C[l, k], (l, k), names)
    low = np.linalg.eigvalsh(latent).min()
    if low < -PSD_TOL:
        listed = ", ".join(f"{i}: {describe_marginal(v)}" for i, v in enumerate(marg))
        raise ValueError(f"the latent Gaussian correlation matrix that realizes {name} for these marginals "
                         f"({listed}) is not positive semi-definite "
                         f"(smallest eigenvalue {low:.3g}): the target is not reachable by a Gaussian copula; "
                         f"weaken the correlations. Latent matrix:\n{np.array2string(latent, precision=4)}")
    return latent
