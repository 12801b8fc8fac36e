"""``mrgrpo tiny pretrain|eval|corpus``: build, evaluate and roll out the tiny policy.

Also reachable as ``python -m mrgrpo tiny ...``.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time


def add_subcommands(parser: argparse.ArgumentParser) -> None:
    """Add the ``pretrain``, ``eval`` and ``corpus`` actions to ``parser``."""
    sub = parser.add_subparsers(dest="tiny_command", metavar="ACTION")

    p = sub.add_parser("pretrain", help="pretrain the tiny policy on CPU and write data/tiny-math/")
    p.add_argument("--out", default=None, help="output directory (default: data/tiny-math in the checkout)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=None, help="training steps at most")
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--target-accuracy", type=float, default=None,
                   help="keep the checkpoint whose validation accuracy (T=1) is closest to this")
    p.add_argument("--n-train", type=int, default=None, help="distinct training problems")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--hidden", type=int, default=None)
    p.add_argument("--layers", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default 2; part of bitwise reproducibility)")
    p.add_argument("--minutes", type=float, default=None, help="wall-clock cap (breaks reproducibility if it triggers)")
    p.add_argument("--n-eval", type=int, default=400, help="held-out problems for the model card's metrics")
    p.add_argument("--eval-seed", type=int, default=1)
    p.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation and the model card")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(tiny_func=_pretrain)

    e = sub.add_parser("eval", help="held-out accuracy and within-group variability of a policy")
    e.add_argument("--model", default=None, help="model directory or hub id (default: data/tiny-math)")
    e.add_argument("--n", type=int, default=400)
    e.add_argument("--m", type=int, default=8)
    e.add_argument("--seed", type=int, default=1)
    e.add_argument("--L0", type=float, default=None)
    e.add_argument("--threads", type=int, default=1)
    e.set_defaults(tiny_func=_eval)

    c = sub.add_parser("corpus", help="roll out the tiny policy into a mini Tier-2 corpus (data/mini-corpus/)")
    c.add_argument("--model", default=None, help="model directory (default: data/tiny-math)")
    c.add_argument("--out", default=None, help="output directory (default: data/mini-corpus)")
    c.add_argument("--P", type=int, default=150, help="held-out prompts")
    c.add_argument("--K", type=int, default=16, help="seeds (groups) per prompt")
    c.add_argument("--m-max", type=int, default=32, help="largest group size; m_grid is 4, 8, ... up to it")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--prompt-seed", type=int, default=0)
    c.add_argument("--temperature", type=float, default=1.0)
    c.add_argument("--max-new-tokens", type=int, default=None)
    c.add_argument("--L0", type=float, default=None)
    c.add_argument("--batch-size", type=int, default=512)
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--no-completions", action="store_true", help="do not store completion texts")
    c.add_argument("--overwrite", action="store_true", help="replace the corpus in --out")
    c.set_defaults(tiny_func=_corpus)


def register(subparsers) -> None:
    p = subparsers.add_parser("tiny", help="the tiny in-repo policy: pretrain, eval, corpus",
                              description=__doc__)
    add_subcommands(p)
    p.set_defaults(func=handler, tiny_parser=p)


def handler(args: argparse.Namespace) -> int:
    func = getattr(args, "tiny_func", None)
    if func is None:
        args.tiny_parser.print_help()
        return 2
    return int(func(args) or 0)


def _command_line() -> str:
    argv0 = (sys.argv[0] if sys.argv else "").replace("\\", "/")
    prog = "python -m mrgrpo" if argv0.endswith("mrgrpo/__main__.py") else "mrgrpo"
    return " ".join([prog, *(shlex.quote(a) for a in sys.argv[1:])])


def _pretrain(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()  # the whole command: imports, training, evaluation, card
    import dataclasses
    import os
    import platform
    from pathlib import Path

    import torch
    import transformers

    from mrgrpo.tiny import DEFAULT_MODEL_DIR, TINY_L0, evaluate_policy, tiny_reward_fn, write_model_card
    from mrgrpo.tiny.pretrain import TinyConfig, pretrain, save_tiny

    overrides = {k: getattr(args, k) for k in ("seed", "max_steps", "eval_every", "target_accuracy", "n_train",
                                                "batch_size", "lr", "hidden", "layers", "threads", "minutes")
                 if getattr(args, k) is not None}
    cfg = TinyConfig(**overrides)
    out = Path(args.out) if args.out else DEFAULT_MODEL_DIR
    result = pretrain(cfg, progress=not args.quiet, on_best=lambda r: save_tiny(r, out))
    save_tiny(result, out)
    n_params = sum(p.numel() for p in result.model.parameters())
    size_mb = sum(f.stat().st_size for f in out.iterdir() if f.is_file()) / 2**20
    print(f"wrote {out}: {n_params:,} parameters, {size_mb:.2f} MB, {result.seconds:.0f} s, "
          f"kept step {result.best_step} of {result.steps_run} ({result.stopped_by})")
    if args.no_eval:
        return 0
    from mrgrpo.core.files import atomic_write_text
    from mrgrpo.lm.loader import load_model
    from mrgrpo.tasks.mini_math import make_mini_math

    model, tok = load_model(out)
    ev = evaluate_policy(model, tok, make_mini_math(args.n_eval, seed=args.eval_seed, split="test"),
                         tiny_reward_fn(tok), m=8, seed=args.eval_seed)
    ev.pop("rewards_t1")
    training = json.loads((out / "training.json").read_text())
    record = {"config": dataclasses.asdict(cfg), "training": training, "eval": ev, "n_params": n_params,
              "size_mb": size_mb, "L0": TINY_L0, "eval_seed": args.eval_seed, "command": _command_line(),
              "machine": f"{platform.machine()} CPU ({os.cpu_count()} cores), {cfg.threads} thread(s)", "torch": torch.__version__,
              "transformers": transformers.__version__}
    training.update(eval=ev, n_params=n_params, command=record["command"], torch=torch.__version__,
                    transformers=transformers.__version__)
    record["eval_threads"] = torch.get_num_threads()
    record["command_seconds"] = time.perf_counter() - t_start
    training["command_seconds"] = round(record["command_seconds"], 1)
    atomic_write_text(out / "training.json", json.dumps(training, indent=2) + "\n")
    record["size_mb"] = sum(f.stat().st_size for f in out.iterdir() if f.is_file()) / 2**20  # with training.json
    write_model_card(out, record)
    print(json.dumps({k: ev[k] for k in ("greedy_accuracy", "t1_accuracy", "varies_fraction",
                                         "completions_per_second")}, indent=2))
    return 0


def _eval(args: argparse.Namespace) -> int:
    import torch

    from mrgrpo.lm.loader import load_model
    from mrgrpo.tasks.mini_math import make_mini_math
    from mrgrpo.tiny import DEFAULT_MODEL_DIR, TINY_L0, evaluate_policy, tiny_reward_fn

    torch.set_num_threads(args.threads)
    model, tok = load_model(args.model or DEFAULT_MODEL_DIR)
    ev = evaluate_policy(model, tok, make_mini_math(args.n, seed=args.seed, split="test"),
                         tiny_reward_fn(tok, args.L0 or TINY_L0), m=args.m, seed=args.seed)
    ev.pop("rewards_t1")
    print(json.dumps(ev, indent=2))
    return 0


def _corpus(args: argparse.Namespace) -> int:
    from mrgrpo.tiny import DEFAULT_CORPUS_DIR, TINY_L0, TINY_MAX_NEW_TOKENS, build_mini_corpus

    if args.m_max < 4:
        raise ValueError(f"--m-max must be >= 4, got {args.m_max}")
    grid, m = [], 4
    while m <= args.m_max:
        grid.append(m)
        m *= 2
    if grid[-1] != args.m_max:
        grid.append(args.m_max)
    params = build_mini_corpus(args.model or "tiny-math", args.out or DEFAULT_CORPUS_DIR, P=args.P, K=args.K,
                               m_grid=grid, seed=args.seed, prompt_seed=args.prompt_seed,
                               temperature=args.temperature,
                               max_new_tokens=args.max_new_tokens or TINY_MAX_NEW_TOKENS, L0=args.L0 or TINY_L0,
                               batch_size=args.batch_size, keep_completions=not args.no_completions,
                               threads=args.threads, overwrite=args.overwrite, command=_command_line())
    print(json.dumps({k: params[k] for k in ("completions", "seconds", "completions_per_second")}, indent=2))
    return 0
