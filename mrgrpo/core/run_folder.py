"""One guard for every folder mrgrpo fills (training runs, rollout corpora): nothing of anyone else's is touched.

The rule. A folder that mrgrpo writes carries a marker, :data:`MARKER`, written before anything
else: its format and version, the mrgrpo version, what the folder holds (``"training run"``,
``"rollout corpus"``) and the top-level paths mrgrpo made there: listed before they are written
(:func:`claim`, :func:`add_paths`), and only names that kind of folder makes (:class:`FolderKind`).

- Replacing or continuing acts only on a folder with that marker, and deletes only the paths it
  lists (and the leftovers of their atomic writes, ``.<path>.tmp-*`` / ``.<path>.old-*``).
- A folder with any other entry is refused, naming the entries (:func:`open_folder`): a model
  folder, a project's root, a user's ``README.md`` (one the marker does not list) are never
  deleted or replaced.
- A folder without the marker that holds such paths (written by an mrgrpo older than the marker,
  or by someone else) is never replaced; each layer says how to proceed.
- A replacement is staged (:func:`claim`): the previous folder's paths (and its marker) move into
  :data:`PREVIOUS` with ``os.replace`` and the new marker says "not started". Once the new run
  has started (its first checkpoint or chunk is on disk), :func:`mark_started` deletes them. Until
  then :func:`roll_back` puts them back: the writer calls it when it fails, and any later
  :func:`open_folder` does it for a claim whose process is gone (after a kill). So a failed start
  loses nothing, and a run that never started does not count as one.

Every step is ordered so that a kill at any point leaves a folder this module can settle: the
marker is written (atomically) before the paths move, and says which ones it moves.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata
import json
import os
import re
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from .files import atomic_write_text, fsync_dir

__all__ = ["MARKER", "PREVIOUS", "FORMAT", "FORMAT_VERSION", "FolderKind", "FolderState", "read_marker",
           "open_folder", "claim", "add_paths", "adopt", "mark_started", "roll_back", "rolled_back_on_failure",
           "settle", "process_alive", "name_list", "move_away_hint"]

#: The marker file of a folder mrgrpo fills.
MARKER = ".mrgrpo-folder.json"
#: Where a replaced folder's paths wait until the new run has started.
PREVIOUS = ".mrgrpo-previous"
FORMAT = "mrgrpo-folder"
FORMAT_VERSION = 1
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-\d+-[0-9a-f]+$")  # core.files' temporary names


@dataclass(frozen=True)
class FolderKind:
    """What a folder holds and the top-level paths a folder of that kind makes.

    Parameters
    ----------
    holds : str
        In words, for messages and the marker: ``"training run"``, ``"rollout corpus"``.
    paths : tuple of str
        Plain names (files or folders) directly inside the folder.
    """

    holds: str
    paths: tuple[str, ...]

    def __post_init__(self) -> None:
        for p in self.paths:
            _check_name(p, "FolderKind.paths")


@dataclass(frozen=True)
class FolderState:
    """A folder as :func:`open_folder` found it.

    Attributes
    ----------
    path : Path
    marker : dict or None
        The marker (None: the folder has none, or does not exist).
    ours : tuple of str
        Entries mrgrpo made (the marker's paths; without a marker, the names a kind makes), then
        leftovers of their atomic writes, in the kind's order.
    """

    path: Path
    marker: Optional[dict]
    ours: tuple[str, ...]

    @property
    def unmarked(self) -> bool:
        """The folder holds paths of the kind but no marker: not known to be ours."""
        return self.marker is None and bool(self.ours)


def name_list(names, limit: int = 8) -> str:
    """``"a, b/, c"``: at most ``limit`` of ``names`` and a count of the rest."""
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def move_away_hint(folder: str | os.PathLike) -> str:
    """``"mv <folder> <folder>.old"``, spelled with an absolute path where the folder is ``.`` or ``..``."""
    folder = Path(folder)
    if folder.name in ("", ".", ".."):
        folder = folder.resolve()
    return f"mv {folder} {folder}.old"


def _check_name(name: object, where: str) -> str:
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or os.sep in name \
            or "\0" in name:
        raise ValueError(f"{where}: {name!r} is not a plain file name")
    return name


def _version() -> str:
    try:
        return importlib.metadata.version("mrgrpo")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _process_start(pid: int) -> Optional[str]:
    """The start time of process ``pid`` in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def process_alive(pid: int, start: Optional[str] = None) -> bool:
    """Whether process ``pid`` runs on this machine (and, given ``start``, is the one that started then)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except (OverflowError, ValueError):
        return False
    return start is None or _process_start(pid) in (None, start)


def _me() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "process_start": _process_start(os.getpid()),
            "at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def read_marker(folder: str | os.PathLike) -> Optional[dict]:
    """The marker of ``folder`` (checked), or None when it has none.

    Raises
    ------
    ValueError
        The marker is not valid JSON, not this format, from a newer format version, or lists a
        path that is not a plain name (a marker never makes mrgrpo touch anything outside its folder).
    """
    path = Path(folder) / MARKER
    if not path.is_file():
        return None
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable mrgrpo folder marker ({exc}); move the folder away") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT or not isinstance(m.get("format_version"), int):
        raise ValueError(f"{path} is not an mrgrpo folder marker (format {FORMAT!r}); move the folder away")
    if m["format_version"] > FORMAT_VERSION:
        raise ValueError(f"{path} was written by a newer mrgrpo (folder format {m['format_version']}, this one "
                         f"reads {FORMAT_VERSION}); upgrade mrgrpo")
    if not isinstance(m.get("holds"), str) or not isinstance(m.get("paths"), list) \
            or not isinstance(m.get("started"), bool):
        raise ValueError(f"{path} lacks 'holds', 'paths' or 'started'; move the folder away")
    for p in m["paths"]:
        _check_name(p, str(path))
    prev = m.get("previous")
    if prev is not None:
        if not isinstance(prev, dict) or not isinstance(prev.get("entries"), list):
            raise ValueError(f"{path}: 'previous' must list the entries it set aside")
        for p in prev["entries"]:
            _check_name(p, str(path))
    return m


def _write_marker(folder: Path, marker: dict) -> None:
    atomic_write_text(folder / MARKER, json.dumps(marker, indent=1, sort_keys=True) + "\n")


def _owned(name: str, paths) -> bool:
    """``name`` is one of ``paths`` or a leftover of an atomic write of one (or of the marker)."""
    if name in paths:
        return True
    m = _LEFTOVER.match(name)
    return bool(m) and (m.group("name") in paths or m.group("name") == MARKER)


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _shown(folder: Path, name: str) -> str:
    p = folder / name
    return name + ("/" if p.is_dir() and not p.is_symlink() else "")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def settle(folder: str | os.PathLike, kind: Optional[FolderKind] = None) -> None:
    """Finish what a stopped process left: roll back a claim that never started, drop a started run's
    :data:`PREVIOUS`. Given ``kind``, only a marker of that kind is settled, deleting only its paths.

    Raises
    ------
    ValueError
        A claim of another process that is still running on this machine.
    """
    folder = Path(folder)
    m = read_marker(folder)
    if m is None or (kind is not None and m["holds"] != kind.holds):
        return
    if m["started"]:
        if (folder / PREVIOUS).exists():  # a promotion stopped before deleting it
            shutil.rmtree(folder / PREVIOUS, ignore_errors=True)
        return
    who = m.get("claim") or {}
    pid = who.get("pid")
    if isinstance(pid, int) and pid != os.getpid() and who.get("host") == socket.gethostname() \
            and process_alive(pid, who.get("process_start")):
        raise ValueError(f"{folder} is being written by process {pid} (its {m['holds']} has not started yet); "
                         "wait for it to finish or stop it, then rerun")
    roll_back(folder, kind)


def open_folder(folder: str | os.PathLike, kind: FolderKind) -> FolderState:
    """Settle ``folder`` (:func:`settle`) and check that it may hold a ``kind``; what it holds.

    Raises
    ------
    ValueError
        ``folder`` is not a folder, holds another kind (by its marker), or holds entries that a
        ``kind`` does not make (named), or is being written by another running process.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} exists and is not a folder")
    settle(folder, kind)
    m = read_marker(folder)
    if m is not None and m["holds"] != kind.holds:
        raise ValueError(f"{folder} holds a {m['holds']}, not a {kind.holds}; choose another folder")
    names = [n for n in _entries(folder) if n != MARKER and not (n == PREVIOUS and m is not None)]
    made = kind.paths if m is None else tuple(p for p in m["paths"] if p in kind.paths)
    foreign = [_shown(folder, n) for n in names if not _owned(n, made)]
    if foreign:
        unmarked = "" if m is not None else f", and no {MARKER} marks any of it as mrgrpo's"
        raise ValueError(f"{folder} holds files that mrgrpo did not write ({name_list(foreign)}){unmarked}; "
                         f"mrgrpo never deletes, replaces or mixes into them: move them away, or choose another "
                         "folder")
    order = {p: i for i, p in enumerate(kind.paths)}
    ours = sorted(names, key=lambda n: (order.get(n, len(order)), n))
    return FolderState(folder, m, tuple(ours))


def claim(folder: str | os.PathLike, kind: FolderKind, *, replace: bool = False,
          paths: Optional[tuple[str, ...]] = None) -> list[str]:
    """Mark ``folder`` as a new ``kind`` that has not started; return the entries set aside.

    With ``replace``, the previous marked ``kind`` moves into :data:`PREVIOUS` (deleted by
    :func:`mark_started`, put back by :func:`roll_back`). The marker is written first.

    Parameters
    ----------
    paths : tuple of str, optional
        The paths the new ``kind`` is about to make (default: all of ``kind.paths``); name more
        with :func:`add_paths` before writing them.

    Raises
    ------
    ValueError
        As :func:`open_folder`; or the folder holds a ``kind`` and ``replace`` is False, or its
        paths carry no marker (they are never replaced).
    """
    folder = Path(folder)
    state = open_folder(folder, kind)
    if state.unmarked:
        raise ValueError(f"{folder} holds {name_list(_shown(folder, n) for n in state.ours)} without a {MARKER}: "
                         f"not known to be mrgrpo's, so never replaced; move it away ({move_away_hint(folder)}), or "
                         "choose another folder")
    if state.ours and not replace:
        raise ValueError(f"{folder} holds a previous {kind.holds} ({name_list(state.ours)}); it is replaced "
                         "only when asked to")
    made = list(kind.paths if paths is None else paths)
    if not set(made) <= set(kind.paths):
        raise ValueError(f"paths {made} must be among the {kind.holds}'s {list(kind.paths)}")
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    entries = list(state.ours)
    marker = {"format": FORMAT, "format_version": FORMAT_VERSION, "mrgrpo": _version(), "holds": kind.holds,
              "paths": made, "started": False, "claim": _me(), "created_folder": created,
              "previous": {"entries": entries, "marker": state.marker} if entries else None}
    _write_marker(folder, marker)  # first: from here on a kill is rolled back by the next open_folder
    if entries:
        aside = folder / PREVIOUS
        aside.mkdir(exist_ok=True)
        for name in entries:
            os.replace(folder / name, aside / name)
        fsync_dir(aside)
        fsync_dir(folder)
    return entries


def add_paths(folder: str | os.PathLike, kind: FolderKind, names) -> None:
    """List more paths in ``folder``'s marker, before writing them (the marker says what mrgrpo made).

    Raises
    ------
    ValueError
        ``folder`` has no marker of a ``kind``, or a name is not one a ``kind`` makes.
    """
    folder = Path(folder)
    m = read_marker(folder)
    if m is None or m["holds"] != kind.holds:
        raise ValueError(f"{folder} has no {kind.holds} marker ({MARKER})")
    new = [n for n in names if n not in m["paths"]]
    if not set(new) <= set(kind.paths):
        raise ValueError(f"paths {new} must be among the {kind.holds}'s {list(kind.paths)}")
    if new:
        _write_marker(folder, {**m, "paths": [*m["paths"], *new]})


def adopt(folder: str | os.PathLike, kind: FolderKind, paths: tuple[str, ...]) -> None:
    """Mark an unmarked folder that the caller recognised as a started ``kind`` of an mrgrpo older than
    markers, owning ``paths``; a no-op for a marked folder."""
    folder = Path(folder)
    if read_marker(folder) is not None:
        return
    if not set(paths) <= set(kind.paths):
        raise ValueError(f"paths {list(paths)} must be among the {kind.holds}'s {list(kind.paths)}")
    _write_marker(folder, {"format": FORMAT, "format_version": FORMAT_VERSION, "mrgrpo": _version(),
                           "holds": kind.holds, "paths": list(paths), "started": True, "claim": _me(),
                           "created_folder": False, "previous": None, "adopted": True})


def mark_started(folder: str | os.PathLike, kind: Optional[FolderKind] = None) -> bool:
    """What ``folder`` holds has started (its first checkpoint or chunk is written): delete what it
    replaces. Returns True when this call marked it; a no-op without a marker (or one of another
    ``kind``) and once started."""
    folder = Path(folder)
    m = read_marker(folder)
    if m is None or (kind is not None and m["holds"] != kind.holds):
        return False
    if m["started"]:
        if (folder / PREVIOUS).exists():
            shutil.rmtree(folder / PREVIOUS, ignore_errors=True)
        return False
    _write_marker(folder, {**m, "started": True, "previous": None})  # first: a kill now leaves only garbage
    shutil.rmtree(folder / PREVIOUS, ignore_errors=True)
    return True


def roll_back(folder: str | os.PathLike, kind: Optional[FolderKind] = None, *, only_own: bool = False) -> bool:
    """Undo a claim that has not started: delete what it wrote, put the previous entries back.

    Parameters
    ----------
    kind : FolderKind, optional
        Delete only paths that this kind makes too (the marker's list is not trusted further).
    only_own : bool
        Only a claim made by this process (a writer cleaning up after its own failure).

    Returns
    -------
    bool
        Whether a claim was rolled back.
    """
    folder = Path(folder)
    m = read_marker(folder)
    if m is None or m["started"] or (only_own and (m.get("claim") or {}).get("pid") != os.getpid()):
        return False
    prev = m.get("previous") or {}
    moved = set(prev.get("entries", []))
    aside = folder / PREVIOUS
    made = [p for p in m["paths"] if kind is None or p in kind.paths]
    waiting = set(_entries(aside)) & moved
    blocking = [n for n in _entries(folder) if n in waiting and not _owned(n, made)]
    if blocking:
        raise ValueError(f"cannot put back the previous {m['holds']} in {folder}: {name_list(blocking)} appeared "
                         f"meanwhile; move it away and rerun (the previous files wait in {aside})")
    for name in _entries(folder):
        if name in (MARKER, PREVIOUS) or not _owned(name, made):
            continue
        if name in moved and name not in waiting:
            continue  # never moved aside (the claim stopped before it): the previous run's
        _remove(folder / name)
    if aside.is_dir():
        for name in sorted(waiting):
            os.replace(aside / name, folder / name)
        shutil.rmtree(aside, ignore_errors=True)
        fsync_dir(folder)
    if prev.get("marker"):
        _write_marker(folder, prev["marker"])
    else:
        (folder / MARKER).unlink(missing_ok=True)
        if m.get("created_folder") and not _entries(folder):
            folder.rmdir()
    return True


@contextlib.contextmanager
def rolled_back_on_failure(folder: Optional[str | os.PathLike]) -> Iterator[None]:
    """Run a writer; if it raises (Ctrl-C included) before what it writes has started, roll its claim back.

    Only a claim of this process is undone (:func:`roll_back` with ``only_own``); the exception
    propagates. A failure of the rollback itself is left to the next :func:`open_folder`.
    """
    try:
        yield
    except BaseException:
        if folder is not None:
            with contextlib.suppress(OSError, ValueError):
                roll_back(folder, only_own=True)
        raise
