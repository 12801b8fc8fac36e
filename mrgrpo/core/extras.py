"""Optional dependencies: the extras of ``pyproject.toml`` and the one-line hint that names them.

mrgrpo's core needs only numpy; the rest comes with an extra (``pip install -e '.[llm]'`` in a clone:
torch and Hugging Face; ``[trl]``; ``[verl]``; ``[data]``; ``[book]``; ``[real]``). Code that
needs one calls :func:`require` before its imports, so a missing package is a
:class:`MissingExtraError` that says what to install, not a bare ``ModuleNotFoundError``;
the ``mrgrpo`` command prints it as one line (:func:`missing_extra` turns any other
``ModuleNotFoundError`` of a known package into the same error).
"""
from __future__ import annotations

import importlib
from types import MappingProxyType, ModuleType
from typing import Mapping, Optional

__all__ = ["MissingExtraError", "EXTRA_OF", "install_hint", "missing_extra", "require"]

#: Top-level package -> the extra of ``pyproject.toml`` that installs it (where it is first needed).
EXTRA_OF: Mapping[str, str] = MappingProxyType({
    **dict.fromkeys(("torch", "transformers", "tokenizers", "safetensors", "peft", "accelerate"), "llm"),
    "trl": "trl",
    "verl": "verl",
    **dict.fromkeys(("datasets", "huggingface_hub"), "data"),
    "gguf": "real",
    **dict.fromkeys(("jupyter_book", "jupytext", "papermill", "ipykernel", "matplotlib", "seaborn", "pandas"),
                    "book"),
})


class MissingExtraError(ImportError):
    """An optional package that a feature needs is not installed (the message names the fix)."""


def install_hint(extra: str) -> str:
    """``"llm"`` -> ``"pip install -e '.[llm]' (in a clone of mrgrpo)"``: mrgrpo is on no package index."""
    return f"pip install -e '.[{extra}]' (in a clone of mrgrpo)"


def missing_extra(exc: ModuleNotFoundError, extra: Optional[str] = None,
                  feature: Optional[str] = None) -> Optional[MissingExtraError]:
    """The :class:`MissingExtraError` for ``exc``, or None when ``exc`` is not about an optional package.

    Parameters
    ----------
    exc : the ``ModuleNotFoundError`` of an import
    extra : the extra to name; default: the one that installs the missing package (:data:`EXTRA_OF`)
    feature : what needs it, for the message (e.g. ``"mrgrpo.integrations.trl"``)

    Returns
    -------
    MissingExtraError or None
        None for a module of mrgrpo itself or a package no extra installs (a bug, not a
        missing extra).
    """
    top = (getattr(exc, "name", None) or "").partition(".")[0]
    if not top or top == "mrgrpo" or (extra is None and top not in EXTRA_OF):
        return None
    extra = extra or EXTRA_OF[top]
    what = f"{feature} needs the package {top!r}, which is not installed" if feature else \
        f"the package {top!r} is not installed"
    return MissingExtraError(f"{what}; install it with {install_hint(extra)}")


def require(module: str, extra: Optional[str] = None, feature: Optional[str] = None) -> ModuleType:
    """Import ``module``; a missing optional package is a :class:`MissingExtraError` naming the extra.

    Parameters
    ----------
    module : the module to import (``"torch"``, ``"trl"``, ``"mrgrpo.train.trainer"``, ...)
    extra : the extra to name (``"llm"``, ``"trl"``, ``"verl"``, ...); default: the one that
        installs whichever package turns out missing (:data:`EXTRA_OF`)
    feature : what needs it, for the message

    Returns
    -------
    the imported module

    Raises
    ------
    MissingExtraError
        ``module``, or a package it imports, is not installed.
    ModuleNotFoundError
        a module of mrgrpo itself, or a package no extra installs, is missing: a bug, raised as is.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        err = missing_extra(exc, extra, feature)
        if err is None:
            raise
        raise err from exc
