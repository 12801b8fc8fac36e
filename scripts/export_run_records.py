#!/usr/bin/env python
"""Export a finished run's records (config, metrics, evaluations, evaluated replies; no weights) for data/.

    python scripts/export_run_records.py RUN_FOLDER DEST_FOLDER

JSON only (what :func:`mrgrpo.train.stored_runs.load_runs` reads); the step metrics and the
evaluated replies are written compactly to keep the stored data small.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from mrgrpo.core.files import atomic_write_text
from mrgrpo.train.stored_runs import export_records


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    dest = export_records(args[0], args[1])
    for f in sorted(Path(dest).iterdir()):
        if f.suffix == ".csv":
            f.unlink()
        elif f.name in ("metrics.json", "eval_samples.json"):
            atomic_write_text(f, json.dumps(json.loads(f.read_text()), separators=(",", ":")))
    print(f"exported {args[0]} -> {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
