"""Argument types shared by the subcommands (standard library only)."""
from __future__ import annotations

import argparse

__all__ = ["comma_floats", "comma_ints"]


def comma_floats(text: str) -> tuple[float, ...]:
    """``"1,1,0.5"`` -> ``(1.0, 1.0, 0.5)``; an ``argparse`` error otherwise."""
    try:
        values = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 1,1,0.5, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 1,1,0.5, got {text!r}")
    return values


def comma_ints(text: str) -> tuple[int, ...]:
    """``"4,8,16"`` -> ``(4, 8, 16)``; an ``argparse`` error otherwise."""
    try:
        values = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 4,8,16, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 4,8,16, got {text!r}")
    return values
