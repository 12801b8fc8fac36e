"""The paper's released GSM8K rollouts, read locally or from the Hugging Face hub."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Union

from mrgrpo.corpus.io import load_npz, load_parquet
from mrgrpo.corpus.types import Corpus

__all__ = ["RELEASED_DATASETS", "RELEASED_FILES", "ReleasedDataUnavailable", "load_released_rollouts"]

RELEASED_DATASETS = {
    "1.5b": "eagle0504/multireward-grpo-gsm8k-rewards",
    "7b": "eagle0504/multireward-grpo-gsm8k-rewards-qwen2.5-7b",
}
RELEASED_FILES = {"parquet": "data/train.parquet", "npz": "llm_rewards_gsm8k.npz"}


class ReleasedDataUnavailable(FileNotFoundError):
    """The released rollouts are neither local nor downloadable (e.g. offline)."""


def _how_to_get(repo: str, filename: str) -> str:
    return (f"To use the released rollouts offline, download them once on a machine with internet:\n"
            f"    huggingface-cli download {repo} {filename} --repo-type dataset --local-dir DIR\n"
            f"(or hf_hub_download(repo_id={repo!r}, repo_type='dataset', filename={filename!r})), then "
            f"pass local_path='DIR/{filename}' (CLI: mrgrpo analyze DIR/{filename} --w ...).")


def load_released_rollouts(which: str = "1.5b", local_path: Union[str, os.PathLike, None] = None,
                           fmt: str = "parquet", m_grid: Optional[Sequence[int]] = None,
                           revision: Optional[str] = None) -> Corpus:
    """The paper's released GSM8K rollouts as a :class:`Corpus`.

    Parameters
    ----------
    which : {"1.5b", "7b"} or a Hugging Face dataset id
        ``"1.5b"`` is ``eagle0504/multireward-grpo-gsm8k-rewards`` (150 prompts x
        16 seeds x 32 rollouts, Qwen2.5-1.5B-Instruct); ``"7b"`` is
        ``eagle0504/multireward-grpo-gsm8k-rewards-qwen2.5-7b``.
    local_path : path, optional
        A local copy: the Parquet / ``.npz`` file, or a folder holding
        ``data/train.parquet`` (or ``llm_rewards_gsm8k.npz``). Nothing is downloaded.
    fmt : {"parquet", "npz"}
        Parquet holds only the largest groups (``m = 32``; smaller ``m`` are
        served as prefixes); the ``.npz`` holds each released ``rewards_m{m}``.
    m_grid : sequence of int, optional
        Group sizes to expose from the Parquet (default ``[4, 8, 16, 32]``, capped at the stored size).
    revision : str, optional
        A dataset revision (commit) to pin.

    Raises
    ------
    ReleasedDataUnavailable
        (a ``FileNotFoundError``) offline or unreachable, with how to fetch the file.
    """
    if fmt not in RELEASED_FILES:
        raise ValueError(f"fmt must be one of {sorted(RELEASED_FILES)}, got {fmt!r}")
    repo = RELEASED_DATASETS.get(str(which).lower(), str(which))
    if "/" not in repo:
        raise ValueError(f"which must be one of {sorted(RELEASED_DATASETS)} or an 'owner/name' dataset id, got {which!r}")
    filename = RELEASED_FILES[fmt]
    if local_path is not None:
        path = Path(local_path)
        if path.is_dir():
            path = path / filename
        if not path.exists():
            raise ReleasedDataUnavailable(f"no released rollouts at {path}.\n" + _how_to_get(repo, filename))
    else:
        try:
            from huggingface_hub import hf_hub_download
        except ImportError as exc:  # pragma: no cover
            raise ReleasedDataUnavailable("huggingface_hub is not installed (pip install -e '.[data]' in a clone of mrgrpo).\n"
                                          + _how_to_get(repo, filename)) from exc
        try:
            path = Path(hf_hub_download(repo_id=repo, repo_type="dataset", filename=filename, revision=revision))
        except Exception as exc:  # offline mode, no network, missing file: all mean the same to the user
            offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
            why = "HF_HUB_OFFLINE is set and the file is not in the local cache" if offline else \
                f"download failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            raise ReleasedDataUnavailable(f"cannot load {repo}:{filename}: {why}.\n"
                                          + _how_to_get(repo, filename)) from exc
    if path.suffix == ".npz":
        return load_npz(path)
    corpus = load_parquet(path)
    m_max = max(corpus.m_grid)
    grid = [m for m in (m_grid or (4, 8, 16, 32)) if m <= m_max] or [m_max]
    corpus.m_grid = sorted(set(grid) | {m_max})
    return corpus
