"""The default model works from an installed wheel, not only from an editable checkout.

The wheel is built with ``pip wheel --no-deps`` from a copy of the package's own
files (``pyproject.toml``, ``README.md``, ``LICENSE``, ``mrgrpo/``), as a fresh
clone would build it, and installed with ``pip install --no-deps`` into a fresh
virtual environment. That environment reaches the heavy dependencies (torch,
transformers, ...) through a ``.pth`` line naming this interpreter's
site-packages; the ``.pth`` files there (this checkout's editable install) are
not run, so ``import mrgrpo`` can only find the installed copy. An audit hook
records every file the command opens: none may come from this checkout.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from wheel_support import build_wheel

REPO = Path(__file__).resolve().parents[2]
SITE = Path(sysconfig.get_paths()["purelib"]).resolve()

AUDIT_MODULE = '''
import atexit, os, sys
_log = os.environ.get("MRGRPO_OPEN_LOG")
_opened = set()
def _hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _opened.add(os.path.abspath(os.fsdecode(args[0])))
if _log:
    sys.addaudithook(_hook)
    atexit.register(lambda: open(_log, "w").write("\\n".join(sorted(_opened))))
'''


def run(cmd: list, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the mrgrpo wheel installed; returns the venv folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(tmp)
    venv = tmp / "venv"
    made = run([sys.executable, "-m", "venv", "--without-pip", venv])
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    done = run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    purelib = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    # after the install, so pip never sees this environment's packages (nor this checkout's editable mrgrpo)
    (purelib / "project_deps.pth").write_text(f"{SITE}\nimport audit_open_log\n")
    (purelib / "audit_open_log.py").write_text(AUDIT_MODULE)
    return venv


def installed_package(venv: Path) -> Path:
    code = "import mrgrpo, pathlib; print(pathlib.Path(mrgrpo.__file__).parent)"
    return Path(run([venv / "bin" / "python", "-c", code], cwd=venv.parent).stdout.strip())


def test_wheel_carries_the_tiny_policy_and_the_command_trains_with_it(installed, tmp_path):
    pkg = installed_package(installed)
    assert pkg.is_relative_to(installed), pkg  # not this checkout
    assert (pkg / "assets" / "tiny-math" / "model.safetensors").is_file()
    log, out = tmp_path / "opened.txt", tmp_path / "run"
    env = {**os.environ, "MRGRPO_OPEN_LOG": str(log), "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    proc = run([installed / "bin" / "mrgrpo", "train", "--n-steps", "1", "--batch-prompts", "1", "--m", "2",
                "--max-new-tokens", "8", "--n-train", "2", "--n-eval", "1", "--no-progress", "--out", out],
               cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "trained 1 steps" in proc.stdout
    assert json.loads((out / "checkpoints" / "checkpoint-000001" / "state.json").read_text())["config"]["model"] \
        == "tiny-math"
    opened = [Path(p) for p in log.read_text().splitlines()]
    assert any(p.is_relative_to(pkg / "assets" / "tiny-math") and p.name == "config.json" for p in opened), opened
    from_checkout = [str(p) for p in opened if p.is_relative_to(REPO) and not p.is_relative_to(SITE)]
    assert not from_checkout, from_checkout[:10]


def test_a_missing_tiny_policy_says_how_to_get_it(installed, tmp_path):
    pkg = installed_package(installed)
    shutil.rmtree(pkg / "assets" / "tiny-math")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    proc = run([installed / "bin" / "mrgrpo", "train", "--n-steps", "1", "--no-progress"], cwd=tmp_path, env=env)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1, proc.stderr
    assert "the tiny policy is missing" in err[0] and str(pkg / "assets" / "tiny-math") in err[0]
    assert "reinstall mrgrpo" in err[0] and "mrgrpo tiny pretrain --out DIR" in err[0]
