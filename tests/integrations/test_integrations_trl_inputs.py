"""The integrations package and its task adapters, without a model.

:mod:`mrgrpo.integrations.trl_inputs` (an mrgrpo task as TRL reward functions and dataset),
and that importing :mod:`mrgrpo.integrations` loads no engine. The advantages the engines
share are tested in ``test_advantage_spec.py``; the trainer in ``test_integrations_trl.py``.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from mrgrpo.integrations.trl_inputs import channel_reward_funcs, prompt_dataset
from mrgrpo.lm.models import TINY_MATH_DIR
from mrgrpo.tasks.registry import task_setup


@pytest.fixture(scope="module")
def task():
    setup = task_setup("mini-math", tokenizer=str(TINY_MATH_DIR), n_train=8, n_eval=0, seed=0,
                       use_chat_template=False)
    return setup.reward_fn, prompt_dataset(setup.train_prompts)


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
