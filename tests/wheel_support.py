"""Build the mrgrpo wheel from a clean copy of the repository (the package, pyproject, README, LICENSE).

Shared by the wheel test (tests/project/test_wheel.py) and the new-user test
(tests/integrations/test_trl_user.py), so both install exactly what ``pip wheel`` makes of the source.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def build_wheel(tmp: Path) -> Path:
    """Build the wheel under ``tmp`` (offline, no build isolation) and return its path."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "mrgrpo", src / "mrgrpo", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                            "--no-index", "-w", str(tmp / "dist")], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return next((tmp / "dist").glob("mrgrpo-*.whl"))
