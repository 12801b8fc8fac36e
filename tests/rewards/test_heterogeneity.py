"""The channel-heterogeneity experiment: its reward, Prop 1's prediction from rollouts, the stored prediction."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mrgrpo.analysis.heterogeneity import (conditioning_changes, group_stats, measured_shares,
                                           predicted_influence_from_rollouts, realized_influence_from_groups,
                                           shares, stated_margin)
from mrgrpo.core.theory import influence_an, influence_na
from mrgrpo.rewards.heterogeneity import STRICT_CHANNELS, StrictAnswerReward, stated_answer

DATA = Path(__file__).resolve().parents[2] / "data" / "heterogeneity"
GOLD = {"prompt": "tom has 2 pens. he buys 3 more pens. how many pens does tom have now?", "gold": "5"}


# --------------------------------------------------------------------------- the reward
@pytest.mark.parametrize("reply, expected", [
    (" 2 + 3 = 5. the answer is 5.", (1.0, 1.0)),
    (" 2 + 3 = 6. the answer is 6.", (0.0, 1.0)),
    (" 2 + 3 = 5. The Answer Is 5. ", (1.0, 1.0)),       # case and trailing spaces
    (" 2 + 3 = 5. #### 5", (0.0, 0.0)),                   # the usual marker is not the required form
    (" the answer is 5. 2 + 3 = 5.", (0.0, 0.0)),         # the sentence must end the reply
    (" the answer is five.", (0.0, 0.0)),                 # a number, in digits
    (" the answer is 5", (0.0, 0.0)),                     # the full stop belongs to the form
    ("", (0.0, 0.0)),
])
def test_strict_answer_reward(reply, expected):
    assert tuple(StrictAnswerReward()(reply, GOLD)) == expected


def test_stated_answer_reads_signed_and_decimal_numbers():
    assert stated_answer("x. the answer is -3.") == Fraction(-3)
    assert stated_answer("x. the answer is 2.5.") == Fraction(5, 2)
    assert StrictAnswerReward()(" the answer is 2.50.", {"gold": "2.5"})[0] == 1.0
    assert stated_answer("the answer is 7. #### 7") is None
    with pytest.raises(ValueError, match="completion must be a str"):
        stated_answer(None)


def test_strict_never_exceeds_format_and_needs_a_gold_answer():
    reward = StrictAnswerReward()
    assert reward.channel_names == STRICT_CHANNELS == ("strict", "format")
    rng = np.random.default_rng(0)
    pieces = [" 2 + 3 = 5.", " the answer is 5.", " the answer is 4.", " #### 5", " x", "."]
    for _ in range(300):
        reply = "".join(rng.choice(pieces, size=rng.integers(0, 4)))
        strict, fmt = reward(reply, GOLD)
        assert strict <= fmt, reply
    with pytest.raises(ValueError, match="gold answer"):
        reward(" the answer is 5.", "no gold here")


def test_the_task_is_registered_with_mini_math_prompts():
    from mrgrpo.tasks import task_setup
    from mrgrpo.tasks.registry import TASKS, task_max_new_tokens

    assert "mini-math-strict" in TASKS and task_max_new_tokens("mini-math-strict") == task_max_new_tokens("mini-math")
    strict = task_setup("mini-math-strict", "tiny-math", n_train=6, n_eval=3, seed=2)
    plain = task_setup("mini-math", "tiny-math", n_train=6, n_eval=3, seed=2)
    assert strict.channel_names == ("strict", "format")
    assert [p["prompt"] for p in strict.eval_prompts] == [p["prompt"] for p in plain.eval_prompts]
    p = strict.eval_prompts[0]
    sentence = " " + p["solution"].split("####")[0] + f"the answer is {p['gold']}."
    assert tuple(strict.reward_fn(sentence, p)) == (1.0, 1.0)
    assert tuple(strict.reward_fn(" " + p["solution"], p)) == (0.0, 0.0)


# --------------------------------------------------------------------------- the prediction
def test_group_stats_by_hand():
    r = np.zeros((2, 4, 2))
    r[0, :, 0] = [1, 0, 0, 0]          # var 3/16
    r[:, :, 1] = [[1, 1, 0, 0], [1, 1, 1, 1]]  # var 1/4, then constant
    s = group_stats(r)
    np.testing.assert_allclose(s["mean"], [1 / 8, 6 / 8])
    np.testing.assert_allclose(s["within_var"], [3 / 32, 1 / 8])
    np.testing.assert_allclose(s["const_frac"], [0.5, 0.5])
    with pytest.raises(ValueError, match="3 dimensions"):
        group_stats(r[0])


def test_predicted_influence_is_prop1_on_each_prompts_own_moments():
    rng = np.random.default_rng(1)
    w = np.array([1.0, 0.5])
    r = np.stack([rng.normal(size=(64, 2)) * [0.2, 1.5], rng.normal(size=(64, 2)) * [1.0, 0.3]])
    r[1, :, 1] += 0.8 * r[1, :, 0]      # correlated channels on the second prompt
    out = predicted_influence_from_rollouts(r, w)
    an, na = [], []
    for x in r:
        sigma, C = x.std(axis=0), np.corrcoef(x.T)
        an.append(influence_an(w, sigma, C))
        na.append(influence_na(w, C))
    np.testing.assert_allclose(out["an"], np.mean(an, axis=0), rtol=1e-10)
    np.testing.assert_allclose(out["na"], np.mean(na, axis=0), rtol=1e-10)
    np.testing.assert_allclose(out["an_share"], out["an"] / out["an"].sum())
    # AN follows the spreads: on the first prompt the low-spread channel 0 gets far less than under NA
    single = predicted_influence_from_rollouts(r[:1], w)
    assert single["an_share"][0] < 0.5 * single["na_share"][0]


def test_a_channel_that_never_varies_gets_no_influence():
    r = np.zeros((2, 8, 2))
    r[:, :4, 1] = 1.0                   # format varies on both prompts
    r[0, 0, 0] = r[0, 0, 1] = 1.0       # strict succeeds once, on prompt 0 only
    out = predicted_influence_from_rollouts(r, [1.0, 0.5])
    one = predicted_influence_from_rollouts(r[:1], [1.0, 0.5])
    np.testing.assert_allclose(out["an"][0], one["an"][0] / 2)     # prompt 1 adds 0 to strict
    np.testing.assert_allclose(out["na"][1], (one["na"][1] + 0.5) / 2)  # and only its own weight to format


def test_trainer_metric_under_na_is_w_times_the_group_correlation():
    rng = np.random.default_rng(2)
    r = rng.integers(0, 2, size=(50, 8, 2)).astype(float)
    r = r[(r.std(axis=1) > 0).all(axis=1)]   # groups where both channels vary
    w = np.array([1.0, 0.5])
    C = np.array([np.corrcoef(g.T) for g in r])
    np.testing.assert_allclose(realized_influence_from_groups(r, w, "na"), (C @ w).mean(axis=0), atol=1e-6)
    an = realized_influence_from_groups(r, w, "an")
    assert an.shape == (2,) and np.isfinite(an).all()


def test_shares_and_conditioning_changes():
    np.testing.assert_allclose(shares([1.0, 3.0]), [0.25, 0.75])
    with pytest.raises(ValueError, match="shares undefined"):
        shares([0.5, -0.5])
    r = np.array([[[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]])   # strict <= format everywhere
    assert conditioning_changes(r, gate=1, conditioned=0) == 0
    assert conditioning_changes(r, gate=0, conditioned=1) == 1   # strict gating format zeroes one format


def test_measured_shares():
    curves = pd.DataFrame({"mode": ["AN"] * 4, "seed": [0, 0, 1, 1], "step": [1, 2, 1, 2],
                           "influence/strict": [1.0, 3.0, 1.0, 1.0], "influence/format": [3.0, 1.0, 1.0, 3.0]})
    out = measured_shares(curves, ["strict", "format"])
    np.testing.assert_allclose(out["strict"], [0.5, 1 / 3])
    np.testing.assert_allclose(measured_shares(curves, ["strict", "format"], steps=(1, 1))["strict"], [0.25, 0.5])
    with pytest.raises(ValueError, match="no training records"):
        measured_shares(curves, ["strict", "format"], steps=(5, 9))


def test_stated_margin_reads_the_one_bold_margin_line(tmp_path):
    f = tmp_path / "design.md"
    f.write_text("# design\n\n**Equivalence margin: 0.05** on the aggregate.\n")
    assert stated_margin(f) == 0.05
    for text, match in [("no margin here", "found 0"),
                        ("**Equivalence margin: 0.05**\n**Equivalence margin: 0.1**", "found 2"),
                        ("**Equivalence margin: 0**", "positive")]:
        f.write_text(text)
        with pytest.raises(ValueError, match=match):
            stated_margin(f)
    assert stated_margin(DATA / "design.md") > 0


# --------------------------------------------------------------------------- the stored prediction
@pytest.mark.skipif(not (DATA / "predictions.json").is_file(), reason="no stored prediction")
def test_stored_prediction_is_what_the_code_gives_on_the_stored_replies():
    pred = json.loads((DATA / "predictions.json").read_text())
    roll = json.loads((DATA / "untrained_rollouts.json").read_text())
    rewards = np.array(roll["rewards"])                       # (P, K, m, R)
    P, K, m, R = rewards.shape
    reward = StrictAnswerReward()
    rescored = np.array([[[reward(c, {"gold": g}) for c in group] for group in groups]
                         for groups, g in zip(roll["completions"], roll["gold"])])
    np.testing.assert_array_equal(rescored, rewards)          # the rewards are the replies' rewards
    stats = group_stats(rewards.reshape(-1, m, R))
    law = predicted_influence_from_rollouts(rewards.reshape(P, K * m, R), pred["weights"])
    for k, name in enumerate(pred["channels"]):
        assert pred["channel_stats"]["within_var"][name] == pytest.approx(stats["within_var"][k], abs=1e-6)
        assert pred["prop1_predicted"]["an_share"][name] == pytest.approx(law["an_share"][k], abs=1e-6)
        assert pred["prop1_predicted"]["na_share"][name] == pytest.approx(law["na_share"][k], abs=1e-6)
    assert pred["zero_fill_changes"]["format gates strict"] == 0


def test_the_instructed_task_adds_the_answer_form_to_each_question_and_nothing_else():
    from mrgrpo.tasks import task_setup
    from mrgrpo.tasks.registry import ANSWER_INSTRUCTION, STRICT_TASKS, task_max_new_tokens

    assert "mini-math-strict-instructed" in STRICT_TASKS
    assert task_max_new_tokens("mini-math-strict-instructed") > task_max_new_tokens("mini-math-strict")
    for chat in (True, False):
        told = task_setup("mini-math-strict-instructed", "tiny-math", n_train=5, n_eval=3, seed=4,
                          use_chat_template=chat)
        plain = task_setup("mini-math-strict", "tiny-math", n_train=5, n_eval=3, seed=4, use_chat_template=chat)
        assert told.channel_names == plain.channel_names == ("strict", "format")
        for a, b in zip(told.train_prompts + told.eval_prompts, plain.train_prompts + plain.eval_prompts):
            assert a["gold"] == b["gold"]
            assert ANSWER_INSTRUCTION in a["prompt"] and ANSWER_INSTRUCTION not in b["prompt"]
            assert a["prompt"].replace(ANSWER_INSTRUCTION, "") == b["prompt"]
    p = told.eval_prompts[0]
    assert tuple(told.reward_fn(f"Some steps. The answer is {p['gold']}.", p)) == (1.0, 1.0)
    assert tuple(told.reward_fn("The answer is <number>.", p)) == (0.0, 0.0)
