"""Figures stay legible on the page (mrgrpo.analysis.plots.readable): small text is enlarged for the scaling."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from mrgrpo.analysis.plots import COLUMN_WIDTH_IN, MIN_LEGEND_PT, MIN_TEXT_PT, readable  # noqa: E402


def _two_panels(width):
    fig, axes = plt.subplots(1, 2, figsize=(width, 4.0))
    for ax in axes:
        ax.plot([0, 1], [0, 1], label="a line")
        ax.legend(fontsize=7.5)
        ax.set_title("title", fontsize=14)
    return fig


def test_a_wide_figure_gets_text_that_reads_at_the_minimum_on_the_page():
    fig = _two_panels(11.0)
    readable(fig)
    scale = COLUMN_WIDTH_IN / 11.0  # the page shows the figure at this fraction
    legend = fig.axes[0].get_legend().get_texts()[0]
    assert legend.get_fontsize() * scale == pytest.approx(MIN_LEGEND_PT)
    ticks = [t for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert all(t.get_fontsize() * scale >= MIN_TEXT_PT - 1e-9 for t in ticks)
    assert fig.axes[0].title.get_fontsize() == pytest.approx(max(14.0, MIN_TEXT_PT / scale))  # large text kept
    plt.close(fig)


def test_a_figure_that_fits_the_column_only_gets_the_minimum_size():
    fig = _two_panels(COLUMN_WIDTH_IN)
    readable(fig)
    assert fig.axes[0].get_legend().get_texts()[0].get_fontsize() == pytest.approx(MIN_LEGEND_PT)
    assert fig.axes[0].title.get_fontsize() == 14.0
    plt.close(fig)
    with pytest.raises(ValueError, match="must be positive"):
        readable(plt.figure(), column_in=0)


def test_a_title_wider_than_its_panel_breaks_between_words_not_inside_math():
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.0))
    long = r"Self-normalized: $m \cdot \mathrm{MSE} = w^\top E[\hat C] w$ (dotted: $w^\top C w$) across settings"
    axes[0].set_title(long)
    axes[1].set_title("short")
    readable(fig)
    renderer = fig.canvas.get_renderer()
    title = axes[0].title
    assert "\n" in title.get_text() and title.get_text().replace("\n", " ") == long
    assert all(line.count("$") % 2 == 0 for line in title.get_text().split("\n"))  # math kept whole
    assert title.get_window_extent(renderer).width <= 1.02 * axes[0].get_window_extent(renderer).width
    assert axes[1].title.get_text() == "short"
    plt.close(fig)

