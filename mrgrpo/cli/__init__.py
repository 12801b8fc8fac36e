"""The ``mrgrpo`` command line (also ``python -m mrgrpo``).

Every subcommand lives in its own module under :mod:`mrgrpo.cli` and
exposes ``register(subparsers)``, which adds its parser and sets
``func=handler`` (``handler(args) -> int``); :data:`COMMANDS` lists them.
Command modules import only the standard library at import time; heavy imports
(torch, transformers, the analysis code) go inside the handlers, and a parser
whose flags are generated from a heavy module adds them on first use
(:meth:`~mrgrpo.cli.config_args.CommandParser.defer`).

Errors. A ``ValueError`` or ``OSError`` from a handler is bad input or a missing
file: :func:`main` prints it as one line, ``mrgrpo COMMAND: error: ...``, and
returns 2. So is a missing optional package (:class:`~mrgrpo.core.extras.MissingExtraError`, or a
``ModuleNotFoundError`` of a package an extra installs): the line names the extra to install.
Ctrl-C returns 130. Anything else is a bug: its traceback is shown, followed by one line saying so.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from typing import Sequence

from mrgrpo import __version__
from mrgrpo.core.extras import MissingExtraError, missing_extra

from .config_args import CommandParser

#: The subcommand modules of this package, in the order ``--help`` lists them.
COMMANDS = ("thm3", "analyze", "corpus", "train", "tiny", "book", "cloud", "hub")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mrgrpo",
        description="Multi-reward GRPO: estimators, Theorem-3 checks, training and the book.",
    )
    parser.add_argument("--version", action="version", version=f"mrgrpo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
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
    except (ValueError, OSError) as exc:
        print(f"mrgrpo {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mrgrpo {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        hint = exc if isinstance(exc, MissingExtraError) else \
            missing_extra(exc) if isinstance(exc, ModuleNotFoundError) else None
        if hint is not None:  # an optional package is missing: one line naming the extra to install
            print(f"mrgrpo {args.command}: error: {' '.join(str(hint).split())}", file=sys.stderr)
            return 2
        traceback.print_exc()  # a bug: keep the traceback, say so in the last line
        print(f"mrgrpo {args.command}: unexpected {type(exc).__name__} (a bug in mrgrpo or a library it "
              "uses); the traceback above shows where", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
