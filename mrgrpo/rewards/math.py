"""Math reward: correctness, length and format channels for GSM8K-style answers.

Channels, in order (channel 0 is the gate):

``correctness``  1 if the completion's final answer equals the gold answer as a number, else 0.
``length``       ``tanh(-|log(n_tokens / L0)|)``: 0 at ``n_tokens = L0``, towards -1 either side.
``format``       1 if the final answer is given in an expected form (``#### N`` or ``\\boxed{...}``).

The final answer is the *last* answer marker in the completion: ``\\boxed{...}``
(balanced braces, so ``\\boxed{\\frac{1}{2}}`` works) or ``#### N``, whichever
comes later. Numbers are compared exactly as fractions after normalisation:
thousands separators (``1,234`` and LaTeX ``1{,}234``), signs (``-`` and the
Unicode minus), decimals, ``\\frac{a}{b}`` / ``\\dfrac`` / ``a/b``, mixed numbers
(``2\\frac{1}{2}``), a leading currency sign (``$``, ``\\$``, ``€``, ``£``) and
trailing units or ``\\text{...}`` words (``18 dollars``, ``5\\text{ cm}``, ``50\\%``).
"""
from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any, Sequence

__all__ = [
    "MATH_CHANNELS",
    "MathRewardFunction",
    "extract_answer",
    "find_final_answer",
    "parse_number",
    "answers_match",
    "length_score",
    "count_tokens",
    "gold_answer",
]

#: The math reward's channels, in order (channel 0, correctness, is the gate); also the column
#: names of the paper's released GSM8K rollouts.
MATH_CHANNELS = ("correctness", "length", "format")

_INT = r"(?:\d{1,3}(?:,\d{3})+|\d+)"  # a comma is a separator only in groups of three
_NUM = rf"(?:{_INT}(?:\.\d+)?|\.\d+)"
_SIGNED = rf"[-+]?\s*{_NUM}"
_FRAC_RE = re.compile(r"\\frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_CURRENCY = r"(?:\$|€|£|¥|usd|eur|rs\.?)"
# one number, optionally signed, with optional currency in front and a unit tail
_VALUE_RE = re.compile(
    rf"^\s*(?P<s1>[-+]?)\s*{_CURRENCY}?\s*(?P<s2>[-+]?)\s*"
    rf"(?P<whole>{_NUM})(?:\s+(?P<mixed>{_INT})\s*/\s*(?P<mden>{_INT})|\s*/\s*(?P<den>{_NUM}))?"
    r"(?P<tail>[^\d]*)$",
    re.IGNORECASE,
)
_UNIT_TAIL_RE = re.compile(r"^[\sa-zA-Z%°.]*$")
_GSM_RE = re.compile(r"####")


def _unwrap_text(s: str) -> str:
    """Replace ``\\text{x}``-style commands by their content and drop spacing macros."""
    s = re.sub(r"\\(?:text|textbf|mathrm|mbox|operatorname)\s*\{([^{}]*)\}", r" \1 ", s)
    s = s.replace("{,}", ",").replace("\\!", "").replace("\\,", "").replace("\\;", " ").replace("\\ ", " ")
    s = s.replace("\\left", "").replace("\\right", "").replace("\\%", "%").replace("\\$", "$")
    s = s.replace("^\\circ", "").replace("^{\\circ}", "").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("\u2212", "-").replace("$", " $ ").strip()
    return s


def _to_fraction(num: str) -> Fraction:
    return Fraction(num.replace(",", "").replace(" ", ""))


def parse_number(text: str) -> Fraction | None:
    """Parse one numeric answer into an exact :class:`~fractions.Fraction`.

    Accepts the forms listed in the module docstring; returns ``None`` when the
    text is not a single number (``"3, 4"``, ``"x + 1"``, empty). An equation
    ``x = 5`` is read from its right-hand side.
    """
    if text is None:
        return None
    s = _unwrap_text(str(text))
    if "=" in s:
        s = s.rsplit("=", 1)[1]
    # \frac{a}{b}, possibly after a whole part (mixed number) and a sign
    m = _FRAC_RE.search(s)
    if m:
        num, den = parse_number(m.group(1)), parse_number(m.group(2))
        if num is None or den is None or den == 0:
            return None
        head, tail = s[: m.start()].strip(), s[m.end():]
        if not _UNIT_TAIL_RE.match(tail):
            return None
        value = num / den
        head = re.sub(rf"^{_CURRENCY}", "", head.replace(" ", ""), flags=re.IGNORECASE)
        sign = 1
        if head.startswith("-"):
            sign, head = -1, head[1:]
        elif head.startswith("+"):
            head = head[1:]
        head = re.sub(rf"^{_CURRENCY}", "", head, flags=re.IGNORECASE)
        if head:
            if not re.fullmatch(_INT, head):
                return None
            value = _to_fraction(head) + value
        return sign * value
    m = _VALUE_RE.match(s)
    if not m or not _UNIT_TAIL_RE.match(m.group("tail")):
        return None
    if m.group("s1") and m.group("s2"):
        return None
    value = _to_fraction(m.group("whole"))
    if m.group("mixed"):
        mden = _to_fraction(m.group("mden"))
        if mden == 0:
            return None
        value += _to_fraction(m.group("mixed")) / mden
    elif m.group("den"):
        den = _to_fraction(m.group("den"))
        if den == 0:
            return None
        value /= den
    return -value if "-" in (m.group("s1") + m.group("s2")) else value


def _boxed_spans(text: str) -> list[tuple[int, str]]:
    """(position, content) of every ``\\boxed{...}`` with balanced braces."""
    out = []
    for m in re.finditer(r"\\boxed\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            out.append((m.start(), text[m.end(): i - 1]))
    return out


def _gsm_spans(text: str) -> list[tuple[int, str]]:
    """(position, number text) of every ``#### N``; N is the number right after the marker."""
    out = []
    lead = re.compile(rf"\s*(?:[-+\u2212]\s*)?{_CURRENCY}?\s*[-+\u2212]?\s*{_NUM}(?:\s*/\s*{_NUM})?", re.IGNORECASE)
    for m in _GSM_RE.finditer(text):
        rest = text[m.end():].split("\n", 1)[0]
        n = lead.match(rest)
        out.append((m.start(), n.group(0) if n else ""))
    return out


def find_final_answer(text: str) -> tuple[str, str] | None:
    """The last answer marker in ``text`` as ``(kind, content)``.

    ``kind`` is ``"boxed"`` or ``"####"``; ``content`` is the raw answer text
    (for ``####`` the number right after the marker, empty if none). ``None``
    when the text has neither marker.
    """
    spans = [(p, "boxed", c) for p, c in _boxed_spans(text)] + [(p, "####", c) for p, c in _gsm_spans(text)]
    if not spans:
        return None
    _, kind, content = max(spans)
    return kind, content


def extract_answer(text: str, last_number_fallback: bool = False) -> Fraction | None:
    """The final answer of a completion as a number, or ``None``.

    With ``last_number_fallback`` a completion without any answer marker is
    read from its last number (the reference package always does this).
    """
    found = find_final_answer(text)
    if found is not None:
        return parse_number(found[1])
    if last_number_fallback:
        nums = re.findall(rf"-?{_NUM}", _unwrap_text(text))
        return parse_number(nums[-1]) if nums else None
    return None


def gold_answer(prompt: Any) -> Fraction:
    """The gold answer carried by a prompt item, as a number.

    Accepts a dict with ``gold`` (or ``gold_answer``, or a GSM8K ``answer``
    field ending in ``#### N``), or a ``(prompt, gold)`` pair.
    """
    gold = None
    if isinstance(prompt, dict):
        for key in ("gold", "gold_answer", "answer"):
            if key in prompt:
                gold = prompt[key]
                break
    elif isinstance(prompt, (tuple, list)) and len(prompt) == 2 and not isinstance(prompt[0], dict):
        gold = prompt[1]
    if gold is None:
        raise ValueError("MathRewardFunction needs the gold answer: pass prompt items as dicts with a "
                         "'gold' key (or 'gold_answer' / GSM8K 'answer'), or (prompt, gold) pairs; "
                         f"got {type(prompt).__name__}")
    text = str(gold)
    if "####" in text:
        text = text.rsplit("####", 1)[1]
    value = parse_number(text)
    if value is None:
        raise ValueError(f"gold answer {str(gold)[:80]!r} is not a number")
    return value


def answers_match(completion: str, gold: Any, last_number_fallback: bool = False) -> bool:
    """Whether the completion's final answer equals ``gold`` (a number or numeric string)."""
    answer = extract_answer(completion, last_number_fallback)
    target = gold if isinstance(gold, Fraction) else parse_number(str(gold))
    return answer is not None and target is not None and answer == target


def count_tokens(text: str, tokenizer: Any = None) -> int:
    """Token count of ``text``.

    ``tokenizer`` may be an object with ``encode`` (a Hugging Face tokenizer:
    special tokens are not added) or a callable returning a count or a token list.
    Without one the count falls back to whitespace-separated words, the
    reference package's convention; English BPE tokenizers give about 1.3
    tokens per word, so pass the policy's tokenizer for token-exact lengths.
    """
    if tokenizer is None:
        return len(text.split())
    if hasattr(tokenizer, "encode"):
        try:
            ids = tokenizer.encode(text, add_special_tokens=False)
        except TypeError:
            ids = tokenizer.encode(text)
        return len(getattr(ids, "ids", ids))
    out = tokenizer(text)
    return int(out) if isinstance(out, (int, float)) else len(out)


def length_score(n_tokens: int, L0: float) -> float:
    """``tanh(-|log(n_tokens / L0)|)``, in ``[-1, 0]``; ``-1`` (the limit) for ``n_tokens = 0``."""
    if n_tokens <= 0:
        return -1.0
    return math.tanh(-abs(math.log(n_tokens / L0)))


class MathRewardFunction:
    """Reward for GSM8K-style math: ``(correctness, length, format)``.

    Parameters
    ----------
    L0 : float
        Target length in tokens of the length channel (200 at paper scale; the
        tiny character-level policy wants a few dozen characters).
    tokenizer : optional
        Used to count tokens (see :func:`count_tokens`); without one, words.
    gate_length_on_correct : bool
        Multiply the length channel by ``correct + gamma * (1 - correct)``.
    gamma : float
        Prop 4's contamination knob for the gate (0: length counts only on
        correct answers; 1: no gating).
    last_number_fallback : bool
        Read an answer without marker from the last number (the reference's
        behaviour). Off by default: ``correctness`` then requires the answer in
        a marked form, so it never exceeds ``format``.

    Notes
    -----
    **The gating trap.** The length channel lies in ``[-1, 0]``: 0 is its best
    value. Gating by correctness sets it to 0 for every wrong answer, i.e. gives
    wrong answers the *best* possible length score, while correct answers keep
    their (negative) score. The gated length channel is then negatively
    correlated with correctness by construction, whatever the policy does, and
    a learner rewarded on it is pushed away from correct answers. Gate a
    non-negative score (e.g. ``1 + length``) if a gated length is wanted; the
    ungated value is always available from :meth:`raw_length`.
    """

    channel_names: tuple[str, ...] = MATH_CHANNELS

    def __init__(self, L0: float = 200, tokenizer: Any = None, gate_length_on_correct: bool = False,
                 gamma: float = 0.0, last_number_fallback: bool = False):
        if not (isinstance(L0, (int, float)) and math.isfinite(L0) and L0 > 0):
            raise ValueError(f"L0 must be a positive finite number of tokens, got {L0!r}")
        if not math.isfinite(gamma):
            raise ValueError(f"gamma must be finite, got {gamma!r}")
        self.L0 = float(L0)
        self.tokenizer = tokenizer
        self.gate_length_on_correct = bool(gate_length_on_correct)
        self.gamma = float(gamma)
        self.last_number_fallback = bool(last_number_fallback)

    def __repr__(self) -> str:
        return (f"MathRewardFunction(L0={self.L0:g}, tokenizer={'yes' if self.tokenizer is not None else None}, "
                f"gate_length_on_correct={self.gate_length_on_correct}, gamma={self.gamma:g})")

    def correctness(self, completion: str, prompt: Any) -> float:
        return float(answers_match(completion, gold_answer(prompt), self.last_number_fallback))

    def raw_length(self, completion: str, prompt: Any = None) -> float:
        """The ungated length score ``tanh(-|log(n_tokens / L0)|)``."""
        return length_score(count_tokens(completion, self.tokenizer), self.L0)

    @staticmethod
    def format(completion: str, prompt: Any = None) -> float:
        """1 if the last answer marker is ``#### N`` with a number, or a non-empty ``\\boxed{}``."""
        found = find_final_answer(completion)
        return float(found is not None and found[1].strip() != "")

    def __call__(self, completion: str, prompt: Any) -> Sequence[float]:
        c = self.correctness(completion, prompt)
        length = self.raw_length(completion, prompt)
        if self.gate_length_on_correct:
            length *= c + self.gamma * (1.0 - c)
        return (c, length, self.format(completion, prompt))
