"""Run a command on a rented RunPod GPU and always give the GPU back.

The flow of :meth:`PodRunner.run`::

    create pod (first GPU type in the preference list that RunPod can place)
      -> wait until RUNNING with an ``ssh.direct`` endpoint -> wait until ``ssh`` answers
      -> upload the repo (tar over ssh; dotfiles and secrets never leave)
      -> setup (e.g. ``pip install -e .``) -> run the command, streaming its log
      -> download the requested paths into a fresh ``cloud-runs/<pod name>/``
      -> delete the pod   (always: success, failure, ERROR, Ctrl-C or SIGTERM, cap)

The pod is deleted (``DELETE /v2/pods/{id}``), never stopped: a stopped pod
keeps its disk, and RunPod keeps billing it. Teardown also deletes any pod
carrying this run's unique name, which a create whose answer was lost may
have made.

Wall-clock cap: ``cap_s`` bounds the run from pod creation to the end of the
command (billing starts at creation). When it passes, the command is killed,
whatever results exist are downloaded (at most ``download_grace_s`` more) and
the pod is deleted.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Sequence

from . import remote, ssh, transfer
from .api import RunPodClient
from .errors import (PodFailedError, PodNotReadyError, RemoteCommandError, RunPodError,
                     RunPodHTTPError, WallClockCapError)
from .spec import (FAILED_STATUSES, READY_STATUS, PodSpec, RunResult, SSHEndpoint, pod_rate,
                   ssh_direct)

__all__ = ["PodRunner", "DEFAULT_DOWNLOADS", "DEFAULT_REMOTE_DIR", "DEFAULT_LOCAL_ROOT"]

DEFAULT_DOWNLOADS: tuple[str, ...] = ("chapters/runs", "runs")
DEFAULT_REMOTE_DIR = "/workspace/mrgrpo-book"
#: Results of a run go to a fresh ``<this>/<pod name>/`` unless a folder is given.
DEFAULT_LOCAL_ROOT = "cloud-runs"
#: Create answers after which no other GPU type can succeed.
_STOP_CREATE = {401: "the API key was refused", 402: "the account's balance is too low",
                422: "RunPod rejected the request body"}


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class PodRunner:
    """Rent a pod, run one command on it, bring the results back, delete the pod.

    Parameters
    ----------
    client
        A :class:`~mrgrpo.ops.cloud.api.RunPodClient`.
    spec
        The :class:`~mrgrpo.ops.cloud.spec.PodSpec` to rent.
    cap_s
        Wall-clock cap in seconds, from pod creation to the end of the command.
    key_path
        SSH private key (its ``.pub`` goes to the pod). None: a throwaway
        ed25519 key made with ``ssh-keygen`` for this run only.
    ssh_user
        Login on the pod; None uses the username of the pod's ``ssh.direct``.
    remote_dir
        Working directory on the pod.
    ready_timeout
        Seconds to wait for RUNNING + ``ssh.direct`` + ``ssh`` answering.
    poll_interval
        Seconds between ``GET /v2/pods/{id}`` polls and SSH probes.
    ssh_connect_timeout
        Per-connection SSH handshake timeout.
    download_grace_s
        Extra seconds allowed after the cap (or a failure) to download results.
    log
        Receives progress messages (redacted); stderr by default.
    on_line
        Receives each line of the command's output (redacted); stdout by default.
        Every line also goes to ``<local dir>/cloud-<pod name>.log``. Called in
        the calling thread, so an exception it raises (including
        ``KeyboardInterrupt``) aborts the run like Ctrl-C would.
    price_per_hour
        Optional known rate, to print a cost estimate before creating the pod.
    progress
        Progress bars for upload and download (shown only on a terminal).
    """

    def __init__(self, client: RunPodClient, spec: PodSpec | None = None, *, cap_s: float = 1800.0,
                 key_path: str | os.PathLike | None = None, ssh_user: str | None = None,
                 remote_dir: str = DEFAULT_REMOTE_DIR, ready_timeout: float = 900.0,
                 poll_interval: float = 5.0, ssh_connect_timeout: float = 10.0,
                 download_grace_s: float = 300.0, log: Callable[[str], None] | None = None,
                 on_line: Callable[[str], None] | None = None,
                 price_per_hour: float | None = None, progress: bool = True):
        if not cap_s > 0:
            raise ValueError(f"cap_s must be > 0 seconds, got {cap_s}")
        if not (ready_timeout > 0 and poll_interval > 0):
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
        for value in self.spec.env.values():  # values handed to the pod may be secrets
            self.redact.add(value)
        self._log_fn = log or _stderr
        self._line_fn = on_line or (lambda line: print(line, flush=True))
        self.price_per_hour = price_per_hour
        self.progress = progress

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
        """Try each GPU type in turn.

        The ``createPod`` operation of RunPod's v2 OpenAPI document (2026-08-20) says
        which failures are worth another candidate: 400 (no capacity, or a rule the
        body breaks) and 403 (no access to that pool) are; 401, 402 (balance) and
        422 (a body that breaks the contract) are not; 429 and 5xx are retried on
        the same candidate by the client.
        """
        rejections = []
        for gpu in self.spec.gpu_types:
            try:
                pod = self.client.create_pod(self.spec.body(gpu, name, public_key))
            except RunPodHTTPError as exc:
                if exc.status in _STOP_CREATE:
                    raise RunPodHTTPError(f"{exc} ({_STOP_CREATE[exc.status]}; no GPU type can "
                                          "succeed)", exc.status, title=exc.title,
                                          detail=exc.detail, errors=exc.errors) from None
                rejections.append(f"{gpu}: {exc}")
                self._log(f"cloud: could not rent {gpu} ({exc})")
                continue
            result.pod_id, result.gpu_type = str(pod["id"]), gpu
            return pod
        raise RunPodError("could not create a pod with any GPU type in the preference list:\n  "
                          + "\n  ".join(self.redact(r) for r in rejections), result)

    def _wait_ready(self, pod_id: str, deadline: float) -> tuple[dict, SSHEndpoint]:
        status, endpoint = "unknown", None
        while True:
            pod = self.client.get_pod(pod_id)
            if pod is None:
                raise PodNotReadyError(f"pod {pod_id} disappeared while starting (404)")
            status, endpoint = str(pod.get("status")), ssh_direct(pod)
            if status in FAILED_STATUSES:
                raise PodFailedError(
                    f"pod {pod_id} went to status {status} while starting: RunPod could not "
                    "start its container (an image that fails to pull or to start, or a host "
                    "fault). The pod is being deleted; try again, another GPU type (--gpu) or "
                    "another image (--image)", status)
            if status == READY_STATUS and endpoint is not None:
                return pod, endpoint
            if time.monotonic() + self.poll_interval > deadline:
                raise PodNotReadyError(
                    f"pod {pod_id} not ready after {self.ready_timeout:.0f} s (status={status}, "
                    f"ssh.direct={'set' if endpoint else 'not set'}; an image without sshd, or "
                    "no public port for 22/tcp, never gets one)")
            time.sleep(self.poll_interval)

    def _download(self, target: ssh.SSHTarget, paths: Sequence[str], local: Path,
                  result: RunResult) -> None:
        if not paths:
            return
        try:
            got = transfer.download(target, self.remote_dir, paths, local,
                                    timeout=self.download_grace_s, progress=self.progress)
        except (ssh.SSHError, OSError) as exc:
            self._log(f"cloud: download failed: {exc}")
            return
        result.downloaded, result.refused = got.files, got.left_out
        self._log(f"cloud: downloaded {len(got.files)} files into {local} ({', '.join(paths)})")
        if got.left_out:
            self._log(f"cloud: REFUSED {len(got.left_out)} member(s) of the pod's archive: "
                      + "; ".join(got.left_out[:10]) + (" ..." if len(got.left_out) > 10 else ""))

    def _teardown(self, name: str, result: RunResult) -> None:
        """Delete our pod, and any pod carrying this run's unique name."""
        failures = []
        ids = [result.pod_id] if result.pod_id else []
        try:
            ids += [str(p["id"]) for p in self.client.list_pods(name=name)
                    if p.get("id") and str(p["id"]) not in ids]
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
                   "https://console.runpod.io/pods : " + "; ".join(failures))
            self._log(msg)
            raise RunPodError(self.redact(msg), result)

    # -- the run
    def run(self, command: str, *, upload_dir: str | os.PathLike | None = None,
            setup: str | None = None, download: Sequence[str] = DEFAULT_DOWNLOADS,
            local_dir: str | os.PathLike | None = None) -> RunResult:
        """Run ``command`` (a shell string) on a fresh pod; see the module docstring.

        ``local_dir`` None: results go to a fresh ``cloud-runs/<pod name>/``.

        Returns
        -------
        RunResult
            On success (the command exited 0).

        Raises
        ------
        RemoteCommandError, WallClockCapError, PodNotReadyError, PodFailedError, RunPodError
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

    def _run(self, command, *, upload_dir, setup, download, local_dir) -> RunResult:
        if not isinstance(command, str) or not command.strip():
            raise ValueError("command is empty")
        if isinstance(download, str):
            raise ValueError(f"download must be a list of paths, not the string {download!r}")
        download = transfer.check_download_paths(download)
        # Fail before renting anything when the local side cannot work.
        if upload_dir is not None and not Path(upload_dir).is_dir():
            raise FileNotFoundError(f"upload folder {upload_dir} does not exist")
        if shutil.which("ssh") is None:
            raise RunPodError("the OpenSSH client `ssh` is not installed "
                              "(apt-get install openssh-client)")
        name = f"mrgrpo-{uuid.uuid4().hex[:12]}"
        local = Path(local_dir) if local_dir is not None else Path(DEFAULT_LOCAL_ROOT) / name
        result = RunResult(pod_name=name, local_dir=local)
        if self.price_per_hour:
            self._log(f"cloud: estimate before start: at ${self.price_per_hour:.2f}/h x "
                      f"{self.spec.gpu_count} GPU, the {self.cap_s:.0f} s cap costs at most "
                      f"${self.price_per_hour * self.spec.gpu_count * self.cap_s / 3600:.2f}")
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="mrgrpo-cloud-") as tmp:
            work = Path(tmp)
            key, pub = self._keypair(work)
            try:
                pod = self._create(name, pub, result)
                t0 = time.monotonic()            # billing starts at creation
                deadline = t0 + self.cap_s
                self._note_rate(pod, result)
                pod, endpoint = self._wait_ready(result.pod_id, min(deadline, t0 + self.ready_timeout))
                self._note_rate(pod, result, quiet=True)
                target = ssh.SSHTarget(
                    host=endpoint.host, port=endpoint.port, user=self.ssh_user or endpoint.username,
                    key_path=key, known_hosts=work / "known_hosts",
                    connect_timeout=self.ssh_connect_timeout)
                if not ssh.wait_reachable(target, min(deadline, t0 + self.ready_timeout),
                                          self.poll_interval):
                    raise PodNotReadyError(f"pod {result.pod_id} is RUNNING but ssh to "
                                           f"{target.host}:{target.port} never answered")
                self._log(f"cloud: ssh {target.user}@{target.host} -p {target.port} is up")
                if upload_dir is not None:
                    sent = transfer.upload_dir(target, upload_dir, self.remote_dir,
                                               timeout=max(1.0, deadline - time.monotonic()),
                                               progress=self.progress)
                    self._log(f"cloud: uploaded {len(sent.files)} files from {upload_dir} to "
                              f"{self.remote_dir}; left out {len(sent.left_out)} (dotfiles, "
                              "secrets, caches): " + ", ".join(sent.left_out[:20])
                              + (" ..." if len(sent.left_out) > 20 else ""))
                self._execute(target, command, setup, deadline, download, local, result)
                return result
            except KeyboardInterrupt:
                self._log("cloud: interrupted; deleting the pod")
                raise
            except (ssh.SSHError, OSError) as exc:
                raise RunPodError(self.redact(f"ssh to pod {result.pod_id} failed: {exc}"),
                                  result) from None
            except RunPodError as exc:
                if exc.result is None:
                    exc.result = result
                raise
            finally:
                self._finish(name, result, t0)

    def _note_rate(self, pod: dict, result: RunResult, quiet: bool = False) -> None:
        rate = pod_rate(pod)
        if rate is None or (quiet and result.cost_per_hr is not None):
            if not quiet:
                self._log(f"cloud: pod {result.pod_id} created ({result.gpu_type}; no price in "
                          "the answer yet)")
            return
        result.cost_per_hr = rate
        result.max_cost_usd = rate * self.cap_s / 3600
        self._log(f"cloud: pod {result.pod_id} {'is up' if quiet else 'created'} "
                  f"({result.gpu_type}, ${rate:.2f}/h); the {self.cap_s:.0f} s cap bounds the "
                  f"cost at about ${result.max_cost_usd:.2f}")

    def _execute(self, target, command, setup, deadline, download, local: Path,
                 result: RunResult) -> None:
        """Setup, the command (streamed to the log), the download, then the verdict."""
        local.mkdir(parents=True, exist_ok=True)
        result.log_path = local / f"cloud-{result.pod_name}.log"
        cap_error: WallClockCapError | None = None
        stream = remote.Streamer(target, self.remote_dir, self.cap_s, self.redact, self._line_fn,
                                 self.ssh_connect_timeout)
        with open(result.log_path, "w") as log_file:
            if setup:
                self._log(f"cloud: setup: {setup}")
                code = stream.run(setup, deadline, log_file)
                if code != 0:
                    raise RemoteCommandError(f"setup command failed with exit code {code}: {setup}",
                                             code, result)
            self._log(f"cloud: running: {command}")
            try:
                result.exit_code = stream.run(command, deadline, log_file)
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
            raise RemoteCommandError(f"command failed on the pod with exit code {result.exit_code} "
                                     f"(log: {result.log_path})", int(result.exit_code), result)

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
