"""score_completions: checked calls of a reward function, errors that name the rollout."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mrgrpo.rewards import (
    FintechRewardFunction,
    MathRewardFunction,
    RewardFunction,
    RewardFunctionError,
    score_completions,
)
from mrgrpo.rewards.base import prompt_text, shorten


class TwoChannels:
    channel_names = ("a", "b")

    def __call__(self, completion, prompt):
        if completion == "boom":
            raise KeyError("no such key")
        if completion == "nan":
            return (1.0, math.nan)
        if completion == "inf":
            return np.array([1.0, np.inf])
        if completion == "three":
            return (1.0, 2.0, 3.0)
        if completion == "text":
            return "ab"
        return (float(len(completion)), 1.0)


def test_protocol_and_shipped_functions_satisfy_it():
    for rf in (TwoChannels(), MathRewardFunction(), FintechRewardFunction()):
        assert isinstance(rf, RewardFunction)
    assert MathRewardFunction.channel_names == ("correctness", "length", "format")
    assert FintechRewardFunction.channel_names == ("compliance", "politeness", "action")


def test_scores_shape_and_values():
    out = score_completions(TwoChannels(), ["ab", "abcd"], ["p0", "p1"])
    assert out.shape == (2, 2) and out.dtype == float
    np.testing.assert_array_equal(out, [[2.0, 1.0], [4.0, 1.0]])
    assert score_completions(TwoChannels(), [], []).shape == (0, 2)


def test_plain_function_without_channel_names():
    out = score_completions(lambda c, p: [1.0, 0.0, 0.5], ["x", "y"], ["p", "q"])
    assert out.shape == (2, 3)
    with pytest.raises(RewardFunctionError, match=r"returned 2 channels, expected 3.*prompt index 1"):
        score_completions(lambda c, p: [1.0] * len(c), ["xyz", "yz"], ["p", "q"])


LONG_PROMPT = "What is two plus two? " * 20


@pytest.mark.parametrize("bad, match", [
    ("boom", r"raised KeyError: 'no such key'"),
    ("nan", r"non-finite value \(nan\) in channel 1 \(b\)"),
    ("inf", r"non-finite value \(inf\) in channel 1 \(b\)"),
    ("three", r"returned 3 channels, expected 2"),
    ("text", r"not a flat sequence of numbers"),
])
def test_errors_name_prompt_index_prompt_and_completion(bad, match):
    prompts = ["first prompt", {"prompt": LONG_PROMPT, "gold": "4"}, "third"]
    with pytest.raises(RewardFunctionError, match=match) as info:
        score_completions(TwoChannels(), ["fine", bad, "fine"], prompts)
    msg = str(info.value)
    assert "prompt index 1" in msg and info.value.index == 1
    assert repr(bad) in msg  # the completion
    assert "What is two plus two?" in msg and "chars)" in msg  # the prompt, shortened
    assert len(msg) < 600
    assert isinstance(info.value, ValueError)


def test_raising_function_is_chained():
    with pytest.raises(RewardFunctionError) as info:
        score_completions(TwoChannels(), ["boom"], ["p"])
    assert isinstance(info.value.__cause__, KeyError)


def test_explicit_n_channels_and_length_mismatch():
    with pytest.raises(RewardFunctionError, match="returned 2 channels, expected 3"):
        score_completions(TwoChannels(), ["ok"], ["p"], n_channels=3)
    with pytest.raises(ValueError, match="2 completions but 1 prompts"):
        score_completions(TwoChannels(), ["a", "b"], ["p"])
    with pytest.raises(ValueError, match="n_channels must be a positive int"):
        score_completions(TwoChannels(), ["a"], ["p"], n_channels=0)


def test_math_reward_without_gold_names_the_prompt():
    with pytest.raises(RewardFunctionError, match=r"(?s)raised ValueError: MathRewardFunction needs the gold.*prompt index 0"):
        score_completions(MathRewardFunction(), ["#### 4"], ["What is 2 + 2?"])


def test_prompt_text_views():
    chat = [{"role": "system", "content": "rules"}, {"role": "user", "content": "help me"}]
    assert prompt_text(chat) == "help me"
    assert prompt_text({"messages": chat, "scenario": "x"}) == "help me"
    assert prompt_text({"prompt": "q", "gold": "1"}) == "q"
    assert prompt_text(("q", "1")) == "q"
    assert prompt_text(7) == "7"
    assert shorten("x" * 10) == repr("x" * 10)
    assert len(shorten("y" * 1000, 80)) < 110
