"""Group-relative advantages for multi-reward GRPO (NumPy).

A *group* is ``m`` rollouts of one prompt, each scored on ``R`` reward
channels: an array of shape ``(m, R)``. Every function here also accepts any
leading batch shape ``(..., m, R)`` and works group by group, vectorized.

Estimators (``mode``):

- ``"an"``  Aggregate-then-Normalize (classic GRPO):
  :math:`s_j = w^\\top r_j`, :math:`A_j = (s_j - \\bar s)/(\\hat\\sigma_s + \\delta)`.
- ``"na"``  Normalize-then-Aggregate (decoupled):
  :math:`A_j = \\sum_\\ell w_\\ell (r_{j\\ell} - \\bar r_\\ell)/(\\hat\\sigma_\\ell + \\delta)`.
- ``"single"``  channel 0 alone, standardized (``w`` is validated but unused).

Conventions, fixed once for the whole package:

- :math:`\\hat\\sigma` is the within-group standard deviation with ``ddof = 0``
  (the paper's biased sample std); ``eps`` (:math:`\\delta`) is *added to the std*.
- A channel (or AN's scalar ``s``) that is exactly constant within a group
  (``max == min``) standardizes to exactly 0: no NaN, no ``rounding / eps``
  artefact.
- Overflow-safe: rewards up to the float maximum (or down to the smallest
  subnormal) standardize correctly; a group beyond about ``3e144`` in magnitude is
  divided by a power of two first, which is exact (see :mod:`mrgrpo.core.kernels`).
  Weights so large that the advantages themselves overflow are a ``ValueError``.

Conditioning (:func:`apply_conditioning`) gates one or more channels on a gate
channel before the advantage is formed. The torch twin lives in
:mod:`mrgrpo.core.advantage_torch`.
"""
from __future__ import annotations

import contextlib

import numpy as np

from mrgrpo.core.checks import (IndexLike, check_condition_indices, check_conditioning, check_ddof, check_eps,
                                check_mode, check_rewards, check_threshold, check_weights, overflow_error,
                                weights_may_overflow)
from mrgrpo.core.conventions import BATCH_RESCALE_EPS, CONDITIONING, EPS, MODES
from mrgrpo.core.kernels import (an_advantage, constant_along, na_advantage, power_of_two_below, single_advantage,
                                 standardize)

__all__ = [
    "EPS",
    "MODES",
    "CONDITIONING",
    "BATCH_RESCALE_EPS",
    "compute_advantage",
    "compute_advantage_batch",
    "apply_conditioning",
    "group_standardize",
    "constant_channel_mask",
    "batch_rescale_advantages",
]


def group_standardize(x, eps: float = EPS, *, ddof: int = 0) -> np.ndarray:
    """Standardize each group along the last axis.

    Parameters
    ----------
    x : array_like, shape ``(..., m)``
        One scalar reward per rollout, groups along the last axis.
    eps : float
        Added to the within-group std (the paper's :math:`\\delta`).
    ddof : {0, 1}
        0 (default, the paper) or 1 (TRL's per-group std).

    Returns
    -------
    numpy.ndarray, shape ``(..., m)``
        :math:`(x_j - \\bar x)/(\\hat\\sigma + \\varepsilon)`; exactly 0 in a
        group whose values are all equal.
    """
    arr = np.asarray(x, dtype=float)
    if arr.ndim < 1:
        raise ValueError(f"x must have at least 1 dimension (..., m), got shape {arr.shape}")
    if arr.shape[-1] < 2:
        raise ValueError(f"x needs group size m >= 2 (last axis), got m = {arr.shape[-1]}, shape {arr.shape}")
    finite = np.isfinite(arr)
    if not finite.all():
        bad = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise ValueError(f"x contains a non-finite value ({arr[bad]}) at index {bad}")
    eps = check_eps(eps)
    ddof = check_ddof(ddof, arr.shape[-1])
    return standardize(arr, eps, ddof)


def constant_channel_mask(rewards) -> np.ndarray:
    """Which channels are exactly constant within their group.

    Parameters
    ----------
    rewards : array_like, shape ``(..., m, R)``

    Returns
    -------
    numpy.ndarray of bool, shape ``(..., R)``
        True where ``max == min`` over the ``m`` rollouts: such a channel
        contributes exactly 0 to every advantage.
    """
    return constant_along(check_rewards(rewards), -2)[..., 0, :]


def batch_rescale_advantages(adv, eps: float = BATCH_RESCALE_EPS) -> np.ndarray:
    """Rescale a whole batch of advantages as TRL's ``normalize_then_sum`` does.

    :math:`A \\leftarrow (A - \\bar A)/(\\mathrm{sd}_{ddof=1}(A) + 10^{-4})`, mean
    and std over *every* element of the batch. For NA/AN/single advantages the
    batch mean is already 0 up to rounding; it is subtracted to match TRL bit for bit.
    """
    a = np.asarray(adv, dtype=float)
    if a.size < 2:
        raise ValueError(f"batch rescale needs at least 2 advantages, got shape {a.shape}")
    eps = check_eps(eps)
    with np.errstate(over="ignore", invalid="ignore"):
        mean, sd = a.mean(), a.std(ddof=1)
    if not (np.isfinite(mean) and np.isfinite(sd)):  # near the float maximum: rescale by a power of two (exact)
        if not np.isfinite(a).all():
            raise ValueError(f"adv contains a non-finite value at index {tuple(np.argwhere(~np.isfinite(a))[0])}")
        div = power_of_two_below(np.maximum(a.max(), -a.min()))
        a, eps = a / div, eps / div
        mean, sd = a.mean(), a.std(ddof=1)
    return (a - mean) / (sd + eps)


# ----------------------------------------------------------------------------
# advantages
# ----------------------------------------------------------------------------
def compute_advantage_batch(rewards, w, mode: str = "na", eps: float = EPS, *,
                            ddof: int = 0, batch_rescale: bool = False) -> np.ndarray:
    """Advantages for every group of a batch.

    Parameters
    ----------
    rewards : array_like, shape ``(..., m, R)``
        Any leading batch shape; groups of ``m >= 2`` rollouts on ``R`` channels.
    w : array_like, shape ``(R,)``
        Finite channel weights (validated in every mode).
    mode : {"na", "an", "single"}
        Estimator; see the module docstring.
    eps : float
        Added to each within-group std (default ``1e-8``).
    ddof : {0, 1}, keyword-only
        Within-group std convention: 0 (paper, default) or 1 (TRL).
    batch_rescale : bool, keyword-only
        If True, afterwards rescale the whole batch with
        :func:`batch_rescale_advantages` (TRL ``normalize_then_sum``). TRL also
        uses ``ddof=1`` and ``eps=1e-4`` in its per-group std: pass
        ``ddof=1, eps=1e-4, batch_rescale=True`` to reproduce it exactly.

    Returns
    -------
    numpy.ndarray, shape ``(..., m)``

    Raises
    ------
    ValueError
        non-finite rewards (group, row and channel named), fewer than 2
        dimensions, ``m < 2``, ``w`` of the wrong length or non-finite,
        unknown ``mode``, negative ``eps``, weights so large that the
        advantages overflow.
    """
    mode = check_mode(mode)
    r = check_rewards(rewards)
    wv = check_weights(w, r.shape[-1])
    eps = check_eps(eps)
    ddof = check_ddof(ddof, r.shape[-2])
    huge_w = mode != "single" and weights_may_overflow(wv, r.shape[-2])
    with np.errstate(over="ignore", invalid="ignore") if huge_w else contextlib.nullcontext():
        if mode == "na":
            adv = na_advantage(r, wv, eps, ddof)
        elif mode == "an":
            adv = an_advantage(r, wv, eps, ddof)
        else:
            adv = single_advantage(r, eps, ddof)
    if huge_w and not np.isfinite(adv).all():
        raise overflow_error(wv)
    if batch_rescale:
        adv = batch_rescale_advantages(adv)
    return adv


def compute_advantage(rewards, w, mode: str = "na", eps: float = EPS, *, ddof: int = 0) -> np.ndarray:
    """Advantages of one group.

    Parameters
    ----------
    rewards : array_like, shape ``(m, R)``
    w : array_like, shape ``(R,)``
    mode, eps, ddof
        As in :func:`compute_advantage_batch`.

    Returns
    -------
    numpy.ndarray, shape ``(m,)``
    """
    r = check_rewards(rewards, exact_ndim=2)
    return compute_advantage_batch(r, w, mode=mode, eps=eps, ddof=ddof)


# ----------------------------------------------------------------------------
# conditioning
# ----------------------------------------------------------------------------
def gate_passes(gate, threshold: float | None = None) -> np.ndarray:
    """The gate rule: ``gate == 1`` (default, the paper's binary gate) or ``gate >= threshold``."""
    g = np.asarray(gate, dtype=float)
    return g >= threshold if threshold is not None else g == 1.0


def apply_conditioning(rewards, gate_idx: int = 0, cond_idx: IndexLike = 1,
                       impl: str = "zero_fill", threshold: float | None = None) -> np.ndarray:
    """Gate channel(s) ``cond_idx`` on channel ``gate_idx`` ("b counts only if a passes").

    A rollout *passes* when its gate reward equals 1 (default; binary gates as
    in the paper) or, when ``threshold`` is given, when gate ``>= threshold``.

    Parameters
    ----------
    rewards : array_like, shape ``(..., m, R)``
        Any leading batch shape; gating is done within each group.
    gate_idx : int
        The gate channel ``a`` (negative indices count from the end).
    cond_idx : int or sequence of int
        The conditioned channel(s) ``b``; distinct, and not the gate.
    impl : {"none", "zero_fill", "subgroup"}
        - ``"none"``: unchanged copy.
        - ``"zero_fill"``: :math:`r_b \\leftarrow r_b\\,\\mathbb 1[\\text{pass}]`.
        - ``"subgroup"``: :math:`r_b \\leftarrow (r_b - \\bar r_b^{\\text{pass}})\\,\\mathbb 1[\\text{pass}]`,
          :math:`\\bar r_b^{\\text{pass}}` the mean over the group's passing
          rollouts; a group with fewer than 2 passing rollouts gets
          :math:`r_b \\leftarrow 0`.
    threshold : float, optional
        Continuous-gate rule ``gate >= threshold``.

    Returns
    -------
    numpy.ndarray, shape ``(..., m, R)``
        A new array; the gate and the other channels are untouched.
    """
    impl = check_conditioning(impl)
    r = check_rewards(rewards).copy()
    gate, conds = check_condition_indices(gate_idx, cond_idx, r.shape[-1])
    threshold = check_threshold(threshold)
    if impl == "none":
        return r
    passes = gate_passes(r[..., gate], threshold)[..., None]  # (..., m, 1)
    rb = r[..., conds]  # (..., m, B)
    if impl == "zero_fill":
        new = rb * passes
    else:
        n_pass = passes.sum(axis=-2, keepdims=True)  # (..., 1, 1)
        sub_mean = np.where(passes, rb, 0.0).sum(axis=-2, keepdims=True) / np.maximum(n_pass, 1)
        new = np.where(passes & (n_pass >= 2), rb - sub_mean, 0.0)
    r[..., conds] = new
    return r
