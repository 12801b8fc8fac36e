"""The one run-folder guard (``mrgrpo.core.run_folder``) and training's layer on it (``mrgrpo.train.run_guard``).

Called directly, in milliseconds: the marker, foreign files, staged replacement, promotion and
rollback (also after a kill at each step), and the issue-21 probes 1 and 2 on ``claim_out_dir``.
The same probes through the command line are in ``test_train_cli.py`` and ``test_corpus_build.py``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from folder_support import foreign_run_files

from mrgrpo.core import run_folder as rf
from mrgrpo.core.run_folder import MARKER, PREVIOUS, FolderKind

KIND = FolderKind("test folder", ("a.txt", "b", "README.md"))


def files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes), the marker included."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write_previous(folder: Path) -> dict[str, bytes]:
    """A started ``KIND`` in ``folder``: a.txt and b/c.txt, marked as mrgrpo's."""
    rf.claim(folder, KIND)
    (folder / "a.txt").write_text("old a")
    (folder / "b").mkdir()
    (folder / "b" / "c.txt").write_text("old c")
    assert rf.mark_started(folder)
    return files(folder)


def set_claimant(folder: Path, pid: int, host: str | None = None) -> None:
    m = json.loads((folder / MARKER).read_text())
    m["claim"].update(pid=pid, process_start=None, **({"host": host} if host else {}))
    (folder / MARKER).write_text(json.dumps(m))


@pytest.fixture
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ------------------------------------------------------------------ the marker
def test_the_marker_is_written_first_and_says_what_the_folder_holds(tmp_path):
    out = tmp_path / "new"
    assert rf.claim(out, KIND) == []
    assert sorted(os.listdir(out)) == [MARKER]
    m = rf.read_marker(out)
    assert (m["format"], m["format_version"], m["holds"], m["paths"], m["started"]) == \
        (rf.FORMAT, rf.FORMAT_VERSION, "test folder", ["a.txt", "b", "README.md"], False)
    assert m["claim"]["pid"] == os.getpid() and isinstance(m["mrgrpo"], str)
    assert rf.roll_back(out) and not out.exists()  # a claim that never started leaves nothing behind


@pytest.mark.parametrize("bad, match", [
    ("{", "not a readable"), ('{"format": "other"}', "not an mrgrpo folder marker"),
    ('{"format": "mrgrpo-folder", "format_version": 99}', "newer mrgrpo"),
    ('{"format": "mrgrpo-folder", "format_version": 1, "holds": "x", "paths": ["../../home"], "started": false}',
     "not a plain file name"),
])
def test_a_bad_marker_is_refused_and_never_followed_outside(tmp_path, bad, match):
    (tmp_path / MARKER).write_text(bad)
    with pytest.raises(ValueError, match=match):
        rf.open_folder(tmp_path, KIND)


# ------------------------------------------------------------------ foreign files
def test_foreign_files_are_refused_by_name_and_never_touched(tmp_path):
    before = write_previous(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "other_project").mkdir()
    for replace in (False, True):
        with pytest.raises(ValueError, match=r"did not write \(notes\.txt, other_project/\)"):
            rf.claim(tmp_path, KIND, replace=replace)
    assert files(tmp_path) == {**before, "notes.txt": b"mine"}


def test_an_unmarked_folder_is_never_replaced(tmp_path):
    (tmp_path / "a.txt").write_text("someone's")
    with pytest.raises(ValueError, match=rf"a\.txt without a {MARKER}: not known to be mrgrpo's.*mv "):
        rf.claim(tmp_path, KIND, replace=True)
    (tmp_path / "model.safetensors").write_text("w")
    with pytest.raises(ValueError, match=rf"\(model\.safetensors\), and no {MARKER} marks"):
        rf.claim(tmp_path, KIND, replace=True)
    assert files(tmp_path) == {"a.txt": b"someone's", "model.safetensors": b"w"}
    assert not rf.roll_back(tmp_path) and not rf.mark_started(tmp_path)  # no marker: nothing to act on


def test_only_paths_the_marker_lists_are_ours(tmp_path):
    """A README.md the marker does not list (one the user added) is foreign, though a kind makes that name."""
    rf.claim(tmp_path, KIND, paths=("b",))
    (tmp_path / "b").mkdir()
    rf.mark_started(tmp_path)
    (tmp_path / "README.md").write_text("the user's")
    with pytest.raises(ValueError, match=r"did not write \(README\.md\)"):
        rf.open_folder(tmp_path, KIND)
    (tmp_path / "README.md").unlink()
    rf.add_paths(tmp_path, KIND, ["README.md"])  # listed before mrgrpo writes it
    (tmp_path / "README.md").write_text("ours")
    assert rf.open_folder(tmp_path, KIND).ours == ("b", "README.md")
    with pytest.raises(ValueError, match="must be among"):
        rf.add_paths(tmp_path, KIND, ["elsewhere.txt"])


def test_a_folder_of_another_kind_is_refused(tmp_path):
    rf.claim(tmp_path, FolderKind("rollout corpus", ("a.txt",)))
    with pytest.raises(ValueError, match="holds a rollout corpus, not a test folder"):
        rf.claim(tmp_path, KIND)


# ------------------------------------------------------------------ staged replacement
def test_a_replacement_keeps_the_previous_folder_until_it_starts(tmp_path):
    before = write_previous(tmp_path)
    with pytest.raises(ValueError, match="holds a previous test folder"):
        rf.claim(tmp_path, KIND)
    assert rf.claim(tmp_path, KIND, replace=True) == ["a.txt", "b"]
    assert sorted(os.listdir(tmp_path)) == [MARKER, PREVIOUS]
    (tmp_path / "a.txt").write_text("new a")  # the new run writes before it has started ...
    (tmp_path / "README.md").write_text("new card")
    assert rf.roll_back(tmp_path)  # ... and fails: everything it wrote goes, the previous one comes back
    assert files(tmp_path) == before
    rf.claim(tmp_path, KIND, replace=True)
    (tmp_path / "a.txt").write_text("new a")
    assert rf.mark_started(tmp_path) and not rf.mark_started(tmp_path)
    assert sorted(os.listdir(tmp_path)) == [MARKER, "a.txt"] and not rf.roll_back(tmp_path)


def test_leftovers_of_atomic_writes_are_ours(tmp_path):
    write_previous(tmp_path)
    leftover = tmp_path / f".a.txt.tmp-{os.getpid()}-0123abcd"
    leftover.write_text("half")
    assert rf.claim(tmp_path, KIND, replace=True) == ["a.txt", "b", leftover.name]
    rf.roll_back(tmp_path)
    assert leftover.read_text() == "half"


def test_rolled_back_on_failure_undoes_only_a_start_that_failed(tmp_path):
    before = write_previous(tmp_path)
    with pytest.raises(KeyboardInterrupt), rf.rolled_back_on_failure(tmp_path):
        rf.claim(tmp_path, KIND, replace=True)
        (tmp_path / "a.txt").write_text("new")
        raise KeyboardInterrupt
    assert files(tmp_path) == before
    with pytest.raises(RuntimeError), rf.rolled_back_on_failure(tmp_path):
        rf.claim(tmp_path, KIND, replace=True)
        (tmp_path / "a.txt").write_text("new")
        rf.mark_started(tmp_path)  # started: a later failure keeps the new run (resumable)
        raise RuntimeError
    assert (tmp_path / "a.txt").read_text() == "new" and not (tmp_path / "b").exists()


# ------------------------------------------------------------------ after a kill, at every step
def test_a_claim_of_a_killed_process_is_rolled_back_by_the_next_open(tmp_path, dead_pid):
    before = write_previous(tmp_path)
    rf.claim(tmp_path, KIND, replace=True)
    (tmp_path / "a.txt").write_text("new")
    set_claimant(tmp_path, dead_pid)
    assert rf.open_folder(tmp_path, KIND).ours == ("a.txt", "b")
    assert files(tmp_path) == before


def test_a_claim_of_a_running_process_is_refused(tmp_path):
    write_previous(tmp_path)
    rf.claim(tmp_path, KIND, replace=True)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        set_claimant(tmp_path, proc.pid)
        with pytest.raises(ValueError, match=f"being written by process {proc.pid}"):
            rf.claim(tmp_path, KIND, replace=True)
        assert not rf.roll_back(tmp_path, only_own=True)  # not this process's claim
        set_claimant(tmp_path, proc.pid, host="another-machine")  # a folder copied from elsewhere: stale
        rf.open_folder(tmp_path, KIND)
        assert rf.read_marker(tmp_path)["started"]
    finally:
        proc.kill()
        proc.wait()


def test_a_kill_in_the_middle_of_a_claim_loses_nothing(tmp_path, dead_pid):
    before = write_previous(tmp_path)
    old_marker = rf.read_marker(tmp_path)
    rf.claim(tmp_path, KIND, replace=True)
    os.replace(tmp_path / PREVIOUS / "b", tmp_path / "b")  # as if killed after moving a.txt, before b
    set_claimant(tmp_path, dead_pid)
    rf.settle(tmp_path)
    assert files(tmp_path) == before and rf.read_marker(tmp_path) == old_marker


def test_a_kill_in_the_middle_of_a_promotion_leaves_only_garbage(tmp_path):
    write_previous(tmp_path)
    rf.claim(tmp_path, KIND, replace=True)
    m = rf.read_marker(tmp_path)
    (tmp_path / MARKER).write_text(json.dumps({**m, "started": True, "previous": None}))  # killed before the rmtree
    assert rf.open_folder(tmp_path, KIND).ours == ()
    assert sorted(os.listdir(tmp_path)) == [MARKER]


def test_a_file_that_appeared_where_the_previous_one_goes_back_is_not_overwritten(tmp_path, dead_pid):
    rf.claim(tmp_path, KIND, paths=("b",))
    (tmp_path / "b").mkdir()
    rf.add_paths(tmp_path, KIND, ["README.md"])
    (tmp_path / "README.md").write_text("our card")
    rf.mark_started(tmp_path)
    rf.claim(tmp_path, KIND, replace=True, paths=("b",))
    (tmp_path / "README.md").write_text("the user's, written meanwhile")
    set_claimant(tmp_path, dead_pid)
    with pytest.raises(ValueError, match=r"README\.md appeared meanwhile"):
        rf.open_folder(tmp_path, KIND)
    assert (tmp_path / "README.md").read_text() == "the user's, written meanwhile"
    assert (tmp_path / PREVIOUS / "README.md").read_text() == "our card"


# ------------------------------------------------------------------ training's layer: claim_out_dir, resume
def test_run_guard_refuses_issue_21_probe_1(tmp_path):
    """`--overwrite` never deletes files it did not make: foreign run-named files, another project's
    checkpoints, a model folder."""
    from mrgrpo.train.run_guard import claim_out_dir

    d = tmp_path / "d"
    foreign_run_files(d)
    proj = tmp_path / "proj"
    (proj / "checkpoints" / "other_project").mkdir(parents=True)
    (proj / "checkpoints" / "other_project" / "w.bin").write_text("w")
    model = tmp_path / "model"
    model.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (model / name).write_text(name)
    for folder, match in [(d, r"\(config\.json, adapter/, checkpoints/\) without a"),
                          (proj, r"\(checkpoints/\) without a"),
                          (model, r"\(model\.safetensors, tokenizer\.json\), and no")]:
        before = files(folder)
        with pytest.raises(ValueError, match=match):
            claim_out_dir(folder, True)
        assert files(folder) == before


def test_run_guard_keeps_the_old_run_until_the_new_one_checkpoints(tmp_path, dead_pid):
    """Issue 21 probe 2, called directly: an overwrite that fails at set-up (here a kill: no cleanup runs)
    loses nothing; the first checkpoint of the new run deletes the old one."""
    import torch

    from mrgrpo.train.checkpoint import RunLayout, save_checkpoint
    from mrgrpo.train.run_guard import claim_out_dir

    out = tmp_path / "run"
    assert claim_out_dir(out, False) == []
    assert rf.read_marker(out)["paths"] == list(RunLayout.names())
    (out / "config.json").write_text('{"lr": 1}')
    (out / "metrics.json").write_text("[1]")
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.AdamW(model.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    model.save_pretrained = lambda path: Path(path).mkdir()
    save_checkpoint(RunLayout(out).checkpoints, 1, model, opt, sched, {"step": 1})
    assert rf.read_marker(out)["started"]
    before = files(out)
    with pytest.raises(ValueError, match=r"holds a previous run \(config\.json, metrics\.json, checkpoints/\); "
                                         r"pass resume=True"):
        claim_out_dir(out, False)
    assert claim_out_dir(out, True) == ["config.json", "metrics.json", "checkpoints"]
    (out / "config.json").write_text('{"lr": 2}')  # the new run started writing, then was killed
    set_claimant(out, dead_pid)
    with pytest.raises(ValueError, match="holds a previous run"):  # the next command finds the old run back
        claim_out_dir(out, False)
    assert files(out) == before
    claim_out_dir(out, True)
    save_checkpoint(RunLayout(out).checkpoints, 1, model, opt, sched, {"step": 1})
    assert sorted(os.listdir(out)) == [MARKER, "checkpoints"]  # started: the old run is gone


def test_run_guard_resume_accepts_only_runs(tmp_path):
    from mrgrpo.train.run_guard import claim_out_dir, open_run_for_resume

    legacy = tmp_path / "legacy"  # a run written before the marker: resumable (nothing written), not replaceable
    (legacy / "checkpoints" / "checkpoint-000002").mkdir(parents=True)
    (legacy / "config.json").write_text('{"mode": "na"}')
    (legacy / "metrics.json").write_text("[]")
    before = files(legacy)
    open_run_for_resume(legacy)
    with pytest.raises(ValueError, match=r"resume=True, --resume, can still continue it\): move it away"):
        claim_out_dir(legacy, True)
    assert files(legacy) == before and not (legacy / MARKER).exists()
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "metrics.json").write_text("[]")
    with pytest.raises(ValueError, match="has no complete checkpoint, but it holds a previous run"):
        open_run_for_resume(stub)
    (legacy / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"did not write \(notes\.txt\)"):
        open_run_for_resume(legacy)
    open_run_for_resume(tmp_path / "missing")  # nothing there: a fresh run
    assert not (tmp_path / "missing").exists()
