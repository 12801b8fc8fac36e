"""``mrgrpo.analysis.replies``: gaming measures read from the replies, a collapse verdict that flips at a threshold."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mrgrpo.analysis.replies import (TEMPLATE_SHARE, distinct_n, format_gallery, gallery, gaming_table, opening,
                                     reply_stats, template_collapse)

CH = ["compliance", "politeness", "action"]
REQUEST = "I'm really worried. Can you tell me how much is in my checking account right now? Please help."
TEMPLATE = "I'm sorry for any confusion. Can you please confirm? Thank you for your patience."


def varied(i: int) -> str:
    return f"Reply number {i} talks about topic{i} and detail{i} in its own words {i * 7}."


def make_samples(n_template=(0, 0), n_empty=0, P=20, arms=("untrained", "AN"), seeds=(0, 1)):
    """``P`` replies per run; in arm ``AN`` run ``s`` opens ``n_template[s]`` of them with its own template."""
    rows = []
    for arm in arms:
        for s in seeds:
            for p in range(P):
                if arm == "AN" and p < n_empty:
                    text = ""
                elif arm == "AN" and p < n_empty + n_template[s]:
                    text = f"Template {s} opens here now, then varies {p}."
                else:
                    text = varied(p + 100 * s)
                rows.append({"mode": arm, "seed": s, "prompt": f"q{p:02d} about the checking account",
                             "completion": text, "ended": p % 4 != 0, "compliance": 1.0,
                             "politeness": 0.5, "action": float(p % 4 != 0)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- text rules
def test_opening():
    assert opening("I'm sorry for any confusion. Can you...") == "i'm sorry for any confusion"
    assert opening("Hi there") == "hi there" and opening("   ") == ""


def test_distinct_2_counts_distinct_bigrams():
    assert distinct_n(["a b c", "a b c"], 2) == pytest.approx(2 / 4)
    assert distinct_n(["a b c", "d e f"], 2) == 1.0
    assert np.isnan(distinct_n(["a", ""], 2))


# --------------------------------------------------------------------------- one arm
def test_reply_stats_measures():
    replies = [TEMPLATE, TEMPLATE + " Again.", "Your checking account balance is in the app.", ""]
    st = reply_stats(replies, requests=[REQUEST] * 4, cut=[False, True, False, True],
                     rewards={"action": [1.0, 0.0, 1.0, 0.5]})
    assert st.n == 4 and st.top_opening == "i'm sorry for any confusion" and st.top_opening_share == 0.5
    assert st.empty_share == 0.25 and st.cut_share == 0.5 and st.relevant_share == 0.25
    assert st.reward_finished == {"action": 1.0} and st.reward_cut == {"action": 0.25}
    assert st.mean_words == pytest.approx((14 + 15 + 8 + 0) / 4)
    none_cut = reply_stats(replies, requests=[REQUEST] * 4, cut=[False] * 4, rewards={"action": [1, 0, 1, 0]})
    assert np.isnan(none_cut.reward_cut["action"])


@pytest.mark.parametrize("kw, match", [
    ({"cut": [True]}, "one entry per reply"),
    ({"cut": ["yes", "no", "no"]}, "booleans"),
    ({"cut": [2, 0, 0]}, "booleans"),
    ({"requests": ["a"]}, "one entry per reply"),
    ({"rewards": {"action": [1.0, np.nan, 0.0]}}, "finite"),
    ({"rewards": {"action": [1.0]}}, "finite"),
])
def test_reply_stats_rejects_bad_input(kw, match):
    args = {"requests": ["q1", "q2", "q3"], "cut": [False, True, False]}
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        reply_stats(["a b", "c d", "e f"], **args)


def test_reply_stats_rejects_a_bare_string_and_non_text():
    with pytest.raises(ValueError, match="single str"):
        reply_stats("a reply", requests=["q"], cut=[False])
    with pytest.raises(ValueError, match="must be a str"):
        reply_stats([3.0], requests=["q"], cut=[False])


# --------------------------------------------------------------------------- per arm and the verdict
def test_gaming_table_measures_each_run_then_averages():
    # each AN run collapses onto its own template: pooled, neither template covers more than half
    table = gaming_table(make_samples(n_template=(20, 20)), channels=CH, channel="action")
    assert table.loc["AN", "top opening share"] == 1.0 and table.loc["AN", "runs"] == 2
    assert table.loc["AN", "replies"] == 40 and table.loc["untrained", "top opening share"] == 0.05
    pooled = gaming_table(make_samples(n_template=(20, 20)), channels=CH, run_col=None)
    assert pooled.loc["AN", "top opening share"] == 0.5
    assert table.loc["AN", "cut share"] == 0.25
    assert table.loc["AN", "action finished"] == 1.0 and table.loc["AN", "action cut"] == 0.0
    runs = gaming_table(make_samples(n_template=(20, 5)), channels=CH, per_run=True)
    assert runs.loc[("AN", 0), "top opening share"] == 1.0 and runs.loc[("AN", 1), "top opening share"] == 0.25
    with pytest.raises(ValueError, match="lack the columns"):
        gaming_table(make_samples().drop(columns="ended"), channels=CH)
    with pytest.raises(ValueError, match="not one of channels"):
        gaming_table(make_samples(), channels=CH, channel="length")


def test_template_collapse_flips_at_its_threshold():
    assert TEMPLATE_SHARE == 0.5
    above = template_collapse(gaming_table(make_samples(n_template=(11, 11)), channels=CH), "AN")
    at = template_collapse(gaming_table(make_samples(n_template=(10, 10)), channels=CH), "AN")
    assert above.collapsed and above.kind == "template" and above.share == 0.55
    assert not at.collapsed and at.kind is None  # exactly half is not "more than half"
    assert "collapsed to a template" in above.sentence() and "no template collapse" in at.sentence()
    assert "before training 5%" in above.sentence()
    lower = template_collapse(gaming_table(make_samples(n_template=(10, 10)), channels=CH), "AN", threshold=0.45)
    assert lower.collapsed


def test_mostly_empty_replies_are_an_empty_collapse():
    c = template_collapse(gaming_table(make_samples(n_empty=15), channels=CH), "AN")
    assert c.collapsed and c.kind == "empty" and c.empty_share == 0.75
    assert "collapsed to empty replies (75% empty)" in c.sentence()


def test_template_collapse_rejects_bad_calls():
    table = gaming_table(make_samples(), channels=CH)
    with pytest.raises(ValueError, match="no arm"):
        template_collapse(table, "NA")
    with pytest.raises(ValueError, match="threshold"):
        template_collapse(table, "AN", threshold=1.0)
    with pytest.raises(ValueError, match="lacks"):
        template_collapse(gaming_table(make_samples(), channels=CH, per_run=True), "AN")


# --------------------------------------------------------------------------- gallery
def test_format_gallery_rounds_rewards_and_words_the_cut():
    g = gallery(make_samples(), CH, n=2)
    shown = format_gallery(g)
    assert shown["cut"].tolist() == ["yes" if c else "no" for c in g["cut"]] and set(shown["cut"]) == {"yes", "no"}
    assert shown["politeness"].iloc[0] == "0.50"
    assert shown["reply"].tolist() == g["reply"].tolist() and shown["words"].tolist() == g["words"].tolist()
    assert format_gallery(g.assign(cut=False))["cut"].unique().tolist() == ["no"]


def test_gallery_shows_the_same_prompts_across_arms():
    s = make_samples(n_template=(20, 0), arms=("untrained", "NA", "AN"))
    g = gallery(s, CH, n=2)
    assert list(g.index.get_level_values("arm")) == ["untrained", "NA", "AN"] * 2
    assert g.index.get_level_values("prompt").nunique() == 2
    assert list(g.columns) == ["reply", *CH, "words", "cut"]
    row = g.loc[("q00 about the checking account", "AN")]
    assert row["reply"].startswith("Template 0") and bool(row["cut"]) and row["action"] == 0.0
    chosen = gallery(s, CH, prompts=["q03 about the checking account"], seed=1, arms=["AN", "NA"])
    assert chosen.index.tolist() == [("q03 about the checking account", "AN"), ("q03 about the checking account", "NA")]
    with pytest.raises(ValueError, match="no replies of arms"):
        gallery(s, CH, arms=["single-reward"])
    with pytest.raises(ValueError, match="not answered by every arm"):
        gallery(s, CH, prompts=["elsewhere"])


def test_gallery_shows_the_seed_most_arms_share_and_the_untrained_reply_from_any_seed():
    s = make_samples(arms=("untrained", "NA", "AN", "single-reward"))
    s = s[~((s["mode"] == "untrained") & (s["seed"] == 1))]     # untrained replies of seed 0 only
    s = s[~((s["mode"] == "single-reward") & (s["seed"] == 0))]  # single-reward ran seed 1 only
    s = s[~((s["mode"] == "NA") & (s["seed"] == 0))]             # so did NA: seed 1 is the most shared
    g = gallery(s, CH, n=1)
    assert g.attrs["seed"] == 1
    assert list(g.index.get_level_values("arm")) == ["untrained", "NA", "AN", "single-reward"]
    assert g.loc[("q00 about the checking account", "untrained"), "reply"] == varied(0)   # seed 0's reply
    assert g.loc[("q00 about the checking account", "AN"), "reply"] == varied(100)        # seed 1's
    # at seed 0 only AN (and the seedless untrained policy) have replies
    g0 = gallery(s, CH, n=1, seed=0)
    assert list(g0.index.get_level_values("arm")) == ["untrained", "AN"] and g0.attrs["seed"] == 0
    with pytest.raises(ValueError, match=r"\['NA'\] have no replies at seed 0"):
        gallery(s, CH, seed=0, arms=["AN", "NA"])
    # without the seedless rule the untrained arm is held to the seed like any other
    with pytest.raises(ValueError, match="have no replies at seed 1"):
        gallery(s, CH, arms=["untrained", "AN"], seed=1, seedless=())
