"""Tables for the pages: Markdown tables (math renders) and the Tier-2 checks split by check."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mrgrpo.analysis.corpus_checks import check_blocks, side_by_side
from mrgrpo.analysis.tables import markdown_table


def test_markdown_table_keeps_math_and_escapes_pipes():
    df = pd.DataFrame({"value": ["0.34", np.nan], "note": ["a | b", "$w^\\top C w$"]},
                      index=pd.Index(["$p_a$", "row 2"], name="quantity"))
    lines = markdown_table(df).splitlines()
    assert lines[0] == "| quantity | value | note |" and lines[1] == "|---|---|---|"
    assert lines[2] == "| $p_a$ | 0.34 | a \\| b |"
    assert lines[3] == "| row 2 | n/a | $w^\\top C w$ |"
    assert markdown_table(df, index=False).splitlines()[0] == "| value | note |"
    with pytest.raises(ValueError, match="one level of column labels"):
        markdown_table(pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("a", "b"), ("a", "c")])))


def _long(rows):
    return pd.DataFrame(rows, columns=["check", "quantity", "m", "value"])


def test_check_blocks_pivot_group_sizes_and_drop_empty_columns():
    tiny = _long([("corpus", "prompts", "", "150 x 16"), ("paper's check", "NA ratio", 4, "0.97"),
                  ("paper's check", "(K-1)/K", 4, "0.94"), ("paper's check", "NA ratio", 8, "1.01"),
                  ("paper's check", "(K-1)/K", 8, "0.94"), ("Prop 4", "p_a", "", "0.34"),
                  ("Prop 4", "MSE", 8, "none 0.02")])
    smol = _long([("corpus", "prompts", "", "40 x 8"), ("paper's check", "NA ratio", 4, "0.86"),
                  ("paper's check", "(K-1)/K", 4, "0.88"), ("Prop 4", "p_a", "", "0.95")])
    both = side_by_side({"tiny": tiny, "smol": smol})
    both["paper"] = ["", "1.025", "", "0.928", "", "0.39", ""]
    blocks = check_blocks(both)
    assert list(blocks) == ["corpus", "paper's check", "Prop 4"]
    pc = blocks["paper's check"]
    assert list(pc.index) == [4, 8] and pc.index.name == "m"
    assert list(pc.columns) == ["tiny: NA ratio", "tiny: (K-1)/K", "smol: NA ratio", "smol: (K-1)/K",
                                "paper: NA ratio"]  # the paper's (K-1)/K column is empty: left out
    assert pc.loc[8, "smol: NA ratio"] == "n/a" and pc.loc[8, "paper: NA ratio"] == "0.928"
    p4 = blocks["Prop 4"]  # a check with rows without m keeps one row per quantity, m in the label
    assert list(p4.index) == ["p_a", "MSE (m = 8)"] and p4.loc["p_a", "paper"] == "0.39"
    assert list(blocks["corpus"].columns) == ["tiny", "smol"]
