"""Held-out replies of trained policies: the paper's Tier-3 findings, each with an interval.

The input is :attr:`mrgrpo.train.experiment.Comparison.samples`: every evaluated reply
(``mode``, ``seed``, ``prompt``, ``completion``, each channel's reward, ``n_tokens``,
``ended``), the untrained policy's under ``mode == "untrained"``. Every mode is evaluated
on the same held-out prompts (one set, or one per seed when each seed drew its own split),
so modes are compared *prompt by prompt*: a prompt's value
is its mean over the seeds of a mode, a difference between modes is taken per prompt,
and the interval is a percentile bootstrap over prompts (the prompts are the sample of a
population; the seeds within a prompt are averaged). With a few seeds, the seed-to-seed
spread of the policies is not in these intervals: :func:`mrgrpo.analysis.verdicts.compare_seeds`
tests it separately on the seed means.

- :func:`mode_difference` the paired difference of a mode pair on every channel and the aggregate;
- :func:`reply_lengths` the reply-length distribution per mode (mean, median, empty and cut-off shares);
- the three findings as sentences computed from those tables: :func:`aggregate_finding`,
  :func:`allocation_finding`, :func:`collapse_finding`.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mrgrpo.core.checks import check_weights

from .bootstrap import bootstrap_weights, percentile_ci
from .verdicts import fmt

__all__ = ["prompt_means", "mode_difference", "reply_lengths", "aggregate_finding", "allocation_finding",
           "collapse_finding"]


def prompt_means(samples: Any, mode: str, columns: Sequence[str]) -> Any:
    """``(P, len(columns))`` DataFrame: each prompt's mean over the seeds of ``mode`` (prompts sorted)."""
    rows = samples[samples["mode"] == mode]
    if rows.empty:
        raise ValueError(f"no evaluated replies of mode {mode!r}; modes present: {sorted(set(samples['mode']))}")
    return rows.groupby("prompt")[list(columns)].mean().sort_index()


def _paired(samples: Any, a: str, b: str, columns: Sequence[str]) -> tuple[Any, Any]:
    ma, mb = prompt_means(samples, a, columns), prompt_means(samples, b, columns)
    if not ma.index.equals(mb.index):
        raise ValueError(f"modes {a!r} and {b!r} were not evaluated on the same prompts")
    return ma, mb


def mode_difference(samples: Any, a: str, b: str, channels: Sequence[str], w: Sequence[float],
                    n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> Any:
    """Held-out means of modes ``a`` and ``b`` and their paired difference ``b - a``, per channel and aggregate.

    Returns
    -------
    pandas.DataFrame
        Index: the channels and ``"aggregate"`` (``w^T r``); columns ``a``, ``b``,
        ``"difference"`` (``b - a``), ``"lo"``, ``"hi"`` (bootstrap over prompts) and ``"prompts"``.
    """
    import pandas as pd

    wv = check_weights(w, len(channels))
    cols = list(channels)
    ma, mb = _paired(samples, a, b, cols)
    ma["aggregate"], mb["aggregate"] = ma[cols].to_numpy() @ wv, mb[cols].to_numpy() @ wv
    d = (mb - ma).to_numpy()  # (P, R + 1)
    W = bootstrap_weights(len(d), n_boot, seed)
    lo_hi = percentile_ci((W @ d) / len(d), ci)
    return pd.DataFrame({a: ma.mean().to_numpy(), b: mb.mean().to_numpy(), "difference": d.mean(axis=0),
                         "lo": lo_hi[:, 0], "hi": lo_hi[:, 1], "prompts": len(d)}, index=[*cols, "aggregate"])


def reply_lengths(samples: Any, n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> Any:
    """The reply-length distribution of each mode, with bootstrap intervals over prompts.

    Returns
    -------
    pandas.DataFrame
        One row per mode: mean new tokens [lo, hi], median, the 10% quantile, the share
        of empty replies (nothing but whitespace) [lo, hi] and the share cut off at the
        token budget, and the number of replies.
    """
    import pandas as pd

    s = samples.assign(empty=samples["completion"].str.strip().eq("").astype(float),
                       cut=(~samples["ended"].astype(bool)).astype(float))
    rows = {}
    for mode in dict.fromkeys(s["mode"]):
        per_prompt = prompt_means(s, mode, ["n_tokens", "empty", "cut"]).to_numpy()
        W = bootstrap_weights(len(per_prompt), n_boot, seed)
        (len_lo, len_hi), (emp_lo, emp_hi), _ = percentile_ci((W @ per_prompt) / len(per_prompt), ci)
        lengths = s.loc[s["mode"] == mode, "n_tokens"].to_numpy(dtype=float)
        rows[mode] = {"mean tokens": lengths.mean(), "lo": len_lo, "hi": len_hi, "median": np.median(lengths),
                      "10% quantile": np.quantile(lengths, 0.1),
                      "empty share": per_prompt[:, 1].mean(), "empty lo": emp_lo, "empty hi": emp_hi,
                      "cut-off share": per_prompt[:, 2].mean(), "replies": len(lengths)}
    return pd.DataFrame.from_dict(rows, orient="index")


def _interval(row: Any, digits: int = 3) -> str:
    d, lo, hi = (fmt(row[k], digits, signed=True) for k in ("difference", "lo", "hi"))
    return f"{d} [{lo}, {hi}]"


def aggregate_finding(diff: Any, a: str = "NA", b: str = "AN") -> tuple[bool, str]:
    """Finding 1, "NA and AN reach comparable aggregate reward": shown when the interval of ``b - a`` holds 0."""
    row = diff.loc["aggregate"]
    shown = bool(row["lo"] <= 0.0 <= row["hi"])
    return shown, (f"{b} - {a} on the held-out aggregate is {_interval(row)} (95% interval over "
                   f"{int(row['prompts'])} prompts): " + ("no difference is detected" if shown else
                                                           f"{b if row['difference'] > 0 else a} is higher"))


def allocation_finding(diff: Any, served: str, starved: str, a: str = "NA", b: str = "AN") -> tuple[bool, str]:
    """Finding 2, "AN over-serves ``served`` at the expense of ``starved``, NA keeps them balanced".

    Shown when ``b - a`` is above 0 on ``served`` and below 0 on ``starved``, both intervals excluding 0.
    """
    up, down = diff.loc[served], diff.loc[starved]
    more = bool(up["lo"] > 0)
    less = bool(down["hi"] < 0)
    words = {(True, True): f"{b} puts more on {served} and less on {starved} than {a}",
             (True, False): f"{b} puts more on {served} than {a}, but not detectably less on {starved}",
             (False, True): f"{b} puts less on {starved} than {a}, but not detectably more on {served}",
             (False, False): f"no detectable shift between {served} and {starved}"}
    return more and less, (f"{words[(more, less)]} ({b} - {a}: {served} {_interval(up)}, "
                           f"{starved} {_interval(down)})")


def collapse_finding(lengths: Any, mode: str = "single-reward", base: str = "untrained") -> tuple[bool, str]:
    """Finding 3, "single-reward GRPO collapses to empty replies": shown when most of ``mode``'s replies are empty.

    "Most" is judged on the interval: its lower end above one half.
    """
    m, b = lengths.loc[mode], lengths.loc[base]
    shown = bool(m["empty lo"] > 0.5)
    detail = (f"{m['empty share']:.0%} of its replies are empty [{m['empty lo']:.0%}, {m['empty hi']:.0%}] against "
              f"{b['empty share']:.0%} before training; mean length {m['mean tokens']:.1f} tokens "
              f"[{m['lo']:.1f}, {m['hi']:.1f}] against {b['mean tokens']:.1f}")
    verdict = "collapsed to empty replies" if shown else (
        "shorter replies, no collapse" if m["hi"] < b["lo"] else "no collapse")
    return shown, f"{mode}: {verdict} ({detail})"
