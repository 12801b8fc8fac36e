"""Stage a Hub upload: write exactly the files that would be uploaded into a folder.

Uploads are built from an allow-list, never from a skip-list:

- the adapter: ``adapter_config.json`` and ``adapter_model.safetensors``;
- tokenizer files (:data:`TOKENIZER_FILES`), when the adapter folder has them;
- the run's provenance under ``training/``: ``config.json``, ``metrics.json/.csv``,
  ``eval.json/.csv`` (located through :class:`mrgrpo.train.checkpoint.RunLayout`);
- a training-curve image and the generated card (``README.md``).

Everything else in the run or adapter folder (checkpoints, ``.env``, notes, a
pickled ``adapter_model.bin``) is left out and listed. A file that resolves
outside the run folder (a symbolic link to ``~/.ssh/id_rsa``, an ``adapter/``
linked elsewhere) refuses the upload before anything is read into it. Every
staged file is then scanned for secrets, by value (the token in use and the
``HF_TOKEN``, ``RUNPOD_API_KEY``, ``WANDB_API_KEY``, ``GITHUB_TOKEN`` of the
environment) and by shape (:data:`SECRET_PATTERNS`: PEM private keys, GitHub,
Hugging Face, RunPod and AWS keys, a wandb key under a wandb-looking name), so a
key is caught whether or not it is set here; a hit refuses the whole upload.
Staging is atomic (:func:`mrgrpo.core.files.atomic_folder`): it writes to a hidden
folder beside the target and renames it into place at the end, so a failure
leaves no partial output.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from mrgrpo.core.files import atomic_folder

from .cards import GROUP_KEYS, PROMPT_KEYS, dataset_card, model_card, reward_columns, training_curve_figure

__all__ = ["ADAPTER_FILES", "TOKENIZER_FILES", "CURVE_NAMES", "REQUIRED_CORPUS_COLUMNS",
           "RunFiles", "Staged", "read_run_dir", "stage_adapter", "stage_corpus",
           "check_repo_id", "find_secrets", "SECRET_PATTERNS", "SECRET_ENV_VARS"]

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json", "vocab.json", "vocab.txt", "merges.txt", "tokenizer.model",
                   "chat_template.jinja", "chat_template.json")
CURVE_NAMES = ("training_curve.png", "training_curve.jpg", "curve.png")
#: Columns every rollout Parquet must have (both released schemas share them,
#: plus one prompt key and one group-size column, checked separately).
REQUIRED_CORPUS_COLUMNS = ("model", "seed_idx", "rollout_idx")
#: What a secret looks like, whoever's it is (matched in the bytes of every staged file).
SECRET_PATTERNS = {
    "a private key (PEM)": rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----",
    "a GitHub token": rb"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})",
    "a Hugging Face token": rb"\bhf_[A-Za-z0-9]{30,}",
    "a RunPod API key": rb"\brpa_[A-Za-z0-9]{20,}",
    "an AWS access key": rb"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "a wandb API key": rb"(?i)wandb[\w.-]{0,40}[\"']?\s*[:=]\s*[\"']?[0-9a-f]{40}"
                       rb"|api\.wandb\.ai\s.{0,80}?password\s+[0-9a-f]{40}",
}
#: Environment variables whose values must never be uploaded.
SECRET_ENV_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "RUNPOD_API_KEY", "WANDB_API_KEY", "GITHUB_TOKEN",
                   "GH_TOKEN")
_SECRET_RES = {what: re.compile(rx, re.DOTALL) for what, rx in SECRET_PATTERNS.items()}
_SCAN_CHUNK, _SCAN_OVERLAP = 8 << 20, 4096


@dataclass
class RunFiles:
    """What :func:`read_run_dir` found. Tables are DataFrames, None when absent."""

    run_dir: Path
    adapter_dir: Path
    config: dict = field(default_factory=dict)
    metrics: Any = None
    eval_table: Any = None
    curve_image: Optional[Path] = None
    provenance: list[Path] = field(default_factory=list)


@dataclass
class Staged:
    """``files``: what the staging folder holds; ``left_out``: what was not taken, with why."""

    files: list[str]
    left_out: list[str] = field(default_factory=list)


def read_run_dir(run_dir: str | os.PathLike) -> RunFiles:
    """Read a training run folder through :mod:`mrgrpo.train.checkpoint`'s layout.

    Raises
    ------
    FileNotFoundError
        If the folder, ``adapter_config.json`` or ``adapter_model.safetensors`` is
        missing (in ``adapter/`` or in the run folder itself).
    """
    import pandas as pd

    from mrgrpo.train.checkpoint import RunLayout, read_run_config, read_run_table

    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"run folder {run} does not exist")
    layout = RunLayout(run)
    adapter = layout.adapter if layout.adapter.is_dir() else run
    if not all((adapter / f).is_file() for f in ADAPTER_FILES):
        pickled = " (adapter_model.bin is a pickle and is never uploaded)" \
            if (adapter / "adapter_model.bin").is_file() else ""
        raise FileNotFoundError(f"no adapter in {run}: expected {' and '.join(ADAPTER_FILES)} in "
                                f"{run.name}/adapter/ or {run.name}/{pickled}")
    config, cfg_path = read_run_config(run)
    tables, prov = {}, [cfg_path] if cfg_path else []
    for stem in ("metrics", "eval"):
        records, source = read_run_table(run, stem)
        tables[stem] = pd.DataFrame(records) if records is not None else None
        prov += [p for p in layout.table(stem) if p.is_file()]
        bad = [c for c in reward_columns(tables[stem]) if not pd.api.types.is_numeric_dtype(tables[stem][c])] \
            if tables[stem] is not None else []
        if bad:
            raise ValueError(f"{source}: column {bad[0]!r} holds values that are not numbers")
    curve = next((run / n for n in CURVE_NAMES if (run / n).is_file()), None)
    return RunFiles(run_dir=run, adapter_dir=adapter, config=config, metrics=tables["metrics"],
                    eval_table=tables["eval"], curve_image=curve, provenance=prov)


def check_repo_id(repo_id: str) -> None:
    """Refuse anything but ``owner/name``."""
    parts = repo_id.split("/") if isinstance(repo_id, str) and repo_id else []
    if len(parts) != 2 or not all(parts) or any(c.isspace() for c in repo_id):
        raise ValueError(f"repo id must look like 'owner/name', got {repo_id!r}")


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _chunks(path: Path) -> Iterable[bytes]:
    """The file's bytes in pieces that overlap by :data:`_SCAN_OVERLAP` (a match never falls between two)."""
    tail = b""
    with open(path, "rb") as fh:
        while block := fh.read(_SCAN_CHUNK):
            yield tail + block
            tail = block[-_SCAN_OVERLAP:]


def find_secrets(root: Path, secrets: Sequence[str] = ()) -> list[str]:
    """Files under ``root`` that hold a secret, each as ``"path (what was found)"``.

    Every file is scanned, binary ones too (a safetensors header is JSON text):
    for the values ``secrets`` (8 characters or longer) and for
    :data:`SECRET_PATTERNS`.
    """
    known = [s.encode() for s in secrets if s and len(s) >= 8]
    hits = []
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        found: list[str] = []
        for data in _chunks(p):
            if "a token or key set in this environment" not in found and any(k in data for k in known):
                found.append("a token or key set in this environment")
            found += [what for what, rx in _SECRET_RES.items() if what not in found and rx.search(data)]
        if found:
            hits.append(f"{p.relative_to(root)} ({', '.join(found)})")
    return hits


def _secrets_in_use(extra: Sequence[str] = ()) -> list[str]:
    return [*extra, *(os.environ.get(k, "") for k in SECRET_ENV_VARS)]


def _check_empty(out_dir: str | os.PathLike) -> None:
    """A staging target must be new or an empty folder: nothing of the user's is replaced."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"staging folder {out} exists and is not empty; give a new or empty folder")


def _check_inside(root: Path, paths: Iterable[Path]) -> None:
    """Refuse a file to upload that resolves outside ``root`` (a symbolic link out of the folder)."""
    base = root.resolve()
    for p in paths:
        target = p.resolve()
        if not target.is_relative_to(base):
            name = p.relative_to(root) if p.is_relative_to(root) else p
            raise ValueError(f"refusing to upload: {name} leads outside {root} "
                             f"(a symbolic link to {target}); copy the file into the folder if it belongs "
                             "in the upload")


def _refuse_secrets(folder: Path, secrets: Sequence[str]) -> None:
    hits = find_secrets(folder, _secrets_in_use(secrets))
    if hits:
        raise ValueError(f"refusing to upload: {'; '.join(hits)}: what looks like a token or key; "
                         "remove it from the run folder first")


def stage_adapter(run_dir: str | os.PathLike, out_dir: str | os.PathLike, repo_id: str, *,
                  base_model: Optional[str] = None, license: str = "mit",
                  secrets: Sequence[str] = ()) -> Staged:
    """Write everything :func:`~mrgrpo.ops.hub.push.push_adapter` would upload into ``out_dir``.

    ``secrets``: more strings that must not appear in any uploaded file.
    """
    check_repo_id(repo_id)
    run = read_run_dir(run_dir)
    keep_adapter = set(ADAPTER_FILES) | set(TOKENIZER_FILES)
    keep_run = {p.name for p in run.provenance} | set(CURVE_NAMES) | {run.adapter_dir.name}
    left_out = [f"{p.relative_to(run.run_dir)}{'/' if p.is_dir() else ''}"
                for p in sorted(run.adapter_dir.iterdir())
                if not (p.is_file() and p.name in keep_adapter)
                and not (run.adapter_dir == run.run_dir and p.name in keep_run)]
    if run.adapter_dir != run.run_dir:
        left_out += [f"{p.name}{'/' if p.is_dir() else ''}" for p in sorted(run.run_dir.iterdir())
                     if p.name not in keep_run]
    _check_inside(run.run_dir, [*(run.adapter_dir / n for n in sorted(keep_adapter) if (run.adapter_dir / n).is_file()),
                                *run.provenance, *([run.curve_image] if run.curve_image else [])])
    _check_empty(out_dir)
    with atomic_folder(out_dir) as out:
        for name in sorted(keep_adapter):
            if (run.adapter_dir / name).is_file():
                shutil.copy2(run.adapter_dir / name, out / name)
        (out / "training").mkdir()
        for p in run.provenance:
            shutil.copy2(p, out / "training" / p.name)
        if run.config and not (out / "training" / "config.json").exists():
            (out / "training" / "config.json").write_text(json.dumps(run.config, indent=1))
        curve = None
        if run.curve_image is not None:
            curve = run.curve_image.name
            shutil.copy2(run.curve_image, out / curve)
        elif run.metrics is not None and len(run.metrics) and reward_columns(run.metrics):
            import matplotlib.pyplot as plt

            curve = "training_curve.png"
            plt.close(training_curve_figure(run.metrics, out / curve))
        (out / "README.md").write_text(model_card(
            run.config, repo_id=repo_id, metrics=run.metrics, eval_table=run.eval_table,
            curve_image=curve, base_model=base_model, license=license,
            tokenizer_in_repo=(out / "tokenizer_config.json").is_file()))
        _refuse_secrets(out, secrets)
        files = _listing(out)
    return Staged(files, left_out)


def _resolve_corpus(path: str | os.PathLike, npz: str | os.PathLike | None) -> tuple[Path, Optional[Path]]:
    p = Path(path)
    if p.is_dir():
        parquets = sorted(p.rglob("*.parquet"))
        if len(parquets) != 1:
            raise ValueError(f"{p} must hold exactly one .parquet file, found {len(parquets)}")
        npzs = sorted(p.rglob("*.npz"))
        if npz is None and len(npzs) > 1:
            raise ValueError(f"{p} holds {len(npzs)} .npz files; name one with npz=...")
        return parquets[0], Path(npz) if npz else (npzs[0] if npzs else None)
    if not p.is_file():
        raise FileNotFoundError(f"no such corpus file or folder: {p}")
    if p.suffix != ".parquet":
        raise ValueError(f"corpus file must be a .parquet, got {p.name}")
    if npz is None and p.with_suffix(".npz").is_file():
        npz = p.with_suffix(".npz")
    return p, Path(npz) if npz else None


def stage_corpus(path: str | os.PathLike, out_dir: str | os.PathLike, repo_id: str, *,
                 npz: str | os.PathLike | None = None, license: str = "mit",
                 secrets: Sequence[str] = ()) -> Staged:
    """Write everything :func:`~mrgrpo.ops.hub.push.push_corpus` would upload into ``out_dir``.

    ``path`` is a ``.parquet`` file (its sibling ``.npz`` of the same stem is
    taken along) or a folder holding one ``.parquet`` and at most one ``.npz``;
    nothing else in the folder is uploaded.

    Raises
    ------
    ValueError
        If the Parquet lacks the released schema's key columns, or the ``.npz``
        has no ``rewards_m{m}`` array.
    """
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    from mrgrpo.corpus.io import PARQUET_META_KEY

    check_repo_id(repo_id)
    parquet, npz_path = _resolve_corpus(path, npz)
    frame = pd.read_parquet(parquet)
    missing = [c for c in REQUIRED_CORPUS_COLUMNS if c not in frame.columns]
    if not any(k in frame.columns for k in PROMPT_KEYS):
        missing.append(" or ".join(PROMPT_KEYS))
    if not any(k in frame.columns for k in GROUP_KEYS):
        missing.append(" or ".join(GROUP_KEYS))
    if missing:
        raise ValueError(f"{parquet.name} is not in the released rollout schema: missing column(s) "
                         f"{', '.join(missing)} (have {', '.join(map(str, frame.columns))})")
    if frame.empty:
        raise ValueError(f"{parquet.name} has no rows")
    raw_meta = (pq.read_schema(parquet).metadata or {}).get(PARQUET_META_KEY)
    corpus_meta = json.loads(raw_meta) if raw_meta else None
    arrays = None
    if npz_path is not None:
        if not npz_path.is_file():
            raise FileNotFoundError(f"no such .npz: {npz_path}")
        with np.load(npz_path, allow_pickle=False) as z:
            arrays = {k: z[k].shape for k in z.files}
        rewards = [k for k in arrays if k.startswith("rewards")]
        if not rewards:
            raise ValueError(f"{npz_path.name} has no rewards array (expected rewards_m{{m}} of "
                             "shape (P, K, m, R))")
        bad = [k for k in rewards if len(arrays[k]) != 4]
        if bad:
            raise ValueError(f"{npz_path.name}: {bad[0]} has shape {arrays[bad[0]]}, "
                             "expected (P, K, m, R)")
    taken = {parquet.resolve(), *([npz_path.resolve()] if npz_path else [])}
    left_out = sorted(str(p.relative_to(path)) for p in Path(path).rglob("*")
                      if p.is_file() and p.resolve() not in taken) if Path(path).is_dir() else []
    if Path(path).is_dir():
        _check_inside(Path(path), [parquet, *([npz_path] if npz_path else [])])
    _check_empty(out_dir)
    with atomic_folder(out_dir) as out:
        (out / "data").mkdir()
        shutil.copy2(parquet, out / "data" / "train.parquet")
        if npz_path is not None:
            shutil.copy2(npz_path, out / npz_path.name)
        (out / "README.md").write_text(dataset_card(
            frame, repo_id=repo_id, npz_arrays=arrays, npz_name=npz_path.name if npz_path else None,
            corpus_meta=corpus_meta, license=license))
        _refuse_secrets(out, secrets)
        files = _listing(out)
    return Staged(files, left_out)
