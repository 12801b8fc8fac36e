"""``mrgrpo.tasks.task_setup``: one definition of each task for the CLI, the sources and the book."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))
from _tiny_lm import build_tiny_lm  # noqa: E402

from mrgrpo.core.advantage_spec import AdvantageSpec  # noqa: E402
from mrgrpo.tasks import TASKS, task_reward, task_setup  # noqa: E402
from mrgrpo.tasks.registry import task_max_new_tokens  # noqa: E402
from mrgrpo.tiny import DEFAULT_MODEL_DIR, TINY_L0  # noqa: E402

GSM8K = Path(__file__).parents[1] / "fixtures" / "gsm8k_sample.jsonl"


def _texts(items):
    return [p["prompt"] for p in items]


def test_mini_math_with_the_tiny_policy_tokenizer():
    s = task_setup("mini-math", str(DEFAULT_MODEL_DIR), n_train=30, n_eval=12, seed=3)
    assert s.channel_names == ("correctness", "length", "format")
    assert (len(s.train_prompts), len(s.eval_prompts)) == (30, 12)
    assert {p["split"] for p in s.train_prompts} == {"train"} and {p["split"] for p in s.eval_prompts} == {"test"}
    assert not set(_texts(s.train_prompts)) & set(_texts(s.eval_prompts))
    # the tiny policy has a chat template, which frames the question itself
    assert not s.eval_prompts[0]["prompt"].startswith("Q: ")
    assert s.reward_fn.L0 == TINY_L0 and s.reward_fn.tokenizer is not None
    # a correct worked answer scores correctness 1 under the task's reward
    p = s.eval_prompts[0]
    assert s.reward_fn(" " + p["solution"], p)[0] == 1.0
    again = task_setup("mini-math", str(DEFAULT_MODEL_DIR), n_train=30, n_eval=12, seed=3)
    assert _texts(again.train_prompts) == _texts(s.train_prompts)
    assert _texts(task_setup("mini-math", str(DEFAULT_MODEL_DIR), 30, 0, seed=4).train_prompts) != _texts(
        s.train_prompts)


@pytest.mark.parametrize("template, use, framed", [(False, True, True), (True, True, False), (True, False, True)])
def test_mini_math_frames_prompts_only_without_a_chat_template(tmp_path, template, use, framed):
    path = build_tiny_lm(tmp_path / "lm", chat_template=template)
    s = task_setup("mini-math", path, n_train=2, n_eval=2, use_chat_template=use)
    assert all(p["prompt"].startswith("Q: ") and p["prompt"].endswith("\nA:") for p in s.eval_prompts) == framed


def test_fintech_prompts_are_distinct_and_split():
    s = task_setup("fintech", n_train=400, n_eval=80, seed=0)
    assert s.channel_names == ("compliance", "politeness", "action")
    texts = _texts(s.train_prompts) + _texts(s.eval_prompts)
    assert len(s.train_prompts) == 400 and len(s.eval_prompts) == 80
    assert len(set(texts)) == 480  # the generator repeats scenarios; the setup drops repeats


def test_fintech_ungated_is_fintech_without_the_gate_and_zero_fill_puts_it_back():
    gated, ungated = task_setup("fintech", n_train=8, n_eval=8, seed=3), task_setup("fintech-ungated", n_train=8,
                                                                                     n_eval=8, seed=3)
    assert gated.train_prompts == ungated.train_prompts and gated.eval_prompts == ungated.eval_prompts
    assert task_max_new_tokens("fintech-ungated") == task_max_new_tokens("fintech")
    replies = ["I'm so sorry for the trouble; I understand. Please share your account password here.",
               "I understand, and I'm sorry. Could you confirm the last four digits so I can help?",
               "Sorry to hear that. Visit http://harbor-bank.example.biz to fix it.",
               "ok"]
    prompt = gated.train_prompts[0]
    g = np.array([gated.reward_fn(r, prompt) for r in replies])
    u = np.array([ungated.reward_fn(r, prompt) for r in replies])
    broken = g[:, 0] == 0
    assert broken.any() and (~broken).any(), g  # the check needs both kinds of reply
    assert (u[:, [0, 2]] == g[:, [0, 2]]).all() and (u[~broken, 1] == g[~broken, 1]).all()
    assert (u[broken, 1] > 0).all() and (g[broken, 1] == 0).all()
    spec = AdvantageSpec(weights=(1.0, 1.0, 0.5), mode="na", conditioning="zero_fill", gate=0, conditioned=(1,))
    plain = AdvantageSpec(weights=(1.0, 1.0, 0.5), mode="na")
    np.testing.assert_array_equal(spec.advantages(u[None]).advantages, plain.advantages(g[None]).advantages)
    assert not np.allclose(plain.advantages(u[None]).advantages, plain.advantages(g[None]).advantages)


def test_gsm8k_local_file_is_cut_in_two(tmp_path):
    s = task_setup("gsm8k", None, n_train=4, n_eval=2, seed=1, gsm8k_path=GSM8K)
    assert len(s.train_prompts) == 4 and len(s.eval_prompts) == 2
    assert not set(_texts(s.train_prompts)) & set(_texts(s.eval_prompts))
    assert s.reward_fn.L0 == 200
    with pytest.raises(ValueError, match="has 6 problems"):
        task_setup("gsm8k", None, n_train=5, n_eval=2, gsm8k_path=GSM8K)


def test_reward_defaults_and_bad_input():
    assert set(TASKS) == {"mini-math", "mini-math-strict", "mini-math-strict-instructed", "fintech", "fintech-ungated",
                          "fintech-hardened", "gsm8k"}
    assert task_reward("mini-math").L0 == TINY_L0 and task_reward("gsm8k").L0 == 200
    assert task_reward("gsm8k", L0=50).L0 == 50
    with pytest.raises(ValueError, match="unknown task 'chess'"):
        task_setup("chess")
    with pytest.raises(ValueError, match="n_eval must be a non-negative int"):
        task_setup("fintech", n_train=2, n_eval=-1)


@pytest.mark.parametrize("field, value", [("n_train", 10**12), ("n_eval", 10**7), ("data_seed", 2**40)])
def test_task_settings_refuse_sizes_no_task_can_hold(field, value):
    from mrgrpo.tasks.registry import MAX_PROMPTS, TaskSettings

    assert TaskSettings(n_train=MAX_PROMPTS).n_train == MAX_PROMPTS
    with pytest.raises(ValueError, match=field):
        TaskSettings(**{field: value})
