"""Share a trained adapter or a rollout corpus on the Hugging Face Hub.

Two steps each, so that a dry run is exactly the upload minus the network:
*stage* writes every file that would be uploaded into a folder (with a generated
card as ``README.md``), *push* creates the repo and uploads that folder with
``huggingface_hub.HfApi.create_repo`` + ``upload_folder``.

Run directory read by :func:`read_run_dir` (what :mod:`mrgrpo.train` writes under
``GRPOConfig.out_dir``; every file is optional except the adapter)::

    config.json        the GRPOConfig as a dict (else checkpoints/<latest>/state.json["config"])
    metrics.csv        one row per step: "step", "reward/<channel>", "kl", ... (else metrics.json,
                       a list of the same records)
    eval.csv           one row per evaluation: "step", one column per channel, ... (else eval.json)
    adapter/           model.save_pretrained(): adapter_config.json + weights (+ tokenizer);
                       or the run dir itself holds adapter_config.json
    training_curve.png optional; else drawn from the "reward/*" columns of the metrics

Model repo layout: the adapter files at the top (``PeftModel.from_pretrained(repo)``
works), ``README.md``, ``training_curve.png`` and ``training/`` (config and the
metrics/eval tables). Dataset repo layout (the released corpora's):
``data/train.parquet``, the ``.npz`` at the top, ``README.md``.

The card builders (:func:`model_card`, :func:`dataset_card`) take plain dicts
and DataFrames, so they do not depend on the trainer's exact file layout.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

__all__ = ["RunFiles", "PushResult", "read_run_dir", "model_card", "dataset_card",
           "training_curve_figure", "stage_adapter", "stage_corpus", "push_adapter",
           "push_corpus", "REQUIRED_CORPUS_COLUMNS"]

#: Columns every rollout Parquet must have (both released schemas share them,
#: plus one prompt key and one group-size column, checked separately).
REQUIRED_CORPUS_COLUMNS = ("model", "seed_idx", "rollout_idx")
_PROMPT_KEYS = ("prompt_idx", "scenario_id")
_GROUP_KEYS = ("group_size_m_max", "group_size_m")
#: Never uploaded from a run or adapter folder: resumable training state.
_SKIP = {"checkpoints", "optimizer.pt", "scheduler.pt", "rng.pt", "trainable.pt",
         "training_args.bin", ".ipynb_checkpoints", "__pycache__"}
_CURVE_NAMES = ("training_curve.png", "training_curve.jpg", "curve.png")
_MODE_TEXT = {
    "na": "NA (normalize each reward channel within the group, then aggregate with the weights)",
    "an": "AN (aggregate the channels with the weights, then normalize within the group)",
    "single": "single (one reward channel, normalized within the group)",
}


# ----------------------------------------------------------------------------- reading
@dataclass
class RunFiles:
    """What :func:`read_run_dir` found. DataFrames are None when the file is absent."""

    run_dir: Path
    adapter_dir: Path
    config: dict = field(default_factory=dict)
    metrics: Any = None
    eval_table: Any = None
    curve_image: Optional[Path] = None
    provenance: list[Path] = field(default_factory=list)


def _read_table(run_dir: Path, stem: str):
    import pandas as pd

    csv, js = run_dir / f"{stem}.csv", run_dir / f"{stem}.json"
    if csv.is_file():
        return pd.read_csv(csv), csv
    if js.is_file():
        data = json.loads(js.read_text())
        if isinstance(data, list):
            return pd.DataFrame(data), js
        if isinstance(data, dict) and isinstance(data.get("history"), list):
            return pd.DataFrame(data["history"]), js
    return None, None


def _read_config(run_dir: Path) -> tuple[dict, Optional[Path]]:
    cfg = run_dir / "config.json"
    if cfg.is_file():
        return json.loads(cfg.read_text()), cfg
    ckpts = run_dir / "checkpoints"
    latest = ckpts / "latest"
    candidates = []
    if latest.is_file():
        candidates.append(ckpts / latest.read_text().strip() / "state.json")
    if ckpts.is_dir():
        candidates += sorted(ckpts.glob("checkpoint-*/state.json"), reverse=True)
    for state in candidates:
        if state.is_file():
            return dict(json.loads(state.read_text()).get("config") or {}), None
    return {}, None


def read_run_dir(run_dir: str | os.PathLike) -> RunFiles:
    """Read a training run folder (layout in the module docstring).

    Raises
    ------
    FileNotFoundError
        If the folder or its adapter (``adapter_config.json`` or a full model's
        ``config.json`` with weights) is missing.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"run folder {run} does not exist")
    adapter = run / "adapter" if (run / "adapter").is_dir() else run
    weights = [p for p in adapter.iterdir()
               if p.suffix in (".safetensors", ".bin") and p.name not in _SKIP]
    if not ((adapter / "adapter_config.json").is_file() and weights):
        raise FileNotFoundError(f"no adapter in {run}: expected adapter/adapter_config.json and "
                                "adapter weights (*.safetensors or *.bin)")
    config, cfg_path = _read_config(run)
    metrics, m_path = _read_table(run, "metrics")
    evals, e_path = _read_table(run, "eval")
    curve = next((run / n for n in _CURVE_NAMES if (run / n).is_file()), None)
    prov = [p for p in (cfg_path, m_path, e_path) if p is not None]
    # the other format of each table travels too
    for stem in ("metrics", "eval"):
        for ext in (".csv", ".json"):
            p = run / f"{stem}{ext}"
            if p.is_file() and p not in prov:
                prov.append(p)
    return RunFiles(run_dir=run, adapter_dir=adapter, config=config, metrics=metrics,
                    eval_table=evals, curve_image=curve, provenance=prov)


# ----------------------------------------------------------------------------- cards
def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return "—"
        return f"{v:.4g}" if abs(v) < 1e-3 or abs(v) >= 1e4 else f"{v:.4f}".rstrip("0").rstrip(".")
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    return str(v).replace("|", "\\|").replace("\n", " ")


def markdown_table(df, max_rows: int = 20) -> str:
    """A GitHub-flavoured Markdown table of a DataFrame (the last ``max_rows`` rows)."""
    if len(df) > max_rows:
        df = df.tail(max_rows)
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(["---"] * len(cols)) + "|"]
    for row in df.itertuples(index=False):
        vals = [v.item() if hasattr(v, "item") else v for v in row]
        lines.append("| " + " | ".join(_fmt(v) for v in vals) + " |")
    return "\n".join(lines)


def _yaml_value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_yaml_value(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML scalar


def _front_matter(meta: Mapping[str, Any]) -> str:
    lines = ["---"]
    for k, v in meta.items():
        if v is None:
            continue
        if isinstance(v, list) and v and isinstance(v[0], Mapping):
            lines.append(f"{k}:")
            for item in v:
                first = True
                for ik, iv in item.items():
                    if isinstance(iv, list) and iv and isinstance(iv[0], Mapping):
                        lines.append(f"{'- ' if first else '  '}{ik}:")
                        for sub in iv:
                            sub_first = True
                            for sk, sv in sub.items():
                                lines.append(f"  {'- ' if sub_first else '  '}{sk}: {_yaml_value(sv)}")
                                sub_first = False
                    else:
                        lines.append(f"{'- ' if first else '  '}{ik}: {_yaml_value(iv)}")
                    first = False
        else:
            lines.append(f"{k}: {_yaml_value(v)}")
    lines.append("---")
    return "\n".join(lines)


def _reward_columns(metrics) -> list[str]:
    return [c for c in metrics.columns if str(c).startswith("reward/")]


def training_curve_figure(metrics, path: str | os.PathLike | None = None, window: int = 10):
    """Per-channel mean reward against step (raw and a ``window``-step moving average).

    Parameters
    ----------
    metrics : pandas.DataFrame
        One row per step with a ``step`` column (or index) and ``reward/<channel>`` columns.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cols = _reward_columns(metrics)
    if not cols:
        raise ValueError("metrics has no 'reward/<channel>' columns to plot")
    steps = metrics["step"] if "step" in metrics.columns else metrics.index
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for c in cols:
        line, = ax.plot(steps, metrics[c], alpha=0.3, lw=1)
        ax.plot(steps, metrics[c].rolling(window, min_periods=1).mean(), color=line.get_color(),
                lw=2, label=c.split("/", 1)[1])
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("mean reward in the batch")
    ax.set_title(f"training curve (thick: {window}-step moving average)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def model_card(config: Mapping[str, Any], *, repo_id: str, metrics=None, eval_table=None,
               curve_image: Optional[str] = None, base_model: Optional[str] = None,
               license: str = "mit", last_k: int = 30, tokenizer_in_repo: bool = True) -> str:
    """The ``README.md`` of an adapter repo: YAML front matter, settings, eval table, curve.

    Parameters
    ----------
    config
        Training settings (``GRPOConfig.to_dict()`` keys: ``model``, ``mode``,
        ``weights``, ``n_steps``, ``seed`` or ``seeds``, ``m``, ``lr``, ...).
    metrics, eval_table : pandas.DataFrame, optional
        Per-step metrics and per-evaluation rows.
    curve_image
        Path of the curve image inside the repo (linked from the card).
    tokenizer_in_repo
        Whether the repo carries tokenizer files (else the snippet loads the base's).
    """
    base = base_model or config.get("model")
    if not base:
        raise ValueError("the card needs the base model: config['model'] or base_model=...")
    if os.path.isabs(str(base)) or str(base).startswith("."):
        base_label, base_meta = Path(str(base)).name, None   # a local path is no Hub id
    else:
        base_label, base_meta = str(base), str(base)
    mode = str(config.get("mode", "?")).lower()
    seeds = config.get("seeds", config.get("seed"))
    meta = {"base_model": base_meta, "library_name": "peft", "license": license,
            "pipeline_tag": "text-generation",
            "tags": ["mrgrpo", "grpo", "multi-reward-grpo", "lora", f"advantage-{mode}"]}
    name = repo_id.split("/")[-1]
    out = [_front_matter(meta), "", f"# {name}", "",
           f"A LoRA adapter for `{base_label}` trained with multi-reward GRPO using the "
           f"{_MODE_TEXT.get(mode, mode)} advantage, made with the `mrgrpo` package "
           "(companion to *When and Why Decoupling and Conditioning Beat Reweighting in "
           "Multi-Reward GRPO*).", "", "## Training", "",
           "| setting | value |", "|---|---|"]
    rows = [("base model", base_label), ("advantage mode", mode), ("weights", config.get("weights")),
            ("conditioning", config.get("conditioning")), ("steps", config.get("n_steps")),
            ("group size m", config.get("m")), ("prompts per step", config.get("batch_prompts")),
            ("learning rate", config.get("lr")), ("KL coefficient", config.get("kl_coef")),
            ("LoRA r / alpha", (f"{config['lora_r']} / {config['lora_alpha']}"
                                if "lora_r" in config and "lora_alpha" in config else None)),
            ("temperature", config.get("temperature")), ("seeds" if isinstance(seeds, (list, tuple))
                                                         else "seed", seeds)]
    if metrics is not None and len(metrics):
        last_step = metrics["step"].max() if "step" in metrics.columns else len(metrics)
        rows.append(("steps logged", int(last_step)))
    out += [f"| {k} | {_fmt(v)} |" for k, v in rows if v is not None]
    out += ["", "## Evaluation", ""]
    if eval_table is not None and len(eval_table):
        out += ["Mean reward per channel at each evaluation of the run (its eval table):", "",
                markdown_table(eval_table), ""]
    else:
        out += ["No evaluation was recorded for this run.", ""]
    out += ["## Training curve", ""]
    if curve_image:
        out += [f"![training curve]({curve_image})", ""]
    if metrics is not None and len(metrics) and _reward_columns(metrics):
        tail = metrics.tail(last_k)
        out += [f"Mean ± standard deviation of the per-step batch reward over the last "
                f"{len(tail)} steps (training-curve dispersion within this run, not a "
                "held-out score):", "", "| channel | mean | std |", "|---|---|---|"]
        for c in _reward_columns(metrics):
            out.append(f"| {c.split('/', 1)[1]} | {_fmt(float(tail[c].mean()))} | "
                       f"{_fmt(float(tail[c].std(ddof=1)) if len(tail) > 1 else float('nan'))} |")
        out.append("")
    elif not curve_image:
        out += ["No training metrics were recorded.", ""]
    out += ["## Use", "", "```python", "from peft import PeftModel",
            "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
            f'tokenizer = AutoTokenizer.from_pretrained("{repo_id if tokenizer_in_repo else base_label}")',
            f'model = AutoModelForCausalLM.from_pretrained("{base_label}")',
            f'model = PeftModel.from_pretrained(model, "{repo_id}")', "```", "",
            "The training settings and per-step metrics are in `training/`.", ""]
    return "\n".join(out)


def dataset_card(frame, *, repo_id: str, parquet_path: str = "data/train.parquet",
                 npz_arrays: Optional[Mapping[str, tuple]] = None, npz_name: Optional[str] = None,
                 corpus_meta: Optional[Mapping[str, Any]] = None, license: str = "mit") -> str:
    """The ``README.md`` of a rollout-corpus dataset repo.

    Parameters
    ----------
    frame : pandas.DataFrame
        The Parquet's rows (columns and dtypes are listed; sizes are counted).
    npz_arrays
        ``{name: shape}`` of the arrays in the ``.npz``.
    corpus_meta
        The ``mrgrpo.corpus`` Parquet metadata (reward names, ``m_grid``, ...), if any.
    """
    meta = {"license": license, "pretty_name": repo_id.split("/")[-1],
            "tags": ["mrgrpo", "grpo", "multi-reward-grpo", "rollouts"],
            "configs": [{"config_name": "default",
                         "data_files": [{"split": "train", "path": parquet_path}]}]}
    cm = dict(corpus_meta or {})
    prompt_key = next((k for k in _PROMPT_KEYS if k in frame.columns), None)
    n_prompts = int(frame[prompt_key].nunique()) if prompt_key else None
    n_seeds = int(frame["seed_idx"].nunique()) if "seed_idx" in frame.columns else None
    gcol = next((k for k in _GROUP_KEYS if k in frame.columns), None)
    m_max = int(frame[gcol].max()) if gcol and len(frame) else None
    models = sorted(map(str, frame["model"].unique())) if "model" in frame.columns else []
    out = [_front_matter(meta), "", f"# {repo_id.split('/')[-1]}", "",
           "Scored rollouts for multi-reward GRPO analysis, written with the `mrgrpo` package: "
           "groups of `m` completions of one prompt under one seed, each scored on several "
           "reward channels.", "", "## Contents", "",
           "| | |", "|---|---|", f"| rows (rollouts) | {len(frame)} |"]
    if n_prompts is not None:
        out.append(f"| prompts P | {n_prompts} |")
    if n_seeds is not None:
        out.append(f"| seeds K | {n_seeds} |")
    if m_max is not None:
        out.append(f"| group size (largest m) | {m_max} |")
    if cm.get("m_grid"):
        out.append(f"| m grid | {_fmt(cm['m_grid'])} |")
    if cm.get("reward_names"):
        out.append(f"| reward channels | {_fmt(cm['reward_names'])} |")
    if models:
        out.append(f"| model(s) | {_fmt(models)} |")
    if cm.get("backend_name"):
        out.append(f"| backend | {_fmt(cm['backend_name'])} |")
    out += ["", f"## `{parquet_path}`", "", "| column | dtype |", "|---|---|"]
    out += [f"| {c} | {frame[c].dtype} |" for c in frame.columns]
    if npz_arrays:
        out += ["", f"## `{npz_name}`", "", "| array | shape |", "|---|---|"]
        out += [f"| {k} | {tuple(v)} |" for k, v in npz_arrays.items()]
    out += ["", "## Load", "", "```python", "import pandas as pd",
            f'df = pd.read_parquet("hf://datasets/{repo_id}/{parquet_path}")', "```", ""]
    if npz_name:
        out += ["The `.npz` holds the same rewards as `(P, K, m, R)` tensors for the Theorem-3 "
                "harness (`mrgrpo.analysis.analyze`).", ""]
    return "\n".join(out)


# ----------------------------------------------------------------------------- staging
def _fresh_dir(out_dir: str | os.PathLike) -> Path:
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"staging folder {out} exists and is not empty; give a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _check_repo_id(repo_id: str) -> None:
    parts = repo_id.split("/") if repo_id else []
    if len(parts) != 2 or not all(parts) or any(c.isspace() for c in repo_id):
        raise ValueError(f"repo id must look like 'owner/name', got {repo_id!r}")


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def stage_adapter(run_dir: str | os.PathLike, out_dir: str | os.PathLike, repo_id: str, *,
                  base_model: Optional[str] = None, license: str = "mit") -> list[str]:
    """Write everything :func:`push_adapter` would upload into ``out_dir``; return the file list."""
    _check_repo_id(repo_id)
    run = read_run_dir(run_dir)
    out = _fresh_dir(out_dir)
    for p in sorted(run.adapter_dir.iterdir()):
        if p.name in _SKIP or p.name == "adapter" or p.is_dir():
            continue
        if run.adapter_dir == run.run_dir and p in run.provenance or p.name in _CURVE_NAMES:
            continue
        shutil.copy2(p, out / p.name)
    (out / "training").mkdir()
    for p in run.provenance:
        shutil.copy2(p, out / "training" / p.name)
    if run.config and not (out / "training" / "config.json").exists():
        (out / "training" / "config.json").write_text(json.dumps(run.config, indent=1))
    curve = None
    if run.curve_image is not None:
        curve = run.curve_image.name
        shutil.copy2(run.curve_image, out / curve)
    elif run.metrics is not None and len(run.metrics) and _reward_columns(run.metrics):
        import matplotlib.pyplot as plt

        curve = "training_curve.png"
        plt.close(training_curve_figure(run.metrics, out / curve))
    (out / "README.md").write_text(model_card(
        run.config, repo_id=repo_id, metrics=run.metrics, eval_table=run.eval_table,
        curve_image=curve, base_model=base_model, license=license,
        tokenizer_in_repo=(out / "tokenizer_config.json").is_file()))
    return _listing(out)


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
                 npz: str | os.PathLike | None = None, license: str = "mit") -> list[str]:
    """Write everything :func:`push_corpus` would upload into ``out_dir``; return the file list.

    ``path`` is a ``.parquet`` file (its sibling ``.npz`` of the same stem is
    taken along) or a folder holding one ``.parquet`` and at most one ``.npz``.

    Raises
    ------
    ValueError
        If the Parquet lacks the released schema's key columns, or the ``.npz``
        has no ``rewards_m{m}`` array.
    """
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    _check_repo_id(repo_id)
    parquet, npz_path = _resolve_corpus(path, npz)
    frame = pd.read_parquet(parquet)
    missing = [c for c in REQUIRED_CORPUS_COLUMNS if c not in frame.columns]
    if not any(k in frame.columns for k in _PROMPT_KEYS):
        missing.append(" or ".join(_PROMPT_KEYS))
    if not any(k in frame.columns for k in _GROUP_KEYS):
        missing.append(" or ".join(_GROUP_KEYS))
    if missing:
        raise ValueError(f"{parquet.name} is not in the released rollout schema: missing column(s) "
                         f"{', '.join(missing)} (have {', '.join(map(str, frame.columns))})")
    if frame.empty:
        raise ValueError(f"{parquet.name} has no rows")
    raw_meta = (pq.read_schema(parquet).metadata or {}).get(b"mrgrpo.corpus")
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
    out = _fresh_dir(out_dir)
    (out / "data").mkdir()
    shutil.copy2(parquet, out / "data" / "train.parquet")
    if npz_path is not None:
        shutil.copy2(npz_path, out / npz_path.name)
    (out / "README.md").write_text(dataset_card(
        frame, repo_id=repo_id, npz_arrays=arrays, npz_name=npz_path.name if npz_path else None,
        corpus_meta=corpus_meta, license=license))
    return _listing(out)


# ----------------------------------------------------------------------------- pushing
@dataclass
class PushResult:
    repo_id: str
    repo_type: str
    folder: Path
    files: list[str]
    uploaded: bool
    url: Optional[str] = None


def _token(token: Optional[str]) -> Optional[str]:
    if token:
        return token
    if os.environ.get("HF_TOKEN"):
        return os.environ["HF_TOKEN"]
    env = Path(".env")
    if env.is_file():
        for line in env.read_text().splitlines():
            line = line.strip().removeprefix("export ").strip()
            if line.startswith("HF_TOKEN="):
                return line.split("=", 1)[1].strip().strip('"').strip("'") or None
    return None  # HfApi falls back to a cached `huggingface-cli login`


def _push(stage_fn, repo_type: str, repo_id: str, dry_run, api, token, private,
          commit_message) -> PushResult:
    if dry_run is not None:
        files = stage_fn(dry_run)
        return PushResult(repo_id, repo_type, Path(dry_run), files, uploaded=False)
    if api is None:
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
        if offline in ("1", "true", "yes", "on"):
            raise RuntimeError("HF_HUB_OFFLINE is set, so nothing can be uploaded: unset it "
                               "(the Makefile sets it for tests) or use --dry-run OUT")
        from huggingface_hub import HfApi

        api = HfApi(token=_token(token))
    with tempfile.TemporaryDirectory(prefix="mrgrpo-hub-") as tmp:
        folder = Path(tmp) / "upload"
        files = stage_fn(folder)
        api.create_repo(repo_id=repo_id, repo_type=repo_type, private=private, exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type,
                                 commit_message=commit_message)
    url = getattr(info, "commit_url", None) or (str(info) if info is not None else None)
    return PushResult(repo_id, repo_type, folder, files, uploaded=True, url=url)


def push_adapter(run_dir: str | os.PathLike, repo_id: str, *, dry_run: str | os.PathLike | None = None,
                 private: bool = False, token: Optional[str] = None, api=None,
                 base_model: Optional[str] = None, license: str = "mit",
                 commit_message: str = "Upload adapter with mrgrpo") -> PushResult:
    """Upload a trained adapter with a generated model card to the model repo ``repo_id``.

    With ``dry_run=OUT`` the files are written to ``OUT`` and nothing is uploaded.
    ``api`` (an ``HfApi``-like object) is for tests; the token comes from
    ``token``, ``$HF_TOKEN``, ``HF_TOKEN`` in ``.env`` or a cached login.
    """
    return _push(lambda out: stage_adapter(run_dir, out, repo_id, base_model=base_model,
                                           license=license),
                 "model", repo_id, dry_run, api, token, private, commit_message)


def push_corpus(path: str | os.PathLike, repo_id: str, *, npz: str | os.PathLike | None = None,
                dry_run: str | os.PathLike | None = None, private: bool = False,
                token: Optional[str] = None, api=None, license: str = "mit",
                commit_message: str = "Upload rollout corpus with mrgrpo") -> PushResult:
    """Upload a rollout corpus (Parquet + npz) with a dataset card to the dataset repo ``repo_id``."""
    return _push(lambda out: stage_corpus(path, out, repo_id, npz=npz, license=license),
                 "dataset", repo_id, dry_run, api, token, private, commit_message)
