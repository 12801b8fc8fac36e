#!/usr/bin/env python
"""Screenshot every chapter page of the built book with headless Chromium.

Usage::

    python scripts/screenshot_book.py [_build/html] [_build/screenshots] [--width 1280 --height 2400]

Every ``chapters/**/*.html`` page (stored runs included) becomes one PNG named
after its path (``chapters/runs/x.html`` -> ``runs__x.png``). With ``--full`` the
whole page is captured in a tall window and cut into tiles of ``--height`` pixels
(``x.png``, ``x__2.png``, ...), so every part of a long chapter can be looked at.
Chromium runs offline with a throw-away profile; MathJax must be vendored locally
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


def tile(png: Path, height: int) -> list[Path]:
    """Trim the blank bottom of a tall capture and cut it into tiles: ``x.png``, ``x__2.png``, ...

    The page's last line is found in the middle of the window (the text column), as the
    last inked row before the first blank stretch of ``height`` rows: the sidebars and the
    footer stretch to fill a tall window whatever the page's length.
    """
    import numpy as np
    from PIL import Image

    img = Image.open(png).convert("RGB")
    arr = np.asarray(img, dtype=np.int16)
    middle = arr[:, img.width // 5: 4 * img.width // 5]
    inked = np.nonzero((np.abs(middle - middle[:1, :1, :]).sum(axis=2) > 30).any(axis=1))[0]
    gaps = np.nonzero(np.diff(inked) > height)[0]
    last = inked[gaps[0]] if gaps.size else (inked[-1] if inked.size else height)
    bottom = min(img.height, int(last) + 40)
    out = []
    for i, top in enumerate(range(0, bottom, height)):
        path = png if i == 0 else png.with_name(f"{png.stem}__{i + 1}.png")
        img.crop((0, top, img.width, min(top + height, bottom))).save(path)
        out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html_root", nargs="?", default="_build/html")
    ap.add_argument("out_dir", nargs="?", default="_build/screenshots")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=2400)
    ap.add_argument("--budget-ms", type=int, default=8000, help="Chromium virtual time budget per page")
    ap.add_argument("--only", default=None, help="screenshot only pages whose path contains this text")
    ap.add_argument("--full", action="store_true", help="capture whole pages, cut into tiles of --height")
    ap.add_argument("--full-height", type=int, default=16000, help="window height of a --full capture")
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
        for old in out_dir.glob(f"{out.stem}__*.png"):
            old.unlink()
        try:
            dt = screenshot(chromium, page, out, args.width, args.full_height if args.full else args.height,
                            args.budget_ms)
            tiles = tile(out, args.height) if args.full else [out]
            print(f"{out}  ({dt:.1f} s, {len(tiles)} tile{'s' if len(tiles) > 1 else ''})")
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            failures += 1
            print(f"FAILED {page}: {exc}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
