"""``mrgrpo book run CHAPTER -p name value ... [--out chapters/runs/NAME.ipynb]``.

Reruns one chapter of the book with papermill (after converting it with
jupytext) and stores the executed notebook under ``chapters/runs/``, where the
book renders it without executing it again.
"""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "book",
        help="rerun a chapter of the book with new parameters (papermill)",
        description="Tools for the Jupyter Book in chapters/.",
    )
    sub = parser.add_subparsers(dest="book_command", metavar="ACTION")
    run = sub.add_parser(
        "run",
        help="execute a chapter with papermill and store it under chapters/runs/",
        description=(
            "Convert chapters/CHAPTER.md to a notebook with jupytext, execute it with papermill "
            "(working directory chapters/) and store the executed notebook under chapters/runs/. "
            "Values are read as Python literals when they parse (8, 0.7, [4,8,16], True, '8' for "
            "the string 8), otherwise as strings; only what JSON can hold is accepted (strings, "
            "finite numbers, true/false/None, lists and dicts of these)."
        ),
    )
    run.add_argument("chapter", help="chapter name (thm3), file name (thm3.md) or path")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                     metavar=("NAME", "VALUE"), help="override a parameter (repeatable)")
    run.add_argument("--out", default=None,
                     help="output notebook (default chapters/runs/<chapter>__<params>.ipynb)")
    run.add_argument("--root", default=".", help="the book's root folder (default: .)")
    run.add_argument("--timeout", type=float, default=None,
                     help="per-cell timeout in seconds (positive; rounded up to whole seconds)")
    run.add_argument("--kernel", default="python3", help="Jupyter kernel name (default python3)")
    run.add_argument("--allow-unknown", action="store_true",
                     help="pass parameters that the chapter's parameters cell does not define")
    run.add_argument("--no-progress", action="store_true", help="hide papermill's progress bar")
    run.add_argument("--overwrite", action="store_true", help="replace a stored run at the output path")
    run.set_defaults(func=_run)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _run(args: argparse.Namespace) -> int:
    import sys

    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    from mrgrpo.ops.book import parse_value, run_chapter

    params = {}
    for name, value in args.parameter:
        if not name.isidentifier():
            raise ValueError(f"parameter name {name!r} is not a Python identifier")
        params[name] = parse_value(value, name)
    try:
        out = run_chapter(
            args.chapter,
            params,
            out=args.out,
            root=args.root,
            kernel_name=args.kernel,
            timeout=args.timeout,
            progress_bar=not args.no_progress,
            allow_unknown=args.allow_unknown,
            overwrite=args.overwrite,
        )
    except PapermillExecutionError as exc:
        print(f"mrgrpo book run: chapter {args.chapter!r} raised in cell {exc.exec_count}: "
              f"{exc.ename}: {exc.evalue}", file=sys.stderr)
        return 1
    except (CellTimeoutError, DeadKernelError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"mrgrpo book run: chapter {args.chapter!r} stopped: {first}", file=sys.stderr)
        return 1
    print(f"stored {out}")
    return 0
