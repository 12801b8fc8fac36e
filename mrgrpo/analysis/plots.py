"""Figures of the Theorem-3 harness: returned as matplotlib Figures, saved when a path is given."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .bootstrap import bootstrap_weights, mean_ci

__all__ = ["money_plot", "mse_vs_m_plot", "floor_plot"]


def _finish(fig, path):
    fig.tight_layout()
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=130)
    return fig


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
    ax.set_ylabel("realized MSE across seeds" + (" (ddof=0)" if result.convention == "paper" else ""))
    ax.set_title(f"Theorem 3 per prompt (m={result.m}, P={result.P}, K={result.K}){title}\n"
                 f"NA: ratio {result.ratio_na:.3f} [{result.ratio_na_ci[0]:.3f}, {result.ratio_na_ci[1]:.3f}], "
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
        Adds ``w^T C w / m`` and Fisher's ``w^T E[C_hat_m] w / m``.
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
        grid = np.array(floor.m_grid, dtype=float)
        ax.plot(grid, floor.population_wCw / grid, "--", color="C2", label=r"population $w^\top C w/m$")
        ax.plot(grid, [floor.per_m[int(m)]["fisher"] / m for m in grid], ":", color="C4",
                label=r"Fisher $w^\top E[\hat C_m] w/m$")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("group size m")
    ax.set_ylabel("gradient MSE")
    ax.set_title(f"MSE vs m (P={res[0].P}, K={res[0].K}, {res[0].convention}){title}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, path)


def floor_plot(floor, path=None, title: str = ""):
    """The population-floor check: ``E[w^T C_hat_m w]`` vs Fisher and ``w^T C w``, and degenerate groups."""
    import matplotlib.pyplot as plt

    ms = np.array(floor.m_grid, dtype=float)
    d = [floor.per_m[int(m)] for m in ms]
    val = np.array([x["floor"] for x in d])
    ci = np.array([x["floor_ci"] for x in d])
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    ax.errorbar(ms, val, yerr=[val - ci[:, 0], ci[:, 1] - val], fmt="o", color="C0", capsize=3,
                label=r"$E[w^\top \hat C_m w]$ all groups (95% CI)")
    ax.plot(ms, [x["floor_nondegenerate"] for x in d], "s", color="C1", mfc="none",
            label="non-degenerate groups only")
    ax.plot(ms, [x["fisher"] for x in d], "-", color="C4", label="Fisher first order")
    ax.axhline(floor.population_wCw, color="C2", ls="--", label=r"population $w^\top C w$")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("group size m")
    ax.set_ylabel(r"$m \cdot$ MSE  $= w^\top E[\hat C_m] w$")
    ax.set_title(f"population floor (P={floor.P}, K={floor.K}){title}", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax2.plot(ms, [x["frac_degenerate"] for x in d], "o-", color="C3", label="fraction degenerate groups")
    ax2.plot(ms, [x["share_degenerate"] for x in d], "s--", color="C5", label="share of deficit they carry")
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("group size m")
    ax2.set_ylabel("fraction")
    ax2.set_title("degenerate (constant-channel) groups", fontsize=10)
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=8)
    return _finish(fig, path)
