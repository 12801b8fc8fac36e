"""Tier-1 suite: our vectorized Monte-Carlo vs the paper's own harness scripts, same run.

Baseline: the reference package's experiment scripts (multireward-grpo 0.1.1,
``scripts/grpo_{harness,selfnorm,thm4,mstar,prop2}.py``), copied at run time
into a temporary directory (never committed) and run as subprocesses with
``MPLBACKEND=Agg`` and ``OMP_NUM_THREADS=1``. They come from
``/work/ref/multireward_grpo-0.1.1/scripts`` when present, else from
``pip download multireward-grpo==0.1.1 --no-binary :all: --no-deps`` into
``benchmarks/_ref/`` (gitignored).

Ours: the matching :mod:`mrgrpo.sim` experiments at the same trial counts
(``--scale 1`` = the paper's sizes). At ``--scale s < 1`` the reference
scripts' Monte-Carlo constants are scaled by exact text substitution (every
pattern must match once, or the run stops).

Caveats printed with the table: the reference scripts also draw and save their
figures (we do not plot), estimate theta* of Prop 4 by Monte-Carlo (we use the
exact value), and share one simulation between fig2a and fig2b (we run two).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_tier1.py [--scale 1.0] [--only harness,thm4]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REF_LOCAL = Path("/work/ref/multireward_grpo-0.1.1/scripts")
REF_CACHE = HERE / "_ref"
OUT_DIR = HERE / "_out"

# reference script -> our experiments covering the same figures
GROUPS = {
    "harness": ["fig1a", "fig1c", "fig1b", "fig2a", "fig2b", "fig2c"],
    "selfnorm": ["figS1", "figS2", "figS3"],
    "thm4": ["figT1", "figT2", "figT3"],
    "mstar": ["figM1"],
    "prop2": ["figP2"],
}

# Monte-Carlo constants in the reference scripts: (exact text, the number literal inside it)
SIZE_PATTERNS = {
    "harness": [("n_trials = 40000", "40000"), ("n_big = 200000", "200000"), ("n_tr = 200000", "200000"),
                ("def budget_mse(N, m, n_runs=4000", "4000")],
    "selfnorm": [("ms=np.array([4,8,16,32,64,128]); n=120000", "120000"),
                 ("mse_estimators(80000,m,rho)", "80000"), ("def bias_curve(kind,m,n=400000)", "400000")],
    "thm4": [("m,gamma,n=16,1.5,60000", "60000"), ("gen(150000,m,pa_fix,gm,rng)", "150000"),
             ("n_pd=12000", "12000"), ("def theta_star(p_a,gamma,N=3_000_000)", "3_000_000"),
             ("theta_star(p_a,gm,N=1_200_000)", "1_200_000")],
    "mstar": [("def mse(N,m,rho,n_runs=4000)", "4000")],
    "prop2": [],
}


def find_reference_scripts() -> Path:
    """The reference ``scripts/`` folder: the local copy, or the sdist downloaded with pip."""
    if REF_LOCAL.is_dir():
        return REF_LOCAL
    cached = list(REF_CACHE.glob("multireward_grpo-0.1.1/scripts"))
    if cached:
        return cached[0]
    REF_CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "multireward-grpo==0.1.1", "--no-binary",
                    ":all:", "--no-deps", "-d", str(REF_CACHE)], check=True)
    sdists = sorted(REF_CACHE.glob("multireward*grpo-0.1.1.tar.gz"))
    if not sdists:
        raise SystemExit(f"pip download left no sdist in {REF_CACHE}")
    with tarfile.open(sdists[0]) as tar:
        tar.extractall(REF_CACHE, filter="data")
    found = list(REF_CACHE.glob("*/scripts"))
    if not found:
        raise SystemExit("the multireward-grpo 0.1.1 sdist has no scripts/ folder")
    return found[0]


def scale_source(text: str, name: str, scale: float) -> str:
    """Scale a reference script's Monte-Carlo constants (exact substitutions)."""
    if scale == 1.0:
        return text
    for pattern, literal in SIZE_PATTERNS[name]:
        if text.count(pattern) != 1:
            raise SystemExit(f"grpo_{name}.py: expected the text {pattern!r} exactly once; "
                             "the reference script changed, update SIZE_PATTERNS")
        new_value = max(200, int(round(int(literal.replace("_", "")) * scale)))
        text = text.replace(pattern, pattern.replace(literal, str(new_value)))
    return text


def run_reference(src: Path, name: str, scale: float, workdir: Path) -> tuple[float, float, str]:
    """Run one reference script in ``workdir``; return wall seconds, CPU seconds and its stdout."""
    script = workdir / f"grpo_{name}.py"
    script.write_text(scale_source((src / f"grpo_{name}.py").read_text(), name, scale))
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1")
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, script.name], cwd=workdir, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"reference grpo_{name}.py failed:\n{proc.stderr[-3000:]}")
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return dt, cpu, proc.stdout


def run_ours(names: list[str], scale: float, seed: int = 0) -> tuple[dict[str, float], dict[str, float]]:
    """Wall and CPU seconds of each of our experiments at ``scale`` times the paper's trial counts."""
    from mrgrpo.sim import EXPERIMENTS, PAPER_TRIALS
    from mrgrpo.sim.mc import scaled
    wall, cpu = {}, {}
    for name in names:
        fn = EXPERIMENTS[name]
        t0, c0 = time.perf_counter(), time.process_time()
        if name == "figP2":
            fn()
        else:
            fn(n_trials=scaled(PAPER_TRIALS[name], scale), seed=seed)
        wall[name], cpu[name] = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the paper's Monte-Carlo sizes")
    ap.add_argument("--only", default=",".join(GROUPS), help="comma-separated reference scripts")
    args = ap.parse_args(argv)
    if os.environ.get("OMP_NUM_THREADS") != "1":
        print("note: set OMP_NUM_THREADS=1 for stable timings", file=sys.stderr)
    groups = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise SystemExit(f"unknown group(s) {unknown}; choose from {list(GROUPS)}")

    src = find_reference_scripts()
    OUT_DIR.mkdir(exist_ok=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="mrgrpo_ref_") as tmp:
        for g in groups:
            wall, cpu = run_ours(GROUPS[g], args.scale)
            ref_wall, ref_cpu, ref_out = run_reference(src, g, args.scale, Path(tmp))
            (OUT_DIR / f"ref_grpo_{g}_scale{args.scale:g}.txt").write_text(ref_out)
            results[g] = {"ref_wall_s": ref_wall, "ref_cpu_s": ref_cpu, "ours_wall_s": sum(wall.values()),
                          "ours_cpu_s": sum(cpu.values()), "ours_cpu_by_experiment": cpu}
            print(f"  {g:9s} ref cpu {ref_cpu:9.2f} s (wall {ref_wall:8.2f})   ours cpu {sum(cpu.values()):8.2f} s "
                  f"(wall {sum(wall.values()):7.2f})   ratio {ref_cpu / max(sum(cpu.values()), 1e-9):7.1f}x",
                  flush=True)

    tot = {k: sum(r[k] for r in results.values()) for k in ("ref_cpu_s", "ours_cpu_s", "ref_wall_s", "ours_wall_s")}
    print(f"\nTier-1 suite at scale {args.scale:g} of the paper's Monte-Carlo sizes, CPU seconds "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, python {sys.version.split()[0]}; CPU time "
          "because the machine may be shared; wall times in the JSON)")
    print(f"{'reference script':18s} {'ref (s)':>10s} {'ours (s)':>10s} {'ref/ours':>9s}   our experiments (s)")
    for g, r in results.items():
        detail = ", ".join(f"{k} {v:.2f}" for k, v in r["ours_cpu_by_experiment"].items())
        print(f"grpo_{g + '.py':13s} {r['ref_cpu_s']:10.2f} {r['ours_cpu_s']:10.2f} "
              f"{r['ref_cpu_s'] / max(r['ours_cpu_s'], 1e-9):8.1f}x   {detail}")
    print(f"{'total':18s} {tot['ref_cpu_s']:10.2f} {tot['ours_cpu_s']:10.2f} "
          f"{tot['ref_cpu_s'] / max(tot['ours_cpu_s'], 1e-9):8.1f}x   "
          f"(wall: ref {tot['ref_wall_s']:.1f} s, ours {tot['ours_wall_s']:.1f} s)")
    print("caveats: the reference also plots and saves its figures and estimates Prop 4's theta* by "
          "Monte-Carlo (3M / 1.2M draws per point); ours uses exact theta*, and runs fig2a and fig2b "
          "as two simulations where the reference shares one.")
    (OUT_DIR / f"bench_tier1_scale{args.scale:g}.json").write_text(
        json.dumps({"scale": args.scale, "results": results, "totals": tot}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
