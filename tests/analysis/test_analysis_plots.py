"""Figures: returned as Figures with labelled axes, and saved when a path is given."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mrgrpo.analysis import analyze, floor_check, floor_plot, money_plot, mse_vs_m_plot  # noqa: E402


@pytest.fixture(scope="module")
def results():
    rng = np.random.default_rng(0)
    x = (rng.random((12, 10, 16, 3)) < [0.3, 0.6, 0.9]).astype(float)
    x[..., 1] = rng.standard_normal((12, 10, 16))
    w = np.array([1.0, 1.0, 0.5])
    res = [analyze(x[:, :, :m], w, mse_estimator="paper", n_boot=100) for m in (4, 8, 16)]
    return res, floor_check(x, w, m_grid=[4, 8, 16], n_boot=100)


def _labelled(fig):
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()


def test_money_plot(tmp_path, results):
    res, _ = results
    fig = money_plot(res[1], tmp_path / "money.png")
    assert isinstance(fig, matplotlib.figure.Figure) and (tmp_path / "money.png").stat().st_size > 1000
    _labelled(fig)
    assert "(K-1)/K" in " ".join(t.get_text() for t in fig.axes[0].get_legend().get_texts())
    plt.close(fig)


def test_mse_vs_m_and_floor_plots(tmp_path, results):
    res, floor = results
    fig = mse_vs_m_plot(res, tmp_path / "mse.pdf", floor=floor, n_boot=100)
    assert (tmp_path / "mse.pdf").exists()
    _labelled(fig)
    plt.close(fig)
    fig = floor_plot(floor, tmp_path / "sub" / "floor.png")
    assert (tmp_path / "sub" / "floor.png").exists() and len(fig.axes) == 2
    _labelled(fig)
    plt.close(fig)
    fig = floor_plot(floor)  # no path: returned only
    plt.close(fig)
    with pytest.raises(ValueError, match="at least one"):
        mse_vs_m_plot([])
