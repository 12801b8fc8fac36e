"""``mrgrpo.train.stored_runs``: run folders written by ``mrgrpo train``, exported without weights, read back."""
from __future__ import annotations

import json

import pytest

from mrgrpo.cli import main
from mrgrpo.train.stored_runs import describe_runs, export_records, load_runs, machine_versions, run_times

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ARGS = ["--n-steps", "2", "--n-train", "8", "--n-eval", "4", "--m", "4", "--batch-prompts", "2",
        "--max-new-tokens", "16", "--eval-temperature", "0", "--no-progress"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for mode in ("na", "an", "single"):
        assert main(["train", "--mode", mode, "--out", str(root / "trained" / f"{mode}-s0"), *ARGS]) == 0
    for mode in ("na", "an", "single"):
        export_records(root / "trained" / f"{mode}-s0", root / "stored" / f"{mode}-s0")
    return root


def test_export_keeps_the_records_and_drops_the_weights(runs):
    stored = runs / "stored" / "na-s0"
    names = {p.name for p in stored.iterdir()}
    assert {"config.json", "run_info.json", "metrics.json", "eval.json", "eval_samples.json"} <= names
    assert "adapter" not in names and "checkpoints" not in names
    assert json.loads((stored / "run_info.json").read_text())["task"] == "mini-math"
    with pytest.raises(ValueError, match="exists"):
        export_records(runs / "trained" / "na-s0", stored)


def test_load_runs_gives_the_comparison_of_the_stored_runs(runs):
    evals, curves, untrained, samples = load_runs(runs / "stored")
    assert sorted(evals["mode"]) == ["AN", "NA", "single-reward"]
    final = json.loads((runs / "stored" / "an-s0" / "eval.json").read_text())[-1]
    an = evals.set_index("mode").loc["AN"]
    assert an["aggregate"] == pytest.approx(final["aggregate"])
    first = json.loads((runs / "stored" / "na-s0" / "eval.json").read_text())[0]
    assert untrained["aggregate"] == pytest.approx(first["aggregate"])
    assert set(samples["mode"]) == {"untrained", "NA", "AN", "single-reward"}
    assert (samples.groupby("mode").size() == 4).all()  # one reply per held-out prompt and run
    assert len(curves) == 3 * 2
    table = describe_runs(runs / "stored")
    assert list(table["task"]) == ["mini-math"] * 3 and set(table["steps"]) == {2}
    config = json.loads((runs / "stored" / "an-s0" / "config.json").read_text())
    assert table.loc["an-s0", "eval temperature"] == config["eval_temperature"]
    assert table.loc["an-s0", "LoRA r"] == (config["lora_r"] if config["use_lora"] else "no LoRA")


def test_runs_that_do_not_share_an_untrained_policy_are_refused(runs, tmp_path):
    import shutil

    shutil.copytree(runs / "stored", tmp_path / "mixed")
    path = tmp_path / "mixed" / "an-s0" / "eval.json"
    records = json.loads(path.read_text())
    records[0]["aggregate"] += 0.5
    path.write_text(json.dumps(records))
    with pytest.raises(ValueError, match="untrained evaluation differs"):
        load_runs(tmp_path / "mixed")
    with pytest.raises(ValueError, match="no run folders"):
        load_runs(tmp_path / "empty")


def test_a_run_on_another_task_is_its_own_arm_and_rescoring_puts_every_arm_on_one_reward(runs, tmp_path):
    import shutil

    root = tmp_path / "arms"
    shutil.copytree(runs / "stored", root)
    shutil.copytree(root / "na-s0", root / "na-other-s0")
    info = json.loads((root / "na-other-s0" / "run_info.json").read_text())
    (root / "na-other-s0" / "run_info.json").write_text(json.dumps({**info, "task": "mini-math-other"}))
    evals, _, _, samples = load_runs(root)
    assert sorted(evals["mode"]) == ["AN", "NA", "NA, mini-math-other", "single-reward"]
    named = load_runs(root, base_task="mini-math-other").evals["mode"]
    assert sorted(named) == ["AN, mini-math", "NA", "NA, mini-math", "single-reward, mini-math"]
    channels = [c for c in samples.columns if c in ("correctness", "length", "format")]
    weights = json.loads((root / "na-s0" / "config.json").read_text())["weights"]

    class Fixed:
        """Scores a reply by its length in characters only (a reward that reads the reply alone)."""
        channel_names = tuple(channels)

        def __call__(self, completion, prompt):
            assert isinstance(completion, str) and isinstance(prompt, str)
            return [float(len(completion) % 3 == i) for i in range(len(channels))]

    evals, _, untrained, samples = load_runs(root, reward_fn=Fixed())
    expect = [[float(len(c) % 3 == i) for i in range(len(channels))] for c in samples["completion"]]
    assert samples[channels].to_numpy().tolist() == expect
    na = samples[samples["mode"] == "NA"]
    row = evals.set_index("mode").loc["NA"]
    assert row["aggregate"] == pytest.approx(float((na[channels].to_numpy() @ weights).mean()))
    base = samples[samples["mode"] == "untrained"]
    assert untrained["aggregate"] == pytest.approx(float((base[channels].to_numpy() @ weights).mean()))

    class Other(Fixed):
        channel_names = ("a", "b")

    with pytest.raises(ValueError, match="rescoring reward's channels"):
        load_runs(root, reward_fn=Other())


def test_runs_on_different_splits_are_paired_within_each_split(runs, tmp_path):
    """Seeds that drew their own held-out prompts: one untrained evaluation per split, their mean overall."""
    import shutil

    import numpy as np

    from mrgrpo.analysis.held_out import mode_difference

    root = tmp_path / "two-splits"
    for mode in ("na", "an"):
        shutil.copytree(runs / "stored" / f"{mode}-s0", root / f"{mode}-s0")
        other = root / f"{mode}-s1"
        shutil.copytree(runs / "stored" / f"{mode}-s0", other)
        cfg = json.loads((other / "config.json").read_text())
        (other / "config.json").write_text(json.dumps({**cfg, "seed": 1}))
        replies = json.loads((other / "eval_samples.json").read_text())
        (other / "eval_samples.json").write_text(json.dumps([{**r, "prompt": "split 1: " + r["prompt"]}
                                                             for r in replies]))
        ev = json.loads((other / "eval.json").read_text())
        ev[0]["aggregate"] += 1.0  # another split, another untrained score
        (other / "eval.json").write_text(json.dumps(ev))
    evals, _, untrained, samples = load_runs(root)
    first = json.loads((root / "na-s0" / "eval.json").read_text())[0]["aggregate"]
    assert untrained["aggregate"] == pytest.approx(first + 0.5)  # the mean of the two splits
    assert (samples[samples["mode"] == "untrained"].groupby("seed").size() == 4).all()
    w = [1.0] * 3
    channels = [c for c in ("correctness", "format", "length") if c in samples.columns]
    diff = mode_difference(samples, "NA", "AN", channels, w[:len(channels)])
    assert diff["prompts"].iloc[0] == 8  # both splits' prompts, paired within their split
    assert np.isfinite(diff["difference"]).all()
    # the same split must still agree on the untrained policy
    bad = json.loads((root / "an-s1" / "eval.json").read_text())
    bad[0]["aggregate"] += 0.25
    (root / "an-s1" / "eval.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="na-s1: its untrained evaluation differs from an-s1"):
        load_runs(root)


def test_data_seed_fixes_the_split_across_run_seeds():
    from mrgrpo.tasks.registry import TaskSettings

    fixed = TaskSettings(task="fintech", n_train=8, n_eval=4, data_seed=0)
    held = [fixed.setup(seed=s).eval_prompts for s in (0, 1)]
    assert held[0] == held[1]
    free = TaskSettings(task="fintech", n_train=8, n_eval=4)
    assert free.setup(seed=0).eval_prompts == held[0] and free.setup(seed=1).eval_prompts != held[0]
    with pytest.raises(ValueError):
        TaskSettings(data_seed=-1)


def test_runs_that_predate_run_info_are_read_from_their_checkpoint(runs, tmp_path):
    """Run folders written before ``run_info.json`` existed keep the task in their checkpoints' state."""
    import shutil

    from mrgrpo.train.checkpoint import RunLayout, read_run_info

    old = tmp_path / "old" / "na-s0"
    shutil.copytree(runs / "trained" / "na-s0", old)
    assert any(RunLayout(old).checkpoints.glob("checkpoint-*")), "the fixture run must have checkpoints"
    RunLayout(old).run_info.unlink()
    assert read_run_info(old)["task"] == "mini-math"
    assert describe_runs(tmp_path / "old").loc["na-s0", "task"] == "mini-math"
    exported = export_records(old, tmp_path / "exported")
    assert json.loads((exported / "run_info.json").read_text())["task"] == "mini-math"
    assert read_run_info(tmp_path / "nothing-here") == {}


def test_run_times_sums_each_runs_step_times(runs):
    comparison = load_runs(runs / "stored")
    times = run_times(comparison)
    assert len(times) == 3 and set(times["steps"]) == {2}
    for (mode, seed), row in times.iterrows():
        steps = comparison.curves[(comparison.curves["mode"] == mode) & (comparison.curves["seed"] == seed)]
        assert row["training-step time (s)"] == pytest.approx(steps["step_time"].sum())
        assert row["longest step (s)"] == pytest.approx(steps["step_time"].max())
        assert row["longest step (s)"] >= row["median step (s)"] > 0
        replies = comparison.samples[(comparison.samples["mode"] == mode) & (comparison.samples["seed"] == seed)]
        assert row["mean reply tokens (trained)"] == pytest.approx(
            replies.loc[replies["step"] == replies["step"].max(), "n_tokens"].mean())


def test_machine_versions_names_the_installed_packages():
    import importlib.metadata
    import platform

    text = machine_versions()
    for d in ("torch", "transformers", "peft"):
        assert f"{d} {importlib.metadata.version(d)}" in text
    assert text.endswith(f"Python {platform.python_version()}, {platform.machine()}")
