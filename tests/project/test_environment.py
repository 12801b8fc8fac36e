"""environment.yml (Binder, conda) and pyproject.toml must list the same dependencies.

Every requirement of pyproject's core dependencies and of the llm, book and data
extras (what the chapters need) must appear in environment.yml's pip section with a
compatible spec (the same specifier, or a pin that satisfies pyproject's specifier),
every pip entry of environment.yml must come from pyproject, and nothing only the
dev extra needs (test tools, benchmark baselines) may be installed on Binder.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the project's CI runs 3.11
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = ("llm", "book", "data")  # Binder runs chapters, not tests: no "dev"
CONDA_ONLY = {"python", "pip", "nodejs"}


def pyproject_requirements() -> dict[str, list[Requirement]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = data["project"]
    groups = {"core": project["dependencies"]}
    for extra in EXTRAS:
        groups[extra] = project["optional-dependencies"][extra]
    out: dict[str, list[Requirement]] = {}
    for group, reqs in groups.items():
        for text in reqs:
            req = Requirement(text)
            out.setdefault(canonicalize_name(req.name), []).append(req)
    return out


def environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def environment_pip_requirements() -> dict[str, Requirement]:
    deps = environment()["dependencies"]
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip section"
    out: dict[str, Requirement] = {}
    for line in pip_sections[0]:
        if line.startswith("-"):  # index options and editable installs
            continue
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name not in out, f"environment.yml lists {req.name} twice"
        out[name] = req
    return out


def _pinned_version(req: Requirement) -> str | None:
    specs = list(req.specifier)
    if len(specs) == 1 and specs[0].operator == "==":
        return specs[0].version
    return None


def compatible(env_req: Requirement, py_req: Requirement) -> bool:
    """Same specifier, or an environment pin that pyproject's specifier allows."""
    if env_req.specifier == py_req.specifier:
        return True
    pin = _pinned_version(env_req)
    return pin is not None and py_req.specifier.contains(pin, prereleases=True)


def test_environment_is_python_311_with_pip():
    deps = environment()["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    assert "python=3.11" in conda
    assert "pip" in conda
    assert not [d for d in conda if d.split("=")[0].split(">")[0].split("<")[0] not in CONDA_ONLY], (
        "conda dependencies other than python/pip/nodejs must go through pip so that "
        "the versions match pyproject.toml"
    )


def test_every_pyproject_dependency_is_in_environment():
    env = environment_pip_requirements()
    missing, incompatible = [], []
    for name, reqs in pyproject_requirements().items():
        if name not in env:
            missing.append(name)
            continue
        for req in reqs:
            if not compatible(env[name], req):
                incompatible.append(f"{name}: environment.yml {env[name].specifier} vs pyproject {req.specifier}")
    assert not missing, f"in pyproject.toml but not in environment.yml: {missing}"
    assert not incompatible, "incompatible specs: " + "; ".join(incompatible)


def test_every_environment_dependency_is_in_pyproject():
    py = pyproject_requirements()
    extra = [name for name in environment_pip_requirements() if name not in py]
    assert not extra, f"in environment.yml but not in pyproject.toml: {extra}"


def test_binder_installs_no_dev_only_tools():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    dev_only = {canonicalize_name(Requirement(r).name) for r in data["dev"]} - set(pyproject_requirements())
    leaked = sorted(dev_only & set(environment_pip_requirements()))
    assert dev_only, "the dev extra has no dev-only packages: this test checks nothing"
    assert not leaked, f"environment.yml installs dev-only packages on Binder: {leaked}"


def test_torch_is_the_pinned_cpu_build():
    env = environment_pip_requirements()
    assert _pinned_version(env["torch"]) == "2.13.0"
    pip_lines = [d for d in environment()["dependencies"] if isinstance(d, dict)][0]["pip"]
    assert any("download.pytorch.org/whl/cpu" in line for line in pip_lines if line.startswith("--")), (
        "torch must come from PyTorch's CPU index, not PyPI's CUDA build"
    )


def test_compatible_rejects_mismatches():
    # The check above must be able to fail.
    assert compatible(Requirement("torch==2.13.0"), Requirement("torch>=2.5"))
    assert not compatible(Requirement("torch==2.4.0"), Requirement("torch>=2.5"))
    assert not compatible(Requirement("numpy>=1.20"), Requirement("numpy>=1.24"))
    assert compatible(Requirement("trl==1.16.0"), Requirement("trl==1.16.0"))
