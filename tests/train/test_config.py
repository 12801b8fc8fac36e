"""GRPOConfig: an invalid config cannot be built, presets keep their values, resume compares every field."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from mrgrpo.tasks.registry import TaskSettings
from mrgrpo.train.config import PRESETS, RESUME_MAY_CHANGE, GRPOConfig, resume_conflicts


# ------------------------------------------------------------------ checked on construction
@pytest.mark.parametrize("bad, match", [
    (dict(mode="mean"), "unknown mode 'mean'"),
    (dict(m=1), r"m must be in \[2, 65536\], got 1"),
    (dict(m=10**20), r"m must be in \[2, 65536\], got 100000000000000000000"),  # before: numpy's error at sampling
    (dict(seed=2**32), r"seed must be in \[0, 4294967295\]"),  # before: TRL's engine failed in np.random.seed
    (dict(m=8.0), "m must be an int"),
    (dict(lr=-1e-3), "lr must be > 0"),
    (dict(lr=0.0), "lr must be > 0"),
    (dict(weights=()), "weights must not be empty"),
    (dict(weights=(1.0, float("nan"))), "weights must be a list of finite numbers"),
    (dict(conditioning="gate"), "unknown conditioning"),
    (dict(conditioning="zero_fill", conditioned=0), "gate channel"),
    (dict(conditioning="zero_fill", conditioned=5), "out of range"),
    (dict(conditioning="zero_fill", gate=-4), "gate = -4 is out of range"),
    (dict(conditioning="zero_fill", weights=(1.0,)), "at least 2 reward channels"),
    (dict(weights=(0.0, 0.0, 0.0)), "weights are all 0"),
    (dict(temperature=0.0), "temperature must be > 0"),
    (dict(kl_coef=-0.1), "kl_coef must be >= 0"),
    (dict(n_steps=0), r"n_steps must be in \[1, 1000000000\]"),
    (dict(grad_accum=3), "grad_accum = 3 must divide"),
    (dict(loss_aggregation="sum"), "loss_aggregation"),
    (dict(lora_dropout=1.0), r"lora_dropout must be in \[0, 1\)"),
    (dict(resume=True), "resume=True needs out_dir"),
    (dict(resume=True, overwrite=True, out_dir="x"), "choose one"),
    (dict(dtype="fp8"), "dtype"),
    (dict(adv_ddof=2), "adv_ddof"),
    (dict(engine="verl"), "engine"),
    (dict(adam_betas=(0.9, 1.0)), r"adam_betas must be in \[0, 1\)"),
    (dict(use_lora="yes"), "use_lora must be True or False"),
    (dict(use_chat_template="yes"), "unknown use_chat_template"),
    (dict(out_dir=""), "out_dir must not be empty"),
    (dict(lora_target_modules=()), "lora_target_modules must name at least one module"),
    (dict(max_grad_norm=0.0), "max_grad_norm must be > 0"),
])
def test_an_invalid_config_cannot_be_built(bad, match):
    with pytest.raises(ValueError, match=match):
        GRPOConfig(**bad)


@pytest.mark.parametrize("field, value", [
    ("gate_threshold", "abc"), ("adam_betas", "0.9"), ("max_grad_norm", "1"), ("lr", "1e-3"),
    ("seed", None), ("model", 3), ("weights", {1.0, 2.0}),
])
def test_wrong_types_are_value_errors_naming_the_field(field, value):
    # before: a string for gate_threshold (then cond_threshold) or max_grad_norm raised TypeError from a comparison
    with pytest.raises(ValueError, match=rf"^GRPOConfig: {field} must be"):
        GRPOConfig(**{field: value})


@pytest.mark.parametrize("field, value", [
    ("weights", "1,1,0.5"), ("lora_target_modules", "q_proj"), ("conditioned", "1,2"), ("adam_betas", "0.9,0.99"),
])
def test_strings_where_sequences_are_expected_are_refused(field, value):
    # a string is a sequence of characters: "q_proj" would target modules "q", "_", "p", ...
    with pytest.raises(ValueError, match=rf"{field} must be .*not a string"):
        GRPOConfig(**{field: value})


def test_replace_checks_and_the_config_is_frozen():
    cfg = GRPOConfig()
    with pytest.raises(ValueError, match="lr must be > 0"):
        cfg.replace(lr=-1.0)
    with pytest.raises(ValueError, match="unknown field 'lrr'; did you mean 'lr'"):
        cfg.replace(lrr=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = -1.0
    assert cfg.replace(lr=0.5).lr == 0.5 and cfg.lr == 1e-3


def test_values_are_normalized_and_round_trip_through_a_dict():
    cfg = GRPOConfig(weights=[1, 1, 0.5], seed=np.int64(3), lr=np.float32(0.25), out_dir=Path("/tmp/run"),
                     conditioned=[1, 2], conditioning="zero_fill", lora_target_modules=["q_proj"])
    assert cfg.weights == (1.0, 1.0, 0.5) and all(type(w) is float for w in cfg.weights)
    assert type(cfg.seed) is int and type(cfg.lr) is float and cfg.out_dir == "/tmp/run"
    assert cfg.conditioned == (1, 2) and cfg.lora_target_modules == ("q_proj",)
    assert GRPOConfig.from_dict(cfg.to_dict()) == cfg
    assert GRPOConfig(conditioned=2).conditioned == (2,) and GRPOConfig().conditioned == (1,)


def test_presets_keep_their_values():
    cfg = GRPOConfig()
    assert cfg.model == "tiny-math" and GRPOConfig.from_preset("none") == cfg
    paper = GRPOConfig.paper()
    assert paper.model == "Qwen/Qwen2.5-1.5B-Instruct"
    assert (paper.lora_r, paper.lora_alpha, paper.n_steps, paper.batch_prompts, paper.m) == (16, 32, 500, 4, 8)
    assert (paper.lr, paper.kl_coef, paper.weights, paper.adam_betas) == (5e-6, 0.05, (1.0, 1.0, 0.5), (0.9, 0.95))
    assert (paper.engine, paper.dtype) == ("trl", "bfloat16") and cfg.engine == "ours"  # paper scale runs on TRL
    tiny = GRPOConfig.tiny()
    assert (tiny.model, tiny.lr, tiny.n_steps, tiny.eval_temperature, tiny.engine) == ("tiny-math", 3e-3, 20, 1.0,
                                                                                        "ours")
    assert all(m.startswith("layers.3.") for m in tiny.lora_target_modules)
    assert GRPOConfig.tiny(lr=1e-2).lr == 1e-2 and GRPOConfig.from_preset("tiny") == tiny
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        GRPOConfig.from_preset("huge")
    with pytest.raises(ValueError, match="lr must be > 0"):
        GRPOConfig.paper(lr=0.0)
    fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    assert all(set(over) <= fields for over in PRESETS.values())


def test_validate_checks_the_channel_count():
    GRPOConfig.paper().validate(n_channels=3)
    with pytest.raises(ValueError, match="weights has 3 entries but the reward function has 2 channels"):
        GRPOConfig().validate(n_channels=2)


def test_task_settings_are_checked_too():
    assert TaskSettings().to_dict() == {"task": "mini-math", "n_train": 400, "n_eval": 64, "data_seed": None, "L0": None,
                                        "gsm8k_path": None, "reward_funcs": []}
    for bad, match in [(dict(task="chess"), "unknown task"), (dict(n_train=0), r"n_train must be in \[1, 1000000\]"),
                       (dict(n_eval=-1), r"n_eval must be in \[0, 1000000\]"), (dict(L0="32"), "L0 must be"),
                       (dict(L0=0.0), "L0 must be > 0")]:
        with pytest.raises(ValueError, match=match):
            TaskSettings(**bad)


# ------------------------------------------------------------------ resume compares every field
#: A different valid value for every GRPOConfig field. A new field must be added here: the
#: test below fails until it is, so nobody adds a field that resume silently ignores.
CHANGED = dict(
    model="other/model", use_lora=False, lora_r=8, lora_alpha=16, lora_dropout=0.1, lora_target_modules=("q_proj",),
    device="cpu", dtype="float32", engine="trl", mode="an", weights=(1.0, 1.0, 1.0), adv_eps=1e-4, adv_ddof=1,
    batch_rescale=True, conditioning="zero_fill", gate=2, conditioned=(0, 1), gate_threshold=0.5, n_steps=300,
    batch_prompts=2, m=4, max_new_tokens=32, temperature=0.7, clip_eps=0.3, num_iterations=2, kl_coef=0.0,
    loss_aggregation="sequence", mask_truncated=True, lr=2e-3, weight_decay=0.1, adam_betas=(0.8, 0.9),
    lr_schedule="linear", warmup_steps=5, max_grad_norm=None, grad_accum=2, system_prompt="be brief",
    use_chat_template=False, seed=1, out_dir="elsewhere", checkpoint_every=5, resume=True, overwrite=True,
    eval_every=5, eval_temperature=1.0, eval_seed=1, eval_batch_size=8, progress=False,
)


def test_the_table_of_changes_covers_every_field():
    assert set(CHANGED) == {f.name for f in dataclasses.fields(GRPOConfig)}
    assert set(RESUME_MAY_CHANGE) <= set(CHANGED)


@pytest.mark.parametrize("name", list(CHANGED))
def test_resume_refuses_every_change_that_alters_the_run(name):
    saved = GRPOConfig(out_dir="run").to_dict()
    changed = {"out_dir": "run", "resume": name != "overwrite", name: CHANGED[name]}  # resume + overwrite: invalid
    conflicts = resume_conflicts(saved, GRPOConfig(**changed))
    if name in RESUME_MAY_CHANGE:
        assert conflicts == []
    else:
        assert len(conflicts) == 1 and conflicts[0].startswith(f"{name}: "), conflicts


def test_n_steps_may_grow_only_under_a_constant_schedule():
    saved = GRPOConfig(n_steps=10, out_dir="run").to_dict()
    assert resume_conflicts(saved, GRPOConfig(n_steps=20, out_dir="run", resume=True)) == []
    linear = GRPOConfig(n_steps=10, lr_schedule="linear", out_dir="run").to_dict()
    conflicts = resume_conflicts(linear, GRPOConfig(n_steps=20, lr_schedule="linear", out_dir="run"))
    assert len(conflicts) == 1 and "lr_schedule='linear'" in conflicts[0]


def test_resume_compares_the_task_settings_and_reads_older_checkpoints():
    cfg = GRPOConfig()
    saved = cfg.to_dict()
    a, b = TaskSettings().to_dict(), TaskSettings(task="fintech", n_train=16, L0=40.0).to_dict()
    assert resume_conflicts(saved, cfg, a, dict(a)) == []
    assert resume_conflicts(saved, cfg, a, b) == ["task: 'mini-math' -> 'fintech'", "n_train: 400 -> 16",
                                                  "L0: None -> 40.0"]
    assert resume_conflicts(saved, cfg, None, a) != []  # settings the checkpoint did not record
    # a field an older checkpoint lacks counts as its default; a field this version lacks is named
    older = {k: v for k, v in saved.items() if k != "mask_truncated"}
    assert resume_conflicts(older, cfg) == []
    assert resume_conflicts(older, cfg.replace(mask_truncated=True)) == ["mask_truncated: False -> True"]
    assert resume_conflicts({**saved, "future_knob": 1}, cfg)[0].startswith("future_knob: 1 -> (not a field")
    # a checkpoint from before the engine field was trained by mrgrpo's own trainer
    assert resume_conflicts({k: v for k, v in saved.items() if k != "engine"}, cfg.replace(engine="trl")) == \
        ["engine: 'ours' -> 'trl'"]
    # the same channel written as 1 or [1]
    assert resume_conflicts({**saved, "conditioned": 1}, cfg) == []


def test_stored_configs_with_the_old_field_names_still_load(tmp_path):
    """Run folders written before gate_idx / cond_idx / cond_threshold became gate / conditioned / gate_threshold."""
    import json
    import shutil

    from mrgrpo.train.checkpoint import read_run_config
    from mrgrpo.train.config import RENAMED_FIELDS, upgrade_config

    # the config.json of a SmolLM2 Tier-3 run stored before the rename (data/smollm2-tier3/na-s0 at 5f617ba)
    stored = Path(__file__).resolve().parents[1] / "fixtures" / "run_config_before_rename.json"
    old = json.loads(stored.read_text())
    assert {"gate_idx", "cond_idx", "cond_threshold"} <= set(old)
    shutil.copy(stored, tmp_path / "config.json")
    cfg, path = read_run_config(tmp_path)
    assert path == tmp_path / "config.json" and not set(RENAMED_FIELDS) & set(cfg)
    assert (cfg["gate"], cfg["conditioned"], cfg["gate_threshold"]) == (0, 1, None)
    assert resume_conflicts(cfg, GRPOConfig.from_dict(cfg)) == []
    # a checkpoint's state.json config, compared as it is stored
    saved = {**{k: v for k, v in GRPOConfig().to_dict().items() if k not in ("gate", "conditioned", "gate_threshold")},
             "gate_idx": 0, "cond_idx": 1, "cond_threshold": None}
    assert resume_conflicts(saved, GRPOConfig()) == []
    assert resume_conflicts({**saved, "cond_idx": 2}, GRPOConfig()) == ["conditioned: 2 -> [1]"]
    with pytest.raises(ValueError, match="both 'gate_idx' and 'gate'"):
        upgrade_config({"gate_idx": 0, "gate": 0})
