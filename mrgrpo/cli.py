"""The ``mrgrpo`` command line (also ``python -m mrgrpo``).

Every subcommand lives in its own module under :mod:`mrgrpo.commands` and
exposes ``register(subparsers)``, which adds its parser and sets
``func=handler`` (``handler(args) -> int``). Modules are discovered, so adding a
command is adding a file.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import Sequence

from . import __version__, commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mrgrpo",
        description="Multi-reward GRPO: estimators, Theorem-3 checks, training and the book.",
    )
    parser.add_argument("--version", action="version", version=f"mrgrpo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        importlib.import_module(f"{commands.__name__}.{info.name}").register(sub)
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
