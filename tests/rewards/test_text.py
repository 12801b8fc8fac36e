"""``mrgrpo.rewards.text``: the word, relevance and echo rules shared by a reward and the reply measures."""
from __future__ import annotations

import pytest

from mrgrpo.rewards.text import content_words, is_echo, is_relevant, words

REQUEST = "I'm really worried. Can you tell me how much is in my checking account right now? Please help."


def test_words():
    assert words("I'm sorry, for ANY confusion!") == ["i'm", "sorry", "for", "any", "confusion"]
    with pytest.raises(ValueError, match="must be a str"):
        words(None)


def test_relevance_rule():
    assert content_words(REQUEST) == {"worri", "check", "account"}
    assert is_relevant(REQUEST, "Your checking account details are in the app under Accounts.")
    assert not is_relevant(REQUEST, "I'm sorry for your loss. I'm here to help you. Please tell me more.")
    # courtesy words shared with the request are not evidence of an answer
    assert not is_relevant("Please help, sorry to bother you.", "Sorry! Please let me help.")
    assert is_relevant(REQUEST, "checks", min_shared=1) and not is_relevant(REQUEST, "checks", min_shared=2)


def test_echo_is_flagged():
    assert is_echo("How do I close my account and move my money?", "How do I close my account and move my money?")
    assert not is_echo("How do I close my account and move my money?", "To close your account, visit a branch.")
    assert not is_echo("", "")
