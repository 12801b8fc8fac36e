"""Training runs stored as run folders, read back as one comparison.

Long runs (a real LM on a CPU) are trained one folder at a time with ``mrgrpo train
--out DIR`` (checkpointed, resumable) and analysed later: :func:`load_runs` reads every
run folder under a directory (its config, per-step metrics, evaluations and evaluated
replies, through :mod:`mrgrpo.train.checkpoint`'s readers) and returns the same
:class:`~mrgrpo.train.experiment.Comparison` that :func:`~mrgrpo.train.experiment.compare_estimators`
builds in memory, so the Tier-3 chapter renders either.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from mrgrpo.core.files import atomic_folder

from .checkpoint import TABLES, RunLayout, read_run_config, read_run_info, read_run_table, write_run_config
from .experiment import MODE_LABELS, Comparison

__all__ = ["load_runs", "describe_runs", "run_times", "machine_versions", "export_records"]


def _records(run: Path, stem: str) -> list[dict]:
    records, _ = read_run_table(run, stem)
    if not records:
        raise ValueError(f"{run} has no {stem} records; is it a finished run folder?")
    return records


def _rescored(replies: Any, reward_fn: Any, channels: list[str]) -> Any:
    """``replies`` with each channel recomputed by ``reward_fn(completion, prompt)`` from the stored text."""
    names = list(getattr(reward_fn, "channel_names", ()))
    if names != channels:
        raise ValueError(f"the rescoring reward's channels {names} are not the runs' {channels}")
    scores = [reward_fn(c, p) for c, p in zip(replies["completion"], replies["prompt"])]
    out = replies.copy()
    for i, name in enumerate(channels):
        out[name] = [float(r[i]) for r in scores]
    return out


def _eval_record(replies: Any, channels: list[str], weights: list[float]) -> dict:
    """The held-out means of one evaluation, recomputed from its replies (as the trainer computes them)."""
    import numpy as np

    r = replies[channels].to_numpy(float)
    return {**{c: float(v) for c, v in zip(channels, r.mean(axis=0))},
            "aggregate": float((r @ np.asarray(weights, dtype=float)).mean())}


def load_runs(runs_dir: str | os.PathLike, *, reward_fn: Any = None, base_task: str | None = None) -> Comparison:
    """Every run folder under ``runs_dir`` as ``(evals, curves, untrained, samples)``.

    Each folder must hold a finished run that evaluated the untrained policy first (as
    ``mrgrpo train`` does when it has held-out prompts): its first evaluation (step 0)
    is the untrained policy, its last the trained one.

    Runs that share a held-out prompt set (a *split*: ``mrgrpo train --data-seed``, by
    default the run's seed) must agree on the untrained evaluation; each split's untrained
    replies enter ``samples`` once (``mode == "untrained"``, ``seed`` the split's first run's
    seed), so modes are compared prompt by prompt within each split. ``untrained`` is the
    mean of the splits' untrained evaluations (equal weights: every split has the same
    number of prompts, else the runs are refused).

    A run is labelled by its mode (:data:`~mrgrpo.train.experiment.MODE_LABELS`); a run
    trained on another task than ``base_task`` (default: the folder's most common task) is
    labelled ``"<mode>, <task>"`` (``"NA, fintech-ungated"``), so arms that differ in their
    reward stay apart.

    Parameters
    ----------
    runs_dir : path
    reward_fn : callable, optional
        Score every evaluated reply again with ``reward_fn(completion, prompt_text)`` (its
        ``channel_names`` must be the runs'), and recompute the evaluations from them: arms
        trained on different rewards are then compared on one. A reward that needs more than
        the prompt's text (a math answer key) cannot rescore.

    Raises
    ------
    ValueError
        No run folders, a run without evaluations, runs of one split that disagree on the
        untrained policy, or splits of different sizes.
    """
    import pandas as pd

    root = Path(runs_dir)
    runs = sorted(p for p in root.iterdir() if p.is_dir() and read_run_config(p)[0]) if root.is_dir() else []
    if not runs:
        raise ValueError(f"no run folders under {root}")
    tasks = {run: (read_run_info(run) or {}).get("task") for run in runs}
    common = base_task if base_task is not None else Counter(tasks.values()).most_common(1)[0][0]
    evals, curves, samples, splits = [], [], [], {}
    for run in runs:
        cfg = read_run_config(run)[0]
        label, seed = MODE_LABELS[cfg["mode"]], int(cfg["seed"])
        if tasks[run] != common:
            label = f"{label}, {tasks[run]}"
        ev = _records(run, "eval")
        if ev[0]["step"] != 0 or len(ev) < 2:
            raise ValueError(f"{run}: expected an untrained evaluation (step 0) and a final one, got steps "
                             f"{[r['step'] for r in ev]}")
        keys = [k for k in ev[0] if k not in ("step", "completion_len", "truncated_frac")]
        replies = pd.DataFrame(_records(run, "eval_samples"))
        first, last = replies["step"].min(), replies["step"].max()
        if reward_fn is not None:
            channels = [k for k in keys if k != "aggregate"]
            replies = _rescored(replies, reward_fn, channels)
            ev = [{**ev[0], **_eval_record(replies[replies["step"] == first], channels, cfg["weights"])},
                  {**ev[-1], **_eval_record(replies[replies["step"] == last], channels, cfg["weights"])}]
        split = frozenset(replies.loc[replies["step"] == first, "prompt"])
        base = {k: float(ev[0][k]) for k in keys}
        if split not in splits:
            splits[split] = (run, base)
            samples.append(replies[replies["step"] == first].assign(mode="untrained", seed=seed))
        else:
            seen_run, seen = splits[split]
            if any(abs(seen[k] - base[k]) > 1e-9 for k in keys):
                raise ValueError(f"{run}: its untrained evaluation differs from {seen_run.name}'s on the same held-out "
                                 f"prompts ({base} vs {seen}); the runs do not share a model and evaluation settings")
        evals.append({"mode": label, "seed": seed, **{k: float(ev[-1][k]) for k in keys}})
        curve = pd.DataFrame(_records(run, "metrics"))
        curve["mode"], curve["seed"] = label, seed
        curves.append(curve)
        samples.append(replies[replies["step"] == last].assign(mode=label, seed=seed))
    sizes = {len(split) for split in splits}
    if len(sizes) > 1:
        raise ValueError(f"the runs' held-out prompt sets differ in size ({sorted(sizes)}); evaluate every run on "
                         "the same number of prompts")
    bases = [base for _, base in splits.values()]
    untrained = {k: sum(b[k] for b in bases) / len(bases) for k in bases[0]}
    return Comparison(pd.DataFrame(evals), pd.concat(curves, ignore_index=True), untrained,
                      pd.concat(samples, ignore_index=True))


def describe_runs(runs_dir: str | os.PathLike) -> Any:
    """One row per stored run: mode, seed, steps, model, task and the settings that define it (a DataFrame).

    ``eval temperature`` 0 means greedy held-out replies.
    """
    import pandas as pd

    rows = []
    for run in sorted(Path(runs_dir).iterdir()):
        cfg = read_run_config(run)[0] if run.is_dir() else {}
        if not cfg:
            continue
        info = read_run_info(run)
        rows.append({"run": run.name, "mode": MODE_LABELS[cfg["mode"]], "seed": cfg["seed"], "steps": cfg["n_steps"],
                     "model": cfg["model"], "task": info.get("task", "?"), "lr": cfg["lr"], "m": cfg["m"],
                     "prompts per step": cfg["batch_prompts"], "max new tokens": cfg["max_new_tokens"],
                     "temperature": cfg["temperature"], "LoRA r": cfg["lora_r"] if cfg.get("use_lora") else "no LoRA",
                     "eval temperature": cfg["eval_temperature"]})
    return pd.DataFrame(rows).set_index("run")


def run_times(comparison: Comparison) -> Any:
    """One row per run of :func:`load_runs`: how long its training steps took, and its replies' length.

    A step's ``step_time`` is wall-clock, so a step during which the run was paused or shared
    its core counts that time; the median step is the run's speed.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``(mode, seed)``; columns ``steps``, ``training-step time (s)``,
        ``median step (s)``, ``longest step (s)`` and ``mean reply tokens (trained)`` (the held-out
        replies of the run's last evaluation).
    """
    import pandas as pd

    replies = comparison.samples[comparison.samples["mode"] != "untrained"]
    last = replies[replies["step"] == replies.groupby(["mode", "seed"])["step"].transform("max")]
    tokens = last.groupby(["mode", "seed"])["n_tokens"].mean()
    rows = {}
    for key, run in comparison.curves.groupby(["mode", "seed"]):
        times = np.sort(run["step_time"].astype(float).to_numpy())
        rows[key] = {"steps": len(run), "training-step time (s)": times.sum(),
                     "median step (s)": times[len(times) // 2], "longest step (s)": times[-1],
                     "mean reply tokens (trained)": tokens.get(key, np.nan)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(["mode", "seed"])


def machine_versions() -> str:
    """What a stored-run card says of the machine that wrote it: torch, transformers, peft, Python, architecture."""
    import importlib.metadata
    import platform

    packages = ", ".join(f"{d} {importlib.metadata.version(d)}" for d in ("torch", "transformers", "peft"))
    return f"{packages}, Python {platform.python_version()}, {platform.machine()}"


def export_records(run_dir: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Copy a run's records, without its weights, into ``dest`` (a new folder).

    The records are the config and run settings (``config.json``, ``run_info.json``: from
    the run folder, or from its newest checkpoint when the run predates them) and the
    tables (metrics, evaluations, evaluated replies). What :func:`load_runs` reads, small
    enough to keep in a repository; the adapter and the checkpoints stay behind.
    """
    import shutil

    src, dest = RunLayout(Path(run_dir)), Path(dest)
    if dest.exists():
        raise ValueError(f"{dest} exists; export into a new folder")
    config, _ = read_run_config(src.root)
    if not config:
        raise ValueError(f"{src.root} holds no run config")
    info = read_run_info(src.root)
    with atomic_folder(dest) as tmp:  # the whole folder appears, or nothing
        write_run_config(tmp, config, info)
        for stem in TABLES:
            for f in src.table(stem):
                if f.is_file():
                    shutil.copyfile(f, tmp / f.name)
    return dest
