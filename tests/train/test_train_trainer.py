"""GRPOTrainer: config validation, advantages, prompts, reference policy, saving, faults, resume."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1]))
from _tiny_lm import build_tiny_lm  # noqa: E402

import mrgrpo.core.advantage as adv_np  # noqa: E402
from mrgrpo.rewards.base import RewardFunctionError  # noqa: E402
from mrgrpo.train import GRPOConfig, GRPOTrainer  # noqa: E402
from mrgrpo.train.metrics import TIMING_KEYS  # noqa: E402
from mrgrpo.train.evaluation import encode_prompts  # noqa: E402

PROMPTS = ["Q: 1 + 2 = ?\nA:", "Q: 30 - 4 = ?\nA:", "Q: 7 * 6 = ?\nA:", "Q: 9 + 9 = ?\nA:"]


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return build_tiny_lm(tmp_path_factory.mktemp("tiny_trainer"))


def three_channel(completion: str, prompt) -> list[float]:
    return [float("a" in completion), sum(c.isdigit() for c in completion) / 16.0, float(len(completion) < 6)]


three_channel.channel_names = ("has_a", "digits", "short")


def small(tiny_path, **kw) -> GRPOConfig:
    base = dict(model=tiny_path, weights=(1.0, 1.0, 0.5), m=4, batch_prompts=2, max_new_tokens=8,
                n_steps=3, progress=False, seed=0)
    base.update(kw)
    return GRPOConfig(**base)


# ------------------------------------------------------------------ config
@pytest.mark.parametrize("bad, match", [
    (dict(mode="mean"), "unknown mode"),
    (dict(m=1), "m must be"),
    (dict(lr=-1e-3), "lr must be"),
    (dict(lr=0.0), "lr must be"),
    (dict(weights=()), "weights"),
    (dict(weights=(1.0, float("nan"))), "finite"),
    (dict(conditioning="gate"), "unknown conditioning"),
    (dict(conditioning="zero_fill", conditioned=0), "gate channel"),
    (dict(conditioning="zero_fill", conditioned=5), "out of range"),
    (dict(temperature=0.0), "temperature"),
    (dict(kl_coef=-0.1), "kl_coef"),
    (dict(n_steps=0), "n_steps"),
    (dict(grad_accum=3), "grad_accum"),
    (dict(loss_aggregation="sum"), "loss_aggregation"),
    (dict(lora_dropout=1.0), "lora_dropout"),
    (dict(resume=True), "resume=True needs out_dir"),
    (dict(dtype="fp8"), "dtype"),
    (dict(adv_ddof=2), "adv_ddof"),
])
def test_invalid_config_fails_before_any_model_loads(bad, match):
    # GRPOConfig checks itself when built (tests/train/test_config.py), so a bad value never reaches a
    # trainer; the model path does not exist: reaching a model load would raise something else
    with pytest.raises(ValueError, match=match):
        GRPOTrainer(GRPOConfig(model="/nonexistent/model", **bad), three_channel, PROMPTS)


def test_weights_must_match_reward_channels_before_loading():
    cfg = GRPOConfig(model="/nonexistent/model", weights=(1.0, 1.0))
    with pytest.raises(ValueError, match="2 entries but the reward function has 3 channels"):
        GRPOTrainer(cfg, three_channel, PROMPTS)


@pytest.mark.parametrize("prompts, match", [([], "non-empty"), (["ok", 3], r"prompts\[1\]"),
                                            ([{"gold": 1}], "without a 'prompt'")])
def test_bad_prompts_are_named(prompts, match):
    with pytest.raises(ValueError, match=match):
        GRPOTrainer(GRPOConfig(model="/nonexistent/model"), three_channel, prompts)


def test_default_and_paper_configs():
    cfg = GRPOConfig()
    assert cfg.model == "tiny-math"
    paper = GRPOConfig.paper()
    assert paper.model == "Qwen/Qwen2.5-1.5B-Instruct"
    assert (paper.lora_r, paper.lora_alpha, paper.n_steps, paper.batch_prompts, paper.m) == (16, 32, 500, 4, 8)
    assert (paper.lr, paper.kl_coef, tuple(paper.weights)) == (5e-6, 0.05, (1.0, 1.0, 0.5))
    paper.validate(n_channels=3)


def test_missing_tiny_policy_gives_a_clear_error(monkeypatch, tmp_path):
    import mrgrpo.lm.loader as loader

    monkeypatch.setattr(loader, "TINY_MATH_DIR", tmp_path / "tiny-math")
    tr = GRPOTrainer(GRPOConfig(), three_channel, PROMPTS)
    with pytest.raises(FileNotFoundError, match="the tiny policy is missing"):
        tr.train()


# ------------------------------------------------------------------ advantages
@pytest.mark.parametrize("kw", [
    dict(mode="na"), dict(mode="an"), dict(mode="single"),
    dict(mode="na", batch_rescale=True),
    dict(mode="na", batch_rescale=True, adv_ddof=1, adv_eps=1e-4),  # TRL normalize_then_sum
    dict(mode="na", conditioning="zero_fill", conditioned=(1, 2)),
    dict(mode="an", conditioning="subgroup", conditioned=1),
    dict(mode="na", conditioning="zero_fill", gate=1, conditioned=(0,), gate_threshold=0.0),
])
def test_trainer_advantages_equal_mrgrpo_advantage(kw):
    cfg = GRPOConfig(model="/nonexistent/model", **kw)
    tr = GRPOTrainer(cfg, three_channel, PROMPTS)
    rng = np.random.default_rng(0)
    r = np.stack([rng.integers(0, 2, (5, 8)), rng.normal(size=(5, 8)), rng.uniform(size=(5, 8))], -1)
    r[0, :, 1] = 0.3  # a constant channel in one group
    expect = r
    if cfg.conditioning != "none":
        expect = adv_np.apply_conditioning(r, gate_idx=cfg.gate, cond_idx=list(cfg.conditioned),
                                           impl=cfg.conditioning, threshold=cfg.gate_threshold)
    expect = adv_np.compute_advantage_batch(expect, np.asarray(cfg.weights), mode=cfg.mode, eps=cfg.adv_eps,
                                            ddof=cfg.adv_ddof, batch_rescale=cfg.batch_rescale)
    np.testing.assert_allclose(tr.advantages(r).numpy(), expect, rtol=1e-12, atol=1e-12)


def test_trainer_refuses_a_non_binary_gate_naming_it():
    """Issue 21, item 13: a gate of 0.5/0.7 under gate_threshold None used to zero the conditioned channel."""
    tr = GRPOTrainer(GRPOConfig(model="/nonexistent/model", conditioning="zero_fill"), three_channel, PROMPTS)
    r = np.stack([np.full((2, 4), 0.5), np.ones((2, 4)), np.zeros((2, 4))], -1)
    r[1, :, 0] = 0.7
    with pytest.raises(ValueError, match=r"gate 'has_a' \(channel 0\) is not binary.*returned 0\.5, 0\.7;"):
        tr.advantages(r)


def test_update_receives_the_advantages_of_the_scored_rewards(tiny_path):
    tr = GRPOTrainer(small(tiny_path, n_steps=2), three_channel, PROMPTS)
    seen = []
    orig_adv, orig_update = tr.advantages, tr._update
    tr.advantages = lambda r: seen.append(("rewards", r.clone())) or orig_adv(r)
    tr._update = lambda roll, a: seen.append(("adv", a.clone())) or orig_update(roll, a)
    tr.train()
    for (_, r), (_, a) in zip(seen[0::2], seen[1::2]):
        expect = adv_np.compute_advantage_batch(r.numpy(), np.array([1.0, 1.0, 0.5]), mode="na").reshape(-1)
        np.testing.assert_allclose(a.numpy(), expect, rtol=1e-12)


# ------------------------------------------------------------------ prompts, reference, saving
def test_prompt_kinds_and_metadata_reach_the_reward(tmp_path):
    path = build_tiny_lm(tmp_path / "chat", chat_template=True)
    got = []

    def reward(completion, prompt):
        got.append(prompt)
        return [float(len(completion)), 0.0, 0.0]

    prompts = ["Q: 1?", [{"role": "user", "content": "Q: 2?"}], {"prompt": "Q: 3?", "gold": 3},
               {"messages": [{"role": "system", "content": "be short"}, {"role": "user", "content": "Q: 4?"}],
                "gold": 4}]
    tr = GRPOTrainer(GRPOConfig(model=path, m=2, batch_prompts=4, max_new_tokens=4, n_steps=1, progress=False,
                                weights=(1.0, 1.0, 1.0)), reward, prompts)
    tr.train()
    ids, _ = encode_prompts(tr.prompts, tr.tokenizer, tr.cfg)
    assert tr.tokenizer.decode(ids[1]) == "u:Q: 2?\na:"
    assert tr.tokenizer.decode(ids[0]) == "u:Q: 1?\na:"  # strings go through the template
    dicts = [p for p in got if isinstance(p, dict)]
    assert {p["gold"] for p in dicts} == {3, 4}
    assert any(isinstance(p, list) for p in got) and any(isinstance(p, str) for p in got)


def test_lora_reference_is_the_base_with_adapters_off(tiny_path):
    tr = GRPOTrainer(small(tiny_path, n_steps=4, lr=0.05), three_channel, PROMPTS)
    hist = tr.train()
    assert tr.ref_model is None  # no second copy of the model
    assert hist[0]["kl"] == 0.0  # LoRA starts at B = 0: the policy is the reference
    assert hist[-1]["kl"] > 0.0
    # the base weights never move
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_path)
    ids = torch.tensor([[3, 4, 5, 6]])
    with torch.no_grad(), tr.model.disable_adapter():
        torch.testing.assert_close(tr.model(input_ids=ids).logits, base(input_ids=ids).logits)


def test_full_finetuning_uses_a_frozen_copy(tiny_path):
    tr = GRPOTrainer(small(tiny_path, use_lora=False, lr=1e-2, n_steps=3), three_channel, PROMPTS)
    hist = tr.train()
    assert tr.ref_model is not None and not any(p.requires_grad for p in tr.ref_model.parameters())
    moved = [float((p.detach() - q).abs().max()) for p, q in zip(tr.model.parameters(), tr.ref_model.parameters())]
    assert max(moved) > 0
    assert hist[-1]["kl"] > 0


def test_save_loads_with_peft_and_files_are_written(tiny_path, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    tr = GRPOTrainer(small(tiny_path, n_steps=3, lr=0.05, out_dir=str(out), eval_every=2), three_channel,
                     PROMPTS, eval_prompts=PROMPTS[:2])
    hist = tr.train()
    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_path), str(out / "adapter"))
    ids = torch.tensor([[3, 4, 5, 6]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, tr.model(input_ids=ids).logits)
    on_disk = json.loads((out / "metrics.json").read_text())
    assert [r["step"] for r in on_disk] == [1, 2, 3]
    assert on_disk[-1]["reward/digits"] == pytest.approx(hist[-1]["reward/digits"])
    import pandas as pd

    csv = pd.read_csv(out / "metrics.csv")
    for key in ("loss", "kl", "clip_frac", "reward/has_a", "reward/aggregate", "adv_mean", "adv_std",
                "influence/short", "const_frac/has_a", "tokens_per_s", "truncated_frac"):
        assert key in csv.columns
    table = tr.eval_table()
    assert list(table.index) == [2, 3]  # every 2 steps and at the end
    assert {"has_a", "digits", "short", "aggregate"} <= set(table.columns)
    assert (out / "eval.csv").exists()
    # every evaluated reply is kept, and its rewards are the ones the evaluation averaged
    samples = json.loads((out / "eval_samples.json").read_text())
    assert [s["step"] for s in samples] == [2, 2, 3, 3]
    last = [s for s in samples if s["step"] == 3]
    assert np.mean([s["digits"] for s in last]) == pytest.approx(table.loc[3, "digits"])
    assert np.mean([s["n_tokens"] for s in last]) == pytest.approx(table.loc[3, "completion_len"])
    assert all(three_channel(s["completion"], None) == [s["has_a"], s["digits"], s["short"]] for s in samples)


# ------------------------------------------------------------------ faults
class FailingReward:
    channel_names = ("has_a", "digits", "short")

    def __init__(self, kind: str, at_call: int):
        self.kind, self.at_call, self.calls = kind, at_call, 0

    def __call__(self, completion, prompt):
        self.calls += 1
        if self.calls >= self.at_call:
            if self.kind == "raise":
                raise KeyError("gold")
            if self.kind == "nan":
                return [0.0, float("nan"), 1.0]
            return [0.0, 1.0]
        return three_channel(completion, prompt)


@pytest.mark.parametrize("kind, match", [("raise", "raised KeyError"), ("nan", "non-finite"),
                                         ("channels", "returned 2 channels, expected 3")])
def test_reward_fault_stops_after_saving_a_checkpoint(tiny_path, tmp_path, kind, match):
    out = tmp_path / kind
    per_step = 2 * 4
    fn = FailingReward(kind, at_call=2 * per_step + 3)  # fails inside step 3
    tr = GRPOTrainer(small(tiny_path, n_steps=5, out_dir=str(out)), fn, PROMPTS)
    with pytest.raises(RewardFunctionError, match=match) as info:
        tr.train()
    msg = str(info.value)
    assert "training stopped at step 3" in msg and "checkpoint of the 2 completed steps saved" in msg
    assert "prompt" in msg and "completion" in msg
    state = json.loads((out / "checkpoints" / "checkpoint-000002" / "state.json").read_text())
    assert state["step"] == 2 and len(state["history"]) == 2
    # fix the reward and resume: the run finishes from step 2
    tr2 = GRPOTrainer(small(tiny_path, n_steps=5, out_dir=str(out), resume=True), three_channel, PROMPTS)
    hist = tr2.train()
    assert [r["step"] for r in hist] == [1, 2, 3, 4, 5]


# ------------------------------------------------------------------ resume
RUN_SCRIPT = textwrap.dedent("""
    import os, sys
    sys.path[:0] = [{tests!r}, {here!r}]  # tests/ (the tiny-LM helper) and this test's folder
    from test_train_trainer import three_channel, PROMPTS
    from mrgrpo.train import GRPOConfig, GRPOTrainer
    crash_after = int(os.environ.get("CRASH_AFTER", "0"))

    def crash(trainer, rec):
        if rec["step"] == crash_after:
            os._exit(17)  # a hard kill: no cleanup, no final save

    cfg = GRPOConfig(model={model!r}, weights=(1.0, 1.0, 0.5), m=4, batch_prompts=2, max_new_tokens=8,
                     n_steps=7, lr=0.05, num_iterations=2, lora_dropout=0.1, progress=False, seed=5,
                     out_dir=sys.argv[1], checkpoint_every=2, resume=sys.argv[2] == "resume")
    GRPOTrainer(cfg, three_channel, PROMPTS, callbacks=[crash]).train()
""")


def test_killed_run_resumes_to_the_same_metrics(tiny_path, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RUN_SCRIPT.format(tests=str(Path(__file__).parents[1]), here=str(Path(__file__).parent), model=tiny_path))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = lambda out, mode, crash="0": subprocess.run(  # noqa: E731
        [sys.executable, str(script), str(tmp_path / out), mode], env={**env, "CRASH_AFTER": crash},
        capture_output=True, text=True, timeout=300)
    killed = run("interrupted", "fresh", crash="5")
    assert killed.returncode == 17, killed.stderr[-2000:]
    assert (tmp_path / "interrupted" / "checkpoints" / "latest").read_text() == "checkpoint-000004"
    resumed = run("interrupted", "resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    straight = run("straight", "fresh")
    assert straight.returncode == 0, straight.stderr[-2000:]

    def load(out):
        hist = json.loads((tmp_path / out / "metrics.json").read_text())
        return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in hist]

    a, b = load("interrupted"), load("straight")
    assert [r["step"] for r in a] == list(range(1, 8))
    assert a == b  # exactly the same numbers, step by step
    from safetensors.torch import load_file

    wa = load_file(tmp_path / "interrupted" / "adapter" / "adapter_model.safetensors")
    wb = load_file(tmp_path / "straight" / "adapter" / "adapter_model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_rollout_masks_train_the_first_eos_and_mark_truncation(tiny_path):
    tr = GRPOTrainer(small(tiny_path, m=8, batch_prompts=4, max_new_tokens=6), three_channel, PROMPTS)
    tr._load()
    assert tr.pad_id in tr.eos_ids  # the test model's pad token is its EOS
    roll = tr.rollout(0)
    comp = roll["input_ids"][:, -roll["n_completion"]:]
    for row, mask, trunc in zip(comp.tolist(), roll["loss_mask"].tolist(), roll["truncated"].tolist()):
        eos_at = [k for k, t in enumerate(row) if t in tr.eos_ids]
        assert trunc == (not eos_at)
        assert sum(mask) == (eos_at[0] + 1 if eos_at else len(row))  # EOS itself is in the loss
    assert 0 < int(roll["truncated"].sum()) < comp.shape[0]
    # mask_truncated drops exactly the truncated rows from the loss, not from attention
    tr2 = GRPOTrainer(small(tiny_path, m=8, batch_prompts=4, max_new_tokens=6, mask_truncated=True),
                      three_channel, PROMPTS)
    tr2._load()
    roll2 = tr2.rollout(0)
    assert torch.equal(roll2["input_ids"], roll["input_ids"])
    assert torch.equal(roll2["loss_mask"].sum(1) == 0, roll["truncated"])
    assert torch.equal(roll2["attention_mask"], roll["attention_mask"])


def test_the_completion_budget_is_checked_against_the_context_before_sampling(tiny_path, monkeypatch):
    """Set-up and the evaluation loop refuse prompt + max_new_tokens over the window before drawing uniforms."""
    import mrgrpo.train.evaluation as evaluation
    import mrgrpo.train.trainer as trainer_module

    def no_draws(*args, **kwargs):
        raise AssertionError("uniforms drawn before the completion budget was checked")

    for module in (evaluation, trainer_module):
        monkeypatch.setattr(module, "group_uniforms", no_draws)
    budget = "max_new_tokens (--max-new-tokens) = 500 exceeds the model's context window of 512 tokens"
    with pytest.raises(ValueError, match=re.escape(budget)):  # set-up: the training prompts
        GRPOTrainer(small(tiny_path, max_new_tokens=500), three_channel, PROMPTS).train()
    tr = GRPOTrainer(small(tiny_path, max_new_tokens=8), three_channel, PROMPTS)
    with pytest.raises(ValueError, match=r"a prompt of \d+ tokens plus max_new_tokens \(--max-new-tokens\) = 8 "
                                         "exceeds the model's context window of 512 tokens"):
        tr.evaluate(prompts=["Q: " + "1 + " * 200 + "1 = ?\nA:"])  # the evaluation loop: prompts given here
    assert tr.eval_history == [] and tr.eval_samples == []


def test_lr_schedule_warmup_then_constant_or_linear_decay():
    from mrgrpo.train.schedule import lr_lambda

    def factors(**kw):
        f = lr_lambda(GRPOConfig(model="/nonexistent/model", n_steps=10, **kw))
        return [f(s) for s in range(10)]

    assert factors() == [1.0] * 10
    assert factors(warmup_steps=4)[:5] == [0.25, 0.5, 0.75, 1.0, 1.0]
    lin = factors(warmup_steps=2, lr_schedule="linear")
    assert lin[:2] == [0.5, 1.0] and lin[2] == 1.0 and lin[-1] == pytest.approx(1 / 8)
    assert all(a > b for a, b in zip(lin[2:], lin[3:]))


def test_corpus_backend_and_trainer_stop_on_the_same_eos_ids(tiny_path, tmp_path):
    """An instruct model often ends a turn on its generation config's EOS, not its tokenizer's:
    Tier-2 corpora and Tier-3 training must both stop on the union (they once stopped differently)."""
    import shutil

    from transformers import GenerationConfig

    from mrgrpo.corpus.hf import HFBackend
    from mrgrpo.lm.loader import eos_token_ids, load_tokenizer

    folder = tmp_path / "instruct-like"
    shutil.copytree(tiny_path, folder)
    tok = load_tokenizer(folder)
    turn_end = next(i for i in range(len(tok)) if i not in (tok.eos_token_id, tok.pad_token_id))
    GenerationConfig(eos_token_id=[turn_end]).save_pretrained(folder)
    backend = HFBackend(str(folder), None, progress=False)
    trainer = GRPOTrainer(small(str(folder), n_steps=1), three_channel, PROMPTS)
    trainer._load()
    expected = {tok.eos_token_id, turn_end}
    assert set(backend.eos_ids) == expected and set(trainer.eos_ids) == expected
    with pytest.raises(ValueError, match="names an EOS token"):
        eos_token_ids(type("NoEos", (), {"eos_token_id": None})())
