"""Atomic checkpoints: everything needed to continue a run bit for bit.

Layout under ``<out_dir>/checkpoints/``::

    checkpoint-000010/
        adapter/          model.save_pretrained(): a peft adapter (or full model)
        trainable.pt      exact tensors of every trainable parameter (for resuming)
        optimizer.pt      AdamW state
        scheduler.pt      LR-scheduler state
        rng.pt            torch / numpy / python RNG states
        state.json        step, metrics history, eval history, config
    latest                the name of the newest complete checkpoint

A checkpoint is written to a hidden temporary folder and moved into place with
``os.replace``; ``latest`` is updated the same way afterwards. A crash at any
moment leaves either the previous checkpoint or the new one, never half of one.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from mrgrpo.core.files import atomic_write_text

__all__ = ["save_checkpoint", "latest_checkpoint", "load_checkpoint", "capture_rng_state",
           "restore_rng_state", "config_mismatch", "RESUME_MUST_MATCH", "checkpoint_root"]

LATEST = "latest"
#: The folder of a run's checkpoints, under its ``out_dir``.
CHECKPOINTS = "checkpoints"
#: Config fields that must match between a checkpoint and the run resuming it.
RESUME_MUST_MATCH = ("model", "mode", "weights", "seed", "m", "batch_prompts", "max_new_tokens",
                     "temperature", "use_lora", "lora_r", "lora_alpha", "conditioning", "lr",
                     "kl_coef", "clip_eps", "num_iterations", "loss_aggregation")


def checkpoint_root(out_dir: str | os.PathLike) -> Path:
    """Where a run writes its checkpoints: ``<out_dir>/checkpoints``."""
    return Path(out_dir) / CHECKPOINTS


def config_mismatch(saved: dict, now: dict) -> list[str]:
    """``"field: checkpoint -> now"`` for every :data:`RESUME_MUST_MATCH` field that differs."""
    return [f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in RESUME_MUST_MATCH if saved.get(k) != now.get(k)]


def capture_rng_state() -> dict:
    """Every global RNG the training loop may touch."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(root: Path, step: int, model, optimizer, scheduler, state: dict,
                    tokenizer=None, keep: int = 2) -> Path:
    """Write checkpoint ``step`` (steps completed) atomically and return its folder.

    Parameters
    ----------
    root : Path
        ``<out_dir>/checkpoints``.
    state : dict
        JSON-serialisable run state (step, metrics, ...).
    keep : int
        How many most recent checkpoints to keep.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = f"checkpoint-{step:06d}"
    final = root / name
    tmp = root / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    model.save_pretrained(str(tmp / "adapter"))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(tmp / "adapter"))
    torch.save(_trainable_state(model), tmp / "trainable.pt")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(capture_rng_state(), tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps(state, default=_json_default))
    if final.exists():  # re-saving the same step (e.g. after a reward fault on resume)
        old = root / f".old-{name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    atomic_write_text(root / LATEST, name)
    older = sorted(p for p in root.glob("checkpoint-*") if p.name < name)
    for p in older[: max(0, len(older) - (keep - 1))]:
        shutil.rmtree(p, ignore_errors=True)
    return final


def latest_checkpoint(root: Path) -> Optional[Path]:
    """The newest complete checkpoint under ``root``, or None."""
    root = Path(root)
    ptr = root / LATEST
    if not ptr.exists():
        return None
    path = root / ptr.read_text().strip()
    return path if (path / "state.json").exists() else None


def load_checkpoint(path: Path, model, optimizer, scheduler) -> dict:
    """Restore parameters, optimizer, scheduler and RNG states; return ``state.json``."""
    path = Path(path)
    saved = torch.load(path / "trainable.pt", map_location="cpu")
    params = dict(model.named_parameters())
    missing = [n for n in saved if n not in params]
    if missing:
        raise ValueError(f"checkpoint {path} does not match this model: unknown parameters {missing[:3]}")
    with torch.no_grad():
        for n, t in saved.items():
            params[n].copy_(t.to(params[n].device, params[n].dtype))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=False))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", map_location="cpu", weights_only=False))
    restore_rng_state(torch.load(path / "rng.pt", map_location="cpu", weights_only=False))
    return json.loads((path / "state.json").read_text())


def _json_default(x: Any):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, (tuple, set)):
        return list(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
