"""Tables for the book's pages: a DataFrame as a Markdown table, so MyST renders the math in its labels.

A pandas table reaches the page as HTML, where ``$w^\\top C w$`` stays raw text: MathJax only
typesets what MyST parsed as math. :func:`markdown_table` writes the same table as Markdown
(``IPython.display.Markdown`` shows it; the book's ``nb_render_markdown_format: myst`` parses
it), so ``$...$`` in a label or a cell renders as an equation.
"""
from __future__ import annotations

import math
from typing import Any

__all__ = ["markdown_table"]


def _cell(value: Any) -> str:
    """One cell: text on one line, a pipe escaped (it would end the cell), NaN as ``n/a``."""
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return str(value).replace("\n", " ").replace("|", "\\|")


def markdown_table(frame: Any, index: bool = True) -> str:
    """A pandas DataFrame as a Markdown pipe table (the index first, named by ``frame.index.name``).

    Parameters
    ----------
    frame : pandas.DataFrame, shape ``(n_rows, n_cols)``
        Cells are written with ``str`` (format numbers before); a pipe is escaped.
    index : bool
        Write the index as the first column.

    Returns
    -------
    str
        ``n_rows + 2`` lines: the header, the rule and one line per row.
    """
    if frame.columns.nlevels > 1:
        raise ValueError("markdown_table needs one level of column labels; join a MultiIndex's levels first")
    head = ([str(frame.index.name or "")] if index else []) + [str(c) for c in frame.columns]
    if not head:
        raise ValueError("markdown_table needs at least one column")
    lines = ["| " + " | ".join(_cell(h) for h in head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for label, row in zip(frame.index, frame.itertuples(index=False)):
        cells = ([label] if index else []) + list(row)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)
