"""The ``mrgrpo`` command line (also ``python -m mrgrpo``).

Every subcommand lives in its own module under :mod:`mrgrpo.cli` and
exposes ``register(subparsers)``, which adds its parser and sets
``func=handler`` (``handler(args) -> int``); :data:`COMMANDS` lists them.
Command modules import only the standard library at import time; heavy imports
(torch, transformers, the analysis code) go inside the handlers.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from mrgrpo import __version__

#: The subcommand modules of this package, in the order ``--help`` lists them.
COMMANDS = ("thm3", "analyze", "train", "tiny", "book", "cloud", "hub")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mrgrpo",
        description="Multi-reward GRPO: estimators, Theorem-3 checks, training and the book.",
    )
    parser.add_argument("--version", action="version", version=f"mrgrpo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"mrgrpo {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
