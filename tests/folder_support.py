"""Helpers for the tests that check what a command does to a folder it did not make."""
from __future__ import annotations

from pathlib import Path


def all_files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``: relative path -> bytes (to compare a folder before and after)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def foreign_run_files(folder: Path) -> dict[str, bytes]:
    """Files with run-file names that a user, not mrgrpo, put in ``folder``; returns what must survive."""
    folder = Path(folder)
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "adapter").mkdir()
    (folder / "checkpoints" / "mine.bin").write_text("x")
    (folder / "adapter" / "mine.safetensors").write_text("x")
    (folder / "config.json").write_text("{}")
    return {"adapter/mine.safetensors": b"x", "checkpoints/mine.bin": b"x", "config.json": b"{}"}
