#!/usr/bin/env python
"""Screenshot every chapter page of the built book with headless Chromium.

Usage::

    python scripts/screenshot_book.py [_build/html] [_build/screenshots] [--width 1280 --height 2400]

Every ``chapters/**/*.html`` page (stored runs included) becomes one PNG named
after its path (``chapters/runs/x.html`` -> ``runs__x.png``). Chromium runs
offline with a throw-away profile; MathJax must be vendored locally
(``scripts/vendor_mathjax.sh``) for equations to render. Exits non-zero when
Chromium is missing or a page gives no screenshot.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("screenshot_book: no Chromium found (Debian: apt-get install chromium)")


def pages(html_root: Path) -> list[Path]:
    found = sorted((html_root / "chapters").rglob("*.html"))
    if not found:
        raise SystemExit(f"screenshot_book: no chapter pages under {html_root / 'chapters'}; build the book first")
    return found


def png_name(page: Path, html_root: Path) -> str:
    rel = page.relative_to(html_root / "chapters").with_suffix("")
    return "__".join(rel.parts) + ".png"


def screenshot(chromium: str, page: Path, out: Path, width: int, height: int, budget_ms: int) -> float:
    """Render one page; return the seconds it took."""
    with tempfile.TemporaryDirectory(prefix="mrgrpo-chromium-") as profile:
        cmd = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            f"--window-size={width},{height}",
            f"--screenshot={out}",
            page.resolve().as_uri(),
        ]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        dt = time.perf_counter() - t0
    if proc.returncode != 0 or not out.exists() or out.stat().st_size == 0:
        raise RuntimeError(f"chromium failed on {page} (rc {proc.returncode}): {proc.stderr[-2000:]}")
    return dt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html_root", nargs="?", default="_build/html")
    ap.add_argument("out_dir", nargs="?", default="_build/screenshots")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=2400)
    ap.add_argument("--budget-ms", type=int, default=8000, help="Chromium virtual time budget per page")
    ap.add_argument("--only", default=None, help="screenshot only pages whose path contains this text")
    args = ap.parse_args(argv)

    html_root = Path(args.html_root)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chromium = find_chromium()
    failures = 0
    for page in pages(html_root):
        if args.only and args.only not in str(page):
            continue
        out = out_dir / png_name(page, html_root)
        out.unlink(missing_ok=True)
        try:
            dt = screenshot(chromium, page, out, args.width, args.height, args.budget_ms)
            print(f"{out}  ({dt:.1f} s)")
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            failures += 1
            print(f"FAILED {page}: {exc}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
