"""The one model loader: a model id, a local folder or a hub id to ``(model, tokenizer)``.

Every part of the package that needs a language model (the generation
backend, the trainer, the real-score code, the task registry's tokenizer)
loads it here, so a model behaves the same everywhere: the same tokenizer
set-up (a pad token, left padding) and the same end-of-sequence rule
(:func:`eos_token_ids`).
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
from pathlib import Path
from typing import Any, Iterator, NamedTuple
from urllib.parse import urlparse

from mrgrpo.lm.models import MODEL_IDS, SMOLLM2, TINY_MATH, TINY_MATH_DIR

__all__ = ["ModelSource", "resolve_model", "model_path", "load_model", "load_tokenizer", "eos_token_ids", "hub_unreachable",
           "check_device", "loading_bars"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")
_TINY_HINT = ("the shipped tiny policy is package data (mrgrpo/assets/tiny-math); reinstall mrgrpo, or rebuild it "
              "with `mrgrpo tiny pretrain --out DIR` and pass that folder")


class ModelSource(NamedTuple):
    """Where a model's files come from: ``path`` (a folder or hub id) and whether it is local."""

    path: str
    local: bool


def _is_hub_id(name: str) -> bool:
    """Whether a missing local name may be a hub id (``"owner/model"``).

    ``"data/tiny-math"`` has the hub shape too; when its first component exists
    here it is a relative path that does not exist yet, not a hub id.
    """
    if not _HUB_ID.match(name):
        return False
    return not ("/" in name and Path(name.split("/")[0]).exists())


def hub_unreachable(timeout: float = 3.0) -> str:
    """Why the hub cannot be reached (``""`` if it may be), decided in seconds, not minutes of retries."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return ""  # behind a proxy a direct probe proves nothing; let the hub client try
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme != "http" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return f"the hub ({host}:{port}) is unreachable ({type(exc).__name__}: {exc})"
    return ""


def resolve_model(model: str | os.PathLike) -> ModelSource:
    """Resolve a model id, a local folder or a hub id; a clear error when none fits.

    Raises
    ------
    FileNotFoundError
        A missing folder, a folder without ``config.json``, a missing tiny policy.
    """
    name = os.fspath(model)
    key = name.lower()
    if key == TINY_MATH:
        if not (TINY_MATH_DIR / "config.json").is_file():
            raise FileNotFoundError(f"the tiny policy is missing at {TINY_MATH_DIR}; {_TINY_HINT}")
        return ModelSource(str(TINY_MATH_DIR), True)
    if key == SMOLLM2:
        from mrgrpo.lm.gguf import smollm2_folder

        return ModelSource(str(smollm2_folder()), True)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"model folder {str(path)!r} has no config.json, so it is not a Hugging Face "
                                    f"model; model ids: {', '.join(MODEL_IDS)}")
        return ModelSource(str(path), True)
    if not _is_hub_id(name):
        raise FileNotFoundError(f"model path {name!r} does not exist, and it is not a model id ({', '.join(MODEL_IDS)}) "
                                "or a Hugging Face hub id such as 'Qwen/Qwen2.5-1.5B-Instruct'; "
                                "`mrgrpo tiny pretrain --out DIR` builds a tiny policy in DIR")
    return ModelSource(name, False)


def model_path(model: str | os.PathLike) -> str:
    """Where ``model`` loads from by path: a complete Hugging Face folder for a model id or a folder.

    ``model_path("tiny-math")`` is the shipped tiny policy's folder (package data);
    ``model_path("smollm2-135m-instruct")`` the SmolLM2 cache (:mod:`mrgrpo.lm.gguf`, converted on
    first use). Both hold ``config.json`` (with ``architectures``), ``generation_config.json``,
    the weights and the tokenizer, so ``AutoModelForCausalLM.from_pretrained(path)``, TRL
    (``GRPOTrainer(model=path)``) and vLLM load them as they would any model. A local folder is
    returned as given and a hub id unchanged (those libraries resolve it themselves).

    Raises
    ------
    FileNotFoundError
        As :func:`resolve_model`: a missing folder, a folder without ``config.json``.
    """
    return resolve_model(model).path


def _from_pretrained(cls: Any, source: ModelSource, name: str, **kwargs: Any) -> Any:
    """``cls.from_pretrained`` from the local cache first, the hub second, with one clear error offline."""
    try:
        return cls.from_pretrained(source.path, local_files_only=True, **kwargs)
    except OSError:
        if source.local:
            raise
    why = hub_unreachable()
    if not why:
        try:
            return cls.from_pretrained(source.path, **kwargs)
        except OSError as exc:
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    raise FileNotFoundError(
        f"could not load {name!r}: it is not in the local Hugging Face cache and {why}. Offline, download it on "
        f"a connected machine (`huggingface-cli download {name}`) and copy the cache, or pass a local folder "
        f"or a model id ({', '.join(MODEL_IDS)})") from None


def load_tokenizer(model: str | os.PathLike) -> Any:
    """The model's tokenizer, with a pad token (EOS when it had none) and left padding."""
    from transformers import AutoTokenizer

    tok = _from_pretrained(AutoTokenizer, resolve_model(model), os.fspath(model))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def check_device(device: str) -> None:
    """A clear ``ValueError`` for a device this machine's torch cannot use (before any model loads)."""
    import torch

    if device == "auto":
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"device {device!r} is not a torch device ({str(exc).splitlines()[0]})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ValueError(f"device {device}: {why} (torch {torch.__version__}); use device cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device}: MPS is not available here; use device cpu or auto")


@contextlib.contextmanager
def loading_bars(enabled: bool) -> Iterator[None]:
    """With ``enabled=False``, silence the progress bars of transformers, the hub and datasets meanwhile."""
    if enabled:
        yield
        return
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    old_env = os.environ.get("HF_DATASETS_DISABLE_PROGRESS_BARS")
    hf_logging.disable_progress_bar()
    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()
        if old_env is None:
            os.environ.pop("HF_DATASETS_DISABLE_PROGRESS_BARS", None)
        else:
            os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = old_env


def load_model(model: str | os.PathLike, *, device: str = "cpu", dtype: Any = None,
               adapter: str | os.PathLike | None = None, progress: bool = True) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer.

    Parameters
    ----------
    model : str or path
        A model id (:data:`mrgrpo.lm.models.MODEL_IDS`), a local folder or a hub id.
    device : str
        ``"cpu"``, ``"cuda"``, ...
    dtype : torch dtype or its name, optional
        Default: the checkpoint's own.
    adapter : path or hub id, optional
        A peft LoRA adapter to load on top.
    progress : bool
        Show transformers' loading bars.

    Returns
    -------
    (model, tokenizer)
        The model in eval mode on ``device``; the tokenizer as :func:`load_tokenizer` gives it.
    """
    import torch
    from transformers import AutoModelForCausalLM

    check_device(str(device))
    name = os.fspath(model)
    source = resolve_model(model)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    with loading_bars(progress):
        tok = load_tokenizer(model)
        lm = _from_pretrained(AutoModelForCausalLM, source, name, dtype=dtype)
    if adapter is not None:
        adapter_name = os.fspath(adapter)
        if not Path(adapter_name).expanduser().exists() and not _is_hub_id(adapter_name):
            raise FileNotFoundError(f"adapter path {adapter_name!r} does not exist")
        from peft import PeftModel

        lm = PeftModel.from_pretrained(lm, adapter_name)
    lm.to(device)
    lm.eval()
    return lm, tok


def eos_token_ids(tokenizer: Any, model: Any = None) -> tuple[int, ...]:
    """The one end-of-sequence rule: the tokenizer's EOS and the model's ``generation_config`` EOS ids.

    Instruct models often end a turn on a token (``<|im_end|>``) that is their
    generation config's EOS but not the tokenizer's; sampling, training and
    scoring all stop on the union.

    Raises
    ------
    ValueError
        Neither names an EOS token (completions could never end).
    """
    ids: set[int] = set()
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if gen is not None:
        ids.update(int(e) for e in ([gen] if isinstance(gen, int) else gen))
    if not ids:
        raise ValueError(f"neither the tokenizer ({type(tokenizer).__name__}) nor the model's generation config "
                         "names an EOS token; completions could never end")
    return tuple(sorted(ids))
