"""A strict-verifier reward with the channel-variance heterogeneity of the paper's open experiment.

The paper conjectures that AN (aggregate, then normalize) can starve a *high-weight,
low-variance* channel when another channel has a much larger within-group spread
(Proposition 1: AN's influence of a channel grows with ``w_k sigma_k``, NA's with ``w_k``
alone). This reward builds that situation on mini-math with two channels, in order:

``strict`` (the hard channel, channel 0)
    1 if the reply ends with the sentence ``"the answer is N."`` and ``N`` equals the
    gold answer, else 0. A strict verifier: it reads the answer only in that form. The
    shipped tiny policy states its answer that way in about a fifth of its replies and
    gets about a third of its answers right, so a strict success is rare at first (a few
    percent, measured in ``data/heterogeneity``) and most groups of 8 replies are all
    0 on it: a low within-group variance that hides a large room to improve.
``format`` (the easy channel, channel 1)
    1 if the reply ends with ``"the answer is <number>."`` (any number), else 0. One
    decision the policy already makes now and then, so its within-group variance is
    high from the start.

A strict success needs the format (``strict <= format`` on every reply), so zero-fill
conditioning with ``format`` as the gate of ``strict`` changes no reward: see
:func:`mrgrpo.analysis.heterogeneity.conditioning_changes`.
"""
from __future__ import annotations

import re
from fractions import Fraction
from typing import Any, Optional, Sequence

from mrgrpo.rewards.math import gold_answer, parse_number

__all__ = ["STRICT_CHANNELS", "ANSWER_SENTENCE", "StrictAnswerReward", "stated_answer"]

#: The channels of :class:`StrictAnswerReward`, in order (channel 0, the hard one, first).
STRICT_CHANNELS = ("strict", "format")

#: The answer form the strict verifier reads: the reply's last sentence, ``"the answer is N."``.
ANSWER_SENTENCE = "the answer is N."

# the final sentence "the answer is N." (N a signed integer or decimal), nothing after it but spaces
_SENTENCE_RE = re.compile(r"the answer is\s+(-?\d+(?:\.\d+)?)\s*\.\s*$", re.IGNORECASE)


def stated_answer(completion: str) -> Optional[Fraction]:
    """The number ``N`` of a reply that ends with ``"the answer is N."``, else ``None``.

    Parameters
    ----------
    completion : str

    Examples
    --------
    >>> stated_answer(" 2 + 3 = 5. the answer is 5.")
    Fraction(5, 1)
    >>> stated_answer(" 2 + 3 = 5. #### 5") is None
    True
    """
    if not isinstance(completion, str):
        raise ValueError(f"completion must be a str, got {type(completion).__name__}")
    found = _SENTENCE_RE.search(completion)
    return None if found is None else parse_number(found.group(1))


class StrictAnswerReward:
    """``(strict, format)``: a rare, high-value strict success and an easy, common format.

    Parameters
    ----------
    None. The prompt item must carry the gold answer (a dict with ``gold``, as
    :func:`mrgrpo.tasks.mini_math.make_mini_math` makes them, or a ``(prompt, gold)`` pair).

    Notes
    -----
    ``__call__(completion, prompt) -> (strict, format)``, both 0 or 1, ``strict <= format``.
    """

    channel_names: tuple[str, ...] = STRICT_CHANNELS

    def __repr__(self) -> str:
        return "StrictAnswerReward()"

    def __call__(self, completion: str, prompt: Any) -> Sequence[float]:
        answer = stated_answer(completion)
        if answer is None:
            return (0.0, 0.0)
        return (float(answer == gold_answer(prompt)), 1.0)
