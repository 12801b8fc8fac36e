"""Run commands on a host with the system ``ssh`` binary, always with a time bound.

Only the OpenSSH client is needed locally and only ``sh`` and ``tar`` on the
remote side (pod images do not always ship ``rsync``). Moving files is in
:mod:`mrgrpo.ops.cloud.transfer`.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SSHError", "SSHTarget", "run", "wait_reachable"]


class SSHError(RuntimeError):
    """An SSH command, upload or download failed."""


@dataclass(frozen=True)
class SSHTarget:
    """Where and how to reach a host.

    Parameters
    ----------
    host, port, user
        The address, e.g. a pod's ``ssh.direct`` host, port and username.
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
