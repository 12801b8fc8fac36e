"""``python -m mrgrpo.tiny pretrain|eval|corpus``: the same command as ``mrgrpo tiny ...``."""
import sys

from mrgrpo.cli import main as cli_main


def main(argv=None) -> int:
    return cli_main(["tiny", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
