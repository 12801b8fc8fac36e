"""``mrgrpo corpus build``: roll out any model on a task's held-out prompts into a stored Tier-2 corpus.

Examples::

    mrgrpo corpus build --model smollm2-135m-instruct --task fintech --P 40 --K 8 --m-grid 4,8,16 \\
        --max-new-tokens 64 --threads 2 --out data/smollm2-fintech
    mrgrpo corpus build ... --out data/smollm2-fintech --resume     # continue after an interruption

The build saves its progress every few prompts (``--chunk-prompts``); ``--resume``
continues it and refuses a changed configuration (of a finished corpus too); a finished
corpus is replaced only with ``--overwrite``, once the new build has written its first
chunk. A folder holding files mrgrpo did not write (a README.md of yours) is refused.
"""
from __future__ import annotations

import argparse
import shlex
import sys

from .parsing import comma_ints

TASKS = ("mini-math", "fintech", "gsm8k")  # mrgrpo.tasks.registry.TASKS (kept stdlib-only here)


def register(subparsers) -> None:
    p = subparsers.add_parser("corpus", help="roll out a model into a stored Tier-2 corpus", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="corpus_command", metavar="ACTION")
    b = sub.add_parser("build", help="build (or resume) a corpus", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--model", default="tiny-math", help="a model id, a local folder or a hub id [default: tiny-math]")
    b.add_argument("--task", choices=TASKS, default="mini-math", help="prompts and reward [default: mini-math]")
    b.add_argument("--out", required=True, help="output folder")
    b.add_argument("--P", type=int, default=40, help="held-out prompts [default: 40]")
    b.add_argument("--K", type=int, default=8, help="seeds (independent groups) per prompt [default: 8]")
    b.add_argument("--m-grid", type=comma_ints, default=(4, 8, 16),
                   help="group sizes; the largest is drawn, smaller ones are its prefixes [default: 4,8,16]")
    b.add_argument("--seed", type=int, default=0, help="base seed of the groups [default: 0]")
    b.add_argument("--prompt-seed", type=int, default=0, help="which held-out prompts [default: 0]")
    b.add_argument("--temperature", type=float, default=1.0, help="[default: 1.0]")
    b.add_argument("--max-new-tokens", type=int, default=None, help="[default: the task's budget]")
    b.add_argument("--L0", type=float, default=None, help="length target of the math tasks [default: the task's]")
    b.add_argument("--system-prompt", default=None, help="a system turn before every prompt [default: none]")
    b.add_argument("--batch-size", type=int, default=256, help="rows per forward batch [default: 256]")
    b.add_argument("--chunk-prompts", type=int, default=4, help="prompts between two saves [default: 4]")
    b.add_argument("--threads", type=int, default=None, help="torch threads [default: torch's]")
    b.add_argument("--device", default="cpu", help="[default: cpu]")
    b.add_argument("--resume", action="store_true", help="continue an unfinished build in --out")
    b.add_argument("--overwrite", action="store_true", help="replace the corpus in --out")
    b.add_argument("--no-progress", action="store_true", help="no progress bars")
    b.set_defaults(corpus_func=_build)
    p.set_defaults(func=handler, corpus_parser=p)


def handler(args: argparse.Namespace) -> int:
    func = getattr(args, "corpus_func", None)
    if func is None:
        args.corpus_parser.print_help()
        return 2
    return int(func(args) or 0)


def _build(args: argparse.Namespace) -> int:
    from mrgrpo.corpus.build import build_corpus
    from mrgrpo.lm.loader import loading_bars

    command = " ".join(["mrgrpo", *(shlex.quote(a) for a in sys.argv[1:])])
    with loading_bars(not args.no_progress):
        record = build_corpus(args.model, args.task, args.out, P=args.P, K=args.K, m_grid=args.m_grid,
                              seed=args.seed, prompt_seed=args.prompt_seed, temperature=args.temperature,
                              max_new_tokens=args.max_new_tokens, L0=args.L0, system_prompt=args.system_prompt,
                              batch_size=args.batch_size, chunk_prompts=args.chunk_prompts, threads=args.threads,
                              device=args.device, resume=args.resume, overwrite=args.overwrite,
                              progress=not args.no_progress, command=command)
    if record.get("already_built"):
        print(f"{args.out} already holds this corpus, finished with these settings: nothing to do")
        return 0
    print(f"wrote {args.out}: {record['completions']} completions ({record['P']} prompts x {record['K']} seeds x "
          f"{record['m_max']}), {record['seconds_this_session'] / 60:.1f} min, "
          f"{record['tokens_per_second']} new tokens/s")
    return 0
