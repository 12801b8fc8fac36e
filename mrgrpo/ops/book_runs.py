"""The executed chapters stored under ``chapters/runs/``: which runs the book holds, and with which parameters.

:func:`mrgrpo.ops.book.run_chapter` stores a run with its chapter (``metadata.mrgrpo.run.chapter``)
and papermill records the values it injected (``metadata.papermill.parameters``). The rerun page
reads them back to say which of the paper's parameter sets are stored runs and which are only
commands to run.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Mapping

__all__ = ["StoredRun", "stored_runs", "find_stored_run"]


@dataclasses.dataclass(frozen=True)
class StoredRun:
    """An executed chapter stored under ``chapters/runs/``: its file, its chapter's stem, its parameters."""

    path: Path
    chapter: str
    parameters: Mapping[str, Any]


def stored_runs(runs_dir: str | os.PathLike) -> list[StoredRun]:
    """Every stored run under ``runs_dir`` (``*.ipynb``, sorted): its chapter (``metadata.mrgrpo.run.chapter``)
    and the JSON values papermill injected (``metadata.papermill.parameters``); a notebook without them is refused."""
    out = []
    for path in sorted(Path(runs_dir).glob("*.ipynb")):
        meta = json.loads(path.read_text()).get("metadata", {})
        chapter = meta.get("mrgrpo", {}).get("run", {}).get("chapter")
        if not chapter:
            raise ValueError(f"{path} is not a stored run (no metadata.mrgrpo.run.chapter); store runs with "
                             "`mrgrpo book run`")
        out.append(StoredRun(path, Path(chapter).stem, dict(meta.get("papermill", {}).get("parameters", {}))))
    return out


def find_stored_run(runs: list[StoredRun], chapter: str, parameters: Mapping[str, Any]) -> StoredRun | None:
    """The first stored run of ``chapter`` made with every one of ``parameters`` (others may differ), comparing
    JSON values (a tuple equals the list papermill stored; ``1`` equals ``1.0``)."""

    def same(a: Any, b: Any) -> bool:
        return json.loads(json.dumps(a)) == json.loads(json.dumps(b))

    return next((r for r in runs if r.chapter == chapter
                 and all(k in r.parameters and same(r.parameters[k], v) for k, v in parameters.items())), None)
