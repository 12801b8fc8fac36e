"""Move files to and from a pod as tar streams piped through ``ssh``.

Upload: the files under a local folder, minus everything that matches
:data:`DEFAULT_EXCLUDES` or :data:`SECRET_PATTERNS` (matched case-insensitively
against every path component, so a secret is left out at any depth). What is
left out is reported, never sent.

Download: the pod's tar stream is untrusted. A member is written only when it
is a regular file or a folder, lies under one of the requested paths and
passes :mod:`tarfile`'s ``"data"`` filter (no absolute paths, no ``..``);
everything else (links, devices, paths nobody asked for) is refused and
reported.
"""
from __future__ import annotations

import fnmatch
import os
import posixpath
import shlex
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from mrgrpo.core.progress import progress_bar

from .ssh import SSHError, SSHTarget, run

__all__ = ["DEFAULT_EXCLUDES", "SECRET_PATTERNS", "TransferReport", "excluded", "upload_listing",
           "upload_dir", "check_download_paths", "existing_paths", "download", "requested_member"]

#: Never uploaded: dotfiles and dot-folders (``.git``, ``.env*``, ``.envrc``, ``.netrc``,
#: ``.venv``, ``.ssh``, ``.aws``, ``.git-credentials``, caches), build output,
#: virtual environments and local results.
DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".*", "venv", "_build", "__pycache__", "*.pyc", "*.egg-info", "node_modules",
    "runs", "cloud-runs",
)
#: Never uploaded: names that usually hold credentials.
SECRET_PATTERNS: tuple[str, ...] = (
    "*secret*", "*credential*", "*.env", "_netrc", "id_rsa*", "id_dsa*", "id_ecdsa*",
    "id_ed25519*", "*.pem", "*.key", "*.p12", "*.pfx", "*.ppk", "*.jks", "*.keystore",
    "*.kdbx", "*.tfvars", "*.tfstate",
)


@dataclass
class TransferReport:
    """``files``: relative paths sent or written; ``left_out``: what was skipped or refused."""

    files: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)


def excluded(name: str, patterns: Sequence[str]) -> bool:
    """Whether one path component matches one of ``patterns`` (case-insensitive)."""
    low = name.lower()
    return any(fnmatch.fnmatchcase(low, pat.lower()) for pat in patterns)


def upload_listing(root: Path, patterns: Sequence[str]) -> TransferReport:
    """What an upload of ``root`` sends (``files``) and leaves out (``left_out``, folders end in /)."""
    report = TransferReport()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        keep = []
        for d in sorted(dirnames):
            if excluded(d, patterns):
                report.left_out.append(str(rel / d) + "/")
            elif os.path.islink(os.path.join(dirpath, d)):
                report.files.append(str(rel / d))      # sent as the link itself, not followed
            else:
                keep.append(d)
        dirnames[:] = keep
        for fn in sorted(filenames):
            (report.left_out if excluded(fn, patterns) else report.files).append(str(rel / fn))
    return report


def upload_dir(target: SSHTarget, local_dir: str | os.PathLike, remote_dir: str, timeout: float,
               excludes: Sequence[str] = DEFAULT_EXCLUDES + SECRET_PATTERNS,
               progress: bool = True) -> TransferReport:
    """Copy the files under ``local_dir`` into ``remote_dir`` (created if needed).

    Names matching ``excludes`` (fnmatch patterns on a single path component,
    case-insensitive) are left out at any depth and listed in the report.
    """
    root = Path(local_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"upload source {root} is not a directory")
    report = upload_listing(root, excludes)
    remote = f"mkdir -p {shlex.quote(remote_dir)} && tar -xzf - -C {shlex.quote(remote_dir)}"
    proc = subprocess.Popen(target.command(remote), stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert proc.stdin is not None
        with tarfile.open(fileobj=proc.stdin, mode="w|gz") as tar:
            for rel in progress_bar(report.files, enabled=progress, desc="upload", unit="file"):
                tar.add(root / rel, arcname=rel, recursive=False)
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
    return report


def check_download_paths(paths: Sequence[str]) -> list[str]:
    """``paths`` normalized; ValueError unless each is a non-empty relative path without ``..``."""
    out = []
    for p in paths:
        if not isinstance(p, str) or not p.strip():
            raise ValueError(f"download paths must be non-empty strings, got {p!r}")
        norm = posixpath.normpath(p.strip())
        if posixpath.isabs(norm) or norm == "." or ".." in norm.split("/"):
            raise ValueError(f"download path {p!r} must be relative to the remote working dir "
                             "(no '..', not '.')")
        out.append(norm)
    return out


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
    found = set(res.stdout.decode(errors="replace").splitlines())
    return [p for p in paths if p in found]


def requested_member(member: tarfile.TarInfo, requested: Sequence[str]) -> str | None:
    """Why ``member`` must not be written (None when it may be).

    Allowed: a regular file or a folder whose normalized name equals, or lies
    under, one of the ``requested`` (normalized, relative) paths.
    """
    name = member.name
    while name.startswith("./"):
        name = name[2:]
    if posixpath.isabs(name) or ".." in name.split("/"):
        return "absolute or '..' path"
    norm = posixpath.normpath(name) if name else "."
    if not (member.isfile() or member.isdir()):
        return "not a regular file or folder"
    if not any(norm == p or norm.startswith(p + "/") for p in requested):
        return "outside the requested paths"
    return None


def download(target: SSHTarget, remote_dir: str, paths: Sequence[str],
             local_dir: str | os.PathLike, timeout: float, progress: bool = True) -> TransferReport:
    """Copy ``paths`` (files or folders, relative to ``remote_dir``) into ``local_dir``.

    Paths that do not exist remotely are skipped. Members of the pod's tar
    stream that are not regular files or folders under ``paths`` are refused
    (``report.left_out``, as ``"name (reason)"``); the rest are written with the
    ``"data"`` filter. ``report.files`` lists the files written.
    """
    requested = check_download_paths(paths)
    deadline = time.monotonic() + timeout
    present = existing_paths(target, remote_dir, requested, timeout=timeout)
    report = TransferReport()
    if not present:
        return report
    dest = Path(local_dir)
    dest.mkdir(parents=True, exist_ok=True)
    quoted = " ".join(shlex.quote(p) for p in present)
    proc = subprocess.Popen(
        target.command(f"cd {shlex.quote(remote_dir)} && tar -czf - {quoted}"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    bar = progress_bar(enabled=progress, desc="download", unit="file")
    try:
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|gz") as tar:
            for member in tar:
                why = requested_member(member, present)
                if why is None:
                    try:
                        tar.extract(member, path=dest, filter="data")
                    except tarfile.FilterError as exc:
                        why = f"refused by the data filter: {exc}"
                if why is not None:
                    report.left_out.append(f"{member.name} ({why})")
                elif member.isfile():
                    report.files.append(posixpath.normpath(member.name))
                    bar.update()
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
    finally:
        bar.close()
    if proc.returncode != 0:
        raise SSHError(f"download failed (ssh/tar exit {proc.returncode}): "
                       f"{err.decode(errors='replace').strip()[-300:]}")
    return report
