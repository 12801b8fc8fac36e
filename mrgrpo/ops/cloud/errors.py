"""The errors of the cloud runner, one class per way a rented pod can fail.

Every error carries ``result`` (a :class:`~mrgrpo.ops.cloud.spec.RunResult` or
None): what is known so far (pod id, files downloaded, cost estimate). No
message built here contains the API key (see :class:`Redactor`).
"""
from __future__ import annotations

from typing import Any, Sequence

__all__ = ["RunPodError", "RunPodHTTPError", "PodNotReadyError", "PodFailedError",
           "RemoteCommandError", "WallClockCapError", "Redactor"]


class RunPodError(RuntimeError):
    """Anything that went wrong while renting, using or returning a pod."""

    def __init__(self, message: str, result: Any = None):
        super().__init__(message)
        self.result = result


class RunPodHTTPError(RunPodError):
    """The REST API answered with an error status (after any retries).

    ``status`` is the HTTP status (None for a network error); ``title``,
    ``detail`` and ``errors`` come from the RFC 9457 problem document when the
    server sent one.
    """

    def __init__(self, message: str, status: int | None, *, title: str = "", detail: str = "",
                 errors: Sequence[str] = ()):
        super().__init__(message)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = list(errors)


class PodNotReadyError(RunPodError):
    """The pod never became RUNNING with a reachable SSH endpoint in time."""


class PodFailedError(PodNotReadyError):
    """The pod reached a state it will not leave by itself (``ERROR``, ``EXITED``,
    ``TERMINATED``) before it was ready."""

    def __init__(self, message: str, status: str, result: Any = None):
        super().__init__(message, result)
        self.status = status


class RemoteCommandError(RunPodError):
    """The command exited non-zero on the pod."""

    def __init__(self, message: str, exit_code: int, result: Any = None):
        super().__init__(message, result)
        self.exit_code = exit_code


class WallClockCapError(RunPodError):
    """The wall-clock cap passed before the command finished."""


class Redactor:
    """Replace every occurrence of the given secrets by ``***``.

    ``add`` skips secrets shorter than ``min_length`` (4 by default: masking an
    environment value such as ``1`` would mangle ordinary text without
    protecting anything); the API key is always masked.
    """

    def __init__(self, secrets: Sequence[str] = ()):
        self._secrets: list[str] = []
        for s in secrets:
            self.add(s, min_length=1)

    def add(self, secret: str | None, min_length: int = 4) -> None:
        """Mask ``secret`` from now on (unless it is shorter than ``min_length``)."""
        if secret and len(secret) >= min_length and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)  # mask the longest first

    def __call__(self, text: object) -> str:
        out = str(text)
        for s in self._secrets:
            out = out.replace(s, "***")
        return out
