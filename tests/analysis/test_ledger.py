"""The claim ledger's status (mrgrpo.analysis.ledger): computed from the checks, each status reachable."""
from __future__ import annotations

import pytest

from mrgrpo.analysis.ledger import MARKS, STATUSES, UNDECIDED, claim_status, ledger_entries, status_label


@pytest.mark.parametrize("checks, identity, want", [
    ({"tiny": True, "smollm2": True}, False, "reproduced"),
    ({"tiny": True, "smollm2": None, "paper scale": None}, False, "reproduced"),
    ({"tiny": True, "smollm2": False}, False, "partly"),
    ({"pooled": False, "within prompts": False}, False, "contradicted"),
    ({"tiny": None, "smollm2": None}, False, "not run"),
    ({"tiny": UNDECIDED, "smollm2": None}, False, "undecided"),
    ({"tiny": True, "smollm2": UNDECIDED}, False, "partly"),
    ({"tiny": False, "smollm2": UNDECIDED}, False, "contradicted"),
    ({"tiny": True, "smollm2": False, "paper scale": UNDECIDED}, False, "partly"),
    ({}, False, "not run"),
    ({"tiny": True}, True, "untestable identity"),
    ({"tiny": False}, True, "untestable identity"),
])
def test_status_follows_the_checks(checks, identity, want):
    assert claim_status(checks, identity=identity) == want


def test_flipping_one_check_moves_the_status():
    base = {"a": True, "b": True, "c": True}
    assert claim_status(base) == "reproduced"
    for k in base:
        assert claim_status({**base, k: False}) == "partly"
        assert claim_status({**base, k: None}) == "reproduced"
    assert claim_status({k: False for k in base}) == "contradicted"


def test_every_status_has_a_mark_and_a_label():
    assert set(MARKS) == set(STATUSES) and len(set(MARKS.values())) == len(STATUSES)
    assert status_label("partly") == "◐ partly"
    with pytest.raises(ValueError, match="unknown status"):
        status_label("maybe")


def test_bad_flags_and_empty_cells_are_refused():
    with pytest.raises(ValueError, match="True, False, 'undecided' or None"):
        claim_status({"tiny": float("nan")})
    with pytest.raises(ValueError, match="True, False, 'undecided' or None"):
        claim_status({"tiny": "yes"})
    assert ledger_entries("dash", "reproduced") == {"dash_status": "✔ reproduced", "dash_smollm2": "not run"}
    with pytest.raises(ValueError, match="empty SmolLM2 cell"):
        ledger_entries("dash", "reproduced", smollm2=" ")


def test_comparable_holds_only_when_tost_says_equivalent():
    from mrgrpo.analysis.ledger import equivalence_check

    assert equivalence_check("equivalent") is True
    for v in ("higher", "lower"):
        assert equivalence_check(v) is False
    assert equivalence_check("inconclusive") == UNDECIDED
    # one equivalent policy and one inconclusive one: partly, never reproduced
    assert claim_status({"tiny": equivalence_check("equivalent"), "smollm2": equivalence_check("inconclusive")}) \
        == "partly"
    # an inconclusive test alone neither reproduces nor contradicts the claim
    assert claim_status({"smollm2": equivalence_check("inconclusive")}) == "undecided"
    assert claim_status({"tiny": equivalence_check("lower"), "smollm2": equivalence_check("inconclusive")}) \
        == "contradicted"
    with pytest.raises(ValueError, match="unknown verdict"):
        equivalence_check("comparable")
