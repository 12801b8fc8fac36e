"""One progress bar for the whole package: a bar on a terminal, nothing in a log.

Every long loop in ``mrgrpo`` draws its bar through :func:`progress_bar`. On a
terminal it is tqdm's bar; in a notebook, tqdm's widget; when stderr is a
file or a pipe (a CI log, ``nohup``, a cloud runner's log) nothing is drawn
(tqdm's ``disable=None``), so logs never fill with ``\\r`` updates.
"""
from __future__ import annotations

from typing import Any, Iterable, Optional

__all__ = ["progress_bar"]


def progress_bar(iterable: Optional[Iterable] = None, *, enabled: bool = True, **kwargs: Any):
    """A ``tqdm.auto`` bar over ``iterable`` (or a manual one with ``total=``).

    Parameters
    ----------
    iterable : iterable, optional
    enabled : bool
        False: no bar at all (the ``--no-progress`` flags).
    **kwargs
        Passed to tqdm (``total``, ``desc``, ``unit``, ``leave``, ``file``, ...).

    Returns
    -------
    tqdm.tqdm
        Disabled (a plain pass-through) when ``enabled`` is False or the
        output is not a terminal, except in a notebook, where the widget has
        no ``\\r`` problem.
    """
    from tqdm.auto import tqdm
    from tqdm.autonotebook import tqdm as chosen

    if not enabled:
        disable: Optional[bool] = True
    elif chosen.__module__ == "tqdm.notebook" and "file" not in kwargs:
        disable = False
    else:
        disable = None  # tqdm: disabled when the output stream is not a TTY
    return tqdm(iterable, disable=disable, **kwargs)
