"""Why the paper's Theorem-3 check cannot fail: the per-group identity.

In every group, the NA advantages ``A_j = sum_l w_l u_jl`` are built from the
within-group standardized residuals ``u``, whose mean square is 1 per channel
and whose mean cross-product is the sample correlation. Hence, exactly,

    mean_j A_j^2 = w^T C_hat w            (every group, any rewards)

(channels constant in the group contribute 0 on both sides). With a score
``g`` independent of the rewards, ``E[g_hat^2 | rewards] = tau^2 w^T C_hat w / m``,
so "realized / (1/m) w^T C_hat w" tends to 1 for the mean of ``g_hat^2`` and
to ``(K-1)/K`` for the seed variance with ``ddof = 0``, whatever the rewards.
:func:`identity_demo` shows both on Cauchy-cubed rewards (no finite moments).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mrgrpo.core.checks import SeedLike, as_generator, check_rewards, check_weights
from mrgrpo.core.checks import check_eps
from mrgrpo.core.kernels import na_advantage, sample_correlation_kernel

__all__ = ["identity_sides", "identity_gap", "cauchy_cubed", "IdentityDemo", "identity_demo"]


def identity_sides(rewards, w, eps: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Both sides of the identity for every group.

    Parameters
    ----------
    rewards : array_like, shape ``(..., m, R)``
    w : array_like, shape ``(R,)``
    eps : float
        ``0`` (default) gives the exact identity; the paper's ``1e-8`` (added to
        the std in ``A`` but inside the square root in ``C_hat``) breaks it by
        ``O(eps / sigma)``.

    Returns
    -------
    lhs, rhs : numpy.ndarray, shape ``(...)``
        ``mean_j A_j^2`` and ``w^T C_hat w``.
    """
    r = check_rewards(rewards)
    wv = check_weights(w, r.shape[-1])
    eps = check_eps(eps)
    A = na_advantage(r, wv, eps)  # the kernels of compute_advantage_batch(mode="na") and sample_correlation
    lhs = (A * A).mean(axis=-1)
    rhs = np.einsum("i,...ij,j->...", wv, sample_correlation_kernel(r, eps), wv)
    return lhs, rhs


def identity_gap(rewards, w, eps: float = 0.0) -> dict:
    """Largest absolute and relative gap between the two sides over all groups."""
    lhs, rhs = identity_sides(rewards, w, eps)
    d = np.abs(lhs - rhs)
    scale = np.maximum(np.abs(rhs), 1e-300)
    return {"max_abs": float(d.max()), "max_rel": float((d / scale)[rhs != 0].max(initial=0.0)),
            "n_groups": int(d.size)}


def cauchy_cubed(shape, seed: SeedLike = 0) -> np.ndarray:
    """Rewards violating every moment assumption: standard Cauchy draws, cubed."""
    return as_generator(seed).standard_cauchy(tuple(shape)) ** 3


@dataclass
class IdentityDemo:
    """Numbers of :func:`identity_demo`."""

    P: int
    K: int
    m: int
    R: int
    max_abs_gap: float          # max over groups |mean_j A_j^2 - w'C_hat w|, eps = 0
    max_rel_gap: float
    max_abs_gap_paper_eps: float  # the same with the paper's eps = 1e-8
    paper_ratio: float
    paper_ratio_ci: np.ndarray
    paper_expected: float       # (K - 1) / K
    unbiased_ratio: float
    unbiased_ratio_ci: np.ndarray

    def contains_expected(self) -> bool:
        lo, hi = self.paper_ratio_ci
        return bool(lo <= self.paper_expected <= hi)


def identity_demo(P: int = 200, K: int = 16, m: int = 8, R: int = 3, w=None, seed: int = 0,
                  score_seed: int = 12345, n_boot: int = 2000) -> IdentityDemo:
    """Run the paper's check on Cauchy-cubed rewards and report the identity's numbers."""
    from .harness import analyze

    if w is None:  # the paper's weights where they fit, else equal weights
        w = np.array([1.0, 1.0, 0.5])[:R] if R <= 3 else np.ones(R)
    wv = check_weights(w, R)
    x = cauchy_cubed((P, K, m, R), seed)
    gap0 = identity_gap(x, wv, eps=0.0)
    gap8 = identity_gap(x, wv, eps=1e-8)
    paper = analyze(x, wv, score_seed=score_seed, mse_estimator="paper", n_boot=n_boot, boot_seed=seed,
                    population_checks=False)
    unb = analyze(x, wv, score_seed=score_seed, mse_estimator="unbiased", n_boot=n_boot, boot_seed=seed,
                  population_checks=False)
    return IdentityDemo(P=P, K=K, m=m, R=R, max_abs_gap=gap0["max_abs"], max_rel_gap=gap0["max_rel"],
                        max_abs_gap_paper_eps=gap8["max_abs"], paper_ratio=paper.ratio_na,
                        paper_ratio_ci=paper.ratio_na_ci, paper_expected=(K - 1) / K,
                        unbiased_ratio=unb.ratio_na, unbiased_ratio_ci=unb.ratio_na_ci)
