"""What trained policies say: template collapse, diversity, length, budget cuts, relevance, and a gallery.

A reward can be earned by a reply that does not answer: a fixed apology that ends early
collects politeness and an "action" question on every prompt. These measures read the
replies themselves, per arm, so a reward gain that is gaming can be called that.

Text rules: *words*, *relevant* and *echo* are :mod:`mrgrpo.rewards.text`'s (the hardened
fintech reward uses the same ones); lengths are in those words, not in model tokens, so they
compare across tokenizers. Here:

- *opening*: a reply's first :data:`OPENING_WORDS` words (fewer when it is shorter; an empty
  reply's opening is ``""``, so empty replies share one opening);
- *distinct-2*: distinct word bigrams over all bigrams of the arm's replies (Li et al.,
  2016); it falls when replies repeat each other or themselves, and also with length, so
  compare arms of similar lengths;
- *cut*: the reply did not end by itself (no EOS within the token budget).

:func:`template_collapse` is the collapse verdict (it supersedes the empty-replies-only
:func:`mrgrpo.analysis.held_out.collapse_finding`: an all-empty arm is one template).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from mrgrpo.core.checks import as_sequence
from mrgrpo.rewards.text import is_echo, is_relevant, words

from .verdicts import fmt

__all__ = ["OPENING_WORDS", "TEMPLATE_SHARE", "opening", "distinct_n", "ReplyStats", "reply_stats",
           "gaming_table", "TemplateCollapse", "template_collapse", "gallery", "format_gallery"]

#: Words in a reply's opening.
OPENING_WORDS = 5
#: An arm has collapsed to a template when more than this share of its replies open alike.
TEMPLATE_SHARE = 0.5


def opening(text: str, n: int = OPENING_WORDS) -> str:
    """The first ``n`` words of ``text``, joined by single spaces (``""`` for an empty reply)."""
    return " ".join(words(text)[:n])


def distinct_n(replies: Sequence[str], n: int = 2) -> float:
    """Distinct word ``n``-grams over all ``n``-grams of ``replies`` (NaN when there is none)."""
    grams = [tuple(ws[i:i + n]) for ws in map(words, replies) for i in range(len(ws) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")


# --------------------------------------------------------------------------- per arm
@dataclass(frozen=True)
class ReplyStats:
    """The measures of one arm's replies (shares are in [0, 1]; rewards are means, NaN with no reply)."""

    n: int
    top_opening: str
    top_opening_share: float
    distinct_2: float
    mean_words: float
    empty_share: float
    cut_share: float
    relevant_share: float
    echo_share: float
    reward_finished: Mapping[str, float]
    reward_cut: Mapping[str, float]


def _bools(x, name: str, n: int) -> np.ndarray:
    arr = np.asarray(as_sequence(x, name))
    if arr.shape != (n,):
        raise ValueError(f"{name} must have one entry per reply ({n}), got shape {arr.shape}")
    if arr.dtype.kind != "b":
        if arr.dtype.kind not in "iuf" or not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must be booleans (or 0/1), got {arr[:5]!r}")
    return arr.astype(bool)


def reply_stats(replies: Sequence[str], *, requests: Sequence[str], cut: Sequence[bool],
                rewards: Mapping[str, Sequence[float]] | None = None) -> ReplyStats:
    """Gaming measures of one arm: ``replies`` ``(n,)`` to ``requests`` ``(n,)``, ``cut`` ``(n,)`` at the budget.

    ``rewards`` maps a channel name to its ``(n,)`` rewards; each channel's mean is given on
    the finished and on the cut replies (NaN when an arm has none of one kind).
    """
    reps, reqs = as_sequence(replies, "replies"), as_sequence(requests, "requests")
    n = len(reps)
    if n == 0:
        raise ValueError("no replies")
    if len(reqs) != n:
        raise ValueError(f"requests must have one entry per reply ({n}), got {len(reqs)}")
    cut_a = _bools(cut, "cut", n)
    toks = [words(r) for r in reps]
    top, count = Counter(" ".join(t[:OPENING_WORDS]) for t in toks).most_common(1)[0]
    fin, cuts = {}, {}
    for ch, vals in (rewards or {}).items():
        v = np.asarray(as_sequence(vals, f"rewards[{ch!r}]"), dtype=float)
        if v.shape != (n,) or not np.isfinite(v).all():
            raise ValueError(f"rewards[{ch!r}] must be {n} finite numbers, got shape {v.shape}")
        fin[ch] = float(v[~cut_a].mean()) if (~cut_a).any() else float("nan")
        cuts[ch] = float(v[cut_a].mean()) if cut_a.any() else float("nan")
    return ReplyStats(
        n=n, top_opening=top, top_opening_share=count / n, distinct_2=distinct_n(reps, 2),
        mean_words=float(np.mean([len(t) for t in toks])), empty_share=float(np.mean([not t for t in toks])),
        cut_share=float(cut_a.mean()), relevant_share=float(np.mean([is_relevant(q, r) for q, r in zip(reqs, reps)])),
        echo_share=float(np.mean([is_echo(q, r) for q, r in zip(reqs, reps)])), reward_finished=fin, reward_cut=cuts)


def gaming_table(samples: Any, *, channels: Sequence[str] = (), channel: str | None = None,
                 mode_col: str = "mode", run_col: str | None = "seed", per_run: bool = False) -> Any:
    """:func:`reply_stats` of every arm of ``samples``: per run (one trained policy), then averaged per arm.

    Template collapse is a property of one policy (two seeds may settle on two different
    templates), so every measure is taken within a run (the rows sharing ``mode_col`` and
    ``run_col``) and an arm's row is the mean over its runs; its ``top opening`` is the
    opening of the run where it is most common. ``run_col=None`` pools an arm's replies.

    Parameters
    ----------
    samples : pandas.DataFrame
        Evaluated replies (:attr:`mrgrpo.train.experiment.Comparison.samples`): columns
        ``mode_col``, ``run_col``, ``prompt``, ``completion``, ``ended`` and the reward ``channels``.
    channel : str, optional
        The channel shown on finished vs cut replies (the fintech ``action``); default the
        last of ``channels``.
    per_run : bool
        Return one row per run (index ``(arm, run)``) instead of per arm.

    Returns
    -------
    pandas.DataFrame
        Index: the arms in order of appearance (``"arm"``); columns ``runs``, ``replies``,
        ``top opening`` and ``top opening max share`` (the run where one opening is most
        common), then means over the runs: ``top opening share`` (each run's own most common
        opening), ``distinct-2``, ``mean words``, ``empty share``, ``cut share``,
        ``relevant share``, ``echo share``; last ``<channel> finished`` and ``<channel> cut``,
        pooled over the arm's finished (cut) replies, NaN when there are none.
    """
    import pandas as pd

    need = {mode_col, "prompt", "completion", "ended", *channels} | ({run_col} if run_col else set())
    missing = need - set(samples.columns)
    if missing:
        raise ValueError(f"samples lack the columns {sorted(missing)}")
    chans = list(channels)
    shown = channel if channel is not None else (chans[-1] if chans else None)
    if shown is not None and shown not in chans:
        raise ValueError(f"channel {shown!r} is not one of channels {chans}")
    keys = [mode_col, run_col] if run_col else [mode_col]
    rows = []
    for key, g in samples.groupby(keys, sort=False):
        st = _stats_of(g, chans)
        rows.append({"arm": key[0], "run": key[1] if run_col else 0, "replies": st.n, "top opening": st.top_opening,
                     "top opening share": st.top_opening_share, "distinct-2": st.distinct_2,
                     "mean words": st.mean_words, "empty share": st.empty_share, "cut share": st.cut_share,
                     "relevant share": st.relevant_share, "echo share": st.echo_share,
                     **_finished_cut(st, shown)})
    runs = pd.DataFrame(rows)
    if per_run:
        return runs.set_index(["arm", "run"])
    by = runs.groupby("arm", sort=False)
    table = by[["top opening share", "distinct-2", "mean words", "empty share", "cut share", "relevant share",
                "echo share"]].mean()
    best = runs.loc[by["top opening share"].idxmax()].set_index("arm")
    table.insert(0, "top opening max share", best["top opening share"])
    table.insert(0, "top opening", best["top opening"])
    table.insert(0, "replies", by["replies"].sum())
    table.insert(0, "runs", by.size())
    if shown is not None:  # pooled over the arm's replies: a run may have only one cut reply
        pooled = {arm: _finished_cut(_stats_of(g, [shown]), shown) for arm, g in samples.groupby(mode_col, sort=False)}
        for col in (f"{shown} finished", f"{shown} cut"):
            table[col] = [pooled[arm][col] for arm in table.index]
    return table


def _stats_of(g: Any, chans: Sequence[str]) -> ReplyStats:
    return reply_stats(g["completion"].tolist(), requests=g["prompt"].tolist(), cut=~g["ended"].astype(bool),
                       rewards={c: g[c].to_numpy(float) for c in chans})


def _finished_cut(st: ReplyStats, shown: str | None) -> dict[str, float]:
    if shown is None:
        return {}
    return {f"{shown} finished": st.reward_finished[shown], f"{shown} cut": st.reward_cut[shown]}


# --------------------------------------------------------------------------- the collapse verdict
@dataclass(frozen=True)
class TemplateCollapse:
    """Has an arm collapsed to a template? ``kind`` is ``"empty"``, ``"template"`` or ``None``.

    ``share`` is the mean over the arm's runs of the share of a run's replies that open with
    its most common opening (empty replies are one opening); ``max_share`` and ``opening``
    are those of the run where it is largest.
    """

    arm: str
    collapsed: bool
    kind: str | None
    share: float
    max_share: float
    opening: str
    runs: int
    empty_share: float
    threshold: float
    base: str | None
    base_share: float      # ``share`` of the baseline arm (NaN without one)
    distinct_2: float
    base_distinct_2: float

    def sentence(self) -> str:
        pct = lambda x: fmt(x, 0, percent=True)  # noqa: E731
        has_base = self.base is not None and self.base != self.arm
        runs = f"{self.runs} runs" if self.runs != 1 else "1 run"
        where = (f"on average {pct(self.share)} of a run's replies open with its most common five words "
                 f"({runs}; the most: {pct(self.max_share)}, \"{self.opening}\")")
        before = f"; before training {pct(self.base_share)}" if has_base else ""
        div = f"; distinct-2 {fmt(self.distinct_2, 2)}"
        div += f" against {fmt(self.base_distinct_2, 2)}" if has_base else ""
        head = {"empty": f"collapsed to empty replies ({pct(self.empty_share)} empty)",
                "template": "collapsed to a template", None: "no template collapse"}[self.kind]
        return f"{self.arm}: {head}: {where}{before}{div} (collapse: more than {pct(self.threshold)} open alike)"


def template_collapse(table: Any, arm: str, *, base: str | None = "untrained",
                      threshold: float = TEMPLATE_SHARE) -> TemplateCollapse:
    """The collapse verdict for ``arm`` of a :func:`gaming_table`: more than ``threshold`` of its replies open alike.

    Judged on the mean over the arm's runs of each run's top-opening share. Empty replies
    share one opening, so an arm of mostly empty replies has collapsed too (``kind ==
    "empty"`` when more than ``threshold`` of its replies are empty). ``base`` (an arm of the
    table, or None) is shown beside it; it does not change the verdict.
    """
    if isinstance(threshold, (bool, str)) or not 0.0 < float(threshold) < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
    need = {"top opening", "top opening share", "top opening max share", "empty share", "distinct-2", "runs"}
    if not need <= set(table.columns):
        raise ValueError(f"table lacks {sorted(need - set(table.columns))}: pass gaming_table(...) (per arm)")
    for name in [arm] + ([base] if base is not None else []):
        if name not in table.index:
            raise ValueError(f"no arm {name!r} in the table; arms: {list(table.index)}")
    r = table.loc[arm]
    collapsed = bool(r["top opening share"] > threshold)
    kind = None if not collapsed else ("empty" if r["empty share"] > threshold else "template")
    b = table.loc[base] if base is not None else None
    return TemplateCollapse(arm=str(arm), collapsed=collapsed, kind=kind, share=float(r["top opening share"]),
                            max_share=float(r["top opening max share"]), opening=str(r["top opening"]),
                            runs=int(r["runs"]), empty_share=float(r["empty share"]), threshold=float(threshold),
                            base=base, base_share=float(b["top opening share"]) if b is not None else float("nan"),
                            distinct_2=float(r["distinct-2"]),
                            base_distinct_2=float(b["distinct-2"]) if b is not None else float("nan"))


# --------------------------------------------------------------------------- gallery
def gallery(samples: Any, channels: Sequence[str], *, prompts: Sequence[str] | None = None, n: int = 3,
            seed: int | None = None, arms: Sequence[str] | None = None, mode_col: str = "mode",
            seedless: Sequence[str] = ("untrained",)) -> Any:
    """The same held-out prompts across arms, each reply with its per-channel rewards.

    Parameters
    ----------
    prompts : sequence of str, optional
        The prompts to show; default the first ``n`` (sorted) that every arm answered.
    seed : int, optional
        The training seed whose replies are shown (rows of ``samples`` with that ``seed``);
        default the seed that most trained arms have (the smallest among equals).
    arms : sequence of str, optional
        Arms and their order; each must have replies at ``seed``. Default: in order of
        appearance, every arm that has replies at ``seed``.
    seedless : sequence of str
        Arms whose replies do not depend on the training seed: the untrained policy's greedy
        reply depends on the prompt only, so its reply to a prompt from any seed's run stands
        for every seed (also when each seed drew its own held-out split).

    Returns
    -------
    pandas.DataFrame
        Index ``(prompt, arm)``; columns ``reply``, the ``channels``, ``words`` and ``cut``;
        ``attrs["seed"]`` is the seed shown.
    """
    import pandas as pd

    chans = as_sequence(channels, "channels")
    free = set(as_sequence(seedless, "seedless"))
    present = list(dict.fromkeys(samples[mode_col]))
    if arms is not None:
        arm_list = as_sequence(arms, "arms")
        missing = [a for a in arm_list if a not in present]
        if missing:
            raise ValueError(f"no replies of arms {missing}; arms present: {sorted(present)}")
    seeds_of = {a: set(samples.loc[samples[mode_col] == a, "seed"]) for a in present}
    seeded = [a for a in (arm_list if arms is not None else present) if a not in free]
    if seed is None and seeded:
        counts = Counter(s_ for a in seeded for s_ in seeds_of[a])
        seed = min(counts, key=lambda s_: (-counts[s_], s_))
    if arms is None:
        arm_list = [a for a in present if a in free or seed in seeds_of[a]]
    lacking = [a for a in arm_list if a not in free and seed not in seeds_of[a]]
    if lacking:
        raise ValueError(f"arms {lacking} have no replies at seed {seed}; pass seed= or arms=")
    parts = []
    for a in arm_list:
        r = samples[samples[mode_col] == a]
        parts.append(r.drop_duplicates("prompt") if a in free else r[r["seed"] == seed])
    rows = pd.concat(parts)
    shared = set.intersection(*(set(rows.loc[rows[mode_col] == a, "prompt"]) for a in arm_list))
    if prompts is None:
        chosen = sorted(shared)[: int(n)]
    else:
        chosen = as_sequence(prompts, "prompts")
        absent = [p for p in chosen if p not in shared]
        if absent:
            raise ValueError(f"{len(absent)} prompts are not answered by every arm at seed {seed}: {absent[:2]}")
    out = []
    for p in chosen:
        for a in arm_list:
            r = rows[(rows["prompt"] == p) & (rows[mode_col] == a)].iloc[0]
            out.append({"prompt": p, "arm": a, "reply": r["completion"], **{c: float(r[c]) for c in chans},
                        "words": len(words(r["completion"])), "cut": not bool(r["ended"])})
    table = pd.DataFrame(out).set_index(["prompt", "arm"])
    table.attrs["seed"] = seed
    return table


def format_gallery(table: Any, digits: int = 2) -> Any:
    """:func:`gallery` for people: rewards to ``digits`` decimals, ``cut`` as ``"yes"`` / ``"no"``."""
    t = table.copy()
    for c in t.columns:
        if c not in ("reply", "words", "cut"):
            t[c] = t[c].map(lambda v: fmt(v, digits))
    t["cut"] = t["cut"].map(lambda v: "yes" if v else "no")
    return t
