"""Run benchmark variants in fresh processes, alternating their order, so a changing machine load hits all alike.

Each benchmark script re-runs itself with ``--child VARIANT ...``; the child prints one JSON
record as its last line. :func:`run_alternating` runs every variant once per repeat, in
forward order on even repeats and reversed on odd ones, and collects the records.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Callable, Sequence


def run_alternating(script: str, variants: Sequence[str], child_args: Callable[[str], list], repeats: int,
                    env: dict | None = None, report: Callable[[int, str, dict], None] | None = None) -> dict:
    """``{variant: [record, ...]}``: ``python script --child VARIANT *child_args(VARIANT)``, ``repeats`` times each.

    Exits with the child's stderr when a child fails.
    """
    env = {**os.environ, **(env or {})}
    results: dict[str, list[dict]] = {v: [] for v in variants}
    order = list(variants)
    for rep in range(repeats):
        for variant in (order if rep % 2 == 0 else order[::-1]):
            proc = subprocess.run([sys.executable, script, "--child", variant, *map(str, child_args(variant))],
                                  env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"{variant} run failed:\n{proc.stderr[-3000:]}")
            record = json.loads(proc.stdout.strip().splitlines()[-1])
            results[variant].append(record)
            if report is not None:
                report(rep, variant, record)
    return results
