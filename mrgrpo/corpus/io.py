"""Corpus files: the Parquet schema of the paper's released rollouts, and ``.npz``.

Parquet (:func:`save_parquet`) uses the columns of the paper's released GSM8K
rollouts: ``model, prompt_idx, seed_idx, rollout_idx, group_size_m_max``, one
column per reward channel, ``raw_length, question, gold_answer,
gold_reasoning`` and, when present, ``completion``. With the three math channels
the channel columns are the released names ``correctness, length, format``.
Any other channel set is stored the same way, one float column per channel
named after the channel (``reward_<name>`` if the name collides with a fixed
column); the channel list, ``m_grid`` and the other corpus fields are kept as
JSON in the Parquet schema metadata under :data:`PARQUET_META_KEY`, so a file
written here round-trips exactly. Two extra columns are written: ``seed`` (the
integer seed of the group) and, for a corpus whose smaller groups are *not*
prefixes of the largest, ``group_size_m`` (then every group is stored). A
corpus made with ``subsample_from_max=True`` (and the released files) stores
only the ``max(m_grid)`` groups; smaller ``m`` are their leading prefixes.

``.npz`` (:func:`save_npz`) holds ``rewards_m{m}`` ``(P, K, m, R)`` and, when
every group has it, ``raw_length_m{m}`` ``(P, K, m)``, plus ``m_grid``,
``K_seeds``, ``n_prompts``, ``reward_names``, ``backend_name``, ``questions``,
``golds`` (string arrays; no pickles).

Every write is atomic (:func:`mrgrpo.core.files.atomic_path`): a reader, or a
kill mid-write, sees the previous file or the new one, never a torn one.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from mrgrpo.core.files import atomic_path
from mrgrpo.corpus.types import Corpus, Rollouts, pack_for_analysis, pack_raw_length
from mrgrpo.rewards.math import MATH_CHANNELS

__all__ = ["PARQUET_META_KEY", "PARQUET_FIXED_COLUMNS", "to_frame", "save_parquet", "load_parquet", "save_npz",
           "load_npz", "load_corpus", "save_corpus", "channel_columns", "corpus_from_frame"]

PARQUET_FIXED_COLUMNS = ("model", "prompt_idx", "seed_idx", "rollout_idx", "group_size_m_max",
                         "raw_length", "question", "gold_answer", "gold_reasoning", "completion",
                         "seed", "group_size_m", "n_tokens", "ended")
#: The one key under which a corpus's own fields live in the Parquet schema metadata.
PARQUET_META_KEY = b"mrgrpo.corpus"


def load_corpus(path) -> Corpus:
    """Read a corpus from ``.npz`` or ``.parquet`` (by suffix)."""
    path = Path(path)
    return load_parquet(path) if path.suffix == ".parquet" else load_npz(path)


def save_corpus(corpus: Corpus, path) -> Path:
    """Write a corpus as ``.npz`` or ``.parquet`` (by suffix)."""
    path = Path(path)
    return save_parquet(corpus, path) if path.suffix == ".parquet" else save_npz(corpus, path)


def to_frame(corpus: Corpus):
    """One row per stored rollout, in the released Parquet schema (a pandas DataFrame)."""
    import pandas as pd

    groups = corpus.stored_groups()
    if not groups:
        raise ValueError("the corpus has no rollouts")
    cols = channel_columns(corpus.reward_names)
    m_max = max(corpus.m_grid)
    sizes = np.array([g.m for g in groups])
    n = int(sizes.sum())
    rep = lambda vals: np.repeat(np.asarray(vals), sizes)  # noqa: E731
    info = [corpus.prompt_info(g.prompt_idx, g) for g in groups]
    data = {
        "model": np.full(n, corpus.backend_name, dtype=object),
        "prompt_idx": rep([g.prompt_idx for g in groups]).astype(np.int64),
        "seed_idx": rep([g.seed_idx for g in groups]).astype(np.int64),
        "rollout_idx": np.concatenate([np.arange(g.m) for g in groups]).astype(np.int64),
        "group_size_m_max": np.full(n, m_max, dtype=np.int64),
    }
    rewards = np.concatenate([g.rewards for g in groups], axis=0)
    for l, c in enumerate(cols):
        data[c] = rewards[:, l]
    data["raw_length"] = np.concatenate(
        [g.raw_length if g.raw_length is not None else np.full(g.m, np.nan) for g in groups])
    data["question"] = rep([i[0] for i in info]).astype(object)
    data["gold_answer"] = rep([i[1] for i in info]).astype(object)
    data["gold_reasoning"] = rep([i[2] for i in info]).astype(object)
    if any(g.completions is not None for g in groups):
        data["completion"] = np.array(
            [c for g in groups for c in (g.completions or [""] * g.m)], dtype=object)
    if all(g.n_tokens is not None for g in groups):
        data["n_tokens"] = np.concatenate([g.n_tokens for g in groups]).astype(np.int64)
    if all(g.ended is not None for g in groups):
        data["ended"] = np.concatenate([g.ended for g in groups]).astype(bool)
    data["seed"] = rep([g.seed for g in groups]).astype(np.int64)
    if not corpus.subsample_from_max:
        data["group_size_m"] = sizes.repeat(sizes).astype(np.int64)
    return pd.DataFrame(data)


def save_parquet(corpus: Corpus, path) -> Path:
    """Write the corpus as Parquet in the released schema (see the module docstring)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    table = pa.Table.from_pandas(to_frame(corpus), preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[PARQUET_META_KEY] = json.dumps({
        "reward_names": list(corpus.reward_names), "channel_columns": channel_columns(corpus.reward_names),
        "m_grid": corpus.m_grid, "K_seeds": corpus.K_seeds, "n_prompts": corpus.n_prompts,
        "backend_name": corpus.backend_name, "subsample_from_max": corpus.subsample_from_max,
    }).encode()
    with atomic_path(path) as tmp:
        pq.write_table(table.replace_schema_metadata(meta), tmp)
    return path


def load_parquet(path, reward_names: Optional[Sequence[str]] = None,
                 m_grid: Optional[Sequence[int]] = None) -> Corpus:
    """Read a corpus written by :meth:`save_parquet` or a released rollouts Parquet.

    Without the ``mrgrpo`` metadata, the channels are ``reward_names`` or, by
    default, the released math channels; ``m_grid`` defaults to the group
    size in the file, and smaller sizes are served as prefixes.
    """
    import pandas as pd
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such Parquet file: {path}")
    meta_raw = (pq.read_schema(path).metadata or {}).get(PARQUET_META_KEY)
    meta = json.loads(meta_raw) if meta_raw else {}
    df = pd.read_parquet(path)
    return corpus_from_frame(df, meta, reward_names, m_grid, source=str(path))



def save_npz(corpus: Corpus, path) -> Path:
    """Write ``rewards_m{m}`` ``(P, K, m, R)`` (and ``raw_length_m{m}``) for every ``m``."""
    path = Path(path)
    arrays: dict = {}
    for m in corpus.m_grid:
        arrays[f"rewards_m{m}"] = pack_for_analysis(corpus, m)
        rl = pack_raw_length(corpus, m)
        if rl is not None:
            arrays[f"raw_length_m{m}"] = rl
    first = {}
    for r in corpus.rollouts:
        first.setdefault(r.prompt_idx, r)
    q = [corpus.prompt_info(i, first[i]) if i in first else ("", "", "") for i in range(corpus.n_prompts)]
    arrays.update(
        m_grid=np.asarray(corpus.m_grid, dtype=np.int64), K_seeds=np.int64(corpus.K_seeds),
        n_prompts=np.int64(corpus.n_prompts), reward_names=np.asarray(corpus.reward_names, dtype=str),
        backend_name=np.asarray(corpus.backend_name, dtype=str),
        subsample_from_max=np.bool_(corpus.subsample_from_max),
        questions=np.asarray([x[0] for x in q], dtype=str), golds=np.asarray([x[1] for x in q], dtype=str),
    )
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return path


def load_npz(path) -> Corpus:
    """Read an ``.npz`` with ``rewards_m{m}`` keys (written here or released by the paper).

    Only plain arrays are read (``allow_pickle=False``): a file that stores
    Python objects, or that is not an ``.npz`` at all, is a ``ValueError`` that
    names the file and says what is wrong.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not an .npz corpus")
    if not path.exists():
        raise FileNotFoundError(f"no such .npz file: {path}")
    if not zipfile.is_zipfile(path):
        why = "it is empty" if path.stat().st_size == 0 else "it is not a zip archive (an .npz is one)"
        raise ValueError(f"{path} is not a readable .npz corpus ({why})")
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            loaded = {k: z[k] for k in keys}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ValueError(f"{path} stores Python objects, which mrgrpo never loads (they can run code); "
                             "write it again with plain arrays") from None
        raise ValueError(f"{path} is not a readable .npz corpus: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        why = "it is empty" if path.stat().st_size == 0 else f"{type(exc).__name__}: {exc}"
        raise ValueError(f"{path} is not a readable .npz corpus ({why})") from None
    ms = sorted(int(k[len("rewards_m"):]) for k in keys if k.startswith("rewards_m"))
    if not ms:
        raise ValueError(f"{path} has no rewards_m{{m}} arrays (keys: {keys})")
    rollouts = []
    shape0 = None
    for m in ms:
        t = np.asarray(loaded[f"rewards_m{m}"], dtype=float)
        if t.ndim != 4 or t.shape[2] != m:
            raise ValueError(f"rewards_m{m} must have shape (P, K, {m}, R), got {t.shape}")
        if shape0 is None:
            shape0 = t.shape
        elif (t.shape[0], t.shape[1], t.shape[3]) != (shape0[0], shape0[1], shape0[3]):
            raise ValueError(f"rewards_m{m} has shape {t.shape}, inconsistent with {shape0}")
        rl = loaded.get(f"raw_length_m{m}")
        for p in range(t.shape[0]):
            for k in range(t.shape[1]):
                rollouts.append(Rollouts(p, k, "", "", k, m, t[p, k],
                                         None if rl is None else np.asarray(rl[p, k], dtype=float)))
    P, K, _, R = shape0
    names = tuple(str(x) for x in np.asarray(loaded.get("reward_names", [])).tolist()) or \
        (MATH_CHANNELS if R == 3 else tuple(f"r{l}" for l in range(R)))
    qs = [str(x) for x in np.asarray(loaded["questions"]).tolist()] if "questions" in loaded else None
    gs = [str(x) for x in np.asarray(loaded["golds"]).tolist()] if "golds" in loaded else None
    prompts = None
    if qs is not None:
        prompts = [{"prompt": q, "gold": g} for q, g in zip(qs, gs or [""] * len(qs))]
        for r in rollouts:
            r.prompt, r.gold = prompts[r.prompt_idx]["prompt"], prompts[r.prompt_idx]["gold"]
    backend = str(np.asarray(loaded["backend_name"])) if "backend_name" in loaded else path.stem
    sub = bool(loaded["subsample_from_max"]) if "subsample_from_max" in loaded else False
    return Corpus(rollouts=rollouts, m_grid=ms, K_seeds=K, n_prompts=P, reward_names=names,
               backend_name=backend, subsample_from_max=sub, prompts=prompts)


def channel_columns(names: Sequence[str]) -> list:
    return [f"reward_{n}" if n in PARQUET_FIXED_COLUMNS else n for n in names]


def corpus_from_frame(df, meta: dict, reward_names, m_grid, source: str) -> Corpus:
    required = ("prompt_idx", "seed_idx", "rollout_idx")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{source} lacks the columns {missing}; columns present: {list(df.columns)}")
    if reward_names is not None:
        names = tuple(reward_names)
        cols = [c if c in df.columns else f"reward_{c}" for c in names]
    elif meta:
        names, cols = tuple(meta["reward_names"]), list(meta["channel_columns"])
    else:
        names, cols = MATH_CHANNELS, list(MATH_CHANNELS)
    absent = [c for c in cols if c not in df.columns]
    if absent:
        raise ValueError(f"{source} has no reward column(s) {absent}; pass reward_names= to name the "
                         f"channel columns (columns present: {list(df.columns)})")
    if "group_size_m" in df.columns:
        gm = df["group_size_m"].to_numpy(dtype=np.int64)
    elif "group_size_m_max" in df.columns:
        gm = df["group_size_m_max"].to_numpy(dtype=np.int64)
    else:
        gm = np.full(len(df), int(df["rollout_idx"].max()) + 1, dtype=np.int64)
    df = df.assign(_m=gm).sort_values(["_m", "prompt_idx", "seed_idx", "rollout_idx"], kind="stable")
    rewards_all = df[cols].to_numpy(dtype=float)
    bad = ~np.isfinite(rewards_all)
    if bad.any():
        i, l = np.argwhere(bad)[0]
        row = df.iloc[int(i)]
        raise ValueError(f"{source}: non-finite reward in channel {names[l]!r} at prompt_idx "
                         f"{row['prompt_idx']}, seed_idx {row['seed_idx']}, rollout_idx {row['rollout_idx']}")
    raw = df["raw_length"].to_numpy(dtype=float) if "raw_length" in df.columns else None
    comp = df["completion"].astype(str).tolist() if "completion" in df.columns else None
    seeds = df["seed"].to_numpy(dtype=np.int64) if "seed" in df.columns else None
    ntok = df["n_tokens"].to_numpy(dtype=np.int64) if "n_tokens" in df.columns else None
    ended = df["ended"].to_numpy(dtype=bool) if "ended" in df.columns else None
    pidx = df["prompt_idx"].to_numpy(dtype=np.int64)
    kidx = df["seed_idx"].to_numpy(dtype=np.int64)
    jidx = df["rollout_idx"].to_numpy(dtype=np.int64)
    m_sorted = df["_m"].to_numpy(dtype=np.int64)
    qcol = df["question"].astype(str).tolist() if "question" in df.columns else None
    gcol = df["gold_answer"].astype(str).tolist() if "gold_answer" in df.columns else None
    rcol = df["gold_reasoning"].astype(str).tolist() if "gold_reasoning" in df.columns else None
    # group boundaries: a new group wherever (m, prompt, seed) changes
    key_change = np.ones(len(df), dtype=bool)
    key_change[1:] = (np.diff(m_sorted) != 0) | (np.diff(pidx) != 0) | (np.diff(kidx) != 0)
    starts = np.flatnonzero(key_change)
    ends = np.append(starts[1:], len(df))
    rollouts, prompt_info = [], {}
    for s, e in zip(starts, ends):
        m = int(m_sorted[s])
        if e - s != m or not np.array_equal(jidx[s:e], np.arange(m)):
            raise ValueError(f"{source}: group (prompt_idx {pidx[s]}, seed_idx {kidx[s]}, m {m}) has rollout_idx "
                             f"{jidx[s:e].tolist()[:8]}..., expected 0..{m - 1}")
        p = int(pidx[s])
        if qcol is not None and p not in prompt_info:
            prompt_info[p] = {"prompt": qcol[s], "gold": gcol[s] if gcol else "",
                              "gold_reasoning": rcol[s] if rcol else ""}
        rl = None if raw is None or np.isnan(raw[s:e]).all() else raw[s:e]
        rollouts.append(Rollouts(
            prompt_idx=p, seed_idx=int(kidx[s]), prompt=qcol[s] if qcol else "", gold=gcol[s] if gcol else "",
            seed=int(seeds[s]) if seeds is not None else int(kidx[s]), m=m, rewards=rewards_all[s:e],
            raw_length=rl, completions=comp[s:e] if comp is not None else None,
            n_tokens=ntok[s:e] if ntok is not None else None, ended=ended[s:e] if ended is not None else None))
    m_stored = sorted({r.m for r in rollouts})
    sub = bool(meta.get("subsample_from_max", "group_size_m" not in df.columns))
    grid = list(m_grid) if m_grid is not None else list(meta.get("m_grid", m_stored))
    if not sub and any(m not in m_stored for m in grid):
        raise ValueError(f"{source} stores group sizes {m_stored}; m_grid {grid} asks for others")
    if sub and max(grid) > max(m_stored):
        raise ValueError(f"{source} stores groups of size {max(m_stored)}; m_grid {grid} asks for more")
    n_prompts = int(meta.get("n_prompts", int(pidx.max()) + 1))
    K = int(meta.get("K_seeds", int(kidx.max()) + 1))
    prompts = [prompt_info.get(i, {"prompt": "", "gold": ""}) for i in range(n_prompts)] if prompt_info else None
    backend = str(meta.get("backend_name", df["model"].iloc[0] if "model" in df.columns else Path(source).stem))
    if sub and max(grid) != max(m_stored):
        # serve the largest requested size from prefixes too
        grid = sorted(set(grid) | {max(m_stored)})
    return Corpus(rollouts=rollouts, m_grid=grid, K_seeds=K, n_prompts=n_prompts, reward_names=names,
                  backend_name=backend, subsample_from_max=sub, prompts=prompts)
