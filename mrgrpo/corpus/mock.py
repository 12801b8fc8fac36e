"""A mock rollout backend: rewards whose correlation matrix is the one requested.

Each rollout draws ``z ~ N(0, L)`` with a latent correlation ``L``; channel
``l`` is Gaussian (``loc_l + scale_l * z_l``) or Bernoulli
(``1[z_l > Phi^-1(1 - p_l)]``). ``L`` is solved pair by pair so that the *reward*
correlation equals the target (a Gaussian copula).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from mrgrpo.corpus.run import group_generator
from mrgrpo.corpus.types import Rollouts
from mrgrpo.lm.prompts import as_prompt
from mrgrpo.rewards.math import MATH_CHANNELS

__all__ = ["MockBackend"]


def _bvn_upper(t1: float, t2: float, rho: float) -> float:
    """P(Z1 > t1, Z2 > t2) for a standard bivariate normal with correlation rho."""
    from scipy import integrate, stats

    if rho >= 1.0:
        return float(stats.norm.sf(max(t1, t2)))
    if rho <= -1.0:
        return float(max(0.0, stats.norm.sf(t1) - stats.norm.cdf(-t2)))
    s = np.sqrt(1.0 - rho * rho)
    f = lambda x: stats.norm.pdf(x) * stats.norm.sf((t2 - rho * x) / s)  # noqa: E731
    val, _ = integrate.quad(f, t1, np.inf, epsabs=1e-13, epsrel=1e-11, limit=200)
    return float(val)


def _reward_corr(rho: float, kind_a: str, p_a: float, kind_b: str, p_b: float) -> float:
    """Correlation of two copula marginals given the latent normal correlation ``rho``."""
    from scipy import stats

    if kind_a == "gaussian" and kind_b == "gaussian":
        return rho
    if kind_a == "gaussian" or kind_b == "gaussian":
        p = p_b if kind_a == "gaussian" else p_a
        t = stats.norm.isf(p)
        return rho * stats.norm.pdf(t) / np.sqrt(p * (1 - p))
    ta, tb = stats.norm.isf(p_a), stats.norm.isf(p_b)
    p11 = _bvn_upper(ta, tb, rho)
    return (p11 - p_a * p_b) / np.sqrt(p_a * (1 - p_a) * p_b * (1 - p_b))


def _solve_latent(target: float, kind_a: str, p_a: float, kind_b: str, p_b: float, pair) -> float:
    from scipy import optimize

    if target == 0.0 or (kind_a == "gaussian" and kind_b == "gaussian"):
        return float(target)
    lim = 1.0 - 1e-12
    lo, hi = _reward_corr(-lim, kind_a, p_a, kind_b, p_b), _reward_corr(lim, kind_a, p_a, kind_b, p_b)
    if not lo - 1e-9 <= target <= hi + 1e-9:
        raise ValueError(
            f"requested correlation {target:+.3f} between channels {pair} is not attainable with "
            f"these marginals ({kind_a}{'' if kind_a == 'gaussian' else f' p={p_a}'}, "
            f"{kind_b}{'' if kind_b == 'gaussian' else f' p={p_b}'}); attainable range "
            f"[{lo:+.3f}, {hi:+.3f}]")
    target = min(max(target, lo), hi)
    return float(optimize.brentq(lambda r: _reward_corr(r, kind_a, p_a, kind_b, p_b) - target,
                                 -lim, lim, xtol=1e-12))


class MockBackend:
    """Synthetic rewards whose correlation matrix is the requested ``C``.

    Each rollout draws ``z ~ N(0, L)`` with a latent correlation ``L``; channel
    ``l`` is ``loc_l + scale_l * z_l`` (``"gaussian"``) or ``1[z_l > Phi^-1(1-p_l)]``
    (``"bernoulli"``, success probability ``p_l``). ``L`` is solved pair by pair
    so that the *reward* correlation equals ``C`` (for Gaussian pairs ``L = C``;
    a Bernoulli pair needs a larger latent correlation). Unattainable targets
    raise ``ValueError`` with the attainable range.

    Parameters
    ----------
    C : array_like, shape ``(R, R)``
        Target correlation of the rewards (symmetric, unit diagonal).
    p : float or sequence of (float or None), optional
        Bernoulli success probabilities; a channel with a ``p`` is Bernoulli
        unless ``kinds`` says otherwise.
    kinds : sequence of {"gaussian", "bernoulli"}, optional
    loc, scale : float or sequence, optional
        Mean and standard deviation of the Gaussian channels.
    seed : int
        Base seed; group ``(prompt, seed)`` uses :func:`group_generator`.
    reward_names : sequence of str, optional
        Default: the math names for ``R = 3``, else ``r0, r1, ...``.
    """

    def __init__(self, C, p=None, kinds: Optional[Sequence[str]] = None, loc=0.0, scale=1.0,
                 seed: int = 0, reward_names: Optional[Sequence[str]] = None, name: str = "mock"):
        Cm = np.asarray(C, dtype=float)
        if Cm.ndim != 2 or Cm.shape[0] != Cm.shape[1] or Cm.shape[0] < 1:
            raise ValueError(f"C must be a square (R, R) matrix, got shape {Cm.shape}")
        if not np.isfinite(Cm).all():
            raise ValueError("C must be finite")
        if not np.allclose(Cm, Cm.T, atol=1e-12):
            raise ValueError("C must be symmetric")
        if not np.allclose(np.diag(Cm), 1.0):
            raise ValueError(f"C must have a unit diagonal, got {np.diag(Cm).tolist()}")
        if np.abs(Cm).max() > 1 + 1e-12:
            raise ValueError("C entries must lie in [-1, 1]")
        if np.linalg.eigvalsh(Cm).min() < -1e-9:
            raise ValueError(f"C must be positive semi-definite (min eigenvalue {np.linalg.eigvalsh(Cm).min():.3g})")
        R = Cm.shape[0]
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if p is None:
            p_list = [None] * R
        elif np.ndim(p) == 0:
            p_list = [float(p)] * R
        else:
            p_list = [None if v is None else float(v) for v in p]
        if len(p_list) != R:
            raise ValueError(f"p has {len(p_list)} entries but C has R = {R} channels")
        if kinds is None:
            kinds = ["gaussian" if v is None else "bernoulli" for v in p_list]
        kinds = [str(k) for k in kinds]
        if len(kinds) != R or any(k not in ("gaussian", "bernoulli") for k in kinds):
            raise ValueError(f"kinds must be {R} entries of 'gaussian'/'bernoulli', got {kinds}")
        for l, (k, v) in enumerate(zip(kinds, p_list)):
            if k == "bernoulli":
                v = 0.5 if v is None else v
                if not 0.0 < v < 1.0:
                    raise ValueError(f"p for Bernoulli channel {l} must be in (0, 1), got {v}")
                p_list[l] = v
        self.loc = np.broadcast_to(np.asarray(loc, dtype=float), (R,)).copy()
        self.scale = np.broadcast_to(np.asarray(scale, dtype=float), (R,)).copy()
        if not (np.isfinite(self.loc).all() and np.isfinite(self.scale).all() and (self.scale > 0).all()):
            raise ValueError("loc must be finite and scale finite and > 0")
        self.C = Cm
        self.p = tuple(p_list)
        self.kinds = tuple(kinds)
        self.seed = int(seed)
        self.name = name
        if reward_names is None:
            reward_names = MATH_CHANNELS if R == 3 else tuple(f"r{l}" for l in range(R))
        self.reward_names = tuple(str(n) for n in reward_names)
        if len(self.reward_names) != R or len(set(self.reward_names)) != R:
            raise ValueError(f"reward_names must be {R} distinct names, got {self.reward_names}")
        latent = np.eye(R)
        for a in range(R):
            for b in range(a + 1, R):
                latent[a, b] = latent[b, a] = _solve_latent(
                    Cm[a, b], kinds[a], p_list[a], kinds[b], p_list[b], (a, b))
        lam, vec = np.linalg.eigh(latent)
        if lam.min() < -1e-9:
            raise ValueError(
                "the latent normal correlation needed for this C and these marginals is not "
                f"positive semi-definite (min eigenvalue {lam.min():.3g}); weaken the correlations")
        self.latent_C = latent
        self._factor = vec * np.sqrt(np.clip(lam, 0.0, None))  # z = e @ factor.T
        from scipy import stats

        self._thresholds = np.array([stats.norm.isf(v) if k == "bernoulli" else 0.0
                                     for k, v in zip(kinds, p_list)])
        self._bern = np.array([k == "bernoulli" for k in kinds])

    @property
    def R(self) -> int:
        return self.C.shape[0]

    def population_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Population ``(mean (R,), sd (R,))`` of the reward channels."""
        p = np.array([v if v is not None else 0.0 for v in self.p])
        mean = np.where(self._bern, p, self.loc)
        sd = np.where(self._bern, np.sqrt(p * (1 - p)), self.scale)
        return mean, sd

    def sample(self, rng: np.random.Generator, shape: tuple) -> np.ndarray:
        """Draw rewards of shape ``(*shape, R)`` from ``rng``."""
        z = rng.standard_normal((*shape, self.R)) @ self._factor.T
        return np.where(self._bern, (z > self._thresholds).astype(float), self.loc + self.scale * z)

    def generate_groups(self, prompts: list, m: int, seeds: list) -> list:
        """One group of ``m`` rollouts per (prompt, seed), prompt-major."""
        if isinstance(m, (bool, np.bool_)) or not isinstance(m, (int, np.integer)) or m < 1:
            raise ValueError(f"m must be a positive int, got {m!r}")
        out = []
        for i, item in enumerate(prompts):
            prompt = as_prompt(item, f"prompts[{i}]")
            for k, s in enumerate(seeds):
                rng = group_generator(self.seed, prompt.key, int(s))
                out.append(Rollouts(prompt_idx=i, seed_idx=k, prompt=prompt.key, gold=prompt.gold,
                                    seed=int(s), m=int(m), rewards=self.sample(rng, (int(m),))))
        return out
