"""The engines' shared estimator and task adapters, without a model.

:mod:`mrgrpo.integrations.estimator` (TRL's ``None`` = unscored, conditioning with unscored
rewards, the settings of an engine run from our ``GRPOConfig``) and
:mod:`mrgrpo.integrations.trl_inputs` (an mrgrpo task as TRL reward functions and dataset).
The trainer itself is tested in ``test_integrations_trl.py``.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from mrgrpo import compute_advantage_batch
from mrgrpo.integrations.estimator import AdvantageSettings, engine_advantages, settings_kwargs
from mrgrpo.integrations.trl_inputs import channel_reward_funcs, prompt_dataset
from mrgrpo.lm.models import TINY_MATH_DIR
from mrgrpo.tasks.registry import task_setup

W = [1.0, 1.0, 0.5]


@pytest.fixture(scope="module")
def task():
    setup = task_setup("mini-math", tokenizer=str(TINY_MATH_DIR), n_train=8, n_eval=0, seed=0,
                       use_chat_template=False)
    return setup.reward_fn, prompt_dataset(setup.train_prompts)


def test_unscored_reward_is_left_out_of_its_channel_baseline():
    r = torch.tensor([[1.0, 0.2, 1.0], [0.0, float("nan"), 1.0], [1.0, 0.6, 0.0], [0.0, 0.1, 1.0]])
    s = AdvantageSettings(weights=tuple(W), mode="na")
    got = engine_advantages(r, 4, s).advantages.reshape(-1).double().numpy()
    z = lambda x: compute_advantage_batch(np.asarray(x)[:, None], [1.0], "na")  # noqa: E731
    want = W[0] * z(r[:, 0]) + W[2] * z(r[:, 2])
    want[[0, 2, 3]] += W[1] * z(r[[0, 2, 3], 1])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    r[1] = float("nan")  # unscorable: advantage 0, out of every baseline
    got = engine_advantages(r, 4, s).advantages.reshape(-1).double().numpy()
    assert got[1] == 0
    np.testing.assert_allclose(got[[0, 2, 3]], compute_advantage_batch(r[[0, 2, 3]].numpy(), W, "na"),
                               rtol=1e-6, atol=1e-6)


def test_an_sums_the_scored_channels_and_leaves_unscorable_rows_out():
    r = torch.tensor([[1.0, 0.2, 1.0], [0.0, float("nan"), 1.0], [float("nan")] * 3, [0.0, 0.1, 1.0]])
    s = AdvantageSettings(weights=tuple(W), mode="an", convention="trl")
    got = engine_advantages(r, 4, s).advantages.reshape(-1).double().numpy()
    agg = np.array([1.2 + 0.5, 0.0 + 0.5, 0.1 + 0.5])  # w . r over each row's scored channels
    want = compute_advantage_batch(agg[:, None], [1.0], "an", 1e-4, ddof=1)
    np.testing.assert_allclose(got[[0, 1, 3]], want, rtol=1e-6, atol=1e-6)
    assert got[2] == 0


def test_unscored_gate_does_not_pass():
    r = torch.tensor([[1.0, 0.5], [float("nan"), 0.9], [1.0, 0.1], [0.0, 0.7]])
    s = AdvantageSettings(weights=(1.0, 1.0), mode="na", conditioning="zero_fill")
    got = engine_advantages(r, 4, s).advantages.reshape(-1).double().numpy()
    gated = np.array([0.5, 0.0, 0.1, 0.0])  # row 1's gate is unscored: its conditioned reward is gated to 0
    z = lambda x: compute_advantage_batch(np.asarray(x)[:, None], [1.0], "na")  # noqa: E731
    want = z(gated)
    want[[0, 2, 3]] += z(r[[0, 2, 3], 0])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_estimator_settings_from_our_grpo_config():
    from mrgrpo.train import GRPOConfig as OurConfig

    cfg = OurConfig(mode="an", adv_ddof=1, adv_eps=1e-4, conditioning="subgroup", cond_idx=(1, 2))
    kw = settings_kwargs(cfg)
    assert kw == dict(mode="an", convention="trl", batch_rescale=False, conditioning="subgroup", gate=0,
                      conditioned=(1, 2), threshold=None)
    assert AdvantageSettings(weights=cfg.weights, **kw).ddof == 1
    with pytest.raises(ValueError, match="adv_ddof = 1, adv_eps = 1e-08"):
        settings_kwargs(OurConfig(adv_ddof=1))


def test_integrations_package_imports_no_engine(tmp_path):
    code = ("import sys, mrgrpo.integrations\n"
            "bad = [m for m in ('trl', 'verl', 'torch') if m in sys.modules]\nprint(bad)\nassert not bad\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_channel_reward_funcs_score_each_batch_once(task):
    reward_fn, ds = task
    calls = []

    def counted(c, p):
        calls.append(c)
        return reward_fn(c, p)

    counted.channel_names = reward_fn.channel_names
    funcs = channel_reward_funcs(counted)
    assert [f.__name__ for f in funcs] == ["correctness", "length", "format"]
    rows = ds.select(range(3))
    completions = [" 1 + 1 = 2. #### 2", "no answer", " #### 5"]
    cols = {k: rows[k] for k in rows.column_names if k != "prompt"}
    got = [f(rows["prompt"], completions, **cols) for f in funcs]
    assert len(calls) == 3  # one scoring pass for all three channels
    for j, c in enumerate(completions):
        want = reward_fn(c, {"prompt": rows["prompt"][j], **{k: v[j] for k, v in cols.items()}})
        assert [g[j] for g in got] == pytest.approx(list(want))
    funcs[1](rows["prompt"], completions[::-1], **cols)  # another batch is scored afresh
    assert len(calls) == 6


@pytest.mark.parametrize("items,match", [("Q: 1 + 1?", "non-empty sequence"),
                                         ([{"gold": "2"}], "'prompt'"),
                                         ([{"prompt": "a"}, "b"], "mix")])
def test_prompt_dataset_rejects_bad_items(items, match):
    with pytest.raises(ValueError, match=match):
        prompt_dataset(items)
