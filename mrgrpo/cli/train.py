"""mrgrpo train: multi-reward GRPO from the command line.

Every field of GRPOConfig is a flag, and so is every task setting (TaskSettings):
names, types, choices and help lines are generated from the two dataclasses, so
the command line and the Python API cannot drift apart.

Defaults come from a preset, chosen explicitly with --preset (never guessed from
the model): tiny (the default: the shipped tiny policy's recipe, on a CPU), paper
(Qwen2.5-1.5B-Instruct with the paper's hyperparameters, on the TRL engine in bf16,
for one or several GPUs) or none (GRPOConfig()'s own defaults).

Two engines run the same config and write the same run folder: --engine ours
(mrgrpo's GRPOTrainer, one process; the tiny preset's default) and --engine trl
(TRL's GRPOTrainer with mrgrpo's advantages; the paper preset's default), which
scales with accelerate (configs/accelerate/). Each flag's bracket shows its default and, where
the presets differ, every preset's value. Lists are comma-separated (--weights
1,1,0.5); optional values accept "none"; booleans are --flag / --no-flag.

Examples:

    mrgrpo train --mode na --n-steps 50                        # tiny policy, mini-math, CPU
    mrgrpo train --mode an --weights 1,1,0.5 --m 8 --out runs/an
    mrgrpo train --preset paper --task fintech --out runs/fin-na    # Qwen2.5-1.5B, TRL engine, one GPU
    accelerate launch --config_file configs/accelerate/gpu_multi.yaml --num_processes 4 \
        -m mrgrpo train --preset paper --task fintech --out runs/fin-na   # 4 GPUs
    mrgrpo train --engine trl --n-steps 5 --out runs/trl-tiny      # the tiny policy through TRL, CPU
    mrgrpo train --engine trl --reward-funcs my_rewards:correct,my_rewards:brevity --weights 1,1
                                                               # your own TRL-style reward functions
    mrgrpo train --out runs/an --resume                        # continue an interrupted run
    mrgrpo train --out runs/an --overwrite                     # replace the run in runs/an
    mrgrpo train --preset none --model DIR --lora-target-modules q_proj,v_proj
"""
from __future__ import annotations

import argparse
import dataclasses
import warnings
from typing import Any, Mapping, Optional

from mrgrpo.core.fields import format_value

from .config_args import add_dataclass_arguments, flag_errors, given_fields

#: The preset ``--preset`` defaults to.
DEFAULT_PRESET = "tiny"


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a policy with multi-reward GRPO (AN / NA / single)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=handler)
    if hasattr(p, "defer"):
        p.defer(add_arguments)  # the flags come from GRPOConfig, whose package imports torch
    else:
        add_arguments(p)


def preset_notes(cls: type, presets: Mapping[str, Mapping[str, Any]], default: str = DEFAULT_PRESET) -> dict:
    """``{field: "default: X (preset tiny); paper: Y; none: Z"}`` for the fields the presets set differently."""
    notes = {}
    for f in dataclasses.fields(cls):
        values = {name: over.get(f.name, f.default) for name, over in presets.items()}
        if len({format_value(v) for v in values.values()}) > 1:
            others = "; ".join(f"{name}: {format_value(v)}" for name, v in values.items() if name != default)
            notes[f.name] = f"default: {format_value(values[default])} (preset {default}); {others}"
    return notes


def add_arguments(p: argparse.ArgumentParser) -> None:
    from mrgrpo.tasks.registry import TaskSettings
    from mrgrpo.train.config import PRESETS, GRPOConfig

    p.add_argument("--preset", choices=tuple(PRESETS), default=DEFAULT_PRESET,
                   help="where the defaults come from: tiny (the shipped tiny policy's recipe, CPU), paper "
                        "(Qwen2.5-1.5B-Instruct, LoRA r=16, lr 5e-6, 500 steps), none (GRPOConfig() as is) "
                        f"[default: {DEFAULT_PRESET}]")
    p.add_argument("--full-finetune", dest="use_lora", action="store_const", const=False,
                   default=argparse.SUPPRESS, help="the same as --no-use-lora")
    add_dataclass_arguments(p, TaskSettings)
    add_dataclass_arguments(p, GRPOConfig, notes=preset_notes(GRPOConfig, PRESETS))


def build_config(args: argparse.Namespace) -> tuple[Any, Any]:
    """``(GRPOConfig, TaskSettings)`` from the parsed flags: the preset, with the given flags on top."""
    from mrgrpo.tasks.registry import TaskSettings
    from mrgrpo.train.config import GRPOConfig

    with flag_errors(GRPOConfig, TaskSettings):  # "--m: m must be ...": the flag to change
        cfg = GRPOConfig.from_preset(args.preset, **given_fields(args, GRPOConfig))
        return cfg, TaskSettings(**given_fields(args, TaskSettings))


def check_preset_fits(args: argparse.Namespace, cfg: Any) -> None:
    """The tiny preset's LoRA targets name the tiny policy's modules: another model must choose its own."""
    from mrgrpo.lm.models import is_tiny_math

    if args.preset == "tiny" and cfg.use_lora and not hasattr(args, "lora_target_modules") \
            and not is_tiny_math(cfg.model):
        raise ValueError(f"--preset tiny is the shipped tiny policy's recipe: its LoRA targets "
                         f"({format_value(cfg.lora_target_modules)}) are that model's last block. For --model "
                         f"{cfg.model} choose --preset none (GRPOConfig defaults) or --preset paper, or give "
                         "--lora-target-modules")


def describe_evaluation(cfg: Any, n_prompts: int) -> str:
    """What one evaluation is, in words (greedy, or sampled at a temperature with a seed)."""
    how = "greedy" if cfg.eval_temperature == 0 else \
        f"sampled at temperature {cfg.eval_temperature:g} with eval_seed {cfg.eval_seed}"
    return f"{n_prompts} prompts, one completion each, {how}; channel means"


def check_resume(cfg: Any, run_info: Optional[dict] = None) -> None:
    """A resumed run must be the same run (engine and task included): checked on the recorded config and run
    settings before anything loads."""
    if not (cfg.resume and cfg.out_dir):
        return
    from mrgrpo.train.checkpoint import read_run_config, read_run_info
    from mrgrpo.train.config import resume_conflicts
    from mrgrpo.train.run_guard import refuse_resume

    recorded, path = read_run_config(cfg.out_dir)
    recorded_info = read_run_info(cfg.out_dir) or None
    conflicts = resume_conflicts(recorded, cfg, recorded_info, run_info if recorded_info else None) if recorded else []
    refuse_resume(path or cfg.out_dir, conflicts)


def handler(args) -> int:
    cfg, settings = build_config(args)
    from mrgrpo.lm.loader import check_device, loading_bars
    from mrgrpo.tasks.gsm8k import DatasetUnavailableError
    from mrgrpo.tasks.registry import FINTECH_TASKS

    check_device(cfg.device)
    from mrgrpo.lm.loader import resolve_model

    resolve_model(cfg.model)  # a clear error for a missing folder or tiny policy, before anything loads
    check_preset_fits(args, cfg)
    check_resume(cfg, settings.to_dict())
    if cfg.engine == "trl":
        from mrgrpo.train.engines.trl_engine import process_count, trl_arguments

        trl_arguments(cfg, "unused", process_count())  # the engine's own checks, before any model loads
    with loading_bars(cfg.progress), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)  # peft
        try:  # the math tasks count lengths in the policy's tokens, so they load its tokenizer
            setup = settings.setup(None if settings.task in FINTECH_TASKS else cfg.model, seed=cfg.seed,
                                   use_chat_template=cfg.use_chat_template)
        except DatasetUnavailableError as exc:
            first = str(exc).strip().splitlines()[0].rstrip(".")
            raise ValueError(f"{first}; offline, pass --gsm8k-path FILE (a local GSM8K .jsonl or .parquet)") \
                from None
        from mrgrpo.core.run_folder import rolled_back_on_failure
        from mrgrpo.train.engines import make_trainer

        trainer = make_trainer(cfg, setup.reward_fn, setup.train_prompts, eval_prompts=setup.eval_prompts or None,
                               run_info=settings.to_dict())
        with rolled_back_on_failure(cfg.out_dir):  # a run that stops before its first checkpoint leaves no trace
            if setup.eval_prompts and not cfg.resume:
                trainer.evaluate()  # the untrained policy, for comparison
            history = trainer.train()
    if not getattr(trainer, "is_main_process", True):
        return 0  # under accelerate launch, the main process reports
    last = history[-1]
    print(f"trained {trainer.step} steps ({cfg.mode}, engine {cfg.engine}); last step: "
          + ", ".join(f"{n}={last[f'reward/{n}']:.3f}" for n in trainer.channel_names))
    if trainer.eval_history:
        print(f"held-out evaluation ({describe_evaluation(cfg, len(setup.eval_prompts))}):")
        print(trainer.eval_table().to_string(float_format=lambda x: f"{x:.3f}"))
    if cfg.out_dir:
        print(f"wrote the run to {cfg.out_dir}: metrics, evaluations, the adapter and checkpoints")
    return 0
