"""Stored runs get the chapters' Colab set-up cell in place, outputs intact (scripts/sync_notebooks.py)."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]


def _sync():
    spec = importlib.util.spec_from_file_location("sync_notebooks", ROOT / "scripts" / "sync_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_set_up_cell_is_inserted_after_the_header_and_nothing_else_changes(tmp_path):
    sync = _sync()
    (tmp_path / "chapters" / "runs").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    run = ROOT / "chapters" / "runs" / "thm3_paper_scale.ipynb"
    nb = nbformat.read(run, as_version=4)
    bare = [c for c in nb.cells if sync.SETUP_TAG not in c.metadata.get("tags", [])
            and c.get("id") != f"{sync.SETUP_TAG}-note"]  # the run as `mrgrpo book run` stores it
    nb.cells = bare
    target = tmp_path / "chapters" / "runs" / run.name
    nbformat.write(nb, target)
    assert sync.runs_without_setup(tmp_path) == [f"chapters/runs/{run.name}"]
    assert sync.add_setup_to_runs(tmp_path) == [f"chapters/runs/{run.name}"]
    out = nbformat.read(target, as_version=4)
    assert out.cells[0] == bare[0] and out.cells[3:] == bare[1:]  # header first, every executed cell intact
    note, code = out.cells[1:3]
    assert note.cell_type == "markdown" and "Colab" in note.source
    assert code.metadata["tags"] == [sync.SETUP_TAG, "hide-input"] and code.outputs == []
    name = sync.repository_url(tmp_path).rsplit("/", 1)[-1]
    assert f'os.chdir("/content/{name}/chapters")' in code.source  # where the run was executed
    assert sync.runs_without_setup(tmp_path) == [] and sync.add_setup_to_runs(tmp_path) == []  # idempotent


def test_every_stored_run_of_the_book_has_its_set_up_cell():
    assert _sync().runs_without_setup() == []
