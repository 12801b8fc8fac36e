"""The built book, read the way a reader sees it: no build debris, every link good.

This runs on the HTML that ``make book`` produced (``_build/html``, or the folder named
by ``BOOK_HTML``). It skips nothing: without a build, or with a build older than the
chapters, it fails and says how to build. ``make book`` runs it after the build, so
``make test`` leaves it out (``--ignore=tests/project/test_book_html.py``) and CI runs it once,
on the fresh build.

What counts as debris: progress bars and stderr in outputs, raw dicts and object reprs,
NaN cells, p-values printed as ``0.0e+00`` or ``1e-241`` (they read ``< 1e-16``), a
negative zero, a meaningless 0..n-1 index column, a group size printed as a float, and
glue calls shown to the reader.
"""
from __future__ import annotations

import importlib.util
import os
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mrgrpo.analysis import ledger

ROOT = Path(__file__).resolve().parents[2]
HTML = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html"))
# Integer-valued columns (group sizes, seeds, counts): a cell "4.0" in one is debris.
INTEGER_COLUMNS = {"m", "K", "N", "L", "P", "runs", "our runs", "paper runs", "m* (grid optimum)", "#", "rank",
                   "n_groups", "direction"}
# Text a reader does not read as prose: code inputs, TeX sources of math, code blocks (outputs kept).
SKIP_CLASSES = {"cell_input", "math"}
SKIP_PREFIXES = ("highlight-",)


def _built_pages() -> list[Path]:
    chapters = HTML / "chapters"
    if not (chapters / "intro.html").is_file():
        pytest.fail(f"no built book at {HTML}: run `make book` (it runs this test after the build), or set "
                    "BOOK_HTML to a build's html folder")
    pages = sorted(chapters.rglob("*.html"))
    stale = [md.name for md in (ROOT / "chapters").glob("*.md")
             if (chapters / f"{md.stem}.html").is_file() and (chapters / f"{md.stem}.html").stat().st_mtime < md.stat().st_mtime]
    if stale:
        pytest.fail(f"the build at {HTML} is older than {', '.join(sorted(stale))}: rebuild with `make book`")
    return pages


class Page(HTMLParser):
    """One built page: its visible text (prose and outputs), its output blocks, its tables."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, str]] = []
        self.prose: list[str] = []
        self.outputs: list[tuple[str, list[str]]] = []   # (classes, text pieces)
        self.inputs: list[list[str]] = []
        self.tables: list[dict] = []
        self.feed(text)

    def _inside(self, cls_name: str) -> bool:
        return any(cls_name in cls.split() for _, cls in self.stack)

    def handle_starttag(self, tag, attrs):
        cls = dict(attrs).get("class", "") or ""
        if tag in ("br", "img", "hr", "meta", "link", "input", "col"):
            return
        self.stack.append((tag, cls))
        if tag == "div" and "output" in cls.split() and self._inside("cell_output"):
            self.outputs.append((cls, []))
        if tag == "div" and "cell_input" in cls.split():
            self.inputs.append([])
        if tag == "table":
            self.tables.append({"classes": cls, "head": [], "body": [], "row": None, "in_head": False,
                                "spans": {}, "new_spans": []})
        if self.tables and tag == "thead":
            self.tables[-1]["in_head"] = True
        if self.tables and tag == "tr":
            self.tables[-1]["row"] = []
            self.tables[-1]["new_spans"] = []
        if self.tables and tag in ("td", "th") and self.tables[-1]["row"] is not None:
            tab = self.tables[-1]
            self._fill_spans(tab)
            rowspan = int(dict(attrs).get("rowspan") or 1)
            if rowspan > 1:  # a multi-index label: repeat it in the rows below, so columns stay aligned
                tab["new_spans"].append((len(tab["row"]), rowspan - 1))
            tab["row"].append("")

    @staticmethod
    def _fill_spans(tab):
        while tab["spans"].get(len(tab["row"]), (0, ""))[0] > 0:
            left, text = tab["spans"][len(tab["row"])]
            tab["spans"][len(tab["row"])] = (left - 1, text)
            tab["row"].append(text)

    def handle_endtag(self, tag):
        while self.stack:
            t, _ = self.stack.pop()
            if t == tag:
                break
        if self.tables:
            tab = self.tables[-1]
            if tag == "thead":
                tab["in_head"] = False
            if tag == "tr" and tab["row"] is not None:
                self._fill_spans(tab)
                for col, left in tab["new_spans"]:
                    tab["spans"][col] = (left, tab["row"][col])
                (tab["head"] if tab["in_head"] else tab["body"]).append([c.strip() for c in tab["row"]])
                tab["row"] = None

    def handle_data(self, data):
        if any(t in ("script", "style") for t, _ in self.stack):
            return
        if self._inside("cell_input"):
            if self.inputs:
                self.inputs[-1].append(data)
            return
        if self.tables and self.tables[-1]["row"] is not None and self.tables[-1]["row"]:
            self.tables[-1]["row"][-1] += data
        if self._inside("cell_output") and self.outputs:
            self.outputs[-1][1].append(data)
        in_output = self._inside("cell_output")
        skip = any(set(cls.split()) & SKIP_CLASSES or (not in_output and any(
            c.startswith(SKIP_PREFIXES) for c in cls.split())) for _, cls in self.stack)
        if not skip:
            self.prose.append(data)

    @property
    def text(self) -> str:
        return "".join(self.prose)

    def output_text(self) -> str:
        return "\n".join("".join(parts) for _, parts in self.outputs)


def _page(path: Path) -> Page:
    return Page(path.read_text(errors="replace"))


def _name(path: Path) -> str:
    return str(path.relative_to(HTML))


@pytest.fixture(scope="module")
def pages() -> dict[str, Page]:
    return {_name(p): _page(p) for p in _built_pages()}


def test_the_parser_repeats_multi_index_labels_so_columns_stay_aligned():
    """pandas writes a multi-index label once with ``rowspan``; the rows below must not shift left."""
    page = Page("<table><thead><tr><th>check</th><th>m</th><th>value</th></tr></thead><tbody>"
                "<tr><th rowspan='2'>floor</th><th>4</th><td>1.00</td></tr>"
                "<tr><th>8</th><td>0.50</td></tr><tr><th>other</th><th>16</th><td>2.00</td></tr></tbody></table>")
    assert page.tables[0]["body"] == [["floor", "4", "1.00"], ["floor", "8", "0.50"], ["other", "16", "2.00"]]


# --------------------------------------------------------------------------- debris in outputs
def test_no_stderr_or_progress_bars(pages):
    bad = {}
    for name, page in pages.items():
        found = [cls for cls, _ in page.outputs if "stderr" in cls.split()]
        text = page.output_text()
        if re.search(r"\d+%\|[^|\n]*\|", text) or re.search(r"\d+(\.\d+)?(it|s)/(s|it)\]", text):
            found.append("a progress bar")
        if "Loading weights" in text:
            found.append("'Loading weights'")
        if found:
            bad[name] = found
    assert not bad, f"build debris in outputs: {bad}"


def test_no_raw_dicts_or_object_reprs(pages):
    bad = {}
    for name, page in pages.items():
        text = page.output_text()
        hits = re.findall(r"(?m)^\s*\{['\"][^\n]*['\"]:\s", text)
        hits += re.findall(r"<(?:IPython\.[\w.]+|Figure size|matplotlib\.[\w.]+|pandas\.[\w.]+)[^>]*>", text)
        hits += re.findall(r"(?m)^array\(\[", text)
        if hits:
            bad[name] = hits[:3]
    assert not bad, f"raw dicts, arrays or object reprs on the page: {bad}"


def test_no_nan_cells_or_nan_in_prose(pages):
    bad = {}
    for name, page in pages.items():
        cells = [c for t in page.tables for row in t["body"] for c in row if c in ("NaN", "nan", "None", "<NA>", "NaT")]
        prose = re.findall(r"(?i)(?<![\w.])nan(?![\w])", page.text)
        if cells or prose:
            bad[name] = {"cells": len(cells), "prose": len(prose)}
    assert not bad, f"NaN shown to the reader (say n/a, or drop the row): {bad}"


def test_numbers_are_printed_for_people(pages):
    bad = {}
    for name, page in pages.items():
        text = page.text
        hits = re.findall(r"(?<![\w.])0(?:\.0+)?e[+-]0+(?![\d])", text)                    # 0.0e+00
        hits += [h for h in re.findall(r"\d(?:\.\d+)?e-(\d{2,})", text) if int(h) > 16]   # 1.373159e-241
        hits += re.findall(r"(?<![\w.\d])[-\u2212]0(?:\.0+)?(?![\d.])", text)              # -0.0, -0
        if hits:
            bad[name] = hits[:5]
    assert not bad, f"p-values below 1e-16 read '< 1e-16'; no negative zeros: {bad}"


def test_tables_have_meaningful_indexes_and_integer_sizes(pages):
    bad = {}
    for name, page in pages.items():
        for i, tab in enumerate(page.tables):
            body = tab["body"]
            if not body:
                continue
            cut = [c for row in body for c in row if c.endswith("...") or c == "…"]
            if cut:
                bad.setdefault(name, []).append(f"table {i}: truncated cell {cut[0][:40]!r}")
            first = [row[0] for row in body if row]
            index_header = any(row and row[0] for row in tab["head"])
            if not index_header and len(first) > 1 and first == [str(k) for k in range(len(first))]:
                bad.setdefault(name, []).append(f"table {i}: a 0..{len(first) - 1} index column")
            width = max(len(r) for r in body)
            for j in range(width):
                names = {row[j] for row in tab["head"] if j < len(row)}
                if names & INTEGER_COLUMNS:
                    floats = [row[j] for row in body if j < len(row) and re.fullmatch(r"-?\d+\.0+", row[j])]
                    if floats:
                        bad.setdefault(name, []).append(f"table {i}: column {sorted(names & INTEGER_COLUMNS)} "
                                                        f"prints {floats[0]}")
        if re.search(r"\bm = \d+\.0\b", page.text):
            bad.setdefault(name, []).append("prose prints a float group size")
    assert not bad, f"tables a reader cannot use: {bad}"


def test_glue_calls_are_not_shown(pages):
    shown = {name: sum("glue(" in "".join(inp) for inp in page.inputs) for name, page in pages.items()}
    shown = {k: v for k, v in shown.items() if v}
    assert not shown, f"cells that glue are shown (tag them remove-input): {shown}"


# --------------------------------------------------------------------------- what must be there
def test_intro_has_a_complete_dashboard_and_the_money_plot(pages):
    intro = pages["chapters/intro.html"]
    dash = [t for t in intro.tables if "dashboard" in t["classes"].split()]
    assert len(dash) == 1, "the intro page has no results dashboard"
    rows = dash[0]["body"]
    assert len(rows) >= 10, f"the dashboard has {len(rows)} rows"
    width = max(len(row) for row in dash[0]["head"])
    assert width == 6, f"the dashboard has {width} columns, not claim/status/tiny/SmolLM2/paper/verdict"
    empty = [i for i, row in enumerate(rows) if len(row) != width or not all(c.strip() for c in row)]
    assert not empty, f"dashboard rows with an empty cell: {empty}"
    statuses = {f"{mark} {word}" for word, mark in ledger.MARKS.items()}
    unknown = [row[1] for row in rows if row[1] not in statuses]
    assert not unknown, f"dashboard status cells that are not a ledger mark: {unknown}"
    intro_html = (HTML / "chapters" / "intro.html").read_text()
    assert re.search(r"<img[^>]+src=\"[^\"]+\.png\"", intro_html), "the intro page shows no money plot"


def test_references_name_their_authors(pages):
    refs = pages["chapters/references.html"].text
    assert "not verified" not in refs.lower()
    for author in ("Ichihara", "Jinnai", "Morimura", "Sakamoto", "Mitsuhashi", "Uchibe", "Liu", "2509.22047",
                   "2601.05242"):
        assert author in refs, f"the references do not name {author}"


def test_every_link_and_launch_url_resolves():
    _built_pages()
    spec = importlib.util.spec_from_file_location("check_book_links", ROOT / "scripts" / "check_book_links.py")
    links = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = links  # dataclasses look their module up while the class is built
    spec.loader.exec_module(links)
    report = links.check_links(HTML, ROOT)
    assert not report.problems, "\n".join(report.problems)
    assert report.counts.get("colab", 0) >= 10 and report.counts.get("binder", 0) >= 10, report.counts


# --------------------------------------------------------------------------- the checks can fail
def test_the_debris_detectors_fire_on_debris():
    page = Page('<div class="cell_output"><div class="output stderr"><pre>runs:  50%|##   | 3/6 [00:01, 2.1it/s]'
                '</pre></div><div class="output text_plain"><pre>{\'model\': \'tiny\'}</pre></div></div>'
                '<p>p = 0.0e+00 and 1.373159e-241, gap -0.000</p>'
                '<table><thead><tr><th></th><th>m</th></tr></thead><tbody><tr><th>0</th><td>4.0</td></tr>'
                '<tr><th>1</th><td>NaN</td></tr></tbody></table>')
    assert any("stderr" in cls for cls, _ in page.outputs)
    assert re.search(r"\d+%\|[^|\n]*\|", page.output_text())
    assert re.search(r"(?m)^\s*\{['\"][^\n]*['\"]:\s", page.output_text())
    assert "0.0e+00" in page.text and "e-241" in page.text and "-0.000" in page.text
    tab = page.tables[0]
    assert [row[0] for row in tab["body"]] == ["0", "1"] and tab["body"][0][1] == "4.0"
    assert tab["body"][1][1] == "NaN"  # what test_no_nan_cells_or_nan_in_prose looks for
