"""``mrgrpo thm3-check`` and ``mrgrpo analyze``: tables, figures, errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mrgrpo.cli import main
from mrgrpo.corpus import MockBackend, run_corpus, save_npz, save_parquet

FIXTURE = Path(__file__).parents[1] / "fixtures" / "released_rollouts_sample.parquet"


def test_thm3_check(capsys, tmp_path):
    rc = main(["thm3-check", "--rho", "0.5", "--m", "4,8", "--K", "20", "--P", "8", "--w", "1,1,0.5",
               "--seed", "1", "--n-boot", "200", "--figures", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "ratio NA [95% CI]" in out and "population floor" in out and "their cost" in out and "agrees" in out
    assert "Fisher" not in out.split("population floor (")[1]  # a reference that false-alarms as a test
    assert "rho=0.5" in out
    for name in ("money_plot_m4.png", "money_plot_m8.png", "mse_vs_m.png", "population_floor.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_thm3_check_bernoulli_and_errors(capsys):
    assert main(["thm3-check", "--rho", "0.2", "--kind", "bernoulli", "--p", "0.2", "--K", "10", "--P", "5",
                 "--n-boot", "50", "--mse-estimator", "paper"]) == 0
    assert "mse_estimator=paper" in capsys.readouterr().out
    assert main(["thm3-check", "--rho", "-0.9", "--K", "10", "--P", "5"]) == 2
    assert "valid correlation" in capsys.readouterr().err
    assert main(["thm3-check", "--rho", "0.1", "--K", "1"]) == 2
    with pytest.raises(SystemExit):
        main(["thm3-check", "--rho", "0.5", "--w", "1,x"])


@pytest.fixture(scope="module")
def corpus():
    b = MockBackend(C=np.eye(3), p=[0.4, None, 0.9], seed=0)
    return run_corpus(b, [(f"q{i}", "0") for i in range(6)], m_grid=[4, 8], K_seeds=5, seed=0)


@pytest.mark.parametrize("fmt", ["npz", "parquet"])
def test_analyze_files(capsys, tmp_path, corpus, fmt):
    path = save_npz(corpus, tmp_path / "c.npz") if fmt == "npz" else save_parquet(corpus, tmp_path / "c.parquet")
    assert main(["analyze", str(path), "--w", "1,1,0.5", "--n-boot", "100", "--figures", str(tmp_path / "f")]) == 0
    out = capsys.readouterr().out
    assert "6 prompts x 5 seeds" in out and "ratio NA" in out and "population floor" in out
    assert (tmp_path / "f" / "mse_vs_m.png").exists()
    assert main(["analyze", str(path), "--w", "1,1,0.5", "--m", "8", "--n-boot", "50",
                 "--mse-estimator", "paper", "--score-seed", "12345"]) == 0


def test_analyze_released_fixture_and_errors(capsys, tmp_path):
    assert main(["analyze", str(FIXTURE), "--w", "1,1,0.5", "--n-boot", "50"]) == 0
    out = capsys.readouterr().out
    assert "('correctness', 'length', 'format')" in out
    assert main(["analyze", str(FIXTURE), "--w", "1,1", "--n-boot", "50"]) == 2
    assert "R = 3" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path / "none.npz"), "--w", "1"]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "x.csv").write_text("a\n")
    assert main(["analyze", str(tmp_path / "x.csv"), "--w", "1"]) == 2
