"""``mrgrpo train``: runs, writes its outputs, resumes, and rejects bad input before loading."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _tiny_lm import build_tiny_lm  # noqa: E402

from mrgrpo.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return build_tiny_lm(tmp_path_factory.mktemp("tiny_cli"))


def test_cli_train_writes_metrics_eval_adapter_and_resumes(tiny_path, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--model", tiny_path, "--mode", "an", "--weights", "1,1,0.5", "--m", "4",
            "--batch-prompts", "2", "--max-new-tokens", "8", "--n-train", "16", "--n-eval", "4",
            "--no-progress", "--out", str(out), "--checkpoint-every", "2"]
    assert main(args + ["--n-steps", "2"]) == 0
    text = capsys.readouterr().out
    assert "held-out evaluation" in text and "correctness" in text
    assert (out / "adapter" / "adapter_config.json").exists()
    assert len(json.loads((out / "metrics.json").read_text())) == 2
    # resume the same run to 4 steps
    assert main(args + ["--n-steps", "4", "--resume"]) == 0
    hist = json.loads((out / "metrics.json").read_text())
    assert [r["step"] for r in hist] == [1, 2, 3, 4]
    assert all(0.0 <= r["reward/correctness"] <= 1.0 and -1.0 <= r["reward/length"] <= 0.0 for r in hist)


@pytest.mark.parametrize("argv, match", [
    (["--weights", "1,1"], "weights has 2 entries but the reward function has 3 channels"),
    (["--m", "1"], "m must be"),
    (["--lr", "-1"], "lr must be"),
])
def test_cli_rejects_bad_config_before_loading(argv, match, capsys):
    assert main(["train", "--model", "/nonexistent/model", *argv]) == 2
    assert match in capsys.readouterr().err
