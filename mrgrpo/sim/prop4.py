"""The generative model of Proposition 4 (gate, conditioned channel, contaminated score).

For each rollout (proofs.md, Proposition 4):

.. math::

    r^{(a)} \\sim \\mathrm{Bern}(p_a),\\quad r^{(b)} \\sim \\mathrm{Bern}(p_b)\\ \\text{independent},

    g = \\alpha_c (r^{(a)} - p_a) + \\alpha_f (r^{(b)} - p_b) r^{(a)}
        + \\gamma (r^{(b)} - p_b)(1 - r^{(a)}) + \\varepsilon,
    \\qquad \\varepsilon \\sim N(0, \\text{noise}^2).
"""
from __future__ import annotations

import numpy as np

from mrgrpo.core.checks import SeedLike, as_generator
from mrgrpo.sim.generators import ShapeLike, lead_shape

__all__ = ["prop4_model"]


def _prob(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if not np.isfinite(arr).all() or (arr < 0).any() or (arr > 1).any():
        raise ValueError(f"{name} must be a probability in [0, 1], got {x!r}")
    return arr


def prop4_model(n: ShapeLike, m: int, p_a, p_b, gamma, alpha_c=1.0, alpha_f=1.0, noise=0.5,
                *, seed: SeedLike) -> tuple[np.ndarray, np.ndarray]:
    """Draw rewards and the synthetic score of Proposition 4's model.

    Parameters
    ----------
    n : int or tuple of int
        Number of groups, or a leading batch shape.
    m : int
        Group size.
    p_a, p_b : float or array_like
        Pass rates of the gate (channel 0) and of the conditioned channel (channel 1).
    gamma : float or array_like
        Contamination: how strongly ``r_b`` drives the score on failing rollouts.
    alpha_c, alpha_f : float or array_like
        Gate coupling and the target (format-when-correct) coefficient.
    noise : float
        Standard deviation of the independent Gaussian noise ``epsilon`` (the
        reference harness uses 0.5).
    seed : int or numpy.random.Generator

    Every parameter may be an array that broadcasts against ``(*n, m)``, e.g.
    ``p_a`` of shape ``(G, 1, 1)`` with ``n = (G, K)`` sweeps a grid in one call.

    Returns
    -------
    rewards : numpy.ndarray, shape ``(*n, m, 2)``
        ``[..., 0]`` is the gate ``r_a``, ``[..., 1]`` the conditioned ``r_b`` (0/1).
    g : numpy.ndarray, shape ``(*n, m)``
        The synthetic score direction.
    """
    lead = lead_shape(n, m)
    p_a, p_b = _prob(p_a, "p_a"), _prob(p_b, "p_b")
    gamma, alpha_c, alpha_f = (np.asarray(v, dtype=float) for v in (gamma, alpha_c, alpha_f))
    noise = float(noise)
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite standard deviation >= 0, got {noise!r}")
    for name, v in (("gamma", gamma), ("alpha_c", alpha_c), ("alpha_f", alpha_f)):
        if not np.isfinite(v).all():
            raise ValueError(f"{name} must be finite")
    shape = (*lead, m)
    try:
        np.broadcast_shapes(shape, p_a.shape, p_b.shape, gamma.shape, alpha_c.shape, alpha_f.shape)
    except ValueError:
        raise ValueError(f"parameters must broadcast against the draw shape {shape}") from None
    rng = as_generator(seed)
    ra = (rng.random(shape) < p_a).astype(float)
    rb = (rng.random(shape) < p_b).astype(float)
    g = (alpha_c * (ra - p_a) + alpha_f * (rb - p_b) * ra + gamma * (rb - p_b) * (1.0 - ra))
    if noise > 0:
        g = g + noise * rng.standard_normal(shape)
    return np.stack([ra, rb], axis=-1), np.broadcast_to(g, shape).copy()
