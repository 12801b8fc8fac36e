"""``python -m mrgrpo.tiny pretrain|eval|corpus`` (same as ``mrgrpo tiny ...``)."""
import argparse
import sys

from mrgrpo.commands.tiny import add_subcommands


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mrgrpo.tiny",
                                     description="The tiny in-repo policy: pretrain, eval, corpus.")
    add_subcommands(parser)
    args = parser.parse_args(argv)
    if getattr(args, "tiny_func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.tiny_func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"python -m mrgrpo.tiny {args.tiny_command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
