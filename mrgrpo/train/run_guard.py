"""A run folder is never overwritten by accident, and a resumed run is the same run.

- :func:`claim_out_dir`: a new run whose ``out_dir`` already holds a run (its
  metrics, evaluations, adapter, config or checkpoints, as
  :class:`~mrgrpo.train.checkpoint.RunLayout` names them) is refused, unless
  ``overwrite=True``; then exactly those files are deleted first, so no stale
  checkpoint or metric of the old run sits beside the new ones. Anything else in
  the folder is left alone.
- :func:`resume_checkpoint`: resuming compares the checkpoint's recorded config
  and run settings with the new ones (:func:`~mrgrpo.train.config.resume_conflicts`)
  and refuses any change that would alter the run, naming the fields. The config
  is compared before any tensor is loaded, so a change of model or LoRA shape is
  named too, not reported as a parameter mismatch.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Optional

from .checkpoint import TABLES, RunLayout, latest_checkpoint, load_checkpoint, read_run_config
from .config import GRPOConfig, resume_conflicts

__all__ = ["run_files", "claim_out_dir", "resume_checkpoint", "refuse_resume"]


def run_files(out_dir: str | os.PathLike) -> list[Path]:
    """The paths of a previous run that exist in ``out_dir``."""
    layout = RunLayout(Path(out_dir))
    paths = [layout.config, layout.run_info, *(f for stem in TABLES for f in layout.table(stem)), layout.adapter, layout.checkpoints]
    return [p for p in paths if p.exists() or p.is_symlink()]


def claim_out_dir(out_dir: str | os.PathLike, overwrite: bool, *, resuming: bool = False) -> list[str]:
    """Make ``out_dir`` ready for a new run; return the names of the old run's files it deleted.

    Parameters
    ----------
    out_dir : path
    overwrite : bool
        Delete a previous run's files instead of refusing.
    resuming : bool
        The caller asked to resume but found no checkpoint (the message says so).

    Raises
    ------
    ValueError
        ``out_dir`` holds a previous run and ``overwrite`` is False, or it is not a folder.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} exists and is not a folder")
    found = run_files(out)
    if not found:
        return []
    names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in found)
    if not overwrite:
        if resuming:
            raise ValueError(f"cannot resume: {str(out)!r} has no complete checkpoint, but it holds a previous "
                             f"run ({names}); refusing to start it again at step 0 over those files. Pass "
                             "overwrite=True (--overwrite, without --resume) to replace it, or choose another "
                             "out_dir")
        raise ValueError(f"{str(out)!r} holds a previous run ({names}); pass resume=True (--resume) to continue "
                         "it, overwrite=True (--overwrite) to delete it and start again, or choose another "
                         "out_dir")
    for p in found:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    return [p.name for p in found]


def resume_checkpoint(out_dir: str | os.PathLike, config: GRPOConfig, run_info: Optional[dict],
                      model: Any, optimizer: Any, scheduler: Any) -> Optional[dict]:
    """Load the newest checkpoint of ``out_dir`` into the training objects; return its state.

    Returns None when there is no checkpoint (a fresh run), after checking that
    the folder holds no other files of a run (:func:`claim_out_dir`).

    Raises
    ------
    ValueError
        The run would change (every field named), or the checkpoint is unusable.
    """
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
