"""Run one long command on the pod, streaming its output, and kill it at the deadline.

The remote side records the command's pid in ``<remote dir>/.mrgrpo-cloud.pid``
and runs it under ``timeout``, so the command dies on the pod even when the
local side cannot reach it any more; when the local side stops early (cap,
Ctrl-C), it also kills the recorded pid over a second connection.
"""
from __future__ import annotations

import queue
import shlex
import subprocess
import threading
import time
from typing import Callable, TextIO

from .errors import WallClockCapError
from .ssh import SSHError, SSHTarget, run

__all__ = ["Streamer", "PID_FILE"]

PID_FILE = ".mrgrpo-cloud.pid"


class Streamer:
    """Run commands in ``remote_dir`` on ``target``, one at a time.

    Each output line is redacted, appended to the log file and passed to
    ``on_line`` in the calling thread (so an exception there aborts the run).
    """

    def __init__(self, target: SSHTarget, remote_dir: str, cap_s: float,
                 redact: Callable[[object], str], on_line: Callable[[str], None],
                 connect_timeout: float):
        self.target = target
        self.remote_dir = remote_dir
        self.cap_s = cap_s
        self.redact = redact
        self.on_line = on_line
        self.connect_timeout = connect_timeout

    def _cap_error(self) -> WallClockCapError:
        return WallClockCapError(f"wall-clock cap of {self.cap_s:.0f} s reached; command killed")

    def run(self, command: str, deadline: float, log_file: TextIO) -> int:
        """Run ``command`` remotely until it exits or ``deadline``; return its exit code.

        Raises
        ------
        WallClockCapError
            When ``deadline`` (``time.monotonic()``) passes first.
        """
        remaining = max(1, int(deadline - time.monotonic()))
        rd = shlex.quote(self.remote_dir)
        remote = (f"mkdir -p {rd} && cd {rd} && echo $$ > {PID_FILE} && "
                  f"exec timeout -k 5 {remaining} bash -lc {shlex.quote(command)}")
        proc = subprocess.Popen(self.target.command(remote), stdin=subprocess.DEVNULL,
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
                    raise self._cap_error()
                try:
                    raw = lines.get(timeout=min(0.2, left))
                except queue.Empty:
                    continue
                if raw is None:
                    break
                line = self.redact(raw.decode(errors="replace").rstrip("\r\n"))
                log_file.write(line + "\n")
                log_file.flush()
                self.on_line(line)
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            return proc.returncode
        except subprocess.TimeoutExpired:
            raise self._cap_error() from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
                self.kill_remote()
            reader.join(timeout=2)

    def kill_remote(self) -> None:
        """Best effort: TERM the recorded command on the pod (it is deleted next anyway)."""
        cmd = (f"cd {shlex.quote(self.remote_dir)} && [ -f {PID_FILE} ] && "
               f"kill -TERM $(cat {PID_FILE}) 2>/dev/null; true")
        try:
            run(self.target, cmd, timeout=self.connect_timeout + 5)
        except (SSHError, OSError):
            pass
