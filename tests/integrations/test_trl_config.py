"""Issue 23: a TRL user's path. ``MultiRewardGRPOConfig``, ``python -m mrgrpo.integrations.trl``, reward specs,
model ids that load by path, contradictory TRL options refused.

- the config's fields come through ``TrlParser`` from a YAML file and from flags, are checked like TRL's,
  and build the ``AdvantageSpec``; the keyword arguments keep working;
- every checkpoint holds the settings as JSON beside ``training_args.bin`` (never unpickled), and a
  resume refuses other settings; the command restores what its YAML leaves out;
- ``multi_objective_aggregation`` / ``scale_rewards`` that contradict the settings are refused with the fix;
- ``mrgrpo.lm.model_path`` gives complete Hugging Face folders (TRL builds the model from the path);
- ``module:function`` reward specs, in the TRL command and in ``mrgrpo train --engine trl``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import yaml
from trl import GRPOConfig, TrlParser

from mrgrpo.core.advantage_spec import AdvantageSpec
from mrgrpo.integrations.trl import MultiRewardGRPOTrainer, advantage_spec_from_trl
from mrgrpo.integrations.trl_cli import accelerate_config, main
from mrgrpo.integrations.trl_config import SETTINGS_FILE, MultiRewardGRPOConfig, read_settings
from mrgrpo.lm import model_path
from mrgrpo.rewards.external import RewardFunctions, load_reward_func, parse_reward_spec

pytestmark = pytest.mark.usefixtures("one_torch_thread")
W = [1.0, 1.0, 0.5]
REWARDS = '''
def correct(prompts, completions, gold=None, **kw):
    return [1.0 if str(g) in c else 0.0 for c, g in zip(completions, gold)]

def brevity(prompts, completions, **kw):
    return [-len(c) / 40 for c in completions]

def fmt(prompts, completions, **kw):
    return [1.0 if c.strip() else 0.0 for c in completions]
'''
TRAIN = dict(num_generations=2, per_device_train_batch_size=4, max_completion_length=8, logging_steps=1,
             report_to=[], use_cpu=True, disable_tqdm=True, learning_rate=1e-3, seed=0, dataloader_num_workers=0)


@pytest.fixture
def user(tmp_path, monkeypatch):
    """A user's folder outside the repository: a reward module and a prompt file; the cwd."""
    (tmp_path / "my_rewards.py").write_text(REWARDS)
    rows = [{"prompt": f"Q: {a} + {b} = ?", "gold": str(a + b)} for a, b in [(1, 2), (3, 4), (2, 2), (5, 1)]]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def funcs(user):
    return [load_reward_func(f"{user / 'my_rewards.py'}:{n}") for n in ("correct", "brevity", "fmt")]


def dataset(user):
    from mrgrpo.integrations.trl_cli import load_prompt_dataset

    return load_prompt_dataset(str(user / "prompts.jsonl"))


# ------------------------------------------------------------------ the config class
def test_trlparser_reads_the_settings_from_yaml_and_flags(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(dict(output_dir=str(tmp_path / "o"), reward_weights=W, mode="an",
                                                         normalization="trl", conditioning="subgroup",
                                                         conditioned=[1, 2], use_cpu=True)))
    (args,) = TrlParser((MultiRewardGRPOConfig,)).parse_args_and_config(
        ["--config", str(tmp_path / "c.yaml"), "--gate_threshold", "0.5", "--batch_rescale", "true"])
    assert args.advantage_spec(3) == AdvantageSpec(weights=tuple(W), mode="an", adv_ddof=1, adv_eps=1e-4,
                                                   batch_rescale=True, conditioning="subgroup", conditioned=(1, 2),
                                                   gate_threshold=0.5)
    assert advantage_spec_from_trl(args, 3) == args.advantage_spec(3)
    with pytest.raises(SystemExit):  # argparse: a choice outside the field's
        TrlParser((MultiRewardGRPOConfig,)).parse_args_and_config(["--output_dir", "x", "--conditioning", "gated"])


@pytest.mark.parametrize("kw,match", [
    (dict(mode="mean"), "mode"),
    (dict(normalization="trl", adv_ddof=0), "give one of them"),
    (dict(conditioning="zero_fill", gate=1, conditioned=[1]), "gate"),
    (dict(reward_weights=W, channel_names=["a", "b"]), "channel_names has 2 names for 3"),
    (dict(adv_eps=-1.0), "adv_eps"),
])
def test_the_config_checks_its_fields_like_trls(tmp_path, kw, match):
    with pytest.raises(ValueError, match=rf"^MultiRewardGRPOConfig: .*{match}"):
        MultiRewardGRPOConfig(output_dir=str(tmp_path), use_cpu=True, **kw)


@pytest.mark.parametrize("cls,kw,match", [
    (MultiRewardGRPOConfig, dict(multi_objective_aggregation="sum_then_normalize", mode="na"),
     r"is TRL's mode='an', but the advantage settings say mode='na'.*leave multi_objective_aggregation unset"),
    (MultiRewardGRPOConfig, dict(multi_objective_aggregation="normalize_then_sum", mode="na"),
     r"mode='na', batch_rescale=True, but .* batch_rescale=False"),
    (MultiRewardGRPOConfig, dict(scale_rewards="batch"), r"scale_rewards='batch'.*set batch_rescale=True"),
    (MultiRewardGRPOConfig, dict(scale_rewards="none"), r"scale_rewards='none'.*keep scale_rewards='group'"),
    (GRPOConfig, dict(multi_objective_aggregation="normalize_then_sum"), r"is TRL's mode='na', batch_rescale=True"),
])
def test_contradictory_trl_options_are_refused_with_the_fix(tmp_path, cls, kw, match):
    ours = {k: kw.pop(k) for k in ("mode",) if k in kw and cls is GRPOConfig}
    with pytest.raises(ValueError, match=match):
        args = cls(output_dir=str(tmp_path), use_cpu=True, reward_weights=W, **kw)
        advantage_spec_from_trl(args, 3, mode="an", **ours)  # a plain GRPOConfig: checked with the keywords


def test_agreeing_trl_options_and_keywords(tmp_path):
    args = MultiRewardGRPOConfig(output_dir=str(tmp_path), use_cpu=True, reward_weights=W, mode="na",
                                 batch_rescale=True, normalization="trl",
                                 multi_objective_aggregation="normalize_then_sum")
    assert advantage_spec_from_trl(args, 3).batch_rescale
    plain = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, reward_weights=W)  # TRL's default aggregation
    assert advantage_spec_from_trl(plain, 3, mode="na").mode == "na"  # keywords keep working
    with pytest.raises(ValueError, match="given twice, in MultiRewardGRPOConfig and as"):
        advantage_spec_from_trl(args, 3, mode="an")


# ------------------------------------------------------------------ saved with the checkpoint, restored on resume
def test_checkpoints_hold_the_settings_as_json_and_a_resume_checks_them(user, monkeypatch):
    out = user / "out"
    common = dict(output_dir=str(out), reward_weights=W, save_steps=1, **TRAIN)
    args = MultiRewardGRPOConfig(max_steps=2, mode="an", conditioning="zero_fill", **common)
    tr = MultiRewardGRPOTrainer(model=model_path("tiny-math"), reward_funcs=funcs(user), args=args,
                                train_dataset=dataset(user))
    tr.train()
    for ckpt in ("checkpoint-1", "checkpoint-2"):
        saved = read_settings(out / ckpt)
        assert (out / ckpt / "training_args.bin").is_file()  # TRL's pickle, beside it
        assert saved["advantage_spec"]["mode"] == "an" and saved["settings"]["conditioning"] == "zero_fill"
        assert saved["advantage_spec"]["channel_names"] == ["correct", "brevity", "fmt"]
    other = MultiRewardGRPOConfig(max_steps=3, mode="na", conditioning="zero_fill", **common)
    tr2 = MultiRewardGRPOTrainer(model=model_path("tiny-math"), reward_funcs=funcs(user), args=other,
                                 train_dataset=dataset(user))
    with pytest.raises(ValueError, match=r"checkpoint-2 was trained with other advantage settings \(mode: "
                                         r"checkpoint 'an', now 'na'\)"):
        tr2.train(resume_from_checkpoint=True)
    loaded = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda f, *a, **k: loaded.append(str(f)) or real_load(f, *a, **k))
    same = MultiRewardGRPOConfig(max_steps=3, mode="an", conditioning="zero_fill", **common)
    tr3 = MultiRewardGRPOTrainer(model=model_path("tiny-math"), reward_funcs=funcs(user), args=same,
                                 train_dataset=dataset(user))
    tr3.train(resume_from_checkpoint=True)
    assert tr3.state.global_step == 3 and read_settings(out / "checkpoint-3")["advantage_spec"]["mode"] == "an"
    assert loaded and not any(p.endswith("training_args.bin") for p in loaded), loaded
    (out / "checkpoint-3" / SETTINGS_FILE).unlink()  # a checkpoint of another trainer
    with pytest.raises(ValueError, match=f"has no {SETTINGS_FILE}: it was not written by MultiRewardGRPOTrainer"):
        tr3.train(resume_from_checkpoint=str(out / "checkpoint-3"))


# ------------------------------------------------------------------ the command
def write_yaml(path: Path, **kw) -> Path:
    path.write_text(yaml.safe_dump(kw))
    return path


def test_the_command_trains_a_users_rewards_and_restores_the_settings_on_resume(user, capsys):
    base = dict(model_name_or_path="tiny-math", dataset_name="prompts.jsonl", output_dir="run", save_steps=1,
                reward_funcs=["my_rewards:correct", "my_rewards:brevity", "my_rewards:fmt"], **TRAIN)
    first = write_yaml(user / "my.yaml", max_steps=2, reward_weights=W, mode="an", conditioning="zero_fill",
                       gate=0, conditioned=[1], **base)
    assert main(["--config", str(first)]) == 0
    assert "trained 2 steps (an)" in capsys.readouterr().out
    assert json.loads((user / "run" / SETTINGS_FILE).read_text())["advantage_spec"]["weights"] == W
    again = write_yaml(user / "resume.yaml", max_steps=3, **base)  # no advantage settings: restored
    assert main(["--config", str(again), "--resume_from_checkpoint", "last"]) == 0
    out = capsys.readouterr().out
    assert "restored from run/checkpoint-2: mode='an', conditioning='zero_fill', reward_weights=[1.0, 1.0, 0.5]" \
        in out and "trained 3 steps (an)" in out
    assert main(["--config", str(again), "--resume_from_checkpoint", "last", "--max_steps", "4", "--mode", "na"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint-3 was trained with other advantage settings (mode: checkpoint 'an', " \
        "now 'na')" in err[0]


@pytest.mark.parametrize("change,match", [
    (dict(reward_funcs=["no_such_module:f"]), "cannot import module 'no_such_module'"),
    (dict(reward_funcs=["my_rewards:nope"]), "my_rewards has no 'nope' \\(its callables: brevity, correct, fmt\\)"),
    (dict(reward_funcs=["my_rewards"]), "names no function"),
    (dict(model_name_or_path=str(Path("no-such-folder").resolve())), "does not exist"),
    (dict(dataset_name="prompts.txt"), "a file must be one of"),
    (dict(mode="an", multi_objective_aggregation="normalize_then_sum"), "is TRL's mode='na', batch_rescale=True"),
])
def test_the_command_says_what_is_wrong_in_one_line(user, capsys, change, match):
    (user / "prompts.txt").write_text("x")
    cfg = dict(model_name_or_path="tiny-math", dataset_name="prompts.jsonl", output_dir="run", max_steps=1,
               reward_funcs=["my_rewards:correct", "my_rewards:brevity", "my_rewards:fmt"], **TRAIN)
    cfg.update(change)
    assert main(["--config", str(write_yaml(user / "bad.yaml", **cfg))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and __import__("re").search(match, err[0]), err


def test_the_shipped_accelerate_configs_are_package_data(capsys):
    assert main(["--accelerate-config", "cpu_2proc"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == accelerate_config("cpu_2proc") and path.is_file()
    assert path.is_relative_to(Path(__file__).resolve().parents[2] / "mrgrpo" / "assets")
    assert main(["--accelerate-config", "nope"]) == 2 and "cpu_2proc, gpu_1, gpu_multi" in capsys.readouterr().err


# ------------------------------------------------------------------ reward specs, model ids
def test_reward_specs(user):
    assert parse_reward_spec("pkg.mod:f") == ("pkg.mod", "f") and parse_reward_spec("pkg.mod.f") == ("pkg.mod", "f")
    assert parse_reward_spec("dir/r.py:f") == ("dir/r.py", "f")
    both = RewardFunctions.from_specs("my_rewards:correct,my_rewards:brevity")
    assert both.channel_names == ("correct", "brevity")
    assert both("x 3", {"prompt": "Q: 1 + 2 = ?", "gold": "3"}) == [1.0, -3 / 40]
    with pytest.raises(ValueError, match="returned None for completion 0"):
        RewardFunctions([lambda prompts, completions, **kw: [None]])("x", "p")


@pytest.mark.parametrize("model_id", ["tiny-math", "smollm2-135m-instruct"])
def test_model_ids_are_complete_folders_that_trl_loads_by_path(model_id):
    from trl.trainer.utils import create_model_from_path

    path = Path(model_path(model_id))
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] and (path / "generation_config.json").is_file()
    assert (path / "tokenizer.json").is_file() and (path / "tokenizer_config.json").is_file()
    model = create_model_from_path(str(path), dtype="float32")  # issue 23: failed on SmolLM2's cache
    assert type(model).__name__ == config["architectures"][0]


def test_mrgrpo_train_takes_the_same_reward_specs(user, capsys):
    from mrgrpo.cli import main as mrgrpo

    rc = mrgrpo(["train", "--engine", "trl", "--reward-funcs", "my_rewards:correct,my_rewards:brevity,my_rewards:fmt",
                 "--n-steps", "1", "--batch-prompts", "2", "--m", "2", "--max-new-tokens", "8", "--n-train", "2",
                 "--n-eval", "0", "--no-progress", "--out", str(user / "run")])
    assert rc == 0
    assert "trained 1 steps (na, engine trl); last step: correct=" in capsys.readouterr().out
    record = json.loads((user / "run" / "metrics.json").read_text())[-1]
    assert {"reward/correct", "reward/brevity", "influence/fmt"} <= set(record)
    assert json.loads((user / "run" / "config.json").read_text())  # an mrgrpo run folder
    assert os.path.isdir(user / "run" / "checkpoints")
