"""Text rules shared by a reward and by the reply measures: words, content words, relevance, echo.

Stated once, used by the hardened fintech reward (:mod:`mrgrpo.rewards.fintech`) and by the
gaming measures (:mod:`mrgrpo.analysis.replies`):

- *words*: the lower-cased text split into runs of letters, digits and inner apostrophes
  (``"I'm sorry, for"`` -> ``["i'm", "sorry", "for"]``);
- *content words*: words of three or more letters outside :data:`STOPWORDS` (function words
  and the courtesy words any reply may use: "sorry", "help", "please"), compared after
  stripping one of the endings ``-ing``, ``-ed``, ``-es``, ``-s``;
- *relevant*: the reply shares at least :data:`RELEVANCE_MIN_SHARED` content word with the
  request (an echo of the request counts as relevant by this rule);
- *echo*: the reply's first :data:`ECHO_WORDS` words are the request's.
"""
from __future__ import annotations

import re

__all__ = ["ECHO_WORDS", "RELEVANCE_MIN_SHARED", "STOPWORDS", "words", "content_words", "is_relevant", "is_echo"]

#: A reply whose first this many words are the request's first words is an echo.
ECHO_WORDS = 8
#: Content words a reply must share with its request to count as relevant.
RELEVANCE_MIN_SHARED = 1
#: Function words and courtesy words: not evidence that a reply addresses a request.
STOPWORDS = frozenset("""
a about above after again against all also am an and any are aren't as at be because been before being below
between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each
few for from further get got had hadn't has hasn't have haven't having he her here hers herself him himself
his how i i'd i'll i'm i've if in into is isn't it it's its itself just let's may me might more most much must
my myself no nor not now of off on once one only or other ought our ours ourselves out over own really right
same shall she should shouldn't so some still such than that that's the their theirs them themselves then
there there's these they they're this those through to too under until up very was wasn't way we we're were
weren't what what's when where which while who whom why will with won't would wouldn't you you'll you're
you've your yours yourself yourselves
hello hi hey thanks thank please sorry help okay ok yes know tell want need like
""".split())

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)*")


def words(text: str) -> list[str]:
    """The lower-cased words of ``text`` (letters, digits, inner apostrophes)."""
    if not isinstance(text, str):
        raise ValueError(f"a reply or request must be a str, got {type(text).__name__}")
    return _WORD.findall(text.lower())


def _stem(w: str) -> str:
    for end in ("ing", "ed", "es", "s"):
        if w.endswith(end) and len(w) - len(end) >= 3:
            return w[: -len(end)]
    return w


def content_words(text: str) -> set[str]:
    """Stemmed content words of ``text``: three or more letters, not a stopword, not a number."""
    return {_stem(w) for w in words(text) if len(w) >= 3 and w.isalpha() and w not in STOPWORDS}


def is_relevant(request: str, reply: str, min_shared: int = RELEVANCE_MIN_SHARED) -> bool:
    """Does ``reply`` share at least ``min_shared`` content words with ``request``?"""
    return len(content_words(request) & content_words(reply)) >= int(min_shared)


def is_echo(request: str, reply: str, n: int = ECHO_WORDS) -> bool:
    """Do ``reply``'s first ``n`` words (all of them when the request is shorter) repeat ``request``'s?"""
    q, r = words(request)[:n], words(reply)[:n]
    return bool(q) and r == q
