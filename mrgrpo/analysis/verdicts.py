"""Verdict sentences computed from the numbers they judge.

The book's chapters glue these sentences (or their key words) into their prose, so a
verdict cannot contradict the table beside it: change a number and the sentence changes
with it (``tests/analysis/test_verdicts.py`` rebuilds every verdict from a perturbed table and
checks exactly that). Every function takes plain numbers or arrays and returns text (or a
small dataclass with a ``sentence``); none knows about a model, a task or the paper, so a
chapter run on another model or corpus gets verdicts about its own numbers.

Formatting rules shared by the book: a rounded zero loses its sign (never ``-0.000``), a
missing number reads ``n/a``, a p-value below double precision's resolution reads
``p < 1e-16``, and an interval is written one way, by :func:`fmt_interval`
(``"0.955 [0.88, 1.03]"``). The thresholds that decide a verdict's words live in
:mod:`mrgrpo.analysis.thresholds`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .thresholds import agrees_to_digits

__all__ = [
    "fmt", "fmt_interval", "fmt_p", "join_words", "yes_no", "count_sentence", "range_sentence",
    "preference_sentence", "SeedComparison", "compare_seeds", "kappa_comparison", "precision_verdict",
    "lowest_regions", "runs_where", "regions_sentence", "intervals_sentence",
    "trend_sentence",
    "ranking_agreement", "dashboard_entries", "NoiseCheck", "noise_check",
]

#: p-values below this are indistinguishable from 0 in double precision.
P_FLOOR = 1e-16


# --------------------------------------------------------------------------- formatting
def fmt(x: float, digits: int = 3, signed: bool = False, percent: bool = False) -> str:
    """``x`` with ``digits`` decimals (``signed``: always with its sign, ``+0.000`` for zero;
    ``percent``: ``x`` is a share, printed as ``100 x`` with a ``%``, as ``f"{x:.0%}"`` does);
    ``n/a`` for NaN or None; a rounded zero is ``0``, never ``-0``."""
    if x is None or not np.isfinite(float(x)):
        return "n/a"
    v = round(float(x) * 100 if percent else float(x), digits)
    return f"{(v if v != 0 else 0.0):{'+' if signed else ''}.{digits}f}" + ("%" if percent else "")


def fmt_interval(value: float | None, lo: float, hi: float, digits: int = 3, *, ci_digits: int | None = None,
                 signed: bool = False, percent: bool = False) -> str:
    """A number and its interval, ``"0.955 [0.88, 1.03]"``; with ``value=None`` the interval alone, ``"[0.88, 1.03]"``.

    The book's one way to write an interval. Every number goes through :func:`fmt` (so no
    ``-0`` and ``n/a`` for NaN); ``ci_digits`` (default ``digits``) sets the ends' decimals,
    ``signed`` and ``percent`` apply to all three numbers.
    """
    d = digits if ci_digits is None else ci_digits
    ends = f"[{fmt(lo, d, signed, percent)}, {fmt(hi, d, signed, percent)}]"
    return ends if value is None else f"{fmt(value, digits, signed, percent)} {ends}"


def fmt_p(p: float, prefix: bool = True) -> str:
    """A p-value as text: ``p < 1e-16``, ``p = 0.049``, ``p = 3.2e-05``, ``p = n/a``.

    With ``prefix=False`` (a table cell): ``< 1e-16``, ``0.049``, ``3.2e-05``, ``n/a``.
    """
    if p is None or not np.isfinite(float(p)):
        text = "= n/a"
    elif float(p) < P_FLOOR:
        text = f"< {P_FLOOR:.0e}"
    else:
        text = f"= {float(p):.2g}" if float(p) >= 1e-3 else f"= {float(p):.1e}"
    if prefix:
        return "p " + text
    return text.removeprefix("= ")


def join_words(items: Sequence) -> str:
    """``"a"``, ``"a and b"``, ``"a, b and c"``."""
    items = [str(i) for i in items]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def yes_no(flag: bool, detail: str = "") -> str:
    """``"yes"`` / ``"no"``, with the numbers behind it in parentheses when given."""
    word = "yes" if bool(flag) else "no"
    return f"{word} ({detail})" if detail else word


def _label(v) -> str:
    """Integers print as integers (a group size 4.0 reads 4)."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def count_sentence(flags: Sequence[bool], labels: Sequence, label_name: str = "m", noun: str = "rows") -> str:
    """How many of ``flags`` hold, and where: ``"3 of 4 rows (m = 4, 16 and 32)"``.

    Parameters
    ----------
    flags : sequence of bool, shape ``(n,)``
    labels : sequence, shape ``(n,)``
        What each flag is about (a group size, a row name).
    """
    flags = [bool(f) for f in flags]
    if len(flags) != len(labels):
        raise ValueError(f"flags and labels differ in length: {len(flags)} vs {len(labels)}")
    hit = [_label(lab) for f, lab in zip(flags, labels) if f]
    n = len(flags)
    if not hit:
        return f"none of the {n} {noun}"
    where = f" ({label_name} = {join_words(hit)})" if label_name else f" ({join_words(hit)})"
    if len(hit) == n:
        return f"all {n} {noun}" if n > 1 else f"the one row{where}"
    return f"{len(hit)} of {n} {noun}{where}"


def range_sentence(values: Sequence[float], labels: Sequence, label_name: str = "m", digits: int = 2) -> str:
    """``"between 0.94 (m = 8) and 1.25 (m = 4)"``, or one value when they all round alike."""
    v = np.asarray(values, dtype=float)
    if v.size == 0 or v.size != len(labels):
        raise ValueError("range_sentence needs one label per value and at least one value")
    ok = np.isfinite(v)
    if not ok.any():
        return "n/a"
    lo, hi = int(np.nanargmin(v)), int(np.nanargmax(v))
    if fmt(v[lo], digits) == fmt(v[hi], digits):
        return f"{fmt(v[lo], digits)} at every {label_name}" if label_name else fmt(v[lo], digits)
    tag = (lambda i: f" ({label_name} = {_label(labels[i])})") if label_name else (lambda i: f" ({labels[i]})")
    return f"between {fmt(v[lo], digits)}{tag(lo)} and {fmt(v[hi], digits)}{tag(hi)}"


# --------------------------------------------------------------------------- Monte-Carlo deviations
@dataclass(frozen=True)
class NoiseCheck:
    """Standardized deviations ``z = (sim - theory) / SE`` of ``n`` points against their chance bound."""

    n: int
    max_z: float
    bound: float     # two-sided Bonferroni bound: chance exceeds it at one of n points with prob. <= alpha
    alpha: float

    @property
    def ok(self) -> bool:
        return bool(self.max_z <= self.bound)

    def sentence(self) -> str:
        where = "within" if self.ok else "beyond"
        pts = "point" if self.n == 1 else "points"
        return (f"largest deviation {self.max_z:.1f} SE over {self.n} {pts}, {where} the {self.bound:.1f} SE "
                f"that pure noise exceeds with probability {self.alpha:.0%}")


def noise_check(z: Sequence[float], alpha: float = 0.05) -> NoiseCheck:
    """Are simulation-minus-theory deviations ``z`` (in standard errors) what noise alone gives?

    The bound is Bonferroni's two-sided ``Phi^-1(1 - alpha / (2 n))``: with ``n`` independent
    points the largest ``|z|`` exceeds it with probability at most ``alpha``.
    """
    from scipy.stats import norm

    zs = np.abs(np.asarray(z, dtype=float).ravel())
    zs = zs[np.isfinite(zs)]
    if zs.size == 0:
        raise ValueError("noise_check needs at least one finite z")
    return NoiseCheck(int(zs.size), float(zs.max()), float(norm.isf(alpha / (2 * zs.size))), float(alpha))


# --------------------------------------------------------------------------- the worked example (intro)
def preference_sentence(adv, first: str, second: str, modes: Sequence[str] | None = None, digits: int = 3,
                        tol: float = 1e-9) -> str:
    """Which of two rollouts each estimator ranks higher, and by how much.

    Parameters
    ----------
    adv : mapping ``mode -> {rollout: advantage}`` (a DataFrame with one column per mode works)
    first, second : str
        The two rollouts to compare.
    modes : sequence of str, optional
        Columns to read (default: all of ``adv``).
    """
    modes = list(adv.keys()) if modes is None else list(modes)
    if not modes:
        raise ValueError("preference_sentence needs at least one mode")
    gaps = {m: float(adv[m][first]) - float(adv[m][second]) for m in modes}
    winners = {m: (first if g > tol else second if g < -tol else None) for m, g in gaps.items()}
    if len(set(winners.values())) == 1 and None not in winners.values():
        w = winners[modes[0]]
        loser = second if w == first else first
        by = join_words(f"{fmt(abs(gaps[m]), digits)} under {m}" for m in modes)
        both = "both rank" if len(modes) == 2 else "all rank" if len(modes) > 2 else "ranks"
        return f"{join_words(modes)} {both} {w} above {loser}: by {by}"
    parts = []
    for m in modes:
        if winners[m] is None:
            parts.append(f"{m} gives {first} and {second} the same advantage")
        else:
            loser = second if winners[m] == first else first
            parts.append(f"{m} ranks {winners[m]} above {loser} (by {fmt(abs(gaps[m]), digits)})")
    return "; ".join(parts)


# --------------------------------------------------------------------------- seeds (Tier 3)
@dataclass(frozen=True)
class SeedComparison:
    """Two means over seeds: the gap against ``k`` seed SDs, and Welch's unequal-variance t-test."""

    label_a: str
    label_b: str
    mean_a: float
    mean_b: float
    sd_a: float
    sd_b: float
    n_a: int
    n_b: int
    k: float
    difference: float   # |mean_a - mean_b|
    threshold: float    # k * max(sd_a, sd_b); NaN without two seeds on each side
    t: float
    dof: float
    p: float
    alpha: float

    @property
    def within(self) -> bool | None:
        """True when the means differ by less than ``k`` seed SDs (None when there is no SD)."""
        return None if not np.isfinite(self.threshold) else bool(self.difference < self.threshold)

    @property
    def significant(self) -> bool | None:
        return None if not np.isfinite(self.p) else bool(self.p < self.alpha)

    def sentence(self, digits: int = 3) -> str:
        head = f"{self.label_a} and {self.label_b} differ by {fmt(self.difference, digits)}"
        if self.within is None:
            return head + " (fewer than two seeds on one side: no seed SD to compare with, no test)"
        k = _label(self.k)
        sd = fmt(max(self.sd_a, self.sd_b), digits)
        word = "less" if self.within else "more"
        verdict = "significant" if self.significant else "not significant"
        return (f"{head}, {word} than {k} seed SDs ({k} × {sd} = {fmt(self.threshold, digits)}); Welch's t = "
                f"{fmt(self.t, 2)} on {fmt(self.dof, 1)} degrees of freedom, {fmt_p(self.p)}: "
                f"{verdict} at the {self.alpha:.0%} level")


def compare_seeds(mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float, n_b: int,
                  label_a: str = "A", label_b: str = "B", k: float = 2.0, alpha: float = 0.05) -> SeedComparison:
    """Compare two means over seeds (``sd`` the standard deviation over ``n`` seeds, ``ddof = 1``)."""
    from scipy import stats

    diff = abs(float(mean_a) - float(mean_b))
    n_a, n_b = int(n_a), int(n_b)
    sds = np.array([sd_a, sd_b], dtype=float)
    usable = n_a >= 2 and n_b >= 2 and np.isfinite(sds).all()
    thr = k * float(sds.max()) if usable else float("nan")
    t = dof = p = float("nan")
    if usable:
        va, vb = sds[0] ** 2 / n_a, sds[1] ** 2 / n_b
        se = math.sqrt(va + vb)
        if se > 0:
            t = diff / se
            dof = (va + vb) ** 2 / (va ** 2 / (n_a - 1) + vb ** 2 / (n_b - 1))
            p = float(2 * stats.t.sf(t, dof))
        else:
            t, dof, p = (float("inf"), float("nan"), 0.0) if diff > 0 else (0.0, float("nan"), 1.0)
    return SeedComparison(label_a, label_b, float(mean_a), float(mean_b), float(sd_a), float(sd_b), n_a, n_b,
                          float(k), diff, thr, t, dof, p, float(alpha))


# --------------------------------------------------------------------------- real scores
def kappa_comparison(kappa_a: Sequence[float], kappa_b: Sequence[float], labels: Sequence, name_b: str,
                     label_name: str = "m") -> str:
    """Where ``kappa_b`` is the smaller and where the larger: ``"<name_b> has the smaller κ in 3 of 4 rows ..."``."""
    a, b = np.asarray(kappa_a, float), np.asarray(kappa_b, float)
    if a.shape != b.shape or a.size != len(labels):
        raise ValueError("kappa_a, kappa_b and labels must have the same length")
    smaller, larger = b < a, b > a
    text = f"{name_b} has the smaller κ in {count_sentence(smaller, labels, label_name)}"
    if larger.any() and smaller.any():
        text += f" and the larger in {count_sentence(larger, labels, label_name)}"
    elif larger.all():
        text = f"{name_b} has the larger κ in {count_sentence(larger, labels, label_name)}"
    return text


# --------------------------------------------------------------------------- precision (Theorem 3)
def precision_verdict(values, reference, digits: int = 3) -> str:
    """Judge ``values`` against ``reference`` (elementwise, e.g. simulation against theory) to ``digits`` significant digits.

    ``digits`` significant digits means what it does in numerical analysis: the error is below
    half a unit in the ``digits``-th significant digit of the reference
    (:func:`mrgrpo.analysis.thresholds.agrees_to_digits`), so 1.240 does not reproduce 1.234 to
    three (0.006 >= 0.005) while 1.2344 reproduces 1.2341. As a relative error that is 0.05% to
    0.5%, set by the leading digit; the loosest reading, 0.5% everywhere, passed 1.240 for 1.234.

    Parameters
    ----------
    values, reference : array_like, same shape
        Points with a non-finite value or reference, or a zero reference, are skipped.
    """
    v = np.asarray(values, dtype=float).ravel()
    r = np.asarray(reference, dtype=float).ravel()
    if v.shape != r.shape:
        raise ValueError(f"values and reference differ in size: {v.size} vs {r.size}")
    use = np.isfinite(v) & np.isfinite(r) & (r != 0)
    if not use.any():
        return "n/a"
    v, r = v[use], r[use]
    ok = agrees_to_digits(v, r, digits)
    rel = float(np.max(np.abs(v / r - 1)))
    pts = "point" if v.size == 1 else "points"
    if ok.all():
        where = "at the one point" if v.size == 1 else f"at all {v.size} {pts}"
        return f"reproduced to {digits} significant digits {where} (largest relative error {rel:.2%})"
    k = int((~ok).sum())
    nth = {1: "first", 2: "second", 3: "third", 4: "fourth"}.get(int(digits), f"{int(digits)}th")
    return (f"reproduced to {rel:.1%}, not to {digits} significant digits ({k} of {v.size} {pts} "
            f"{'misses' if k == 1 else 'miss'} by half a unit in the {nth} significant digit or more)")


# --------------------------------------------------------------------------- regions of a sweep (Prop 4)
def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(first, last)`` indices of each run of True in a 1-D boolean array."""
    runs, start = [], None
    for i, f in enumerate(mask):
        if f and start is None:
            start = i
        if not f and start is not None:
            runs.append((start, i - 1))
            start = None
    if start is not None:
        runs.append((start, len(mask) - 1))
    return runs


def lowest_regions(x: Sequence[float], curves: Mapping[str, Sequence[float]]) -> list[tuple[str, float, float]]:
    """Contiguous stretches of ``x`` where each curve is the lowest: ``[(name, x_first, x_last), ...]``."""
    xv = np.asarray(x, dtype=float)
    names = list(curves)
    Y = np.vstack([np.asarray(curves[n], dtype=float) for n in names])
    if Y.shape[1] != xv.size:
        raise ValueError(f"every curve needs {xv.size} values, got shape {Y.shape}")
    best = np.argmin(Y, axis=0)
    out = []
    for i, name in enumerate(names):
        out += [(name, float(xv[a]), float(xv[b])) for a, b in _runs(best == i)]
    return sorted(out, key=lambda r: r[1])


def runs_where(x: Sequence[float], mask: Sequence[bool]) -> list[tuple[float, float]]:
    """``(x_first, x_last)`` of each run of ``mask``."""
    xv, mv = np.asarray(x, float), np.asarray(mask, bool)
    if xv.shape != mv.shape:
        raise ValueError("x and mask must have the same shape")
    return [(float(xv[a]), float(xv[b])) for a, b in _runs(mv)]


def intervals_sentence(intervals: Sequence[tuple[float, float]], x_name: str, digits: int = 2) -> str:
    """``"p_a from 0.30 to 0.60 and at 0.90"``; ``"nowhere on the grid"`` when empty."""
    if not intervals:
        return "nowhere on the grid"
    parts = [f"at {fmt(a, digits)}" if fmt(a, digits) == fmt(b, digits) else f"from {fmt(a, digits)} to {fmt(b, digits)}"
             for a, b in intervals]
    return f"{x_name} {join_words(parts)}"


def regions_sentence(regions: Sequence[tuple[str, float, float]], x_name: str, digits: int = 2) -> str:
    """``lowest_regions`` as text: ``"subgroup for p_a from 0.10 to 0.15 and from 0.70 to 0.95; zero-fill ..."``."""
    order: dict[str, list] = {}
    for name, a, b in regions:
        order.setdefault(name, []).append((a, b))
    return "; ".join(f"{name} for {intervals_sentence(iv, x_name, digits)}" for name, iv in order.items())


# --------------------------------------------------------------------------- a trend (group size)
def trend_sentence(x: Sequence[float], y: Sequence[float], x_name: str, y_name: str,
                   grid: Sequence[float] | None = None, digits: int = 2) -> str:
    """What ``y`` does as ``x`` increases: stays, rises, falls or moves without a trend.

    With ``grid`` (the values ``y`` can take, e.g. a grid of group sizes) the change is
    also counted in grid steps.
    """
    xv, yv = np.asarray(x, float), np.asarray(y, float)
    order = np.argsort(xv)
    xv, yv = xv[order], yv[order]
    if xv.size < 2:
        raise ValueError("trend_sentence needs at least two points")
    xs = f"{x_name} goes from {_label(round(xv[0], digits))} to {_label(round(xv[-1], digits))}"
    steps = ""
    if grid is not None:
        g = np.asarray(sorted(grid), float)
        pos = [int(np.argmin(np.abs(g - v))) for v in yv]
        n = max(pos) - min(pos)
        steps = f" ({n} grid step{'s' if n != 1 else ''})"
    d = np.diff(yv)
    y0, y1 = _label(round(yv[0], digits)), _label(round(yv[-1], digits))
    if np.all(d == 0):
        return f"{y_name} stays at {y0} as {xs}"
    if np.all(d >= 0):
        return f"{y_name} rises from {y0} to {y1} as {xs}{steps}"
    if np.all(d <= 0):
        return f"{y_name} falls from {y0} to {y1} as {xs}{steps}"
    lo, hi = _label(round(yv.min(), digits)), _label(round(yv.max(), digits))
    return f"{y_name} moves between {lo} and {hi} without a monotone trend as {xs}{steps}"


# --------------------------------------------------------------------------- rankings (planner)
def ranking_agreement(names: Sequence[str], rank_a: Sequence[int], rank_b: Sequence[int], label_a: str,
                      label_b: str) -> str:
    """Do two rankings of the same items agree? Says where they part when they do not."""
    ra, rb = list(rank_a), list(rank_b)
    if not (len(names) == len(ra) == len(rb)):
        raise ValueError("names and both rankings must have the same length")
    if ra == rb:
        return f"the same ranking under {label_a} and {label_b}"
    top_a, top_b = names[int(np.argmin(ra))], names[int(np.argmin(rb))]
    moved = sum(a != b for a, b in zip(ra, rb))
    if top_a == top_b:
        return (f"the same first design ({top_a}) under {label_a} and {label_b}, but {moved} of "
                f"{len(names)} designs change places below it")
    return f"a different ranking: first under {label_a} is {top_a}, under {label_b} {top_b}"


# --------------------------------------------------------------------------- the results dashboard
def dashboard_entries(prefix: str, claim: str, paper: str, ours: str, verdict: str) -> dict[str, str]:
    """The four glue values of one dashboard row, ``{prefix}_claim`` ... ``{prefix}_verdict``.

    The intro page's dashboard pastes them from each chapter (``{glue:text}`chapter.md::dash_ours```).
    """
    row = {"claim": claim, "paper": paper, "ours": ours, "verdict": verdict}
    empty = [k for k, v in row.items() if not str(v).strip()]
    if empty:
        raise ValueError(f"dashboard row {prefix!r}: empty {empty}")
    return {f"{prefix}_{k}": str(v) for k, v in row.items()}
