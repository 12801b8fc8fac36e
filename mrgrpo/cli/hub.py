"""``mrgrpo hub``: share a trained adapter or a rollout corpus on the Hugging Face Hub.

    mrgrpo hub push-adapter runs/na_seed0 --repo you/mrgrpo-na-qwen2.5-1.5b --dry-run /tmp/out
    mrgrpo hub push-corpus corpus.parquet --repo you/mrgrpo-rollouts

Only an allow-list is uploaded (adapter weights and config, tokenizer files, the
run's config, metrics and eval tables, a curve, the card); everything else is
listed as left out, and a file holding a token or key, or a symbolic link out of the
run folder, refuses the upload. ``--dry-run OUT`` writes exactly the files that would
be uploaded into OUT (all or nothing) and uploads nothing. A real push needs a token (HF_TOKEN, .env or `hf auth login`)
and HF_HUB_OFFLINE unset.
"""
from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    """Add ``hub push-adapter`` and ``hub push-corpus`` to the ``mrgrpo`` parser."""
    hub = subparsers.add_parser("hub", help="push adapters and rollout corpora to the Hugging Face Hub",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = hub.add_subparsers(dest="hub_command", metavar="SUBCOMMAND")

    def common(p):
        p.add_argument("--repo", required=True, help="Hub repo id, owner/name")
        p.add_argument("--dry-run", default=None, metavar="OUT",
                       help="write what would be uploaded into OUT (new or empty) and upload nothing")
        p.add_argument("--private", action="store_true", help="create the repo private")
        p.add_argument("--license", default="mit")

    ad = sub.add_parser("push-adapter", help="upload a trained adapter with a model card")
    ad.add_argument("run_dir", help="training run folder (GRPOConfig.out_dir)")
    ad.add_argument("--base-model", default=None, help="base model id (default: from the run's config)")
    common(ad)
    ad.set_defaults(func=handle_adapter)

    co = sub.add_parser("push-corpus", help="upload a rollout corpus (Parquet + npz) as a dataset")
    co.add_argument("path", help=".parquet file (sibling .npz taken along) or a folder with both")
    co.add_argument("--npz", default=None, help="the .npz, if not beside the Parquet")
    common(co)
    co.set_defaults(func=handle_corpus)
    hub.set_defaults(func=lambda args: (hub.print_help(), 2)[1])


def _report(res) -> int:
    if res.uploaded:
        print(f"uploaded {len(res.files)} files to {res.repo_type} repo {res.repo_id}"
              + (f": {res.url}" if res.url else ""))
    else:
        print(f"dry run: {len(res.files)} files for {res.repo_type} repo {res.repo_id} written to "
              f"{res.folder} (nothing uploaded)")
    for f in res.files:
        print(f"  {f}")
    if res.left_out:
        print(f"left out (not uploaded): {', '.join(res.left_out)}")
    return 0


def _run(name: str, push) -> int:
    try:
        return _report(push())
    except (ValueError, FileNotFoundError) as exc:      # bad input: nothing was written
        print(f"mrgrpo hub {name}: error: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, OSError) as exc:               # offline, network, disk
        print(f"mrgrpo hub {name}: error: {exc}", file=sys.stderr)
        return 1


def handle_adapter(args: argparse.Namespace) -> int:
    """``hub push-adapter``: upload (or dry-run) a run folder's adapter."""
    from mrgrpo.ops import hub

    return _run("push-adapter", lambda: hub.push_adapter(
        args.run_dir, args.repo, dry_run=args.dry_run, private=args.private,
        base_model=args.base_model, license=args.license))


def handle_corpus(args: argparse.Namespace) -> int:
    """``hub push-corpus``: upload (or dry-run) a rollout corpus."""
    from mrgrpo.ops import hub

    return _run("push-corpus", lambda: hub.push_corpus(
        args.path, args.repo, npz=args.npz, dry_run=args.dry_run, private=args.private,
        license=args.license))
