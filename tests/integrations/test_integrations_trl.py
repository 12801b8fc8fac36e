"""``MultiRewardGRPOTrainer``: mrgrpo's advantages inside TRL's GRPOTrainer.

Trains the shipped tiny policy (``data/tiny-math``) on mini-math (correctness, length,
format) for a few steps on CPU. The claims checked:

- TRL's two modes are reproduced step for step (logged loss and reward within 1e-6);
- in every other setting the advantages the loss sees equal ``compute_advantage_batch``
  (after ``apply_conditioning``) on the same rewards;
- ``None`` rewards keep TRL's semantics (step for step against TRL, with unscored rows);
- per-channel metrics reach TRL's logs and equal ``reward_metrics``;
- under ``accelerate launch --num_processes 2`` (gloo) the advantages equal the
  whole-batch estimator, with a group split across the two processes;
- bad settings fail before any model loads; a NaN reward names the function and sample;
  a change of TRL's extension point raises instead of training with TRL's advantages.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from trl import GRPOConfig, GRPOTrainer

from mrgrpo import apply_conditioning, compute_advantage_batch
from mrgrpo.core.advantage import batch_rescale_advantages
from mrgrpo.core.advantage_diagnostics import reward_metrics
from mrgrpo.core.advantage_spec import AdvantageSpec
from mrgrpo.integrations.trl import (ExtensionPointError, MultiRewardGRPOTrainer, advantage_spec_from_trl,
                                     check_trl_version)
from mrgrpo.integrations.trl_inputs import channel_reward_funcs, prompt_dataset
from mrgrpo.lm.models import TINY_MATH_DIR
from mrgrpo.tasks.registry import task_setup

ROOT = Path(__file__).resolve().parents[2]
TINY = str(TINY_MATH_DIR)
W = [1.0, 1.0, 0.5]
M = 4  # completions per prompt
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def task():
    setup = task_setup("mini-math", tokenizer=TINY, n_train=64, n_eval=0, seed=0, use_chat_template=False)
    return setup.reward_fn, prompt_dataset(setup.train_prompts)


def trl_args(tmp_path, agg="sum_then_normalize", steps=2, **kw) -> GRPOConfig:
    base = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=16, num_generations=M,
                max_completion_length=48, temperature=1.0, beta=0.0, learning_rate=1e-3, max_steps=steps,
                logging_steps=1, save_strategy="no", report_to=[], disable_tqdm=True, seed=0, use_cpu=True,
                reward_weights=W, multi_objective_aggregation=agg, dataloader_num_workers=0)
    base.update(kw)
    return GRPOConfig(**base)


class Recorder:
    """Mixin: keep each generation batch's gathered rewards and advantages, and what the loss sees."""

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self.rec_rewards.append(rewards.detach().cpu().clone())
        return rewards

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        self.rec_out.append({k: out[k].detach().cpu().clone() for k in ("prompt_ids", "completion_ids", "advantages")})
        return out

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        self.rec_loss.append({k: inputs[k].detach().cpu().clone()
                              for k in ("prompt_ids", "completion_ids", "advantages")})
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


def recording(cls):
    class Recording(Recorder, cls):
        def __init__(self, *a, **k):
            self.rec_rewards, self.rec_out, self.rec_loss = [], [], []
            super().__init__(*a, **k)

    return Recording


def _keys(rec: dict) -> list[tuple]:
    return [tuple(p.tolist()) + (-1,) + tuple(c.tolist()) for p, c in zip(rec["prompt_ids"], rec["completion_ids"])]


def loss_side_advantages(tr) -> list[tuple[torch.Tensor, np.ndarray]]:
    """Per generation batch: (gathered rewards, the advantages the loss saw, in the rewards' row order)."""
    out = []
    for rewards, gen, seen in zip(tr.rec_rewards, tr.rec_out, tr.rec_loss):
        where: dict[tuple, list[int]] = {}
        for i, k in enumerate(_keys(gen)):
            where.setdefault(k, []).append(i)  # identical completions of one prompt share a key
        adv = np.full(len(gen["advantages"]), np.nan)
        for k, a in zip(_keys(seen), seen["advantages"].tolist()):
            adv[where[k].pop(0)] = a
        assert not np.isnan(adv).any()
        out.append((rewards, adv))
    return out


def train(cls, task, tmp_path, agg="sum_then_normalize", steps=2, funcs=None, **kw):
    reward_fn, ds = task
    tr = recording(cls)(model=TINY, reward_funcs=funcs or channel_reward_funcs(reward_fn),
                        args=trl_args(tmp_path, agg, steps), train_dataset=ds, **kw)
    tr.train()
    return tr, [h for h in tr.state.log_history if "loss" in h]


def engine_advantages(rewards: torch.Tensor, m: int, spec: AdvantageSpec) -> torch.Tensor:
    """The spec's advantages of a flat gathered batch ``(G m, R)``, rows stored group by group."""
    return spec.advantages(rewards.view(-1, m, rewards.shape[-1])).advantages.reshape(-1)


def max_diff(a, b, key):
    assert len(a) == len(b) > 0
    return max(abs(x[key] - y[key]) for x, y in zip(a, b))


# ---------------------------------------------------------------------------------------------
# TRL's own modes, step for step
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("agg,kw", [
    ("sum_then_normalize", dict(mode="an", normalization="trl")),
    ("normalize_then_sum", dict(mode="na", normalization="trl", batch_rescale=True)),
])
def test_reproduces_trl_mode_step_for_step(task, tmp_path, agg, kw, capsys):
    _, theirs = train(GRPOTrainer, task, tmp_path / "trl", agg, steps=4)
    _, ours = train(MultiRewardGRPOTrainer, task, tmp_path / "ours", steps=4, **kw)
    d_loss, d_reward = max_diff(theirs, ours, "loss"), max_diff(theirs, ours, "reward")
    with capsys.disabled():
        print(f"\n[trl equality] {agg}: 4 steps, max |loss diff| {d_loss:.3g}, max |reward diff| {d_reward:.3g}")
    assert d_loss <= 1e-6 and d_reward <= 1e-6
    assert max_diff(theirs, ours, "completions/mean_length") == 0  # same samples, same policy
    assert any(h["loss"] != 0 for h in ours)


# ---------------------------------------------------------------------------------------------
# every other setting: the loss sees mrgrpo's advantages
# ---------------------------------------------------------------------------------------------
SETTINGS = [
    dict(mode="na"),
    dict(mode="an"),
    dict(mode="single"),
    dict(mode="na", conditioning="zero_fill"),
    dict(mode="na", conditioning="subgroup", conditioned=(1, 2)),
    dict(mode="an", normalization="trl", conditioning="zero_fill", conditioned=2, batch_rescale=True),
]


def expected_advantages(rewards: torch.Tensor, kw: dict) -> np.ndarray:
    r = rewards.double().numpy().reshape(-1, M, 3)
    ddof, eps = (1, 1e-4) if kw.get("normalization") == "trl" else (0, 1e-8)
    if kw.get("conditioning", "none") != "none":
        cond = kw.get("conditioned", (1,))
        r = apply_conditioning(r, kw.get("gate", 0), [cond] if isinstance(cond, int) else list(cond), kw["conditioning"])
    a = compute_advantage_batch(r, W, kw.get("mode", "na"), eps, ddof=ddof)
    return (batch_rescale_advantages(a) if kw.get("batch_rescale") else a).reshape(-1)


@pytest.mark.parametrize("kw", SETTINGS, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_loss_sees_compute_advantage_batch(task, tmp_path, kw, monkeypatch):
    theirs = []
    original = GRPOTrainer._generate_and_score_completions

    def spy(self, inputs):  # TRL's own advantages, before the subclass replaces them
        out = original(self, inputs)
        theirs.append(out["advantages"].detach().cpu().clone())
        return out

    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", spy)
    tr, _ = train(MultiRewardGRPOTrainer, task, tmp_path, steps=2, **kw)
    batches = loss_side_advantages(tr)
    assert len(batches) == 2
    for (rewards, adv), trl_adv in zip(batches, theirs):
        want = expected_advantages(rewards, kw)
        np.testing.assert_allclose(adv, want, rtol=1e-5, atol=1e-5)
        assert np.abs(trl_adv.numpy() - want).max() > 1e-3  # TRL's own advantages differ: the check can fail
    # TRL's completions table shows the advantages that were used
    np.testing.assert_allclose(list(tr._logs["advantages"]), want, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# None rewards: TRL's semantics, step for step
# ---------------------------------------------------------------------------------------------
def none_funcs(reward_fn):
    """The task's channels, with TRL's "unscorable" None: every channel for short completions,
    correctness alone when there is no '####'."""
    base = channel_reward_funcs(reward_fn)

    def wrap(k):
        def f(prompts, completions, **kw):
            vals = base[k](prompts, completions, **kw)
            return [None if len(c) < 24 or (k == 0 and "####" not in c) else v for c, v in zip(completions, vals)]

        f.__name__ = base[k].__name__
        return f

    return [wrap(k) for k in range(3)]


@pytest.mark.parametrize("agg,kw", [
    ("sum_then_normalize", dict(mode="an", normalization="trl")),
    ("normalize_then_sum", dict(mode="na", normalization="trl", batch_rescale=True)),
])
def test_none_rewards_keep_trls_semantics(task, tmp_path, agg, kw, capsys):
    funcs = none_funcs(task[0])
    trl_tr, theirs = train(GRPOTrainer, task, tmp_path / "trl", agg, steps=3, funcs=funcs)
    tr, ours = train(MultiRewardGRPOTrainer, task, tmp_path / "ours", steps=3, funcs=funcs, **kw)
    rewards = torch.cat(tr.rec_rewards)
    nan = torch.isnan(rewards)
    assert bool(nan.all(dim=1).any()), "no unscorable completion: the test would be vacuous"
    assert bool((nan.any(dim=1) & ~nan.all(dim=1)).any()), "no partly scored completion"
    d_loss, d_reward = max_diff(theirs, ours, "loss"), max_diff(theirs, ours, "reward")
    assert d_loss <= 1e-6 and d_reward <= 1e-6
    settings = AdvantageSpec.from_options(weights=tuple(W), **kw)
    d_adv, d_as_zero = 0.0, 0.0
    for (r, a_theirs), (_, a_ours) in zip(loss_side_advantages(trl_tr), loss_side_advantages(tr)):
        unscorable = torch.isnan(r).all(dim=1).numpy()
        assert (a_ours[unscorable] == 0).all() and (a_theirs[unscorable] == 0).all()
        d_adv = max(d_adv, float(np.abs(a_ours - a_theirs).max()))
        # the semantics TRL does not have: an unscored reward counted as 0
        as_zero = engine_advantages(torch.nan_to_num(r), M, settings).numpy()
        d_as_zero = max(d_as_zero, float(np.abs(as_zero - a_theirs).max()))
    with capsys.disabled():
        print(f"\n[None rewards] {agg}: 3 steps, max |loss diff| {d_loss:.3g}, max |advantage diff| {d_adv:.3g} "
              f"(None counted as 0 instead: {d_as_zero:.3g})")
    # TRL computes in float32 and its batch or group std can be ~1e-3, so its own rounding
    # (~1e-7) reaches ~1e-4 in the advantages; the alternative semantics miss by far more
    assert d_adv <= 1e-4 and d_as_zero > 1e-2


@pytest.mark.parametrize("kw", SETTINGS, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_engine_advantages_equal_core_on_random_batches(kw):
    rng = np.random.default_rng(7)
    r = np.stack([rng.integers(0, 2, (6, M)), -rng.random((6, M)), rng.integers(0, 2, (6, M))], -1).astype(float)
    r[0, :, 1] = -0.25  # a constant channel
    s = AdvantageSpec.from_options(weights=tuple(W), **kw)
    got = engine_advantages(torch.from_numpy(r.reshape(-1, 3)), M, s).numpy()
    np.testing.assert_allclose(got, expected_advantages(torch.from_numpy(r.reshape(-1, 3)), kw), rtol=1e-12,
                               atol=1e-12)


# ---------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------
def test_per_channel_metrics_reach_trls_logs(task, tmp_path):
    kw = dict(mode="na", conditioning="zero_fill")
    tr, logs = train(MultiRewardGRPOTrainer, task, tmp_path, steps=2, **kw)
    names = ("correctness", "length", "format")
    for (rewards, adv), log in zip(loss_side_advantages(tr), logs):
        r = rewards.reshape(-1, M, 3)
        a = torch.from_numpy(adv).reshape(-1, M)
        used = torch.from_numpy(apply_conditioning(r.double().numpy(), 0, [1], "zero_fill"))
        want, raw = reward_metrics(used, a, torch.tensor(W), names), reward_metrics(r, a, torch.tensor(W), names)
        for name in names:  # influence of the rewards the estimator used; the raw rewards' under raw/
            assert log[f"mrgrpo/influence/{name}"] == pytest.approx(want[f"influence/{name}"], abs=1e-5)
            assert log[f"mrgrpo/raw/influence/{name}"] == pytest.approx(raw[f"influence/{name}"], abs=1e-5)
            assert log[f"mrgrpo/const_frac/{name}"] == pytest.approx(want[f"const_frac/{name}"], abs=1e-12)
            # a channel's mean is logged once, by TRL
            assert log[f"rewards/{name}/mean"] == pytest.approx(float(r[..., names.index(name)].mean()), abs=1e-6)
            assert f"mrgrpo/reward/{name}" not in log
        # TRL's reward / reward_std: the aggregate after conditioning; frac_reward_zero_std is not logged
        agg = (used.reshape(-1, 3) @ torch.tensor(W, dtype=torch.float64))
        assert log["reward"] == pytest.approx(float(agg.mean()), abs=1e-6)
        assert log["reward_std"] == pytest.approx(float(agg.std()), abs=1e-6)
        assert log["mrgrpo/raw/reward/aggregate"] == pytest.approx(float((r.double() @ torch.tensor(W).double()).mean()))
        assert "frac_reward_zero_std" not in log
        assert log["mrgrpo/gate_pass_rate"] == pytest.approx(float((r[..., 0] == 1).double().mean()))
        assert log["mrgrpo/degenerate_frac"] == pytest.approx(float((a == 0).all(dim=1).double().mean()))


# ---------------------------------------------------------------------------------------------
# bad input, NaN rewards, TRL drift
# ---------------------------------------------------------------------------------------------
def _funcs(n):
    def f(prompts, completions, **kw):
        return [0.0] * len(prompts)

    return [f] * n


@pytest.mark.parametrize("n_funcs,weights,kw,match", [
    (3, W, dict(mode="mean"), "mode"),
    (3, W, dict(normalization="verl"), "normalization"),
    (3, W, dict(normalization="trl", adv_ddof=0), "give one of them"),
    (3, W, dict(weights=W), "given twice"),
    (3, [0.0, 0.0, 0.0], {}, "weights are all 0"),
    (3, W, dict(conditioning="zero_fill", gate_threshold="high"), "gate_threshold"),
    (3, W, dict(conditioning="gated"), "conditioning"),
    (1, [1.0], dict(conditioning="zero_fill"), "at least 2 reward channels"),
    (3, W, dict(conditioning="zero_fill", gate=3), "gate"),
    (3, W, dict(conditioning="zero_fill", gate=0, conditioned=(0,)), "gate"),
    (3, W, dict(conditioning="zero_fill", conditioned="1"), "conditioned"),
    (3, [1.0, 1.0], {}, "reward_weights"),
    (3, W, dict(batch_rescale="yes"), "batch_rescale"),
])
def test_bad_settings_fail_before_the_model_loads(tmp_path, n_funcs, weights, kw, match):
    args = trl_args(tmp_path, reward_weights=weights)
    with pytest.raises(ValueError, match=match):  # the model path does not exist: loading would be an OSError
        MultiRewardGRPOTrainer(model=str(tmp_path / "no-such-model"), reward_funcs=_funcs(n_funcs), args=args, **kw)


def test_one_spec_from_trls_args_and_our_options(tmp_path):
    """The weights have one source: args.reward_weights, weights= or a whole advantage_spec."""
    args = trl_args(tmp_path)  # reward_weights=W
    spec = advantage_spec_from_trl(args, 3, mode="an", normalization="trl", conditioning="zero_fill")
    assert spec == AdvantageSpec(weights=tuple(W), mode="an", adv_ddof=1, adv_eps=1e-4, conditioning="zero_fill")
    no_weights = trl_args(tmp_path, reward_weights=None)
    assert advantage_spec_from_trl(no_weights, 2).weights == (1.0, 1.0)  # TRL's default: all 1
    assert advantage_spec_from_trl(no_weights, 3, weights=[2.0, 1.0, 0.0]).weights == (2.0, 1.0, 0.0)
    given = AdvantageSpec(weights=tuple(W), mode="single")
    assert advantage_spec_from_trl(args, 3, given) is given and advantage_spec_from_trl(no_weights, 3, given) is given
    for bad_args, spec_kw, match in [(trl_args(tmp_path, reward_weights=[1.0, 1.0, 1.0]), {}, "differ"),
                                     (args, dict(mode="na"), "not both")]:
        with pytest.raises(ValueError, match=match):
            advantage_spec_from_trl(bad_args, 3, given, **spec_kw)
    with pytest.raises(ValueError, match="advantage_spec.weights has 3 weights for 2 reward functions"):
        advantage_spec_from_trl(no_weights, 2, given)


def test_the_trainer_holds_the_spec_and_writes_trls_weights_from_it(task, tmp_path):
    reward_fn, ds = task
    spec = AdvantageSpec(weights=(2.0, 1.0, 0.5), conditioning="zero_fill")
    tr = MultiRewardGRPOTrainer(model=TINY, reward_funcs=channel_reward_funcs(reward_fn),
                                args=trl_args(tmp_path, reward_weights=None), train_dataset=ds, advantage_spec=spec)
    assert tr.advantage_spec == spec.replace(channel_names=("correctness", "length", "format"))
    assert tr.reward_weights.tolist() == [2.0, 1.0, 0.5]  # TRL's logged "reward" uses the spec's weights


def test_scale_rewards_other_than_group_is_refused(tmp_path):
    with pytest.raises(ValueError, match="scale_rewards"):
        MultiRewardGRPOTrainer(model=str(tmp_path / "no-such-model"), reward_funcs=_funcs(3),
                               args=trl_args(tmp_path, scale_rewards="batch"))


def test_nan_reward_names_the_function_and_sample(task, tmp_path):
    funcs = channel_reward_funcs(task[0])

    def shaky_length(prompts, completions, **kw):
        return [float("nan") if i == 5 else 0.0 for i in range(len(prompts))]

    with pytest.raises(ValueError, match=r"'shaky_length' returned nan for sample 5 \(prompt"):
        train(MultiRewardGRPOTrainer, task, tmp_path, steps=1, funcs=[funcs[0], shaky_length, funcs[2]])


@pytest.mark.parametrize("returns, match", [
    # before: "too many dimensions 'str'" from TRL's torch.tensor
    (lambda n: ["1.5" if i == 5 else 0.0 for i in range(n)],
     r"'shaky_length' returned '1.5' \(a str\) for sample 5 \(prompt .+, completion .+\); rewards must be numbers"),
    # before: "'float' object is not iterable"
    (lambda n: 0.5, r"'shaky_length' returned a single float \(0\.5\) for sample 0 \(prompt .+, completion .+\); "
                    r"return a list of 16 rewards"),
    # before: "rewards hold an infinite value at (group, rollout, channel) (1, 1, 1)": TRL's float32 made it inf
    (lambda n: [1e308 if i == 5 else 0.0 for i in range(n)],
     r"'shaky_length' returned 1e\+308 for sample 5 \(prompt .+, completion .+\); TRL keeps rewards in float32"),
])
def test_a_reward_trl_cannot_hold_names_the_function_and_sample(task, tmp_path, returns, match):
    funcs = channel_reward_funcs(task[0])

    def shaky_length(prompts, completions, **kw):
        return returns(len(prompts))

    with pytest.raises(ValueError, match=match):
        train(MultiRewardGRPOTrainer, task, tmp_path, steps=1, funcs=[funcs[0], shaky_length, funcs[2]])


def test_changed_extension_point_signature_fails_at_construction(tmp_path, monkeypatch):
    def renamed(self, inputs, prompts, completions):  # a TRL release with another signature
        raise AssertionError("never called")

    monkeypatch.setattr(GRPOTrainer, "_calculate_rewards", renamed)
    with pytest.raises(ExtensionPointError, match="_calculate_rewards"):
        MultiRewardGRPOTrainer(model=str(tmp_path / "no-such-model"), reward_funcs=_funcs(3), args=trl_args(tmp_path))


@pytest.mark.parametrize("drift", ["rewards_not_captured", "no_advantages_key"])
def test_changed_extension_point_behaviour_fails_loudly(task, tmp_path, monkeypatch, drift):
    original = GRPOTrainer._generate_and_score_completions

    def drifted(self, inputs):
        if drift == "rewards_not_captured":  # TRL computing rewards some other way
            calc = self._calculate_rewards
            self._calculate_rewards = lambda *a: GRPOTrainer._calculate_rewards(self, *a)
            try:
                return original(self, inputs)
            finally:
                self._calculate_rewards = calc
        out = original(self, inputs)
        out["advantage"] = out.pop("advantages")
        return out

    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", drifted)
    with pytest.raises(ExtensionPointError, match="tested against trl"):
        train(MultiRewardGRPOTrainer, task, tmp_path, steps=1)


def test_untested_trl_version_warns():
    assert check_trl_version()  # the installed TRL is a tested one
    with pytest.warns(UserWarning, match="tested against trl"):
        assert not check_trl_version("1.17.0")


# ---------------------------------------------------------------------------------------------
# two processes (accelerate, gloo)
# ---------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_equal_the_whole_batch_estimator(tmp_path, capsys):
    """The README's command, from the shipped accelerate config, gives the single-process advantages."""
    import yaml

    from mrgrpo.integrations.trl_cli import accelerate_config

    setup = task_setup("mini-math", tokenizer=TINY, n_train=32, n_eval=0, seed=0, use_chat_template=False)
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps(item) + "\n" for item in setup.train_prompts))
    worker = ROOT / "tests" / "integrations_trl_worker.py"
    settings = dict(mode="na", conditioning="zero_fill", gate=0, conditioned=[1])
    config = dict(model_name_or_path="tiny-math", dataset_name=str(data), output_dir=str(tmp_path / "run"),
                  reward_funcs=[f"{worker}:{name}" for name in ("correctness", "length", "format")],
                  reward_weights=W, per_device_train_batch_size=6, num_generations=4, max_completion_length=40,
                  temperature=1.0, beta=0.0, learning_rate=1e-3, max_steps=1, logging_steps=1, save_strategy="no",
                  report_to=[], disable_tqdm=True, seed=0, use_cpu=True, dataloader_num_workers=0, **settings)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    accelerate = Path(sys.executable).with_name("accelerate")
    shipped = accelerate_config("cpu_2proc")
    assert shipped.is_relative_to(ROOT / "mrgrpo")  # package data, not a file of the checkout only
    cmd = [str(accelerate), "launch", "--config_file", str(shipped), "--main_process_port", str(_free_port()),
           "-m", "mrgrpo.integrations.trl", "--config", str(tmp_path / "run.yaml")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / "run" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [x["world"] for x in ranks] == [2, 2]
    assert all(x["settings"] == settings and x["spec_conditioning"] == "zero_fill" for x in ranks)
    gathered = np.array(ranks[0]["gathered"])
    np.testing.assert_array_equal(gathered, np.array(ranks[1]["gathered"]))
    local = [np.array(x["local_rewards"]) for x in ranks]
    # rank 0's rows, then rank 1's (TRL holds rewards in float32)
    np.testing.assert_array_equal(gathered, np.concatenate(local).astype(np.float32))
    n_local, m = len(local[0]), ranks[0]["m"]
    assert n_local % m != 0  # a group spans both processes
    split = (n_local // m) * m
    assert not np.isnan(gathered).any()
    adv = np.concatenate([x["advantages"] for x in ranks])
    kw = ranks[0]["settings"]
    r = apply_conditioning(gathered.reshape(-1, m, 3), kw["gate"], kw["conditioned"], kw["conditioning"])
    want = compute_advantage_batch(r, W, kw["mode"]).reshape(-1)
    single = engine_advantages(torch.from_numpy(gathered).float(), m,
                               AdvantageSpec.from_options(weights=tuple(W), **kw)).numpy()
    d = float(np.abs(adv - single).max())
    with capsys.disabled():
        print(f"\n[2 processes] {len(adv)} completions, a group split at row {n_local} (group rows "
              f"{split}..{split + m - 1}); max |2-process - single-process| = {d:.3g}")
    np.testing.assert_allclose(adv, want, rtol=1e-5, atol=1e-5)
    assert d <= 1e-6
    for x in ranks:  # what each process's loss saw is its slice (shuffled)
        np.testing.assert_allclose(np.sort(x["loss_advantages"]), np.sort(x["advantages"]), atol=0)


@pytest.mark.parametrize("path", sorted((ROOT / "mrgrpo" / "assets" / "accelerate").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_accelerate_configs_load(path):
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(path))
    assert cfg.num_processes >= 1 and cfg.compute_environment.value == "LOCAL_MACHINE"
    if path.name.startswith("gpu"):
        assert cfg.mixed_precision == "bf16"
