"""Per-step training metrics and where they are kept (memory, JSON, CSV).

Reward-side metrics of one step, from the ``(P, m, R)`` rewards and the ``(P, m)``
advantages the update used:

- ``reward/<channel>`` and ``reward/aggregate`` (``w . r``): batch means;
- ``adv_mean``, ``adv_std``: over all ``P m`` advantages;
- ``influence/<channel>``: the within-group covariance of the advantage with the
  channel's standardized reward, ``Cov(A, z_l)`` (the paper's Prop 1 quantity),
  averaged over groups; under NA it is about ``sum_k w_k C_kl``, under AN it
  grows with the channel's spread;
- ``const_frac/<channel>``: the fraction of groups where the channel is constant
  (it then contributes nothing to NA).
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Sequence

import torch

from mrgrpo.core.files import atomic_write_text

from .checkpoint import RunLayout

__all__ = ["reward_metrics", "write_history", "records_table", "TIMING_KEYS"]

# metrics that measure wall-clock time and so differ between otherwise identical runs
TIMING_KEYS = ("step_time", "tokens_per_s")


def reward_metrics(rewards: torch.Tensor, adv: torch.Tensor, weights: torch.Tensor,
                   names: Sequence[str], eps: float = 1e-8) -> dict[str, float]:
    """Reward, advantage and influence summaries of one step.

    Parameters
    ----------
    rewards : shape ``(P, m, R)``, the raw (unconditioned) rewards
    adv : shape ``(P, m)``
    weights : shape ``(R,)``
    names : R channel names
    """
    from mrgrpo.core.advantage_torch import group_standardize

    r = rewards.double()
    a = adv.double()
    out: dict[str, float] = {}
    ch_mean = r.mean(dim=(0, 1))
    for k, name in enumerate(names):
        out[f"reward/{name}"] = float(ch_mean[k])
    out["reward/aggregate"] = float((r @ weights.double()).mean())
    out["adv_mean"] = float(a.mean())
    out["adv_std"] = float(a.std(unbiased=False))
    z = group_standardize(r.transpose(1, 2), eps)  # (P, R, m)
    a_c = a - a.mean(dim=1, keepdim=True)
    infl = (z * a_c.unsqueeze(1)).mean(dim=2).mean(dim=0)  # (R,)
    const = (r.amax(dim=1) == r.amin(dim=1)).double().mean(dim=0)  # (R,)
    for k, name in enumerate(names):
        out[f"influence/{name}"] = float(infl[k])
        out[f"const_frac/{name}"] = float(const[k])
    return out


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
