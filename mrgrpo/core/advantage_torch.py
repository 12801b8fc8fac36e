"""Torch twin of :mod:`mrgrpo.core.advantage` for the trainer.

Same names, same semantics, same conventions (ddof = 0 within-group std,
``eps`` added to the std, exactly-constant channels give exactly 0, the gate
rule ``gate == 1`` or ``gate >= threshold``, the same overflow-safe
power-of-two rescaling of groups near the float maximum, in the input's own
float type) and the same validation errors. Outputs keep the input's dtype and device (integer or bool input becomes
``torch.get_default_dtype()``). Nothing here needs or builds an autograd graph;
rewards are data, so call it on detached tensors.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from mrgrpo.core.checks import (IndexLike, check_condition_indices, check_conditioning, check_ddof, check_eps,
                                check_mode, check_threshold, overflow_error, weights_may_overflow)
from mrgrpo.core.conventions import BATCH_RESCALE_EPS, CONDITIONING, EPS, MODES
from mrgrpo.core.kernels import safe_exponent

__all__ = [
    "EPS",
    "MODES",
    "CONDITIONING",
    "compute_advantage",
    "compute_advantage_batch",
    "apply_conditioning",
    "group_standardize",
    "constant_channel_mask",
    "batch_rescale_advantages",
]


def _as_float_tensor(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x))
    if not (x.is_floating_point() or x.is_complex()):
        x = x.to(torch.get_default_dtype())
    if x.is_complex():
        raise ValueError(f"{name} must be real, got dtype {x.dtype}")
    return x.detach()


def _check_rewards_t(rewards, *, exact_ndim: int | None = None, name: str = "rewards") -> torch.Tensor:
    """Torch version of :func:`mrgrpo.core.checks.check_rewards` (same messages)."""
    r = _as_float_tensor(rewards, name)
    shape = tuple(r.shape)
    if exact_ndim is not None and r.ndim != exact_ndim:
        raise ValueError(f"{name} must have {exact_ndim} dimensions, got shape {shape}")
    if r.ndim < 2:
        raise ValueError(f"{name} must have at least 2 dimensions (..., m, R), got shape {shape}")
    m, R = shape[-2], shape[-1]
    if R < 1:
        raise ValueError(f"{name} has no reward channels (R = 0), shape {shape}")
    if m < 2:
        raise ValueError(f"{name} needs group size m >= 2 (axis -2), got m = {m}, shape {shape}")
    finite = torch.isfinite(r)
    if not bool(finite.all()):
        bad = tuple(int(i) for i in torch.nonzero(~finite)[0].tolist())
        value = float(r[bad])
        *lead, row, chan = bad
        where = f"rollout (row) {row}, channel {chan}"
        if lead:
            where = f"group {tuple(lead)}, " + where
        raise ValueError(f"{name} contains a non-finite value ({value}) at {where}; "
                         f"{int((~finite).sum())} non-finite entries in all")
    return r


def _check_weights_t(w, R: int, like: torch.Tensor) -> torch.Tensor:
    wt = w.detach() if isinstance(w, torch.Tensor) else torch.as_tensor(np.asarray(w, dtype=float))
    if wt.ndim != 1:
        raise ValueError(f"w must be a 1-D vector of {R} weights, got shape {tuple(wt.shape)}")
    if wt.shape[0] != R:
        raise ValueError(f"w has {wt.shape[0]} weights but the rewards have R = {R} channels")
    wt = wt.to(dtype=like.dtype, device=like.device)
    if not bool(torch.isfinite(wt).all()):
        raise ValueError(f"w must be finite, got {wt.tolist()}")
    return wt


def rescale_divisor(mag: torch.Tensor) -> torch.Tensor | None:
    """Torch :func:`mrgrpo.core.kernels.rescale_divisor` from ``max |x|`` per group, in ``mag``'s dtype.

    1 inside the dtype's safe window (and for 0), else the power of two that
    brings ``mag`` into ``[1, 2)``; None when no group needs one (then the
    caller runs exactly the unscaled arithmetic, bit for bit).
    """
    k = safe_exponent(math.frexp(torch.finfo(mag.dtype).max)[1])
    unsafe = (mag > 2.0 ** k) | ((mag < 2.0 ** -k) & (mag > 0))
    if not bool(unsafe.any()):
        return None
    mantissa, _ = torch.frexp(torch.where(unsafe, mag, torch.ones_like(mag)))
    # mag = mantissa * 2**e exactly, so mag / (2 * mantissa) = 2**(e - 1) exactly
    return torch.where(unsafe, mag / (2 * mantissa), torch.ones_like(mag))


def _standardize_last(x: torch.Tensor, eps: float | torch.Tensor, ddof: int = 0) -> torch.Tensor:
    """Standardize along the last axis; ``eps`` a float or a ``(..., 1)`` tensor (already rescaled)."""
    n = x.shape[-1]
    hi, lo = x.amax(dim=-1, keepdim=True), x.amin(dim=-1, keepdim=True)
    const = hi == lo
    div = rescale_divisor(torch.maximum(hi, -lo))
    if div is not None:
        x = x / div
        eps = (eps if isinstance(eps, torch.Tensor) else torch.full_like(div, eps)) / div
    mean = x.mean(dim=-1, keepdim=True)
    d = x - mean
    std = torch.sqrt((d * d).sum(dim=-1, keepdim=True) / (n - ddof))
    denom = torch.where(const, torch.ones_like(std), std + eps)
    return torch.where(const, torch.zeros_like(d), d / denom)


def group_standardize(x, eps: float = EPS, *, ddof: int = 0) -> torch.Tensor:
    """Standardize each group along the last axis; see :func:`mrgrpo.core.advantage.group_standardize`.

    Parameters
    ----------
    x : torch.Tensor, shape ``(..., m)``
    eps : float
    ddof : {0, 1}

    Returns
    -------
    torch.Tensor, shape ``(..., m)``
    """
    t = _as_float_tensor(x, "x")
    shape = tuple(t.shape)
    if t.ndim < 1:
        raise ValueError(f"x must have at least 1 dimension (..., m), got shape {shape}")
    if shape[-1] < 2:
        raise ValueError(f"x needs group size m >= 2 (last axis), got m = {shape[-1]}, shape {shape}")
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        bad = tuple(int(i) for i in torch.nonzero(~finite)[0].tolist())
        raise ValueError(f"x contains a non-finite value ({float(t[bad])}) at index {bad}")
    eps = check_eps(eps)
    ddof = check_ddof(ddof, t.shape[-1])
    return _standardize_last(t, eps, ddof)


def constant_channel_mask(rewards) -> torch.Tensor:
    """Bool ``(..., R)``: True where a channel is exactly constant within its group."""
    r = _check_rewards_t(rewards)
    return r.amax(dim=-2) == r.amin(dim=-2)


def batch_rescale_advantages(adv, eps: float = BATCH_RESCALE_EPS) -> torch.Tensor:
    """TRL ``normalize_then_sum`` batch step: ``(A - mean) / (std_ddof1 + 1e-4)`` over all elements."""
    a = _as_float_tensor(adv, "adv")
    if a.numel() < 2:
        raise ValueError(f"batch rescale needs at least 2 advantages, got shape {tuple(a.shape)}")
    eps = check_eps(eps)
    div = rescale_divisor(a.abs().amax())  # None unless the advantages are near the float limits
    if div is not None:
        a, eps = a / div, torch.full_like(div, eps) / div
    mean = a.mean()
    d = a - mean
    std = torch.sqrt((d * d).sum() / (a.numel() - 1))
    return d / (std + eps)


def compute_advantage_batch(rewards, w, mode: str = "na", eps: float = EPS, *,
                            ddof: int = 0, batch_rescale: bool = False) -> torch.Tensor:
    """Advantages for every group; see :func:`mrgrpo.core.advantage.compute_advantage_batch`.

    Parameters
    ----------
    rewards : torch.Tensor or array_like, shape ``(..., m, R)``
    w : torch.Tensor or array_like, shape ``(R,)``
    mode : {"na", "an", "single"}
    eps : float
    ddof : {0, 1}, keyword-only
    batch_rescale : bool, keyword-only
        TRL ``normalize_then_sum``: ``ddof=1, eps=1e-4, batch_rescale=True``.

    Returns
    -------
    torch.Tensor, shape ``(..., m)``, dtype and device of ``rewards``.
    """
    mode = check_mode(mode)
    r = _check_rewards_t(rewards)
    wt = _check_weights_t(w, r.shape[-1], r)
    eps = check_eps(eps)
    ddof = check_ddof(ddof, r.shape[-2])
    with torch.no_grad():
        if mode == "na":
            z = _standardize_last(r.transpose(-1, -2), eps, ddof)  # (..., R, m)
            adv = z.transpose(-1, -2) @ wt
        elif mode == "an":
            # w^T r overflows near the float maximum: divide each group by a power of two first (exact)
            g = rescale_divisor(r.abs().amax(dim=(-2, -1), keepdim=True))  # (..., 1, 1) or None
            if g is None:
                adv = _standardize_last(r @ wt, eps, ddof)
            else:
                adv = _standardize_last((r / g) @ wt, torch.full_like(g[..., 0], eps) / g[..., 0], ddof)
        else:
            adv = _standardize_last(r[..., 0], eps, ddof)
        if mode != "single" and weights_may_overflow(wt.double().cpu().numpy(), r.shape[-2]) \
                and not bool(torch.isfinite(adv).all()):
            raise overflow_error(wt.double().cpu().numpy())
        if batch_rescale:
            adv = batch_rescale_advantages(adv)
    return adv


def compute_advantage(rewards, w, mode: str = "na", eps: float = EPS, *, ddof: int = 0) -> torch.Tensor:
    """Advantages of one group ``(m, R) -> (m,)``; see :func:`compute_advantage_batch`."""
    r = _check_rewards_t(rewards, exact_ndim=2)
    return compute_advantage_batch(r, w, mode=mode, eps=eps, ddof=ddof)


def apply_conditioning(rewards, gate_idx: int = 0, cond_idx: IndexLike | Sequence[int] = 1,
                       impl: str = "zero_fill", threshold: float | None = None) -> torch.Tensor:
    """Gate channel(s) ``cond_idx`` on ``gate_idx``; see :func:`mrgrpo.core.advantage.apply_conditioning`.

    Parameters
    ----------
    rewards : torch.Tensor or array_like, shape ``(..., m, R)``
    gate_idx, cond_idx, impl, threshold
        As in the NumPy version (pass rule ``gate == 1`` or ``gate >= threshold``).

    Returns
    -------
    torch.Tensor, shape ``(..., m, R)``: a new tensor.
    """
    impl = check_conditioning(impl)
    r = _check_rewards_t(rewards).clone()
    gate, conds = check_condition_indices(gate_idx, cond_idx, r.shape[-1])
    threshold = check_threshold(threshold)
    if impl == "none":
        return r
    g = r[..., gate]
    passes = (g >= threshold if threshold is not None else g == 1.0).unsqueeze(-1)  # (..., m, 1)
    idx = torch.tensor(conds, device=r.device)
    rb = r.index_select(-1, idx)  # (..., m, B)
    zero = torch.zeros((), dtype=r.dtype, device=r.device)
    if impl == "zero_fill":
        new = rb * passes.to(r.dtype)
    else:
        n_pass = passes.sum(dim=-2, keepdim=True)  # (..., 1, 1)
        sub_mean = torch.where(passes, rb, zero).sum(dim=-2, keepdim=True) / n_pass.clamp(min=1).to(r.dtype)
        new = torch.where(passes & (n_pass >= 2), rb - sub_mean, zero)
    r[..., conds] = new
    return r
