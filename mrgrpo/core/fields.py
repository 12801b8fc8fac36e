"""Typed dataclass fields that check themselves (standard library only).

A settings dataclass (:class:`~mrgrpo.train.config.GRPOConfig`, the task
settings) declares each field with :func:`knob`: its default, a help line and
its constraints. :func:`check_fields` then validates and normalizes every field
from its type annotation and those constraints, so the dataclass, its error
messages and the command line generated from it (:mod:`mrgrpo.cli.config_args`)
read one source.

Supported annotations: ``bool``, ``int``, ``float``, ``str``, ``tuple[X, ...]``,
``tuple[X, Y]``, ``Optional[...]`` and ``Union[...]`` of these. Rules:

- ``bool`` is never an int or a float, and an int field refuses ``8.0``;
- a float field takes any real number and stores a finite ``float``;
- a tuple field takes a list or tuple (stored as a tuple); a string is refused,
  since ``"1,1"`` would otherwise be read character by character;
- a ``path=True`` string field also takes an ``os.PathLike`` (stored as ``str``).

Every error is a ``ValueError`` that starts with ``"<Owner>: <field>"``.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import os
import typing
from typing import Any, Optional, Sequence, Union

__all__ = ["knob", "field_types", "check_fields", "describe_type", "format_value", "to_json_value"]

NoneType = type(None)


def knob(default: Any, help: str, *, choices: Optional[Sequence[Any]] = None, low: Optional[float] = None,
         high: Optional[float] = None, low_open: bool = False, high_open: bool = False, nonempty: bool = False,
         path: bool = False, section: Optional[str] = None, aliases: Sequence[str] = (),
         metavar: Optional[str] = None) -> Any:
    """A ``dataclasses.field`` whose metadata says what values are allowed.

    Parameters
    ----------
    default : the default value (immutable: tuples, not lists).
    help : one line for ``--help`` and the docs.
    choices : the allowed values (after the type check).
    low, high : bounds; ``low_open``/``high_open`` make them strict. For a tuple
        field they bound every element.
    nonempty : a string or tuple field must not be empty.
    path : a string field that also accepts ``os.PathLike``.
    section : starts a group of fields in ``--help`` (the fields after it belong
        to it until the next ``section``).
    aliases : extra command-line spellings (``"--out"`` for ``out_dir``).
    metavar : the placeholder in ``--help`` (default: from the type).
    """
    meta = {"help": help, "choices": tuple(choices) if choices is not None else None, "low": low, "high": high,
            "low_open": low_open, "high_open": high_open, "nonempty": nonempty, "path": path,
            "section": section, "aliases": tuple(aliases), "metavar": metavar}
    return dataclasses.field(default=default, metadata=meta)


@functools.lru_cache(maxsize=None)
def field_types(cls: type) -> dict[str, Any]:
    """``{field name: resolved annotation}`` of a dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def describe_type(tp: Any) -> str:
    """``tuple[float, ...]`` -> ``"a list of numbers"``, for error messages."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Union:
        names = [describe_type(a) for a in args if a is not NoneType]
        return " or ".join(names) + (" or None" if NoneType in args else "")
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(args[0])}"
        return f"a list of {len(args)} {_plural(args[0])}"
    return {bool: "True or False", int: "an int", float: "a finite number", str: "a string"}.get(tp, str(tp))


def _plural(tp: Any) -> str:
    return {int: "ints", float: "finite numbers", str: "strings", bool: "booleans"}.get(tp, describe_type(tp))


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool) or type(v).__name__ == "bool_"  # numpy.bool_ without importing numpy


def _coerce(tp: Any, v: Any, meta: dict) -> Any:
    """``v`` converted to ``tp``; ``TypeError`` (caught by the caller) when it is not one."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Union:
        if v is None and NoneType in args:
            return None
        for a in args:
            if a is NoneType:
                continue
            try:
                return _coerce(a, v, meta)
            except TypeError:
                continue
        raise TypeError
    if origin is tuple:
        if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple)):
            raise TypeError
        fixed = not (len(args) == 2 and args[1] is Ellipsis)
        if fixed and len(v) != len(args):
            raise TypeError
        return tuple(_coerce(args[k] if fixed else args[0], x, meta) for k, x in enumerate(v))
    if tp is bool:
        if not _is_bool(v):
            raise TypeError
        return bool(v)
    if tp is int:
        if _is_bool(v) or not isinstance(v, numbers.Integral):
            raise TypeError
        return int(v)
    if tp is float:
        if _is_bool(v) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
            raise TypeError
        return float(v)
    if tp is str:
        if meta.get("path") and isinstance(v, os.PathLike):
            v = os.fspath(v)
        if not isinstance(v, str):
            raise TypeError
        return v
    return v  # an annotation this module does not check (Any, ...)


def _elements(v: Any) -> tuple:
    return v if isinstance(v, tuple) else (v,)


def _bound(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"  # an int bound exactly (2**32 - 1, not 4.29497e+09)


def _check_bounds(owner: str, name: str, v: Any, meta: dict) -> None:
    low, high = meta.get("low"), meta.get("high")
    if low is None and high is None:
        return
    for x in _elements(v):
        if x is None or _is_bool(x) or isinstance(x, str):
            continue
        bad_low = low is not None and (x <= low if meta.get("low_open") else x < low)
        bad_high = high is not None and (x >= high if meta.get("high_open") else x > high)
        if bad_low or bad_high:
            if low is not None and high is not None:
                rng = (f"in {'(' if meta.get('low_open') else '['}{_bound(low)}, "
                       f"{_bound(high)}{')' if meta.get('high_open') else ']'}")
            elif low is not None:
                rng = f"{'>' if meta.get('low_open') else '>='} {_bound(low)}"
            else:
                rng = f"{'<' if meta.get('high_open') else '<='} {_bound(high)}"
            what = "every entry of " + name if isinstance(v, tuple) else name
            raise ValueError(f"{owner}: {what} must be {rng}, got {v!r}")


def check_fields(obj: Any, owner: Optional[str] = None) -> None:
    """Validate and normalize every field of the dataclass instance ``obj`` in place.

    Works on frozen dataclasses (it stores with ``object.__setattr__``), so call
    it from ``__post_init__``.

    Raises
    ------
    ValueError
        Naming the first field whose value has the wrong type, is out of its
        bounds or not one of its choices.
    """
    owner = owner or type(obj).__name__
    types = field_types(type(obj))
    for f in dataclasses.fields(obj):
        meta, tp, v = dict(f.metadata), types[f.name], getattr(obj, f.name)
        try:
            value = _coerce(tp, v, meta)
        except TypeError:
            hint = "; pass a list or tuple, not a string" if isinstance(v, (str, bytes)) and \
                _has_tuple(tp) and not _accepts_str(tp) else ""
            raise ValueError(f"{owner}: {f.name} must be {describe_type(tp)}, got {v!r}{hint}") from None
        choices = meta.get("choices")
        if choices is not None and not any(value == c and _is_bool(value) == _is_bool(c) for c in choices):
            shown = ", ".join(repr(c) for c in choices)
            raise ValueError(f"{owner}: unknown {f.name} {value!r}; choose one of {shown}")
        if meta.get("nonempty") and isinstance(value, (str, tuple)) and len(value) == 0:
            raise ValueError(f"{owner}: {f.name} must not be empty")
        _check_bounds(owner, f.name, value, meta)
        object.__setattr__(obj, f.name, value)


def _has_tuple(tp: Any) -> bool:
    return typing.get_origin(tp) is tuple or any(_has_tuple(a) for a in typing.get_args(tp)
                                                  if typing.get_origin(tp) is Union)


def _accepts_str(tp: Any) -> bool:
    return tp is str or any(_accepts_str(a) for a in typing.get_args(tp) if typing.get_origin(tp) is Union)


def format_value(v: Any) -> str:
    """A value as it is typed on the command line: ``(1.0, 0.5)`` -> ``"1.0,0.5"``, None -> ``"none"``."""
    if v is None:
        return "none"
    if _is_bool(v):
        return "true" if v else "false"
    if isinstance(v, (tuple, list)):
        return ",".join(format_value(x) for x in v)
    return f"{v:g}" if isinstance(v, float) and (abs(v) < 1e-3 or abs(v) >= 1e6) and v != 0 else str(v)


def to_json_value(v: Any) -> Any:
    """Tuples become lists (recursively); everything else a field holds is JSON already."""
    return [to_json_value(x) for x in v] if isinstance(v, (tuple, list)) else v
