"""mrgrpo.core.advantage (NumPy): agreement with the paper's package, properties, errors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import multireward_grpo.advantage as ref
from mrgrpo.core import advantage as adv
from mrgrpo.core.advantage import (
    CONDITIONING,
    EPS,
    MODES,
    apply_conditioning,
    compute_advantage,
    compute_advantage_batch,
    constant_channel_mask,
    group_standardize,
)

TOL = 1e-12  # agreement with the reference package, absolute


def _random_group(rng: np.random.Generator, kind: str, shape) -> np.ndarray:
    """Rewards of one kind: heterogeneous-scale continuous, binary, or few-level discrete."""
    if kind == "continuous":
        R = shape[-1]
        scale = rng.exponential(2.0, size=R) + 0.05
        loc = rng.normal(0, 5, size=R)
        return loc + scale * rng.standard_normal(shape)
    if kind == "binary":
        return (rng.random(shape) < rng.uniform(0.2, 0.8)).astype(float)
    return rng.integers(0, 4, size=shape) / 3.0  # 4-level grid, ties and constant channels common


# ----------------------------------------------------------------------------
# agreement with multireward_grpo 0.1.1
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["continuous", "binary", "discrete"])
@pytest.mark.parametrize("seed", range(12))
def test_compute_advantage_matches_reference(kind, seed):
    rng = np.random.default_rng(seed)
    n_compared = dict.fromkeys(MODES, 0)
    for _ in range(20):
        m, R = int(rng.integers(2, 17)), int(rng.integers(1, 6))
        r = _random_group(rng, kind, (m, R))
        w = rng.normal(size=R)
        const = constant_channel_mask(r)
        for mode in MODES:
            for eps in (EPS, 1e-3):
                ours = compute_advantage(r, w, mode, eps)
                scalar = {"an": r @ w, "single": r[:, 0]}.get(mode)
                if scalar is not None and scalar.max() == scalar.min():
                    # the reference returns rounding / eps here (e.g. 3 x 1/3 - 1 = 1e-16 -> 1e-8)
                    np.testing.assert_array_equal(ours, 0.0)
                    continue
                # same for a constant channel inside NA: compare with that channel's weight at 0
                w_ref = np.where(const, 0.0, w) if mode == "na" else w
                theirs = ref.compute_advantage(r, w_ref, mode, eps)
                np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOL, err_msg=f"{mode} m={m} R={R}")
                n_compared[mode] += 1
    assert min(n_compared.values()) >= 20


@pytest.mark.parametrize("seed", range(6))
def test_compute_advantage_batch_matches_reference(seed):
    rng = np.random.default_rng(100 + seed)
    P, m, R = int(rng.integers(1, 30)), int(rng.integers(2, 12)), int(rng.integers(1, 5))
    for kind in ("continuous", "binary"):
        r = _random_group(rng, kind, (P, m, R))
        w = rng.uniform(0, 2, size=R)
        for mode in MODES:
            np.testing.assert_allclose(compute_advantage_batch(r, w, mode),
                                       ref.compute_advantage_batch(r, w, mode), rtol=0, atol=TOL)


@pytest.mark.parametrize("shape", [(7, 2), (3, 5, 3), (2, 4, 6, 3), (2, 1, 3, 4, 2)])
def test_batch_equals_loop_over_groups(shape):
    rng = np.random.default_rng(len(shape))
    r = _random_group(rng, "continuous", shape)
    w = rng.normal(size=shape[-1])
    for mode in MODES:
        batched = compute_advantage_batch(r, w, mode)
        assert batched.shape == shape[:-1]
        flat = r.reshape(-1, *shape[-2:])
        loop = np.stack([ref.compute_advantage(g, w, mode) for g in flat]).reshape(shape[:-1])
        np.testing.assert_allclose(batched, loop, rtol=0, atol=TOL)


@pytest.mark.parametrize("impl", CONDITIONING)
@pytest.mark.parametrize("seed", range(10))
def test_apply_conditioning_matches_reference(impl, seed):
    rng = np.random.default_rng(200 + seed)
    for _ in range(25):
        m, R = int(rng.integers(2, 13)), int(rng.integers(2, 5))
        r = _random_group(rng, "continuous", (m, R))
        gate, cond = (int(i) for i in rng.choice(R, size=2, replace=False))
        # binary gate with a pass rate that makes 0, 1 and >= 2 passes all common
        r[:, gate] = (rng.random(m) < rng.uniform(0, 1)).astype(float)
        ours = apply_conditioning(r, gate, cond, impl)
        theirs = ref.apply_conditioning(r, gate, cond, impl)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOL)


@pytest.mark.parametrize("impl", CONDITIONING)
def test_apply_conditioning_batch_equals_loop(impl):
    rng = np.random.default_rng(7)
    r = _random_group(rng, "continuous", (3, 4, 5, 3))
    r[..., 0] = (rng.random((3, 4, 5)) < 0.4).astype(float)
    batched = apply_conditioning(r, 0, [1, 2], impl)
    for idx in np.ndindex(3, 4):
        np.testing.assert_allclose(batched[idx], ref.apply_conditioning(
            ref.apply_conditioning(r[idx], 0, 1, impl), 0, 2, impl), rtol=0, atol=TOL)


def test_conditioning_single_group_batch_gates_the_right_axis():
    # a (1, m, R) batch must be gated like the (m, R) group it holds
    r = np.array([[1.0, 0.5], [0.0, 0.7], [1.0, 0.2], [0.0, 0.9]])
    for impl in CONDITIONING:
        np.testing.assert_array_equal(apply_conditioning(r[None], 0, 1, impl)[0], apply_conditioning(r, 0, 1, impl))
    np.testing.assert_array_equal(apply_conditioning(r[None], 0, 1, "zero_fill")[0, :, 1], [0.5, 0.0, 0.2, 0.0])


def test_conditioning_threshold_rule():
    r = np.array([[0.9, 2.0], [0.4, 3.0], [0.7, 5.0], [0.2, 7.0]])
    # default rule: gate == 1 -> nobody passes a continuous gate
    np.testing.assert_array_equal(apply_conditioning(r, 0, 1, "zero_fill")[:, 1], 0.0)
    zf = apply_conditioning(r, 0, 1, "zero_fill", threshold=0.5)
    np.testing.assert_array_equal(zf[:, 1], [2.0, 0.0, 5.0, 0.0])
    sg = apply_conditioning(r, 0, 1, "subgroup", threshold=0.5)
    np.testing.assert_allclose(sg[:, 1], [-1.5, 0.0, 1.5, 0.0], rtol=0, atol=1e-15)
    # threshold equal to a gate value passes it (>=)
    np.testing.assert_array_equal(apply_conditioning(r, 0, 1, "zero_fill", threshold=0.7)[:, 1], [2.0, 0, 5.0, 0])


def test_subgroup_fewer_than_two_passes_zeroes_the_channel():
    r = np.array([[[1.0, 4.0], [0.0, 5.0], [0.0, 6.0]],   # one pass -> 0
                  [[0.0, 4.0], [0.0, 5.0], [0.0, 6.0]],   # none -> 0
                  [[1.0, 4.0], [1.0, 6.0], [0.0, 6.0]]])  # two pass -> centred on them
    out = apply_conditioning(r, 0, 1, "subgroup")
    np.testing.assert_array_equal(out[0, :, 1], 0.0)
    np.testing.assert_array_equal(out[1, :, 1], 0.0)
    np.testing.assert_array_equal(out[2, :, 1], [-1.0, 1.0, 0.0])
    np.testing.assert_array_equal(out[..., 0], r[..., 0])


def test_conditioning_returns_new_array():
    r = np.array([[1.0, 2.0], [0.0, 3.0]])
    before = r.copy()
    for impl in CONDITIONING:
        out = apply_conditioning(r, 0, 1, impl)
        assert out is not r
        out[:] = -1
    np.testing.assert_array_equal(r, before)


# ----------------------------------------------------------------------------
# constant channels
# ----------------------------------------------------------------------------
def test_constant_channel_contributes_exactly_zero():
    rng = np.random.default_rng(3)
    r = rng.normal(size=(5, 8, 3))
    r[:, :, 1] = 0.1  # 0.1 is not exactly representable: the mean differs from it by rounding
    r[2, :, 2] = -7.3
    w = np.array([1.0, 5.0, 2.0])
    np.testing.assert_array_equal(constant_channel_mask(r)[:, 1], True)
    assert constant_channel_mask(r)[2, 2] and not constant_channel_mask(r)[0, 2]
    for eps in (EPS, 0.0):
        na = compute_advantage_batch(r, w, "na", eps)
        assert np.isfinite(na).all()
        w_drop = w.copy()
        w_drop[1] = 0.0
        expected = compute_advantage_batch(r, w_drop, "na", eps)
        np.testing.assert_array_equal(na, expected)
        z = group_standardize(np.swapaxes(r, -1, -2), eps)
        np.testing.assert_array_equal(z[:, 1], 0.0)
        np.testing.assert_array_equal(z[2, 2], 0.0)


def test_constant_group_gives_zero_advantage_in_every_mode():
    r = np.full((6, 3), 0.1)
    r[:, 1] = 0.25 * np.arange(6)
    r[:, 2] = 4.0 - r[:, 1]  # channels 1 and 2 vary, but their sum is exactly constant
    for eps in (EPS, 0.0):
        for mode in MODES:
            np.testing.assert_array_equal(compute_advantage(r[:, :1], [1.0], mode, eps), 0.0)
        # AN's scalar is constant: exactly 0, whatever eps (the reference gives 0/eps artefacts only by luck)
        np.testing.assert_array_equal(compute_advantage(r, [0.0, 1.0, 1.0], "an", eps), 0.0)
        # NA sees the two varying channels, which cancel exactly as well
        np.testing.assert_allclose(compute_advantage(r, [0.0, 1.0, 1.0], "na", eps), 0.0, atol=1e-15)
        assert np.isfinite(compute_advantage(r, [1.0, 1.0, 1.0], "na", eps)).all()


def test_group_standardize_moments():
    rng = np.random.default_rng(11)
    x = rng.normal(3, 2, size=(4, 9))
    z = group_standardize(x, eps=0.0)
    np.testing.assert_allclose(z.mean(-1), 0, atol=1e-14)
    np.testing.assert_allclose(z.std(-1), 1, rtol=1e-13)
    z1 = group_standardize(x, eps=0.0, ddof=1)
    np.testing.assert_allclose(z1.std(-1, ddof=1), 1, rtol=1e-13)


def test_batch_rescale_matches_definition():
    rng = np.random.default_rng(5)
    r = rng.normal(size=(4, 6, 3))
    w = np.array([1.0, 0.5, 2.0])
    a = compute_advantage_batch(r, w, "na")
    b = compute_advantage_batch(r, w, "na", batch_rescale=True)
    np.testing.assert_allclose(b, (a - a.mean()) / (a.std(ddof=1) + 1e-4), rtol=1e-13)
    assert b.shape == a.shape


# ----------------------------------------------------------------------------
# hypothesis properties
# ----------------------------------------------------------------------------
finite = st.floats(-100, 100, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def groups(draw, max_m=10, max_R=4, spread=True):
    """(m, R) groups whose channels all vary clearly (std >= 1e-3 of their magnitude)."""
    m = draw(st.integers(2, max_m))
    R = draw(st.integers(1, max_R))
    r = draw(arrays(np.float64, (m, R), elements=finite))
    if spread:
        sd = r.std(axis=0)
        assume((sd > 1e-3 * (1.0 + np.abs(r).max(axis=0))).all())
    return r


weights = st.floats(-3, 3, allow_nan=False, width=64)


@settings(max_examples=150, deadline=None)
@given(r=groups(spread=False), data=st.data(), mode=st.sampled_from(MODES))
def test_advantages_sum_to_zero_per_group(r, data, mode):
    w = np.array(data.draw(st.lists(weights, min_size=r.shape[1], max_size=r.shape[1])))
    a = compute_advantage(r, w, mode)
    assert np.isfinite(a).all()
    # rounding budget per standardized scalar x: centring x costs ~ulp(max|x|), amplified by
    # 1/(std + eps) (large when std << eps), and summing m values of size <= sqrt(m) costs m^1.5 ulp
    m = r.shape[0]
    scalars = {"an": [(1.0, r @ w)], "single": [(1.0, r[:, 0])], "na": list(zip(w, r.T))}[mode]
    bound = sum(abs(c) * 1e-14 * m * (np.sqrt(m) + np.abs(x).max() / (x.std() + EPS)) for c, x in scalars)
    assert abs(a.sum()) <= bound


@settings(max_examples=150, deadline=None)
@given(r=groups(), data=st.data())
def test_na_invariant_to_per_channel_affine_maps(r, data):
    R = r.shape[1]
    w = np.array(data.draw(st.lists(weights, min_size=R, max_size=R)))
    scale = np.array(data.draw(st.lists(st.floats(0.01, 100), min_size=R, max_size=R)))
    shift = np.array(data.draw(st.lists(st.floats(-50, 50), min_size=R, max_size=R)))
    # eps = 0 makes the invariance exact; only rounding remains (channels vary clearly)
    a = compute_advantage(r, w, "na", eps=0.0)
    b = compute_advantage(r * scale + shift, w, "na", eps=0.0)
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-6 * (1 + np.abs(a).max()))


@settings(max_examples=150, deadline=None)
@given(r=groups(), data=st.data())
def test_an_invariant_to_common_positive_scale(r, data):
    R = r.shape[1]
    w = np.array(data.draw(st.lists(weights, min_size=R, max_size=R)))
    s = r @ w
    assume(s.std() > 1e-3 * (1 + np.abs(r).max() * np.abs(w).sum()))
    c = data.draw(st.floats(0.01, 100))
    a = compute_advantage(r, w, "an", eps=0.0)
    np.testing.assert_allclose(compute_advantage(c * r, w, "an", eps=0.0), a, rtol=0,
                               atol=1e-6 * (1 + np.abs(a).max()))


@settings(max_examples=150, deadline=None)
@given(r=groups(max_R=4), data=st.data())
def test_na_equals_an_times_constant_when_sigmas_equal(r, data):
    R = r.shape[1]
    w = np.array(data.draw(st.lists(weights, min_size=R, max_size=R)))
    common_sd = data.draw(st.floats(0.1, 10))
    shift = np.array(data.draw(st.lists(st.floats(-20, 20), min_size=R, max_size=R)))
    # give every channel the same within-group std
    eq = (r - r.mean(0)) / r.std(0) * common_sd + shift
    s = eq @ w
    assume(s.std() > 1e-6 * common_sd * (1 + np.abs(w).sum()))
    na = compute_advantage(eq, w, "na", eps=0.0)
    an = compute_advantage(eq, w, "an", eps=0.0)
    # NA = sum_l w_l (r_l - mean)/sd = (s - mean s)/sd = AN * std(s)/sd
    np.testing.assert_allclose(na, an * s.std() / common_sd, rtol=0, atol=1e-8 * (1 + np.abs(na).max()))


@settings(max_examples=100, deadline=None)
@given(r=groups(spread=False), mode_w=st.floats(-3, 3))
def test_single_equals_na_with_unit_weight_on_channel_0(r, mode_w):
    R = r.shape[1]
    w = np.full(R, mode_w)
    e0 = np.zeros(R)
    e0[0] = 1.0
    # equal up to the rounding of the weighted sum (BLAS may fuse 1*z0 + 0*z1)
    np.testing.assert_allclose(compute_advantage(r, w, "single"), compute_advantage(r, e0, "na"),
                               rtol=0, atol=1e-14 * np.sqrt(r.shape[0]))


@settings(max_examples=150, deadline=None)
@given(r=groups(spread=False, max_R=5), data=st.data(), impl=st.sampled_from(CONDITIONING))
def test_conditioning_leaves_gate_and_other_channels_intact(r, data, impl):
    R = r.shape[1]
    assume(R >= 2)
    gate = data.draw(st.integers(0, R - 1))
    cond = data.draw(st.integers(0, R - 1).filter(lambda c: c != gate))
    passes = np.array(data.draw(st.lists(st.booleans(), min_size=r.shape[0], max_size=r.shape[0])))
    r = r.copy()
    r[:, gate] = passes.astype(float)
    out = apply_conditioning(r, gate, cond, impl)
    keep = [c for c in range(R) if c != cond]
    np.testing.assert_array_equal(out[:, keep], r[:, keep])
    if impl == "zero_fill":
        np.testing.assert_array_equal(out[~passes, cond], 0.0)
        np.testing.assert_array_equal(out[passes, cond], r[passes, cond])
    if impl == "subgroup":
        np.testing.assert_array_equal(out[~passes, cond], 0.0)
        if passes.sum() >= 2:
            assert abs(out[passes, cond].sum()) <= 1e-12 * passes.sum() * (1 + np.abs(r[:, cond]).max())


@settings(max_examples=60, deadline=None)
@given(data=st.data(), mode=st.sampled_from(MODES))
def test_batch_equals_loop_property(data, mode):
    P = data.draw(st.integers(1, 4))
    Q = data.draw(st.integers(1, 3))
    m = data.draw(st.integers(2, 6))
    R = data.draw(st.integers(1, 3))
    r = data.draw(arrays(np.float64, (P, Q, m, R), elements=finite))
    w = np.array(data.draw(st.lists(weights, min_size=R, max_size=R)))
    batched = compute_advantage_batch(r, w, mode)
    for idx in np.ndindex(P, Q):
        np.testing.assert_array_equal(batched[idx], compute_advantage(r[idx], w, mode))


# ----------------------------------------------------------------------------
# every bad input gets its error
# ----------------------------------------------------------------------------
GOOD = np.array([[1.0, 0.2, 3.0], [0.0, 0.5, 1.0], [1.0, 0.9, 2.0], [0.0, 0.1, 0.5]])
W = np.array([1.0, 1.0, 0.5])


def test_nan_names_row_and_channel():
    r = GOOD.copy()
    r[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"non-finite value \(nan\) at rollout \(row\) 2, channel 1"):
        compute_advantage(r, W)


def test_inf_in_batch_names_group_row_and_channel():
    r = np.stack([GOOD, GOOD])
    r[1, 3, 2] = np.inf
    with pytest.raises(ValueError, match=r"non-finite value \(inf\) at group \(1,\), rollout \(row\) 3, channel 2"):
        compute_advantage_batch(r, W)
    with pytest.raises(ValueError, match="non-finite"):
        apply_conditioning(r)


def test_wrong_ndim():
    with pytest.raises(ValueError, match="must have 2 dimensions"):
        compute_advantage(GOOD[None], W)
    with pytest.raises(ValueError, match=r"at least 2 dimensions \(\.\.\., m, R\)"):
        compute_advantage_batch(GOOD[:, 0], W)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        apply_conditioning(GOOD[:, 0])


def test_w_wrong_length():
    with pytest.raises(ValueError, match="w has 2 weights but the rewards have R = 3 channels"):
        compute_advantage(GOOD, W[:2])


def test_w_not_finite():
    with pytest.raises(ValueError, match="w must be finite"):
        compute_advantage(GOOD, [1.0, np.nan, 1.0])


def test_w_not_a_vector():
    with pytest.raises(ValueError, match="1-D vector"):
        compute_advantage(GOOD, np.ones((3, 1)))


def test_group_size_below_two():
    with pytest.raises(ValueError, match="group size m >= 2"):
        compute_advantage(GOOD[:1], W)
    with pytest.raises(ValueError, match="group size m >= 2"):
        apply_conditioning(GOOD[:1])
    with pytest.raises(ValueError, match=r"group size m >= 2 \(last axis\)"):
        group_standardize(np.array([1.0]))


def test_group_standardize_non_finite():
    with pytest.raises(ValueError, match=r"non-finite value \(nan\) at index \(1, 2\)"):
        group_standardize(np.array([[1.0, 2.0, 3.0], [1.0, 2.0, np.nan]]))


def test_no_channels():
    with pytest.raises(ValueError, match="R = 0"):
        compute_advantage_batch(np.zeros((4, 0)), np.zeros(0))


def test_unknown_mode():
    with pytest.raises(ValueError, match=r"unknown mode 'mean'.*\('na', 'an', 'single'\)"):
        compute_advantage(GOOD, W, mode="mean")


def test_unknown_impl():
    with pytest.raises(ValueError, match=r"unknown conditioning impl 'gate'"):
        apply_conditioning(GOOD, impl="gate")


def test_gate_index_out_of_range():
    with pytest.raises(ValueError, match="gate_idx = 3 is out of range for R = 3"):
        apply_conditioning(GOOD, gate_idx=3, cond_idx=1)


def test_cond_index_out_of_range():
    with pytest.raises(ValueError, match="cond_idx = -4 is out of range for R = 3"):
        apply_conditioning(GOOD, gate_idx=0, cond_idx=-4)
    with pytest.raises(ValueError, match="cond_idx = 5 is out of range"):
        apply_conditioning(GOOD, gate_idx=0, cond_idx=[1, 5])


def test_gate_equals_cond():
    with pytest.raises(ValueError, match="includes the gate channel"):
        apply_conditioning(GOOD, gate_idx=1, cond_idx=1)
    with pytest.raises(ValueError, match="includes the gate channel"):
        apply_conditioning(GOOD, gate_idx=0, cond_idx=[2, -3])


def test_cond_index_duplicate_or_empty_or_bad_type():
    with pytest.raises(ValueError, match="same channel twice"):
        apply_conditioning(GOOD, 0, [1, -2])
    with pytest.raises(ValueError, match="empty"):
        apply_conditioning(GOOD, 0, [])
    with pytest.raises(ValueError, match="must be an int"):
        apply_conditioning(GOOD, 0, 1.0)
    with pytest.raises(ValueError, match="gate_idx must be an int"):
        apply_conditioning(GOOD, "0", 1)


def test_bad_eps_threshold_ddof():
    with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
        compute_advantage(GOOD, W, eps=-1e-8)
    with pytest.raises(ValueError, match="threshold must be finite"):
        apply_conditioning(GOOD, threshold=np.nan)
    with pytest.raises(ValueError, match="ddof must be 0 or 1"):
        compute_advantage(GOOD, W, ddof=2)


def test_module_constants():
    assert adv.EPS == 1e-8
    assert adv.MODES == ("na", "an", "single")
    assert adv.CONDITIONING == ("none", "zero_fill", "subgroup")
    import mrgrpo
    assert mrgrpo.compute_advantage is compute_advantage
    assert mrgrpo.apply_conditioning is apply_conditioning
