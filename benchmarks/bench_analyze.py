"""Speed and memory of the Theorem-3 harness, against the paper's package in the same run.

1. Speed: ``mrgrpo.analysis.analyze`` vs ``multireward_grpo.analysis.analyze``
   (multireward-grpo 0.1.1) on a (150, 16, 32, 3) tensor, the shape of the
   paper's Qwen2.5-1.5B corpus. Best of ``--repeat`` runs each; the outputs are
   checked equal (mse_estimator="paper", 1e-10) before timing is reported.
   Ours is timed with everything the reference does *plus* 2000 bootstrap
   resamples, the influence law and the floor.
2. Scale: a (2000, 32, 64, 8) tensor; peak traced memory (tracemalloc, which
   sees numpy's buffers) of the analyze call, and the process's max RSS.

Run: OMP_NUM_THREADS=1 python benchmarks/bench_analyze.py
"""
from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np


def mixed_tensor(shape, seed=0):
    """Released-like rewards: binary correctness and format, continuous length."""
    rng = np.random.default_rng(seed)
    P, K, m, R = shape
    x = (rng.random(shape) < rng.uniform(0.1, 0.9, size=(P, 1, 1, R))).astype(float)
    x[..., 1] = np.tanh(rng.standard_normal((P, K, m)) - 1.0)
    return x


def best_of(f, repeat):
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return min(ts), float(np.median(ts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--skip-scale", action="store_true")
    args = ap.parse_args()

    from multireward_grpo.analysis import analyze as ref_analyze

    from mrgrpo.analysis import analyze
    from mrgrpo.analysis.verdicts import fmt_interval

    w = np.array([1.0, 1.0, 0.5])
    x = mixed_tensor((150, 16, 32, 3))
    a, b = ref_analyze(x, w, score_seed=12345), analyze(x, w, score_seed=12345, mse_estimator="paper")
    for f in ("realized_an", "realized_na", "predicted_per_prompt", "predicted_pooled", "influence_an",
              "influence_na", "pooled_C"):
        np.testing.assert_allclose(getattr(b, f), getattr(a, f), rtol=0, atol=1e-10, err_msg=f)
    ref_best, ref_med = best_of(lambda: ref_analyze(x, w, score_seed=12345), args.repeat)
    ours_best, ours_med = best_of(lambda: analyze(x, w, score_seed=12345), 10 * args.repeat)
    lite_best, _ = best_of(lambda: analyze(x, w, score_seed=12345, n_boot=1, population_checks=False),
                           10 * args.repeat)
    print("== speed: (150, 16, 32, 3), baseline multireward_grpo 0.1.1 analyze, same run ==")
    print(f"  baseline            best {ref_best * 1e3:8.1f} ms  (median {ref_med * 1e3:.1f})")
    print(f"  mrgrpo analyze      best {ours_best * 1e3:8.2f} ms  (median {ours_med * 1e3:.2f})  "
          f"ratio {ref_best / ours_best:6.1f}x  (median ratio {ref_med / ours_med:.1f}x)")
    print(f"  (without bootstrap / Prop-1 / floor extras: {lite_best * 1e3:.2f} ms, ratio {ref_best / lite_best:.1f}x)")

    if args.skip_scale:
        return
    shape = (2000, 32, 64, 8)
    big = np.random.default_rng(1).standard_normal(shape)
    wb = np.linspace(0.5, 1.5, 8)
    tracemalloc.start()
    t = time.perf_counter()
    r = analyze(big, wb)
    dt = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(f"== scale: {shape} ({big.nbytes / 2**20:.0f} MiB of rewards) ==")
    print(f"  analyze {dt:.1f} s; peak traced memory during analyze {peak / 2**30:.3f} GiB "
          f"(budget 2 GiB); process max RSS {rss / 2**30:.3f} GiB (includes the input tensor)")
    print(f"  ratio NA {fmt_interval(r.ratio_na, *r.ratio_na_ci, 4)}")


if __name__ == "__main__":
    main()
