"""``mrgrpo train``: multi-reward GRPO from the command line.

Examples::

    mrgrpo train --mode na --n-steps 50                      # tiny policy, mini-math, CPU
    mrgrpo train --mode an --weights 1,1,0.5 --m 8 --out runs/an
    mrgrpo train --preset paper --task fintech --out runs/fin-na   # Qwen2.5-1.5B, GPU
    mrgrpo train --out runs/an --resume                      # continue an interrupted run
"""
from __future__ import annotations

import argparse

from .parsing import comma_floats, comma_ints

TASKS = ("mini-math", "fintech", "gsm8k")  # mrgrpo.tasks.registry.TASKS (kept stdlib-only here)


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a policy with multi-reward GRPO (AN / NA / single)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=("tiny", "paper"), default="tiny",
                   help="tiny: the shipped tiny policy on CPU (default); paper: Qwen2.5-1.5B-Instruct, "
                        "LoRA r=16, lr 5e-6, 500 steps")
    p.add_argument("--model", help="local path or hub id (default: the preset's model)")
    p.add_argument("--task", choices=TASKS, default="mini-math")
    p.add_argument("--mode", choices=("na", "an", "single"), default="na")
    p.add_argument("--weights", type=comma_floats, help="channel weights, e.g. 1,1,0.5 (default 1,1,0.5)")
    p.add_argument("--n-steps", type=int)
    p.add_argument("--m", type=int, help="completions per prompt (group size)")
    p.add_argument("--batch-prompts", type=int, help="prompts per step")
    p.add_argument("--lr", type=float)
    p.add_argument("--kl-coef", type=float)
    p.add_argument("--temperature", type=float)
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--num-iterations", type=int)
    p.add_argument("--conditioning", choices=("none", "zero_fill", "subgroup"))
    p.add_argument("--cond-idx", type=comma_ints, help="conditioned channel(s), e.g. 1 or 1,2 (gate: channel 0)")
    p.add_argument("--batch-rescale", action="store_true", help="TRL normalize_then_sum batch rescale")
    p.add_argument("--full-finetune", action="store_true", help="train every weight instead of LoRA")
    p.add_argument("--n-train", type=int, default=400, help="training prompts")
    p.add_argument("--n-eval", type=int, default=64, help="held-out evaluation prompts (0: none)")
    p.add_argument("--eval-every", type=int, default=0)
    p.add_argument("--gsm8k-path", help="local GSM8K .jsonl/.parquet (offline)")
    p.add_argument("--L0", type=float, help="math length target in tokens (default: 32 on mini-math, 200 on gsm8k)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", help="output folder: metrics.json/csv, eval.csv, adapter/, checkpoints/")
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=handler)


def _config(args):
    from mrgrpo.train import GRPOConfig

    over = {k: v for k, v in dict(
        model=args.model, mode=args.mode, weights=args.weights, n_steps=args.n_steps, m=args.m,
        batch_prompts=args.batch_prompts, lr=args.lr, kl_coef=args.kl_coef, temperature=args.temperature,
        max_new_tokens=args.max_new_tokens, num_iterations=args.num_iterations,
        conditioning=args.conditioning, cond_idx=args.cond_idx, seed=args.seed, device=args.device,
        out_dir=args.out, checkpoint_every=args.checkpoint_every, eval_every=args.eval_every,
    ).items() if v is not None}
    if over.get("cond_idx") is not None and len(over["cond_idx"]) == 1:
        over["cond_idx"] = over["cond_idx"][0]
    over.update(resume=args.resume, progress=not args.no_progress, batch_rescale=args.batch_rescale)
    if args.full_finetune:
        over["use_lora"] = False
    if args.preset == "paper":
        return GRPOConfig.paper(**over)
    if args.out and "checkpoint_every" not in over:
        over["checkpoint_every"] = 10
    from mrgrpo.lm.models import DEFAULT_MODEL, is_tiny_math

    if is_tiny_math(over.get("model", DEFAULT_MODEL)):
        return GRPOConfig.tiny(**over)  # the recipe measured on the shipped tiny policy
    over.setdefault("n_steps", 50)
    if args.task == "mini-math":
        from mrgrpo.tasks.mini_math import MINI_MATH_MAX_NEW_TOKENS

        over.setdefault("max_new_tokens", MINI_MATH_MAX_NEW_TOKENS)
    return GRPOConfig(**over)


def handler(args) -> int:
    cfg = _config(args)
    from mrgrpo.tasks.registry import task_reward, task_setup

    cfg.validate(n_channels=len(task_reward(args.task).channel_names))  # before any model loads
    from mrgrpo.lm.loader import resolve_model

    resolve_model(cfg.model)  # a clear error for a missing folder, before anything loads
    # the math tasks count lengths in the policy's tokens, so they load its tokenizer
    setup = task_setup(args.task, None if args.task == "fintech" else cfg.model, n_train=args.n_train,
                       n_eval=args.n_eval, seed=args.seed, L0=args.L0, gsm8k_path=args.gsm8k_path,
                       use_chat_template=cfg.use_chat_template)
    reward_fn, train, test = setup.reward_fn, setup.train_prompts, setup.eval_prompts

    from mrgrpo.train import GRPOTrainer

    trainer = GRPOTrainer(cfg, reward_fn, train, eval_prompts=test or None)
    if test and not cfg.resume:
        trainer.evaluate()  # the untrained policy, for comparison
    history = trainer.train()
    last = history[-1]
    print(f"trained {cfg.n_steps} steps ({cfg.mode}); last step: "
          + ", ".join(f"{n}={last[f'reward/{n}']:.3f}" for n in trainer.channel_names))
    if trainer.eval_history:
        print("held-out evaluation (one greedy completion per prompt):")
        print(trainer.eval_table().to_string(float_format=lambda x: f"{x:.3f}"))
    if cfg.out_dir:
        print(f"wrote {cfg.out_dir}/metrics.json, metrics.csv, eval.csv, adapter/ and checkpoints/")
    return 0
