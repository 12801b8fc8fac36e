"""Mini-math: small GSM8K-style arithmetic word problems for the tiny policy.

Each problem is a one- to three-step word problem with small numbers (operands
and intermediate results mostly below 100, answers non-negative integers), a
gold answer and a short worked solution ending in ``#### <answer>``, the
GSM8K convention::

    Q: mia has 12 shells. she finds 5 more shells. how many shells does mia have now?
    A: 12 + 5 = 17. #### 17

The text uses only the characters in :data:`MINI_MATH_ALPHABET` (lowercase
letters, digits and a little punctuation), so a character-level tokenizer can
build its vocabulary from that constant.

Splits. Every problem has a *canonical key*: its arithmetic skeleton (frame,
operations and numbers, without names or objects). A problem belongs to the
held-out ``"test"`` split when a SHA-256 digest of that key falls in the
lowest :data:`TEST_FRACTION` of the range, else to ``"train"``. The two splits
therefore share no problem, and not even a renamed copy of one: a test problem's
numbers-and-operations never occur in training text.
"""
from __future__ import annotations

import hashlib
import string
from typing import Any

import numpy as np

from mrgrpo.core.checks import SeedLike, as_generator

__all__ = [
    "MINI_MATH_ALPHABET",
    "MINI_MATH_L0",
    "MINI_MATH_MAX_NEW_TOKENS",
    "TEST_FRACTION",
    "make_mini_math",
    "solution_text",
    "format_prompt",
    "format_example",
    "problem_split",
]

#: Every character a prompt, solution or :func:`format_example` string can contain
#: (newline included, between the question and ``A:``).
MINI_MATH_ALPHABET: str = string.ascii_lowercase + string.digits + " \n.,?:+-*/=#QA"

#: Target length (characters = tokens of the tiny policy) of the math length channel on
#: mini-math: between a one-step answer (about 20 characters) and a three-step one (about 50).
MINI_MATH_L0 = 32

#: Completion budget on mini-math: the longest worked solution is 53 characters.
MINI_MATH_MAX_NEW_TOKENS = 72

#: Share of canonical problem keys assigned to the held-out ``"test"`` split.
TEST_FRACTION: float = 0.2

_SPLITS = ("train", "test")

# (name, subject pronoun, possessive pronoun)
_PEOPLE = [
    ("tom", "he", "his"), ("sam", "he", "his"), ("ben", "he", "his"), ("leo", "he", "his"),
    ("max", "he", "his"), ("omar", "he", "his"), ("raj", "he", "his"), ("ivan", "he", "his"),
    ("jack", "he", "his"), ("luis", "he", "his"), ("noah", "he", "his"), ("kai", "he", "his"),
    ("mia", "she", "her"), ("ana", "she", "her"), ("zoe", "she", "her"), ("lily", "she", "her"),
    ("emma", "she", "her"), ("sara", "she", "her"), ("nina", "she", "her"), ("amy", "she", "her"),
    ("lucy", "she", "her"), ("rosa", "she", "her"), ("ella", "she", "her"), ("maya", "she", "her"),
]
_OBJECTS = ["apples", "pens", "books", "shells", "stamps", "marbles", "cards", "cookies",
            "stickers", "coins", "eggs", "balloons", "rocks", "toys", "pencils", "flowers"]
_CONTAINERS = ["boxes", "bags", "jars", "baskets", "packs"]
_ITEMS = [("pen", "pens"), ("book", "books"), ("cup", "cups"), ("toy", "toys"), ("hat", "hats"),
          ("ball", "balls"), ("lamp", "lamps"), ("kite", "kites"), ("card", "cards"), ("cake", "cakes")]
_GAIN = ["buys {b} more {obj}", "finds {b} more {obj}", "gets {b} more {obj}",
         "is given {b} more {obj}"]
_LOSS = ["gives {b} {obj} to {other}", "loses {b} {obj}", "sells {b} {obj}",
         "gives away {b} {obj}"]


def _fmt_step(a: int, op: str, b: int, c: int) -> str:
    return f"{a} {op} {b} = {c}."


def _count_problem(rng: np.random.Generator, n_steps: int) -> dict[str, Any] | None:
    """Objects owned by one person, changed by 1-3 operations; None if a draw is rejected."""
    i, j = rng.choice(len(_PEOPLE), size=2, replace=False)
    name, he, _his = _PEOPLE[i]
    other, he2, _ = _PEOPLE[j]
    obj = _OBJECTS[rng.integers(len(_OBJECTS))]
    sentences: list[str] = []
    steps: list[str] = []
    key: list[Any] = ["count"]
    left = n_steps
    if n_steps >= 2 and rng.random() < 0.4:
        k, per = int(rng.integers(2, 7)), int(rng.integers(2, 11))
        x = k * per
        cont = _CONTAINERS[rng.integers(len(_CONTAINERS))]
        sentences.append(f"{name} has {k} {cont} with {per} {obj} in each.")
        steps.append(_fmt_step(k, "*", per, x))
        key += ["boxes", k, per]
        left -= 1
    else:
        x = int(rng.integers(2, 41))
        sentences.append(f"{name} has {x} {obj}.")
        key += ["has", x]
    subject, pron = name, he
    question = None
    used_mul = False
    for s in range(left):
        last = s == left - 1
        choices = ["add", "sub"]
        if not used_mul and x <= 25:
            choices.append("mul")
        if last and x >= 4:
            choices.append("div")
        op = choices[rng.integers(len(choices))]
        if op == "add":
            b = int(rng.integers(2, 31))
            sentences.append(f"{pron} " + _GAIN[rng.integers(len(_GAIN))].format(b=b, obj=obj) + ".")
            steps.append(_fmt_step(x, "+", b, x + b))
            x += b
        elif op == "sub":
            if x < 4:
                return None
            b = int(rng.integers(2, x))
            sentences.append(f"{pron} " + _LOSS[rng.integers(len(_LOSS))].format(b=b, obj=obj, other=other) + ".")
            steps.append(_fmt_step(x, "-", b, x - b))
            x -= b
        elif op == "mul":
            used_mul = True
            k = int(rng.integers(2, 5))
            if x * k > 100:
                return None
            times = {2: "twice", 3: "three times", 4: "four times"}[k]
            sentences.append(f"{other} has {times} as many {obj} as {subject}.")
            steps.append(_fmt_step(x, "*", k, x * k))
            x *= k
            subject, pron = other, he2
        else:  # div, always the last operation
            divisors = [d for d in range(2, 7) if x % d == 0 and x // d >= 1]
            if not divisors:
                return None
            d = divisors[rng.integers(len(divisors))]
            cont = _CONTAINERS[rng.integers(len(_CONTAINERS))]
            sentences.append(f"{pron} puts the {obj} equally into {d} {cont}.")
            question = f"how many {obj} are in each of the {cont}?"
            steps.append(_fmt_step(x, "/", d, x // d))
            x //= d
        key += [op, int(steps[-1].split()[2])]
    if question is None:
        question = f"how many {obj} does {subject} have now?"
    return {"sentences": sentences, "question": question, "steps": steps, "answer": x, "key": key}


def _money_problem(rng: np.random.Generator, n_steps: int) -> dict[str, Any] | None:
    """Buying things: price times count, an extra purchase, change from a bill."""
    name, he, _his = _PEOPLE[rng.integers(len(_PEOPLE))]
    i1, i2 = rng.choice(len(_ITEMS), size=2, replace=False)
    one, many = _ITEMS[i1]
    one2, _ = _ITEMS[i2]
    p, k = int(rng.integers(2, 16)), int(rng.integers(2, 7))
    if p * k > 90:
        return None
    x = p * k
    sentences = [f"a {one} costs {p} dollars.", f"{name} buys {k} {many}."]
    steps = [_fmt_step(p, "*", k, x)]
    key: list[Any] = ["money", p, k]
    question = f"how many dollars does {name} spend?"
    extra = n_steps - 1
    if extra == 2 or (extra == 1 and rng.random() < 0.5):
        q = int(rng.integers(2, 21))
        sentences.append(f"{he} also buys a {one2} for {q} dollars.")
        steps.append(_fmt_step(x, "+", q, x + q))
        x += q
        key += ["extra", q]
        extra -= 1
    if extra == 1:
        bills = [bill for bill in (10, 20, 50, 100) if bill > x]
        if not bills:
            return None
        bill = bills[0] if x > 50 else bills[rng.integers(min(2, len(bills)))]
        sentences.append(f"{he} pays with a {bill} dollar bill.")
        question = f"how many dollars of change does {he} get?"
        steps.append(_fmt_step(bill, "-", x, bill - x))
        x = bill - x
        key += ["change", bill]
    return {"sentences": sentences, "question": question, "steps": steps, "answer": x, "key": key}


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def problem_split(key: str) -> str:
    """The split (``"train"`` or ``"test"``) of a canonical problem key."""
    return "test" if _digest("split:" + key) < TEST_FRACTION * 2**64 else "train"


def _draw(rng: np.random.Generator) -> dict[str, Any]:
    while True:
        n_steps = int(rng.integers(1, 4))
        raw = (_money_problem if rng.random() < 0.25 else _count_problem)(rng, n_steps)
        if raw is None or raw["answer"] < 0 or len(raw["steps"]) != n_steps:
            continue
        question = " ".join(raw["sentences"] + [raw["question"]])
        solution = " ".join(raw["steps"]) + f" #### {raw['answer']}"
        key = " ".join(str(t) for t in raw["key"])
        return {
            "prompt": question,
            "gold": str(raw["answer"]),
            "solution": solution,
            "n_steps": n_steps,
            "id": "mm-" + hashlib.sha256(question.encode("utf-8")).hexdigest()[:12],
            "key": key,
        }


def make_mini_math(n: int, seed: SeedLike = 0, split: str = "train") -> list[dict]:
    """Generate ``n`` distinct mini-math problems from one split.

    Parameters
    ----------
    n : int
        Number of problems (non-negative).
    seed : int or numpy.random.Generator
        Same seed and split give the same list, in the same order.
    split : {"train", "test"}
        Problems whose canonical key hashes into the held-out fraction
        (:data:`TEST_FRACTION`) form ``"test"``; all others form ``"train"``.

    Returns
    -------
    list of dict
        Each with ``prompt`` (question text), ``gold`` (the answer, a string of a
        non-negative integer), ``solution`` (worked steps ending in ``#### <gold>``),
        ``n_steps`` (1, 2 or 3 arithmetic steps), ``id`` (``"mm-"`` plus 12 hex
        digits of the question's SHA-256: stable across processes and versions of
        numpy's stream), ``key`` (the canonical arithmetic skeleton) and ``split``.
    """
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    rng = as_generator(seed)
    out: list[dict] = []
    seen: set[str] = set()
    max_draws = 200 * n + 1000
    draws = 0
    while len(out) < n:
        draws += 1
        if draws > max_draws:  # pragma: no cover - the problem space is far larger than any sane n
            raise ValueError(f"could not draw {n} distinct {split} problems in {max_draws} draws")
        p = _draw(rng)
        if p["id"] in seen or problem_split(p["key"]) != split:
            continue
        seen.add(p["id"])
        p["split"] = split
        out.append(p)
    return out


def _question(problem: dict | str) -> str:
    return problem if isinstance(problem, str) else problem["prompt"]


def solution_text(problem: dict) -> str:
    """The worked solution of a problem: ``"<step>. <step>. #### <answer>"``."""
    return problem["solution"]


def format_prompt(problem: dict | str) -> str:
    """The model input for a problem: ``"Q: <question>\\nA:"``.

    The model is expected to continue with ``" <worked steps> #### <answer>"``.
    """
    return f"Q: {_question(problem)}\nA:"


def format_example(problem: dict) -> str:
    """A full training example: :func:`format_prompt` plus ``" "`` plus the solution."""
    return format_prompt(problem) + " " + solution_text(problem)
