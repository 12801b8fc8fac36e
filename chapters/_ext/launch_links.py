"""Sphinx extension: point the book's launch buttons at the paired notebooks in ``notebooks/``.

sphinx-book-theme builds the Colab and Binder links from the page's source file,
``chapters/x.md``; Colab opens only ``.ipynb`` files, so those links would open nothing.
``scripts/sync_notebooks.py`` writes ``notebooks/x.ipynb`` for every chapter (a test keeps
them in sync); this handler, run after the theme's, swaps the path in both links. A page
whose notebook is missing is a build warning (``-W`` makes it an error). Stored runs under
``chapters/runs/`` are notebooks already and keep the theme's links.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

from sphinx.util import logging

LOGGER = logging.getLogger(__name__)
NOTEBOOK_DIR = "notebooks"


def paired_notebook(pagename: str) -> str | None:
    """``chapters/x`` -> ``notebooks/x.ipynb``; None for pages that are not top-level chapters."""
    parts = PurePosixPath(pagename).parts
    if len(parts) == 2 and parts[0] == "chapters":
        return f"{NOTEBOOK_DIR}/{parts[1]}.ipynb"
    return None


def retarget_launch_buttons(app, pagename, templatename, context, doctree):
    target = paired_notebook(pagename)
    groups = [g for g in context.get("header_buttons", []) if g.get("label") == "launch-buttons"]
    if target is None or not groups:
        return
    root = Path(app.confdir)
    if not (root / target).is_file():
        LOGGER.warning(f"{pagename}: no paired notebook {target}; run python scripts/sync_notebooks.py",
                       location=pagename)
        return
    source = f"{pagename}{Path(app.env.doc2path(pagename)).suffix}"
    for group in groups:
        for button in group["buttons"]:
            url = button.get("url", "")
            if url.endswith(source) or f"urlpath=tree/{source}" in url or f"/{source}" in url:
                button["url"] = url.replace(source, target)


def setup(app):
    # the theme adds its launch buttons at priority 501; run after it
    app.connect("html-page-context", retarget_launch_buttons, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
