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
  :func:`allocation_finding`, :func:`collapse_finding` (empty replies only; the Tier-3
  chapter now judges collapse with :func:`mrgrpo.analysis.replies.template_collapse`);
- with seeds as the unit: :func:`seed_prompt_scores` pairs two modes within seed and prompt
  (arrays ``(S, P)``), :func:`compare_modes` runs :func:`mrgrpo.analysis.paired.compare_arms`
  and the sign test on every channel and the aggregate, :func:`comparison_table` shows them.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from mrgrpo.core.checks import check_weights

from .bootstrap import bootstrap_weights, percentile_ci
from .paired import compare_arms, sign_test
from .verdicts import fmt, fmt_interval, fmt_p

__all__ = ["format_summary", "prompt_means", "mode_difference", "reply_lengths", "aggregate_finding", "allocation_finding",
           "collapse_finding", "seed_prompt_scores", "compare_modes", "comparison_table"]


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
    return fmt_interval(row["difference"], row["lo"], row["hi"], digits, signed=True)


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

    "Most" is judged on the interval: its lower end above one half. Empty replies only: the
    template collapse (most replies opening alike) is :func:`mrgrpo.analysis.replies.template_collapse`.
    """
    m, b = lengths.loc[mode], lengths.loc[base]
    shown = bool(m["empty lo"] > 0.5)
    detail = (f"{m['empty share']:.0%} of its replies are empty "
              f"{fmt_interval(None, m['empty lo'], m['empty hi'], 0, percent=True)} against "
              f"{b['empty share']:.0%} before training; mean length {m['mean tokens']:.1f} tokens "
              f"{fmt_interval(None, m['lo'], m['hi'], 1)} against {b['mean tokens']:.1f}")
    verdict = "collapsed to empty replies" if shown else (
        "shorter replies, no collapse" if m["hi"] < b["lo"] else "no collapse")
    return shown, f"{mode}: {verdict} ({detail})"


def seed_prompt_scores(samples: Any, a: str, b: str, channels: Sequence[str], w: Sequence[float]) -> dict:
    """Per-prompt held-out scores of modes ``a`` and ``b``, paired within seed and prompt.

    Seeds are the unit: row ``s`` holds seed ``s``'s replies, column ``p`` prompt ``p`` of
    that seed's held-out split (sorted), the same prompt in both modes. A seed is used when
    both modes have it; the untrained policy (one evaluation per split) is matched to every
    seed whose split it evaluated.

    Returns
    -------
    dict
        ``{name: (A, B)}`` for each channel and ``"aggregate"`` (``w^T r``), arrays of shape
        ``(S, P)``, plus ``"seeds"``: the seeds of the rows.
    """
    wv = check_weights(w, len(channels))
    cols = list(channels)
    rows = {m: samples[samples["mode"] == m] for m in (a, b)}
    for m, r in rows.items():
        if r.empty:
            raise ValueError(f"no evaluated replies of mode {m!r}; modes present: {sorted(set(samples['mode']))}")

    def per_prompt(mode: str, seed: Any, prompts: Any = None) -> Any:
        r = rows[mode]
        own = r[r["seed"] == seed]
        if own.empty and mode == "untrained" and prompts is not None:
            own = r[r["prompt"].isin(prompts)]
        return None if own.empty else own.groupby("prompt")[cols].mean().sort_index()

    seeds = sorted(set(rows[a]["seed"]) | set(rows[b]["seed"]))
    A, B, used = [], [], []
    for s in seeds:
        ma = per_prompt(a, s)
        mb = per_prompt(b, s, None if ma is None else ma.index)
        if ma is None and mb is not None:
            ma = per_prompt(a, s, mb.index)
        if ma is None or mb is None:
            continue
        if not ma.index.equals(mb.index):
            raise ValueError(f"modes {a!r} and {b!r} were not evaluated on the same prompts at seed {s}")
        A.append(ma.to_numpy(float))
        B.append(mb.to_numpy(float))
        used.append(s)
    if not used:
        raise ValueError(f"modes {a!r} and {b!r} share no seed")
    if len({x.shape for x in A}) > 1:
        raise ValueError(f"the seeds' held-out splits differ in size: {[x.shape[0] for x in A]} prompts")
    A3, B3 = np.stack(A), np.stack(B)  # (S, P, R)
    out = {c: (A3[..., i], B3[..., i]) for i, c in enumerate(cols)}
    out["aggregate"] = (A3 @ wv, B3 @ wv)
    out["seeds"] = used
    return out


def compare_modes(samples: Any, a: str, b: str, channels: Sequence[str], w: Sequence[float], *,
                  margins: Mapping[str, float], expected: Mapping[str, int], n_boot: int = 2000,
                  seed: int = 0) -> dict:
    """:func:`~mrgrpo.analysis.paired.compare_arms` of ``a - b`` on every channel and the aggregate.

    ``margins`` and ``expected`` give each name (the channels and ``"aggregate"``) its
    equivalence margin, stated before the runs, and its expected sign (+1, 0, -1).
    Returns ``{name: (ArmComparison, SignTest)}`` in the order channels, then aggregate.
    """
    scores = seed_prompt_scores(samples, a, b, channels, w)
    out = {}
    for name in [*channels, "aggregate"]:
        if name not in margins or name not in expected:
            raise ValueError(f"no margin or expected sign for {name!r}; give both for {[*channels, 'aggregate']}")
        A, B = scores[name]
        out[name] = (compare_arms(A, B, margin=margins[name], expected_sign=expected[name], n_boot=n_boot,
                                  seed=seed, names=(a, b), what=name), sign_test(A - B))
    return out


def comparison_table(comparisons: Mapping[str, Any], digits: int = 3) -> Any:
    """For display: one row per name of :func:`compare_modes`, the paired difference, its intervals, TOST, verdict.

    When every row compares the same two arms the difference column is named after them
    (``"AN - NA [95% t]"``); otherwise a column ``a - b`` names each row's arms and the
    difference column is ``"a - b [95% t]"``.
    """
    import pandas as pd

    pairs = {tuple(c.names) for c, _ in comparisons.values()}
    one_pair = len(pairs) == 1
    rows = {}
    for name, (c, st) in comparisons.items():
        d, e = c.difference, c.equivalence
        verdict = c.verdict + (" (against the expected direction)" if c.against_expected else "")
        label = f"{c.names[0]} - {c.names[1]}"
        rows[name] = {**({} if one_pair else {"a - b": label}),
                      "per seed": ", ".join(fmt(v, digits, signed=True) for v in d.per_seed),
                      f"{label if one_pair else 'a - b'} [95% t]": fmt_interval(d.mean, d.t_lo, d.t_hi, digits,
                                                                                signed=True),
                      "bootstrap": fmt_interval(None, d.boot_lo, d.boot_hi, digits, signed=True),
                      "TOST": f"±{fmt(e.margin, 2)}: {fmt_p(e.p)}" + (" (equivalent)" if e.equivalent else ""),
                      "verdict": verdict,
                      "sign test (ahead/behind/ties)": f"{st.ahead}/{st.behind}/{st.ties}, {fmt_p(st.p)}"}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(f"{d.n_seeds} seeds x {d.n_prompts} prompts")


def format_summary(summary: Any, digits: int = 3) -> Any:
    """:func:`mrgrpo.train.held_out_summary` for people.

    Every mean to ``digits`` decimals; the aggregate as ``"mean ± sd"`` with its standard
    deviation over seeds, or the mean alone where there is no spread (the untrained policy, an
    arm of one run); ``runs`` as integers.

    Parameters
    ----------
    summary : pandas.DataFrame
        One row per policy; columns the channel means, ``aggregate``, ``aggregate sd`` and ``runs``.

    Returns
    -------
    pandas.DataFrame
        The same rows; columns the channels, ``aggregate`` and ``runs``.
    """
    missing = [c for c in ("aggregate", "aggregate sd", "runs") if c not in summary.columns]
    if missing:
        raise ValueError(f"not a held-out summary: no columns {missing}")
    table = summary.drop(columns=["aggregate sd", "runs"]).map(lambda v: fmt(v, digits))
    table["aggregate"] = [fmt(a, digits) if not np.isfinite(sd) else f"{fmt(a, digits)} ± {fmt(sd, digits)}"
                          for a, sd in zip(summary["aggregate"], summary["aggregate sd"])]
    table["runs"] = summary["runs"].astype(int)
    return table
