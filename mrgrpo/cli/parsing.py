"""Reading typed values from command-line text (standard library only).

:func:`parse_value` is the one reader: ``"1,1,0.5"`` as ``tuple[float, ...]``,
``"none"`` for an ``Optional``, ``"true"``/``"false"`` for a bool. The flags
generated from dataclasses (:mod:`mrgrpo.cli.config_args`) and the hand-written
ones (:func:`comma_floats`, :func:`comma_ints`) both use it.
"""
from __future__ import annotations

import argparse
import typing
from typing import Any, Union

__all__ = ["parse_value", "comma_floats", "comma_ints"]

NoneType = type(None)
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def parse_value(tp: Any, text: str) -> Any:
    """The command-line text ``text`` read as type ``tp``; ``ValueError`` when it is not one."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    text = text.strip()
    if origin is Union:
        if NoneType in args and text.lower() == "none":
            return None
        for a in args:
            if a is NoneType:
                continue
            try:
                return parse_value(a, text)
            except ValueError:
                continue
        raise ValueError(f"expected {_expected(tp)}, got {text!r}")
    if origin is tuple:
        parts = [p.strip() for p in text.split(",")]
        if not text or any(not p for p in parts):
            raise ValueError(f"expected a comma-separated list like {_example(tp)}, got {text!r}")
        fixed = not (len(args) == 2 and args[1] is Ellipsis)
        if fixed and len(parts) != len(args):
            raise ValueError(f"expected {len(args)} comma-separated values like {_example(tp)}, got {text!r}")
        return tuple(parse_value(args[k] if fixed else args[0], p) for k, p in enumerate(parts))
    if tp is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(f"expected true or false, got {text!r}")
    if tp is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
    if tp is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
    return text


def _expected(tp: Any) -> str:
    names = [{bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(a, "a comma list")
             for a in typing.get_args(tp) if a is not NoneType]
    return " or ".join(names) + (" or none" if NoneType in typing.get_args(tp) else "")


def _example(tp: Any) -> str:
    args = typing.get_args(tp)
    sample = {int: "1", float: "0.5", str: "name"}.get(args[0], "x")
    return ",".join([sample] * (2 if len(args) == 2 and args[1] is Ellipsis else len(args)))


def _argument(tp: Any, text: str) -> Any:
    try:
        return parse_value(tp, text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def comma_floats(text: str) -> tuple[float, ...]:
    """``"1,1,0.5"`` -> ``(1.0, 1.0, 0.5)``; an ``argparse`` error otherwise."""
    return _argument(tuple[float, ...], text)


def comma_ints(text: str) -> tuple[int, ...]:
    """``"4,8,16"`` -> ``(4, 8, 16)``; an ``argparse`` error otherwise."""
    return _argument(tuple[int, ...], text)
