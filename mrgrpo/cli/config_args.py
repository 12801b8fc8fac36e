"""Command-line flags generated from a settings dataclass (standard library only).

In the spirit of ``transformers.HfArgumentParser`` and TRL's ``TrlParser``: each
field declared with :func:`mrgrpo.core.fields.knob` becomes one flag, and its
name, type, choices, help line and default all come from the declaration.

- ``--field-name`` (underscores become dashes; ``knob(aliases=...)`` adds spellings);
- ``bool``: ``--flag`` / ``--no-flag``;
- ``tuple[X, ...]``: a comma list (``--weights 1,1,0.5``); ``tuple[X, Y]``: exactly two;
- ``Optional[X]``: also ``none``; ``Union[int, tuple[int, ...]]``: ``1`` or ``1,2``;
- choices are listed, and the default (or each preset's value) is shown.

Flags that are not given stay out of the namespace (``argparse.SUPPRESS``), so
:func:`given_fields` returns exactly what the user typed, ready to put on top of
a preset. The dataclass itself checks ranges and cross-field rules when built.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import re
import typing
from typing import Any, Callable, Iterator, Mapping, Optional, Union

from mrgrpo.core.fields import field_types, format_value

from .parsing import parse_value

__all__ = ["flag_name", "add_dataclass_arguments", "given_fields", "flag_errors", "CommandParser"]

NoneType = type(None)


def flag_name(name: str) -> str:
    """``"n_steps"`` -> ``"--n-steps"``."""
    return "--" + name.replace("_", "-")


def _metavar(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Union:
        parts = [_metavar(a) for a in args if a is not NoneType]
        return "|".join(parts) + ("|none" if NoneType in args else "")
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"{_metavar(args[0])},..."
        return ",".join(_metavar(a) for a in args)
    return {int: "INT", float: "FLOAT", str: "TEXT", bool: "BOOL"}.get(tp, "VALUE")


def _type_fn(tp: Any) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse_value(tp, text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return convert


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, *,
                            notes: Optional[Mapping[str, str]] = None,
                            group_prefix: str = "") -> list[str]:
    """Add one flag per field of the dataclass ``cls``; return the field names.

    Parameters
    ----------
    parser : argparse.ArgumentParser
    cls : a dataclass whose fields were declared with :func:`~mrgrpo.core.fields.knob`
    notes : mapping, optional
        ``{field: text}`` shown in brackets after the help line instead of
        ``default: <value>`` (e.g. each preset's value).
    group_prefix : str
        Prefix of the ``--help`` section titles (``knob(section=...)``).
    """
    notes = dict(notes or {})
    types = field_types(cls)
    group: Any = parser
    names = []
    for f in dataclasses.fields(cls):
        meta, tp = f.metadata, types[f.name]
        if meta.get("section"):
            group = parser.add_argument_group(group_prefix + meta["section"])
        note = notes.get(f.name, f"default: {format_value(f.default)}")
        help_text = f"{meta.get('help', '')} [{note}]".replace("%", "%%")
        flags = [flag_name(f.name), *meta.get("aliases", ())]
        if tp is bool:
            group.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_text)
        else:
            choices = meta.get("choices")
            kwargs: dict[str, Any] = dict(dest=f.name, default=argparse.SUPPRESS, help=help_text,
                                          type=_type_fn(tp))
            if choices is not None:
                kwargs["metavar"] = "{" + ",".join(format_value(c) for c in choices) + "}"
                kwargs["choices"] = choices
            else:
                kwargs["metavar"] = meta.get("metavar") or _metavar(tp)
            group.add_argument(*flags, **kwargs)
        names.append(f.name)
    return names


def given_fields(namespace: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` that were given on the command line, ``{name: value}``."""
    return {f.name: getattr(namespace, f.name) for f in dataclasses.fields(cls) if hasattr(namespace, f.name)}


@contextlib.contextmanager
def flag_errors(*classes: type) -> Iterator[None]:
    """Name the flag in a dataclass's error: ``"GRPOConfig: m must be ..."`` becomes ``"--m: m must be ..."``.

    A ``ValueError`` raised inside whose message starts with ``"<Owner>: <field>"`` (the form of
    :func:`~mrgrpo.core.fields.check_fields` and the classes' own checks), for one of ``classes``,
    is raised again with the field's flag in place of the owner; any other passes unchanged.
    """
    try:
        yield
    except ValueError as exc:
        text = str(exc)
        for cls in classes:
            match = re.match(rf"{cls.__name__}: (?:every entry of |unknown )?(\w+)", text)
            if match and match.group(1) in {f.name for f in dataclasses.fields(cls)}:
                raise ValueError(f"{flag_name(match.group(1))}: {text[len(cls.__name__) + 2:]}") from exc
        raise


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose arguments may be added on first use (:meth:`defer`).

    ``mrgrpo --help`` and the light subcommands then never import what a heavy
    subcommand's flags are generated from.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deferred: list[Callable[[argparse.ArgumentParser], None]] = []
        # A value that starts with a negative number ("--weights -1,1,1", "--lr -1e-3") is a value, not an
        # unknown flag (older argparse takes only "-1" and "-0.5" so; newer Pythons use this same rule).
        self._negative_number_matcher = re.compile(r"-\.?\d")

    def defer(self, add_arguments: Callable[[argparse.ArgumentParser], None]) -> None:
        """Call ``add_arguments(self)`` just before this parser is first used."""
        self._deferred.append(add_arguments)

    def _ready(self) -> None:
        while self._deferred:
            self._deferred.pop(0)(self)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self._ready()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._ready()
        return super().format_help()

    def format_usage(self) -> str:
        self._ready()
        return super().format_usage()
