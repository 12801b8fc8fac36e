"""Paired comparisons of two training arms over seeds: intervals, equivalence, verdict and power.

Two arms (say AN and NA) are trained with the same seeds and evaluated on the same
held-out prompts, giving two arrays ``a``, ``b`` of shape ``(S, P)``: row ``s`` is seed
``s``, column ``p`` prompt ``p`` of that seed's held-out split (the same prompts in both
arms; the splits may differ between seeds). The unit of replication is the seed, so

- :func:`paired_difference` takes each seed's mean paired difference ``mean_p (a - b)``,
  and reports their mean with a t-interval over seeds and, beside it, a two-stage
  bootstrap (seeds, then prompts within each seed);
- :func:`equivalence_test` is the two one-sided tests (TOST) over the same per-seed
  values, against a margin stated before the runs: "comparable" is a claim it must make,
  never the absence of a detected difference;
- :func:`compare_arms` combines both into a verdict, ``"higher"``, ``"lower"``,
  ``"equivalent"`` or ``"inconclusive"``, and says when it goes against an expected sign;
- :func:`sign_test` counts the prompts on which each arm is ahead (exact binomial test);
- :func:`seeds_needed`, :func:`paired_power`, :func:`power_table`: the seeds a paired
  t-test over seeds needs to detect a gap, exactly, from the noncentral t distribution.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from mrgrpo.core.checks import SeedLike, as_generator

from .verdicts import fmt, fmt_interval, fmt_p

__all__ = ["PairedDifference", "paired_difference", "Equivalence", "equivalence_test", "ArmComparison",
           "compare_arms", "VERDICTS", "SignTest", "sign_test", "paired_power", "seeds_needed", "power_table"]

#: The verdicts of :func:`compare_arms`.
VERDICTS = ("higher", "lower", "equivalent", "inconclusive")
_BLOCK = 256  # bootstrap replicates drawn at a time


def _number(x, name: str) -> float:
    """``x`` as a finite float; ``ValueError`` for a bool, a string, NaN or inf."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(x)):
        raise ValueError(f"{name} must be a finite number, got {x!r}")
    return float(x)


def _check_alpha(alpha: float, name: str = "alpha", upper: float = 1.0) -> float:
    if not 0.0 < _number(alpha, name) < upper:
        raise ValueError(f"{name} must be in (0, {upper:g}), got {alpha}")
    return float(alpha)


def _as_values(x, name: str, ndim: int) -> np.ndarray:
    """``x`` as a finite float array with ``ndim`` dimensions; a clear ``ValueError`` otherwise."""
    if isinstance(x, (str, bytes)):
        raise ValueError(f"{name} must be an array of numbers, got a string {x[:40]!r}")
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold numbers, got dtype {arr.dtype} (strings or objects?)")
    arr = arr.astype(float)
    if arr.ndim != ndim:
        want = "(S, P): seeds x prompts" if ndim == 2 else "(n,)"
        raise ValueError(f"{name} must have shape {want}, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if not np.isfinite(arr).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"{name} has a non-finite value {arr[bad]} at index {bad}")
    return arr


# --------------------------------------------------------------------------- the paired difference
@dataclass(frozen=True)
class PairedDifference:
    """The mean paired difference ``a - b`` over seeds, with a t-interval and a two-stage bootstrap interval.

    ``per_seed`` has shape ``(S,)``. With ``S >= 2``: ``se`` is the SD of ``per_seed`` (ddof 1)
    over ``sqrt(S)``, ``df = S - 1`` and ``interval_over == "seeds"``. With ``S == 1``: ``se``
    and ``(t_lo, t_hi)`` are over the seed's ``P`` prompts (t quantile on ``P - 1`` degrees of
    freedom), ``df = 0`` (no degrees of freedom over seeds) and ``interval_over == "prompts"``.
    """

    mean: float
    per_seed: np.ndarray
    se: float
    df: int
    t_lo: float
    t_hi: float
    boot_lo: float
    boot_hi: float
    n_seeds: int
    n_prompts: int
    alpha: float
    interval_over: str


def _two_stage_bootstrap(d: np.ndarray, n_boot: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Replicates ``(n_boot,)`` of the grand mean of ``d`` ``(S, P)``: seeds resampled, then prompts within each seed.

    Davison & Hinkley (1997, sec. 3.8) two-stage resampling of residuals with their variance
    correction: a replicate is ``g + c1 mean_i a_{s_i} + c2 mean_i mean_j e_{s_i p_ij}`` (``g``
    the grand mean, ``a_s`` a seed mean's deviation from it, ``e_sp`` a prompt's from its
    seed mean). Plain resampling at both stages counts the prompt noise twice; with
    ``c2^2 = P / (P - 1)`` and ``c1^2 = S / (S - 1) (1 - s2 / (P V1))`` (``V1`` the variance of
    the seed means, ``s2`` the pooled within-seed variance) the replicates' variance is
    ``V1 / S``, unbiased. When ``V1 <= s2 / P``, ``c1 = 0`` and it is ``s2 / (S P)``. Also
    returns that variance's degrees of freedom (``S - 1``, or ``S (P - 1)`` when ``c1 = 0``).
    """
    S, P = d.shape
    seed_means = d.mean(axis=1)
    g = float(seed_means.mean())
    a, e = seed_means - g, d - seed_means[:, None]
    s2 = float((e ** 2).sum() / (S * (P - 1))) if P > 1 else 0.0
    v1 = float(a.var(ddof=1)) if S > 1 else 0.0
    seed_stage = S > 1 and v1 > s2 / P
    c1 = math.sqrt(S / (S - 1) * (1.0 - s2 / (P * v1))) if seed_stage else 0.0
    c2 = math.sqrt(P / (P - 1)) if P > 1 else 0.0
    df = S - 1 if seed_stage or P == 1 else S * (P - 1)
    out = np.empty(n_boot)
    for b0 in range(0, n_boot, _BLOCK):
        n = min(_BLOCK, n_boot - b0)
        seeds = rng.integers(0, S, size=(n, S))
        prompts = rng.integers(0, P, size=(n, S, P))
        out[b0:b0 + n] = g + c1 * a[seeds].mean(axis=1) + c2 * e[seeds[..., None], prompts].mean(axis=(1, 2))
    return out, df


def paired_difference(a, b, *, n_boot: int = 2000, seed: SeedLike = 0, alpha: float = 0.05) -> PairedDifference:
    """The paired difference ``a - b`` of two arms over seeds and prompts.

    Parameters
    ----------
    a, b : array_like, shape ``(S, P)``
        A per-prompt score (a channel's reward, the aggregate) of each arm: row ``s`` is
        seed ``s``, column ``p`` prompt ``p`` of that seed's held-out split, the same
        prompt in ``a`` and ``b``. ``S >= 1``; ``P >= 2`` when ``S == 1``.
    n_boot : int
        Bootstrap replicates.
    seed : int or numpy.random.Generator
        The bootstrap's random stream.
    alpha : float
        Both intervals are ``1 - alpha`` intervals.

    Returns
    -------
    PairedDifference
        ``mean`` is the mean over seeds of each seed's mean paired difference (``per_seed``,
        shape ``(S,)``); ``(t_lo, t_hi)`` the t-interval over seeds; ``(boot_lo, boot_hi)`` a
        two-stage bootstrap interval (seeds, then prompts within each seed, with
        Davison & Hinkley's variance correction): its percentile ends, each moved away from ``mean`` by
        the factor ``t_{1 - alpha/2, df} / z_{1 - alpha/2}`` so that a few seeds get a
        t-like width rather than a normal one. In simulations of seed and prompt effects it
        covers at about the nominal level from ``S = 4``; with ``S = 2`` the seed stage has
        only three distinct outcomes, so trust the t-interval.

    Raises
    ------
    ValueError
        Shapes that differ or are not 2-D, strings, NaN or inf, one seed with one prompt, a
        bad ``n_boot`` or ``alpha``.
    """
    from scipy import stats

    A, B = _as_values(a, "a", 2), _as_values(b, "b", 2)
    if A.shape != B.shape:
        raise ValueError(f"a and b must have the same shape (seeds x prompts), got {A.shape} and {B.shape}")
    alpha = _check_alpha(alpha)
    if isinstance(n_boot, (bool, np.bool_)) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, got {n_boot!r}")
    S, P = A.shape
    if S == 1 and P < 2:
        raise ValueError("one seed and one prompt: no interval is possible; give at least two prompts or two seeds")
    d = A - B
    per_seed = d.mean(axis=1)
    mean = float(per_seed.mean())
    if S >= 2:
        se, df, q_df, over = float(per_seed.std(ddof=1) / math.sqrt(S)), S - 1, S - 1, "seeds"
    else:
        se, df, q_df, over = float(d[0].std(ddof=1) / math.sqrt(P)), 0, P - 1, "prompts"
    q = float(stats.t.ppf(1.0 - alpha / 2.0, q_df))
    boot, boot_df = _two_stage_bootstrap(d, int(n_boot), as_generator(seed))
    lo, hi = np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0])
    widen = float(stats.t.ppf(1.0 - alpha / 2.0, boot_df) / stats.norm.ppf(1.0 - alpha / 2.0))
    return PairedDifference(mean=mean, per_seed=per_seed, se=se, df=df, t_lo=mean - q * se, t_hi=mean + q * se,
                            boot_lo=float(mean - widen * (mean - lo)), boot_hi=float(mean + widen * (hi - mean)),
                            n_seeds=S, n_prompts=P, alpha=alpha, interval_over=over)


# --------------------------------------------------------------------------- equivalence (TOST)
@dataclass(frozen=True)
class Equivalence:
    """Two one-sided t-tests of ``|mean| < margin`` over ``n`` units (seeds, or prompts with one seed).

    ``p_lower`` tests H0 ``mean <= -margin``, ``p_upper`` H0 ``mean >= margin``; ``p`` is the
    larger, ``equivalent`` is ``p < alpha``, the same as the ``1 - 2 alpha`` interval
    (``interval``) lying inside ``(-margin, margin)``.
    """

    mean: float
    se: float
    df: int
    p_lower: float
    p_upper: float
    p: float
    equivalent: bool
    margin: float
    interval: tuple[float, float]
    alpha: float
    n: int


def equivalence_test(per_seed, margin: float, *, alpha: float = 0.05) -> Equivalence:
    """TOST over seeds: is the mean paired difference inside ``(-margin, margin)``?

    Parameters
    ----------
    per_seed : array_like, shape ``(n,)``, ``n >= 2``
        Each seed's mean paired difference (:attr:`PairedDifference.per_seed`); with one
        seed, pass that seed's per-prompt differences instead (the test is then over prompts).
    margin : float
        The equivalence margin, positive, stated before the data are seen.
    alpha : float
        Each one-sided test's level, below 0.5.

    A zero spread (all values equal) decides by the mean alone: ``p = 0`` on the side it
    is inside, ``1`` otherwise.
    """
    from scipy import stats

    x = _as_values(per_seed, "per_seed", 1)
    if x.size < 2:
        raise ValueError(f"equivalence_test needs at least two values (seeds), got {x.size}; with one seed pass its "
                         "per-prompt differences")
    if _number(margin, "margin") <= 0:
        raise ValueError(f"margin must be positive, got {margin!r}")
    alpha, margin = _check_alpha(alpha, upper=0.5), float(margin)
    n, mean = x.size, float(x.mean())
    se, df = float(x.std(ddof=1) / math.sqrt(n)), n - 1
    if se > 0:
        p_lower = float(stats.t.sf((mean + margin) / se, df))
        p_upper = float(stats.t.cdf((mean - margin) / se, df))
        q = float(stats.t.ppf(1.0 - alpha, df))
    else:
        p_lower, p_upper, q = float(mean <= -margin), float(mean >= margin), 0.0
    p = max(p_lower, p_upper)
    return Equivalence(mean=mean, se=se, df=df, p_lower=p_lower, p_upper=p_upper, p=p, equivalent=bool(p < alpha),
                       margin=margin, interval=(mean - q * se, mean + q * se), alpha=alpha, n=n)


# --------------------------------------------------------------------------- the verdict
@dataclass(frozen=True)
class ArmComparison:
    """Arm ``a`` against arm ``b``: the paired difference, the equivalence test and the verdict.

    ``verdict`` is ``"higher"`` (the t-interval of ``a - b`` above 0), ``"lower"`` (below 0),
    ``"equivalent"`` (interval holding 0 and TOST passing) or ``"inconclusive"``. A detected
    difference takes precedence over equivalence (a precise small gap is reported as a gap,
    and the sentence adds that it is inside the margin). ``against_expected`` is True when
    the verdict is a direction opposite to ``expected_sign`` (+1: ``a`` expected higher, -1:
    lower), or any detected direction when ``expected_sign`` is 0 (no difference expected).
    ``bootstrap_agrees`` is False when the bootstrap interval tells another story than the
    t-interval (holds 0 where the t-interval does not, or excludes it where the t-interval
    holds it): the verdict stays the t-interval's, and the sentence says so.
    """

    difference: PairedDifference
    equivalence: Equivalence
    verdict: str
    expected_sign: int
    against_expected: bool
    names: tuple[str, str]
    what: str

    @property
    def bootstrap_agrees(self) -> bool:
        d = self.difference
        side = lambda lo, hi: 1 if lo > 0 else (-1 if hi < 0 else 0)  # noqa: E731
        return side(d.t_lo, d.t_hi) == side(d.boot_lo, d.boot_hi)

    def sentence(self, digits: int = 3) -> str:
        d, e, (na, nb) = self.difference, self.equivalence, self.names
        level = f"{1 - d.alpha:.0%}"
        unit = (f"t-interval over {d.n_seeds} seeds" if d.interval_over == "seeds"
                else f"one seed: interval over {d.n_prompts} prompts, without the seed-to-seed spread")
        numbers = (f"{na} - {nb} on {self.what} is {fmt_interval(d.mean, d.t_lo, d.t_hi, digits, signed=True)} "
                   f"({level} {unit}; bootstrap {fmt_interval(None, d.boot_lo, d.boot_hi, digits, signed=True)})")
        tost = (f"equivalence within ±{fmt(e.margin, digits)}: {'shown' if e.equivalent else 'not shown'} "
                f"(TOST {fmt_p(e.p)})")
        expected = {1: f"{na} higher", -1: f"{na} lower", 0: "no difference"}[self.expected_sign]
        if self.verdict in ("higher", "lower"):
            word = f"{na} is {self.verdict} than {nb}"
            if self.against_expected:
                word += f", against the expected direction ({expected})"
            if e.equivalent:
                word += f", by less than the margin ±{fmt(e.margin, digits)}"
        elif self.verdict == "equivalent":
            word = f"{na} and {nb} are equivalent within ±{fmt(e.margin, digits)}"
        else:
            word = f"inconclusive: no difference detected, and equivalence within ±{fmt(e.margin, digits)} not shown"
        if not self.bootstrap_agrees:
            holds = d.boot_lo <= 0 <= d.boot_hi
            numbers += (f"; the bootstrap interval {'holds' if holds else 'excludes'} 0 where the t-interval "
                        f"{'does not' if holds else 'holds it'}")
        return f"{word}. {numbers}; {tost}"


def compare_arms(a, b, *, margin: float, expected_sign: int, alpha: float = 0.05, n_boot: int = 2000,
                 seed: SeedLike = 0, names: tuple[str, str] = ("A", "B"), what: str = "the score") -> ArmComparison:
    """Compare arm ``a`` with arm ``b`` (arrays ``(S, P)`` as in :func:`paired_difference`) and word the verdict.

    The verdict reads the t-interval (over seeds; over prompts with one seed) and the TOST
    with the pre-stated ``margin``; the bootstrap interval is reported beside it.
    ``expected_sign`` is +1, 0 or -1: the direction of ``a - b`` expected in advance (the
    paper's, for instance).
    """
    if isinstance(expected_sign, (bool, np.bool_)) or expected_sign not in (-1, 0, 1):
        raise ValueError(f"expected_sign must be +1, 0 or -1, got {expected_sign!r}")
    if not (isinstance(names, (tuple, list)) and len(names) == 2 and all(isinstance(n, str) for n in names)):
        raise ValueError(f"names must be two strings, got {names!r}")
    diff = paired_difference(a, b, n_boot=n_boot, seed=seed, alpha=alpha)
    units = diff.per_seed if diff.n_seeds >= 2 else (np.asarray(a, float) - np.asarray(b, float))[0]
    eq = equivalence_test(units, margin, alpha=alpha)
    if diff.t_lo > 0:
        verdict = "higher"
    elif diff.t_hi < 0:
        verdict = "lower"
    else:
        verdict = "equivalent" if eq.equivalent else "inconclusive"
    sign = {"higher": 1, "lower": -1}.get(verdict, 0)
    against = sign != 0 and (sign != int(expected_sign))
    return ArmComparison(diff, eq, verdict, int(expected_sign), bool(against), (names[0], names[1]), what)


# --------------------------------------------------------------------------- sign test
@dataclass(frozen=True)
class SignTest:
    """Prompts on which ``a`` is ahead, behind or tied, and the exact two-sided binomial p over the untied ones."""

    ahead: int
    behind: int
    ties: int
    p: float

    def sentence(self, names: tuple[str, str] = ("A", "B")) -> str:
        return (f"{names[0]} ahead on {self.ahead} prompts, {names[1]} on {self.behind}, {self.ties} ties "
                f"(sign test {fmt_p(self.p)})")


def sign_test(differences, *, tol: float = 1e-12) -> SignTest:
    """Exact sign test of paired differences ``(n,)`` (any shape is flattened); ``|d| <= tol`` is a tie."""
    from scipy import stats

    arr = np.asarray(differences)
    d = _as_values(arr.reshape(-1) if arr.dtype.kind in "biuf" else arr, "differences", 1)
    up, down = int((d > tol).sum()), int((d < -tol).sum())
    p = float(stats.binomtest(up, up + down, 0.5).pvalue) if up + down else 1.0
    return SignTest(up, down, int(d.size - up - down), p)


# --------------------------------------------------------------------------- power
def _check_effect_sd(effect: float, sd: float) -> tuple[float, float]:
    if _number(sd, "sd") <= 0:
        raise ValueError(f"sd must be positive, got {sd}")
    if _number(effect, "effect") == 0:
        raise ValueError("effect must be nonzero: no number of seeds detects a zero gap")
    return abs(float(effect)), float(sd)


def paired_power(n: int, effect: float, sd: float, *, alpha: float = 0.05) -> float:
    """Power of the two-sided one-sample (paired) t-test at level ``alpha`` with ``n`` seeds.

    Exact: under a true mean ``effect`` and SD ``sd`` of the per-seed differences (normal),
    ``T`` is noncentral t with ``n - 1`` degrees of freedom and noncentrality
    ``effect / sd * sqrt(n)``; the power is ``P(|T| > t_{1 - alpha/2, n - 1})``.
    """
    from scipy import stats

    effect, sd = _check_effect_sd(effect, sd)
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an int >= 2 (a t-test needs two seeds), got {n!r}")
    alpha = _check_alpha(alpha)
    df, nc = int(n) - 1, effect / sd * math.sqrt(int(n))
    q = stats.t.ppf(1.0 - alpha / 2.0, df)
    upper = float(stats.nct.sf(q, df, nc))
    if not math.isfinite(upper):
        upper = 1.0 - float(stats.nct.cdf(q, df, nc))
    lower = float(stats.nct.cdf(-q, df, nc))
    if not math.isfinite(lower):  # scipy's far tail can be NaN; it is below P(T < 0) = Phi(-nc)
        lower = 0.0 if stats.norm.cdf(-nc) < 1e-12 else float("nan")
    power = upper + lower
    if not math.isfinite(power):
        raise ValueError(f"the noncentral t power is not computable at n = {n}, effect / sd = {effect / sd}")
    return min(1.0, power)


def seeds_needed(effect: float, sd: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """The fewest seeds (at least 2) at which :func:`paired_power` reaches ``power``.

    ``effect`` is the gap to detect (its sign does not matter), ``sd`` the seed-to-seed SD
    of the per-seed mean paired difference. Raises ``ValueError`` beyond 10 million seeds.
    """
    power = _check_alpha(power, "power")
    hi = 2
    while paired_power(hi, effect, sd, alpha=alpha) < power:
        hi *= 2
        if hi > 10_000_000:
            raise ValueError(f"more than 10 million seeds needed for effect {effect} at sd {sd}")
    lo = hi // 2 if hi > 2 else 1   # power(lo) < power <= power(hi); power rises with n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if paired_power(mid, effect, sd, alpha=alpha) >= power:
            hi = mid
        else:
            lo = mid
    return hi


def power_table(effects: Mapping[str, float], sd: float, *, alpha: float = 0.05, power: float = 0.8,
                at: tuple[int, ...] = (2, 4, 8)) -> Any:
    """For display: the seeds needed for each named gap, and the power at a few seed counts.

    Returns
    -------
    pandas.DataFrame
        One row per entry of ``effects`` (index ``"comparison"``, its keys); columns ``"gap"`` and
        ``"gap / SD"`` (text, three decimals and two), ``"seeds for 80% power"`` (int; the
        percentage follows ``power``) and ``"power with n seeds"`` for each ``n`` in ``at``
        (text, a percentage). The numbers come from :func:`seeds_needed` and :func:`paired_power`.
    """
    import pandas as pd

    if not isinstance(effects, Mapping) or not effects:
        raise ValueError(f"effects must be a non-empty mapping of name -> gap, got {effects!r}")
    rows = {}
    for name, eff in effects.items():
        e, s = _check_effect_sd(eff, sd)
        row = {"gap": fmt(float(eff), 3), "gap / SD": fmt(e / s, 2),
               f"seeds for {power:.0%} power": seeds_needed(e, s, alpha=alpha, power=power)}
        for n in at:
            row[f"power with {n} seeds"] = f"{paired_power(int(n), e, s, alpha=alpha):.0%}"
        rows[str(name)] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("comparison")
