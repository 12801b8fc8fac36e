"""``mrgrpo.analysis.corpus_checks.side_by_side``: several corpora's Tier-2 checks as columns."""
from __future__ import annotations

import pandas as pd

from mrgrpo.analysis.corpus_checks import side_by_side


def _table(rows):
    return pd.DataFrame(rows, columns=["check", "quantity", "m", "value"])


def test_rows_only_a_later_corpus_has_join_their_checks_block():
    tiny = _table([("corpus", "mean correctness", "", "0.34"), ("floor", "verdict", 4, "agrees"),
                   ("Prop 4", "p_a", "", "0.34")])
    smol = _table([("corpus", "mean compliance", "", "0.95"), ("floor", "verdict", 4, "fails"),
                   ("Prop 4", "p_a", "", "0.95"), ("Prop 4", "p_b (>= 0.25)", "", "0.38")])
    both = side_by_side({"tiny": tiny, "smol": smol})
    assert [k[0] for k in both.index] == ["corpus", "corpus", "floor", "Prop 4", "Prop 4"]
    assert list(both.index.get_level_values("quantity")) == ["mean correctness", "mean compliance", "verdict", "p_a",
                                                             "p_b (>= 0.25)"]
    assert both.loc[("corpus", "mean compliance", ""), "tiny"] == "n/a"
    assert both.loc[("floor", "verdict", 4)].tolist() == ["agrees", "fails"]
