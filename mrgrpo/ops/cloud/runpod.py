"""Run a command on a rented RunPod GPU and always give the GPU back.

The flow of :meth:`PodRunner.run`::

    create pod (first GPU type in the preference list that RunPod can rent)
      -> wait until RUNNING with a public SSH port -> wait until ``ssh`` answers
      -> upload the repo (tar over ssh) -> setup (e.g. ``pip install -e .``)
      -> run the command, streaming its log -> download results
      -> delete the pod          (always: success, failure, Ctrl-C or SIGTERM, cap)

Talks to RunPod's REST API v1 (``https://rest.runpod.io/v1``; the base URL is a
parameter): ``POST /pods``, ``GET /pods/{id}``, ``GET /pods?name=``,
``DELETE /pods/{id}``. Every request has a timeout; 429, 5xx and network
errors are retried a bounded number of times with exponential backoff.

SSH: the pod gets a throwaway public key in its ``PUBLIC_KEY`` environment
variable (RunPod's images install it into ``authorized_keys`` and start
``sshd``), unless a key file is given.

The API key comes from the argument, ``RUNPOD_API_KEY`` or a ``.env`` file,
is sent only in the ``Authorization`` header, and is masked in every log line
and exception message this module produces.

Wall-clock cap: ``cap_s`` bounds the run from pod creation to the end of the
command (billing starts at creation). When it passes, the command is killed,
whatever results exist are downloaded (at most ``download_grace_s`` more) and
the pod is deleted.
"""
from __future__ import annotations

import json
import os
import queue
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from . import ssh as _ssh

DEFAULT_BASE_URL = "https://rest.runpod.io/v1"
DEFAULT_IMAGE = "runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404"  # RunPod PyTorch 2.8, CUDA 12.8.1
#: Tried in this order; RunPod's GPU type ids.
DEFAULT_GPU_TYPES: tuple[str, ...] = (
    "NVIDIA H100 PCIe",
    "NVIDIA H100 80GB HBM3",
    "NVIDIA A100 80GB PCIe",
    "NVIDIA A100-SXM4-80GB",
)
DEFAULT_DOWNLOADS: tuple[str, ...] = ("chapters/runs", "runs")
DEFAULT_REMOTE_DIR = "/workspace/mrgrpo-book"
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_PID_FILE = ".mrgrpo-cloud.pid"


# ----------------------------------------------------------------------------- errors
class RunPodError(RuntimeError):
    """Anything that went wrong while renting, using or returning a pod.

    ``result`` (a :class:`RunResult` or None) holds what is known so far: the
    pod id, what was downloaded, the cost estimate.
    """

    def __init__(self, message: str, result: "RunResult | None" = None):
        super().__init__(message)
        self.result = result


class RunPodHTTPError(RunPodError):
    """The REST API answered with an error status (after any retries)."""

    def __init__(self, message: str, status: int | None):
        super().__init__(message)
        self.status = status


class PodNotReadyError(RunPodError):
    """The pod never became RUNNING with a reachable SSH port in time."""


class RemoteCommandError(RunPodError):
    """The command exited non-zero on the pod."""

    def __init__(self, message: str, exit_code: int, result: "RunResult | None" = None):
        super().__init__(message, result)
        self.exit_code = exit_code


class WallClockCapError(RunPodError):
    """The wall-clock cap passed before the command finished."""


# ----------------------------------------------------------------------------- secrets
class Redactor:
    """Replace every occurrence of the given secrets by ``***``."""

    def __init__(self, secrets: Sequence[str] = ()):
        self._secrets = [s for s in secrets if s]

    def add(self, secret: str | None) -> None:
        if secret:
            self._secrets.append(secret)

    def __call__(self, text: object) -> str:
        out = str(text)
        for s in self._secrets:
            out = out.replace(s, "***")
        return out


def _read_dotenv(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export "):]
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def load_api_key(api_key: str | None = None, env_file: str | os.PathLike | None = ".env") -> str:
    """The RunPod API key: ``api_key``, else ``$RUNPOD_API_KEY``, else ``RUNPOD_API_KEY`` in ``env_file``.

    Raises
    ------
    RunPodError
        If none of the three has a non-empty key (the message never contains one).
    """
    if api_key:
        return api_key.strip()
    if os.environ.get("RUNPOD_API_KEY", "").strip():
        return os.environ["RUNPOD_API_KEY"].strip()
    if env_file is not None and Path(env_file).is_file():
        value = _read_dotenv(Path(env_file)).get("RUNPOD_API_KEY", "").strip()
        if value:
            return value
    raise RunPodError("no RunPod API key: pass api_key (--api-key), set RUNPOD_API_KEY, "
                      f"or put RUNPOD_API_KEY=... in {env_file or '.env'}")


# ----------------------------------------------------------------------------- REST client
class RunPodClient:
    """A small client for RunPod's REST API v1.

    Parameters
    ----------
    api_key
        Sent as ``Authorization: Bearer ...``; masked in all messages.
    base_url
        ``https://rest.runpod.io/v1`` by default (tests point it at a fake server).
    timeout
        Seconds per HTTP request.
    max_retries
        Extra attempts after a 429, a 5xx, a timeout or a connection error.
    backoff, max_backoff
        The wait before retry ``i`` (0-based) is ``min(max_backoff, backoff * 2**i)``
        (or the server's ``Retry-After`` on 429, capped by ``max_backoff``).
    sleep
        Injected for tests; ``time.sleep`` by default.
    log
        Called with each (redacted) message about retries.
    """

    def __init__(self, api_key: str, base_url: str = DEFAULT_BASE_URL, *, timeout: float = 30.0,
                 max_retries: int = 4, backoff: float = 1.0, max_backoff: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep,
                 log: Callable[[str], None] | None = None):
        if not api_key:
            raise RunPodError("RunPodClient needs a non-empty api_key")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self._key = api_key
        self.redact = Redactor([api_key])
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self._sleep = sleep
        self._log = log or (lambda msg: None)
        #: POST attempts whose outcome is unknown (timeout, 5xx, dropped connection):
        #: the server may have created a pod without us learning its id.
        self.ambiguous_posts = 0

    def __repr__(self) -> str:  # never show the key
        return f"RunPodClient(base_url={self.base_url!r}, api_key=***)"

    # -- transport
    def _once(self, method: str, url: str, body: bytes | None) -> tuple[int, bytes, Mapping[str, str]]:
        req = urllib.request.Request(url, data=body, method=method, headers={
            "Authorization": f"Bearer {self._key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "mrgrpo-cloud",
        })
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            payload = exc.read() if exc.fp is not None else b""
            return exc.code, payload, dict(exc.headers or {})

    @staticmethod
    def _error_text(payload: bytes) -> str:
        text = payload.decode(errors="replace").strip()
        try:
            data = json.loads(text)
        except ValueError:
            return text[:300]
        if isinstance(data, dict):
            for key in ("error", "message", "detail"):
                if data.get(key):
                    return str(data[key])[:300]
        return text[:300]

    def request(self, method: str, path: str, body: Any = None,
                query: Mapping[str, Any] | None = None) -> Any:
        """Send one API call with bounded retries; return the decoded JSON (None if empty).

        Raises
        ------
        RunPodHTTPError
            On a non-retryable status, or when the retries run out.
        """
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        last = ""
        status: int | None = None
        for attempt in range(self.max_retries + 1):
            retry_after: float | None = None
            try:
                status, payload, headers = self._once(method, url, data)
            except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                status, last = None, f"network error: {type(reason).__name__}: {reason}"
                if method == "POST" and not isinstance(reason, ConnectionRefusedError):
                    self.ambiguous_posts += 1
            else:
                if method == "POST" and status >= 500:
                    self.ambiguous_posts += 1
                if 200 <= status < 300:
                    if not payload.strip():
                        return None
                    try:
                        return json.loads(payload)
                    except ValueError:
                        raise RunPodHTTPError(self.redact(
                            f"RunPod API {method} {path}: HTTP {status} with a body that is not JSON"),
                            status) from None
                last = f"HTTP {status}: {self._error_text(payload)}"
                if status not in _RETRY_STATUSES:
                    raise RunPodHTTPError(self.redact(f"RunPod API {method} {path} failed: {last}"),
                                          status) from None
                if status == 429:
                    try:
                        retry_after = float(headers.get("Retry-After", ""))
                    except ValueError:
                        retry_after = None
            if attempt == self.max_retries:
                break
            wait = min(self.max_backoff, retry_after if retry_after is not None
                       else self.backoff * (2 ** attempt))
            self._log(self.redact(f"RunPod API {method} {path}: {last}; retry "
                                  f"{attempt + 1}/{self.max_retries} in {wait:.2g} s"))
            self._sleep(wait)
        raise RunPodHTTPError(self.redact(
            f"RunPod API {method} {path} failed after {self.max_retries + 1} attempts: {last}"),
            status) from None

    # -- endpoints
    def create_pod(self, body: Mapping[str, Any]) -> dict:
        """``POST /pods``; returns the Pod object."""
        pod = self.request("POST", "/pods", dict(body))
        if not isinstance(pod, dict) or not pod.get("id"):
            raise RunPodError(self.redact(f"RunPod API POST /pods returned no pod id: {pod!r:.300}"))
        return pod

    def get_pod(self, pod_id: str) -> dict | None:
        """``GET /pods/{id}``; None if the pod does not exist (404)."""
        try:
            return self.request("GET", f"/pods/{urllib.parse.quote(pod_id)}")
        except RunPodHTTPError as exc:
            if exc.status == 404:
                return None
            raise

    def list_pods(self, name: str | None = None) -> list[dict]:
        """``GET /pods`` (filtered by ``name`` on the server and again here)."""
        pods = self.request("GET", "/pods", query={"name": name} if name else None) or []
        return [p for p in pods if name is None or p.get("name") == name]

    def delete_pod(self, pod_id: str) -> bool:
        """``DELETE /pods/{id}``; True if deleted, False if it was already gone (404)."""
        try:
            self.request("DELETE", f"/pods/{urllib.parse.quote(pod_id)}")
            return True
        except RunPodHTTPError as exc:
            if exc.status == 404:
                return False
            raise


# ----------------------------------------------------------------------------- run
@dataclass
class PodSpec:
    """What to rent. ``gpu_types`` is a preference list (RunPod GPU type ids)."""

    gpu_types: Sequence[str] = DEFAULT_GPU_TYPES
    image: str = DEFAULT_IMAGE
    gpu_count: int = 1
    disk_gb: int = 50
    volume_gb: int = 0
    cloud_type: str = "SECURE"
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.gpu_types, str):
            self.gpu_types = (self.gpu_types,)
        if not self.gpu_types:
            raise ValueError("gpu_types must list at least one RunPod GPU type id")
        if self.gpu_count < 1:
            raise ValueError(f"gpu_count must be >= 1, got {self.gpu_count}")
        if self.disk_gb < 1:
            raise ValueError(f"disk_gb must be >= 1, got {self.disk_gb}")
        if self.volume_gb < 0:
            raise ValueError(f"volume_gb must be >= 0, got {self.volume_gb}")
        if self.cloud_type not in ("SECURE", "COMMUNITY"):
            raise ValueError(f"cloud_type must be SECURE or COMMUNITY, got {self.cloud_type!r}")

    def body(self, gpu_type: str, name: str, public_key: str) -> dict:
        """The ``POST /pods`` body for one GPU type."""
        body: dict[str, Any] = {
            "name": name,
            "imageName": self.image,
            "computeType": "GPU",
            "cloudType": self.cloud_type,
            "gpuTypeIds": [gpu_type],
            "gpuCount": self.gpu_count,
            "containerDiskInGb": self.disk_gb,
            "volumeInGb": self.volume_gb,
            "ports": ["22/tcp"],
            "supportPublicIp": True,
            "env": {**dict(self.env), "PUBLIC_KEY": public_key},
        }
        if self.volume_gb:
            body["volumeMountPath"] = "/workspace"
        return body


@dataclass
class RunResult:
    """What a run did. Cost figures are estimates: rate x (delete time - create time)."""

    pod_id: str | None = None
    gpu_type: str | None = None
    cost_per_hr: float | None = None
    exit_code: int | None = None
    elapsed_s: float = 0.0
    cost_usd: float | None = None
    max_cost_usd: float | None = None
    downloaded: list[str] = field(default_factory=list)
    log_path: Path | None = None
    deleted: bool = False


def _rate(pod: Mapping[str, Any]) -> float | None:
    for key in ("adjustedCostPerHr", "costPerHr"):
        try:
            value = float(pod.get(key))  # costPerHr is a string in RunPod's answers
        except (TypeError, ValueError):
            continue
        if value > 0:
            return value
    return None


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class PodRunner:
    """Rent a pod, run one command on it, bring the results back, delete the pod.

    Parameters
    ----------
    client
        A :class:`RunPodClient`.
    spec
        The :class:`PodSpec` to rent.
    cap_s
        Wall-clock cap in seconds, from pod creation to the end of the command.
    key_path
        SSH private key (its ``.pub`` goes to the pod). None: a throwaway
        ed25519 key made with ``ssh-keygen`` for this run only.
    ssh_user, remote_dir
        Login and working directory on the pod.
    ready_timeout
        Seconds to wait for RUNNING + public SSH port + ``ssh`` answering.
    poll_interval
        Seconds between ``GET /pods/{id}`` polls and SSH probes.
    ssh_connect_timeout
        Per-connection SSH handshake timeout.
    download_grace_s
        Extra seconds allowed after the cap (or a failure) to download results.
    log
        Receives progress messages (redacted); stderr by default.
    on_line
        Receives each line of the command's output (redacted); stdout by default.
        Every line also goes to ``<local_dir>/runs/cloud-<pod name>.log``.
        Called in the calling thread, so an exception it raises (including
        ``KeyboardInterrupt``) aborts the run like Ctrl-C would.
    price_per_hour
        Optional known rate, to print a cost estimate before creating the pod.
    """

    def __init__(self, client: RunPodClient, spec: PodSpec | None = None, *, cap_s: float = 1800.0,
                 key_path: str | os.PathLike | None = None, ssh_user: str = "root",
                 remote_dir: str = DEFAULT_REMOTE_DIR, ready_timeout: float = 900.0,
                 poll_interval: float = 5.0, ssh_connect_timeout: float = 10.0,
                 download_grace_s: float = 300.0,
                 log: Callable[[str], None] | None = None,
                 on_line: Callable[[str], None] | None = None,
                 price_per_hour: float | None = None):
        if cap_s <= 0:
            raise ValueError(f"cap_s must be > 0 seconds, got {cap_s}")
        if ready_timeout <= 0 or poll_interval <= 0:
            raise ValueError("ready_timeout and poll_interval must be > 0 seconds")
        self.client = client
        self.spec = spec or PodSpec()
        self.cap_s = float(cap_s)
        self.key_path = Path(key_path) if key_path else None
        self.ssh_user = ssh_user
        self.remote_dir = remote_dir
        self.ready_timeout = float(ready_timeout)
        self.poll_interval = float(poll_interval)
        self.ssh_connect_timeout = float(ssh_connect_timeout)
        self.download_grace_s = float(download_grace_s)
        self.redact = client.redact
        self._log_fn = log or _stderr
        self._line_fn = on_line or (lambda line: print(line, flush=True))
        self.price_per_hour = price_per_hour

    # -- helpers
    def _log(self, msg: str) -> None:
        self._log_fn(self.redact(msg))

    def _keypair(self, workdir: Path) -> tuple[Path, str]:
        if self.key_path is not None:
            pub = Path(str(self.key_path) + ".pub")
            if not self.key_path.is_file() or not pub.is_file():
                raise FileNotFoundError(f"SSH key {self.key_path} (and {pub}) must both exist")
            return self.key_path, pub.read_text().strip()
        key = workdir / "id_ed25519"
        try:
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mrgrpo-cloud",
                            "-f", str(key)], check=True, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            raise RunPodError(f"could not make a throwaway SSH key with ssh-keygen: {exc}") from None
        return key, Path(str(key) + ".pub").read_text().strip()

    def _create(self, name: str, public_key: str, result: RunResult) -> dict:
        rejections = []
        for gpu in self.spec.gpu_types:
            try:
                pod = self.client.create_pod(self.spec.body(gpu, name, public_key))
            except RunPodHTTPError as exc:
                if exc.status in (401, 403):
                    raise
                rejections.append(f"{gpu}: {exc}")
                self._log(f"cloud: could not rent {gpu} ({exc})")
                continue
            result.pod_id = pod["id"]
            result.gpu_type = gpu
            return pod
        raise RunPodError("could not create a pod with any GPU type in the preference list:\n  "
                          + "\n  ".join(self.redact(r) for r in rejections), result)

    def _wait_ready(self, pod_id: str, deadline: float) -> dict:
        last_status = "unknown"
        while True:
            pod = self.client.get_pod(pod_id)
            if pod is None:
                raise PodNotReadyError(f"pod {pod_id} disappeared while starting (404)")
            last_status = str(pod.get("desiredStatus"))
            if last_status in ("EXITED", "TERMINATED"):
                raise PodNotReadyError(f"pod {pod_id} stopped while starting (desiredStatus={last_status})")
            port = (pod.get("portMappings") or {}).get("22")
            if last_status == "RUNNING" and pod.get("publicIp") and port:
                return pod
            if time.monotonic() + self.poll_interval > deadline:
                raise PodNotReadyError(
                    f"pod {pod_id} not ready after {self.ready_timeout:.0f} s "
                    f"(desiredStatus={last_status}, publicIp={pod.get('publicIp')!r}, "
                    f"ssh port={port!r})")
            time.sleep(self.poll_interval)

    def _stream(self, target: _ssh.SSHTarget, command: str, deadline: float,
                log_file) -> int:
        """Run ``command`` remotely until it exits or ``deadline``; return its exit code."""
        remaining = max(1, int(deadline - time.monotonic()))
        rd = shlex.quote(self.remote_dir)
        remote = (f"mkdir -p {rd} && cd {rd} && echo $$ > {_PID_FILE} && "
                  f"exec timeout -k 5 {remaining} bash -lc {shlex.quote(command)}")
        proc = subprocess.Popen(target.command(remote), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        lines: queue.Queue = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                lines.put(raw)
            lines.put(None)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WallClockCapError(f"wall-clock cap of {self.cap_s:.0f} s reached; "
                                            "command killed")
                try:
                    raw = lines.get(timeout=min(0.2, left))
                except queue.Empty:
                    continue
                if raw is None:
                    break
                line = self.redact(raw.decode(errors="replace").rstrip("\r\n"))
                log_file.write(line + "\n")
                log_file.flush()
                self._line_fn(line)
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            return proc.returncode
        except subprocess.TimeoutExpired:
            raise WallClockCapError(f"wall-clock cap of {self.cap_s:.0f} s reached; command killed") from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
                self._kill_remote(target)
            reader.join(timeout=2)

    def _kill_remote(self, target: _ssh.SSHTarget) -> None:
        # Best effort; the pod is deleted next anyway.
        cmd = (f"cd {shlex.quote(self.remote_dir)} && [ -f {_PID_FILE} ] && "
               f"kill -TERM $(cat {_PID_FILE}) 2>/dev/null; true")
        try:
            _ssh.run(target, cmd, timeout=self.ssh_connect_timeout + 5)
        except (_ssh.SSHError, OSError):
            pass

    def _download(self, target: _ssh.SSHTarget, paths: Sequence[str], local_dir: Path,
                  result: RunResult) -> None:
        if not paths:
            return
        try:
            got = _ssh.download(target, self.remote_dir, paths, local_dir,
                                timeout=self.download_grace_s)
        except (_ssh.SSHError, OSError) as exc:
            self._log(f"cloud: download failed: {exc}")
            return
        result.downloaded = got
        self._log(f"cloud: downloaded {len(got)} files into {local_dir} "
                  f"({', '.join(paths)})")

    def _teardown(self, name: str, result: RunResult) -> None:
        """Delete our pod, and any pod carrying this run's unique name (a create whose
        answer was lost may still have made one)."""
        failures = []
        ids = [result.pod_id] if result.pod_id else []
        try:
            ids += [p["id"] for p in self.client.list_pods(name=name) if p.get("id") not in ids]
        except RunPodError as exc:
            # Only a create whose answer was lost (timeout, 5xx) can have left a pod we
            # do not know about; otherwise a failed listing hides nothing.
            if self.client.ambiguous_posts:
                failures.append(f"listing pods named {name} (a create request may have "
                                f"succeeded unseen): {exc}")
            else:
                self._log(f"cloud: could not list pods named {name} ({exc}); no create "
                          "request can have succeeded unseen")
        for pod_id in ids:
            try:
                self.client.delete_pod(pod_id)
                self._log(f"cloud: pod {pod_id} deleted")
            except RunPodError as exc:
                failures.append(f"{pod_id}: {exc}")
        result.deleted = not failures
        if failures:
            msg = ("cloud: COULD NOT DELETE POD(S); they may still be billing. Delete them at "
                   "https://www.runpod.io/console/pods : " + "; ".join(failures))
            self._log(msg)
            raise RunPodError(self.redact(msg), result)

    # -- the run
    def run(self, command: str, *, upload_dir: str | os.PathLike | None = None,
            setup: str | None = None, download: Sequence[str] = DEFAULT_DOWNLOADS,
            local_dir: str | os.PathLike = ".") -> RunResult:
        """Run ``command`` (a shell string) on a fresh pod; see the module docstring.

        Returns
        -------
        RunResult
            On success (the command exited 0).

        Raises
        ------
        RemoteCommandError, WallClockCapError, PodNotReadyError, RunPodError
            With ``.result`` set; the pod is deleted before any of them propagates.
        KeyboardInterrupt
            Re-raised after the pod is deleted.
        """
        previous = None
        if threading.current_thread() is threading.main_thread():
            # `kill` (SIGTERM, e.g. a CI timeout) must delete the pod like Ctrl-C does.
            def on_term(signum, frame):
                raise KeyboardInterrupt("SIGTERM")

            previous = signal.signal(signal.SIGTERM, on_term)
        try:
            return self._run(command, upload_dir=upload_dir, setup=setup, download=download,
                             local_dir=local_dir)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    def _run(self, command: str, *, upload_dir, setup, download, local_dir) -> RunResult:
        if not command or not command.strip():
            raise ValueError("command is empty")
        # Fail before renting anything when the local side cannot work.
        if upload_dir is not None and not Path(upload_dir).is_dir():
            raise FileNotFoundError(f"upload folder {upload_dir} does not exist")
        if shutil.which("ssh") is None:
            raise RunPodError("the OpenSSH client `ssh` is not installed "
                              "(apt-get install openssh-client)")
        local = Path(local_dir)
        result = RunResult()
        name = f"mrgrpo-{uuid.uuid4().hex[:12]}"
        if self.price_per_hour:
            self._log(f"cloud: estimate before start: at ${self.price_per_hour:.2f}/h x "
                      f"{self.spec.gpu_count} GPU, the {self.cap_s:.0f} s cap costs at most "
                      f"${self.price_per_hour * self.spec.gpu_count * self.cap_s / 3600:.2f}")
        t0 = time.monotonic()
        deadline = t0 + self.cap_s
        with tempfile.TemporaryDirectory(prefix="mrgrpo-cloud-") as tmp:
            work = Path(tmp)
            key, pub = self._keypair(work)
            try:
                pod = self._create(name, pub, result)
                t0 = time.monotonic()            # billing starts at creation
                deadline = t0 + self.cap_s
                result.cost_per_hr = _rate(pod)
                if result.cost_per_hr is not None:
                    result.max_cost_usd = result.cost_per_hr * self.cap_s / 3600
                    self._log(f"cloud: pod {result.pod_id} created ({result.gpu_type}, "
                              f"${result.cost_per_hr:.2f}/h); the {self.cap_s:.0f} s cap "
                              f"bounds the cost at about ${result.max_cost_usd:.2f}")
                else:
                    self._log(f"cloud: pod {result.pod_id} created ({result.gpu_type}; "
                              "no price in the answer)")
                pod = self._wait_ready(result.pod_id, min(deadline, t0 + self.ready_timeout))
                target = _ssh.SSHTarget(
                    host=str(pod["publicIp"]), port=int(pod["portMappings"]["22"]),
                    user=self.ssh_user, key_path=key, known_hosts=work / "known_hosts",
                    connect_timeout=self.ssh_connect_timeout)
                if not _ssh.wait_reachable(target, min(deadline, t0 + self.ready_timeout),
                                           self.poll_interval):
                    raise PodNotReadyError(f"pod {result.pod_id} is RUNNING but ssh to "
                                           f"{target.host}:{target.port} never answered")
                self._log(f"cloud: ssh {target.user}@{target.host} -p {target.port} is up")
                if upload_dir is not None:
                    n = _ssh.upload_dir(target, upload_dir, self.remote_dir,
                                        timeout=max(1.0, deadline - time.monotonic()))
                    self._log(f"cloud: uploaded {n} files from {upload_dir} to {self.remote_dir}")
                # runs/ is git-ignored; the pod name keeps logs of separate runs apart
                result.log_path = local / "runs" / f"cloud-{name}.log"
                result.log_path.parent.mkdir(parents=True, exist_ok=True)
                cap_error: WallClockCapError | None = None
                with open(result.log_path, "w") as log_file:
                    if setup:
                        self._log(f"cloud: setup: {setup}")
                        code = self._stream(target, setup, deadline, log_file)
                        if code != 0:
                            raise RemoteCommandError(f"setup command failed with exit code {code}: "
                                                     f"{setup}", code, result)
                    self._log(f"cloud: running: {command}")
                    try:
                        result.exit_code = self._stream(target, command, deadline, log_file)
                    except WallClockCapError as exc:
                        cap_error = exc
                if result.exit_code == 124 and cap_error is None:
                    cap_error = WallClockCapError(f"wall-clock cap of {self.cap_s:.0f} s reached; "
                                                  "command killed on the pod")
                self._download(target, download, local, result)
                if cap_error is not None:
                    cap_error.result = result
                    raise cap_error
                if result.exit_code == 255:
                    raise RemoteCommandError("ssh connection to the pod failed during the command "
                                             "(exit 255)", 255, result)
                if result.exit_code != 0:
                    raise RemoteCommandError(f"command failed on the pod with exit code "
                                             f"{result.exit_code} (log: {result.log_path})",
                                             int(result.exit_code), result)
                return result
            except KeyboardInterrupt:
                self._log("cloud: interrupted; deleting the pod")
                raise
            except (_ssh.SSHError, OSError) as exc:
                raise RunPodError(self.redact(f"ssh to pod {result.pod_id} failed: {exc}"),
                                  result) from None
            except RunPodError as exc:
                if exc.result is None:
                    exc.result = result
                raise
            finally:
                self._finish(name, result, t0)

    def _finish(self, name: str, result: RunResult, t0: float) -> None:
        previous = None
        if threading.current_thread() is threading.main_thread():
            # A second Ctrl-C must not leave a pod billing: finish the delete first.
            wait = lambda *_: self._log("cloud: still deleting the pod; please wait")  # noqa: E731
            previous = (signal.signal(signal.SIGINT, wait), signal.signal(signal.SIGTERM, wait))
        try:
            self._teardown(name, result)
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous[0])
                signal.signal(signal.SIGTERM, previous[1])
            result.elapsed_s = time.monotonic() - t0
            if result.cost_per_hr is not None and result.pod_id:
                result.cost_usd = result.cost_per_hr * result.elapsed_s / 3600
                self._log(f"cloud: pod {result.pod_id} ran {result.elapsed_s:.0f} s; "
                          f"estimated cost ${result.cost_usd:.2f}")
            elif result.pod_id:
                self._log(f"cloud: pod {result.pod_id} ran {result.elapsed_s:.0f} s")
