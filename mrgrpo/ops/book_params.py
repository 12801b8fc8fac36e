"""The parameters of a chapter run: read from its ``parameters`` cell, parsed from the command line,
checked to be JSON-representable (papermill writes them into a notebook as source), and written
back as the ``mrgrpo book run`` command that repeats a run.
"""
from __future__ import annotations

import ast
import math
import os
import re
import shlex
from typing import Any, Mapping

__all__ = ["parameter_names", "parameter_defaults", "check_value", "parse_value", "cli_value", "repeat_command"]

def _parameters_source(nb) -> str:
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"a chapter needs exactly one cell tagged 'parameters', found {len(cells)}")
    return cells[0].source


def parameter_names(nb) -> list[str]:
    """Names assigned at top level of the notebook's ``parameters`` cell, in order."""
    tree = ast.parse(_parameters_source(nb))
    names: list[str] = []
    for node in tree.body:
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for t in targets:
            if isinstance(t, ast.Name) and t.id not in names:
                names.append(t.id)
    return names


def parameter_defaults(nb) -> dict[str, Any]:
    """The ``parameters`` cell's top-level ``name = literal`` assignments as values (others left out)."""
    out: dict[str, Any] = {}
    for node in ast.parse(_parameters_source(nb)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return out


_WORDS = {"true": True, "false": False, "none": None, "null": None}
_SCALARS = (str, bool, int, float, type(None))


def check_value(value: Any, name: str = "value") -> Any:
    """``value`` as a JSON-representable parameter (tuples become lists); ``ValueError`` otherwise.

    A parameter reaches the chapter as Python source written by papermill, which quotes
    strings but writes any other object as its text, so a ``bytes`` or ``set`` value could
    carry code. Only what JSON can hold passes: ``str``, ``int``, finite ``float``,
    ``bool``, ``None`` and lists (or tuples) and ``str``-keyed dicts of these.
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"parameter {name} is {value!r}: a parameter must be a finite number "
                         "(a stored run records its parameters as JSON, which has no inf or nan)")
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, (tuple, list)):
        # papermill writes lists but not tuples as literals, so tuples travel as lists.
        return [check_value(v, f"{name}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise ValueError(f"parameter {name} has the key {bad[0]!r} ({type(bad[0]).__name__}); "
                             "dict keys must be strings")
        return {k: check_value(v, f"{name}[{k!r}]") for k, v in value.items()}
    raise ValueError(f"parameter {name} is a {type(value).__name__} ({value!r:.60}); a parameter must be "
                     "a string, a number, true/false/None, or a list or dict of these")


def parse_value(text: str, name: str = "value") -> Any:
    """Turn a command-line value into a JSON-representable Python value.

    Python literals are read as such (``8``, ``0.7``, ``[4, 8, 16]``, ``'cpu'``,
    ``True``); ``true``/``false``/``null`` in any case are accepted too; anything
    else stays a string (so ``-p model Qwen/Qwen2.5-1.5B-Instruct`` needs no quotes).

    Raises
    ------
    ValueError
        When the literal is not JSON-representable (see :func:`check_value`): ``b'...'``,
        ``{1, 2}``, ``1e999``, ``1j``.
    """
    if not isinstance(text, str):
        return check_value(text, name)
    low = text.strip().lower()
    if low in _WORDS:
        return _WORDS[low]
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
    return check_value(value, name)


def cli_value(value: Any) -> str:
    """The ``-p NAME VALUE`` text that :func:`parse_value` reads back as ``value``."""
    value = check_value(value)
    if isinstance(value, str):
        try:
            back = parse_value(value)
        except ValueError:  # it reads as a literal we refuse ("b'x'"): quote it
            back = None
        if isinstance(back, str) and back == value:
            return value
    return repr(value)


def _shell_word(text: str) -> str:
    """``text`` quoted for a POSIX shell, preferring plain or double quotes over ``'"'"'``."""
    quoted = shlex.quote(text)
    if quoted == text or "'" not in text or re.search(r'["$`\\!]', text):
        return quoted
    return f'"{text}"'


def repeat_command(stem: str, parameters: Mapping[str, Any], out: str | os.PathLike | None = None,
                   kernel_name: str = "python3") -> str:
    """The ``mrgrpo book run`` command line that repeats a run, with ``out`` as the user gave it.

    Each value is written so that :func:`parse_value` reads it back unchanged: the string
    ``"8"`` as ``"'8'"`` (not ``8``, an int), ``[1, 'a']`` as a Python literal.
    """
    words = ["mrgrpo", "book", "run", stem]
    for k, v in parameters.items():
        words += ["-p", k, _shell_word(cli_value(v))]
    if kernel_name != "python3":
        words += ["--kernel", shlex.quote(kernel_name)]
    if out is not None:
        words += ["--out", shlex.quote(os.fspath(out))]
    return " ".join(words)
