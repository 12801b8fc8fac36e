"""Dump every value the built book glued (myst-nb ``glue``) as JSON, or compare two dumps.

The executed notebooks of a build lie under ``_build/jupyter_execute``: myst-nb keeps
each page's glued values in ``<page>.glue.json`` beside it (and a stored notebook under
``chapters/runs/`` keeps them as outputs whose metadata carries ``scrapbook.name``).
The ``text/plain`` form is what the page shows for ``{glue:}`` and what this script records.

    python scripts/glue_values.py dump _build/jupyter_execute > glue.json
    python scripts/glue_values.py compare before.json after.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def glued_values(root: Path) -> dict[str, dict[str, str]]:
    """``{notebook stem: {glue name: text/plain}}`` for every executed notebook under ``root``."""
    out: dict[str, dict[str, str]] = {}
    for glue_path in sorted(root.rglob("*.glue.json")):
        page = str(glue_path.relative_to(root)).removesuffix(".glue.json")
        out[page] = {name: _text(entry.get("data", {})) for name, entry in json.loads(glue_path.read_text()).items()}
    for nb_path in sorted(root.rglob("*.ipynb")):
        if str(nb_path.relative_to(root).with_suffix("")) in out:
            continue
        nb = json.loads(nb_path.read_text())
        values: dict[str, str] = {}
        for cell in nb.get("cells", []):
            for output in cell.get("outputs", []):
                name = output.get("metadata", {}).get("scrapbook", {}).get("name")
                if name is None:
                    continue
                values[name] = _text(output.get("data", {}))
        if values:
            out[str(nb_path.relative_to(root).with_suffix(""))] = values
    return out


def _text(data: dict) -> str:
    # a glue output of a stored (papermill) run keeps its value under the scrapbook mime prefix
    text = data.get("text/plain", data.get("application/papermill.record/text/plain", ""))
    return "".join(text) if isinstance(text, list) else str(text)


def compare(before: dict, after: dict) -> list[str]:
    """One line per glued value that differs, appeared or disappeared."""
    lines = []
    for page in sorted(set(before) | set(after)):
        b, a = before.get(page, {}), after.get(page, {})
        for name in sorted(set(b) | set(a)):
            if b.get(name) != a.get(name):
                lines.append(f"{page}:{name}: {b.get(name, '<absent>')!r} -> {a.get(name, '<absent>')!r}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("root", type=Path)
    c = sub.add_parser("compare")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    if args.cmd == "dump":
        json.dump(glued_values(args.root), sys.stdout, indent=1, sort_keys=True)
        print()
        return 0
    before, after = json.loads(args.before.read_text()), json.loads(args.after.read_text())
    diff = compare(before, after)
    n = sum(len(v) for v in before.values())
    print(f"{n} values before, {sum(len(v) for v in after.values())} after, {len(diff)} differ")
    print("\n".join(diff))
    return 0


if __name__ == "__main__":
    sys.exit(main())
