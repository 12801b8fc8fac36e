"""The claim ledger: one status per claim of the paper, computed from the checks that ran.

The intro page lists every claim the book checks, with one status mark and one column per
policy (the tiny policy or the synthetic harness at CPU scale, SmolLM2-135M-Instruct, and the
paper's own scale). Each chapter computes the status of its claims with :func:`claim_status`
from its pass/fail flags, and glues it with :func:`ledger_entries` next to the
:func:`~mrgrpo.analysis.verdicts.dashboard_entries` of the same row, so the mark cannot
disagree with the numbers beside it.

The six statuses, in the order of :data:`STATUSES`:

- ``"reproduced"``: every check that ran holds;
- ``"partly"``: some hold, and others fail or could not decide;
- ``"contradicted"``: every check that decided fails;
- ``"undecided"``: checks ran, and none could decide (an equivalence test whose interval is
  too wide both to show a difference and to rule one out: absence of evidence either way);
- ``"untestable identity"``: the claim's check holds for any rewards (an algebraic
  identity), so it cannot fail and says nothing about the data;
- ``"not run"``: no check ran in this build (a command in the rerun page).
"""
from __future__ import annotations

from typing import Mapping, Union

__all__ = ["STATUSES", "MARKS", "UNDECIDED", "claim_status", "status_label", "ledger_entries", "equivalence_check"]

STATUSES = ("reproduced", "partly", "contradicted", "undecided", "untestable identity", "not run")
#: One symbol per status (plain Unicode that the book's fonts draw; no emoji).
MARKS = {"reproduced": "✔", "partly": "◐", "contradicted": "✘", "undecided": "?", "untestable identity": "≡",
         "not run": "○"}
#: The value of a check that ran and could not decide (see :func:`equivalence_check`).
UNDECIDED = "undecided"


def claim_status(checks: Mapping[str, Union[bool, str, None]], identity: bool = False) -> str:
    """The status of one claim from its checks.

    Parameters
    ----------
    checks : mapping ``name -> True | False | UNDECIDED | None``
        Each check of the claim: holds (True), fails (False), ran and could not decide
        (:data:`UNDECIDED`) or did not run (None). The names say what each check is (they
        are not read; they keep the call readable). An undecided check never makes a claim
        "reproduced": beside checks that hold the claim is "partly" shown.
    identity : bool
        The claim's check is an algebraic identity (it holds for any rewards): the status is
        ``"untestable identity"`` whatever the flags.

    Returns
    -------
    str, one of :data:`STATUSES`

    Raises
    ------
    ValueError
        A flag that is not True, False, UNDECIDED or None (a NaN, another string).
    """
    flags = dict(checks)
    bad = {k: v for k, v in flags.items() if v is not None and not isinstance(v, bool) and v != UNDECIDED}
    if bad:
        raise ValueError(f"claim_status takes True, False, {UNDECIDED!r} or None per check, got {bad}")
    if identity:
        return "untestable identity"
    ran = [v for v in flags.values() if v is not None]
    decided = [v for v in ran if v != UNDECIDED]
    if not ran:
        return "not run"
    if not decided:
        return "undecided"
    if all(decided):
        return "reproduced" if len(decided) == len(ran) else "partly"
    return "contradicted" if not any(decided) else "partly"


def equivalence_check(verdict: str) -> Union[bool, str]:
    """The check of a "comparable" claim from a :func:`~mrgrpo.analysis.paired.compare_arms` verdict.

    It holds (True) only when the equivalence test (TOST, margin stated before the runs)
    says ``"equivalent"``; a detected difference (``"higher"``, ``"lower"``) fails it
    (False); ``"inconclusive"`` is :data:`UNDECIDED`: a non-significant difference is
    absence of evidence, neither equivalence nor a contradiction.
    """
    allowed = ("higher", "lower", "equivalent", "inconclusive")
    if verdict not in allowed:
        raise ValueError(f"unknown verdict {verdict!r}; use one of {allowed}")
    return UNDECIDED if verdict == "inconclusive" else verdict == "equivalent"


def status_label(status: str) -> str:
    """``"✔ reproduced"``: the mark, then the word (a reader without the symbol font still reads it)."""
    if status not in MARKS:
        raise ValueError(f"unknown status {status!r}; use one of {STATUSES}")
    return f"{MARKS[status]} {status}"


def ledger_entries(prefix: str, status: str, smollm2: str = "not run") -> dict[str, str]:
    """The ledger's glue values of one row beside its dashboard entries: ``{prefix}_status``, ``{prefix}_smollm2``.

    ``smollm2`` is the SmolLM2-135M-Instruct column's text (what that policy's run gives, or
    why there is none).
    """
    if not str(smollm2).strip():
        raise ValueError(f"ledger row {prefix!r}: empty SmolLM2 cell")
    return {f"{prefix}_status": status_label(status), f"{prefix}_smollm2": str(smollm2)}
