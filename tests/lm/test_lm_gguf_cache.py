"""The model cache reads only what its manifest lists, and says where it is when it cannot write.

Issue 21, items 7 and 15. The fixture is a cache in the real format, built by the real
:func:`ensure_cached` (``write_cache_folder``, manifest, atomic install) from the shipped tiny
policy: only the dequantization is replaced (``load_gguf`` returns the tiny model for a small
file that starts with ``GGUF``), so no test here needs the 93 MB SmolLM2 file.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from mrgrpo.cli import main
from mrgrpo.lm import gguf as G
from mrgrpo.lm import manifest as M
from mrgrpo.lm.loader import load_tokenizer
from mrgrpo.lm.models import SMOLLM2, TINY_MATH_DIR

pytestmark = pytest.mark.usefixtures("one_torch_thread")
NAME = "tiny-cache"
#: What issue 21 wrote into the SmolLM2 cache: eos and pad became "Hello", one more token.
FOREIGN = {"special_tokens_map.json": json.dumps({"eos_token": "Hello", "pad_token": "Hello"}),
           "added_tokens.json": json.dumps({"Hello": 257})}


@pytest.fixture(scope="module")
def tiny_pair():
    return AutoModelForCausalLM.from_pretrained(str(TINY_MATH_DIR)).eval(), AutoTokenizer.from_pretrained(str(TINY_MATH_DIR))


@pytest.fixture
def cache(tmp_path, monkeypatch, tiny_pair):
    """A fake GGUF source, a conversion counter, and a cache root under tmp_path."""
    src = tmp_path / "tiny.gguf"
    src.write_bytes(b"GGUF" + bytes(range(256)) * 16)
    loads = []
    monkeypatch.setattr(G, "load_gguf", lambda path: loads.append(Path(path)) or tiny_pair)
    return SimpleNamespace(src=src, loads=loads, root=tmp_path / "cache")


def _entries(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def _tokenizer_facts(folder: Path) -> tuple:
    tok = AutoTokenizer.from_pretrained(str(folder))
    return tok.eos_token, tok.pad_token, len(tok)


# ----------------------------------------------------------------------------- item 7: unlisted files
def test_the_fixture_is_a_real_cache_folder(cache, tiny_pair):
    folder = G.ensure_cached(cache.src, NAME, root=cache.root)
    manifest = G.read_manifest(folder)
    assert len(cache.loads) == 1 and G.verify_cache(folder, cache.src) == []
    assert _entries(folder) == sorted([G.MANIFEST, *manifest["files"]])
    assert {"config.json", G.WEIGHTS, "tokenizer.json", "tokenizer_config.json"} <= set(manifest["files"])
    assert _tokenizer_facts(folder) == (tiny_pair[1].eos_token, tiny_pair[1].pad_token, len(tiny_pair[1]))


def test_files_dropped_into_the_cache_would_change_the_tokenizer(cache, tiny_pair):
    """The control: the probe does change a tokenizer read from the folder, so the next test can fail."""
    folder = G.ensure_cached(cache.src, NAME, root=cache.root)
    for name, text in FOREIGN.items():
        (folder / name).write_text(text)
    assert _tokenizer_facts(folder) == ("Hello", "Hello", len(tiny_pair[1]) + 1)


@pytest.mark.parametrize("verify", ["sha256", "size"])
def test_a_file_the_manifest_does_not_list_is_never_loaded(cache, tiny_pair, verify):
    clean = (tiny_pair[1].eos_token, tiny_pair[1].pad_token, len(tiny_pair[1]))
    folder = G.ensure_cached(cache.src, NAME, root=cache.root)
    listed = _entries(folder)
    for name, text in FOREIGN.items():
        (folder / name).write_text(text)
    problems = G.verify_cache(folder, cache.src, level=verify)
    assert sorted(p.split(" ")[0] for p in problems) == sorted(FOREIGN)
    assert all("not listed in manifest.json" in p for p in problems)
    assert G.ensure_cached(cache.src, NAME, root=cache.root, verify=verify) == folder
    assert _entries(folder) == listed and G.verify_cache(folder, cache.src) == []
    assert _tokenizer_facts(folder) == clean
    assert len(cache.loads) == 1  # a clean folder of links to the verified files: no conversion
    assert sorted(p.name for p in cache.root.iterdir()) == sorted([NAME, f".{NAME}.lock"])


def test_an_unlisted_file_is_seen_after_the_folder_was_verified_in_this_process(cache, tiny_pair):
    """The once-per-process stat check covers the folder's listing, not only the listed files."""
    folder = G.ensure_cached(cache.src, NAME, root=cache.root)
    G.ensure_cached(cache.src, NAME, root=cache.root)  # remembered: now checked by stat only
    (folder / "sub").mkdir()
    (folder / "sub" / "special_tokens_map.json").write_text(FOREIGN["special_tokens_map.json"])
    (folder / "added_tokens.json").write_text(FOREIGN["added_tokens.json"])
    G.ensure_cached(cache.src, NAME, root=cache.root)
    assert G.verify_cache(folder) == [] and "sub" not in _entries(folder)
    assert _tokenizer_facts(folder)[2] == len(tiny_pair[1]) and len(cache.loads) == 1


def test_a_damaged_listed_file_beside_an_unlisted_one_is_rebuilt(cache):
    folder = G.ensure_cached(cache.src, NAME, root=cache.root)
    (folder / "added_tokens.json").write_text(FOREIGN["added_tokens.json"])
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer.json").write_text("{}")  # a new inode: the fixture's links are not touched
    G.ensure_cached(cache.src, NAME, root=cache.root)
    assert len(cache.loads) == 2 and G.verify_cache(folder) == []
    assert "added_tokens.json" not in _entries(folder)


def test_the_loader_reads_the_cleaned_folder(cache, tiny_pair, monkeypatch):
    """``load_tokenizer("smollm2-135m-instruct")`` goes through the cache and sees no foreign file."""
    monkeypatch.setenv("MRGRPO_CACHE", str(cache.root))
    monkeypatch.setattr(G, "gguf_source", lambda *a, **k: cache.src)
    monkeypatch.setattr(G, "gguf_record_sha256", lambda *a, **k: None)
    folder = G.smollm2_folder()
    for name, text in FOREIGN.items():
        (folder / name).write_text(text)
    tok = load_tokenizer(SMOLLM2)
    assert (tok.eos_token, tok.pad_token, len(tok)) == (tiny_pair[1].eos_token, tiny_pair[1].pad_token,
                                                         len(tiny_pair[1]))
    assert len(cache.loads) == 1


def test_manifest_helpers(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.json").write_text("{}")
    (tmp_path / "y.bin").write_bytes(b"y")
    (tmp_path / "stray").write_text("s")
    records = M.file_records(tmp_path, ["a/x.json", "y.bin"])
    assert records["y.bin"] == {"size": 1, "sha256": M.file_sha256(tmp_path / "y.bin")}
    assert M.unlisted_files(tmp_path, records) == ["stray"]
    problems = M.check_listed_files(tmp_path, records)
    assert problems == [f"stray is not listed in {M.MANIFEST} {M.UNLISTED}"]
    (tmp_path / "y.bin").write_bytes(b"z")
    assert M.check_listed_files(tmp_path, records, "size") == problems
    assert "y.bin does not match its sha256 in the manifest" in M.check_listed_files(tmp_path, records)


# ----------------------------------------------------------------------------- item 15: a read-only cache
@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """A folder chmod'ed read-only. Where chmod binds nothing (running as root), writes into it are
    made to fail the way a read-only mount fails them: ``open`` and ``mkdir`` raise EROFS."""
    ro = tmp_path / "ro-cache"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        (ro / ".probe").touch()
    except PermissionError:
        simulated = False
    else:
        (ro / ".probe").unlink()
        simulated = True
        real_open, real_mkdtemp, real_mkdir = open, G.tempfile.mkdtemp, Path.mkdir

        def inside(path) -> bool:
            return Path(path).resolve().is_relative_to(ro.resolve())

        def refuse(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

        def ro_open(path, mode="r", *a, **k):
            return refuse(path) if inside(path) and any(c in mode for c in "wax+") else real_open(path, mode, *a, **k)

        def ro_mkdir(self, *a, **k):
            return refuse(self) if inside(self) and not self.is_dir() else real_mkdir(self, *a, **k)

        monkeypatch.setattr(G, "open", ro_open, raising=False)  # the lock file is opened here
        monkeypatch.setattr(Path, "mkdir", ro_mkdir)
        monkeypatch.setattr(G.tempfile, "mkdtemp",
                            lambda *a, dir=None, **k: refuse(dir) if dir and inside(dir) else real_mkdtemp(*a, dir=dir, **k))
    yield SimpleNamespace(path=ro, simulated=simulated)
    ro.chmod(0o755)


def test_a_read_only_cache_names_the_folder_and_mrgrpo_cache(cache, read_only, monkeypatch):
    monkeypatch.setenv("MRGRPO_CACHE", str(read_only.path))
    monkeypatch.setattr(G, "gguf_source", lambda *a, **k: cache.src)
    monkeypatch.setattr(G, "gguf_record_sha256", lambda *a, **k: None)
    with pytest.raises(G.CacheNotWritableError) as exc:
        G.smollm2_folder()
    msg = str(exc.value)
    assert f"the model cache folder {read_only.path.resolve()} (from MRGRPO_CACHE) is not writable" in msg
    assert "point MRGRPO_CACHE at a writable folder" in msg and "\n" not in msg
    assert isinstance(exc.value, OSError) and exc.value.errno in (errno.EROFS, errno.EACCES)
    assert exc.value.__cause__ is None and exc.value.__suppress_context__  # no chained traceback
    assert cache.loads == [] and list(read_only.path.iterdir()) == []
    with pytest.raises(G.CacheNotWritableError, match=r"\(passed as root\)"):
        G.ensure_cached(cache.src, NAME, root=read_only.path)


def test_the_cli_prints_one_line_for_a_read_only_cache(cache, read_only, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MRGRPO_CACHE", str(read_only.path))
    monkeypatch.setattr(G, "gguf_source", lambda *a, **k: cache.src)
    monkeypatch.setattr(G, "gguf_record_sha256", lambda *a, **k: None)
    rc = main(["corpus", "build", "--model", SMOLLM2, "--out", str(tmp_path / "corpus"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert str(read_only.path.resolve()) in err and "MRGRPO_CACHE" in err
    assert not (tmp_path / "corpus").exists() and cache.loads == []


def test_a_complete_cache_in_a_read_only_folder_is_used(cache, tmp_path, monkeypatch):
    """Nothing is written when nothing needs to be: the check alone needs no write access."""
    built = G.ensure_cached(cache.src, NAME, root=cache.root)
    root = tmp_path / "ro"  # a copy this process has never verified
    shutil.copytree(built, root / NAME, copy_function=os.link)
    folders = [root / NAME, root]
    for f in folders:
        f.chmod(0o555)
    monkeypatch.setattr(G.tempfile, "mkdtemp", lambda *a, **k: pytest.fail("a complete cache was rebuilt"))
    real_open = open

    def no_writes(path, mode="r", *a, **k):
        if any(c in mode for c in "wax+"):
            pytest.fail(f"a complete cache opened {path} to write (the build lock)")
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr(G, "open", no_writes, raising=False)
    try:
        assert G.ensure_cached(cache.src, NAME, root=root) == root / NAME and len(cache.loads) == 1
    finally:
        for f in folders:
            f.chmod(0o755)
    assert sorted(p.name for p in root.iterdir()) == [NAME]
