"""Run commands and move files over SSH with the system ``ssh`` binary.

Only the OpenSSH client is needed locally and only ``sh`` and ``tar`` on the
remote side (pod images do not always ship ``rsync``): uploads and downloads
are tar streams piped through ``ssh``, packed and unpacked by Python's
:mod:`tarfile` here, so an archive from the remote side is extracted with the
``"data"`` filter (no absolute paths, no ``..``, no links out of the target).

Every function takes an :class:`SSHTarget` and a deadline or timeout; nothing
here blocks without a bound.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

#: Paths never uploaded: version control, build output, virtual environments,
#: caches, and ``.env`` (it holds the API keys).
DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".git", ".env", ".venv", "venv", "_build", "__pycache__", ".pytest_cache",
    ".hypothesis", ".ipynb_checkpoints", "*.pyc", "*.egg-info", "runs",
)


class SSHError(RuntimeError):
    """An SSH command, upload or download failed."""


@dataclass(frozen=True)
class SSHTarget:
    """Where and how to reach a host.

    Parameters
    ----------
    host, port, user
        The address, e.g. a pod's ``publicIp`` and its mapped port for 22.
    key_path
        Private key file (``-i``).
    known_hosts
        File that records the host key. A pod's host key is new on every pod,
        so the first connection accepts it (``accept-new``) into this
        throwaway file and later connections must match it.
    connect_timeout
        Seconds for the TCP connect and SSH handshake.
    extra_options
        More ``-o KEY=VALUE`` strings.
    """

    host: str
    port: int
    user: str
    key_path: Path
    known_hosts: Path
    connect_timeout: float = 10.0
    extra_options: tuple[str, ...] = field(default_factory=tuple)

    def ssh_args(self) -> list[str]:
        """The ``ssh`` argument list up to (not including) the destination."""
        ssh = shutil.which("ssh")
        if ssh is None:
            raise SSHError("the OpenSSH client `ssh` is not installed (apt-get install openssh-client)")
        opts = [
            "BatchMode=yes",
            "IdentitiesOnly=yes",
            "StrictHostKeyChecking=accept-new",
            f"UserKnownHostsFile={self.known_hosts}",
            f"ConnectTimeout={max(1, int(round(self.connect_timeout)))}",
            "ServerAliveInterval=15",
            "ServerAliveCountMax=4",
            "LogLevel=ERROR",
            *self.extra_options,
        ]
        args = [ssh, "-p", str(int(self.port)), "-i", str(self.key_path)]
        for opt in opts:
            args += ["-o", opt]
        return args

    def command(self, remote_command: str) -> list[str]:
        """Full argument list that runs ``remote_command`` (a shell string) remotely."""
        return [*self.ssh_args(), f"{self.user}@{self.host}", remote_command]


def run(target: SSHTarget, remote_command: str, timeout: float,
        input_bytes: bytes | None = None) -> subprocess.CompletedProcess:
    """Run a short remote command; return the completed process (never raises on exit code).

    Raises
    ------
    SSHError
        If it does not finish within ``timeout`` seconds.
    """
    try:
        return subprocess.run(target.command(remote_command), input=input_bytes,
                              capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SSHError(f"ssh command timed out after {timeout:.0f} s") from None


def wait_reachable(target: SSHTarget, deadline: float, poll_interval: float) -> bool:
    """Try ``ssh true`` until it succeeds or ``time.monotonic()`` passes ``deadline``.

    Returns True when the host answered, False when the deadline passed.
    """
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            res = run(target, "true", timeout=max(1.0, min(remaining, target.connect_timeout + 5)))
            if res.returncode == 0:
                return True
        except SSHError:
            pass
        if deadline - time.monotonic() <= 0:
            return False
        time.sleep(min(poll_interval, max(0.0, deadline - time.monotonic())))


def _excluded(name: str, patterns: Sequence[str]) -> bool:
    from fnmatch import fnmatch

    return any(fnmatch(name, pat) for pat in patterns)


def _iter_upload(root: Path, excludes: Sequence[str]) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not _excluded(d, excludes))
        for fn in sorted(filenames):
            if not _excluded(fn, excludes):
                yield Path(dirpath) / fn


def upload_dir(target: SSHTarget, local_dir: str | os.PathLike, remote_dir: str,
               timeout: float, excludes: Sequence[str] = DEFAULT_EXCLUDES) -> int:
    """Copy the files under ``local_dir`` into ``remote_dir`` (created if needed).

    Names matching ``excludes`` (fnmatch patterns on a single path component)
    are skipped at any depth. Returns the number of files sent.
    """
    root = Path(local_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"upload source {root} is not a directory")
    remote = f"mkdir -p {shlex.quote(remote_dir)} && tar -xzf - -C {shlex.quote(remote_dir)}"
    proc = subprocess.Popen(target.command(remote), stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    n = 0
    try:
        assert proc.stdin is not None
        with tarfile.open(fileobj=proc.stdin, mode="w|gz") as tar:
            for path in _iter_upload(root, excludes):
                tar.add(path, arcname=str(path.relative_to(root)), recursive=False)
                n += 1
        proc.stdin.close()
        proc.stdin = None  # communicate() must not flush the closed pipe
        _, err = proc.communicate(timeout=timeout)
    except BrokenPipeError:  # the remote side failed early; its stderr says why
        proc.stdin = None
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise SSHError(f"upload timed out after {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise SSHError(f"upload failed (ssh/tar exit {proc.returncode}): "
                       f"{err.decode(errors='replace').strip()[-500:]}")
    return n


def existing_paths(target: SSHTarget, remote_dir: str, paths: Sequence[str],
                   timeout: float) -> list[str]:
    """Return the members of ``paths`` (relative to ``remote_dir``) that exist remotely."""
    if not paths:
        return []
    checks = " ; ".join(
        f"if [ -e {shlex.quote(p)} ]; then printf '%s\\n' {shlex.quote(p)}; fi" for p in paths)
    res = run(target, f"cd {shlex.quote(remote_dir)} && {{ {checks} ; }}", timeout=timeout)
    if res.returncode != 0:
        raise SSHError(f"could not list remote results (exit {res.returncode}): "
                       f"{res.stderr.decode(errors='replace').strip()[-300:]}")
    found = set(res.stdout.decode().splitlines())
    return [p for p in paths if p in found]


def download(target: SSHTarget, remote_dir: str, paths: Sequence[str],
             local_dir: str | os.PathLike, timeout: float) -> list[str]:
    """Copy ``paths`` (files or folders, relative to ``remote_dir``) into ``local_dir``.

    Paths that do not exist remotely are skipped. Returns the relative member
    names written locally.
    """
    for p in paths:
        if os.path.isabs(p) or ".." in Path(p).parts:
            raise ValueError(f"download path {p!r} must be relative to the remote working dir")
    deadline = time.monotonic() + timeout
    present = existing_paths(target, remote_dir, paths, timeout=timeout)
    if not present:
        return []
    dest = Path(local_dir)
    dest.mkdir(parents=True, exist_ok=True)
    quoted = " ".join(shlex.quote(p) for p in present)
    proc = subprocess.Popen(
        target.command(f"cd {shlex.quote(remote_dir)} && tar -czf - {quoted}"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    written: list[str] = []
    try:
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|gz") as tar:
            for member in tar:
                tar.extract(member, path=dest, filter="data")
                if member.isfile():
                    written.append(member.name)
        err = proc.stderr.read() if proc.stderr else b""
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise SSHError(f"download timed out after {timeout:.0f} s") from None
    except tarfile.TarError as exc:
        proc.kill()
        proc.wait()
        raise SSHError(f"download failed: bad archive from the remote side ({exc})") from None
    if proc.returncode != 0:
        raise SSHError(f"download failed (ssh/tar exit {proc.returncode}): "
                       f"{err.decode(errors='replace').strip()[-300:]}")
    return written
