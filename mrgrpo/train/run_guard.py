"""A run folder is never overwritten by accident, never mixed with others' files, and a resumed run is the same run.

Training's thin layer over :mod:`mrgrpo.core.run_folder` (the marker, ownership, foreign-file
refusal and staged replacement live there); :data:`~mrgrpo.train.checkpoint.RUN_FOLDER` declares a
run's paths (:meth:`RunLayout.names <mrgrpo.train.checkpoint.RunLayout.names>`).

- :func:`claim_out_dir`: a new run goes into a missing or empty folder, or with ``overwrite=True``
  into a folder whose marker says it holds an mrgrpo run. A folder with any other entry is
  refused, naming it. The previous run is set aside, not deleted: it is deleted when the new run
  writes its first checkpoint (:func:`~mrgrpo.train.checkpoint.save_checkpoint`), and put back if
  the new run stops before that (``mrgrpo train`` does it at once, see
  :func:`~mrgrpo.core.run_folder.rolled_back_on_failure`; otherwise the next trainer on the folder).
- :func:`open_run_for_resume`: a resumed folder must be an mrgrpo run: marked, or a run written
  before the marker existed, recognised by its recorded config and checkpoint folders and by
  holding nothing but a run's paths (such a folder can be resumed, never overwritten: move it away).
- :func:`resume_checkpoint`: resuming compares the checkpoint's recorded config and run settings
  with the new ones (:func:`~mrgrpo.train.config.resume_conflicts`) and refuses any change that
  would alter the run, naming the fields, before any tensor is loaded.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

from mrgrpo.core.run_folder import MARKER, claim, move_away_hint, name_list, open_folder

from .checkpoint import (RUN_FOLDER, RunLayout, checkpoint_folders, latest_checkpoint, load_checkpoint,
                         read_run_config)
from .config import GRPOConfig, resume_conflicts

__all__ = ["claim_out_dir", "open_run_for_resume", "resume_checkpoint", "refuse_resume"]


def _shown(out: Path, names) -> str:
    return name_list(n + ("/" if (out / n).is_dir() else "") for n in names)


def _recorded_run(out: Path) -> bool:
    """A run folder without a marker that mrgrpo can continue: a recorded config and checkpoint folders."""
    try:
        config, _ = read_run_config(out)
    except (OSError, ValueError):
        return False
    return bool(config) and bool(checkpoint_folders(out))


def claim_out_dir(out_dir: str | os.PathLike, overwrite: bool, *, resuming: bool = False) -> list[str]:
    """Make ``out_dir`` ready for a new run; return the names of the previous run's paths set aside.

    Parameters
    ----------
    out_dir : path
    overwrite : bool
        Replace a previous (marked) run instead of refusing; it is deleted once the new run
        writes its first checkpoint.
    resuming : bool
        The caller asked to resume but found no checkpoint (the message says so).

    Raises
    ------
    ValueError
        ``out_dir`` is not a folder; holds files that are not a run's; holds a run without a
        marker; holds a run and ``overwrite`` is False; is being started by another process.
    """
    out = Path(out_dir)
    state = open_folder(out, RUN_FOLDER)
    if state.ours:
        names = _shown(out, state.ours)
        if resuming:
            way = "move it away" if state.unmarked else \
                "pass overwrite=True (--overwrite, without --resume) to replace it"
            raise ValueError(f"cannot resume: {str(out)!r} has no complete checkpoint, but it holds a previous run "
                             f"({names}); refusing to start it again at step 0 over those files. {way[0].upper()}"
                             f"{way[1:]}, or choose another out_dir")
        if state.unmarked:
            resumable = " (resume=True, --resume, can still continue it)" if _recorded_run(out) else ""
            raise ValueError(f"{str(out)!r} holds a previous run ({names}) without a {MARKER}: written by an mrgrpo "
                             "older than run-folder markers, or someone else's files under a run's names. mrgrpo "
                             f"replaces only folders it marked{resumable}: move it away ({move_away_hint(out)}) or "
                             "choose another out_dir")
        if not overwrite:
            raise ValueError(f"{str(out)!r} holds a previous run ({names}); pass resume=True (--resume) to continue "
                             "it, overwrite=True (--overwrite) to replace it (kept until the new run writes its "
                             "first checkpoint), or choose another out_dir")
    return claim(out, RUN_FOLDER, replace=overwrite)


def open_run_for_resume(out_dir: str | os.PathLike) -> None:
    """Check that resuming may write into ``out_dir`` (a missing or empty folder starts a fresh run).

    A claim left by a stopped process that never checkpointed is rolled back first, so the
    folder holds what it held before that run.

    Raises
    ------
    ValueError
        ``out_dir`` holds files that are not a run's, a run of no known writer, or is being
        written by another running process.
    """
    out = Path(out_dir)
    state = open_folder(out, RUN_FOLDER)
    if state.unmarked and not _recorded_run(out):
        what = "has no complete checkpoint" if not checkpoint_folders(out) else "has no recorded config"
        raise ValueError(f"cannot resume: {str(out)!r} {what}, but it holds a previous run "
                         f"({_shown(out, state.ours)}) without a {MARKER}; refusing to start it again at step 0 "
                         "over those files. Move it away, or choose another out_dir")


def resume_checkpoint(out_dir: str | os.PathLike, config: GRPOConfig, run_info: Optional[dict],
                      model: Any, optimizer: Any, scheduler: Any) -> Optional[dict]:
    """Load the newest checkpoint of ``out_dir`` into the training objects; return its state.

    Returns None when there is no checkpoint (a fresh run, claimed by :func:`claim_out_dir`).

    Raises
    ------
    ValueError
        The folder cannot be resumed (:func:`open_run_for_resume`), the run would change (every
        field named), or the checkpoint is unusable.
    """
    open_run_for_resume(out_dir)
    recorded, _ = read_run_config(out_dir)
    info_path = RunLayout(Path(out_dir)).run_info
    recorded_info = json.loads(info_path.read_text()) if info_path.is_file() else None
    if recorded:  # before any tensor loads
        refuse_resume(out_dir, resume_conflicts(recorded, config, recorded_info,
                                                run_info if recorded_info is not None else None))
    path = latest_checkpoint(RunLayout(Path(out_dir)).checkpoints)
    if path is None:
        claim_out_dir(out_dir, False, resuming=True)
        return None
    state = load_checkpoint(path, model, optimizer, scheduler)
    refuse_resume(path, resume_conflicts(state.get("config", {}), config, state.get("run_info"), run_info))
    return state


def refuse_resume(where: str | os.PathLike, conflicts: list[str]) -> None:
    """Raise the one "cannot resume" error when a resume would change the run (no-op without conflicts)."""
    if conflicts:
        raise ValueError(f"cannot resume from {where}: the run would change ({'; '.join(conflicts)}); keep the "
                         "checkpoint's settings, or start a new run (another out_dir, or overwrite)")
