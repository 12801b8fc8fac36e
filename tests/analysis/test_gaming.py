"""``mrgrpo.analysis.gaming``: each gaming sign fires on the case it names and stays quiet otherwise."""
from __future__ import annotations

import pandas as pd
import pytest

from mrgrpo.analysis.gaming import CUT_DROP, RELEVANCE_DROP, format_gaming_table, gaming_signs, gaming_words

CH = ["compliance", "politeness", "action"]
PROMPTS = [f"How do I move money from my savings account number {p} to checking?" for p in range(20)]


def arm_rows(arm, *, template=0, irrelevant=0, cut=0, seeds=(0, 1), action_finished=1.0, action_cut=0.0):
    """20 replies per run: ``template`` open alike, ``irrelevant`` share no content word, ``cut`` hit the budget."""
    rows = []
    for s in seeds:
        for p, prompt in enumerate(PROMPTS):
            head = "Template opens the same way here." if p < template else f"Reply {p} variant {s}:"
            body = "Sorry, thank you." if p < irrelevant else f"move the money from savings {p} to checking."
            ended = p >= cut
            rows.append({"mode": arm, "seed": s, "prompt": prompt, "completion": f"{head} {body}", "ended": ended,
                         "compliance": 1.0, "politeness": 0.5, "action": action_finished if ended else action_cut})
    return rows


def signs_of(**trained):
    samples = pd.DataFrame(arm_rows("untrained", cut=16) + arm_rows("AN", **trained))
    return gaming_signs(samples, CH, "action")


def test_no_sign_when_the_replies_look_like_the_untrained_ones():
    table, signs = signs_of(cut=16)
    assert signs["AN"][1] == [] and signs["untrained"][1] == []
    assert gaming_words(signs, "AN") == ""


def test_template_collapse_is_a_sign():
    _, signs = signs_of(template=11, cut=16)
    assert signs["AN"][0].collapsed and "template collapse (55%" in signs["AN"][1][0]
    assert gaming_words(signs, "AN").startswith(" (part of AN's gain is gaming: template collapse")


def test_relevance_drop_fires_just_past_its_threshold():
    assert RELEVANCE_DROP == 0.10
    _, at = signs_of(irrelevant=2, cut=16)      # 10 points: not more than the threshold
    _, past = signs_of(irrelevant=3, cut=16)    # 15 points
    assert not any("relevant" in s for s in at["AN"][1])
    assert any("relevant replies fell from 100% to 85%" in s for s in past["AN"][1])


def test_stopping_early_is_a_sign_only_when_finishing_pays():
    assert CUT_DROP == 0.20
    _, pays = signs_of(cut=8)                   # 80% -> 40% cut, and action pays 1 vs 0 when finished
    assert any("cut at the budget fell from 80% to 40%" in s for s in pays["AN"][1])
    _, small = signs_of(cut=12)                 # 20 points: not more than the threshold
    assert not any("cut at the budget" in s for s in small["AN"][1])
    samples = pd.DataFrame(arm_rows("untrained", cut=16, action_finished=0.0, action_cut=0.0)
                           + arm_rows("AN", cut=8, action_finished=0.0, action_cut=0.0))
    _, free = gaming_signs(samples, CH, "action")
    assert not any("cut at the budget" in s for s in free["AN"][1])


def test_table_for_people_and_bad_calls():
    table, _ = signs_of(template=11, cut=16)
    shown = format_gaming_table(table)
    assert shown.loc["AN", "top opening share"] == "55%" and shown.loc["untrained", "cut share"] == "80%"
    assert shown.loc["AN", "action finished"] == "1.00" and shown.loc["AN", "mean words"].count(".") == 1
    with pytest.raises(ValueError, match="no 'base' arm"):
        gaming_signs(pd.DataFrame(arm_rows("AN")), CH, "action", base="base")
