"""``mrgrpo.corpus.build``: a stored corpus built in chunks, resumed after a kill, never overwritten silently."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from folder_support import all_files

from mrgrpo.corpus import load_npz, load_parquet, pack_for_analysis, run_corpus
from mrgrpo.corpus.build import build_corpus
from mrgrpo.corpus.hf import HFBackend
from mrgrpo.tasks.registry import task_setup

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = dict(P=3, K=2, m_grid=(2, 4), max_new_tokens=12, chunk_prompts=1, progress=False)


@pytest.fixture
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="module")
def reference():
    """The same rollouts through run_corpus, in one go."""
    be = HFBackend("tiny-math", None, max_new_tokens=12, progress=False)
    setup = task_setup("mini-math", be.tokenizer, n_train=0, n_eval=3, seed=0)
    be.set_reward_fn(setup.reward_fn)
    return run_corpus(be, setup.eval_prompts, [2, 4], 2, subsample_from_max=True, seed=0)


def test_build_equals_run_corpus_and_writes_a_card(tmp_path, reference):
    record = build_corpus("tiny-math", "mini-math", tmp_path / "c", **SMALL, command="mrgrpo corpus build ...")
    for name in ("corpus.parquet", "corpus.npz", "generation.json", "README.md"):
        assert (tmp_path / "c" / name).is_file()
    assert not (tmp_path / "c" / ".build").exists()
    stored = load_parquet(tmp_path / "c" / "corpus.parquet")
    for m in (2, 4):
        np.testing.assert_array_equal(pack_for_analysis(stored, m), pack_for_analysis(reference, m))
        np.testing.assert_array_equal(pack_for_analysis(load_npz(tmp_path / "c" / "corpus.npz"), m),
                                      pack_for_analysis(reference, m))
    g = stored.groups(4)[0]
    assert g.n_tokens is not None and g.ended is not None and len(g.completions) == 4
    assert json.loads((tmp_path / "c" / "generation.json").read_text())["completions"] == 3 * 2 * 4
    assert "mrgrpo corpus build" in (tmp_path / "c" / "README.md").read_text()


def test_an_interrupted_build_resumes_to_the_same_corpus(tmp_path, monkeypatch, reference):
    calls = {"n": 0}
    original = HFBackend.generate_groups

    def dies_on_the_second_chunk(self, prompts, m, seeds):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # as if killed between two chunks
        return original(self, prompts, m, seeds)

    monkeypatch.setattr(HFBackend, "generate_groups", dies_on_the_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        build_corpus("tiny-math", "mini-math", tmp_path / "c", **SMALL)
    assert (tmp_path / "c" / ".build" / "groups.parquet").is_file()
    assert not (tmp_path / "c" / "corpus.parquet").exists()
    with pytest.raises(ValueError, match="unfinished build"):
        build_corpus("tiny-math", "mini-math", tmp_path / "c", **SMALL)
    with pytest.raises(ValueError, match="temperature"):
        build_corpus("tiny-math", "mini-math", tmp_path / "c", **{**SMALL, "temperature": 0.5}, resume=True)
    monkeypatch.setattr(HFBackend, "generate_groups", original)
    record = build_corpus("tiny-math", "mini-math", tmp_path / "c", **SMALL, resume=True)
    assert record["resumed_from_prompt"] == 1
    stored = load_parquet(tmp_path / "c" / "corpus.parquet")
    for m in (2, 4):
        np.testing.assert_array_equal(pack_for_analysis(stored, m), pack_for_analysis(reference, m))


def test_a_finished_corpus_is_not_overwritten_silently(tmp_path):
    build_corpus("tiny-math", "mini-math", tmp_path / "c", **{**SMALL, "P": 1})
    before = (tmp_path / "c" / "corpus.parquet").read_bytes()
    with pytest.raises(ValueError, match="already holds a corpus"):
        build_corpus("tiny-math", "mini-math", tmp_path / "c", **{**SMALL, "P": 1, "seed": 1})
    assert (tmp_path / "c" / "corpus.parquet").read_bytes() == before
    build_corpus("tiny-math", "mini-math", tmp_path / "c", **{**SMALL, "P": 1, "seed": 1}, overwrite=True)
    assert (tmp_path / "c" / "corpus.parquet").read_bytes() != before


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="P must be"):
        build_corpus("tiny-math", "mini-math", tmp_path / "c", **{**SMALL, "P": 0})
    with pytest.raises(ValueError, match="exclude each other"):
        build_corpus("tiny-math", "mini-math", tmp_path / "c", **SMALL, resume=True, overwrite=True)


def test_cli_builds_and_refuses_to_overwrite(tmp_path, capsys):
    from mrgrpo.cli import main

    argv = ["corpus", "build", "--out", str(tmp_path / "c"), "--P", "1", "--K", "1", "--m-grid", "2",
            "--max-new-tokens", "4", "--no-progress"]
    assert main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a corpus" in err[0]


# ------------------------------------------------------------------ issue 21, probes 3, 4 and 16: the corpus folder guard
def cli(argv, capsys) -> tuple[int, list]:
    from mrgrpo.cli import main

    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    return code, (captured.err if code else captured.out).strip().splitlines()


def test_resume_of_a_finished_corpus_compares_its_settings(tmp_path, capsys):
    base = ["corpus", "build", "--out", str(tmp_path / "c"), "--max-new-tokens", "4", "--no-progress"]
    assert cli(base + ["--P", "2", "--K", "2", "--m-grid", "2,4"], capsys)[0] == 0
    before = all_files(tmp_path / "c")
    code, err = cli(base + ["--P", "3", "--K", "1", "--m-grid", "2", "--temperature", "0.5", "--resume"], capsys)
    assert code == 2 and len(err) == 1, err
    assert "holds a finished corpus built with other settings: K (2 -> 1), P (2 -> 3), m_grid ([2, 4] -> [2]), " \
           "temperature (1.0 -> 0.5)" in err[0]
    assert all_files(tmp_path / "c") == before
    code, out = cli(base + ["--P", "2", "--K", "2", "--m-grid", "2,4", "--resume"], capsys)  # the same settings
    assert code == 0 and "nothing to do" in out[-1]
    assert all_files(tmp_path / "c") == before


def test_a_users_readme_is_never_replaced_or_deleted(tmp_path, monkeypatch, capsys):
    argv = ["corpus", "build", "--max-new-tokens", "4", "--no-progress", "--P", "2", "--K", "1", "--m-grid", "2",
            "--chunk-prompts", "1"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_text("my notes")
    for flag in ([], ["--resume"], ["--overwrite"]):  # a folder holding a user's README.md
        code, err = cli(argv + ["--out", str(mine), *flag], capsys)
        assert code == 2 and "README.md" in err[0], (flag, err)
    assert all_files(mine) == {"README.md": b"my notes"}
    # a README.md added beside an unfinished build is not the build's: refused by name, kept
    calls = {"n": 0}
    original = HFBackend.generate_groups

    def dies_on_the_second_chunk(self, prompts, m, seeds):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, prompts, m, seeds)

    monkeypatch.setattr(HFBackend, "generate_groups", dies_on_the_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        build_corpus("tiny-math", "mini-math", tmp_path / "b", P=2, K=1, m_grid=(2,), max_new_tokens=4,
                     chunk_prompts=1, progress=False)
    monkeypatch.setattr(HFBackend, "generate_groups", original)
    (tmp_path / "b" / "README.md").write_text("my notes")
    for flag in (["--resume"], ["--overwrite"]):
        code, err = cli(argv + ["--out", str(tmp_path / "b"), *flag], capsys)
        assert code == 2 and "did not write (README.md)" in err[0], (flag, err)
    assert (tmp_path / "b" / "README.md").read_text() == "my notes"
    (tmp_path / "b" / "README.md").unlink()
    assert cli(argv + ["--out", str(tmp_path / "b"), "--resume"], capsys)[0] == 0
    card = (tmp_path / "b" / "README.md").read_text()  # the card mrgrpo wrote: listed, so it may be replaced
    assert cli(argv + ["--out", str(tmp_path / "b"), "--overwrite", "--seed", "1"], capsys)[0] == 0
    assert (tmp_path / "b" / "README.md").read_text() != card


def test_a_failed_build_does_not_block_its_rerun(tmp_path, capsys, dead_pid):
    out = tmp_path / "c"
    argv = ["corpus", "build", "--out", str(out), "--no-progress", "--P", "1", "--K", "1", "--m-grid", "2"]
    code, err = cli(argv + ["--max-new-tokens", "100000"], capsys)
    assert code == 2 and "context window" in err[0], err
    assert not out.exists()  # a build that wrote no chunk leaves nothing behind ...
    assert cli(argv + ["--max-new-tokens", "4", "--resume", "--temperature", "0.5"], capsys)[0] == 0  # ... so no
    shutil.rmtree(out)                                                       # setting of it is held against a rerun
    # the same after a kill, where no cleanup ran: the next build undoes the claim of the dead process
    from mrgrpo.core.run_folder import MARKER, claim
    from mrgrpo.corpus.build import BUILD_DIR, CORPUS_FOLDER

    claim(out, CORPUS_FOLDER, paths=(BUILD_DIR,))
    (out / BUILD_DIR).mkdir()
    (out / BUILD_DIR / "params.json").write_text('{"max_new_tokens": 100000}')
    marker = json.loads((out / MARKER).read_text())
    marker["claim"].update(pid=dead_pid, process_start=None)
    (out / MARKER).write_text(json.dumps(marker))
    assert cli(argv + ["--max-new-tokens", "4"], capsys)[0] == 0


def test_an_overwrite_keeps_the_old_corpus_until_its_first_chunk(tmp_path, monkeypatch):
    small = dict(P=1, K=1, m_grid=(2,), max_new_tokens=4, progress=False)
    build_corpus("tiny-math", "mini-math", tmp_path / "c", **small)
    before = all_files(tmp_path / "c")

    def fails(self, prompts, m, seeds):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(HFBackend, "generate_groups", fails)
    with pytest.raises(RuntimeError, match="out of memory"):
        build_corpus("tiny-math", "mini-math", tmp_path / "c", **small, seed=1, overwrite=True)
    assert all_files(tmp_path / "c") == before
    monkeypatch.undo()
    build_corpus("tiny-math", "mini-math", tmp_path / "c", **small, seed=1, overwrite=True)
    after = all_files(tmp_path / "c")
    assert after["corpus.parquet"] != before["corpus.parquet"]
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == sorted(
        [".mrgrpo-folder.json", "corpus.parquet", "corpus.npz", "generation.json", "README.md"])
