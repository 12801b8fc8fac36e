"""``scripts/run_queue.sh``: the run queue of the experiment scripts skips, resumes, starts and shares runs."""
from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FAKE_PY = textwrap.dedent("""\
    #!/usr/bin/env bash
    # stands in for python: logs its call; "train" makes a checkpoint, the exporter makes the records
    echo "$*" >> "$CALLS"
    if [ "$1" = "-m" ]; then
      out=""; prev=""
      for a in "$@"; do [ "$prev" = "--out" ] && out=$a; prev=$a; done
      mkdir -p "$out/checkpoints/checkpoint-000001"
    else
      mkdir -p "$3"
    fi
    """)


@pytest.fixture()
def queue(tmp_path):
    py = tmp_path / "fake-python"
    py.write_text(FAKE_PY)
    py.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "WORK": str(tmp_path / "work"), "DEST": str(tmp_path / "dest"),
           "PY": str(py), "CALLS": str(tmp_path / "calls")}
    (tmp_path / "work").mkdir()

    def run(*names: str) -> str:
        script = f"set -euo pipefail; source {ROOT / 'scripts' / 'run_queue.sh'}; " + "; ".join(
            f"train_one {n} --seed 1" for n in names)
        proc = subprocess.run(["bash", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    return run, tmp_path


def calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_a_new_run_starts_then_exports_and_is_skipped_once_exported(queue):
    run, tmp = queue
    out = run("na-s0")
    assert "na-s0: --overwrite" in out
    assert calls(tmp)[0].startswith("-m mrgrpo train --seed 1 --out") and calls(tmp)[0].endswith("--overwrite")
    assert calls(tmp)[1].split()[1:] == [str(tmp / "work" / "na-s0"), str(tmp / "dest" / "na-s0")]
    assert (tmp / "dest" / "na-s0").is_dir()
    assert "na-s0: exported already, skipped" in run("na-s0") and len(calls(tmp)) == 2


def test_a_run_with_a_checkpoint_resumes(queue):
    run, tmp = queue
    (tmp / "work" / "an-s0" / "checkpoints" / "checkpoint-000004").mkdir(parents=True)
    assert "an-s0: --resume" in run("an-s0")
    assert calls(tmp)[0].endswith("--resume")


def test_a_run_another_copy_holds_is_skipped(queue):
    run, tmp = queue
    holder = subprocess.Popen(["flock", str(tmp / "work" / ".an-s1.lock"), "sleep", "30"])
    try:
        for _ in range(50):  # wait until the holder has the lock
            if subprocess.run(["flock", "-n", str(tmp / "work" / ".an-s1.lock"), "true"]).returncode:
                break
            subprocess.run(["sleep", "0.1"])
        out = run("an-s1", "na-s1")
    finally:
        holder.kill()
    assert "an-s1: another copy is training it, skipped" in out and "na-s1: --overwrite" in out
    assert not (tmp / "dest" / "an-s1").exists() and (tmp / "dest" / "na-s1").is_dir()
