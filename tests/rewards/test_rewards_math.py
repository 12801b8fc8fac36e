"""MathRewardFunction: answer extraction, correctness, length, format, gating."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from mrgrpo.rewards import MathRewardFunction, extract_answer, length_score, parse_number
from mrgrpo.rewards.math import count_tokens, find_final_answer, gold_answer

# (completion, gold, correctness, format)
CASES = [
    # GSM8K marker
    ("2 + 2 = 4. #### 4", "4", 1, 1),
    ("#### 5", "4", 0, 1),
    ("#### 1,234", "1234", 1, 1),                                  # thousands separator
    ("#### 1,234,567", "1234567", 1, 1),
    ("#### -5", "-5", 1, 1),                                       # negative
    ("#### \u22127", "-7", 1, 1),                                  # unicode minus
    ("#### 2.50", "2.5", 1, 1),                                    # decimal
    ("#### .5", "0.5", 1, 1),
    ("#### $1,000.50 dollars", "1000.5", 1, 1),                    # currency and unit
    ("#### 72. That is all.", "72", 1, 1),                         # sentence period is not a decimal
    ("#### 18 dollars", "18", 1, 1),
    ("#### 3/4", "0.75", 1, 1),                                    # a/b
    ("#### the answer is five", "5", 0, 0),                        # marker without a number
    # boxed, with nested braces
    (r"so \boxed{\frac{1}{2}}", "0.5", 1, 1),                      # \frac inside \boxed
    (r"\boxed{\dfrac{3}{4}}", "0.75", 1, 1),
    (r"\boxed{-\frac{1}{2}}", "-0.5", 1, 1),
    (r"\boxed{2\frac{1}{2}}", "2.5", 1, 1),                        # mixed number
    (r"\boxed{\frac{1}{3}}", "0.333", 0, 1),                       # exact comparison
    (r"\boxed{18 \text{ dollars}}", "18", 1, 1),                    # \text unit
    (r"\boxed{\$42}", "42", 1, 1),
    (r"\boxed{5\text{ cm}}", "5", 1, 1),
    (r"\boxed{50\%}", "50", 1, 1),
    (r"\boxed{1{,}234}", "1234", 1, 1),                            # LaTeX thousands separator
    (r"\boxed{x = 5}", "5", 1, 1),
    (r"\boxed{3, 4}", "3", 0, 1),                                  # two numbers: no single answer
    (r"\boxed{}", "0", 0, 0),                                      # empty box is not an answer
    (r"\boxed{\frac{1}{2}", "0.5", 0, 0),                          # unbalanced braces
    # last of several answers
    (r"first \boxed{3} then \boxed{4}", "4", 1, 1),
    (r"first \boxed{4} then \boxed{3}", "4", 0, 1),
    ("#### 3\nwait, recheck\n#### 4", "4", 1, 1),
    (r"\boxed{4} ... #### 3", "3", 1, 1),                          # the later marker wins
    (r"#### 3 ... \boxed{4}", "4", 1, 1),
    # missing answer
    ("the answer is 4", "4", 0, 0),
    ("", "4", 0, 0),
    ("   \n ", "0", 0, 0),
]


@pytest.mark.parametrize("completion, gold, correct, fmt", CASES)
def test_correctness_and_format_table(completion, gold, correct, fmt):
    rf = MathRewardFunction()
    c, length, f = rf(completion, {"prompt": "q", "gold": gold})
    assert (c, f) == (correct, fmt)
    assert -1.0 <= length <= 0.0


def test_gold_formats():
    assert gold_answer({"gold": "1,234"}) == 1234
    assert gold_answer({"gold_answer": 7}) == 7
    assert gold_answer({"answer": "work\n#### 72"}) == 72   # a raw GSM8K answer field
    assert gold_answer(("question", "-3")) == -3           # (prompt, gold) pairs
    with pytest.raises(ValueError, match="needs the gold answer"):
        gold_answer("just a question")
    with pytest.raises(ValueError, match="not a number"):
        gold_answer({"gold": "twelve"})


def test_parse_number_and_extract():
    assert parse_number("1,234.5") == Fraction(2469, 2)
    assert parse_number("1,23") is None                   # not a thousands grouping
    assert parse_number("-$5") == -5 and parse_number("$-5") == -5
    assert parse_number(r"\frac{1}{0}") is None and parse_number("1/0") is None
    assert parse_number("x + 1") is None and parse_number("") is None
    assert find_final_answer(r"\boxed{\boxed{7}}") == ("boxed", "7")
    assert find_final_answer("nothing") is None
    assert extract_answer("no marker, 12 then 15") is None
    assert extract_answer("no marker, 12 then 15", last_number_fallback=True) == 15


def test_last_number_fallback_option():
    rf = MathRewardFunction(last_number_fallback=True)
    assert rf("so the answer is 4", {"gold": "4"})[0] == 1.0
    assert rf("so the answer is 4", {"gold": "4"})[2] == 0.0  # still not the expected form


@pytest.mark.parametrize("n, L0, expected", [
    (200, 200, 0.0),
    (100, 200, math.tanh(-math.log(2))),      # -0.6
    (400, 200, math.tanh(-math.log(2))),      # symmetric in log-ratio
    (20, 200, math.tanh(-math.log(10))),
    (10, 10, 0.0),
    (1, 10, math.tanh(-math.log(10))),
    (0, 200, -1.0),                           # empty: the limit
])
def test_length_formula(n, L0, expected):
    assert length_score(n, L0) == pytest.approx(expected, abs=1e-12)
    assert length_score(100, 200) == pytest.approx(-0.6, abs=1e-12)


class CharTokenizer:
    """A stand-in tokenizer: one token per character, plus a BOS the reward must not count."""

    def encode(self, text, add_special_tokens=True):
        return [0] * (len(text) + (1 if add_special_tokens else 0))


def test_length_channel_uses_tokenizer_or_words():
    text = "one two three four"
    assert count_tokens(text) == 4
    assert count_tokens(text, CharTokenizer()) == len(text)
    assert count_tokens(text, lambda s: 7) == 7
    assert count_tokens(text, lambda s: s.split()) == 4
    rf = MathRewardFunction(L0=len(text), tokenizer=CharTokenizer())
    assert rf(text, {"gold": "1"})[1] == pytest.approx(0.0)
    rf_words = MathRewardFunction(L0=2)
    assert rf_words(text, {"gold": "1"})[1] == pytest.approx(math.tanh(-math.log(2)))
    assert rf_words.raw_length(text, {"gold": "1"}) == rf_words(text, {"gold": "1"})[1]


def test_gating_zeroes_wrong_answers_and_keeps_raw():
    prompt = {"gold": "4"}
    gated = MathRewardFunction(L0=2, gate_length_on_correct=True)
    wrong, right = "a b c d #### 5", "a b c d #### 4"     # 6 words each, L0 = 2
    raw = math.tanh(-math.log(3))
    assert gated(right, prompt) == (1.0, pytest.approx(raw), 1.0)
    assert gated(wrong, prompt) == (0.0, 0.0, 1.0)         # the best length score
    assert gated.raw_length(wrong, prompt) == pytest.approx(raw)
    half = MathRewardFunction(L0=2, gate_length_on_correct=True, gamma=0.5)
    assert half(wrong, prompt)[1] == pytest.approx(0.5 * raw)
    ungated = MathRewardFunction(L0=2, gate_length_on_correct=True, gamma=1.0)
    assert ungated(wrong, prompt)[1] == pytest.approx(raw)


def test_gating_trap_makes_length_anticorrelated_with_correctness():
    # correctness independent of length: ungated, the two are uncorrelated; gated, the
    # length channel is negatively correlated with correctness by construction.
    rng = np.random.default_rng(0)
    n_words = rng.integers(1, 60, size=2000)
    correct = rng.random(2000) < 0.5
    rows_raw, rows_gated = [], []
    raw_fn, gated_fn = MathRewardFunction(L0=20), MathRewardFunction(L0=20, gate_length_on_correct=True)
    for k, ok in zip(n_words, correct):
        text = "w " * int(k) + ("#### 4" if ok else "#### 5")
        rows_raw.append(raw_fn(text, {"gold": "4"}))
        rows_gated.append(gated_fn(text, {"gold": "4"}))
    r_raw = np.corrcoef(np.array(rows_raw)[:, :2].T)[0, 1]
    r_gated = np.corrcoef(np.array(rows_gated)[:, :2].T)[0, 1]
    se = 1 / np.sqrt(2000)
    assert abs(r_raw) < 4 * se
    assert r_gated < -0.3


@pytest.mark.parametrize("L0", [0, -5, float("nan"), "200"])
def test_bad_L0(L0):
    with pytest.raises(ValueError, match="L0"):
        MathRewardFunction(L0=L0)
