"""``mrgrpo thm3-check``: the Theorem-3 harness end to end on mock rollouts (CPU, seconds)."""
from __future__ import annotations

from .parsing import comma_floats, comma_ints


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "thm3-check", help="Theorem-3 check on mock rollouts with correlation rho",
        description="Generate mock rollouts whose channels have pairwise correlation RHO, run the "
                    "Theorem-3 harness (ratios with bootstrap CIs, influence, population floor) and "
                    "print the tables. With random scores the NA ratio is an identity; the floor and "
                    "influence checks are the ones that can fail.")
    p.add_argument("--rho", type=float, required=True, help="pairwise correlation of the reward channels")
    p.add_argument("--m", type=comma_ints, default=(8,), help="group size(s), e.g. 8 or 4,8,16,32 (default 8)")
    p.add_argument("--K", type=int, default=200, help="seeds per prompt (default 200)")
    p.add_argument("--P", type=int, default=40, help="prompts (default 40)")
    p.add_argument("--w", type=comma_floats, default=(1.0, 1.0, 0.5), help="channel weights (default 1,1,0.5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the mock rewards, scores and bootstrap")
    p.add_argument("--kind", choices=["gaussian", "bernoulli"], default="gaussian",
                   help="reward marginals (default gaussian)")
    p.add_argument("--p", type=float, default=0.5, help="Bernoulli success rate for --kind bernoulli")
    p.add_argument("--mse-estimator", choices=["unbiased", "paper"], default="unbiased")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--figures", metavar="DIR", default=None, help="save the figures (PNG) in DIR")
    p.add_argument("--max-memory-gb", type=float, default=DEFAULT_MAX_MEMORY_GB,
                   help=f"refuse a run whose estimated memory exceeds this many GB (default {DEFAULT_MAX_MEMORY_GB:g})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (none is drawn in a non-TTY log anyway)")
    p.set_defaults(func=handler)


#: Default memory ceiling of one ``thm3-check`` run (``--max-memory-gb``).
DEFAULT_MAX_MEMORY_GB = 8.0


def estimate_memory_bytes(P: int, K: int, m_grid, R: int) -> int:
    """Peak memory of a ``thm3-check`` run, from its shape (an upper estimate).

    The reward tensor ``(P, K, max m, R)`` holds every run; per ``m`` the
    harness adds the scores ``(P, K, m)`` and a mask of the prefix; the floor
    check adds a few copies of the pooled ``(P, K * max m, R)`` rollouts and its
    ``(P, K)`` tables; generating one prompt's ``K`` groups costs about 1 kB
    each. Measured peaks (``tests/project/test_safety_inputs.py``) lie below it.
    """
    m_max, groups = max(m_grid), int(P) * int(K)
    tensor = 8 * groups * m_max * R
    per_m = sum(groups * m * (8 + 2 * R) + 64 * groups for m in m_grid)
    floor = 4 * tensor + 16 * groups * len(m_grid)
    return int(tensor + per_m + floor + 1024 * int(K) * 4 + (64 << 20))


def check_args(args) -> None:
    """Validate the flags, and refuse a run whose memory estimate exceeds ``--max-memory-gb``."""
    R = len(args.w)
    if R < 1:
        raise ValueError("--w needs at least one weight")
    if args.P < 1 or args.K < 2:
        raise ValueError(f"need --P >= 1 and --K >= 2, got P = {args.P}, K = {args.K}")
    if any(m < 2 for m in args.m):
        raise ValueError(f"group sizes must be >= 2, got {args.m}")
    if R > 1 and not -1.0 / (R - 1) <= args.rho <= 1.0:
        raise ValueError(f"--rho {args.rho} does not give a valid correlation matrix for R = {R} "
                         f"(needs {-1.0 / (R - 1):.3f} <= rho <= 1)")
    if not args.max_memory_gb > 0:
        raise ValueError(f"--max-memory-gb must be > 0, got {args.max_memory_gb}")
    need = estimate_memory_bytes(args.P, args.K, args.m, R) / 1e9
    if need > args.max_memory_gb:
        raise ValueError(f"P = {args.P} prompts x K = {args.K} seeds x m = {max(args.m)} needs about "
                         f"{need:,.1f} GB of memory, over the {args.max_memory_gb:g} GB limit; lower --K or --P, "
                         f"or raise --max-memory-gb")


def mock_tensor(backend, prompts: list, m: int, K: int, seed: int, bar=None):
    """The ``(P, K, m, R)`` rewards of ``run_corpus(backend, prompts, [m], K, subsample_from_max=True, seed)``.

    Built one prompt at a time (a mock group depends only on its prompt and
    seed), so memory holds the tensor and one prompt's rollouts, and ``bar``
    advances once per prompt.
    """
    import numpy as np

    from mrgrpo.corpus import pack_for_analysis, run_corpus

    out = np.empty((len(prompts), K, m, backend.R))
    for i, prompt in enumerate(prompts):
        corpus = run_corpus(backend, [prompt], m_grid=[m], K_seeds=K, subsample_from_max=True, seed=seed)
        out[i] = pack_for_analysis(corpus, m)[0]
        if bar is not None:
            bar.update(1)
    return out


def handler(args) -> int:
    import numpy as np

    from mrgrpo.analysis import analyze, floor_check, summary_print
    from mrgrpo.core.progress import progress_bar
    from mrgrpo.corpus import MockBackend

    check_args(args)
    R = len(args.w)
    C = np.full((R, R), args.rho) + (1.0 - args.rho) * np.eye(R)
    backend = MockBackend(C=C, p=[args.p] * R if args.kind == "bernoulli" else None, seed=args.seed)
    prompts = [(f"mock prompt {i}", "0") for i in range(args.P)]
    grid = sorted(set(args.m))
    # the smaller groups are prefixes of the largest (run_corpus's subsample_from_max)
    with progress_bar(total=args.P + len(grid) + 1, enabled=not args.no_progress, desc="thm3-check",
                      unit="step") as bar:
        bar.set_postfix_str("mock rollouts")
        x = mock_tensor(backend, prompts, grid[-1], args.K, args.seed, bar)
        results = []
        for m in grid:
            bar.set_postfix_str(f"analyze m={m}")
            results.append(analyze(x[:, :, :m], args.w, score_seed=args.seed, mse_estimator=args.mse_estimator,
                                   n_boot=args.n_boot, boot_seed=args.seed))
            bar.update(1)
        bar.set_postfix_str("population floor")
        floor = floor_check(x, args.w, m_grid=grid, C=backend.C, n_boot=args.n_boot, seed=args.seed)
        bar.update(1)
    summary_print(results[-1], label=f"mock {args.kind} rho={args.rho} ")
    print()
    print(ratio_table(results).to_string(index=False))
    print(f"\npopulation floor (C = the mock's C; w'Cw = {floor.population_wCw:.4f}; the check fails when the "
          f"identity fails on non-degenerate groups or degenerate groups cost over {floor.margin:.0%} of the floor):")
    print(floor_table(floor).to_string(index=False))
    if args.figures:
        save_figures(results, floor, args.figures)
    return 0


def ratio_table(results):
    """One row per m: the ratios with CIs and the side statistics."""
    import pandas as pd

    from mrgrpo.analysis.verdicts import fmt_interval

    rows = []
    for r in results:
        rows.append({
            "m": r.m, "P": r.P, "K": r.K, "predicted": f"{r.predicted_pooled:.5f}",
            "realized NA": f"{r.realized_na.mean():.5f}",
            "ratio NA [95% CI]": fmt_interval(r.ratio_na, *r.ratio_na_ci),
            "ratio AN [95% CI]": fmt_interval(r.ratio_an, *r.ratio_an_ci),
            "identity value": f"{r.expected_ratio:.3f}", "slope": f"{r.slope_na:.2f}", "R2": f"{r.r2_na:.2f}",
            "degenerate": f"{r.frac_degenerate:.3f}",
        })
    return pd.DataFrame(rows)


def floor_table(floor):
    """The floor check's two answers per m: the identity on non-degenerate groups, the degenerate groups' cost.

    Fisher's expansion and Theorem 3's first order are left out: as tests they false-alarm on
    rewards where this check is calibrated (:mod:`mrgrpo.analysis.floor`).
    """
    import pandas as pd

    from mrgrpo.analysis.verdicts import fmt_interval

    df = floor.to_frame()
    out = pd.DataFrame({
        "m": df["m"],
        "m*MSE = E[w'C_hat w] [95% CI]": [fmt_interval(a, b, c, 4) for a, b, c in
                                          zip(df["floor"], df["floor_lo"], df["floor_hi"])],
        "w'Cw": df["population"].map(lambda v: f"{v:.4f}"),
        "non-degenerate: floor - target [95% CI]": [fmt_interval(a, b, c, 4, signed=True) for a, b, c in
                                                    zip(df["floor_minus_target"], df["diff_lo"], df["diff_hi"])],
        "degenerate": df["frac_degenerate"].map(lambda v: f"{v:.3f}"),
        "their cost [95% CI]": [fmt_interval(a, b, c, 2, percent=True) for a, b, c in
                                zip(df["cost_degenerate"], df["cost_lo"], df["cost_hi"])],
        "verdict": df["verdict"],
    })
    return out


def save_figures(results, floor, folder) -> list:
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mrgrpo.analysis import floor_plot, money_plot, mse_vs_m_plot

    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for r in results:
        paths.append(d / f"money_plot_m{r.m}.png")
        plt.close(money_plot(r, paths[-1]))
    paths.append(d / "mse_vs_m.png")
    plt.close(mse_vs_m_plot(results, paths[-1], floor=floor))
    paths.append(d / "population_floor.png")
    plt.close(floor_plot(floor, paths[-1]))
    print("\nfigures: " + ", ".join(str(p) for p in paths))
    return paths
