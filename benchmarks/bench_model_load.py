"""Model loading: the first load of a GGUF model (dequantize + write the cache) vs a cached load.

Same run, same thread count, on a fresh cache root (a temporary folder unless ``--root``):

1. **first load** (the baseline): :func:`mrgrpo.lm.gguf.ensure_cached` converts the GGUF file
   (transformers' dequantization to float32, then the atomic write of the safetensors folder
   with its manifest), then ``AutoModelForCausalLM`` / ``AutoTokenizer.from_pretrained`` load
   the folder;
2. **cached load in a new process** (what a later run pays), ``--repeats`` times each for the
   two verification levels: ``ensure_cached`` finds the folder and verifies it against its
   manifest (``sha256``: size and sha256 of every file, the default; ``size``: sizes only),
   then the same two ``from_pretrained`` calls. Timed inside the process after its imports
   (importing torch + transformers is reported apart); the median is reported;
3. **cached load again in the first process**: a folder this process has verified is
   re-checked by its files' stat only.

The cached loads read the files from the OS page cache (they were just written); a cold read
adds the disk's time for the ~540 MB of weights.

Run: OMP_NUM_THREADS=1 python benchmarks/bench_model_load.py [--threads 1] [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAME = "smollm2-135m-instruct"

#: One cached load in a fresh interpreter; prints its timings as JSON.
CACHED_LOAD = """
import json, sys, time
t0 = time.perf_counter()
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from mrgrpo.lm.gguf import ensure_cached, gguf_source
torch.set_num_threads(int(sys.argv[3]))
t1 = time.perf_counter()
folder = ensure_cached(gguf_source(), sys.argv[4], root=sys.argv[1], verify=sys.argv[2])
t2 = time.perf_counter()
AutoModelForCausalLM.from_pretrained(str(folder)), AutoTokenizer.from_pretrained(str(folder))
t3 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "verify": t2 - t1, "load": t3 - t1}))
"""


def load_folder(folder: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(str(folder)), AutoTokenizer.from_pretrained(str(folder))


def cached_load_in_new_process(root: Path, level: str, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", CACHED_LOAD, str(root), level, str(threads), NAME],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--root", type=Path, default=None, help="cache root to use (must not hold the model yet)")
    args = ap.parse_args()
    if args.threads < 1 or args.repeats < 1:
        ap.error("--threads and --repeats must be >= 1")

    import torch
    import transformers

    from mrgrpo.lm.gguf import ensure_cached, gguf_source, read_manifest

    torch.set_num_threads(args.threads)
    root = args.root or Path(tempfile.mkdtemp(prefix="bench-model-load-"))
    if (root / NAME).exists():
        ap.error(f"{root / NAME} already exists: the first load would not convert")
    src = gguf_source()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} thread(s), "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, load average {os.getloadavg()[0]:.2f}")
    print(f"source {src.name} ({src.stat().st_size / 2**20:.1f} MiB); cache root {root}")
    try:
        t0 = time.perf_counter()
        folder = ensure_cached(src, NAME, root=root)
        model, _ = load_folder(folder)
        t_first = time.perf_counter() - t0
        manifest = read_manifest(folder)
        n_params = sum(p.numel() for p in model.parameters())
        del model
        size = sum((folder / f).stat().st_size for f in manifest["files"]) / 2**20
        print(f"first load: {t_first:.2f} s (conversion + write {manifest['convert_seconds']:.2f} s); "
              f"{n_params / 1e6:.1f}M parameters, folder {size:.0f} MiB")

        for level in ("sha256", "size"):
            runs = [cached_load_in_new_process(root, level, args.threads) for _ in range(args.repeats)]
            load, verify, imports = (statistics.median(r[k] for r in runs) for k in ("load", "verify", "imports"))
            print(f"cached load, new process, verify={level}: {load:.2f} s median of {args.repeats} "
                  f"(verification {verify * 1000:.0f} ms; imports before it {imports:.1f} s); "
                  f"first / cached = {t_first / load:.1f}x")

        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            load_folder(ensure_cached(src, NAME, root=root))
            times.append(time.perf_counter() - t0)
        t_same = statistics.median(times)
        print(f"cached load, same process (verified before): {t_same:.2f} s median; "
              f"first / cached = {t_first / t_same:.1f}x")
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
