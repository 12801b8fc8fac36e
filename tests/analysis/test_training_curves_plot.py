"""training_curves_plot: a readable grid, one panel per metric, modes told apart by more than colour."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from mrgrpo.analysis.plots import training_curves_plot, with_title


def _curves():
    rows = []
    for mode in ("NA", "AN", "single-reward"):
        for seed in (0, 1):
            for step in range(12):
                rows.append({"mode": mode, "seed": seed, "step": step, "reward/aggregate": step * 0.1 + seed,
                             "reward/a": 0.1, "reward/b": 0.2, "reward/c": 0.3})
    return pd.DataFrame(rows)


def test_four_metrics_make_a_two_by_two_grid_with_distinct_modes():
    panels = {"reward/aggregate": "aggregate", "reward/a": "a", "reward/b": "b", "reward/c": "c"}
    fig = training_curves_plot(_curves(), panels)
    axes = fig.axes
    assert len(axes) == 4
    assert len({round(ax.get_position().x0, 2) for ax in axes}) == 2  # two columns
    assert [ax.get_title() for ax in axes] == list(panels.values())
    lines = axes[0].get_lines()
    assert len(lines) == 3
    styles = {(l.get_color(), str(l.get_linestyle()), l.get_marker()) for l in lines}
    assert len(styles) == 3 and len({l.get_linestyle() for l in lines}) == 3  # not colour alone
    assert min(ax.title.get_fontsize() for ax in axes) >= 12
    legend_texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend_texts == ["NA", "AN", "single-reward"]
    # the mean over seeds, smoothed: seed offsets 0 and 1 average to 0.5 at step 0
    assert lines[0].get_ydata()[0] == pytest.approx(0.5)


def test_three_metrics_leave_no_empty_panel_and_bad_input_is_named():
    fig = training_curves_plot(_curves(), {"reward/a": "a", "reward/b": "b", "reward/c": "c"})
    assert len(fig.axes) == 3
    with pytest.raises(ValueError, match="reward/zzz"):
        training_curves_plot(_curves(), {"reward/zzz": "z"})


def test_with_title_separates_the_callers_title():
    assert with_title("MSE vs m (P=3)", "corpus") == "MSE vs m (P=3): corpus"
    assert with_title("MSE vs m (P=3)") == "MSE vs m (P=3)"
