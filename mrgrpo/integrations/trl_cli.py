"""``python -m mrgrpo.integrations.trl``: your reward functions, trained by ``MultiRewardGRPOTrainer``.

The command of TRL's ``trl grpo``, with mrgrpo's advantage. One YAML file (or flags; a flag
overrides the file) holds the model, the dataset, the reward functions and every setting of
:class:`~mrgrpo.integrations.trl_config.MultiRewardGRPOConfig` (TRL's ``GRPOConfig`` fields and
mrgrpo's) and of TRL's ``ModelConfig`` (``use_peft``, ``lora_r``, ``dtype``, ...)::

    # my.yaml
    model_name_or_path: smollm2-135m-instruct   # a model id (mrgrpo.lm.model_path), a folder, a hub id
    dataset_name: prompts.jsonl                 # a .json/.jsonl/.csv/.parquet file, a dataset folder, a hub id
    reward_funcs: [my_rewards:correct, my_rewards:brevity, my_rewards:fmt]   # module:function, one per channel
    reward_weights: [1.0, 1.0, 0.5]
    mode: na
    conditioning: zero_fill                     # brevity counts only where correct passes
    gate: 0
    conditioned: [1]
    output_dir: runs/my-run
    num_generations: 8

    python -m mrgrpo.integrations.trl --config my.yaml
    accelerate launch --config_file "$(python -m mrgrpo.integrations.trl_cli --accelerate-config cpu_2proc)" \\
        -m mrgrpo.integrations.trl --config my.yaml            # two CPU processes

The dataset needs a ``prompt`` column; its other columns reach the reward functions as
keyword arguments (TRL's rule). ``--resume_from_checkpoint PATH`` (or ``last``) continues a run:
the advantage settings the YAML and flags leave out are restored from the checkpoint's
:data:`~mrgrpo.integrations.trl_config.SETTINGS_FILE`, and one they set differently is refused.
``python -m mrgrpo.integrations.trl_cli`` is the same command without importing TRL first, so
``--accelerate-config NAME`` answers at once: it prints the path of a shipped accelerate config (:data:`ACCELERATE_CONFIGS`:
``cpu_2proc``, two CPU processes over gloo; ``gpu_1``; ``gpu_multi``). A bad setting ends with
one line on stderr and exit status 2.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

__all__ = ["main", "ACCELERATE_CONFIGS", "accelerate_config", "load_prompt_dataset", "given_settings",
           "restore_settings"]

#: The accelerate configs shipped as package data (``configs/accelerate`` in a clone links here).
ACCELERATE_CONFIGS = Path(__file__).resolve().parents[1] / "assets" / "accelerate"
_DATA_FILES = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


def accelerate_config(name: str) -> Path:
    """The shipped accelerate config ``name`` (``cpu_2proc``, ``gpu_1``, ``gpu_multi``; ``.yaml`` optional)."""
    path = ACCELERATE_CONFIGS / (name if name.endswith(".yaml") else f"{name}.yaml")
    if not path.is_file():
        known = sorted(p.stem for p in ACCELERATE_CONFIGS.glob("*.yaml"))
        raise ValueError(f"no accelerate config {name!r}; the shipped ones are {', '.join(known)}")
    return path


def load_prompt_dataset(name: str, config: Optional[str] = None, split: str = "train"):
    """The ``split`` of a local file (``.json``, ``.jsonl``, ``.csv``, ``.parquet``), a dataset folder or a hub dataset.

    Raises
    ------
    ValueError
        An unknown file type, a missing split, no ``prompt`` column.
    """
    from datasets import DatasetDict, load_dataset, load_from_disk

    if not name:
        raise ValueError("no dataset: set dataset_name (a .jsonl file of prompts, a dataset folder or a hub id)")
    path = Path(name).expanduser()
    if path.is_file():
        if path.suffix not in _DATA_FILES:
            raise ValueError(f"dataset_name {name!r}: a file must be one of {', '.join(_DATA_FILES)}")
        data = load_dataset(_DATA_FILES[path.suffix], data_files=str(path), split="train")
    elif path.is_dir() and ((path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()):
        data = load_from_disk(str(path))
    else:
        data = load_dataset(name, config)
    if isinstance(data, (DatasetDict, dict)):
        if split not in data:
            raise ValueError(f"dataset {name!r} has no split {split!r} (it has {', '.join(data)})")
        data = data[split]
    if "prompt" not in data.column_names:
        raise ValueError(f"dataset {name!r} has no 'prompt' column (columns: {', '.join(data.column_names)})")
    return data


def given_settings(argv: Sequence[str]) -> set[str]:
    """The mrgrpo settings (:data:`~mrgrpo.integrations.trl_config.SETTINGS_FIELDS`) the YAML or the flags set."""
    import yaml

    from mrgrpo.integrations.trl_config import SETTINGS_FIELDS

    argv = list(argv)
    given = {a[2:].split("=")[0].replace("-", "_") for a in argv if a.startswith("--")}
    if "--config" in argv:
        with open(argv[argv.index("--config") + 1]) as fh:
            given |= set(yaml.safe_load(fh) or {})
    return given & set(SETTINGS_FIELDS)


def restore_settings(args: Any, checkpoint: str | os.PathLike, given: set[str]) -> list[str]:
    """Set the mrgrpo fields of ``args`` not in ``given`` from ``checkpoint``'s settings file; returns their names."""
    from mrgrpo.integrations.trl_config import SETTINGS_FIELDS, read_settings

    saved = read_settings(checkpoint).get("settings") or {}
    restored = [f for f in SETTINGS_FIELDS if f not in given and f in saved and getattr(args, f) != saved[f]]
    for f in restored:
        setattr(args, f, saved[f])
    return restored


def _parser():
    from trl import ModelConfig, ScriptArguments, TrlParser

    from mrgrpo.integrations.trl_config import MultiRewardGRPOConfig

    @dataclass
    class MultiRewardScriptArguments(ScriptArguments):
        """TRL's script arguments plus the reward functions, one per channel."""

        reward_funcs: list[str] = field(default_factory=list, metadata={
            "help": "the reward functions, one per channel in channel order: module:function, "
                    "path/to/file.py:function or TRL's dotted module.function"})

    return TrlParser((MultiRewardScriptArguments, MultiRewardGRPOConfig, ModelConfig))


def _run(argv: list[str], trainer_cls: Any) -> int:
    from trl import get_peft_config

    from mrgrpo.lm.loader import model_path
    from mrgrpo.rewards.external import load_reward_funcs

    script, args, model_args = _parser().parse_args_and_config(argv)
    funcs = load_reward_funcs(script.reward_funcs)
    if not model_args.model_name_or_path:
        raise ValueError("no model: set model_name_or_path (a model id such as tiny-math, a folder or a hub id)")
    model = model_path(model_args.model_name_or_path)
    resume = args.resume_from_checkpoint
    if resume in ("last", "true", "True"):
        from transformers.trainer_utils import get_last_checkpoint

        resume = get_last_checkpoint(args.output_dir) if os.path.isdir(args.output_dir) else None
        if resume is None:
            raise ValueError(f"resume_from_checkpoint={args.resume_from_checkpoint}: {args.output_dir} holds no checkpoint")
    if resume:
        from mrgrpo.integrations.trl_config import read_settings, settings_conflicts

        restored = restore_settings(args, resume, given_settings(argv))
        names = [getattr(f, "__name__", type(f).__name__) for f in funcs]
        conflicts = settings_conflicts(read_settings(resume), args.advantage_spec(len(funcs), names))
        if conflicts:  # before any model loads (the trainer checks again)
            raise ValueError(f"{resume} was trained with other advantage settings ({'; '.join(conflicts)}); resume "
                             "with the checkpoint's settings (leave them out of the YAML) or start a new output_dir")
        if restored:
            print(f"restored from {resume}: " + ", ".join(f"{f}={getattr(args, f)!r}" for f in restored))
    init = dict(revision=model_args.model_revision, trust_remote_code=args.trust_remote_code,
                attn_implementation=model_args.attn_implementation, dtype=model_args.dtype)
    args.model_init_kwargs = {**init, **(args.model_init_kwargs or {})}
    train = load_prompt_dataset(script.dataset_name, script.dataset_config, script.dataset_train_split)
    evaluate = (load_prompt_dataset(script.dataset_name, script.dataset_config, script.dataset_test_split)
                if args.eval_strategy != "no" else None)
    if trainer_cls is None:
        from mrgrpo.integrations.trl import MultiRewardGRPOTrainer as trainer_cls
    trainer = trainer_cls(model=model, reward_funcs=funcs, args=args, train_dataset=train, eval_dataset=evaluate,
                          peft_config=get_peft_config(model_args))
    trainer.train(resume_from_checkpoint=resume or None)
    trainer.save_model(args.output_dir)
    if trainer.accelerator.is_main_process:
        print(f"trained {trainer.state.global_step} steps ({trainer.advantage_spec.mode}); saved to {args.output_dir}")
    return 0


def main(argv: Optional[Sequence[str]] = None, trainer_cls: Any = None) -> int:
    """Run the command (see the module docstring); returns the exit status.

    ``trainer_cls``: a subclass of :class:`~mrgrpo.integrations.trl.MultiRewardGRPOTrainer` to build instead.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--accelerate-config"]:
        try:
            print(accelerate_config(argv[1] if len(argv) > 1 else ""))
            return 0
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        return _run(argv, trainer_cls)
    except (ValueError, FileNotFoundError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: {first}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
