"""mrgrpo's estimators inside verl (run in the verl environment, ``.venv-verl``; see the Makefile).

Every check goes through verl itself: its registry lookup ``get_adv_estimator_fn``, its
config objects (``AlgoConfig``, hydra / OmegaConf), its ``DataProto`` and its trainer's
``compute_advantage``; the expected values come from :func:`mrgrpo.compute_advantage_batch`
and :func:`mrgrpo.apply_conditioning` (NumPy) on the same rewards.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from verl import DataProto
from verl.trainer.config import AlgoConfig
from verl.trainer.ppo import core_algos, ray_trainer

import mrgrpo.integrations.verl as mv
from mrgrpo import apply_conditioning, compute_advantage_batch
from mrgrpo.core.advantage import batch_rescale_advantages

ROOT = Path(__file__).resolve().parents[2]
KEYS = ["correctness", "length", "format"]
W = [1.0, 1.0, 0.5]


def make_batch(G: int = 6, m: int = 4, seed: int = 0, T: int = 7):
    """Rewards ``(G, m, 3)`` (binary gate, continuous length, binary format), rows shuffled over groups."""
    rng = np.random.default_rng(seed)
    r = np.stack([rng.integers(0, 2, (G, m)).astype(float), -rng.random((G, m)),
                  rng.integers(0, 2, (G, m)).astype(float)], axis=-1)
    r[0, :, 0] = 1.0  # a group whose gate is constant
    r[1, :, 2] = 0.0  # a constant channel
    order = rng.permutation(G * m)  # verl's rows need not be stored group by group
    flat = r.reshape(G * m, 3)[order]
    uid = np.array([f"u{g}" for g in np.repeat(np.arange(G), m)[order]], dtype=object)
    lengths = rng.integers(1, T + 1, G * m)
    mask = (torch.arange(T)[None, :] < torch.from_numpy(lengths)[:, None]).float()
    ntb = {k: flat[:, i].astype(np.float32) for i, k in enumerate(KEYS)}
    ntb["uid"] = uid
    return r, order, uid, mask, ntb


def expected(r, order, mode, normalization="paper", batch_rescale=False, conditioning="none", gate=0, cond=(1,)):
    """Per-row advantages in verl's (shuffled) row order, from mrgrpo's NumPy estimator."""
    ddof, eps = (0, 1e-8) if normalization == "paper" else (1, 1e-4)
    rc = r if conditioning == "none" else apply_conditioning(r, gate, list(cond), conditioning)
    a = compute_advantage_batch(rc, W, mode, eps, ddof=ddof)
    if batch_rescale:
        a = batch_rescale_advantages(a)
    return a.reshape(-1)[order]


def algo_config(**mrgrpo_opts):
    return OmegaConf.create({"adv_estimator": "mrgrpo_na", "norm_adv_by_std_in_grpo": True,
                             "gdpo_reward_keys": KEYS, "gdpo_reward_weights": W, "mrgrpo": mrgrpo_opts})


def test_registered_in_verls_registry():
    for name, fn in mv.ESTIMATORS.items():
        assert core_algos.get_adv_estimator_fn(name) is fn
    mv.register()  # idempotent: registering the same functions again is fine


CASES = [
    ("na", {}),
    ("an", {}),
    ("single", {}),
    ("na", {"normalization": "trl"}),
    ("an", {"normalization": "trl"}),
    ("na", {"normalization": "trl", "batch_rescale": True}),
    ("an", {"adv_ddof": 1, "adv_eps": 1e-4}),
    ("na", {"conditioning": "zero_fill", "gate": "correctness", "conditioned": ["length"]}),
    ("na", {"conditioning": "subgroup", "gate": 0, "conditioned": [1, 2]}),
    ("an", {"conditioning": "zero_fill", "gate": 0, "conditioned": 2}),
]


@pytest.mark.parametrize("mode,opts", CASES)
def test_estimator_equals_compute_advantage_batch(mode, opts):
    r, order, uid, mask, ntb = make_batch()
    fn = core_algos.get_adv_estimator_fn(f"mrgrpo_{mode}")
    adv, ret = fn(token_level_rewards=torch.zeros_like(mask), response_mask=mask, index=uid,
                  config=algo_config(**opts), non_tensor_batch=ntb, batch=None)
    gate, cond = opts.get("gate", 0), opts.get("conditioned", [1])
    gate = KEYS.index(gate) if isinstance(gate, str) else gate
    cond = [cond] if isinstance(cond, int) else [KEYS.index(c) if isinstance(c, str) else c for c in cond]
    trl = opts.get("normalization") == "trl" or opts.get("adv_ddof") == 1
    want = expected(r, order, mode, "trl" if trl else "paper", opts.get("batch_rescale", False),
                    opts.get("conditioning", "none"), gate, cond)
    assert adv.shape == mask.shape and adv.dtype == torch.float32
    np.testing.assert_allclose(adv.numpy(), (torch.from_numpy(want).float()[:, None] * mask).numpy(),
                               rtol=1e-5, atol=1e-6)
    assert torch.equal(adv, ret)
    assert bool((adv[mask == 0] == 0).all())  # nothing outside the response


def test_conventions_differ_so_the_check_can_fail():
    r, order, uid, mask, ntb = make_batch()
    fn = core_algos.get_adv_estimator_fn("mrgrpo_single")  # the binary gate channel alone: std >= 0.43
    paper, _ = fn(torch.zeros_like(mask), mask, uid, config=algo_config(), non_tensor_batch=ntb)
    trl, _ = fn(torch.zeros_like(mask), mask, uid, config=algo_config(normalization="trl"), non_tensor_batch=ntb)
    nz = paper[:, 0].abs() > 0
    assert int(nz.sum()) >= 8
    # m = 4: ddof alone changes every advantage by sqrt(4/3); eps 1e-4 vs 1e-8 moves it < 3e-4
    np.testing.assert_allclose((paper[nz, 0] / trl[nz, 0]).numpy(), np.sqrt(4 / 3), rtol=3e-4)


def test_groups_of_different_sizes_and_a_singleton():
    rng = np.random.default_rng(3)
    sizes = [3, 5, 1]
    rows = sum(sizes)
    r = rng.random((rows, 3))
    uid = np.array(sum(([f"g{i}"] * s for i, s in enumerate(sizes)), []), dtype=object)
    mask = torch.ones(rows, 2)
    ntb = {k: r[:, i] for i, k in enumerate(KEYS)}
    adv, _ = core_algos.get_adv_estimator_fn("mrgrpo_an")(torch.zeros_like(mask), mask, uid,
                                                         config=algo_config(), non_tensor_batch=ntb)
    want = np.concatenate([compute_advantage_batch(r[:3], W, "an"), compute_advantage_batch(r[3:8], W, "an"), [0.0]])
    np.testing.assert_allclose(adv[:, 0].numpy(), want, rtol=1e-5, atol=1e-6)


def test_a_singleton_stays_out_of_the_batch_rescale():
    rng = np.random.default_rng(4)
    r = rng.random((9, 3))
    uid = np.array(["a"] * 4 + ["b"] * 4 + ["c"], dtype=object)
    mask = torch.ones(9, 2)
    ntb = {k: r[:, i] for i, k in enumerate(KEYS)}
    adv, _ = core_algos.get_adv_estimator_fn("mrgrpo_na")(torch.zeros_like(mask), mask, uid, non_tensor_batch=ntb,
                                                         config=algo_config(batch_rescale=True))
    want = batch_rescale_advantages(compute_advantage_batch(r[:8].reshape(2, 4, 3), W, "na")).reshape(-1)
    np.testing.assert_allclose(adv[:, 0].numpy(), np.append(want, 0.0), rtol=1e-5, atol=1e-6)


def test_none_reward_is_left_out_of_its_channels_baseline():
    r, order, uid, mask, ntb = make_batch(G=2, m=4)
    length = ntb["length"].astype(object)
    j = int(np.flatnonzero(uid == "u1")[0])
    length[j] = None
    ntb["length"] = length
    adv, _ = core_algos.get_adv_estimator_fn("mrgrpo_na")(torch.zeros_like(mask), mask, uid,
                                                         config=algo_config(), non_tensor_batch=ntb)
    rows = np.flatnonzero(uid == "u1")
    others = rows[rows != j]
    flat = np.stack([ntb[k].astype(float) if k != "length" else np.array([np.nan if v is None else v for v in length])
                     for k in KEYS], axis=1)
    z = lambda x: compute_advantage_batch(x[:, None], [1.0], "na")  # noqa: E731  one channel standardized
    want = W[0] * z(flat[rows, 0]) + W[2] * z(flat[rows, 2])
    want[rows != j] += W[1] * z(flat[others, 1])
    got = adv[rows, 0].numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_works_with_verls_own_algo_config():
    r, order, uid, mask, ntb = make_batch()
    cfg = AlgoConfig(adv_estimator="mrgrpo_na", gdpo_reward_keys=KEYS, gdpo_reward_weights=W)
    adv, _ = core_algos.get_adv_estimator_fn("mrgrpo_na")(torch.zeros_like(mask), mask, uid, config=cfg,
                                                         non_tensor_batch=ntb)
    np.testing.assert_allclose(adv[:, 0].numpy(), (expected(r, order, "na") * mask[:, 0].numpy()),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("change,match", [
    ({"gdpo_reward_keys": None}, "gdpo_reward_keys"),
    ({"gdpo_reward_weights": [1.0, 1.0]}, "weights"),
    ({"mrgrpo": {"normalization": "verl"}}, "normalization"),
    ({"mrgrpo": {"convention": "paper"}}, r"unknown option\(s\) \['convention'\]; the options are normalization"),
    ({"mrgrpo": {"normalization": "trl", "adv_eps": 1e-6}}, "give one of them"),
    ({"gdpo_reward_weights": [0.0, 0.0, 0.0]}, "mrgrpo_na: weights are all 0"),
    ({"mrgrpo": {"conditioning": "zero_fill", "gate": "accuracy"}}, "gate"),
    ({"mrgrpo": {"conditioning": "zero_fill", "gate": 0, "conditioned": [0]}}, "gate"),
    ({"mrgrpo": {"batch_rescal": True}}, "unknown option"),
    ({"norm_adv_by_std_in_grpo": False}, "norm_adv_by_std_in_grpo"),
])
def test_bad_config_is_a_clear_error(change, match):
    r, order, uid, mask, ntb = make_batch()
    cfg = OmegaConf.to_container(algo_config())
    cfg.update(change)
    with pytest.raises(ValueError, match=match):
        core_algos.get_adv_estimator_fn("mrgrpo_na")(torch.zeros_like(mask), mask, uid, config=OmegaConf.create(cfg),
                                                    non_tensor_batch=ntb,
                                                    norm_adv_by_std_in_grpo=cfg["norm_adv_by_std_in_grpo"])


def test_missing_channel_rewards_are_a_clear_error():
    r, order, uid, mask, ntb = make_batch()
    fn = core_algos.get_adv_estimator_fn("mrgrpo_na")
    with pytest.raises(ValueError, match="install"):
        fn(torch.zeros_like(mask), mask, uid, config=algo_config(), non_tensor_batch=None)
    del ntb["format"]
    with pytest.raises(ValueError, match="'format'"):
        fn(torch.zeros_like(mask), mask, uid, config=algo_config(), non_tensor_batch=ntb)


class initialize_example:
    """Compose ``configs/verl/mrgrpo_grpo.yaml`` with verl's defaults (a context manager yielding it)."""

    def __enter__(self):
        from hydra import compose, initialize_config_dir

        self._ctx = initialize_config_dir(config_dir=str(ROOT / "configs" / "verl"), version_base=None)
        self._ctx.__enter__()
        return compose(config_name="mrgrpo_grpo")

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def _data_proto(mask, ntb):
    bs, T = mask.shape
    return DataProto.from_dict(tensors={"token_level_rewards": torch.zeros(bs, T), "response_mask": mask},
                               non_tensors=ntb)


def test_verls_trainer_step_needs_the_patch(monkeypatch):
    """verl 0.9.1's compute_advantage forwards non_tensor_batch only to gdpo; install() fixes that."""
    from verl.trainer.ppo.v1 import utils as v1_utils

    monkeypatch.setattr(ray_trainer, "compute_advantage", ray_trainer.compute_advantage)  # undone after the test
    monkeypatch.setattr(v1_utils, "compute_advantage", v1_utils.compute_advantage)
    r, order, uid, mask, ntb = make_batch()
    if not getattr(ray_trainer.compute_advantage, "mrgrpo_forwarding", False):
        with pytest.raises(ValueError, match="forwards non_tensor_batch only"):
            ray_trainer.compute_advantage(_data_proto(mask, dict(ntb)), adv_estimator="mrgrpo_na",
                                          config=algo_config())
    mv.install()
    out = ray_trainer.compute_advantage(_data_proto(mask, dict(ntb)), adv_estimator="mrgrpo_na",
                                        norm_adv_by_std_in_grpo=True, config=algo_config(conditioning="zero_fill"))
    want = expected(r, order, "na", conditioning="zero_fill")
    np.testing.assert_allclose(out.batch["advantages"][:, 0].numpy(), want * mask[:, 0].numpy(), rtol=1e-5, atol=1e-6)
    assert v1_utils.compute_advantage.mrgrpo_forwarding  # the v1 trainer's reference is wrapped too
    # other estimators still go through verl's own code, unchanged
    data = _data_proto(mask, dict(ntb))
    data.batch["token_level_rewards"][:, 0] = torch.from_numpy(r.reshape(-1, 3)[order, 0]).float()
    grpo = ray_trainer.compute_advantage(data, adv_estimator="grpo_vectorized", config=algo_config())
    direct, _ = core_algos.compute_grpo_vectorized_outcome_advantage(data.batch["token_level_rewards"], mask, uid)
    assert torch.equal(grpo.batch["advantages"], direct)


def test_plugin_loads_through_verls_hook():
    env = {**os.environ, "VERL_USE_EXTERNAL_MODULES": "mrgrpo.integrations.verl_plugin", "OMP_NUM_THREADS": "1"}
    code = ("import verl\nfrom verl.trainer.ppo import core_algos, ray_trainer\n"
            "assert core_algos.get_adv_estimator_fn('mrgrpo_an').__name__ == 'compute_mrgrpo_an_outcome_advantage'\n"
            "assert ray_trainer.compute_advantage.mrgrpo_forwarding\nprint('plugin ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "plugin ok" in proc.stdout


def _leaves(cfg, prefix=""):
    for key, value in cfg.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _leaves(value, path + ".")
        else:
            yield path


def test_example_config_composes_with_verls_defaults():
    from hydra import compose, initialize_config_module

    example = ROOT / "configs" / "verl" / "mrgrpo_grpo.yaml"
    with initialize_example() as composed:
        cfg = composed
    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        defaults = compose(config_name="ppo_trainer")
    algo = cfg.algorithm
    assert algo.adv_estimator in mv.ESTIMATORS and cfg.trainer.use_v1 is False
    keys, spec = mv.spec_from_config(algo.adv_estimator.removeprefix("mrgrpo_"), algo)
    assert keys == list(algo.gdpo_reward_keys) and spec.conditioning == "zero_fill"
    assert (spec.gate, spec.conditioned, spec.channel_names, spec.normalization) == (0, (1,), tuple(keys), "paper")
    # every key the example sets, except mrgrpo's own options, is one of verl's
    ours = OmegaConf.to_container(OmegaConf.load(example))
    ours.pop("defaults"), ours.pop("hydra")
    known = set(_leaves(OmegaConf.to_container(defaults)))
    invented = [k for k in _leaves(ours) if k not in known and not k.startswith("algorithm.mrgrpo.")
                and k not in ("algorithm.gdpo_reward_keys", "algorithm.gdpo_reward_weights")]
    assert not invented, f"keys verl does not have: {invented}"


def test_example_reward_function_feeds_the_estimator():
    import importlib.util

    path = ROOT / "configs" / "verl" / "mini_math_reward.py"
    spec = importlib.util.spec_from_file_location("mini_math_reward", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    answers = [" 2 + 3 = 5. #### 5", " 2 + 3 = 6. #### 6", "five", " #### 5"]
    scores = [module.compute_score("gsm8k", a, "5") for a in answers]
    assert [s["correctness"] for s in scores] == [1.0, 0.0, 0.0, 1.0]
    assert all(0 <= s["length_bonus"] <= 1 for s in scores)
    with initialize_example() as cfg:
        keys = list(cfg.algorithm.gdpo_reward_keys)
    ntb = {k: np.array([s[k] for s in scores]) for k in keys}
    uid = np.array(["p"] * 4, dtype=object)
    mask = torch.ones(4, 3)
    adv, _ = core_algos.get_adv_estimator_fn(cfg.algorithm.adv_estimator)(
        torch.zeros_like(mask), mask, uid, config=cfg.algorithm, non_tensor_batch=ntb)
    r = np.stack([ntb[k] for k in keys], axis=1)
    want = compute_advantage_batch(apply_conditioning(r, 0, [1], "zero_fill"), list(cfg.algorithm.gdpo_reward_weights))
    np.testing.assert_allclose(adv[:, 0].numpy(), want, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# verl's own gdpo: the row of mrgrpo.analysis.engine_conventions, checked on verl's code
# ---------------------------------------------------------------------------------------------
def _gdpo(mask, uid, ntb):
    """verl 0.9.1's gdpo estimator on per-channel rewards; its per-row advantage (one value per response)."""
    bs, T = mask.shape
    batch = {"prompts": torch.zeros(bs, 2), "attention_mask": torch.cat([torch.ones(bs, 2), mask], 1).long()}
    adv, _ = core_algos.get_adv_estimator_fn("gdpo")(torch.zeros_like(mask), mask, uid, config=algo_config(),
                                                     non_tensor_batch=ntb, batch=batch)
    return adv


def test_verls_gdpo_is_the_recorded_convention():
    from mrgrpo.analysis.engine_conventions import ENGINE_CONVENTIONS, engine_na_advantages

    row = ENGINE_CONVENTIONS["verl"]
    assert (row.ddof, row.eps, row.after_sum) == (1, 1e-6, "whiten")
    r, order, uid, mask, ntb = make_batch(G=6, m=4, T=7)
    lengths = mask.sum(1).numpy()  # verl reads each response's reward at its last token
    adv = _gdpo(mask, uid, ntb)
    got, len_grouped = np.zeros(r.shape[:2]), np.zeros(r.shape[:2])
    for i, j in enumerate(order):  # verl's row i is rollout j of the (G, m) batch
        g, s = divmod(int(j), r.shape[1])
        got[g, s], len_grouped[g, s] = adv[i, int(lengths[i]) - 1], lengths[i]
    want = engine_na_advantages(r, W, "verl", lengths=len_grouped)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # the check can fail: ignoring the lengths, or the paper's convention, gives other advantages
    for other in (engine_na_advantages(r, W, "verl"), engine_na_advantages(r, W, "mrgrpo")):
        assert np.abs(other - want).max() > 1e-2


def test_a_none_reward_reaches_every_advantage_in_verls_gdpo():
    r, order, uid, mask, ntb = make_batch(G=3, m=4)
    length = ntb["length"].astype(object)
    length[0] = None
    ntb["length"] = length
    adv = _gdpo(mask, uid, ntb)
    assert bool(torch.isnan(adv[mask.bool()]).all())  # one None: the whole batch is NaN


def test_per_channel_metrics_reach_verls_data_metrics(monkeypatch):
    """Issue 23: like gdpo's gdpo/<key>/*, the mrgrpo estimators log per-channel metrics, on the rewards they used."""
    from verl.trainer.ppo.v1 import utils as v1_utils

    monkeypatch.setattr(ray_trainer, "compute_advantage", ray_trainer.compute_advantage)
    monkeypatch.setattr(ray_trainer, "compute_data_metrics", ray_trainer.compute_data_metrics)
    monkeypatch.setattr(v1_utils, "compute_advantage", v1_utils.compute_advantage)
    mv.install()
    assert ray_trainer.compute_data_metrics.mrgrpo_metrics
    r, order, uid, mask, ntb = make_batch()
    r[2, :, 0] = 0.0  # a group whose gate never passes: its zero-filled length is constant there
    ntb["correctness"] = r.reshape(-1, 3)[order, 0].astype(np.float32)
    out = ray_trainer.compute_advantage(_data_proto(mask, dict(ntb)), adv_estimator="mrgrpo_na",
                                        norm_adv_by_std_in_grpo=True, config=algo_config(conditioning="zero_fill"))
    logged = mv._with_our_metrics(lambda batch, use_critic=True: {"critic/x": 1.0})(out, use_critic=False)
    assert logged["critic/x"] == 1.0 and mv.METRICS_KEY not in out.meta_info  # read once
    flat = r.reshape(-1, 3)
    for k, key in enumerate(KEYS):
        assert logged[f"mrgrpo/{key}/mean"] == pytest.approx(flat[:, k].mean(), abs=1e-6)
        assert logged[f"mrgrpo/{key}/max"] == pytest.approx(flat[:, k].max(), abs=1e-6)
    rc = apply_conditioning(r, 0, [1], "zero_fill")
    a = expected(r, order, "na", conditioning="zero_fill")[np.argsort(order)].reshape(r.shape[:2])
    z = (rc - rc.mean(1, keepdims=True)) / (rc.std(1, keepdims=True) + 1e-8)
    infl = (z * (a - a.mean(1, keepdims=True))[..., None]).mean(1).mean(0)
    zr = (r - r.mean(1, keepdims=True)) / (r.std(1, keepdims=True) + 1e-8)
    raw = (zr * (a - a.mean(1, keepdims=True))[..., None]).mean(1).mean(0)
    for k, key in enumerate(KEYS):
        assert logged[f"mrgrpo/influence/{key}"] == pytest.approx(infl[k], abs=1e-5)
        assert logged[f"mrgrpo/raw/influence/{key}"] == pytest.approx(raw[k], abs=1e-5)
    assert abs(infl[1] - raw[1]) > 1e-3  # conditioning changed the length channel's influence: the check can fail
    assert logged["mrgrpo/const_frac/length"] == pytest.approx(float((rc[..., 1].std(1) == 0).mean()))
    assert logged["mrgrpo/gate_pass_rate"] == pytest.approx(float((r[..., 0] == 1).mean()))
    assert logged["mrgrpo/degenerate_frac"] == pytest.approx(float((a == 0).all(1).mean()))


def test_a_plugin_that_fails_to_import_says_so_at_once():
    """verl logs a failed plugin at DEBUG only; ours warns, naming the error, when verl loads it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("VERL_USE_EXTERNAL_MODULES", None)
    code = ("import sys\nsys.modules['mrgrpo.integrations.verl'] = None  # a broken install\n"
            "import verl\nfrom verl.trainer.ppo import core_algos\n"
            "print('registered' if 'mrgrpo_na' in core_algos.ADV_ESTIMATOR_REGISTRY else 'not registered')\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "not registered" in proc.stdout
    assert "mrgrpo's verl plugin failed to load (ModuleNotFoundError" in proc.stderr, proc.stderr[-2000:]
    assert "NOT registered" in proc.stderr
