"""Which paper-scale runs the book holds (mrgrpo.ops.book_runs; mrgrpo.ops.book.parameter_defaults)."""
from __future__ import annotations

import json
from pathlib import Path

import jupytext
import pytest

from mrgrpo.ops.book import parameter_defaults
from mrgrpo.ops.book_runs import find_stored_run, stored_runs

ROOT = Path(__file__).resolve().parents[2]


def _store(folder: Path, name: str, chapter: str, params: dict) -> Path:
    nb = {"cells": [], "nbformat": 4, "nbformat_minor": 5,
          "metadata": {"mrgrpo": {"run": {"chapter": f"chapters/{chapter}.md", "parameters": {}}},
                       "papermill": {"parameters": params}}}
    path = folder / f"{name}.ipynb"
    path.write_text(json.dumps(nb))
    return path


def test_a_run_is_found_by_its_chapter_and_parameters(tmp_path):
    _store(tmp_path, "a_tier2", "tier2", {"source": "released", "K": 8, "m_grid": [4, 8]})
    _store(tmp_path, "b_thm3", "thm3", {"scale": 1.0})
    runs = stored_runs(tmp_path)
    assert [r.path.stem for r in runs] == ["a_tier2", "b_thm3"] and runs[1].chapter == "thm3"
    assert find_stored_run(runs, "thm3", {"scale": 1}).path.stem == "b_thm3"         # 1 == 1.0
    assert find_stored_run(runs, "tier2", {"source": "released", "m_grid": (4, 8)}).path.stem == "a_tier2"
    assert find_stored_run(runs, "tier2", {"source": "released", "K": 16}) is None     # a different value
    assert find_stored_run(runs, "tier2", {"model": "x"}) is None                     # a parameter it was not given
    assert find_stored_run(runs, "tier3", {}) is None                                 # another chapter


def test_a_notebook_that_is_not_a_stored_run_is_refused(tmp_path):
    (tmp_path / "x.ipynb").write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    with pytest.raises(ValueError, match="x.ipynb is not a stored run"):
        stored_runs(tmp_path)


def test_the_books_stored_runs_are_readable_and_the_paper_scale_thm3_run_is_one_of_them():
    runs = stored_runs(ROOT / "chapters" / "runs")
    assert runs and all((ROOT / "chapters" / f"{r.chapter}.md").is_file() for r in runs)
    assert find_stored_run(runs, "thm3", {"scale": 1.0}) is not None


def test_parameter_defaults_reads_the_literals_of_the_parameters_cell():
    defaults = parameter_defaults(jupytext.read(ROOT / "chapters" / "tier2.md"))
    assert defaults["source"] == "corpus" and defaults["m_grid"] == [4, 8, 16, 32] and defaults["K"] == 16
    nb = jupytext.reads("```{code-cell} ipython3\n:tags: [parameters]\n\nx = 1\ny = len('ab')\n```\n", fmt="md:myst")
    assert parameter_defaults(nb) == {"x": 1}  # an expression is not a literal: left out
