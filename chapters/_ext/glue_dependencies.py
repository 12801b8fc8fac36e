"""Sphinx extension: re-read every page that pastes another page's glued values.

The intro's results dashboard pastes values glued by the chapters (myst-nb's
``{glue:text}`chapter.md::key:s``` roles). Sphinx does not know that dependency, so an
incremental build that re-executes one chapter would keep a dashboard built from the
old values. This handler marks every page with a cross-page glue role as outdated on
every build; the intro executes in seconds.
"""
from __future__ import annotations

import re
from pathlib import Path

CROSS_PAGE_GLUE = re.compile(r"\{glue(?::[a-z]+)?\}`[^`]*::|```\{glue:any\}[^\n]*\n:doc:")


def pages_with_cross_page_glue(env) -> list[str]:
    out = []
    for docname in sorted(env.found_docs):
        path = Path(env.doc2path(docname))
        if path.suffix == ".md" and path.is_file() and CROSS_PAGE_GLUE.search(path.read_text(errors="replace")):
            out.append(docname)
    return out


def outdated(app, env, added, changed, removed):
    return [d for d in pages_with_cross_page_glue(env) if d not in added and d not in changed]


def setup(app):
    app.connect("env-get-outdated", outdated)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
