"""Run the paper-scale chapters on a rented GPU.

- :mod:`mrgrpo.ops.cloud.runpod`  RunPod REST client and :class:`~mrgrpo.ops.cloud.runpod.PodRunner`
  (create a pod, run a command over SSH, download results, always delete the pod)
- :mod:`mrgrpo.ops.cloud.ssh`     run / upload / download over the system ``ssh``

CLI: ``mrgrpo cloud run --gpu "NVIDIA H100 PCIe" --cap 1800 -- COMMAND``.
"""
from __future__ import annotations

from .runpod import (
    DEFAULT_BASE_URL,
    DEFAULT_GPU_TYPES,
    DEFAULT_IMAGE,
    PodNotReadyError,
    PodRunner,
    PodSpec,
    RemoteCommandError,
    RunPodClient,
    RunPodError,
    RunPodHTTPError,
    RunResult,
    WallClockCapError,
    load_api_key,
)
from .ssh import SSHError, SSHTarget

__all__ = [
    "DEFAULT_BASE_URL", "DEFAULT_GPU_TYPES", "DEFAULT_IMAGE", "PodNotReadyError", "PodRunner",
    "PodSpec", "RemoteCommandError", "RunPodClient", "RunPodError", "RunPodHTTPError",
    "RunResult", "SSHError", "SSHTarget", "WallClockCapError", "load_api_key",
]
