"""A mock rollout backend: rewards whose correlation matrix is the one requested.

Each rollout draws ``z ~ N(0, L)`` with a latent correlation ``L``; channel
``l`` is Gaussian (``loc_l + scale_l * z_l``) or Bernoulli
(``1[z_l > Phi^-1(1 - p_l)]``). ``L`` is solved pair by pair so that the *reward*
correlation equals the target (a Gaussian copula), by :mod:`mrgrpo.sim.copula`,
the same solver the Monte-Carlo generators use.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from mrgrpo.corpus.run import group_generator
from mrgrpo.corpus.types import Rollouts
from mrgrpo.lm.prompts import as_prompt
from mrgrpo.rewards.math import MATH_CHANNELS
from mrgrpo.sim.copula import bernoulli_thresholds, check_correlation_matrix, copula_latent_correlation

__all__ = ["MockBackend"]


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
        Target correlation of the rewards (symmetric, unit diagonal, positive
        semi-definite, each pair attainable with its marginals).
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
        Cm = check_correlation_matrix(C, "C")
        R = Cm.shape[0]
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if isinstance(p, (str, bytes)):
            raise ValueError(f"p must be a float or a sequence of (float or None), got {p!r}")
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
        # channel marginals for the copula: a probability for Bernoulli, None for Gaussian
        marginals = [v if k == "bernoulli" else None for k, v in zip(kinds, p_list)]
        latent = copula_latent_correlation(marginals, Cm, names=self.reward_names, name="C")
        lam, vec = np.linalg.eigh(latent)
        self.latent_C = latent
        self._factor = vec * np.sqrt(np.clip(lam, 0.0, None))  # z = e @ factor.T
        self._thresholds = bernoulli_thresholds(marginals)
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
