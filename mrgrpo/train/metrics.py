"""Where the per-step training metrics are kept (memory, JSON, CSV).

What a step logs about its rewards and advantages (``reward/<channel>``, ``influence/<channel>``,
...) is computed in :mod:`mrgrpo.core.advantage_diagnostics` (:func:`reward_metrics`, shared
with the TRL engine); this module writes and reads the records.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from mrgrpo.core.advantage_diagnostics import reward_metrics
from mrgrpo.core.files import atomic_write_text

from .checkpoint import RunLayout

__all__ = ["reward_metrics", "write_history", "records_table", "TIMING_KEYS"]

# metrics that measure wall-clock time and so differ between otherwise identical runs
TIMING_KEYS = ("step_time", "tokens_per_s")


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def write_history(history: list[dict], out_dir: Path, stem: str = "metrics") -> None:
    """Write ``<stem>.json`` and ``<stem>.csv`` (atomically) under ``out_dir`` (names: :class:`RunLayout`)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    js, cs = RunLayout(out_dir).table(stem)
    atomic_write_text(js, json.dumps([{k: _clean(v) for k, v in rec.items()} for rec in history], indent=1))
    keys: list[str] = []
    for rec in history:
        keys.extend(k for k in rec if k not in keys)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(cs, buf.getvalue())


def records_table(records: list[dict]):
    """``pandas.DataFrame`` of metric records, indexed by ``step`` (empty when there are none)."""
    import pandas as pd

    return pd.DataFrame(records).set_index("step") if records else pd.DataFrame()
