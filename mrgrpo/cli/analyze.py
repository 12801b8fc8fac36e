"""``mrgrpo analyze PATH --w ...``: the Theorem-3 harness on a saved rollout corpus (npz or Parquet)."""
from __future__ import annotations

from .parsing import comma_floats, comma_ints


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "analyze", help="Theorem-3 analysis of a rollout corpus (.npz or .parquet)",
        description="Load a (P, K, m, R) reward corpus (an .npz with rewards_m{m} arrays, a Parquet in the "
                    "released schema, or 'released:1.5b' / 'released:7b' for the paper's data), run the "
                    "Theorem-3 harness for each m and print the ratio, floor and influence tables.")
    p.add_argument("path", help="corpus file (.npz / .parquet) or released:1.5b | released:7b")
    p.add_argument("--w", type=comma_floats, required=True, help="channel weights, e.g. 1,1,0.5")
    p.add_argument("--m", type=comma_ints, default=None, help="group size(s) to analyze (default: all in the file)")
    p.add_argument("--reward-names", default=None, help="comma-separated channel columns (Parquet without metadata)")
    p.add_argument("--mse-estimator", choices=["unbiased", "paper"], default="unbiased")
    p.add_argument("--score-seed", type=int, default=0, help="seed of the random scores (paper: 12345)")
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--boot-seed", type=int, default=0)
    p.add_argument("--figures", metavar="DIR", default=None, help="save the figures (PNG) in DIR")
    p.set_defaults(func=handler)


def load_corpus(path: str, reward_names=None):
    """Read the corpus at ``path``; every way a file can be wrong is a one-line ``ValueError`` naming it."""
    import zipfile
    import zlib
    from pathlib import Path

    from mrgrpo.corpus import load_npz, load_parquet, load_released_rollouts

    if path.startswith("released:"):
        return load_released_rollouts(path.split(":", 1)[1])
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    if p.is_dir():
        raise ValueError(f"{p} is a folder, not a corpus file (.npz or .parquet)")
    if p.suffix not in (".npz", ".parquet", ".pq"):
        raise ValueError(f"{p}: expected a .npz or .parquet file")
    if p.stat().st_size == 0:
        raise ValueError(f"{p} is not a readable corpus: the file is empty")
    if p.suffix == ".npz" and not zipfile.is_zipfile(p):
        raise ValueError(f"{p} is not a readable .npz corpus: it is not a zip archive (truncated, or not an "
                         f".npz at all)")
    try:
        return load_npz(p) if p.suffix == ".npz" else load_parquet(p, reward_names=reward_names)
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:  # pyarrow's: ValueError/OSError
        if isinstance(exc, FileNotFoundError):
            raise
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(msg if str(p) in msg else f"{p} is not a readable corpus: {msg}") from None


def handler(args) -> int:
    from mrgrpo.analysis import analyze, floor_check, summary_print
    from mrgrpo.corpus import pack_for_analysis

    from .thm3 import floor_table, ratio_table, save_figures

    names = [s.strip() for s in args.reward_names.split(",")] if args.reward_names else None
    corpus = load_corpus(args.path, names)
    if args.n_boot < 1:
        raise ValueError(f"--n-boot must be >= 1, got {args.n_boot}")
    if len(args.w) != corpus.R:
        raise ValueError(f"--w has {len(args.w)} weights but the corpus has R = {corpus.R} channels "
                         f"{corpus.reward_names}")
    grid = sorted(set(args.m)) if args.m else list(corpus.m_grid)
    print(f"corpus {args.path}: {corpus.n_prompts} prompts x {corpus.K_seeds} seeds, m in {grid}, "
          f"channels {corpus.reward_names}")
    tensors = {m: pack_for_analysis(corpus, m) for m in grid}
    results = [analyze(tensors[m], args.w, score_seed=args.score_seed, mse_estimator=args.mse_estimator,
                       n_boot=args.n_boot, boot_seed=args.boot_seed) for m in grid]
    summary_print(results[-1], label=f"{args.path} ")
    print()
    print(ratio_table(results).to_string(index=False))
    floor = floor_check(tensors, args.w, n_boot=args.n_boot, seed=args.boot_seed)
    print(f"\npopulation floor (C_p from each prompt's pooled rollouts; mean w'Cw = {floor.population_wCw:.4f}):")
    print(floor_table(floor).to_string(index=False))
    if args.figures:
        try:
            save_figures(results, floor, args.figures)
        except OSError as exc:
            raise ValueError(f"cannot write the figures to {args.figures}: {exc.strerror or exc}") from None
    return 0
