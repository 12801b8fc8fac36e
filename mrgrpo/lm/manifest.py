"""A folder checked against its manifest: every file listed, sized and hashed, nothing else read.

The model cache (:mod:`mrgrpo.lm.gguf`) writes ``manifest.json`` last, with the size and sha256
of every file it wrote. A folder is usable only when each listed file is present with its
recorded size (and sha256), and when it holds nothing the manifest does not list: a loader
reads whatever it finds (a ``special_tokens_map.json`` dropped beside ``tokenizer.json``
changes the tokenizer), so an unlisted file is a problem too. :func:`copy_listed` makes the
clean folder that replaces one with unlisted files, from hard links to the verified files.

Importing this module imports only the standard library (and :mod:`mrgrpo.core.files`).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Union

from mrgrpo.core.files import fsync_dir

__all__ = ["MANIFEST", "UNLISTED", "file_sha256", "file_records", "read_manifest", "unlisted_files", "check_listed_files",
           "copy_listed"]

MANIFEST = "manifest.json"
#: How a problem for an unlisted file ends (the caller can tell it from a damaged listed file).
UNLISTED = "(the loader could read it)"

PathLike = Union[str, "os.PathLike[str]"]
_CHUNK = 8 << 20


def file_sha256(path: PathLike) -> str:
    """Hex sha256 of a file, read in 8 MiB chunks."""
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def file_records(folder: Path, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``{name: {"size", "sha256"}}`` of files just written into ``folder``, each fsynced first."""
    records = {}
    for name in names:
        with open(folder / name, "rb") as fh:
            os.fsync(fh.fileno())
        records[name] = {"size": (folder / name).stat().st_size, "sha256": file_sha256(folder / name)}
    return records


def read_manifest(folder: PathLike) -> dict[str, Any]:
    """The parsed ``manifest.json`` of a folder (raises if missing or not JSON)."""
    with open(Path(folder) / MANIFEST) as fh:
        return json.load(fh)


def unlisted_files(folder: Path, files: Iterable[str]) -> list[str]:
    """Entries of ``folder`` (recursively) that are neither the manifest, a listed file, nor a folder holding one."""
    files = list(files)
    allowed = {MANIFEST, *files} | {q.as_posix() for n in files for q in Path(n).parents if q != Path(".")}
    return sorted(rel for rel in (q.relative_to(folder).as_posix() for q in folder.rglob("*")) if rel not in allowed)


def check_listed_files(folder: Path, files: Mapping[str, Mapping[str, Any]],
                       level: Literal["sha256", "size"] = "sha256") -> list[str]:
    """Problems of ``folder`` against the manifest's ``files`` (``{name: {"size", "sha256"}}``).

    Each listed file must lie inside the folder, exist, and have its recorded size (and, at
    ``level="sha256"``, its sha256); every unlisted entry is a problem ending in :data:`UNLISTED`.
    Raises ``KeyError``/``ValueError``/``TypeError`` for a malformed record.
    """
    sizes = {n: int(r["size"]) for n, r in files.items()}
    digests = {n: str(r["sha256"]) for n, r in files.items()}
    problems = [f"{n} is not listed in {MANIFEST} {UNLISTED}" for n in unlisted_files(folder, files)]
    for name in files:
        path = folder / name
        if not name or Path(name).is_absolute() or ".." in Path(name).parts:
            problems.append(f"{MANIFEST} names a file outside the folder: {name!r}")
        elif not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != sizes[name]:
            problems.append(f"{name} has {path.stat().st_size} bytes, the manifest says {sizes[name]}")
        elif level == "sha256" and file_sha256(path) != digests[name]:
            problems.append(f"{name} does not match its sha256 in the manifest")
    return problems


def copy_listed(folder: Path, dest: Path) -> None:
    """Fill the empty ``dest`` with ``folder``'s manifest and the files it lists (hard links, else copies)."""
    for name in [MANIFEST, *read_manifest(folder)["files"]]:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(folder / name, dest / name)
        except OSError:  # no hard links here: a copy, flushed like the build's files
            shutil.copy2(folder / name, dest / name)
            with open(dest / name, "rb") as fh:
                os.fsync(fh.fileno())
    fsync_dir(dest)
