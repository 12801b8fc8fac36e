"""The cards of a Hub upload: a model card for an adapter, a dataset card for a rollout
corpus, and the training-curve figure. They take plain dicts and DataFrames, so they
do not depend on the trainer's file layout."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Optional

__all__ = ["card_cell", "markdown_table", "front_matter", "reward_columns",
           "training_curve_figure", "model_card", "dataset_card", "PROMPT_KEYS", "GROUP_KEYS"]

#: The prompt-key and group-size columns of the released rollout schemas (one of each).
PROMPT_KEYS = ("prompt_idx", "scenario_id")
GROUP_KEYS = ("group_size_m_max", "group_size_m")
_MODE_TEXT = {
    "na": "NA (normalize each reward channel within the group, then aggregate with the weights)",
    "an": "AN (aggregate the channels with the weights, then normalize within the group)",
    "single": "single (one reward channel, normalized within the group)",
}


def card_cell(v: Any) -> str:
    """One Markdown table cell: 4 significant figures, ``—`` for NaN/inf, ``|`` escaped."""
    if isinstance(v, float):
        if not math.isfinite(v):
            return "—"
        return f"{v:.4g}" if abs(v) < 1e-3 or abs(v) >= 1e4 else f"{v:.4f}".rstrip("0").rstrip(".")
    if isinstance(v, (list, tuple)):
        return ", ".join(card_cell(x) for x in v)
    return str(v).replace("|", "\\|").replace("\n", " ")


def markdown_table(df, max_rows: int = 20) -> str:
    """A GitHub-flavoured Markdown table of a DataFrame (the last ``max_rows`` rows)."""
    if len(df) > max_rows:
        df = df.tail(max_rows)
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(["---"] * len(cols)) + "|"]
    for row in df.itertuples(index=False):
        vals = [v.item() if hasattr(v, "item") else v for v in row]
        lines.append("| " + " | ".join(card_cell(v) for v in vals) + " |")
    return "\n".join(lines)


def _yaml_value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_yaml_value(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML scalar


def front_matter(meta: Mapping[str, Any]) -> str:
    """The YAML front matter of a card (``---`` lines); None values are left out."""
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


def reward_columns(metrics) -> list[str]:
    """The ``reward/<channel>`` columns of a metrics table."""
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

    cols = reward_columns(metrics)
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
    out = [front_matter(meta), "", f"# {name}", "",
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
    out += [f"| {k} | {card_cell(v)} |" for k, v in rows if v is not None]
    out += ["", "## Evaluation", ""]
    if eval_table is not None and len(eval_table):
        out += ["Mean reward per channel at each evaluation of the run (its eval table):", "",
                markdown_table(eval_table), ""]
    else:
        out += ["No evaluation was recorded for this run.", ""]
    out += ["## Training curve", ""]
    if curve_image:
        out += [f"![training curve]({curve_image})", ""]
    if metrics is not None and len(metrics) and reward_columns(metrics):
        tail = metrics.tail(last_k)
        out += [f"Mean ± standard deviation of the per-step batch reward over the last "
                f"{len(tail)} steps (training-curve dispersion within this run, not a "
                "held-out score):", "", "| channel | mean | std |", "|---|---|---|"]
        for c in reward_columns(metrics):
            out.append(f"| {c.split('/', 1)[1]} | {card_cell(float(tail[c].mean()))} | "
                       f"{card_cell(float(tail[c].std(ddof=1)) if len(tail) > 1 else float('nan'))} |")
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
    prompt_key = next((k for k in PROMPT_KEYS if k in frame.columns), None)
    n_prompts = int(frame[prompt_key].nunique()) if prompt_key else None
    n_seeds = int(frame["seed_idx"].nunique()) if "seed_idx" in frame.columns else None
    gcol = next((k for k in GROUP_KEYS if k in frame.columns), None)
    m_max = int(frame[gcol].max()) if gcol and len(frame) else None
    models = sorted(map(str, frame["model"].unique())) if "model" in frame.columns else []
    out = [front_matter(meta), "", f"# {repo_id.split('/')[-1]}", "",
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
        out.append(f"| m grid | {card_cell(cm['m_grid'])} |")
    if cm.get("reward_names"):
        out.append(f"| reward channels | {card_cell(cm['reward_names'])} |")
    if models:
        out.append(f"| model(s) | {card_cell(models)} |")
    if cm.get("backend_name"):
        out.append(f"| backend | {card_cell(cm['backend_name'])} |")
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
