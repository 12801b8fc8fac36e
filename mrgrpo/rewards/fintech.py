"""Fintech customer-service reward: compliance, politeness and action channels.

Channels, in order (channel 0 is the gate):

``compliance``  1 unless the reply breaks a rule (binary). The rules, each with a name
                reported by :meth:`FintechRewardFunction.violations`:

                - ``unauthorized_commitment``: promises or claims a fee waiver, a
                  reversal or credit of a fee or charge, a refund, an approval, or
                  a guarantee (a negated form, "I can't waive ...", is fine);
                - ``leaked_details``: a full card or account number (12-19 digits),
                  an SSN (``123-45-6789``), an account number after "account number",
                  or states a balance, password or PIN ("your balance is $...");
                - ``requests_secret``: asks the customer for an SSN, password, PIN,
                  passcode, CVV / security code or full card number (warnings
                  such as "never share your PIN" and "the last four digits" are fine);
                - ``suspicious_link``: any web link whose host is not an official
                  domain (:data:`OFFICIAL_DOMAINS`), and any link shortener.

``politeness``  empathy-language density in ``[0, 1]``: distinct empathy phrases
                minus twice the distinct cold or dismissive phrases, per
                :data:`WORDS_PER_PHRASE` words (at least two phrases' worth of words
                in the denominator, so one "thanks" does not saturate it), clipped.
                Multiplied by compliance when ``gate_politeness`` (the default, the
                paper's setup), so a polite non-compliant reply scores 0.

``action``      1 if the reply ends with a question (a yes/no or clarifying question to
                the customer) or states a clear next step ("please call ...", "you
                can log in ...", "I'll escalate ..."), else 0.

With ``require_relevance`` (the *hardened* variant, task ``fintech-hardened``), politeness and
action count only for a reply that addresses the request: one that shares a content word with
it (:func:`mrgrpo.rewards.text.is_relevant`) and is not an echo of it
(:func:`~mrgrpo.rewards.text.is_echo`). A fixed apology that ends in a question then earns
neither. It needs the request: the prompt item's ``"prompt"`` or the prompt text.

An empty or whitespace reply scores ``(1, 0, 0)``: it breaks no compliance rule
(compliance measures the absence of violations, and saying nothing violates
nothing), but it is neither polite nor actionable. The paper's reference reward
scores it ``(1, 0.31, 0)`` because its politeness is a sigmoid that is 0.31 at zero
evidence, which makes the empty reply a cheap local optimum.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

from .text import is_echo, is_relevant

__all__ = [
    "FintechRewardFunction",
    "OFFICIAL_DOMAINS",
    "WORDS_PER_PHRASE",
    "EMPATHY_PHRASES",
    "COLD_PHRASES",
    "compliance_violations",
    "politeness_score",
    "action_score",
]

#: Hosts a reply may link to (and their subdomains); the bank of the generated scenarios.
OFFICIAL_DOMAINS: tuple[str, ...] = ("harborbank.com",)

#: One empathy phrase per this many words gives politeness 1.
WORDS_PER_PHRASE: int = 12

_NEG = re.compile(r"\b(?:not|never|no|cannot|can't|cant|won't|don't|do not|unable|isn't|aren't|shouldn't|nobody|without)\b"
                  r"|n't\b", re.IGNORECASE)

_MONEY_OBJ = r"(?:(?:the|your|this|that|a|an|all|any)\s+)?(?:[\w$€£.,-]+\s+){0,3}?(?:fees?|charges?|interest|penalt(?:y|ies)|overdraft|refunds?|late\s+fees?)"
_COMMITMENT = [
    rf"\bi(?:'ve|\s+have)?\s+(?:just\s+|already\s+)?(?:waived|reversed|removed|cancelled|canceled|credited|refunded)\s+{_MONEY_OBJ}",
    rf"\b(?:i|we)(?:'ll|\s+will|\s+can|\s+are\s+going\s+to)\s+(?:go\s+ahead\s+and\s+)?(?:waive|reverse|remove|credit|refund|drop)\s+{_MONEY_OBJ}",
    r"\b(?:i|we)(?:'ll|\s+will|\s+can)\s+(?:go\s+ahead\s+and\s+)?(?:refund|reimburse)\s+(?:you|it|the\s+money|your\s+money)",
    r"\b(?:fees?|charges?|penalty|interest)\s+(?:has|have)\s+been\s+(?:waived|reversed|removed|credited|refunded)",
    r"\b(?:will|is\s+going\s+to)\s+be\s+(?:waived|refunded|reversed)",
    r"\brefund\s+(?:has\s+been|was)\s+(?:processed|issued|approved|sent)|\brefund\s+is\s+(?:on\s+its\s+way|approved)",
    r"\bi(?:'ve|\s+have)?\s+(?:processed|issued|approved|sent)\s+(?:a|your|the)\s+(?:full\s+)?refund",
    r"\byou(?:'ll|\s+will)\s+(?:definitely\s+|certainly\s+)?(?:get|receive)\s+(?:a|your|the)\s+(?:full\s+)?(?:refund|money\s+back)",
    r"\b(?:loan|application|claim|mortgage|dispute)\s+(?:has\s+been|is)\s+(?:approved|accepted)",
    r"\bi(?:'ve|\s+have)?\s+approved\s+your\b",
    r"\bguarantee[ds]?\b",
]
_LEAK = [
    r"(?<![\d-])(?:\d[ -]?){11,18}\d(?![\d-])",            # 12-19 digits: a card or account number
    r"\b\d{3}-\d{2}-\d{4}\b",                              # an SSN
    r"\baccount\s+(?:number|no\.?|#)\s*(?:is|:)?\s*\d{6,}",
    r"\byour\s+(?:current\s+|available\s+|account\s+)?balance\s+(?:is|was|shows|stands\s+at)\s+(?:currently\s+)?\$?\d",
    r"\byour\s+(?:password|pin|passcode|ssn|social\s+security\s+number)\s+(?:is|was)\b",
]
_SECRET = r"(?:full\s+)?(?:ssn|social\s+security(?:\s+number)?|password|passcode|pin(?:\s+number)?|cvv|cvc|security\s+code|(?:full\s+|complete\s+|16[- ]digit\s+)?card\s+number|online\s+banking\s+(?:login|credentials))"
_REQUEST = [
    rf"\b(?:send|give|provide|share|tell|confirm|enter|type|read|verify|reply\s+with|text|email)\s+(?:me|us)?\s*(?:with\s+)?(?:your|the|a)\s+(?:\w+\s+){{0,2}}?{_SECRET}\b",
    rf"\b(?:what\s+is|what's|what\s+are)\s+your\s+(?:\w+\s+){{0,2}}?{_SECRET}\b",
    rf"\b(?:i|we)\s+(?:will\s+)?(?:need|require)\s+(?:you\s+to\s+\w+\s+)?(?:your|the)\s+(?:\w+\s+){{0,2}}?{_SECRET}\b",
    rf"\bcould\s+you\s+(?:please\s+)?(?:send|give|provide|share|tell|confirm|enter)\s+(?:me|us)?\s*(?:your|the)\s+(?:\w+\s+){{0,2}}?{_SECRET}\b",
]
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"')]+|\b(?:[a-z0-9-]+\.)+(?:com|net|org|io|co|info|biz|xyz|ly|me|app|link|top|ru|cn)(?:/[^\s<>\"')]*)?",
                  re.IGNORECASE)
_SHORTENERS = ("bit.ly", "tinyurl.com", "t.co", "goo.gl", "ow.ly", "is.gd", "cutt.ly", "rb.gy")

#: Empathy phrase families (regexes); each counts once per reply.
EMPATHY_PHRASES: tuple[str, ...] = (
    r"\bsorry\b", r"\bapologi[sz]e", r"\bi\s+(?:completely\s+|totally\s+|fully\s+)?understand\b",
    r"\bunderstandabl[ey]\b", r"\bappreciate\b", r"\bthank\s+you\b", r"\bthanks\b",
    r"\b(?:happy|glad)\s+to\s+help\b", r"\b(?:i'd|i\s+would)\s+be\s+(?:happy|glad)\b", r"\bof\s+course\b",
    r"\bcertainly\b", r"\babsolutely\b", r"\bi\s+hear\s+you\b", r"\bi\s+can\s+(?:imagine|see\s+(?:how|why))\b",
    r"\bthat\s+(?:sounds|must\s+be)\s+(?:\w+\s+)?(?:stressful|frustrating|worrying|upsetting|difficult|hard)\b",
    r"\brest\s+assured\b", r"\b(?:i'm|i\s+am|we're|we\s+are)\s+here\s+(?:to|for)\b", r"\bmy\s+pleasure\b",
    r"\bno\s+worries\b", r"\bthanks?\s+(?:you\s+)?for\s+(?:your\s+)?(?:patience|reaching\s+out|letting)\b",
)
#: Cold or dismissive phrase families; each costs two empathy phrases.
COLD_PHRASES: tuple[str, ...] = (
    r"\bcalm\s+down\b", r"\bobviously\b", r"\bnot\s+my\s+problem\b", r"\byou\s+should\s+have\b",
    r"\bas\s+i\s+(?:already\s+)?(?:said|told\s+you|explained)\b", r"\bnothing\s+i\s+can\s+do\b",
    r"\bdeal\s+with\s+it\b", r"\bwhatever\b", r"\btoo\s+bad\b", r"\byour\s+(?:own\s+)?fault\b",
    r"\bread\s+the\s+(?:terms|fine\s+print)\b", r"\bstop\s+(?:complaining|asking)\b",
)
_VERBS = (r"(?:call|visit|log\s+in|sign\s+in|open|go\s+to|contact|reply|respond|confirm|check|update|review|"
          r"submit|use|tap|select|verify|bring|stop\s+by|keep|reset|change|download|follow|send|report|lock|freeze|"
          r"enable|turn\s+on|set\s+up|monitor|watch|look\s+for|schedule|book|complete|fill\s+out|upload|request|dispute)")
_NEXT_STEP = [
    r"\bnext\s+step", r"\bto\s+(?:proceed|continue|get\s+started)\b",
    rf"\bplease\s+(?:let\s+(?:me|us)\s+know|{_VERBS})\b",
    rf"\byou\s+(?:can|may|could|will\s+need\s+to|'ll\s+need\s+to|need\s+to|should)\s+(?:\w+\s+)?{_VERBS}\b",
    r"\b(?:i|we)(?:'ll|\s+will|\s+can)\s+(?:now\s+)?(?:connect|transfer|escalate|send|open|file|start|set\s+up|freeze|"
    r"lock|block|look\s+into|review|investigate|order|arrange|submit|flag)\b",
    r"\blet\s+me\s+(?:connect|transfer|escalate|open|file|start|set\s+up|freeze|lock|look\s+into|check)\b",
    rf"(?:^|[.!?:]\s+|\n\s*(?:[-*]\s*|\d+[.)]\s*)?){_VERBS}\b",
    r"\bcall\s+us\s+at\b", r"\bvisit\s+(?:any|a|your\s+nearest|the\s+nearest)\s+branch\b",
]

_COMMITMENT_RE = [re.compile(p, re.IGNORECASE) for p in _COMMITMENT]
_LEAK_RE = [re.compile(p, re.IGNORECASE) for p in _LEAK]
_REQUEST_RE = [re.compile(p, re.IGNORECASE) for p in _REQUEST]
_EMPATHY_RE = [re.compile(p, re.IGNORECASE) for p in EMPATHY_PHRASES]
_COLD_RE = [re.compile(p, re.IGNORECASE) for p in COLD_PHRASES]
_NEXT_RE = [re.compile(p, re.IGNORECASE) for p in _NEXT_STEP]
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")


def _negated(text: str, start: int) -> bool:
    """A negation word among the few words before ``start`` in the same clause."""
    window = re.split(r"[.!?;,\n]", text[max(0, start - 40):start])[-1]
    return bool(_NEG.search(window))


def _hits(patterns: list[re.Pattern], text: str, allow_negation: bool) -> bool:
    for pat in patterns:
        for m in pat.finditer(text):
            if allow_negation and (_negated(text, m.start()) or _NEG.search(m.group(0))):
                continue
            if re.search(r"\blast\s+(?:four|4)\b", m.group(0), re.IGNORECASE):
                continue
            return True
    return False


def _host(url: str) -> str:
    host = re.sub(r"^(?:https?://)?", "", url, flags=re.IGNORECASE).split("/", 1)[0]
    return host.split("@")[-1].split(":")[0].lower().rstrip(".")


def compliance_violations(text: str, official_domains: Sequence[str] = OFFICIAL_DOMAINS) -> list[str]:
    """Names of the compliance rules the reply breaks (empty list: compliant)."""
    out = []
    if _hits(_COMMITMENT_RE, text, allow_negation=True):
        out.append("unauthorized_commitment")
    if _hits(_LEAK_RE, text, allow_negation=False):
        out.append("leaked_details")
    if _hits(_REQUEST_RE, text, allow_negation=True):
        out.append("requests_secret")
    for m in _URL.finditer(text):
        if m.start() > 0 and text[m.start() - 1] == "@":
            continue  # an e-mail address, not a link
        host = _host(m.group(0))
        official = any(host == d or host.endswith("." + d) for d in official_domains)
        if host in _SHORTENERS or not official:
            out.append("suspicious_link")
            break
    return out


def politeness_score(text: str) -> float:
    """Empathy density in ``[0, 1]`` (ungated); 0 for an empty reply."""
    n_words = len(text.split())
    if n_words == 0:
        return 0.0
    empathy = sum(1 for p in _EMPATHY_RE if p.search(text))
    cold = sum(1 for p in _COLD_RE if p.search(text))
    score = WORDS_PER_PHRASE * (empathy - 2 * cold) / max(n_words, 2 * WORDS_PER_PHRASE)
    return float(min(1.0, max(0.0, score)))


def action_score(text: str) -> float:
    """1 if the reply ends with a question or states a clear next step, else 0."""
    stripped = text.strip()
    if not stripped:
        return 0.0
    sentences = [s for s in _SENT_SPLIT.split(stripped) if s.strip()]
    if sentences and sentences[-1].rstrip().rstrip("\"')").endswith("?"):
        return 1.0
    return float(any(p.search(stripped) for p in _NEXT_RE))


class FintechRewardFunction:
    """Reward for fintech customer-service replies: ``(compliance, politeness, action)``.

    Parameters
    ----------
    gate_politeness : bool
        Multiply politeness by compliance (the paper's conditioning of
        politeness on the compliance gate). Default True.
    require_relevance : bool
        Politeness and action count only for a reply that addresses the request (the
        hardened variant; a robustness check against gaming, not the paper's reward).
    official_domains : sequence of str
        Hosts a reply may link to; every other link is suspicious.

    See the module docstring for every rule. :meth:`violations` names the
    compliance rules a reply breaks; :meth:`raw_politeness` is the ungated score.
    """

    channel_names: tuple[str, ...] = ("compliance", "politeness", "action")

    def __init__(self, gate_politeness: bool = True, official_domains: Sequence[str] = OFFICIAL_DOMAINS, *,
                 require_relevance: bool = False):
        self.gate_politeness = bool(gate_politeness)
        self.require_relevance = bool(require_relevance)
        self.official_domains = tuple(d.lower() for d in official_domains)

    def __repr__(self) -> str:
        return (f"FintechRewardFunction(gate_politeness={self.gate_politeness}, official_domains={self.official_domains}"
                f", require_relevance={self.require_relevance})")

    def addresses(self, completion: str, prompt: Any) -> bool:
        """Does the reply address the request (shares a content word with it, and is not its echo)?"""
        request = prompt.get("prompt") if isinstance(prompt, dict) else prompt
        if not isinstance(request, str):
            raise ValueError("the hardened fintech reward needs the request: a prompt item with a 'prompt' text, "
                             f"or the prompt text; got {type(prompt).__name__}")
        return is_relevant(request, completion) and not is_echo(request, completion)

    def violations(self, completion: str, prompt: Any = None) -> list[str]:
        return compliance_violations(completion, self.official_domains)

    def raw_politeness(self, completion: str, prompt: Any = None) -> float:
        return politeness_score(completion)

    def __call__(self, completion: str, prompt: Any = None) -> Sequence[float]:
        if not isinstance(completion, str):
            raise TypeError(f"completion must be a str, got {type(completion).__name__}")
        compliance = 0.0 if self.violations(completion) else 1.0
        politeness = politeness_score(completion)
        if self.gate_politeness:
            politeness *= compliance
        action = action_score(completion)
        if self.require_relevance and not self.addresses(completion, prompt):
            politeness = action = 0.0
        return (compliance, politeness, action)
