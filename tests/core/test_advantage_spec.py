"""``AdvantageSpec``: the one value every engine computes its advantages with.

Checked here: validation on construction (each error names its field), the ``normalization``
shortcut, the advantages themselves (equal to the paper API ``apply_conditioning`` +
``compute_advantage_batch`` on scored rewards, numpy in numpy out, torch in torch out, any
leading batch shape), TRL's ``None`` = unscored rules (formerly ``integrations/estimator.py``),
the refusal of a non-binary gate under ``gate_threshold=None`` (issue 21, item 13), the
metrics, and the spec ``GRPOConfig`` builds.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mrgrpo import apply_conditioning, compute_advantage_batch
from mrgrpo.core.advantage import batch_rescale_advantages
from mrgrpo.core.advantage_diagnostics import advantage_metrics, reward_metrics
from mrgrpo.core.advantage_spec import NORMALIZATIONS, AdvantageSpec

W = [1.0, 1.0, 0.5]


def flat(spec: AdvantageSpec, r: torch.Tensor, m: int = 4) -> np.ndarray:
    """Advantages of a flat batch ``(G m, R)`` stored group by group, as TRL hands it over."""
    return spec.advantages(r.view(-1, m, r.shape[-1])).advantages.reshape(-1).double().numpy()


# ------------------------------------------------------------------ unscored rewards (NaN): TRL's rules
def test_unscored_reward_is_left_out_of_its_channel_baseline():
    r = torch.tensor([[1.0, 0.2, 1.0], [0.0, float("nan"), 1.0], [1.0, 0.6, 0.0], [0.0, 0.1, 1.0]])
    s = AdvantageSpec(weights=tuple(W), mode="na")
    got = flat(s, r)
    z = lambda x: compute_advantage_batch(np.asarray(x)[:, None], [1.0], "na")  # noqa: E731
    want = W[0] * z(r[:, 0]) + W[2] * z(r[:, 2])
    want[[0, 2, 3]] += W[1] * z(r[[0, 2, 3], 1])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    r[1] = float("nan")  # unscorable: advantage 0, out of every baseline
    got = flat(s, r)
    assert got[1] == 0
    np.testing.assert_allclose(got[[0, 2, 3]], compute_advantage_batch(r[[0, 2, 3]].numpy(), W, "na"),
                               rtol=1e-6, atol=1e-6)


def test_an_sums_the_scored_channels_and_leaves_unscorable_rows_out():
    r = torch.tensor([[1.0, 0.2, 1.0], [0.0, float("nan"), 1.0], [float("nan")] * 3, [0.0, 0.1, 1.0]])
    s = AdvantageSpec.from_options(weights=tuple(W), mode="an", normalization="trl")
    got = flat(s, r)
    agg = np.array([1.2 + 0.5, 0.0 + 0.5, 0.1 + 0.5])  # w . r over each row's scored channels
    want = compute_advantage_batch(agg[:, None], [1.0], "an", 1e-4, ddof=1)
    np.testing.assert_allclose(got[[0, 1, 3]], want, rtol=1e-6, atol=1e-6)
    assert got[2] == 0


def test_unscored_gate_does_not_pass():
    r = torch.tensor([[1.0, 0.5], [float("nan"), 0.9], [1.0, 0.1], [0.0, 0.7]])
    s = AdvantageSpec(weights=(1.0, 1.0), mode="na", conditioning="zero_fill")
    result = s.advantages(r)
    gated = np.array([0.5, 0.0, 0.1, 0.0])  # row 1's gate is unscored: its conditioned reward is gated to 0
    z = lambda x: compute_advantage_batch(np.asarray(x)[:, None], [1.0], "na")  # noqa: E731
    want = z(gated)
    want[[0, 2, 3]] += z(r[[0, 2, 3], 0])
    np.testing.assert_allclose(result.advantages.numpy(), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(result.conditioned_rewards[:, 1].numpy(), gated.astype(np.float32))
    assert torch.isnan(result.rewards[1, 0])  # the rewards as given


def test_batch_rescale_leaves_unscorable_rows_out():
    r = torch.tensor([[1.0, 0.2], [0.0, 0.4], [float("nan")] * 2, [0.0, 0.1], [1.0, 0.9], [0.0, 0.3]])
    s = AdvantageSpec(weights=(1.0, 1.0), mode="na", batch_rescale=True)
    res = s.advantages(r.view(2, 3, 2))
    unscaled = res.unscaled.reshape(-1).numpy()
    got = res.advantages.reshape(-1).numpy()
    assert got[2] == 0 and unscaled[2] == 0
    keep = [0, 1, 3, 4, 5]
    np.testing.assert_allclose(got[keep], batch_rescale_advantages(unscaled[keep]), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ scored rewards: the paper API's numbers
SETTINGS = [
    dict(mode="na"),
    dict(mode="an"),
    dict(mode="single"),
    dict(mode="na", conditioning="zero_fill"),
    dict(mode="na", conditioning="subgroup", conditioned=(1, 2)),
    dict(mode="an", adv_ddof=1, adv_eps=1e-4, conditioning="zero_fill", conditioned=2, batch_rescale=True),
    dict(mode="na", conditioning="zero_fill", gate=-1, conditioned=(0,), gate_threshold=0.5),
]


def core(r: np.ndarray, kw: dict) -> np.ndarray:
    """The paper API on the same rewards ``(..., m, 3)``."""
    if kw.get("conditioning", "none") != "none":
        r = apply_conditioning(r, gate_idx=kw.get("gate", 0), cond_idx=kw.get("conditioned", 1),
                               impl=kw["conditioning"], threshold=kw.get("gate_threshold"))
    a = compute_advantage_batch(r, W, kw.get("mode", "na"), kw.get("adv_eps", 1e-8), ddof=kw.get("adv_ddof", 0))
    return batch_rescale_advantages(a).reshape(a.shape) if kw.get("batch_rescale") else a


def rewards(seed: int = 7, shape=(2, 3, 4)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r = np.stack([rng.integers(0, 2, shape), -rng.random(shape), rng.integers(0, 2, shape)], -1).astype(float)
    r[0, 0, :, 1] = -0.25  # a constant channel
    return r


@pytest.mark.parametrize("kw", SETTINGS, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_advantages_equal_the_paper_api_numpy_in_numpy_out(kw):
    r = rewards()  # (2, 3, m=4, R=3): any leading batch shape
    res = AdvantageSpec(weights=tuple(W), **kw).advantages(r)
    assert isinstance(res.advantages, np.ndarray) and res.advantages.shape == (2, 3, 4)
    assert isinstance(res.conditioned_rewards, np.ndarray) and res.conditioned_rewards.shape == r.shape
    np.testing.assert_allclose(res.advantages, core(r, kw), rtol=1e-12, atol=1e-12)
    if kw.get("conditioning", "none") != "none":
        cond = apply_conditioning(r, kw.get("gate", 0), kw.get("conditioned", 1), kw["conditioning"],
                                  kw.get("gate_threshold"))
        np.testing.assert_allclose(res.conditioned_rewards, cond, rtol=0, atol=1e-15)
    else:
        np.testing.assert_array_equal(res.conditioned_rewards, r)


@pytest.mark.parametrize("kw", SETTINGS, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_advantages_torch_in_torch_out(kw):
    r = rewards(seed=3)
    spec = AdvantageSpec(weights=tuple(W), **kw)
    res = spec.advantages(torch.from_numpy(r).float())  # float32 in: computed in float64
    assert isinstance(res.advantages, torch.Tensor) and res.advantages.dtype == torch.float64
    assert res.rewards.dtype == torch.float32  # the rewards as given
    np.testing.assert_allclose(res.advantages.numpy(), core(r.astype(np.float32).astype(float), kw),
                               rtol=1e-12, atol=1e-12)
    one = spec.advantages(r[1, 2])  # one group (m, R) -> (m,)
    np.testing.assert_allclose(one.advantages, core(r[1, 2], kw) if not kw.get("batch_rescale") else
                               batch_rescale_advantages(core(r[1, 2], {**kw, "batch_rescale": False})), atol=1e-12)


def test_advantages_refuse_bad_batches():
    spec = AdvantageSpec(weights=tuple(W))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., m, R=3\)"):
        spec.advantages(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="m >= 2"):
        spec.advantages(np.zeros((5, 1, 3)))
    r = rewards()
    r[1, 0, 2, 1] = np.inf
    with pytest.raises(ValueError, match=r"infinite value at \(group, rollout, channel\) \(3, 2, 1\)"):
        spec.advantages(r)


# ------------------------------------------------------------------ issue 21, item 13: a gate that is not 0/1
@pytest.mark.parametrize("gate_values, shown", [([0.5, 0.7, 0.5, 0.7], "0.5, 0.7"), ([0.0, 2.0, 2.0, 0.0], "2")])
def test_a_non_binary_gate_is_refused_naming_the_gate_and_its_values(gate_values, shown):
    r = np.array([[g, float(k), 1.0] for k, g in enumerate(gate_values)])
    spec = AdvantageSpec(weights=tuple(W), conditioning="zero_fill", channel_names=("compliance", "tone", "act"))
    with pytest.raises(ValueError, match=rf"gate 'compliance' \(channel 0\) is not binary.* returned {shown};"
                                         r".*gate_threshold"):
        spec.advantages(r)
    with pytest.raises(ValueError, match=r"gate channel 0 is not binary"):  # unnamed channels: the index
        AdvantageSpec(weights=tuple(W), conditioning="subgroup").advantages(torch.from_numpy(r))
    # before: no error, every rollout failed the gate and the conditioned channel was zeroed silently
    assert not apply_conditioning(r, 0, 1, "zero_fill")[:, 1].any()
    # an explicit threshold takes any gate value: gate >= threshold passes
    passed = AdvantageSpec(weights=tuple(W), conditioning="zero_fill", gate_threshold=0.6).advantages(r)
    np.testing.assert_array_equal(passed.conditioned_rewards[:, 1], np.where(np.array(gate_values) >= 0.6,
                                                                             r[:, 1], 0.0))
    AdvantageSpec(weights=tuple(W)).advantages(r)  # without conditioning the gate is a plain channel


def test_a_binary_gate_with_unscored_values_is_accepted():
    r = torch.tensor([[1.0, 0.5], [float("nan"), 0.9], [0.0, 0.1], [1.0, 0.7]])
    AdvantageSpec(weights=(1.0, 1.0), conditioning="zero_fill").advantages(r)
    r[2, 0] = 0.3
    with pytest.raises(ValueError, match=r"returned 0.3;"):
        AdvantageSpec(weights=(1.0, 1.0), conditioning="zero_fill").advantages(r)


# ------------------------------------------------------------------ validation: once, naming the field
@pytest.mark.parametrize("bad, match", [
    (dict(mode="mean"), "unknown mode 'mean'"),
    (dict(weights="1,1"), "weights must be a sequence"),
    (dict(weights=((1.0, 1.0),)), "weights must be a sequence"),
    (dict(weights=()), "weights is empty"),
    (dict(weights=(1.0, float("nan"))), "weights must be finite"),
    (dict(weights=(0.0, 0.0, 0.0)), r"weights are all 0 \(\[0.0, 0.0, 0.0\]\)"),
    (dict(weights=(0.0, 0.0), mode="an"), "weights are all 0"),
    (dict(adv_ddof=2), "adv_ddof must be 0 or 1"),
    (dict(adv_ddof=True), "adv_ddof must be 0 or 1"),
    (dict(adv_eps=-1.0), "adv_eps must be a finite number >= 0"),
    (dict(batch_rescale="yes"), "batch_rescale must be True or False"),
    (dict(conditioning="gated"), "unknown conditioning 'gated'"),
    (dict(conditioning="zero_fill", weights=(1.0,)), "needs at least 2 reward channels"),
    (dict(conditioning="zero_fill", gate=3), "gate = 3 is out of range for R = 3"),
    (dict(conditioning="zero_fill", conditioned=(0,)), "conditioned .* includes the gate channel gate = 0"),
    (dict(conditioning="zero_fill", conditioned=(1, 1)), "conditioned .* names the same channel twice"),
    (dict(conditioning="zero_fill", conditioned="1"), "conditioned must be an int or a sequence"),
    (dict(conditioned="1"), "conditioned must be an int or a sequence"),
    (dict(gate=1.5), "gate must be an int"),
    (dict(gate_threshold=float("inf")), "gate_threshold must be finite"),
    (dict(gate_threshold="abc"), "gate_threshold must be a finite number or None"),
    (dict(channel_names=("a", "b")), "channel_names must be 3 names"),
])
def test_an_invalid_spec_cannot_be_built(bad, match):
    with pytest.raises(ValueError, match=match):
        AdvantageSpec(**{"weights": tuple(W), **bad})


def test_values_are_normalized_and_the_spec_is_frozen():
    s = AdvantageSpec(weights=[1, 0, np.float32(0.5)], conditioning="subgroup", gate=-3, conditioned=np.array([2, 1]),
                      gate_threshold=np.int64(1), channel_names=["a", "b", "c"], batch_rescale=np.bool_(True))
    assert s.weights == (1.0, 0.0, 0.5) and all(type(w) is float for w in s.weights)
    assert (s.gate, s.conditioned, s.gate_threshold, s.channel_names) == (0, (2, 1), 1.0, ("a", "b", "c"))
    assert s.batch_rescale is True and s.R == 3 and s.names == ("a", "b", "c")
    assert AdvantageSpec(weights=(1.0, 1.0), conditioned=1).conditioned == (1,)  # unused under "none": kept
    assert AdvantageSpec(weights=(0.0, 0.0), mode="single").weights == (0.0, 0.0)  # single ignores the weights
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.mode = "an"
    with pytest.raises(ValueError, match="gate = 5"):
        s.replace(gate=5)  # a copy is checked again
    assert s.replace(mode="an").mode == "an" and s.mode == "na"


def test_normalization_sets_ddof_and_eps():
    assert dict(NORMALIZATIONS) == {"paper": (0, 1e-8), "trl": (1, 1e-4)} and AdvantageSpec.NORMALIZATIONS is NORMALIZATIONS
    trl = AdvantageSpec.from_options(weights=W, normalization="trl")
    assert (trl.adv_ddof, trl.adv_eps, trl.normalization) == (1, 1e-4, "trl")
    assert AdvantageSpec(weights=tuple(W)).normalization == "paper"
    assert AdvantageSpec(weights=tuple(W), adv_ddof=1).normalization is None  # any pair is allowed
    assert AdvantageSpec.from_options(weights=W, normalization="trl", adv_ddof=1) == trl  # agreeing: fine
    with pytest.raises(ValueError, match="normalization='trl' sets adv_ddof = 1, and adv_ddof = 0 was given too"):
        AdvantageSpec.from_options(weights=W, normalization="trl", adv_ddof=0)
    with pytest.raises(ValueError, match="unknown normalization 'verl'"):
        AdvantageSpec.from_options(weights=W, normalization="verl")
    with pytest.raises(ValueError, match=r"unknown advantage setting\(s\) \['threshold'\]"):
        AdvantageSpec.from_options(weights=W, threshold=0.5)
    with pytest.raises(ValueError, match="weights is required"):
        AdvantageSpec.from_options(mode="na")


def test_check_channels_names_both_counts():
    assert AdvantageSpec(weights=tuple(W)).check_channels(3).R == 3
    with pytest.raises(ValueError, match="weights has 3 entries but the reward function has 2 channels"):
        AdvantageSpec(weights=tuple(W)).check_channels(2)


# ------------------------------------------------------------------ metrics
def test_advantage_metrics_of_a_clean_batch_are_reward_metrics():
    r = rewards(seed=5).reshape(-1, 4, 3)
    spec = AdvantageSpec(weights=tuple(W), conditioning="zero_fill", channel_names=("c", "l", "f"))
    res = spec.advantages(r)  # numpy: the metrics take either
    got = advantage_metrics(res, spec)
    adv = torch.from_numpy(res.advantages)
    used = reward_metrics(torch.from_numpy(res.conditioned_rewards), adv, torch.tensor(W), spec.names)
    raw = reward_metrics(torch.from_numpy(r), adv, torch.tensor(W), spec.names)
    for key, value in used.items():  # influence, const_frac, aggregate: on the rewards the estimator used
        want = raw[key] if key.startswith("reward/") and key != "reward/aggregate" else value  # channel means: raw
        assert got[key] == pytest.approx(want, abs=1e-12), key
        if key.startswith(("influence/", "const_frac/", "reward/aggregate")):
            assert got[f"raw/{key}"] == pytest.approx(raw[key], abs=1e-12), key
    assert got["conditioned/reward/l"] == pytest.approx(float(res.conditioned_rewards[..., 1].mean()), abs=1e-12)
    assert got["reward/aggregate_std"] == pytest.approx(float((res.conditioned_rewards @ np.array(W)).std(ddof=1)))
    assert got["influence/l"] != pytest.approx(raw["influence/l"], abs=1e-3)  # the check can fail
    assert got["gate_pass_rate"] == pytest.approx(float((r[..., 0] == 1).mean()))
    assert got["unscored_frac"] == 0 and got["degenerate_frac"] == float((res.unscaled == 0).all(axis=1).mean())


# ------------------------------------------------------------------ our GRPOConfig holds one
def test_grpo_config_builds_its_spec_once():
    from mrgrpo.train import GRPOConfig as OurConfig

    cfg = OurConfig(mode="an", adv_ddof=1, adv_eps=1e-4, conditioning="subgroup", conditioned=(1, 2))
    assert cfg.advantage_spec == AdvantageSpec(weights=cfg.weights, mode="an", adv_ddof=1, adv_eps=1e-4,
                                               conditioning="subgroup", gate=0, conditioned=(1, 2))
    assert cfg.advantage_spec.normalization == "trl"
    assert OurConfig(adv_ddof=1).advantage_spec.normalization is None  # the engines take any pair now
    assert "advantage_spec" not in cfg.to_dict() and cfg.replace(mode="na").advantage_spec.mode == "na"
    with pytest.raises(ValueError, match=r"^GRPOConfig: weights are all 0"):
        OurConfig(weights=(0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match=r"^GRPOConfig: conditioned .* includes the gate channel"):
        OurConfig(conditioning="zero_fill", gate=1, conditioned=(1, 2))


def test_a_gate_that_never_passes_leaves_its_channel_no_influence():
    """Issue 23: with a gate pass rate of 0 the zero-filled channel adds nothing, and the metrics say so."""
    rng = np.random.default_rng(3)
    r = np.stack([np.zeros((5, 4)), rng.normal(size=(5, 4)), rng.integers(0, 2, (5, 4))], -1).astype(float)
    spec = AdvantageSpec(weights=tuple(W), conditioning="zero_fill", channel_names=("gate", "brevity", "fmt"))
    got = advantage_metrics(spec.advantages(r), spec)
    assert got["gate_pass_rate"] == 0
    assert got["influence/brevity"] == 0 and got["const_frac/brevity"] == 1
    assert got["conditioned/reward/brevity"] == 0
    assert abs(got["raw/influence/brevity"]) > 0.05 and got["raw/const_frac/brevity"] == 0  # the raw rewards vary
    assert got["reward/brevity"] == pytest.approx(r[..., 1].mean())


def test_step_metrics_of_our_trainer_describe_the_conditioned_rewards():
    from mrgrpo.core.advantage_diagnostics import step_metrics

    r = torch.from_numpy(rewards(seed=9).reshape(-1, 4, 3))
    names = ("c", "l", "f")
    plain = AdvantageSpec(weights=tuple(W))
    adv = plain.advantages(r).advantages
    assert step_metrics(plain, r, adv, names) == reward_metrics(r, adv, torch.tensor(W), names)  # as before
    spec = plain.replace(conditioning="zero_fill", channel_names=names)
    res = spec.advantages(r)
    got = step_metrics(spec, r, res.advantages, names)
    want = advantage_metrics(res, spec)  # what the engines log: the two trainers agree
    for key in ("influence/l", "const_frac/l", "raw/influence/l", "reward/aggregate", "conditioned/reward/l",
                "reward/l"):
        assert got[key] == pytest.approx(want[key], abs=1e-12), key
