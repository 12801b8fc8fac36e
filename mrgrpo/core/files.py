"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every writer in the package goes through :func:`atomic_path`: it hands out a
temporary path in the target's own folder (so the final ``os.replace`` is a
rename on one file system), fsyncs what was written, renames it into place and
fsyncs the folder. An exception, a full disk or a kill before the rename leaves
the previous file untouched and the temporary one removed (or, after a kill,
as an orphan ``.<name>.tmp-*`` that the next writer ignores).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "atomic_folder", "atomic_write_text", "atomic_write_bytes", "fsync_dir"]


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename in it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it onto ``path``.

    Examples
    --------
    >>> with atomic_path("out.npz") as tmp:       # doctest: +SKIP
    ...     np.savez_compressed(tmp, x=x)
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on success it becomes ``path``.

    For writers that fill a whole folder (``save_pretrained``). A folder already at
    ``path`` is moved aside first and removed after the new one is in place, so a
    crash leaves the old folder, the new one, or the old one under a hidden name,
    never a half-written folder at ``path``. A symbolic link at ``path`` is followed:
    its target is replaced, the link stays.
    """
    path = Path(path).resolve()
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp, old = path.with_name(f".{path.name}.tmp-{tag}"), path.with_name(f".{path.name}.old-{tag}")
    tmp.mkdir(parents=True)
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb+") as fh:
                    os.fsync(fh.fileno())
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
