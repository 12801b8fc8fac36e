#!/usr/bin/env python
"""Check every link of the built book offline: internal targets and the repository's launch URLs.

    python scripts/check_book_links.py [_build/html]

- Internal links (``href``/``src`` without a scheme): the target file exists in the build,
  and a ``#fragment`` names an ``id`` on the target page.
- Links into the book's repository (the URL in ``_config.yml``): the repository button,
  ``.../blob/<branch>/<path>`` and ``.../tree/<branch>/<path>``; Colab's
  ``colab.research.google.com/github/<org>/<repo>/blob/<branch>/<path>``; Binder's
  ``mybinder.org/v2/gh/<org>/<repo>/<branch>?urlpath=tree/<path>``. Each must name this
  repository and branch, and ``<path>`` must exist in the repository at that path (Colab's
  must also be a notebook, since Colab opens nothing else).
- Every other external link is counted, not fetched (the check runs offline).

Exit status 1, with one line per problem, when anything is broken.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[1]


class _Links(HTMLParser):
    """Collects every ``href``/``src`` and every ``id``/``name`` of one page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if value is None:
                continue
            if key in ("href", "src") and tag in ("a", "img", "link", "script", "iframe", "source"):
                self.links.append(value)
            elif key == "id" or (key == "name" and tag == "a"):
                self.ids.add(value)


@dataclass
class Report:
    """What the check saw: problems (each one line), and counts by kind of link."""

    problems: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1


def repository(root: Path = ROOT) -> tuple[str, str, str]:
    """``(url, branch, path_to_book)`` from ``_config.yml``."""
    repo = yaml.safe_load((root / "_config.yml").read_text())["repository"]
    return str(repo["url"]).rstrip("/"), str(repo.get("branch", "main")), str(repo.get("path_to_book", "") or "")


def _parse(page: Path, cache: dict) -> _Links:
    if page not in cache:
        parser = _Links()
        parser.feed(page.read_text(errors="replace"))
        cache[page] = parser
    return cache[page]


def _check_repo_path(path: str, root: Path, report: Report, where: str, notebook: bool = False) -> None:
    rel = unquote(path).strip("/")
    if not rel:
        return
    if not (root / rel).exists():
        report.problems.append(f"{where}: {rel} does not exist in the repository")
    elif notebook and not rel.endswith(".ipynb"):
        report.problems.append(f"{where}: Colab opens only notebooks, not {rel}")


def _check_external(url: str, root: Path, report: Report, where: str) -> None:
    repo_url, branch, _ = repository(root)
    org_repo = urlsplit(repo_url).path.strip("/")
    parts = urlsplit(url)
    host, path = parts.netloc.lower(), parts.path
    if host == "colab.research.google.com":
        report.count("colab")
        prefix = f"/github/{org_repo}/blob/{branch}/"
        if not path.startswith(prefix):
            report.problems.append(f"{where}: Colab link {url} does not point at {org_repo} on branch {branch}")
            return
        _check_repo_path(path[len(prefix):], root, report, where, notebook=True)
    elif host == "mybinder.org":
        report.count("binder")
        if not path.rstrip("/").endswith(f"/v2/gh/{org_repo}/{branch}"):
            report.problems.append(f"{where}: Binder link {url} does not point at {org_repo} on branch {branch}")
            return
        urlpath = parse_qs(parts.query).get("urlpath", [""])[0]
        for ui in ("lab/tree/", "tree/"):
            if urlpath.startswith(ui):
                _check_repo_path(urlpath[len(ui):], root, report, where)
                break
        else:
            if urlpath:
                report.problems.append(f"{where}: Binder urlpath {urlpath!r} is not a tree/ path")
    elif url.rstrip("/") == repo_url or url.startswith(repo_url + "/"):
        report.count("repository")
        rest = url[len(repo_url):].strip("/")
        for kind in ("blob", "tree", "edit"):
            if rest.startswith(f"{kind}/"):
                tail = rest[len(kind) + 1:]
                if not tail.startswith(f"{branch}/") and tail != branch:
                    report.problems.append(f"{where}: {url} is not on branch {branch}")
                    return
                _check_repo_path(tail[len(branch):], root, report, where)
                return
        if rest and not rest.startswith(("issues", "pulls", "releases")):
            report.problems.append(f"{where}: unrecognised repository link {url}")
    elif "github.com/" in url and org_repo.split("/")[0] in url.split("github.com/", 1)[1].split("/")[:1]:
        report.count("repository")
        report.problems.append(f"{where}: {url} points at another repository of the same owner")
    else:
        report.count("external (not fetched)")


def check_links(html_root: Path, root: Path = ROOT) -> Report:
    """Check every page of a built book; see the module docstring."""
    html_root = Path(html_root)
    # _static/ and _sources/ hold theme templates and copied sources, not pages
    pages = sorted(p for p in html_root.rglob("*.html")
                   if p.relative_to(html_root).parts[0] not in ("_static", "_sources", "_images"))
    if not pages:
        raise FileNotFoundError(f"no HTML pages under {html_root}; build the book first (make book)")
    report, cache = Report(), {}
    for page in pages:
        where = str(page.relative_to(html_root))
        for link in _parse(page, cache).links:
            parts = urlsplit(link)
            if parts.scheme in ("http", "https"):
                _check_external(link, root, report, where)
                continue
            if parts.scheme in ("mailto", "data", "javascript") or link.startswith("//"):
                report.count("other")
                continue
            report.count("internal")
            target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                report.problems.append(f"{where}: broken link {link}")
                continue
            if parts.fragment and target.suffix == ".html" and parts.fragment not in _parse(target, cache).ids:
                report.problems.append(f"{where}: {link}: no id {parts.fragment!r} on {target.name}")
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html_root", nargs="?", default=str(ROOT / "_build" / "html"))
    args = ap.parse_args(argv)
    try:
        report = check_links(Path(args.html_root))
    except FileNotFoundError as exc:
        print(f"check_book_links: {exc}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{n} {k}" for k, n in sorted(report.counts.items()))
    if report.problems:
        print("\n".join(report.problems), file=sys.stderr)
        print(f"check_book_links: {len(report.problems)} broken ({counts})", file=sys.stderr)
        return 1
    print(f"check_book_links: all links good ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
