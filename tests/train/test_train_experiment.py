"""``compare_estimators`` and ``held_out_summary``: the Tier-3 comparison as a library call."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))
from _tiny_lm import build_tiny_lm  # noqa: E402

from mrgrpo.train import GRPOConfig, GRPOTrainer, compare_estimators, held_out_summary  # noqa: E402

PROMPTS = ["Q: 1 + 2 = ?\nA:", "Q: 30 - 4 = ?\nA:", "Q: 7 * 6 = ?\nA:", "Q: 9 + 9 = ?\nA:"]
HELD_OUT = ["Q: 5 + 5 = ?\nA:", "Q: 8 - 3 = ?\nA:", "Q: 2 * 4 = ?\nA:"]


def reward(completion: str, prompt) -> list[float]:
    return [float("a" in completion), sum(c.isdigit() for c in completion) / 8.0, float(len(completion) < 6)]


reward.channel_names = ("has_a", "digits", "short")


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return build_tiny_lm(tmp_path_factory.mktemp("tiny_experiment"), init_std=0.5)


def test_compare_estimators_runs_every_mode_and_seed(tiny_path):
    def make_config(mode, seed):
        return GRPOConfig(model=tiny_path, mode=mode, seed=seed, m=4, batch_prompts=2, max_new_tokens=6,
                          n_steps=2, lr=5e-2, progress=False, eval_temperature=1.0)

    evals, curves, untrained, samples = compare_estimators(["na", "single"], [0, 1], make_config, reward, PROMPTS,
                                                           HELD_OUT, progress=False)
    # every evaluated reply: the untrained policy's once, each run's final evaluation
    assert list(samples.groupby("mode", sort=False).size()) == [len(HELD_OUT), 2 * len(HELD_OUT), 2 * len(HELD_OUT)]
    assert list(dict.fromkeys(samples["mode"])) == ["untrained", "NA", "single-reward"]
    assert list(evals["mode"]) == ["NA", "NA", "single-reward", "single-reward"]
    assert list(evals["seed"]) == [0, 1, 0, 1]
    assert list(evals.columns) == ["mode", "seed", "has_a", "digits", "short", "aggregate"]
    np.testing.assert_allclose(evals["aggregate"], evals[["has_a", "digits", "short"]] @ np.array([1.0, 1.0, 0.5]))
    assert len(curves) == 4 * 2 and set(curves["step"]) == {1, 2}
    assert {"reward/has_a", "reward/aggregate"} <= set(curves.columns)
    # runs are what a trainer built by hand gives: same untrained policy, same trained one
    fresh = GRPOTrainer(make_config("single", 1), reward, PROMPTS, eval_prompts=HELD_OUT)
    before = fresh.evaluate()
    assert untrained == pytest.approx({k: before[k] for k in untrained})
    fresh.train()
    after = fresh.evaluate()
    row = evals.iloc[3]
    assert [row[k] for k in untrained] == pytest.approx([after[k] for k in untrained])
    # the two seeds train differently (else the seed would not reach the run)
    assert not curves[curves["seed"] == 0]["reward/aggregate"].equals(
        curves[curves["seed"] == 1]["reward/aggregate"].reset_index(drop=True))

    table = held_out_summary(evals, untrained)
    assert list(table.index) == ["untrained", "NA", "single-reward"]
    assert list(table["runs"]) == [1, 2, 2] and np.isnan(table.loc["untrained", "aggregate sd"])
    na = evals[evals["mode"] == "NA"]["aggregate"]
    assert table.loc["NA", "aggregate"] == pytest.approx(na.mean())
    assert table.loc["NA", "aggregate sd"] == pytest.approx(na.std(ddof=1))


def test_compare_estimators_trains_on_the_engine_the_config_names(monkeypatch):
    """``engine="trl"`` reaches the TRL engine (it once ran mrgrpo's trainer whatever the config said)."""
    import mrgrpo.train.engines.trl_engine as trl_engine
    import mrgrpo.train.trainer as trainer_module

    built = []

    class Recorder:  # stands in for TRLEngineTrainer: records what it is given, trains nothing
        def __init__(self, config, reward_fn, prompts, eval_prompts=None, callbacks=(), run_info=None):
            built.append((config, reward_fn, list(prompts), list(eval_prompts)))
            self.channel_names, self.step, self.eval_samples = reward.channel_names, 0, []

        def evaluate(self):
            self.eval_samples = [{"step": self.step, "prompt": p, "completion": ""} for p in HELD_OUT]
            return {"has_a": 0.0, "digits": 0.0, "short": 1.0, "aggregate": 0.5 + self.step}

        def train(self):
            self.step = 2
            return [{"step": 1, "reward/aggregate": 0.0}, {"step": 2, "reward/aggregate": 1.0}]

    def not_ours(*args, **kwargs):
        raise AssertionError("mrgrpo's trainer ran a config that names engine='trl'")

    monkeypatch.setattr(trl_engine, "TRLEngineTrainer", Recorder)
    monkeypatch.setattr(trainer_module, "GRPOTrainer", not_ours)
    configs = {(m, s): GRPOConfig(model="/nonexistent", engine="trl", mode=m, seed=s)
               for m in ("na", "an") for s in (0, 1)}
    evals, curves, untrained, samples = compare_estimators(["na", "an"], [0, 1], lambda m, s: configs[m, s], reward,
                                                           PROMPTS, HELD_OUT, progress=False)
    assert [b[0] for b in built] == list(configs.values())  # every run, on the config it was given
    assert all(b[1] is reward and b[2] == PROMPTS and b[3] == HELD_OUT for b in built)
    assert list(evals["aggregate"]) == [2.5] * 4 and untrained["aggregate"] == 0.5 and len(curves) == 8
    assert list(dict.fromkeys(samples["mode"])) == ["untrained", "NA", "AN"]


@pytest.mark.parametrize("kw, match", [
    (dict(modes=["nx"]), "modes must be"),
    (dict(seeds=[]), "seeds is empty"),
    (dict(eval_prompts=[]), "eval_prompts is empty"),
])
def test_compare_estimators_rejects_bad_input_before_training(kw, match):
    args = dict(modes=["na"], seeds=[0], make_config=lambda mode, seed: GRPOConfig(model="/nonexistent"),
                reward_fn=reward, train_prompts=PROMPTS, eval_prompts=HELD_OUT, progress=False)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        compare_estimators(**args)


def test_evaluate_adapters_scores_a_trained_adapter_like_the_trainer(tiny_path, tmp_path):
    from mrgrpo.train import evaluate_adapters

    cfg = GRPOConfig(model=tiny_path, mode="an", seed=0, m=4, batch_prompts=2, max_new_tokens=6, n_steps=2,
                     lr=5e-2, progress=False, out_dir=str(tmp_path / "run"))
    trainer = GRPOTrainer(cfg, reward, PROMPTS, eval_prompts=HELD_OUT)
    trainer.train()
    after = trainer.evaluate()  # greedy, as evaluate_adapters
    table = evaluate_adapters(tiny_path, {"AN": str(tmp_path / "run" / "adapter")}, reward, HELD_OUT,
                              (1.0, 1.0, 0.5), max_new_tokens=6)
    assert list(table.index) == ["AN"] and list(table.columns) == ["has_a", "digits", "short", "aggregate"]
    assert table.loc["AN"].to_dict() == pytest.approx({k: after[k] for k in table.columns})
    with pytest.raises(ValueError, match="w has 2 weights"):
        evaluate_adapters(tiny_path, {}, reward, HELD_OUT, (1.0, 1.0))


def test_held_out_summary_orders_modes_whatever_order_the_runs_come_in():
    """Stored runs sort by folder name (an-s0 before na-s0); the table's rows must not follow that order."""
    import pandas as pd

    evals = pd.DataFrame([{"mode": m, "seed": s, "aggregate": v} for m, s, v in
                          [("single-reward", 0, 1.0), ("AN", 0, 3.0), ("NA", 0, 2.0), ("AN", 1, 3.5)]])
    table = held_out_summary(evals, {"aggregate": 0.5})
    assert list(table.index) == ["untrained", "NA", "AN", "single-reward"]
    assert table.loc["AN", "aggregate"] == pytest.approx(3.25) and list(table["runs"]) == [1, 1, 2, 1]
