"""``mrgrpo.corpus.build``: a stored corpus built in chunks, resumed after a kill, never overwritten silently."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mrgrpo.corpus import load_npz, load_parquet, pack_for_analysis, run_corpus
from mrgrpo.corpus.build import build_corpus
from mrgrpo.corpus.hf import HFBackend
from mrgrpo.tasks.registry import task_setup

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = dict(P=3, K=2, m_grid=(2, 4), max_new_tokens=12, chunk_prompts=1, progress=False)


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
