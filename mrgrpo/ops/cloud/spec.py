"""What to rent (:class:`PodSpec`, turned into a v2 ``CreatePodRequest``), how to read a
v2 Pod object back (status, SSH endpoint, rate), and what a run did (:class:`RunResult`).

The create body follows ``CreatePodRequest`` of RunPod's v2 OpenAPI document
(runpod/docs ``api-reference-v2/openapi.json``, 2026-08-20)::

    {"name", "image", "gpu": {"id", "count", "allowedCudaVersions"?}, "cloud", "disk",
     "ports": ["22/tcp"], "env": {..., "PUBLIC_KEY": <this run's key>}, "startSsh": true,
     "mounts": {"persistent": {"size", "path"}}?, "dataCenterIds"?}

SSH: the pod gets this run's throwaway public key in ``env.PUBLIC_KEY``.
``startSsh`` injects the account's registered keys only "unless the request
already sets one", so the account's keys are neither needed nor touched; the
runner never calls ``PUT /v2/account/ssh-keys``, which replaces the account's
whole key set. The pod is reachable once ``status`` is RUNNING and its
``ssh.direct`` block (host, port, username of the published ``22/tcp``) is set.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = ["DEFAULT_IMAGE", "DEFAULT_GPU_TYPES", "PodSpec", "RunResult", "SSHEndpoint",
           "ssh_direct", "pod_rate", "READY_STATUS", "STARTING_STATUSES", "FAILED_STATUSES"]

DEFAULT_IMAGE = "runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404"  # RunPod PyTorch 2.8, CUDA 12.8.1
#: Tried in this order; RunPod's GPU type ids (``GET /v2/catalog/gpus``).
DEFAULT_GPU_TYPES: tuple[str, ...] = (
    "NVIDIA H100 PCIe",
    "NVIDIA H100 80GB HBM3",
    "NVIDIA A100 80GB PCIe",
    "NVIDIA A100-SXM4-80GB",
)
#: ``PodStatus`` of the v2 API: PROVISIONING -> STARTING -> RUNNING, or ERROR.
READY_STATUS = "RUNNING"
STARTING_STATUSES = frozenset({"PROVISIONING", "STARTING"})
#: States a starting pod does not leave by itself.
FAILED_STATUSES = frozenset({"ERROR", "EXITED", "TERMINATED"})
_CUDA = re.compile(r"^\d+\.\d+$")


@dataclass
class PodSpec:
    """What to rent. ``gpu_types`` is a preference list (RunPod GPU type ids).

    Parameters
    ----------
    gpu_types
        Tried in order: the first one RunPod can place is rented.
    image
        Container image; it must start ``sshd`` with ``$PUBLIC_KEY`` (RunPod's images do).
    gpu_count
        GPUs per pod.
    disk_gb
        Container disk (wiped when the pod stops).
    volume_gb
        A host-local persistent volume at ``/workspace``: 0 (none) or at least 10
        (RunPod's floor).
    cloud_type
        ``"SECURE"`` or ``"COMMUNITY"``.
    env
        Environment variables for the pod (their values are masked in our logs).
    cuda_versions
        Acceptable host CUDA versions (``"12.8"``); empty accepts any.
    data_centers
        Preferred data centers (e.g. ``"US-TX-3"``); empty lets RunPod choose.
    """

    gpu_types: Sequence[str] = DEFAULT_GPU_TYPES
    image: str = DEFAULT_IMAGE
    gpu_count: int = 1
    disk_gb: int = 50
    volume_gb: int = 0
    cloud_type: str = "SECURE"
    env: Mapping[str, str] = field(default_factory=dict)
    cuda_versions: Sequence[str] = ()
    data_centers: Sequence[str] = ()

    def __post_init__(self) -> None:
        self.gpu_types = _names(self.gpu_types, "gpu_types")
        self.cuda_versions = _names(self.cuda_versions, "cuda_versions")
        self.data_centers = _names(self.data_centers, "data_centers")
        if not self.gpu_types:
            raise ValueError("gpu_types must list at least one RunPod GPU type id")
        if not isinstance(self.image, str) or not self.image.strip():
            raise ValueError(f"image must be a non-empty string, got {self.image!r}")
        for name in ("gpu_count", "disk_gb", "volume_gb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if self.gpu_count < 1:
            raise ValueError(f"gpu_count must be >= 1, got {self.gpu_count}")
        if self.disk_gb < 1:
            raise ValueError(f"disk_gb must be >= 1, got {self.disk_gb}")
        if self.volume_gb != 0 and self.volume_gb < 10:
            raise ValueError(f"volume_gb must be 0 (none) or >= 10 (RunPod's floor), got {self.volume_gb}")
        if self.cloud_type not in ("SECURE", "COMMUNITY"):
            raise ValueError(f"cloud_type must be SECURE or COMMUNITY, got {self.cloud_type!r}")
        bad = [v for v in self.cuda_versions if not _CUDA.match(v)]
        if bad:
            raise ValueError(f"cuda_versions must look like '12.8', got {bad}")
        env = dict(self.env)
        for k, v in env.items():
            if not isinstance(k, str) or not k or not isinstance(v, str):
                raise ValueError(f"env must map non-empty strings to strings, got {k!r}: {type(v).__name__}")
        if "PUBLIC_KEY" in env:
            raise ValueError("env must not set PUBLIC_KEY: the runner sets it to this run's SSH key")
        self.env = env

    def body(self, gpu_type: str, name: str, public_key: str) -> dict[str, Any]:
        """The ``POST /v2/pods`` body for one GPU type."""
        gpu: dict[str, Any] = {"id": gpu_type, "count": self.gpu_count}
        if self.cuda_versions:
            gpu["allowedCudaVersions"] = list(self.cuda_versions)
        body: dict[str, Any] = {
            "name": name, "image": self.image, "gpu": gpu, "cloud": self.cloud_type,
            "disk": self.disk_gb, "ports": ["22/tcp"],
            "env": {**self.env, "PUBLIC_KEY": public_key}, "startSsh": True,
        }
        if self.volume_gb:
            body["mounts"] = {"persistent": {"size": self.volume_gb, "path": "/workspace"}}
        if self.data_centers:
            body["dataCenterIds"] = list(self.data_centers)
        return body


def _names(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value else ()
    try:
        items = tuple(value)
    except TypeError:
        raise ValueError(f"{what} must be a sequence of strings, got {type(value).__name__}") from None
    if not all(isinstance(v, str) and v.strip() for v in items):
        raise ValueError(f"{what} must hold non-empty strings, got {list(items)!r}")
    return items


@dataclass(frozen=True)
class SSHEndpoint:
    """``ssh.direct`` of a v2 Pod: the pod's sshd on its published ``22/tcp``."""

    host: str
    port: int
    username: str


def ssh_direct(pod: Mapping[str, Any]) -> SSHEndpoint | None:
    """The pod's direct SSH endpoint, or None while it has none (provisioning, stopped)."""
    direct = (pod.get("ssh") or {}).get("direct") if isinstance(pod.get("ssh"), dict) else None
    if not isinstance(direct, dict) or not direct.get("host"):
        return None
    try:
        port = int(direct.get("port"))
    except (TypeError, ValueError):
        return None
    if not 0 < port < 65536:
        return None
    return SSHEndpoint(str(direct["host"]), port, str(direct.get("username") or "root"))


def pod_rate(pod: Mapping[str, Any]) -> float | None:
    """The pod's ``cost`` in USD per hour, or None when it is absent or not positive."""
    try:
        value = float(pod.get("cost"))
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


@dataclass
class RunResult:
    """What a run did. Cost figures are estimates: rate x (delete time - create time)."""

    pod_id: str | None = None
    pod_name: str | None = None
    gpu_type: str | None = None
    cost_per_hr: float | None = None
    exit_code: int | None = None
    elapsed_s: float = 0.0
    cost_usd: float | None = None
    max_cost_usd: float | None = None
    local_dir: Path | None = None
    downloaded: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    log_path: Path | None = None
    deleted: bool = False
