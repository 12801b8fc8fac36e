"""Atomic checkpoints and the run-folder layout (the one module that knows it).

A run folder (``GRPOConfig.out_dir``); :class:`RunLayout` names every path::

    .mrgrpo-folder.json the marker: an mrgrpo run, and the paths below (mrgrpo.train.run_guard)
    config.json         the GRPOConfig as a dict (optional; else the checkpoint's state.json)
    metrics.json/.csv   one record per step
    eval.json/.csv      one record per evaluation
    adapter/            model.save_pretrained() (+ tokenizer) at the end of the run
    checkpoints/
        checkpoint-000010/
            adapter/        model.save_pretrained(): a peft adapter (or full model)
            trainable.pt    exact tensors of every trainable parameter
            optimizer.pt    AdamW state dict (tensors and plain containers)
            scheduler.pt    LR-scheduler state dict (plain numbers)
            rng.json        torch / numpy / python RNG states, as integers (lossless)
            state.json      step, metrics history, eval history, config
        latest          the name of the newest complete checkpoint

Safe with untrusted run folders (they come back from rented pods and from the
Hub): every ``.pt`` is read with ``torch.load(weights_only=True)``, which
accepts tensors and plain containers only, and the RNG states are JSON. A file
that asks to build any other Python object is refused with a ValueError, and
nothing in it runs.

A checkpoint is written to a hidden temporary folder and moved into place with
``os.replace``; ``latest`` is updated the same way afterwards. Resuming reads
``latest``; if it names a checkpoint that is missing or incomplete, the run
resumes from the newest complete one (with a warning) or refuses with a
ValueError: it never silently starts again at step 0. Leftovers of crashed
saves (``.tmp-checkpoint-*``, ``.old-checkpoint-*``) are removed.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from mrgrpo.core.files import atomic_write_text, fsync_dir
from mrgrpo.core.run_folder import FolderKind, mark_started

from .rng_state import capture_rng_state, restore_rng_state

__all__ = ["RunLayout", "CHECKPOINT_FILES", "LATEST", "CHECKPOINTS", "save_checkpoint",
           "latest_checkpoint", "complete_checkpoints", "load_checkpoint", "capture_rng_state",
           "restore_rng_state", "load_tensor_file", "read_run_config", "read_run_table",
           "clean_orphans", "checkpoint_root", "write_run_config", "read_run_info", "RUN_FOLDER",
           "checkpoint_folders"]

LATEST = "latest"
#: The folder of a run's checkpoints, under its ``out_dir``.
CHECKPOINTS = "checkpoints"
#: Files every complete checkpoint folder holds (besides ``adapter/``).
#: The record tables of a run: per-step metrics, per-evaluation means, every evaluated reply.
TABLES = ("metrics", "eval", "eval_samples")
CHECKPOINT_FILES = ("trainable.pt", "optimizer.pt", "scheduler.pt", "rng.json", "state.json")
_NAME = re.compile(r"^checkpoint-(\d{6,})$")
_ANY_ENGINE = re.compile(r"^checkpoint-\d+$")  # ours (6+ digits) and TRL's (its optimizer step)
_ORPHAN = re.compile(r"^\.(?:tmp|old)-checkpoint-\d+-(\d+)$|^\.latest\.tmp-(\d+)(?:-\w+)?$")


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run folder (see the module docstring)."""

    root: Path

    @property
    def config(self) -> Path:
        """``config.json``: the GRPOConfig as a dict."""
        return self.root / "config.json"

    @property
    def run_info(self) -> Path:
        """``run_info.json``: what else defines the run (the task settings)."""
        return self.root / "run_info.json"

    @property
    def adapter(self) -> Path:
        """``adapter/``: the final ``save_pretrained`` folder."""
        return self.root / "adapter"

    @property
    def checkpoints(self) -> Path:
        """``checkpoints/``: the checkpoint folders and the ``latest`` pointer."""
        return self.root / CHECKPOINTS

    def table(self, stem: str) -> tuple[Path, Path]:
        """``(<stem>.json, <stem>.csv)`` for ``stem`` in :data:`TABLES`."""
        if stem not in TABLES:
            raise ValueError(f"stem must be one of {TABLES}, got {stem!r}")
        return self.root / f"{stem}.json", self.root / f"{stem}.csv"

    @staticmethod
    def checkpoint_name(step: int) -> str:
        """The folder name of the checkpoint after ``step`` completed steps."""
        return f"checkpoint-{int(step):06d}"

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every top-level path a run writes: config, run settings, the tables, adapter, checkpoints."""
        lay = cls(Path("."))
        return (lay.config.name, lay.run_info.name, *(f.name for s in TABLES for f in lay.table(s)),
                lay.adapter.name, lay.checkpoints.name)


#: A run folder for :mod:`mrgrpo.core.run_folder`: the paths a run makes (:mod:`mrgrpo.train.run_guard`).
RUN_FOLDER = FolderKind("training run", RunLayout.names())


def checkpoint_root(out_dir: str | os.PathLike) -> Path:
    """Where a run writes its checkpoints: ``<out_dir>/checkpoints``."""
    return RunLayout(Path(out_dir)).checkpoints


def checkpoint_folders(out_dir: str | os.PathLike) -> list[Path]:
    """The ``checkpoint-<step>`` folders of a run, of either engine, complete or not (unsorted)."""
    root = checkpoint_root(out_dir)
    return [p for p in root.iterdir() if _ANY_ENGINE.match(p.name) and p.is_dir()] if root.is_dir() else []


# ----------------------------------------------------------------------------- files
def load_tensor_file(path: Path) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU, with a clear error.

    Raises
    ------
    ValueError
        If the file is missing, is not a torch file, or asks for any Python object
        besides tensors and plain containers (nothing in it is run).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint file {path} is missing")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights only load failed" in str(exc).lower():
            found = re.search(r"(?i)unsupported (?:global: )?GLOBAL ([\w.]+)", str(exc))
            what = f" (it asks for {found.group(1)})" if found else ""
            raise ValueError(
                f"refusing to load {path}: it holds Python objects other than tensors and plain "
                f"containers{what}. Checkpoint files are loaded with torch.load(weights_only=True) "
                "only; this one may be malicious, or written by a different program") from None
        raise ValueError(f"cannot read checkpoint file {path}: {first}") from None


def _save_tensors(obj: Any, path: Path) -> None:
    with open(path, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())


def _write_json(obj: Any, path: Path) -> None:
    with open(path, "w") as fh:
        fh.write(json.dumps(obj, default=_json_default))
        fh.flush()
        os.fsync(fh.fileno())


def _trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def clean_orphans(root: Path) -> list[str]:
    """Remove leftovers of crashed saves under ``root``; return their names.

    ``.tmp-checkpoint-*-PID``, ``.old-checkpoint-*-PID`` and ``.latest.tmp-PID``
    are removed unless PID is another process that is still running.
    """
    root, removed = Path(root), []
    if not root.is_dir():
        return removed
    for p in sorted(root.iterdir()):
        m = _ORPHAN.match(p.name)
        if m is None:
            continue
        pid = int(m.group(1) or m.group(2))
        if pid != os.getpid() and _alive(pid):
            continue
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        removed.append(p.name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def save_checkpoint(root: Path, step: int, model, optimizer, scheduler, state: dict,
                    tokenizer=None, keep: int = 2) -> Path:
    """Write checkpoint ``step`` (steps completed) atomically and return its folder.

    Parameters
    ----------
    root : Path
        ``<out_dir>/checkpoints`` (:attr:`RunLayout.checkpoints`).
    state : dict
        JSON-serialisable run state (step, metrics, ...).
    keep : int
        How many most recent checkpoints to keep.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    clean_orphans(root)
    name = RunLayout.checkpoint_name(step)
    final = root / name
    tmp = root / f".tmp-{name}-{os.getpid()}"
    tmp.mkdir()
    model.save_pretrained(str(tmp / "adapter"))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(tmp / "adapter"))
    _save_tensors(_trainable_state(model), tmp / "trainable.pt")
    _save_tensors(optimizer.state_dict(), tmp / "optimizer.pt")
    _save_tensors(scheduler.state_dict(), tmp / "scheduler.pt")
    _write_json(capture_rng_state(), tmp / "rng.json")
    _write_json(state, tmp / "state.json")       # last: its presence marks a complete folder
    fsync_dir(tmp)
    if final.exists():  # re-saving the same step (e.g. after a reward fault on resume)
        # A crash between these two renames leaves `latest` naming a missing folder;
        # latest_checkpoint() then puts `.old-<name>-PID` (complete) back.
        old = root / f".old-{name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    fsync_dir(root)
    atomic_write_text(root / LATEST, name)
    mark_started(root.parent, RUN_FOLDER)  # the run's first checkpoint: a run it replaces is deleted now
    older = [p for p in complete_checkpoints(root) if p.name < name]
    for p in older[: max(0, len(older) - (keep - 1))]:
        shutil.rmtree(p, ignore_errors=True)
    return final


def _is_complete(path: Path) -> bool:
    return path.is_dir() and all((path / f).is_file() for f in CHECKPOINT_FILES)


def complete_checkpoints(root: Path) -> list[Path]:
    """The complete ``checkpoint-NNNNNN`` folders under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _NAME.match(p.name) and _is_complete(p)]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def latest_checkpoint(root: Path) -> Optional[Path]:
    """The checkpoint to resume from, or None when ``root`` holds no checkpoint at all.

    If ``latest`` names a missing or incomplete checkpoint, an interrupted
    re-save is undone (its complete ``.old-`` copy is put back), or else the
    newest complete checkpoint is used; either way with a warning.

    Raises
    ------
    ValueError
        If checkpoints exist but none is complete (e.g. only an old format whose
        RNG file was a pickle): resuming would restart at step 0.
    """
    root = Path(root)
    pointer = root / LATEST
    named = pointer.read_text().strip() if pointer.is_file() else None
    if named is not None and not _NAME.match(named):
        raise ValueError(f"{pointer} names {named!r}, not a checkpoint-NNNNNN folder")
    if named and not (root / named).exists():
        olds = sorted(root.glob(f".old-{named}-*"))
        if olds and _is_complete(olds[-1]):
            os.replace(olds[-1], root / named)
            warnings.warn(f"{root / named} was being re-saved when the run stopped; "
                          "restored the complete copy", RuntimeWarning, stacklevel=2)
    clean_orphans(root)
    if named and _is_complete(root / named):
        return root / named
    complete = complete_checkpoints(root)
    leftovers = sorted(p.name for p in root.glob("checkpoint-*")) if root.is_dir() else []
    if named is None and not leftovers:
        return None
    if not complete:
        legacy = [n for n in leftovers if (root / n / "rng.pt").is_file()]
        hint = (" (written by an older mrgrpo that stored RNG states as a pickle, rng.pt, which "
                "is not loaded any more)" if legacy else "")
        raise ValueError(f"cannot resume from {root}: `latest` names {named!r} and no complete "
                         f"checkpoint exists (found {leftovers or 'none'}){hint}; refusing to "
                         "restart at step 0. Start a fresh run in a new out_dir instead")
    warnings.warn(f"{pointer} names {named!r}, which is missing or incomplete; resuming from "
                  f"the newest complete checkpoint, {complete[-1].name}", RuntimeWarning,
                  stacklevel=2)
    return complete[-1]


def load_checkpoint(path: Path, model, optimizer, scheduler) -> dict:
    """Restore parameters, optimizer, scheduler and RNG states; return ``state.json``.

    Raises
    ------
    ValueError
        If a file is missing, malformed, or holds anything but tensors and plain
        containers (see :func:`load_tensor_file`), or does not match the model.
    """
    path = Path(path)
    missing = [f for f in CHECKPOINT_FILES if not (path / f).is_file()]
    if missing:
        raise ValueError(f"checkpoint {path} is incomplete: missing {', '.join(missing)}")
    saved = load_tensor_file(path / "trainable.pt")
    optim_state = load_tensor_file(path / "optimizer.pt")
    sched_state = load_tensor_file(path / "scheduler.pt")
    try:
        rng = json.loads((path / "rng.json").read_text())
        state = json.loads((path / "state.json").read_text())
    except ValueError as exc:
        raise ValueError(f"checkpoint {path} has a malformed JSON file: {exc}") from None
    if not isinstance(saved, dict) or not all(isinstance(t, torch.Tensor) for t in saved.values()):
        raise ValueError(f"{path / 'trainable.pt'} must map parameter names to tensors")
    params = dict(model.named_parameters())
    unknown = [n for n in saved if n not in params]
    if unknown:
        raise ValueError(f"checkpoint {path} does not match this model: unknown parameters {unknown[:3]}")
    with torch.no_grad():
        for n, t in saved.items():
            params[n].copy_(t.to(params[n].device, params[n].dtype))
    optimizer.load_state_dict(optim_state)
    scheduler.load_state_dict(sched_state)
    restore_rng_state(rng)
    return state


# ----------------------------------------------------------------------------- recording and reading a run
def write_run_config(out_dir: str | os.PathLike, config: dict, run_info: Optional[dict] = None) -> None:
    """Record a run's config (``config.json``) and its other settings (``run_info.json``) atomically."""
    layout = RunLayout(Path(out_dir))
    layout.root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(layout.config, json.dumps(config, indent=1, default=_json_default))
    atomic_write_text(layout.run_info, json.dumps(dict(run_info or {}), indent=1, default=_json_default))


def _newest_state(layout: RunLayout) -> Optional[dict]:
    """The ``state.json`` of the checkpoint ``latest`` names, else of the newest complete one, else of
    the newest of any; None without one."""
    root = layout.checkpoints
    pointer = root / LATEST
    named = pointer.read_text().strip() if pointer.is_file() else ""
    candidates = [root / named] if _NAME.match(named) else []
    candidates += list(reversed(complete_checkpoints(root)))
    candidates += sorted(root.glob("checkpoint-*"), reverse=True) if root.is_dir() else []
    for folder in candidates:
        state = folder / "state.json"
        if state.is_file():
            return json.loads(state.read_text())
    return None


def read_run_config(run_dir: str | os.PathLike) -> tuple[dict, Optional[Path]]:
    """The run's config: ``config.json`` (and its path), else the ``config`` of the newest
    complete checkpoint's ``state.json`` (path None), else ``{}``. Reads only; field names of
    older versions come back renamed (:func:`mrgrpo.train.config.upgrade_config`)."""
    from .config import upgrade_config

    layout = RunLayout(Path(run_dir))
    if layout.config.is_file():
        cfg, path = json.loads(layout.config.read_text()), layout.config
    else:
        cfg, path = (_newest_state(layout) or {}).get("config"), None
    return (upgrade_config(cfg) if isinstance(cfg, dict) else {}), path


def read_run_info(run_dir: str | os.PathLike) -> dict:
    """The run's other settings (the task): ``run_info.json``, else the ``run_info`` of the newest
    checkpoint's ``state.json`` (runs that predate the file), else ``{}``. Reads only."""
    layout = RunLayout(Path(run_dir))
    if layout.run_info.is_file():
        return json.loads(layout.run_info.read_text())
    info = (_newest_state(layout) or {}).get("run_info")
    return dict(info) if isinstance(info, dict) else {}


def read_run_table(run_dir: str | os.PathLike, stem: str) -> tuple[Optional[list[dict]], Optional[Path]]:
    """The records of ``metrics`` or ``eval`` (from ``<stem>.json``, else ``<stem>.csv``)
    and the file they came from; ``(None, None)`` when neither exists."""
    js, cs = RunLayout(Path(run_dir)).table(stem)
    if js.is_file():
        data = json.loads(js.read_text())
        if isinstance(data, dict) and isinstance(data.get("history"), list):
            data = data["history"]
        if isinstance(data, list) and all(isinstance(r, dict) for r in data):
            return data, js
    if cs.is_file():
        with open(cs, newline="") as fh:
            return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(fh)], cs
    return None, None


def _number(text: Optional[str]) -> Any:
    if text is None or text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _json_default(x: Any):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, (tuple, set)):
        return list(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
