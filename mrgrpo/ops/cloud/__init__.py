"""Run the paper-scale chapters on a rented GPU (RunPod, REST API v2).

- :mod:`~mrgrpo.ops.cloud.api`       the REST v2 client (pods: create, get, list, delete)
- :mod:`~mrgrpo.ops.cloud.spec`      what to rent (the create body) and how to read a pod back
- :mod:`~mrgrpo.ops.cloud.runner`    :class:`PodRunner`: create, run over SSH, download,
  always delete the pod
- :mod:`~mrgrpo.ops.cloud.remote`    stream one long command on the pod, kill it at the cap
- :mod:`~mrgrpo.ops.cloud.ssh`       the system ``ssh``, always with a time bound
- :mod:`~mrgrpo.ops.cloud.transfer`  upload (no dotfiles or secrets) and download (only
  the requested paths) as tar streams
- :mod:`~mrgrpo.ops.cloud.keys`, :mod:`~mrgrpo.ops.cloud.errors`  the API key; the errors

Why a port of our own client to REST v2 rather than RunPod's ``runpod`` SDK
(1.12.0, 2026-08-10): the SDK manages pods through RunPod's GraphQL API
(``runpod/api/graphql.py`` posts to ``$RUNPOD_API_BASE_URL/graphql``), which
RunPod's release notes of 2026-08-18 deprecate too ("retired in early 2027",
runpod/docs ``release-notes.mdx``); it builds its GraphQL mutations by string
formatting without escaping (``runpod/api/mutations/pods.py``: a ``"`` in an
``--env`` value breaks the query); it neither retries nor backs off, and takes
its key from a module global; and it would bring ``fastapi[all]``, ``boto3``,
``paramiko``, ``watchdog``, ``aiohttp`` and more (its ``requirements.txt``) for
five HTTP calls. The v2 port needs only the standard library, is tested
against a loopback fake that checks every body against RunPod's
``CreatePodRequest``, and follows the API RunPod names as current.

CLI: ``mrgrpo cloud run --gpu "NVIDIA H100 PCIe" --cap 1800 -- COMMAND``.
"""
from __future__ import annotations

from .api import DEFAULT_BASE_URL, RunPodClient
from .errors import (PodFailedError, PodNotReadyError, Redactor, RemoteCommandError, RunPodError,
                     RunPodHTTPError, WallClockCapError)
from .keys import load_api_key
from .runner import DEFAULT_DOWNLOADS, DEFAULT_LOCAL_ROOT, DEFAULT_REMOTE_DIR, PodRunner
from .spec import DEFAULT_GPU_TYPES, DEFAULT_IMAGE, PodSpec, RunResult
from .ssh import SSHError, SSHTarget

__all__ = [
    "DEFAULT_BASE_URL", "DEFAULT_DOWNLOADS", "DEFAULT_GPU_TYPES", "DEFAULT_IMAGE",
    "DEFAULT_LOCAL_ROOT", "DEFAULT_REMOTE_DIR", "PodFailedError", "PodNotReadyError", "PodRunner",
    "PodSpec", "Redactor", "RemoteCommandError", "RunPodClient", "RunPodError", "RunPodHTTPError",
    "RunResult", "SSHError", "SSHTarget", "WallClockCapError", "load_api_key",
]
