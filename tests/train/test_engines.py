"""``GRPOConfig.engine``: the same config and task through mrgrpo's trainer or through TRL, one run folder.

Trains the shipped tiny policy on mini-math for 2 steps through ``mrgrpo train --engine ours``
and ``--engine trl`` into two folders, then checks what a reader of a run relies on:

- the same files (config, metrics, eval, adapter) and the same metric keys where they mean
  the same thing; the untrained policy's evaluation is identical in both engines;
- ``mrgrpo hub push-adapter --dry-run`` reads and stages either folder;
- the TRL engine hands TRL the prompt tokens mrgrpo's trainer uses, and its reward
  function the prompt items as given;
- the TRL engine's overwrite and resume rules are mrgrpo's: a resumed run repeats the
  uninterrupted one exactly, a changed config or engine is refused before anything loads;
- ``accelerate launch -m mrgrpo train --preset paper`` (the paper-scale command) runs on
  two CPU processes.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mrgrpo.cli import main
from mrgrpo.train.engines import make_trainer
from mrgrpo.integrations.trl import MultiRewardGRPOTrainer
from mrgrpo.train.engines.trl_engine import TRLEngineTrainer, engine_checkpoints, trl_arguments
from mrgrpo.lm.loader import load_tokenizer
from mrgrpo.lm.prompts import encode
from mrgrpo.tasks.registry import task_setup
from mrgrpo.train.checkpoint import read_run_config, read_run_table
from mrgrpo.train.config import GRPOConfig

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("one_torch_thread")
SMALL = ["--n-train", "16", "--n-eval", "8", "--n-steps", "2", "--batch-prompts", "2", "--m", "4",
         "--max-new-tokens", "24", "--no-progress"]
#: metrics of mrgrpo's trainer that TRL does not compute the same way (TRL's are kept under trl/)
OURS_ONLY = {"pg_loss", "clip_frac"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``{engine: run folder}``: 2 steps of ``mrgrpo train --engine ENGINE`` on the tiny policy."""
    root = tmp_path_factory.mktemp("engines")
    out = {}
    for engine in ("ours", "trl"):
        out[engine] = root / engine
        assert main(["train", "--engine", engine, *SMALL, "--out", str(out[engine])]) == 0
    return out


def small_config(**kw) -> GRPOConfig:
    base = dict(n_steps=2, batch_prompts=2, m=4, max_new_tokens=24, progress=False)
    return GRPOConfig.tiny(**{**base, **kw})


# ------------------------------------------------------------------ one run folder, either engine
def test_both_engines_write_the_same_run_folder(runs):
    for engine, run in runs.items():
        config, path = read_run_config(run)
        assert config["engine"] == engine, path
        assert (run / "adapter" / "adapter_model.safetensors").is_file()
        for stem in ("metrics", "eval"):
            assert (run / f"{stem}.json").is_file() and (run / f"{stem}.csv").is_file()
    ours, _ = read_run_table(runs["ours"], "metrics")
    trl, _ = read_run_table(runs["trl"], "metrics")
    assert [r["step"] for r in ours] == [r["step"] for r in trl] == [1, 2]
    shared = set(ours[0]) - OURS_ONLY
    assert shared <= set(trl[0]), shared - set(trl[0])
    for key in ("reward/correctness", "reward/aggregate", "influence/length", "loss", "kl", "completion_len",
                "tokens_per_s"):
        assert key in shared
    w = GRPOConfig.tiny().weights
    for table in (ours, trl):  # the keys mean the same thing in both
        for r in table:
            agg = w[0] * r["reward/correctness"] + w[1] * r["reward/length"] + w[2] * r["reward/format"]
            assert r["reward/aggregate"] == pytest.approx(agg, abs=1e-6)
            assert r["tokens_per_s"] == pytest.approx(r["completion_len"] * 2 * 4 / r["step_time"], rel=1e-9)
            assert 0 < r["completion_len"] <= 24 and 0 <= r["truncated_frac"] <= 1
    eval_ours, _ = read_run_table(runs["ours"], "eval")
    eval_trl, _ = read_run_table(runs["trl"], "eval")
    assert [r["step"] for r in eval_ours] == [r["step"] for r in eval_trl] == [0, 2]
    assert eval_ours[0] == eval_trl[0]  # the untrained policy, evaluated the same way by both engines
    samples_ours, _ = read_run_table(runs["ours"], "eval_samples")
    samples_trl, _ = read_run_table(runs["trl"], "eval_samples")
    assert len(samples_ours) == len(samples_trl) == 2 * 8
    assert samples_ours[:8] == samples_trl[:8]  # the same replies to the same held-out prompts, before training


def test_hub_dry_run_stages_either_engines_run(runs, tmp_path):
    from mrgrpo.ops.hub import push_adapter
    from mrgrpo.ops.hub.stage import read_run_dir

    for engine, run in runs.items():
        files = read_run_dir(run)
        assert files.config["engine"] == engine and len(files.metrics) == 2 and len(files.eval_table) == 2
        res = push_adapter(run, f"someone/tiny-{engine}", dry_run=tmp_path / engine)
        assert not res.uploaded
        staged = set(res.files)
        assert {"adapter_model.safetensors", "adapter_config.json", "README.md", "training/config.json",
                "training/metrics.json", "training/eval.json"} <= staged, staged
        assert not any("checkpoint" in f or f.endswith((".pt", ".pth", ".bin")) for f in staged)
        assert json.loads((tmp_path / engine / "training" / "config.json").read_text())["engine"] == engine


# ------------------------------------------------------------------ the TRL engine's inputs
@pytest.mark.parametrize("template, system", [("auto", None), (False, "Answer with a number.")])
def test_trl_engine_gives_trl_our_prompt_tokens_and_items(tmp_path, monkeypatch, template, system):
    tok = load_tokenizer("tiny-math")
    setup = task_setup("mini-math", tok, n_train=8, n_eval=0, seed=0, use_chat_template=template)
    seen, scored = [], []
    original = MultiRewardGRPOTrainer._generate_and_score_completions

    def spy(self, inputs):
        out = original(self, inputs)
        for row, ids, mask in zip(inputs, out["prompt_ids"], out["prompt_mask"]):
            seen.append((row["mrgrpo_item"], ids[mask.bool()].tolist()))
        return out

    def reward(completion, item):
        scored.append(item)
        return setup.reward_fn(completion, item)

    reward.channel_names = setup.reward_fn.channel_names
    monkeypatch.setattr(MultiRewardGRPOTrainer, "_generate_and_score_completions", spy)
    import mrgrpo.train.engines.trl_engine as engine

    built = []
    monkeypatch.setattr(engine, "trl_arguments", lambda *a, **k: built.append(1) or trl_arguments(*a, **k))
    cfg = small_config(engine="trl", n_steps=1, use_chat_template=template, system_prompt=system)
    TRLEngineTrainer(cfg, reward, setup.train_prompts).train()
    assert len(built) == 1  # the mapping is built once, when the trainer is made; loading only adds the folder
    assert len(seen) == 8
    for index, ids in seen:
        assert ids == encode(setup.train_prompts[index], tok, system_prompt=system, use_chat_template=template)
    assert all(any(item is p for p in setup.train_prompts) for item in scored)  # the items as given


def test_trl_arguments_map_the_config(monkeypatch):
    cfg = GRPOConfig(engine="trl", batch_prompts=4, m=8, grad_accum=2, num_iterations=2, n_steps=10,
                     kl_coef=0.04, clip_eps=0.3, loss_aggregation="sequence", warmup_steps=3, lr_schedule="linear",
                     max_grad_norm=None, checkpoint_every=5, out_dir="run", device="cpu")
    a = trl_arguments(cfg, "run/checkpoints", processes=2)
    assert (a["per_device_train_batch_size"], a["gradient_accumulation_steps"], a["num_generations"]) == (8, 2, 8)
    assert (a["max_steps"], a["logging_steps"], a["save_steps"], a["warmup_steps"]) == (20, 2, 10, 6)
    assert (a["beta"], a["epsilon"], a["loss_type"], a["lr_scheduler_type"], a["max_grad_norm"]) == \
        (0.04, 0.3, "grpo", "linear", 0.0)
    assert a["use_cpu"] and not a["bf16"] and a["top_k"] == 0 and a["top_p"] == 1.0
    assert "reward_weights" not in a  # the weights travel in config.advantage_spec, not through TRL's args
    assert trl_arguments(cfg.replace(adv_eps=1e-6), "x")  # any (adv_ddof, adv_eps): the spec carries the numbers
    assert trl_arguments(GRPOConfig(), "x")["loss_type"] == "dapo"
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the paper preset on a GPU: bf16
    assert trl_arguments(GRPOConfig.paper(), "x")["bf16"] and not trl_arguments(GRPOConfig.paper(), "x")["fp16"]
    # on a CPU the paper preset's explicit bfloat16 wins too (TRL's bf16 with use_cpu); float32 when asked
    assert trl_arguments(GRPOConfig.paper(device="cpu"), "x")["bf16"]
    assert not trl_arguments(GRPOConfig.paper(device="cpu", dtype="float32"), "x")["bf16"]


@pytest.mark.parametrize("kw, processes, match", [
    (dict(device="cuda:1"), 1, "CUDA_VISIBLE_DEVICES"),
    (dict(batch_prompts=3, m=4), 8, "divisible by processes x grad_accum = 8 x 1"),
])
def test_trl_engine_refuses_what_it_cannot_run_before_loading(tmp_path, monkeypatch, kw, processes, match):
    monkeypatch.setenv("WORLD_SIZE", str(processes))
    cfg = GRPOConfig(engine="trl", model=str(tmp_path / "no-such-model"), **kw)  # loading would be an OSError
    setup = task_setup("fintech", n_train=4, n_eval=0)
    with pytest.raises(ValueError, match=match):
        make_trainer(cfg, setup.reward_fn, setup.train_prompts)


@pytest.mark.parametrize("argv, message", [
    (["--weights", "0,0,0"], "weights are all 0"),
    (["--device", "cuda:1"], "device"),
])
def test_cli_trl_engine_bad_input_is_one_line(capsys, argv, message):
    assert main(["train", "--engine", "trl", *argv, *SMALL]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_cli_trl_engine_without_trl_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "trl", None)  # as if TRL were not installed
    assert main(["train", "--engine", "trl", *SMALL]) == 2
    assert "pip install -e '.[trl]'" in capsys.readouterr().err


# ------------------------------------------------------------------ overwrite and resume
def test_trl_engine_resume_repeats_the_uninterrupted_run(tmp_path):
    setup = task_setup("mini-math", "tiny-math", n_train=32, n_eval=0, seed=0)
    kw = dict(engine="trl", checkpoint_every=2, lr=2e-2, max_new_tokens=40)  # 40: room to end (a reward signal)
    full = TRLEngineTrainer(small_config(n_steps=4, out_dir=tmp_path / "full", **kw), setup.reward_fn,
                            setup.train_prompts, run_info={"task": "mini-math"}).train()
    TRLEngineTrainer(small_config(n_steps=2, out_dir=tmp_path / "part", **kw), setup.reward_fn, setup.train_prompts,
                     run_info={"task": "mini-math"}).train()
    assert [p.name for p in engine_checkpoints(tmp_path / "part")] == ["checkpoint-2"]
    resumed = TRLEngineTrainer(small_config(n_steps=4, out_dir=tmp_path / "part", resume=True, **kw),
                               setup.reward_fn, setup.train_prompts, run_info={"task": "mini-math"})
    assert resumed.step == 2
    part = resumed.train()
    assert len(full) == len(part) == 4
    for a, b in zip(full, part):
        for key in ("loss", "kl", "reward/aggregate", "influence/correctness", "completion_len", "grad_norm"):
            assert a[key] == b[key], (a["step"], key)
    assert any(r["grad_norm"] > 0 for r in full)  # the steps trained on something
    # anything that alters the run is refused, naming the field
    for change, match in [(dict(lr=1e-3), "lr: 0.02 -> 0.001"), (dict(m=8), "m: 4 -> 8")]:
        with pytest.raises(ValueError, match=match):
            make_trainer(small_config(n_steps=6, out_dir=tmp_path / "part", resume=True, **{**kw, **change}),
                         setup.reward_fn, setup.train_prompts, run_info={"task": "mini-math"})
    with pytest.raises(ValueError, match="task: 'mini-math' -> 'other'"):
        TRLEngineTrainer(small_config(n_steps=6, out_dir=tmp_path / "part", resume=True, **kw), setup.reward_fn,
                         setup.train_prompts, run_info={"task": "other"})


def test_runs_are_never_overwritten_or_resumed_across_engines(runs, tmp_path, capsys):
    setup = task_setup("mini-math", "tiny-math", n_train=8, n_eval=0, seed=0)
    copies = {e: shutil.copytree(run, tmp_path / e) for e, run in runs.items()}
    for engine, run in copies.items():  # a new run in a folder holding one is refused
        with pytest.raises(ValueError, match="holds a previous run"):
            make_trainer(small_config(engine=engine, out_dir=run), setup.reward_fn, setup.train_prompts)
    # resuming with the other engine: refused by the CLI before anything loads, naming the engine
    for engine, other in (("ours", "trl"), ("trl", "ours")):
        assert main(["train", "--engine", other, *SMALL, "--out", str(copies[engine]), "--resume"]) == 2
        err = capsys.readouterr().err
        assert f"engine: '{engine}' -> '{other}'" in err, err
    with pytest.raises(ValueError, match="engine: 'ours' -> 'trl'"):  # and by the TRL engine itself
        make_trainer(small_config(engine="trl", out_dir=copies["ours"], resume=True), setup.reward_fn,
                     setup.train_prompts)
    with pytest.raises(ValueError):  # mrgrpo's trainer finds no checkpoint of its own there: refused too
        make_trainer(small_config(engine="ours", out_dir=copies["trl"], resume=True), setup.reward_fn,
                     setup.train_prompts).train()
    # a file no run made: the folder is refused by name, nothing touched
    (copies["trl"] / "notes.txt").write_text("mine")
    before = sorted(p.name for p in copies["trl"].iterdir())
    with pytest.raises(ValueError, match=r"did not write \(notes\.txt\)"):
        make_trainer(small_config(engine="trl", out_dir=copies["trl"], overwrite=True), setup.reward_fn,
                     setup.train_prompts)
    assert sorted(p.name for p in copies["trl"].iterdir()) == before
    (copies["trl"] / "notes.txt").unlink()
    # overwrite sets the previous run aside before anything loads; its first checkpoint (TRL's save) deletes it
    trainer = make_trainer(small_config(engine="trl", out_dir=copies["trl"], overwrite=True), setup.reward_fn,
                           setup.train_prompts)
    assert sorted(p.name for p in copies["trl"].iterdir()) == [".mrgrpo-folder.json", ".mrgrpo-previous"]
    trainer.train()
    assert not (copies["trl"] / ".mrgrpo-previous").exists() and engine_checkpoints(copies["trl"])


class _Payload:
    """Pickles as a call of ``os.system``: what a hostile checkpoint file would carry."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("name, damage, message", [
    ("optimizer.pt", "pickled", "refusing to load"),
    ("scheduler.pt", "pickled", "refusing to load"),
    ("rng_state.pth", "pickled", "refusing to load"),
    ("optimizer.pt", "truncated", "cannot read checkpoint file"),
    ("rng_state.pth", "truncated", "cannot read checkpoint file"),
    ("scheduler.pt", "truncated", "cannot read checkpoint file"),
])
def test_trl_engine_resume_refuses_a_damaged_checkpoint_file_in_one_line(runs, tmp_path, capsys, name, damage,
                                                                          message):
    """A pickled or truncated optimizer / scheduler / RNG file: the one-line refusal of mrgrpo's own engine."""
    import torch

    run = shutil.copytree(runs["trl"], tmp_path / "run")
    (ckpt,) = engine_checkpoints(run)
    path = ckpt / name
    assert path.is_file()  # TRL wrote it: the test damages a file resume reads
    ran = tmp_path / "PWNED"
    if damage == "pickled":
        torch.save({"state": _Payload(f"touch {ran}")}, path)
    else:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert main(["train", "--engine", "trl", *SMALL, "--out", str(run), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mrgrpo train: error: ") and message in err[0], err
    assert str(path) in err[0] and not ran.exists()


# ------------------------------------------------------------------ the paper-scale command, on 2 CPU processes
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_accelerate_launch_of_the_paper_preset(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [str(accelerate), "launch", "--config_file", str(ROOT / "configs" / "accelerate" / "cpu_2proc.yaml"),
           "--main_process_port", str(_free_port()), "-m", "mrgrpo", "train", "--preset", "paper",
           "--model", "tiny-math", "--device", "cpu", "--task", "mini-math", "--lr", "1e-3", *SMALL,
           "--out", str(tmp_path / "run")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("trained 2 steps (na, engine trl)") == 1  # the main process reports
    config, _ = read_run_config(tmp_path / "run")
    assert (config["engine"], config["model"], config["dtype"]) == ("trl", "tiny-math", "bfloat16")
    metrics, _ = read_run_table(tmp_path / "run", "metrics")
    assert [r["step"] for r in metrics] == [1, 2]
    (ckpt,) = engine_checkpoints(tmp_path / "run")
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= {p.name for p in ckpt.iterdir()}  # two processes trained


# ------------------------------------------------------------------ the conventions table's TRL row
def test_the_trl_row_of_the_conventions_table_is_trls():
    import numpy as np
    import torch
    from trl.trainer.utils import nanstd

    from mrgrpo.analysis.engine_conventions import ENGINE_CONVENTIONS, engine_na_advantages, whiten_over_tokens
    from mrgrpo.core.advantage_spec import NORMALIZATIONS, AdvantageSpec

    x = torch.tensor([0.0, 1.0, 2.0, 3.0])
    assert float(nanstd(x)) == pytest.approx(float(x.std(correction=1)))  # TRL's group std: ddof 1
    trl_row, gdpo_row = ENGINE_CONVENTIONS["trl"], ENGINE_CONVENTIONS["gdpo"]
    # the pair that reproduces TRL's normalize_then_sum step for step (tests/integrations/test_integrations_trl.py)
    assert (trl_row.ddof, trl_row.eps, trl_row.after_sum) == (*NORMALIZATIONS["trl"], "batch")
    rng = np.random.default_rng(0)
    r = np.stack([rng.integers(0, 2, (6, 4)), -rng.random((6, 4)), rng.integers(0, 2, (6, 4))], -1).astype(float)
    want = AdvantageSpec.from_options(weights=(1.0, 1.0, 0.5), mode="na", normalization="trl",
                                      batch_rescale=True).advantages(torch.from_numpy(r)).advantages.numpy()
    np.testing.assert_allclose(engine_na_advantages(r, [1.0, 1.0, 0.5], "trl"), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(engine_na_advantages(r, [1.0, 1.0, 0.5], "gdpo"), want, rtol=1e-12, atol=1e-12)
    assert gdpo_row.unscored != trl_row.unscored  # the fork counts None as 0; TRL leaves it out
    # verl's whitening with equal lengths is a batch z-score with its eps inside the square root
    a = rng.normal(size=(3, 4))
    np.testing.assert_allclose(whiten_over_tokens(a), (a - a.mean()) / np.sqrt(a.var(ddof=1) + 1e-8), rtol=1e-12)
    with pytest.raises(ValueError, match="unknown engine"):
        engine_na_advantages(r, [1.0, 1.0, 0.5], "openrlhf")
