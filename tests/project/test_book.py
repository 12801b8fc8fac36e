"""Fast checks of the Jupyter Book: structure, configuration and the papermill runner.

The full build (``jupyter-book build -W --keep-going .``) executes every chapter;
here we check what can break without building: the table of contents points at
real jupytext notebooks with one ``parameters`` cell, the configuration keeps
the settings that make a broken chapter fail the build, and ``mrgrpo book run``
stores an executed, relabelled notebook under ``chapters/runs/``.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pytest
import yaml

from mrgrpo.ops.book import (check_value, default_run_name, defined_labels, move_stderr_to_metadata, parameter_names,
                              parse_value, relabel_markdown, repeat_command, resolve_chapter)

ROOT = Path(__file__).resolve().parents[2]
# Pages that are plain MyST markdown on purpose (no code to execute).
PLAIN_PAGES = {"chapters/references"}


def _toc_files(node):
    if isinstance(node, dict):
        if "file" in node:
            yield node["file"]
        for value in node.values():
            yield from _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            yield from _toc_files(item)


def toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"], *_toc_files(toc.get("parts", toc.get("chapters", [])))]


def notebook_pages() -> list[str]:
    return [p for p in toc_pages() if p not in PLAIN_PAGES]


def chapter_files() -> list[str]:
    """Every chapter notebook in chapters/, listed in _toc.yml or not yet."""
    return sorted(f"chapters/{p.stem}" for p in (ROOT / "chapters").glob("*.md")
                  if f"chapters/{p.stem}" not in PLAIN_PAGES)


def config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


# --------------------------------------------------------------------------- structure
def test_toc_lists_existing_pages_once():
    pages = toc_pages()
    assert len(pages) == len(set(pages)), "a page appears twice in _toc.yml"
    for page in pages:
        assert (ROOT / f"{page}.md").is_file(), f"_toc.yml lists {page} but {page}.md is missing"
    assert "chapters/intro" == pages[0]


def test_no_ipynb_beside_a_chapter():
    # Sphinx would see chapters/x.md and chapters/x.ipynb as one page twice.
    for md in (ROOT / "chapters").glob("*.md"):
        assert not md.with_suffix(".ipynb").exists(), f"{md.with_suffix('.ipynb')} shadows {md.name}"


@pytest.mark.parametrize("page", chapter_files())
def test_chapter_is_a_parametrized_myst_notebook(page):
    path = ROOT / f"{page}.md"
    text = path.read_text()
    header = yaml.safe_load(text.split("---", 2)[1])
    assert header["jupytext"]["text_representation"]["format_name"] == "myst"
    assert header["kernelspec"]["name"] == "python3"
    nb = jupytext.read(path)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{page}: {len(tagged)} cells tagged parameters"
    assert tagged[0].cell_type == "code"
    assert parameter_names(nb), f"{page}: the parameters cell assigns nothing"
    # A result chapter must end with a verdict and call into mrgrpo.
    assert any("mrgrpo" in c.source for c in nb.cells if c.cell_type == "code"), f"{page} never uses mrgrpo"


@pytest.mark.parametrize("page", chapter_files())
def test_papermill_reads_every_parameter(page, caplog):
    # papermill parses the parameters cell with a line regex; a comment holding '='
    # or a quote makes it skip the line, and `-p` then warns "unknown parameter".
    from papermill.translators import PythonTranslator

    nb = jupytext.read(ROOT / f"{page}.md")
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    with caplog.at_level("WARNING", logger="papermill"):
        names = [p.name for p in PythonTranslator.inspect(cell)]
    assert names == parameter_names(nb), caplog.text
    assert "Unable to parse" not in caplog.text


# Chapters that rebuild published numbers: each ends with our numbers beside the paper's.
REPRODUCTION_CHAPTERS = ["prop1_influence", "prop2_resolution", "thm3", "groupsize", "prop4_conditioning",
                         "tier2", "planner", "tier3"]


@pytest.mark.parametrize("page", [f"chapters/{c}" for c in REPRODUCTION_CHAPTERS
                                  if (ROOT / "chapters" / f"{c}.md").is_file()])
def test_result_chapter_has_comparison_and_verdict(page):
    text = (ROOT / f"{page}.md").read_text()
    assert re.search(r"^## Verdict", text, re.MULTILINE), f"{page} has no '## Verdict' section"
    assert re.search(r"published numbers", text, re.IGNORECASE), \
        f"{page} does not cite the published numbers it compares to"


def test_config_keeps_the_settings_that_matter():
    cfg = config()
    assert cfg["only_build_toc_files"] is True
    for pattern in ("_build", "mrgrpo", "tests", "data", "README.md", ".venv"):
        assert pattern in cfg["exclude_patterns"], pattern
    ex = cfg["execute"]
    assert ex["execute_notebooks"] in ("force", "cache")
    assert "chapters/runs/*" in ex["exclude_patterns"]
    assert ex["timeout"] > 0
    sphinx = cfg["sphinx"]["config"]
    assert sphinx["nb_execution_raise_on_error"] is True
    assert sphinx["nb_render_markdown_format"] == "myst"
    assert not str(sphinx["mathjax_path"]).startswith("http"), "MathJax must be served locally"
    assert "sphinx_proof" in cfg["sphinx"]["extra_extensions"]
    assert {"dollarmath", "amsmath"} <= set(cfg["parse"]["myst_enable_extensions"])
    assert cfg["launch_buttons"]["binderhub_url"] and cfg["launch_buttons"]["colab_url"]
    assert cfg["repository"]["branch"] == "main"
    for bib in cfg["bibtex_bibfiles"]:
        assert (ROOT / bib).is_file()


def test_cited_keys_exist_in_the_bibliography():
    bib = (ROOT / "chapters" / "references.bib").read_text()
    keys = set(re.findall(r"^@\w+\{([^,]+),", bib, re.MULTILINE))
    for page in [*toc_pages(), *chapter_files()]:
        for group in re.findall(r"\{cite[a-z:]*\}`([^`]+)`", (ROOT / f"{page}.md").read_text()):
            for key in group.split(","):
                assert key.strip() in keys, f"{page} cites unknown key {key.strip()!r}"


def test_stored_runs_do_not_reuse_chapter_labels():
    # A stored run is a copy of a chapter; equal labels would be duplicate-label warnings.
    chapter_labels = set()
    for page in notebook_pages():
        chapter_labels |= set(re.findall(r":label:\s*(\S+)", (ROOT / f"{page}.md").read_text()))
    for run in (ROOT / "chapters" / "runs").glob("*.ipynb"):
        nb = nbformat.read(run, as_version=4)
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        assert nb.cells[0].source.startswith("# Stored run:"), run.name
        clash = chapter_labels & set(re.findall(r":label:\s*(\S+)", text))
        assert not clash, f"{run.name} reuses labels {clash}"
        # its header links back to its chapter, which must be part of the book
        chapter = nb.metadata["mrgrpo"]["run"]["chapter"][: -len(".md")]
        assert chapter in toc_pages(), f"{run.name} is a run of {chapter}, which is not in _toc.yml"


# --------------------------------------------------------------------------- runner units
def test_parse_value():
    assert parse_value("8") == 8
    assert parse_value("0.7") == 0.7
    assert parse_value("[4, 8, 16]") == [4, 8, 16]
    assert parse_value("(1.0, 2.0)") == [1.0, 2.0]  # papermill cannot inject tuples
    assert parse_value("true") is True and parse_value("False") is False
    assert parse_value("none") is None
    assert parse_value("Qwen/Qwen2.5-1.5B-Instruct") == "Qwen/Qwen2.5-1.5B-Instruct"
    assert parse_value("cuda") == "cuda"
    assert parse_value("'8'") == "8"


def test_relabel_markdown():
    src = textwrap.dedent(
        """\
        (sec-a)=
        ## A

        ```{math}
        :label: eq-x
        x = 1
        ```

        See {eq}`eq-x`, {ref}`the section <sec-a>`, {prf:ref}`thm-1`, {doc}`intro`.
        ```{prf:theorem} T
        :label: thm-1
        ```
        """
    )
    out = relabel_markdown(src, "run1-")
    assert "(run1-sec-a)=" in out
    assert ":label: run1-eq-x" in out and ":label: run1-thm-1" in out
    assert "{eq}`run1-eq-x`" in out
    assert "{ref}`the section <run1-sec-a>`" in out
    assert "{prf:ref}`run1-thm-1`" in out
    assert "{doc}`../intro`" in out
    # a label another page defines keeps pointing there; one defined in another cell of the run is prefixed
    cites = "See {ref}`tier2-identity`, {ref}`the identity <tier2-identity>`, {eq}`eq-x` and {ref}`sec-a`."
    assert relabel_markdown(cites, "run1-", defined_labels([src])) == (
        "See {ref}`tier2-identity`, {ref}`the identity <tier2-identity>`, {eq}`run1-eq-x` and {ref}`run1-sec-a`.")
    assert relabel_markdown(cites, "run1-") == cites  # this text alone defines none of them


def test_default_run_name_and_resolve():
    assert default_run_name("thm3", {}) == "thm3"
    assert default_run_name("tier2", {"model": "Qwen/Qwen2.5-1.5B", "K": 16}) == "tier2__model-Qwen-Qwen2.5-1.5B_K-16"
    assert resolve_chapter("intro", ROOT).name == "intro.md"
    assert resolve_chapter("chapters/intro.md", ROOT).name == "intro.md"
    with pytest.raises(FileNotFoundError, match="available"):
        resolve_chapter("no-such-chapter", ROOT)


# --------------------------------------------------------------------------- mrgrpo book run
TINY = textwrap.dedent(
    """\
    ---
    jupytext:
      text_representation:
        extension: .md
        format_name: myst
        format_version: 0.13
    kernelspec:
      display_name: Python 3
      language: python
      name: python3
    ---

    # Tiny chapter

    ```{code-cell} ipython3
    :tags: [parameters]

    x = 1
    sizes = [2, 3]
    fail = False
    ```

    ```{math}
    :label: eq-tiny
    y = 2x
    ```

    By {eq}`eq-tiny`:

    ```{code-cell} ipython3
    from pathlib import Path
    assert Path("tiny.md").is_file()  # papermill runs in chapters/
    if fail:
        raise RuntimeError("asked to fail")
    import sys
    sys.stderr.write("bar  50%\\rbar 100%\\n")
    print("y =", 2 * x, "sum =", sum(sizes))
    ```
    """
)


@pytest.fixture()
def tiny_book(tmp_path):
    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters" / "tiny.md").write_text(TINY)
    return tmp_path


def _cli(*args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "mrgrpo", "book", "run", *args, "--no-progress"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _stdout(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_book_run_stores_executed_notebook(tiny_book):
    proc = _cli("tiny", "-p", "x", "21", "-p", "sizes", "[10, 20, 30]", "--root", str(tiny_book), cwd=tiny_book)
    assert proc.returncode == 0, proc.stderr
    out = tiny_book / "chapters" / "runs" / "tiny__x-21_sizes-10-20-30.ipynb"
    assert out.is_file(), list((tiny_book / "chapters").rglob("*"))
    nb = nbformat.read(out, as_version=4)
    assert "y = 42 sum = 60" in _stdout(nb)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert nb.cells[0].source.startswith("# Stored run: Tiny chapter")
    assert "mrgrpo book run tiny" in nb.cells[0].source
    assert ":label: tiny__x-21_sizes-10-20-30-eq-tiny" in md
    assert "{eq}`tiny__x-21_sizes-10-20-30-eq-tiny`" in md
    assert "# Tiny chapter" not in md  # the header carries the title
    assert nb.metadata["mrgrpo"]["run"]["parameters"] == {"x": "21", "sizes": "[10, 20, 30]"}
    # stderr is log, not result: out of the page, kept in the metadata
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("name") == "stderr"]
    assert [e["text"] for e in nb.metadata["mrgrpo"]["run"]["stderr"]] == ["bar 100%"]


def test_move_stderr_to_metadata_keeps_the_last_frame_and_other_outputs():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell("x")]
    nb.cells[1].outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="converting once\n"),
        nbformat.v4.new_output("stream", name="stderr", text="\rtensors:   0%| 0/9"),
        nbformat.v4.new_output("stream", name="stderr", text="\rtensors: 100%| 9/9\n"),
        nbformat.v4.new_output("stream", name="stdout", text="result 42\n"),
    ]
    assert move_stderr_to_metadata(nb) == 3
    assert [o["name"] for o in nb.cells[1].outputs] == ["stdout"]
    assert nb.metadata["mrgrpo"]["run"]["stderr"] == [{"cell": 1, "text": "converting once\ntensors: 100%| 9/9"}]
    assert move_stderr_to_metadata(nb) == 0  # nothing left to move; the log is kept
    assert len(nb.metadata["mrgrpo"]["run"]["stderr"]) == 1


def test_book_run_out_path(tiny_book):
    out = tiny_book / "chapters" / "runs" / "named.ipynb"
    proc = _cli("chapters/tiny.md", "-p", "x", "5", "--out", str(out), "--root", str(tiny_book), cwd=tiny_book)
    assert proc.returncode == 0, proc.stderr
    assert "y = 10" in _stdout(nbformat.read(out, as_version=4))


def test_book_run_refuses_unknown_parameter(tiny_book):
    proc = _cli("tiny", "-p", "xx", "5", "--root", str(tiny_book), cwd=tiny_book)
    assert proc.returncode == 2
    assert "no parameter(s) 'xx'" in proc.stderr and "x, sizes, fail" in proc.stderr
    assert not (tiny_book / "chapters" / "runs").exists()


def test_book_run_failure_stores_nothing_in_runs(tiny_book):
    proc = _cli("tiny", "-p", "fail", "True", "--root", str(tiny_book), cwd=tiny_book)
    assert proc.returncode == 1
    assert "asked to fail" in proc.stderr
    assert not list((tiny_book / "chapters" / "runs").glob("*.ipynb"))
    assert (tiny_book / "_build" / "failed-runs" / "tiny__fail-True.ipynb").is_file()


def test_book_run_refuses_output_beside_chapter(tiny_book):
    proc = _cli("tiny", "--out", str(tiny_book / "chapters" / "tiny.ipynb"), "--root", str(tiny_book),
                cwd=tiny_book)
    assert proc.returncode == 2 and "one page twice" in proc.stderr


# --------------------------------------------------------------------------- hostile values (issue 21)
INJECTION = "b'\"+str(__import__(\"os\").system(\"touch PWNED\"))+\"'"


@pytest.mark.parametrize("text", [INJECTION, "(b'x',)", "[1, (2, b'x')]", "{1, 2}", "1e999", "-1e999", "1j",
                                  "{1: 'a'}", "{'a': [b'x']}", "[1e999]"])
def test_parse_value_refuses_what_json_cannot_hold(text):
    with pytest.raises(ValueError, match="parameter x"):
        parse_value(text, "x")


def test_check_value_keeps_json_values_and_turns_tuples_into_lists():
    value = {"a": (1, 2.5, "s"), "b": [True, None, {"c": -3}]}
    assert check_value(value) == {"a": [1, 2.5, "s"], "b": [True, None, {"c": -3}]}
    for bad in (b"x", float("nan"), {1, 2}, object(), {b"k": 1}, [float("inf")]):
        with pytest.raises(ValueError):
            check_value(bad)


def _leftovers(book: Path) -> list[str]:
    return sorted(str(p.relative_to(book)) for p in book.rglob("*") if p.name != "tiny.md" and p.name != "chapters")


@pytest.mark.parametrize("value", [INJECTION, "(b'\"+str(__import__(\"os\").system(\"touch PWNED\"))+\"',)"])
def test_book_run_refuses_code_in_a_parameter(tiny_book, value):
    """The probe used to create PWNED: papermill wrote the bytes value unescaped into the cell."""
    proc = _cli("tiny", "-p", "x", value, "--root", str(tiny_book), cwd=tiny_book)
    assert proc.returncode == 2, proc.stderr
    assert "is a bytes" in proc.stderr and "Traceback" not in proc.stderr
    assert _leftovers(tiny_book) == []  # no PWNED, no stored run, no failed run


@pytest.mark.parametrize("args, message", [
    (("-p", "x", "{1,2}"), "parameter x is a set"),
    (("--timeout", "nan"), "timeout must be a positive number of seconds, got nan"),
    (("--timeout", "-1"), "timeout must be a positive number"),
    (("--kernel", "nosuchkernel"), "no Jupyter kernel named 'nosuchkernel'; installed kernels: "),
    (("-p", "x", "1e999"), "parameter x is inf"),
])
def test_book_run_bad_settings_are_one_line_and_leave_nothing(tiny_book, args, message):
    proc = _cli("tiny", *args, "--root", str(tiny_book), cwd=tiny_book)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert _leftovers(tiny_book) == []  # nothing in chapters/runs/ or _build/failed-runs/


def _replay(command: str) -> tuple[dict, str | None]:
    """The parameters and --out that `mrgrpo book run` would read from a repeat command."""
    words = shlex.split(command)
    params, out = {}, None
    for i, w in enumerate(words):
        if w == "-p":
            params[words[i + 1]] = parse_value(words[i + 2], words[i + 1])
        elif w == "--out":
            out = words[i + 1]
    return params, out


def test_repeat_command_reads_back_as_the_same_values():
    params = {"s": "8", "t": "true", "n": "None", "x": 1.5, "big": 10 ** 30, "i": 8, "b": False,
              "l": [1, "a", [2.5]], "d": {"k": "v"}, "model": "Qwen/Qwen2.5-1.5B-Instruct",
              "q": "it's", "w": "a b", "e": "", "bs": "b'x'", "sh": "$HOME `x` \"y\" 'z'"}
    cmd = repeat_command("tiny", params, "/elsewhere/x.ipynb")
    back, out = _replay(cmd)
    assert back == params and out == "/elsewhere/x.ipynb"
    assert {k: type(v) for k, v in back.items()} == {k: type(v) for k, v in params.items()}
    assert "-p s \"'8'\"" in cmd and "-p x 1.5" in cmd
    assert "--out" not in repeat_command("tiny", {"x": 1})  # the default path is the default again
    with pytest.raises(ValueError, match="finite"):
        repeat_command("tiny", {"x": float("inf")})


def test_book_run_header_repeats_the_run(tiny_book, tmp_path):
    out = tmp_path / "elsewhere" / "x.ipynb"
    proc = _cli("tiny", "-p", "x", "'8'", "-p", "sizes", "[1, 2]", "--out", str(out), "--root", str(tiny_book),
                cwd=tiny_book)
    assert proc.returncode == 0, proc.stderr
    header = nbformat.read(out, as_version=4).cells[0].source
    command = re.search(r"```bash\n(.*)\n```", header)[1]
    assert _replay(command) == ({"x": "8", "sizes": [1, 2]}, str(out))

# --------------------------------------------------------------------------- every chapter executes
# Small parameters per chapter so that all of them run in about a minute on one
# core; the book build (CI) runs them again at their defaults.
SMALL = {
    "intro": {},
    "prop1_influence": {"scale": 0.02},
    "prop2_resolution": {"L_max": 5},
    "thm3": {"scale": 0.01},
    "groupsize": {"scale": 0.05},
    "prop4_conditioning": {"scale": 0.02},
    "tier2": {"n_boot": 200},
    "planner": {"n_boot": 200},
    "tier3": {"steps": 2, "seeds": [0], "n_train": 8, "n_eval": 8},
    "heterogeneity": {"n_boot": 200},
    "tier3_preregistered": {"n_boot": 200},
    "real_scores": {"n_prompts": 6, "K": 3, "m_max": 16, "n_boot": 100},
    "integrations": {"steps": 2, "n_train": 16, "batch_prompts": 2, "m": 4, "max_new_tokens": 24},
    "rerun": {},
}


@pytest.mark.slow
def test_preregistered_chapter_compares_the_arms_once_runs_land(tmp_path):
    """The pre-registered Tier-3 page with two seeds of NA and AN in place, against a paired gap computed here."""
    import json
    import shutil

    import papermill as pm
    from scipy import stats

    stored = ROOT / "data" / "smollm2-tier3"
    data = tmp_path / "data"
    (data / "runs").mkdir(parents=True)
    for f in ("design.json", "predictions.json", "amendments.json"):
        shutil.copy(stored / f, data / f)
    runs = ("na-s0", "na-s1", "an-s0", "an-s1")
    for run in runs:
        shutil.copytree(stored / "runs" / run, data / "runs" / run)
    # AN - NA on the stored rewards (weights 1, 1, 0.5), paired by prompt within each seed, then a t-interval over seeds
    def aggregate(run):
        rows = json.loads((data / "runs" / run / "eval_samples.json").read_text())
        last = max(r["step"] for r in rows)
        return {r["prompt"]: r["compliance"] + r["politeness"] + 0.5 * r["action"] for r in rows if r["step"] == last}
    per_seed = []
    for s in (0, 1):
        na, an = aggregate(f"na-s{s}"), aggregate(f"an-s{s}")
        assert set(na) == set(an) and len(na) == 64  # one shared split
        per_seed.append(np.mean([an[p] - na[p] for p in na]))
    mean, half = np.mean(per_seed), stats.t.ppf(0.975, 1) * np.std(per_seed, ddof=1) / np.sqrt(2)
    expected = f"{mean:+.3f} [{mean - half:+.3f}, {mean + half:+.3f}]"

    nb = jupytext.read(ROOT / "chapters" / "tier3_preregistered.md")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "pre.ipynb")
    out = pm.execute_notebook(str(tmp_path / "pre.ipynb"), str(tmp_path / "out.ipynb"),
                              parameters={"data_dir": str(data), "n_boot": 200}, cwd=str(ROOT / "chapters"),
                              kernel_name="python3", progress_bar=False)
    text = "\n".join(str(o.get("data", {}).get("text/plain", "")) + str(o.get("text", ""))
                     for c in out.cells if c.cell_type == "code" for o in c.outputs)
    assert "AN vs NA: aggregate" in text and expected in text
    assert "waiting for at least 2 paired seeds of both arms:\n  conditioning vs reweighting: aggregate" in text
    assert "4 of 14" not in text and "2 of 4" in text
    # amendment 1: the same comparisons on the hardened score
    tables = [o["data"]["text/html"] for c in out.cells if c.cell_type == "code" for o in c.outputs
              if "text/html" in o.get("data", {}) and "TOST" in o["data"]["text/html"]]
    assert "fintech-hardened" in text and len(tables) == 2  # the planned comparisons, then on the hardened score
    glued = {o["metadata"]["scrapbook"]["name"]: o["data"].get("application/papermill.record/text/plain",
                                                                 o["data"].get("text/plain", ""))
             for c in out.cells if c.cell_type == "code" for o in c.outputs if "scrapbook" in o.get("metadata", {})}
    straddles = mean - half < 0 < mean + half
    assert ("inconclusive: no difference detected" in glued["pre_primary"]) == straddles
    assert glued["pre_done"] == "4"


@pytest.mark.slow
def test_heterogeneity_chapter_reports_smollm2s_paired_gap(tmp_path):
    """The heterogeneity page's SmolLM2 cell against AN - NA computed here from the stored replies."""
    import json

    import papermill as pm
    from scipy import stats

    runs = ROOT / "data" / "heterogeneity" / "smollm2" / "runs"

    def aggregate(run):
        rows = json.loads((runs / run / "eval_samples.json").read_text())
        last = max(r["step"] for r in rows)
        return {r["prompt"]: r["strict"] + 0.5 * r["format"] for r in rows if r["step"] == last}

    seeds = sorted(int(p.name.removeprefix("na-s")) for p in runs.glob("na-s*"))
    assert len(seeds) >= 3 and all((runs / f"an-s{s}").is_dir() for s in seeds)
    per_seed = []
    for s in seeds:
        na, an = aggregate(f"na-s{s}"), aggregate(f"an-s{s}")
        assert set(na) == set(an) and len(na) == 64  # one shared split
        per_seed.append(np.mean([an[p] - na[p] for p in na]))
    n = len(per_seed)
    mean, half = np.mean(per_seed), stats.t.ppf(0.975, n - 1) * np.std(per_seed, ddof=1) / np.sqrt(n)
    expected = f"AN - NA {mean:+.3f} [{mean - half:+.3f}, {mean + half:+.3f}] on the held-out aggregate, {n} seeds"

    nb = jupytext.read(ROOT / "chapters" / "heterogeneity.md")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "het.ipynb")
    out = pm.execute_notebook(str(tmp_path / "het.ipynb"), str(tmp_path / "out.ipynb"), parameters={"n_boot": 200},
                              cwd=str(ROOT / "chapters"), kernel_name="python3", progress_bar=False)
    glued = {o["metadata"]["scrapbook"]["name"]: o["data"].get("application/papermill.record/text/plain", "")
             for c in out.cells if c.cell_type == "code" for o in c.outputs if "scrapbook" in o.get("metadata", {})}
    assert expected in glued["het_smollm2"] and expected in glued["dash_smollm2"]
    verdict = glued["het_smollm2"].strip("'\"").split(":")[0]
    assert verdict in ("lower", "higher", "equivalent", "inconclusive")
    assert (verdict in ("lower", "higher")) == (not mean - half < 0 < mean + half)


@pytest.mark.slow
@pytest.mark.parametrize("page", notebook_pages())
def test_chapter_executes(page, tmp_path):
    import papermill as pm

    name = Path(page).name
    assert name in SMALL, f"add small test parameters for {name} to SMALL"
    nb = jupytext.read(ROOT / f"{page}.md")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = tmp_path / f"{name}.ipynb"
    nbformat.write(nb, src)
    # The Makefile exports MPLBACKEND=Agg; figures must still reach the page.
    os.environ["MPLBACKEND"] = "Agg"
    out = pm.execute_notebook(str(src), str(tmp_path / f"{name}.out.ipynb"), parameters=SMALL[name],
                              cwd=str(ROOT / "chapters"), kernel_name="python3", progress_bar=False)
    outputs = [o for c in out.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    n_show = sum(c.source.count("plt.show()") for c in out.cells if c.cell_type == "code")
    n_png = sum("image/png" in o.get("data", {}) for o in outputs)
    assert n_png >= n_show, f"{name}: {n_show} plt.show() calls but only {n_png} figures in the outputs"


def _glued_keys(text: str) -> set[str]:
    """Keys a chapter glues: literal ``glue("key", ...)`` calls, ``dashboard_entries("prefix", ...)`` and
    ``ledger_entries("prefix", ...)`` rows."""
    keys = set(re.findall(r'glue\("([^"]+)"', text))
    for prefix in re.findall(r'dashboard_entries\(\s*"(\w+)"', text):
        keys |= {f"{prefix}_{field}" for field in ("claim", "paper", "ours", "verdict")}
    for prefix in re.findall(r'ledger_entries\(\s*"(\w+)"', text):  # the claim ledger's status and SmolLM2 cell
        keys |= {f"{prefix}_{field}" for field in ("status", "smollm2")}
    return keys


@pytest.mark.parametrize("page", chapter_files())
def test_glued_names_are_defined(page):
    # A {glue:text} role whose key no cell glues fails the build only at the very end.
    text = (ROOT / f"{page}.md").read_text()
    defined = _glued_keys(text)
    computed_keys = re.search(r"glue\((?!\")", text) is not None  # glue(key, ...) with a variable key
    for key_fmt in re.findall(r"\{glue:[a-z]*\}`([^`]+)`", text):
        assert "}" not in key_fmt, f"{page}: stray brace in {key_fmt!r}"
        if "::" in key_fmt:  # another page's value: chapter.md::key:format
            doc, rest = key_fmt.split("::", 1)
            key = rest.rsplit(":", 1)[0] if rest.count(":") else rest
            assert rest.count(":") == 1, f"{page}: cross-page glue {key_fmt!r} needs a format (e.g. ':s')"
            target = (ROOT / page).parent / doc
            assert target.is_file(), f"{page}: glue from missing page {doc}"
            assert key in _glued_keys(target.read_text()), f"{page}: {doc} glues no {key!r}"
            continue
        key = key_fmt.split(":")[0]
        assert computed_keys or key in defined, f"{page}: {{glue}} uses {key!r}, which no cell glues"
    for key, doc in re.findall(r"```\{glue:any\} (\S+)\n:doc: (\S+)", text):
        assert key in _glued_keys(((ROOT / page).parent / doc).read_text()), f"{page}: {doc} glues no {key!r}"


@pytest.mark.parametrize("page", chapter_files())
def test_glue_cells_are_hidden(page):
    # Glue calls are bookkeeping: the reader sees the calls that matter, not these.
    nb = jupytext.read(ROOT / f"{page}.md")
    shown = [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "code" and "glue(" in c.source
             and not {"remove-input", "remove-cell"} & set(c.metadata.get("tags", []))]
    assert not shown, f"{page}: cells that glue must be tagged remove-input: {shown}"


#: HTML tags a chapter may write in its prose; any other "<word>" would be swallowed as an unknown tag.
PROSE_TAGS = {"a", "b", "br", "code", "details", "div", "em", "i", "img", "kbd", "li", "ol", "p", "pre", "small", "span",
              "strong", "sub", "summary", "sup", "table", "td", "th", "tr", "u", "ul"}


@pytest.mark.parametrize("page", chapter_files())
def test_prose_has_no_angle_bracket_words_that_html_would_swallow(page):
    # '"the answer is <number>."' in prose renders as "the answer is ." (the browser drops the unknown tag)
    text = (ROOT / f"{page}.md").read_text()
    for pattern in (r"```.*?```", r"\{[\w:-]+\}`[^`]*`", r"`[^`]*`", r"\$\$.*?\$\$", r"\$[^$\n]*\$"):
        text = re.sub(pattern, "", text, flags=re.DOTALL)
    words = [m[0] for m in re.finditer(r"</?([A-Za-z][\w-]*)[^<>\n]*>", text) if m[1].lower() not in PROSE_TAGS]
    assert not words, f"{page}: write these in backticks or escape them: {words}"


def _yes_no_literals(source: str) -> list[str]:
    """String literals "yes"/"no" that are not the branches of a conditional expression."""
    import ast

    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    tree = ast.parse(code)
    allowed = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.IfExp):
            allowed |= {id(node.body), id(node.orelse)}
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
            and isinstance(node.value, str) and node.value.strip().lower() in ("yes", "no") and id(node) not in allowed]


@pytest.mark.parametrize("page", chapter_files())
def test_no_hard_coded_verdicts(page):
    # A verdict about a number is computed from it: no literal "yes"/"no" outside a
    # conditional, and no bold verdict word typed into the prose.
    nb = jupytext.read(ROOT / f"{page}.md")
    literals = [lit for c in nb.cells if c.cell_type == "code" for lit in _yes_no_literals(c.source)]
    assert not literals, f"{page}: hard-coded {literals}"
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    typed = re.findall(r"\*\*(Reproduced|Not reproduced|Verified|Falsified|Confirmed|Holds)\b", prose)
    assert not typed, f"{page}: verdict words typed into the prose: {typed}"


def test_no_hard_coded_verdict_detector_can_fail():
    assert _yes_no_literals('rows = [("fig2b: pure a/m rejected", "yes", "yes")]') == ["yes", "yes"]
    assert _yes_no_literals('x = "yes" if ok else "no"') == []


def _load_script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_colab_notebooks_are_in_sync():
    # The launch buttons open notebooks/<chapter>.ipynb; they must match the chapters.
    sync = _load_script("sync_notebooks")
    stale = sync.stale_notebooks()
    assert not stale, f"run python scripts/sync_notebooks.py: {stale}"
    assert sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb")) == sorted(
        Path(c).name for c in sync.toc_chapters())


def test_colab_notebook_setup_uses_the_configured_repository(tmp_path):
    sync = _load_script("sync_notebooks")
    nb = nbformat.reads(sync.paired_notebook("chapters/intro"), as_version=4)
    setup = nb.cells[0]
    assert sync.SETUP_TAG in setup.metadata["tags"]
    assert config()["repository"]["url"] in setup.source
    assert '"google.colab" in sys.modules' in setup.source
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    # the check can fail: an edited notebook is reported
    book = tmp_path / "book"
    for rel in ("_toc.yml", "_config.yml", "chapters", "notebooks"):
        src = ROOT / rel
        if src.is_dir():
            import shutil

            shutil.copytree(src, book / rel, ignore=shutil.ignore_patterns("runs", "_static", "_ext"))
        else:
            (book / rel).parent.mkdir(parents=True, exist_ok=True)
            (book / rel).write_text(src.read_text())
    assert sync.stale_notebooks(book) == []
    (book / "notebooks" / "intro.ipynb").write_text("{}")
    assert sync.stale_notebooks(book) == ["notebooks/intro.ipynb"]


def test_launch_links_point_at_paired_notebooks():
    import importlib.util

    spec = importlib.util.spec_from_file_location("launch_links", ROOT / "chapters" / "_ext" / "launch_links.py")
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    assert ext.paired_notebook("chapters/thm3") == "notebooks/thm3.ipynb"
    assert ext.paired_notebook("chapters/runs/thm3_paper_scale") is None
    cfg = config()
    assert "launch_links" in cfg["sphinx"]["local_extensions"]
    assert "notebooks" in cfg["exclude_patterns"]


def test_pages_that_paste_other_pages_glue_are_always_reread():
    # The intro's dashboard pastes the chapters' glued values: an incremental build must
    # re-read it whenever it runs, or the dashboard keeps old numbers.
    import importlib.util
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("glue_dependencies",
                                                  ROOT / "chapters" / "_ext" / "glue_dependencies.py")
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    docs = [p for p in toc_pages()]
    env = SimpleNamespace(found_docs=set(docs), doc2path=lambda d: str(ROOT / f"{d}.md"))
    assert ext.pages_with_cross_page_glue(env) == ["chapters/intro"]
    assert ext.outdated(None, env, set(), set(), set()) == ["chapters/intro"]
    assert ext.outdated(None, env, set(), {"chapters/intro"}, set()) == []
    assert "glue_dependencies" in config()["sphinx"]["local_extensions"]
