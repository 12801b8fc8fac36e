"""GSM8K (``openai/gsm8k``, config ``main``) as prompt items with a numeric gold answer.

Each item is ``{"prompt": question, "gold": "<N>", "solution": <the dataset's
worked answer>, "id": "gsm8k-<split>-<row>"}``; ``gold`` is the number after
``####`` with thousands separators removed, ready for
:class:`mrgrpo.rewards.MathRewardFunction`.

Offline use. The hub is reached through ``datasets``. When ``HF_HUB_OFFLINE`` /
``HF_DATASETS_OFFLINE`` is set, ``datasets`` answers from its cache or fails at
once; when the hub cannot be reached and no offline flag is set, this module
fails at once too (``datasets`` itself would retry for about half a minute).
Either way the error, a :class:`DatasetUnavailableError`, says how to fetch a
local copy and load it with ``path=``.
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

__all__ = [
    "DatasetUnavailableError",
    "load_gsm8k",
    "load_gsm8k_prompts",
    "gsm8k_prompts_with_gold",
    "parse_gsm8k_gold",
    "HUB_ID",
    "HUB_CONFIG",
]

HUB_ID = "openai/gsm8k"
HUB_CONFIG = "main"
_SPLITS = ("train", "test")

_HOW_TO_GET = (
    "To use GSM8K without network access, fetch it once on a machine that has it:\n"
    "    python -c \"from datasets import load_dataset; "
    "load_dataset('openai/gsm8k', 'main', split='{split}').to_json('gsm8k_{split}.jsonl')\"\n"
    "(or download main/{split}-00000-of-00001.parquet from https://huggingface.co/datasets/openai/gsm8k),\n"
    "then call load_gsm8k(split='{split}', path='gsm8k_{split}.jsonl'). With a copy in the Hugging Face "
    "cache, set HF_HUB_OFFLINE=1 to use it."
)


class DatasetUnavailableError(RuntimeError):
    """GSM8K could not be loaded (offline, hub unreachable, or not cached)."""


def parse_gsm8k_gold(answer: str) -> str:
    """The gold answer of a GSM8K ``answer`` field: the text after the last ``####``, no commas."""
    if "####" not in answer:
        raise ValueError(f"GSM8K answer has no '#### N' line: {answer[-80:]!r}")
    gold = answer.rsplit("####", 1)[1].strip().replace(",", "")
    if not gold:
        raise ValueError(f"GSM8K answer has an empty '####' line: {answer[-80:]!r}")
    return gold


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _offline_flag() -> str | None:
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if _truthy(name):
            return name
    return None


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A TCP connection to the hub endpoint (or the configured proxy) within ``timeout`` seconds."""
    proxy = next((os.environ[k] for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy") if os.environ.get(k)), None)
    url = urlparse(proxy or os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme in ("https", "") else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _read_local(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise FileNotFoundError(f"GSM8K file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if suffix in (".jsonl", ".json"):
        text = path.read_text(encoding="utf-8")
        if suffix == ".json" and text.lstrip().startswith("["):
            return json.loads(text)
        rows = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno} is not valid JSON: {exc}") from exc
        return rows
    raise ValueError(f"GSM8K file {str(path)!r}: expected .jsonl, .json or .parquet, got {suffix or 'no suffix'!r}")


def _read_hub(split: str) -> list[dict[str, Any]]:
    flag = _offline_flag()
    if flag is None and not _hub_reachable():
        raise DatasetUnavailableError(
            f"cannot reach the Hugging Face hub to download {HUB_ID} ({HUB_CONFIG}, split {split!r}).\n"
            + _HOW_TO_GET.format(split=split))
    try:
        from datasets import load_dataset
    except ImportError as exc:
        raise DatasetUnavailableError(
            "loading GSM8K from the hub needs the `datasets` package (pip install -e '.[data]' in a clone of mrgrpo).\n"
            + _HOW_TO_GET.format(split=split)) from exc
    try:
        ds = load_dataset(HUB_ID, HUB_CONFIG, split=split)
    except (ConnectionError, OSError, FileNotFoundError) as exc:
        why = f"{flag}=1 is set and no cached copy was found" if flag else "the download failed"
        raise DatasetUnavailableError(
            f"could not load {HUB_ID} ({HUB_CONFIG}, split {split!r}): {why} ({type(exc).__name__}: {exc}).\n"
            + _HOW_TO_GET.format(split=split)) from exc
    return [dict(row) for row in ds]


def load_gsm8k(split: str = "test", n: int | None = None, path: str | os.PathLike | None = None,
               seed: int | None = None) -> list[dict[str, Any]]:
    """Load GSM8K as prompt items.

    Parameters
    ----------
    split : {"test", "train"}
        The dataset split (used for the hub download and in the ids).
    n : int, optional
        Keep this many rows (all when None): the first ``n``, or a random
        ``n`` when ``seed`` is given.
    path : str or path-like, optional
        A local ``.jsonl`` / ``.json`` / ``.parquet`` file in the ``openai/gsm8k``
        format (``question``, ``answer`` ending in ``#### N``); no network use.
    seed : int, optional
        Shuffle with ``numpy.random.default_rng(seed)`` before taking ``n``.

    Returns
    -------
    list of dict
        ``prompt``, ``gold``, ``solution``, ``id`` (see the module docstring).

    Raises
    ------
    DatasetUnavailableError
        The hub is unreachable or offline mode finds no cached copy.
    FileNotFoundError, ValueError
        A missing local file, or a row without ``question`` / ``answer`` / ``#### N``.
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0):
        raise ValueError(f"n must be a non-negative int or None, got {n!r}")
    rows = _read_local(Path(path)) if path is not None else _read_hub(split)
    order = np.arange(len(rows))
    if seed is not None:
        order = np.random.default_rng(seed).permutation(len(rows))
    if n is not None:
        order = order[: int(n)]
    items = []
    for i in order.tolist():
        row = rows[i]
        if not isinstance(row, dict) or "question" not in row or "answer" not in row:
            raise ValueError(f"GSM8K row {i} needs 'question' and 'answer' fields, got "
                             f"{sorted(row) if isinstance(row, dict) else type(row).__name__}")
        try:
            gold = parse_gsm8k_gold(str(row["answer"]))
        except ValueError as exc:
            raise ValueError(f"GSM8K row {i}: {exc}") from exc
        items.append({"prompt": row["question"], "gold": gold, "solution": row["answer"],
                      "id": f"gsm8k-{split}-{i}"})
    return items


def load_gsm8k_prompts(n: int = 100, split: str = "test", seed: int = 0,
                       path: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """``n`` shuffled GSM8K prompt items (the paper package's call shape)."""
    return load_gsm8k(split=split, n=n, path=path, seed=seed)


def gsm8k_prompts_with_gold(n: int = 100, split: str = "test", seed: int = 0,
                            path: str | os.PathLike | None = None) -> list[tuple[str, str]]:
    """``[(question, gold), ...]`` pairs, for :func:`mrgrpo.corpus.run_corpus`."""
    return [(p["prompt"], p["gold"]) for p in load_gsm8k_prompts(n, split, seed, path)]
