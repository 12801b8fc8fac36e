"""Figures of the Theorem-3 harness: returned as matplotlib Figures, saved when a path is given."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from mrgrpo.core.files import atomic_path

from .bootstrap import bootstrap_weights, mean_ci
from .verdicts import fmt_interval

__all__ = ["money_plot", "mse_vs_m_plot", "floor_plot", "training_curves_plot", "with_title", "save_figure",
           "readable", "COLUMN_WIDTH_IN", "MIN_TEXT_PT", "MIN_LEGEND_PT"]

#: The book page's text column, in inches of a figure at the inline backend's 100 dpi (about 600 px):
#: a wider figure is shown scaled down to it.
COLUMN_WIDTH_IN = 6.0
#: The smallest text size, in points as the reader sees it after that scaling.
MIN_TEXT_PT = 9.0
#: The same for legend entries, which sit on the data: a little smaller.
MIN_LEGEND_PT = 8.0


def readable(fig, column_in: float = COLUMN_WIDTH_IN, min_pt: float = MIN_TEXT_PT, relayout: bool = True):
    """Enlarge a figure's small text so that it reads at ``min_pt`` or more once the page scales it to the column.

    A figure wider than ``column_in`` inches is shown at ``column_in / width`` of its size (an
    11-inch two-panel figure at about 55%), which shrinks a 7.5-point legend to about 4 points
    on screen. Every text of the figure (titles, labels, ticks, annotations) smaller than
    ``min_pt / scale`` is set to that size (legend entries to :data:`MIN_LEGEND_PT` ``/ scale``),
    a title wider than its panel or a y label taller than it is broken between words, and the
    layout is redone.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    column_in, min_pt : float
        The page's column width (inches at the figure's dpi) and the smallest on-screen size (points).
    relayout : bool
        Redo the layout (``tight_layout``) for the larger text; pass False for a figure whose axes were
        placed by hand (a colorbar made with ``fig.colorbar(..., ax=axes)``, which ``tight_layout`` would
        move onto a panel).

    Returns
    -------
    The same figure.
    """
    import matplotlib.font_manager
    from matplotlib.legend import Legend
    from matplotlib.text import Text

    if not (column_in > 0 and min_pt > 0):
        raise ValueError(f"column_in and min_pt must be positive, got {column_in} and {min_pt}")
    scale = min(1.0, column_in / fig.get_figwidth())
    least = min_pt / scale
    for ax in fig.axes:  # tick labels are rebuilt at draw time: set their size on the axis, not on the labels
        for axis, name in ((ax.xaxis, "x"), (ax.yaxis, "y")):
            for which in ("major", "minor"):
                size = axis.get_tick_params(which=which).get("labelsize")
                size = matplotlib.font_manager.FontProperties(size=size).get_size_in_points()
                if size < least:
                    ax.tick_params(axis=name, which=which, labelsize=least)
    legend_texts = {id(t) for leg in fig.findobj(Legend) for t in leg.get_texts()}
    for text in fig.findobj(Text):
        floor = (MIN_LEGEND_PT if id(text) in legend_texts else min_pt) * least / min_pt
        if text.get_text() and text.get_fontsize() < floor:
            text.set_fontsize(floor)
    _wrap_titles(fig)
    if relayout and not fig.get_constrained_layout():
        fig.tight_layout()
    return fig


def _break_points(text: str) -> list[int]:
    """Indices of the spaces of ``text`` outside ``$...$`` math (where a title may break)."""
    out, in_math = [], False
    for i, ch in enumerate(text):
        if ch == "$" and (i == 0 or text[i - 1] != "\\"):
            in_math = not in_math
        elif ch == " " and not in_math:
            out.append(i)
    return out


def _wrap_titles(fig) -> None:
    """Break an axes title wider than its axes, or a y label taller, onto two or three lines (never inside math)."""
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        box = ax.get_window_extent(renderer)
        for label, room, size in ((ax.title, box.width, lambda b: b.width), (ax.yaxis.label, box.height, lambda b: b.height)):
            text = label.get_text()
            if not text or "\n" in text:
                continue
            spaces = _break_points(text)
            for n_lines in (2, 3):
                if size(label.get_window_extent(renderer)) <= 1.02 * room or len(spaces) < n_lines - 1:
                    break
                cuts = sorted({min(spaces, key=lambda i: abs(i - k * len(text) / n_lines)) for k in range(1, n_lines)})
                pieces, start = [], 0
                for c in cuts:
                    pieces.append(text[start:c])
                    start = c + 1
                label.set_text("\n".join(pieces + [text[start:]]))


def save_figure(fig, path, **kwargs) -> Path:
    """Write ``fig`` to ``path`` atomically (the format from the suffix, e.g. ``.png``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", **kwargs)
    return path


def _finish(fig, path):
    readable(fig)
    if path is not None:
        save_figure(fig, path, dpi=130)
    return fig


def with_title(base: str, title: str = "") -> str:
    """A figure title: the function's own ``base``, then the caller's ``title`` after a separator."""
    return f"{base}: {title}" if title else base


def money_plot(result, path=None, title: str = ""):
    """Per-prompt realized vs predicted MSE (log-log), NA and AN, with ``y = x`` and the identity line.

    Parameters
    ----------
    result : Thm3Result
    path : str or Path, optional
        Where to save (PNG/PDF by suffix).
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    pred = result.predicted_per_prompt
    for real, style, label in ((result.realized_na, ("o", "C0"), "NA (normalize, then aggregate)"),
                               (result.realized_an, ("s", "C3"), "AN (aggregate, then normalize)")):
        ok = (pred > 0) & (real > 0)
        ax.loglog(pred[ok], real[ok], style[0], color=style[1], alpha=0.65, ms=4, label=label)
    vals = np.concatenate([pred, result.realized_na, result.realized_an])
    vals = vals[vals > 0]
    if vals.size:
        lo, hi = vals.min(), vals.max()
        ax.loglog([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
        if result.expected_ratio != 1.0:
            ax.loglog([lo, hi], [lo * result.expected_ratio, hi * result.expected_ratio], ":", color="0.4",
                      lw=1, label=f"y = {result.expected_ratio:.3f} x  ((K-1)/K)")
    ax.set_xlabel(r"predicted MSE  $(\tau^2/m)\, w^\top \hat C_p w$")
    ax.set_ylabel("realized MSE across seeds" + (" (ddof=0)" if result.mse_estimator == "paper" else ""))
    ax.set_title(with_title(f"Theorem 3 per prompt (m={result.m}, P={result.P}, K={result.K})", title) + "\n"
                 f"NA: ratio {fmt_interval(result.ratio_na, *result.ratio_na_ci)}, "
                 f"log-log slope {result.slope_na:.2f}, $R^2$ {result.r2_na:.2f}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return _finish(fig, path)


def mse_vs_m_plot(results: Sequence, path=None, floor=None, n_boot: int = 2000, seed: int = 0,
                  title: str = ""):
    """Realized NA/AN MSE (prompt mean, bootstrap CI) and predictions across group sizes.

    Parameters
    ----------
    results : sequence of Thm3Result
        One per ``m`` (same prompts).
    floor : FloorResult, optional
        Adds the population ``w^T C w / m`` and the floor check's target
        (the exact finite-``m`` ``w^T E[C_hat_m | non-degenerate] w / m``), drawn so
        that they stay distinguishable where they coincide.
    """
    import matplotlib.pyplot as plt

    if not results:
        raise ValueError("mse_vs_m_plot needs at least one Thm3Result")
    res = sorted(results, key=lambda r: r.m)
    ms = np.array([r.m for r in res], dtype=float)
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for attr, color, label in (("realized_na", "C0", "NA realized"), ("realized_an", "C3", "AN realized")):
        mean = np.array([np.mean(getattr(r, attr)) for r in res])
        cis = np.array([mean_ci(getattr(r, attr), bootstrap_weights(r.P, n_boot, seed)) for r in res])
        ax.errorbar(ms, mean, yerr=[mean - cis[:, 0], cis[:, 1] - mean], fmt="o", color=color,
                    capsize=3, label=f"{label} (95% CI)")
    ax.plot(ms, [r.predicted_pooled for r in res], "k-", lw=1.2, label=r"predicted $(1/m)\,w^\top\hat C w$")
    if floor is not None:
        _floor_lines(ax, floor, per_m=True)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("group size m")
    ax.set_ylabel("gradient MSE")
    ax.set_title(with_title(f"MSE vs m (P={res[0].P}, K={res[0].K}, {res[0].mse_estimator})", title), fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, path)


# The population is a wide translucent band drawn first and the target a thin dashed line with
# open markers on top, so the two stay distinguishable where they coincide.
_POPULATION_STYLE = dict(color="C2", lw=7, alpha=0.3, solid_capstyle="butt", zorder=1)
_TARGET_STYLE = dict(color="C4", lw=1.3, ls="--", marker="D", ms=4.5, mfc="white", zorder=4)


def _floor_lines(ax, floor, per_m: bool = False) -> None:
    """The population ``w^T C w`` and the floor check's target across ``m`` (divided by ``m`` if ``per_m``)."""
    ms = np.array(floor.m_grid, dtype=float)
    scale = ms if per_m else np.ones_like(ms)
    tail = "$/m$" if per_m else ""
    ax.plot(ms, [floor.per_m[int(m)]["population"] for m in ms] / scale, **_POPULATION_STYLE,
            label=r"population $w^\top C w$" + tail)
    ax.plot(ms, [floor.per_m[int(m)]["target"] for m in ms] / scale, **_TARGET_STYLE,
            label="target: exact at m, non-degenerate groups" + (" " + tail if tail else ""))


def floor_plot(floor, path=None, title: str = ""):
    """The population-floor check (a :class:`~mrgrpo.analysis.floor.FloorResult`), in two panels, one above
    the other (each as wide as the page's column).

    Top: the measured ``E[w^T C_hat_m w]`` (CI) and over non-degenerate groups,
    the check's target, Theorem 3's first order (delta method), Fisher's
    Gaussian-only expansion and the population ``w^T C w``. Bottom: the check's
    two answers, floor - target on the non-degenerate groups with its CI, and
    the floor's loss (the prompt-averaged floor - target) carried by degenerate
    and by the other groups; tick labels give the share of degenerate groups.
    """
    import matplotlib.pyplot as plt

    ms = np.array(floor.m_grid, dtype=float)
    d = [floor.per_m[int(m)] for m in ms]
    val = np.array([x["floor"] for x in d])
    ci = np.array([x["floor_ci"] for x in d])
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(6.6, 9.0))
    _floor_lines(ax, floor)
    ax.plot(ms, [x["first_order"] for x in d], "-.", color="C8", lw=1.4, zorder=3,
            label="Theorem 3 first order (delta method)")
    ax.plot(ms, [x["fisher"] for x in d], ":", color="0.45", lw=1.2, zorder=2, label="Fisher (Gaussian only)")
    ax.errorbar(ms, val, yerr=[val - ci[:, 0], ci[:, 1] - val], fmt="o", color="C0", capsize=3, zorder=5,
                label=rf"measured $E[w^\top \hat C_m w]$ ({floor.ci:.0%} CI)")
    ax.plot(ms, [x["floor_nondegenerate"] for x in d], "s", color="C1", mfc="none", zorder=5,
            label="measured, non-degenerate groups")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ms, [f"{int(m)}" for m in ms])
    ax.set_xlabel("group size m")
    ax.set_ylabel(r"$m \cdot$ MSE $= w^\top E[\hat C_m] w$")
    ax.set_title(f"Population floor (P={floor.P}, K={floor.K}){title}", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9)

    diff = np.array([x["diff"] for x in d])
    dci = np.array([x["diff_ci"] for x in d])
    ax2.axhline(0.0, color="k", lw=0.8)
    ax2.errorbar(ms, diff, yerr=[diff - dci[:, 0], dci[:, 1] - diff], fmt="o", color="C0", capsize=3, zorder=5,
                 label=f"(1) non-degenerate groups: floor $-$ target ({floor.ci:.0%} CI)")
    ax2.plot(ms * 1.04, [-x["deficit_degenerate"] for x in d], "v", color="C3", zorder=4,
             label="(2) the floor's loss to degenerate groups")
    ax2.plot(ms * 0.96, [-x["deficit_nondegenerate"] for x in d], "s", color="C1", mfc="none", zorder=4,
             label="the same from the other groups")
    ax2.set_xscale("log", base=2)
    ax2.set_xticks(ms, [f"{int(m)}\n({x['frac_degenerate']:.0%})" for m, x in zip(ms, d)])
    ax2.set_xlabel("group size m (share of degenerate groups)")
    ax2.set_ylabel(r"measured $-$ target")
    ax2.set_title(f"The check: agrees at {sum(x['agrees'] for x in d)} of {len(d)} group sizes", fontsize=10)
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=9)
    return _finish(fig, path)


# colour, line style and marker per training mode: distinguishable in colour and in greyscale
MODE_STYLES = (("C0", "-", "o"), ("C3", "--", "s"), ("C2", ":", "^"), ("C1", "-.", "D"), ("C4", (0, (5, 1)), "v"))


def training_curves_plot(curves, panels, smooth: int = 5, ncols: int = 2, path=None):
    """Training curves on a grid: one panel per metric, one line per mode (mean over seeds).

    Parameters
    ----------
    curves : pandas.DataFrame
        One row per (mode, seed, step) with the metric columns (a trainer history).
    panels : mapping ``column -> panel title``
    smooth : int
        Moving-average window (steps) applied to the mean and to the band.
    ncols : int
        Panels per row (four metrics make a 2 x 2 grid).

    The band is the range over seeds; each mode has its own colour, line style and markers.
    """
    import math

    import matplotlib.pyplot as plt

    panels = dict(panels)
    if not panels:
        raise ValueError("training_curves_plot needs at least one panel")
    missing = [k for k in ("mode", "seed", "step", *panels) if k not in curves.columns]
    if missing:
        raise ValueError(f"curves has no column(s) {missing}")
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.6 * nrows), sharex=True, squeeze=False)
    ma = lambda v: v.rolling(max(1, smooth), min_periods=1).mean()  # noqa: E731
    for i, (mode, d) in enumerate(curves.groupby("mode", sort=False)):
        color, ls, marker = MODE_STYLES[i % len(MODE_STYLES)]
        for ax, key in zip(axes.flat, panels):
            by = d.groupby("step")[key]
            mean = ma(by.mean())
            ax.plot(mean.index, mean.to_numpy(), color=color, ls=ls, lw=2, marker=marker, ms=5,
                    markevery=max(1, len(mean) // 6), label=str(mode))
            if d["seed"].nunique() > 1:
                ax.fill_between(mean.index, ma(by.min()).to_numpy(), ma(by.max()).to_numpy(), color=color,
                                alpha=0.1, lw=0)
    for ax, title in zip(axes.flat, panels.values()):
        ax.set_title(title, fontsize=13)
        ax.tick_params(labelsize=11)
        ax.grid(True, alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("GRPO step", fontsize=12)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"batch mean ({smooth}-step average)", fontsize=11)
    for ax in list(axes.flat)[len(panels):]:
        ax.remove()
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=12, frameon=False)
    readable(fig)  # at least MIN_TEXT_PT on the page, then the layout below leaves room for the legend
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    if path is not None:
        save_figure(fig, path, dpi=130)
    return fig
