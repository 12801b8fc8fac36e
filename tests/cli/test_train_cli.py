"""``mrgrpo train``: flags generated from GRPOConfig, explicit presets, runs that are never lost, one-line errors."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))
from _tiny_lm import build_tiny_lm  # noqa: E402
from folder_support import all_files, foreign_run_files  # noqa: E402

from mrgrpo.cli import build_parser, main  # noqa: E402
from mrgrpo.cli.train import build_config  # noqa: E402
from mrgrpo.tasks.registry import TaskSettings  # noqa: E402
from mrgrpo.train.config import GRPOConfig  # noqa: E402


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return build_tiny_lm(tmp_path_factory.mktemp("tiny_cli"), chat_template=True)  # fintech prompts are chats


def small_run(tiny_path, out) -> list[str]:
    """A 2-layer random model, 2 prompts x m = 4, 8 tokens: a run takes about a second."""
    return ["train", "--preset", "none", "--model", tiny_path, "--mode", "an", "--weights", "1,1,0.5", "--m", "4",
            "--batch-prompts", "2", "--max-new-tokens", "8", "--n-train", "16", "--n-eval", "4", "--no-progress",
            "--out", str(out)]


def configs(*argv: str) -> tuple[GRPOConfig, TaskSettings]:
    return build_config(build_parser().parse_args(["train", *argv]))


# ------------------------------------------------------------------ the flags come from the dataclasses
def test_help_lists_every_field_with_its_default_and_the_presets(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # undo the line wrapping
    for cls in (GRPOConfig, TaskSettings):
        for f in dataclasses.fields(cls):
            assert f"--{f.name.replace('_', '-')}" in text, f.name
            assert f.metadata["help"].split()[0] in text
    assert "--no-use-lora" in text and "--no-progress" in text and "--preset {tiny,paper,none}" in text
    assert "--mode {na,an,single}" in text and "[default: na]" in text
    assert "[default: 0.003 (preset tiny); paper: 5e-06; none: 0.001]" in text
    assert "[default: 0.2]" in text  # clip_eps: no preset changes it


def test_flags_parse_into_the_dataclass_types():
    cfg, task = configs("--preset", "none", "--weights", "1,2", "--lora-target-modules", "q_proj,v_proj",
                        "--conditioning", "zero_fill", "--conditioned", "1", "--max-grad-norm", "none",
                        "--no-use-lora", "--adam-betas", "0.8,0.9", "--use-chat-template", "false",
                        "--batch-rescale", "--out", "runs/x", "--task", "fintech", "--L0", "40", "--n-eval", "0")
    assert cfg == GRPOConfig(weights=(1.0, 2.0), lora_target_modules=("q_proj", "v_proj"), conditioning="zero_fill",
                             conditioned=1, max_grad_norm=None, use_lora=False, adam_betas=(0.8, 0.9),
                             use_chat_template=False, batch_rescale=True, out_dir="runs/x")
    assert task == TaskSettings(task="fintech", L0=40.0, n_eval=0)
    assert configs("--preset", "none", "--conditioned", "1,2")[0].conditioned == (1, 2)
    assert configs("--preset", "none", "--gate", "2", "--gate-threshold", "0.5")[0].advantage_spec.gate_threshold == 0.5
    assert configs("--preset", "none", "--full-finetune")[0].use_lora is False


@pytest.mark.parametrize("argv, match", [
    (["--gate-threshold", "abc"], "argument --gate-threshold: expected a number or none, got 'abc'"),
    (["--adam-betas", "0.9"], "argument --adam-betas: expected 2 comma-separated values"),
    (["--weights", "1,,2"], "argument --weights: expected a comma-separated list"),
    (["--mode", "mean"], "argument --mode: invalid choice"),
    (["--m", "8.5"], "argument --m: expected an integer"),
])
def test_bad_flag_values_are_argparse_errors(argv, match, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", *argv])
    assert info.value.code == 2 and match in capsys.readouterr().err


def test_presets_are_explicit_never_inferred_from_the_model(tiny_path, capsys):
    assert configs()[0] == GRPOConfig.tiny()
    assert configs("--preset", "paper")[0] == GRPOConfig.paper()
    assert configs("--preset", "none", "--model", "tiny-math")[0] == GRPOConfig()  # the tiny model, not its recipe
    assert configs("--preset", "paper", "--model", tiny_path)[0] == GRPOConfig.paper(model=tiny_path)
    assert configs("--model", tiny_path)[0] == GRPOConfig.tiny(model=tiny_path)
    # ... but the tiny recipe's LoRA targets name the tiny policy's modules: another model must choose
    assert main(["train", "--model", tiny_path]) == 2
    assert "--preset tiny is the shipped tiny policy's recipe" in capsys.readouterr().err


@pytest.mark.parametrize("argv, match", [
    (["--m", "1"], "--m: m must be in [2, 65536], got 1"),
    (["--weights", "0,0,0"], "weights are all 0"),  # issue 21, item 14: used to train on zero advantages
    (["--conditioning", "zero_fill", "--conditioned", "0"], "includes the gate channel gate = 0"),
    (["--lr", "-1"], "lr must be > 0"),
    (["--grad-accum", "3"], "grad_accum = 3 must divide"),
])
def test_cli_rejects_bad_config_before_loading(argv, match, capsys):
    assert main(["train", "--preset", "none", "--model", "/nonexistent/model", *argv]) == 2
    assert match in capsys.readouterr().err


def test_cli_checks_the_channel_count_in_the_trainer_before_the_model_loads(monkeypatch, capsys):
    import mrgrpo.train.trainer as trainer_module  # imported first: the patch below is undone after the test

    def no_load(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(trainer_module, "load_model", no_load)
    assert main(["train", "--preset", "none", "--weights", "1,1", "--n-eval", "0", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "weights has 2 entries but the reward function has 3 channels" in err and "Traceback" not in err


# ------------------------------------------------------------------ a run, its output, resume
def test_cli_train_writes_metrics_eval_adapter_and_resumes(tiny_path, tmp_path, capsys):
    out = tmp_path / "run"
    args = small_run(tiny_path, out) + ["--checkpoint-every", "2", "--eval-temperature", "1"]
    assert main(args + ["--n-steps", "2"]) == 0
    captured = capsys.readouterr()
    assert "held-out evaluation (4 prompts, one completion each, sampled at temperature 1 with eval_seed 0" \
        in captured.out and "correctness" in captured.out
    assert "greedy" not in captured.out
    assert "Loading weights" not in captured.err  # --no-progress silences transformers' bars too
    from transformers.utils import logging as hf_logging

    assert hf_logging.is_progress_bar_enabled()  # ... only while the command runs
    assert (out / "adapter" / "adapter_config.json").exists()
    assert len(json.loads((out / "metrics.json").read_text())) == 2
    # resume the same run to 4 steps (n_steps may grow)
    assert main(args + ["--n-steps", "4", "--resume"]) == 0
    hist = json.loads((out / "metrics.json").read_text())
    assert [r["step"] for r in hist] == [1, 2, 3, 4]
    assert all(0.0 <= r["reward/correctness"] <= 1.0 and -1.0 <= r["reward/length"] <= 0.0 for r in hist)
    greedy = small_run(tiny_path, tmp_path / "greedy") + ["--n-steps", "1"]
    assert main(greedy) == 0
    assert "4 prompts, one completion each, greedy" in capsys.readouterr().out


def test_a_finished_run_is_not_overwritten_without_overwrite(tiny_path, tmp_path, capsys):
    out = tmp_path / "run"
    args = small_run(tiny_path, out)
    assert main(args + ["--n-steps", "3", "--checkpoint-every", "1"]) == 0
    before = all_files(out)
    capsys.readouterr()
    assert main(args + ["--n-steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "holds a previous run (config.json, run_info.json, metrics.json" in err and "--overwrite" in err and "--resume" in err
    assert all_files(out) == before  # nothing was touched
    (out / "notes.txt").write_text("mine")  # a file the run did not make: the folder is refused, naming it
    assert main(args + ["--n-steps", "1", "--overwrite"]) == 2
    assert "did not write (notes.txt)" in capsys.readouterr().err
    assert all_files(out) == {**before, "notes.txt": b"mine"}
    (out / "notes.txt").unlink()
    assert main(args + ["--n-steps", "1", "--overwrite"]) == 0
    assert [r["step"] for r in json.loads((out / "metrics.json").read_text())] == [1]
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-000001"]
    assert [r["step"] for r in json.loads((out / "eval.json").read_text())] == [0, 1]
    assert not (out / ".mrgrpo-previous").exists()  # the old run went once the new one checkpointed


@pytest.fixture(scope="module")
def finished_run(tiny_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "run"
    assert main(small_run(tiny_path, out) + ["--n-steps", "2"]) == 0
    return out


@pytest.mark.parametrize("change, field", [
    (["--batch-rescale"], "batch_rescale"), (["--adv-ddof", "1"], "adv_ddof"), (["--adv-eps", "1e-4"], "adv_eps"),
    (["--lr-schedule", "linear"], "lr_schedule"), (["--warmup-steps", "1"], "warmup_steps"),
    (["--grad-accum", "2"], "grad_accum"), (["--lora-target-modules", "q_proj"], "lora_target_modules"),
    (["--task", "fintech"], "task"), (["--n-train", "17"], "n_train"), (["--L0", "40"], "L0"),
    (["--n-eval", "5"], "n_eval"),
])
def test_resume_refuses_a_change_that_alters_the_run(tiny_path, finished_run, change, field, capsys):
    metrics = (finished_run / "metrics.json").read_bytes()
    capsys.readouterr()
    assert main(small_run(tiny_path, finished_run) + ["--n-steps", "3", "--resume", *change]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot resume from" in err[0] and f"({field}: " in err[0], err
    assert (finished_run / "metrics.json").read_bytes() == metrics


def test_resume_without_a_checkpoint_never_restarts_over_a_run(tiny_path, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text("[]")  # a run that never checkpointed
    assert main(small_run(tiny_path, out) + ["--n-steps", "1", "--resume"]) == 2
    assert "has no complete checkpoint, but it holds a previous run" in capsys.readouterr().err


# ------------------------------------------------------------------ issue 21, probes 1 and 2: nothing of anyone else's
def one_line_refusal(argv, capsys) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mrgrpo train: error: "), err
    return err[0]


def test_overwrite_never_deletes_files_it_did_not_make(tiny_path, tmp_path, capsys):
    d = tmp_path / "d"
    theirs = foreign_run_files(d)
    err = one_line_refusal(small_run(tiny_path, d) + ["--n-steps", "1", "--overwrite"], capsys)
    assert "(config.json, adapter/, checkpoints/) without a .mrgrpo-folder.json" in err and "move it away" in err
    assert all_files(d) == theirs


def test_overwrite_of_the_current_folder_keeps_another_projects_checkpoints(tiny_path, tmp_path, monkeypatch,
                                                                           capsys):
    proj = tmp_path / "proj"
    (proj / "checkpoints" / "other_project").mkdir(parents=True)
    (proj / "checkpoints" / "other_project" / "weights.bin").write_text("w")
    monkeypatch.chdir(proj)
    err = one_line_refusal(small_run(tiny_path, ".") + ["--n-steps", "1", "--overwrite"], capsys)
    assert "(checkpoints/) without a .mrgrpo-folder.json" in err
    assert all_files(proj) == {"checkpoints/other_project/weights.bin": b"w"}


def test_out_equal_to_the_model_folder_is_refused(tiny_path, tmp_path, capsys):
    import shutil

    model = shutil.copytree(tiny_path, tmp_path / "model")
    before = all_files(model)
    argv = small_run(str(model), model) + ["--n-steps", "1", "--overwrite"]
    err = one_line_refusal(argv, capsys)
    assert "holds files that mrgrpo did not write (" in err and "model.safetensors" in err
    assert all_files(model) == before


def test_a_failed_start_under_overwrite_keeps_the_old_run(tiny_path, tmp_path, capsys):
    out = tmp_path / "run"
    args = small_run(tiny_path, out) + ["--n-steps", "1"]
    assert main(args) == 0
    before = all_files(out)
    err = one_line_refusal(args + ["--overwrite", "--lora-target-modules", "nonexistent"], capsys)
    assert "nonexistent" in err  # peft's set-up error, after the old run was set aside
    assert all_files(out) == before
    assert main(args + ["--resume", "--n-steps", "2"]) == 0  # and it is still the run in the folder
    assert [r["step"] for r in json.loads((out / "metrics.json").read_text())] == [1, 2]


# ------------------------------------------------------------------ errors are one line
def one_line_error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mrgrpo train: error: "), err
    return err[0]


def test_expected_errors_are_one_line(monkeypatch, capsys):
    import torch

    assert "does not exist" in one_line_error(["train", "--model", "/nonexistent"], capsys)
    device = "cuda:999" if torch.cuda.is_available() else "cuda"
    msg = one_line_error(["train", "--device", device, "--n-steps", "1"], capsys)
    assert f"device {device}: " in msg
    # offline: no offline flag, no proxy, and a hub endpoint that refuses connections
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HTTPS_PROXY", "https_proxy",
                 "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    msg = one_line_error(["train", "--task", "gsm8k", "--n-steps", "1"], capsys)
    assert "cannot reach the Hugging Face hub" in msg and "--gsm8k-path" in msg


@pytest.mark.parametrize("engine", ["ours", "trl"])
def test_a_completion_budget_over_the_context_is_one_line_before_any_sampling(engine, monkeypatch, capsys):
    """``--max-new-tokens 100000000`` once drew 64 x 1e8 uniforms before the context check (issue 21, item 8)."""
    import mrgrpo.train.evaluation as evaluation
    import mrgrpo.train.trainer as trainer

    def no_draws(*args, **kwargs):
        raise AssertionError("uniforms drawn before the completion budget was checked")

    for module in (evaluation, trainer):
        monkeypatch.setattr(module, "group_uniforms", no_draws)
    msg = one_line_error(["train", "--engine", engine, "--max-new-tokens", "100000000", "--n-steps", "1",
                          "--n-train", "4", "--n-eval", "4", "--no-progress"], capsys)
    assert "--max-new-tokens" in msg and "= 100000000" in msg, msg
    assert "context window of 384 tokens" in msg, msg  # the shipped tiny policy's max_position_embeddings


def test_mrgrpo_help_imports_no_torch():
    code = ("import sys\nfrom mrgrpo.cli import build_parser\np = build_parser()\n"
            "p.parse_args(['thm3-check', '--rho', '0.5'])\nprint([m for m in ('torch', 'mrgrpo.train') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


@pytest.mark.parametrize("exc, code, last", [
    (RuntimeError("boom"), 1, "mrgrpo train: unexpected RuntimeError (a bug in mrgrpo or a library it uses)"),
    (KeyboardInterrupt(), 130, "mrgrpo train: interrupted"),
])
def test_a_bug_keeps_its_traceback_and_ctrl_c_is_quiet(monkeypatch, capsys, exc, code, last):
    import mrgrpo.cli.train as train_command

    def handler(args):
        raise exc

    monkeypatch.setattr(train_command, "handler", handler)
    assert main(["train"]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(last)
    assert ("Traceback (most recent call last):" in err) == (code == 1)


# ------------------------------------------------------------------ odd values, missing extras (issue 21, 11 and 14)
@pytest.mark.parametrize("argv, match", [
    (["--m", "99999999999999999999"], "--m: m must be in [2, 65536], got 99999999999999999999"),
    (["--seed", str(2**32)], "--seed: seed must be in [0, 4294967295], got 4294967296"),
    (["--n-steps", "0"], "--n-steps: n_steps must be in [1, 1000000000], got 0"),
    (["--weights", "0,0,0"], "--weights: weights are all 0"),
    (["--weights", "-1,1,1", "--lr", "-1e-3"], "--lr: lr must be > 0"),
])
def test_odd_train_values_are_one_line_naming_the_flag(argv, match, capsys):
    # a missing model: anything that got past the config would fail on it instead
    msg = one_line_error(["train", "--preset", "none", "--model", "/nonexistent/model", *argv], capsys)
    assert match in msg, msg


def test_a_list_may_start_with_a_negative_number():
    assert configs("--preset", "none", "--weights", "-1,1,0.5")[0].weights == (-1.0, 1.0, 0.5)
    assert configs("--preset", "none", "--weights", "-1e-3,-.5,1")[0].weights == (-1e-3, -0.5, 1.0)
    assert configs("--preset", "none", "--weights=-1,2")[0].weights == (-1.0, 2.0)  # the spelling that always worked


@pytest.mark.parametrize("missing, hint", [
    (ModuleNotFoundError("No module named 'torch'", name="torch"), "pip install -e '.[llm]'"),
    (ModuleNotFoundError("No module named 'trl'", name="trl"), "pip install -e '.[trl]'"),
    (ModuleNotFoundError("No module named 'mrgrpo.nosuch'", name="mrgrpo.nosuch"), None),  # our bug, not an extra
])
def test_a_missing_extra_is_one_line_naming_it(monkeypatch, capsys, missing, hint):
    import mrgrpo.cli.train as train_command

    def handler(args):
        raise missing

    monkeypatch.setattr(train_command, "handler", handler)
    if hint is None:
        assert main(["train"]) == 1
        assert "a bug in mrgrpo" in capsys.readouterr().err
        return
    msg = one_line_error(["train"], capsys)
    assert hint in msg and repr(missing.name) in msg and "bug" not in msg, msg


def test_train_without_torch_names_the_llm_extra(tmp_path):
    code = ("import sys\nsys.modules['torch'] = None  # as if torch were not installed\n"
            "from mrgrpo.cli import main\n"
            f"sys.exit(main(['train', '--n-steps', '1', '--no-progress', '--out', {str(tmp_path / 'run')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip() == ("mrgrpo train: error: the package 'torch' is not installed; install it with "
                                   "pip install -e '.[llm]' (in a clone of mrgrpo)"), proc.stderr
