"""mrgrpo.core.advantage_torch: the trainer's twin equals the NumPy estimators."""
from __future__ import annotations

import numpy as np
import pytest

import torch

from mrgrpo.core import advantage as npa  # noqa: E402
from mrgrpo.core.advantage import CONDITIONING, MODES  # noqa: E402
from mrgrpo.core import advantage_torch as tha  # noqa: E402


def _rewards(seed: int, shape, dtype=np.float64) -> np.ndarray:
    """Mixed rewards: a binary gate, continuous channels of unequal scale, a constant channel."""
    rng = np.random.default_rng(seed)
    R = shape[-1]
    r = rng.normal(size=shape) * (rng.exponential(2.0, size=R) + 0.1) + rng.normal(0, 3, size=R)
    r[..., 0] = (rng.random(shape[:-1]) < 0.5).astype(float)
    if R >= 3:
        r[..., 2] = np.round(r[..., 2])  # few levels: ties
        if r.ndim >= 3:
            r[: max(1, shape[0] // 2), ..., 2] = 0.1  # constant channels in the first groups
    return r.astype(dtype)


def _close(a_np: np.ndarray, a_t, dtype) -> None:
    got = a_t.detach().cpu().double().numpy()
    if dtype == torch.float64:
        np.testing.assert_allclose(got, a_np, rtol=0, atol=1e-12)
    else:
        # float32 rounding is relative to the magnitude of what is summed
        np.testing.assert_allclose(got, a_np, rtol=0, atol=1e-6 * max(1.0, float(np.abs(a_np).max())))


SHAPES = [(8, 3), (5, 6, 3), (2, 3, 4, 4), (4, 2, 2)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", MODES)
def test_compute_advantage_batch_equals_numpy(mode, shape, dtype):
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    r = _rewards(sum(shape), shape, np_dtype)
    w = np.linspace(0.5, 1.5, shape[-1])
    for eps in (npa.EPS, 0.0, 1e-3):
        expected = npa.compute_advantage_batch(r.astype(np.float64), w, mode, eps)
        got = tha.compute_advantage_batch(torch.from_numpy(r), w, mode, eps)
        assert got.dtype == dtype and got.shape == expected.shape
        assert torch.isfinite(got).all()
        _close(expected, got, dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_compute_advantage_single_group_and_tensor_weights(dtype):
    rt = torch.tensor(_rewards(1, (8, 3)), dtype=dtype)
    r = rt.double().numpy()  # the exact values the torch side sees
    w = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    for mode in MODES:
        _close(npa.compute_advantage(r, w.numpy(), mode), tha.compute_advantage(rt, w, mode), dtype)


def test_constant_channels_are_exactly_zero_in_torch():
    r = torch.tensor(_rewards(2, (6, 8, 3)))
    const = tha.constant_channel_mask(r)
    np.testing.assert_array_equal(const.numpy(), npa.constant_channel_mask(r.numpy()))
    assert const[..., 2].any()
    z = tha.group_standardize(r.transpose(-1, -2), eps=0.0)
    assert (z.transpose(-1, -2)[..., 2][const[..., 2]] == 0).all()
    assert torch.isfinite(tha.compute_advantage_batch(r, [1.0, 1.0, 1.0], "na", eps=0.0)).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("impl", CONDITIONING)
def test_apply_conditioning_equals_numpy(impl, dtype):
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    r = _rewards(3, (5, 4, 6, 3), np_dtype)
    for cond, threshold in ((1, None), ([1, 2], None), (2, 0.5), ([-1, 1], 1.0), (np.array([2, 1]), None)):
        expected = npa.apply_conditioning(r.astype(float), 0, cond, impl, threshold)
        got = tha.apply_conditioning(torch.from_numpy(r), 0, cond, impl, threshold)
        assert got.dtype == dtype and got.shape == r.shape
        _close(expected, got, dtype)
    t = torch.from_numpy(r)
    assert torch.equal(tha.apply_conditioning(t, 0, torch.tensor([1, 2]), impl), tha.apply_conditioning(t, 0, [1, 2], impl))
    # conditioning then NA: the full pipeline
    cr = tha.apply_conditioning(torch.from_numpy(r), 0, [1, 2], impl)
    _close(npa.compute_advantage_batch(npa.apply_conditioning(r.astype(float), 0, [1, 2], impl), [1, 1, 1]),
           tha.compute_advantage_batch(cr, [1, 1, 1]), dtype)


def test_ddof_and_batch_rescale_equal_numpy():
    r = _rewards(4, (6, 8, 3))
    for mode in MODES:
        for ddof in (0, 1):
            expected = npa.compute_advantage_batch(r, [1, 1, 0.5], mode, 1e-4, ddof=ddof, batch_rescale=True)
            got = tha.compute_advantage_batch(torch.tensor(r), [1, 1, 0.5], mode, 1e-4, ddof=ddof, batch_rescale=True)
            _close(expected, got, torch.float64)


def test_reproduces_trl_aggregations():
    """TRL 1.16 GRPOTrainer._generate_and_score_completions, both aggregations, re-run with its nanstd."""
    from trl.trainer import utils as trl_utils
    nanstd = trl_utils.nanstd
    rng = np.random.default_rng(9)
    n_groups, m, K = 5, 8, 3
    # float32 as in TRL (its nanstd's Bessel factor count/(count-1) is float32 even for float64 input)
    rewards_per_func = torch.tensor(rng.normal(size=(n_groups * m, K)) * [1.0, 3.0, 0.2], dtype=torch.float32)
    weights = torch.tensor([1.0, 1.0, 0.5], dtype=torch.float32)

    # normalize_then_sum (TRL lines, verbatim in substance)
    grouped = rewards_per_func.view(-1, m, K)
    mean_k = torch.nanmean(grouped, dim=1, keepdim=True)
    std_k = nanstd(grouped, dim=1, keepdim=True)
    reward_k = ((grouped - mean_k) / (std_k + 1e-4)).view(-1, K)
    rewards = (reward_k * weights.unsqueeze(0)).nansum(dim=1)
    trl_nts = (rewards - torch.nanmean(rewards)) / (nanstd(rewards) + 1e-4)
    ours = tha.compute_advantage_batch(grouped, weights, "na", eps=1e-4, ddof=1, batch_rescale=True)
    assert ours.dtype == torch.float32
    np.testing.assert_allclose(ours.reshape(-1).numpy(), trl_nts.numpy(), rtol=0, atol=1e-6)
    # and the paper's NA (ddof 0, eps 1e-8, no rescale) is a different object
    paper_na = tha.compute_advantage_batch(grouped, weights, "na").reshape(-1).numpy()
    assert np.abs(paper_na - trl_nts.numpy()).max() > 1e-2

    # sum_then_normalize with scale_rewards="group"
    s = (rewards_per_func * weights.unsqueeze(0)).nansum(dim=1)
    mean_g = torch.nanmean(s.view(-1, m), dim=1).repeat_interleave(m)
    std_g = nanstd(s.view(-1, m), dim=1).repeat_interleave(m)
    trl_stn = (s - mean_g) / (std_g + 1e-4)
    ours_an = tha.compute_advantage_batch(grouped, weights, "an", eps=1e-4, ddof=1)
    np.testing.assert_allclose(ours_an.reshape(-1).numpy(), trl_stn.numpy(), rtol=0, atol=1e-6)


def test_keeps_dtype_device_and_builds_no_graph():
    r = torch.tensor(_rewards(5, (3, 4, 2)), dtype=torch.float32, requires_grad=True)
    out = tha.compute_advantage_batch(r, [1.0, 1.0])
    assert out.dtype == torch.float32 and out.device == r.device and not out.requires_grad
    out = tha.apply_conditioning(r)
    assert out.dtype == torch.float32 and not out.requires_grad
    ints = torch.tensor([[1, 0], [0, 1], [1, 1]])
    assert tha.compute_advantage(ints, [1, 1]).dtype == torch.get_default_dtype()
    # numpy input works too
    assert isinstance(tha.compute_advantage(ints.numpy(), [1, 1]), torch.Tensor)


GOOD = np.array([[1.0, 0.2, 3.0], [0.0, 0.5, 1.0], [1.0, 0.9, 2.0], [0.0, 0.1, 0.5]])
W = [1.0, 1.0, 0.5]
_nan = GOOD.copy()
_nan[2, 1] = np.nan
_inf = np.stack([GOOD, GOOD])
_inf[1, 3, 2] = -np.inf

BAD_CALLS = {
    "nan": ("compute_advantage", (_nan, W), {}),
    "inf batch": ("compute_advantage_batch", (_inf, W), {}),
    "ndim 3 for one group": ("compute_advantage", (GOOD[None], W), {}),
    "ndim 1": ("compute_advantage_batch", (GOOD[:, 0], W), {}),
    "w length": ("compute_advantage", (GOOD, W[:2]), {}),
    "w not finite": ("compute_advantage", (GOOD, [1.0, np.inf, 1.0]), {}),
    "m < 2": ("compute_advantage_batch", (GOOD[:1], W), {}),
    "mode": ("compute_advantage", (GOOD, W), {"mode": "sum"}),
    "eps": ("compute_advantage", (GOOD, W), {"eps": -1.0}),
    "ddof": ("compute_advantage_batch", (GOOD, W), {"ddof": 3}),
    "impl": ("apply_conditioning", (GOOD,), {"impl": "mask"}),
    "gate range": ("apply_conditioning", (GOOD, 5, 1), {}),
    "cond range": ("apply_conditioning", (GOOD, 0, [1, 3]), {}),
    "gate == cond": ("apply_conditioning", (GOOD, 2, 2), {}),
    "duplicate cond": ("apply_conditioning", (GOOD, 0, [1, 1]), {}),
    "threshold": ("apply_conditioning", (GOOD,), {"threshold": float("inf")}),
    "nan in conditioning": ("apply_conditioning", (_nan,), {}),
    "standardize m < 2": ("group_standardize", (np.ones((3, 1)),), {}),
    "standardize nan": ("group_standardize", (_nan,), {}),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_torch_errors_identical_to_numpy(case):
    name, args, kwargs = BAD_CALLS[case]
    with pytest.raises(ValueError) as np_err:
        getattr(npa, name)(*args, **kwargs)
    t_args = (torch.tensor(args[0]),) + args[1:]
    with pytest.raises(ValueError) as t_err:
        getattr(tha, name)(*t_args, **kwargs)
    assert str(t_err.value) == str(np_err.value)
