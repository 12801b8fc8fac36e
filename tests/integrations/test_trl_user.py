"""Issue 23, the check: what a new TRL user does, from a wheel, in a fresh environment.

A wheel is built from the repository's own files (as a clone builds it), installed into a
fresh virtual environment the README's way (``torch==2.13.0`` first, then the wheel with the
``[trl]`` extra; pip's cache is reused), and ``pip check`` must be clean. Then, in a folder
outside the repository, with the user's own reward module (a binary gate and two others), a
prompt file and a YAML config read by ``TrlParser``:

- ``python -m mrgrpo.integrations.trl --config my.yaml`` trains two steps on the tiny policy
  (model id ``tiny-math``, resolved from the wheel's package data) with NA and zero-fill
  conditioning, writing ``mrgrpo_settings.json`` beside TRL's ``training_args.bin``;
- a resume from a YAML without the advantage settings restores them from the checkpoint;
- two steps on SmolLM2-135M-Instruct loaded by path (``mrgrpo.lm.model_path``'s folder, LoRA).

The install times are printed (``-s`` shows them). Needs a package index (CI: PyPI with
PyTorch's CPU index; here: the local mirror); about 4-6 minutes on 2 cores.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mrgrpo.lm import model_path
from wheel_support import build_wheel

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
TORCH = "torch==2.13.0"
REWARDS = '''"""A user's reward module: one function per channel, TRL's signature."""
import re


def correct(prompts, completions, gold, **kwargs):
    """The gate: 1 when the completion states the right sum, else 0."""
    return [1.0 if re.search(rf"\\b{g}\\b", c) else 0.0 for c, g in zip(completions, gold)]


def brevity(prompts, completions, **kwargs):
    """Shorter is better (counted only where the answer is right, by zero-fill conditioning)."""
    return [-len(c) / 32 for c in completions]


def tidy(prompts, completions, **kwargs):
    """No stray characters."""
    return [1.0 if re.fullmatch(r"[\\w\\s.,+=?-]*", c) else 0.0 for c in completions]
'''
SETTINGS = dict(reward_weights=[1.0, 1.0, 0.5], mode="na", conditioning="zero_fill", gate=0, conditioned=[1])
TRAIN = dict(num_generations=2, per_device_train_batch_size=4, max_completion_length=12, learning_rate=1e-3,
             logging_steps=1, save_steps=1, report_to=[], use_cpu=True, disable_tqdm=True, seed=0,
             dataloader_num_workers=0, reward_funcs=["my_rewards:correct", "my_rewards:brevity", "my_rewards:tidy"],
             dataset_name="prompts.jsonl")
INSTALL_TIMES: dict[str, float] = {}  # filled by the venv fixture, printed by the first test
PIP_CHECK: list = []  # the fixture's `pip check`


def run(cmd: list, timeout: int = 900, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh environment holding the wheel with its [trl] extra; prints the install times."""
    tmp = tmp_path_factory.mktemp("trl-user")
    times = INSTALL_TIMES
    t0 = time.perf_counter()
    wheel = build_wheel(tmp)
    times["build the wheel"] = time.perf_counter() - t0
    env = tmp / "venv"
    t0 = time.perf_counter()
    ok(run([sys.executable, "-m", "venv", env]))
    times["python -m venv"] = time.perf_counter() - t0
    pip = [env / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    t0 = time.perf_counter()
    ok(run([*pip, TORCH]))
    times[f"pip install {TORCH}"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ok(run([*pip, f"{wheel}[trl]"]))
    times["pip install 'mrgrpo-*.whl[trl]'"] = time.perf_counter() - t0
    PIP_CHECK.append(run([env / "bin" / "python", "-m", "pip", "check"]))
    return env


@pytest.fixture(scope="module")
def user(tmp_path_factory) -> Path:
    """The user's folder, outside the repository."""
    folder = tmp_path_factory.mktemp("my-project")
    (folder / "my_rewards.py").write_text(REWARDS)
    rows = [{"prompt": f"Q: {a} + {b} = ?", "gold": str(a + b)} for a in range(1, 5) for b in range(1, 3)]
    (folder / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def command(venv: Path, user: Path, config: dict, *flags: str) -> subprocess.CompletedProcess:
    (user / "my.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": ""}
    return run([venv / "bin" / "python", "-m", "mrgrpo.integrations.trl", "--config", user / "my.yaml", *flags],
               cwd=user, env=env)


def settings(folder: Path) -> dict:
    return json.loads((folder / "mrgrpo_settings.json").read_text())


def test_the_installed_package_is_the_wheels(venv, user, capsys):
    with capsys.disabled():
        print("\n[trl user] install times: " + "; ".join(f"{k} {v:.0f} s" for k, v in INSTALL_TIMES.items()))
    code = "import mrgrpo, pathlib; print(pathlib.Path(mrgrpo.__file__).parent)"
    pkg = Path(ok(run([venv / "bin" / "python", "-c", code], cwd=user, env={**os.environ, "PYTHONPATH": ""}))
               .stdout.strip())
    assert pkg.is_relative_to(venv) and (pkg / "assets" / "accelerate" / "cpu_2proc.yaml").is_file()


def test_pip_check_is_clean(venv):
    check = PIP_CHECK[-1]
    assert check.returncode == 0, check.stdout + check.stderr  # issue 23: the [trl] install is consistent


def test_a_new_user_trains_the_tiny_policy_and_resumes(venv, user, capsys):
    out = user / "tiny"
    t0 = time.perf_counter()
    proc = ok(command(venv, user, dict(model_name_or_path="tiny-math", output_dir=str(out), max_steps=2,
                                       **SETTINGS, **TRAIN)))
    first = time.perf_counter() - t0
    assert "trained 2 steps (na)" in proc.stdout
    saved = settings(out / "checkpoint-2")
    assert saved["advantage_spec"]["conditioning"] == "zero_fill"
    assert saved["advantage_spec"]["channel_names"] == ["correct", "brevity", "tidy"]
    assert (out / "checkpoint-2" / "training_args.bin").is_file()
    logs = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
    assert all("mrgrpo/influence/brevity" in h and "frac_reward_zero_std" not in h for h in logs if "loss" in h)
    # a resume with a YAML that leaves the advantage settings out: restored from the checkpoint
    t0 = time.perf_counter()
    proc = ok(command(venv, user, dict(model_name_or_path="tiny-math", output_dir=str(out), max_steps=3, **TRAIN),
                      "--resume_from_checkpoint", "last"))
    again = time.perf_counter() - t0
    assert "restored from" in proc.stdout and "conditioning='zero_fill'" in proc.stdout
    assert "trained 3 steps (na)" in proc.stdout
    assert settings(out / "checkpoint-3")["advantage_spec"] == saved["advantage_spec"]
    with capsys.disabled():
        print(f"\n[trl user] tiny policy: 2 steps {first:.0f} s, resume to step 3 {again:.0f} s (with start-up)")


def test_a_new_user_trains_smollm2_loaded_by_path(venv, user, capsys):
    path = model_path("smollm2-135m-instruct")  # a complete Hugging Face folder
    out = user / "smollm2"
    t0 = time.perf_counter()
    proc = ok(command(venv, user, dict(model_name_or_path=path, output_dir=str(out), max_steps=2, use_peft=True,
                                       lora_r=8, lora_alpha=16, lora_target_modules=["q_proj", "v_proj"],
                                       **SETTINGS, **{**TRAIN, "per_device_train_batch_size": 2,
                                                      "max_completion_length": 8, "save_steps": 2})))
    assert "trained 2 steps (na)" in proc.stdout
    assert settings(out / "checkpoint-2")["advantage_spec"]["mode"] == "na"
    with capsys.disabled():
        print(f"\n[trl user] SmolLM2-135M by path, LoRA: 2 steps {time.perf_counter() - t0:.0f} s (with start-up)")
