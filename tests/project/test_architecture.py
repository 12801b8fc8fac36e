"""The package's shape, checked: small modules, layers that import downwards, one home per concept.

The layers of ``mrgrpo``, bottom to top (a module may import its own layer and
the layers below it, never a higher one):

    core < sim, lm < rewards < tasks < corpus < integrations < train, analysis < tiny < ops < cli

Imports inside functions count too: a deferred import is still a dependency.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "mrgrpo"
MAX_LINES = 450

#: Layer of every top-level part of the package.
LAYER = {"core": 0, "sim": 1, "lm": 1, "rewards": 2, "tasks": 3, "examples": 3, "corpus": 4, "generation": 4,
         "integrations": 5, "train": 6, "analysis": 6, "tiny": 7, "ops": 8, "cli": 9, "__main__": 9,
         "__init__": 10}


class Source:
    """Every Python file of the project, read and parsed once per test run (see the ``source`` fixture)."""

    def __init__(self) -> None:
        self.text: dict[Path, str] = {}
        self.trees: dict[Path, ast.Module] = {}
        self.blanked: dict[Path, str] = {}

    def read(self, path: Path) -> str:
        if path not in self.text:
            self.text[path] = path.read_text()
        return self.text[path]

    def tree(self, path: Path) -> ast.Module:
        if path not in self.trees:
            self.trees[path] = ast.parse(self.read(path))
        return self.trees[path]

    def code(self, path: Path) -> str:
        """The module's source with every string constant blanked (model cards and docstrings quote code)."""
        if path not in self.blanked:
            text = self.read(path)
            lines = text.splitlines(keepends=True)
            offsets = [0]
            for line in lines:
                offsets.append(offsets[-1] + len(line))
            spans = [(offsets[n.lineno - 1] + n.col_offset, offsets[n.end_lineno - 1] + n.end_col_offset)
                     for n in ast.walk(self.tree(path)) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            out = list(text)
            for a, b in spans:
                out[a:b] = " " * (b - a)
            self.blanked[path] = "".join(out)
        return self.blanked[path]


@pytest.fixture(scope="module")
def source() -> Source:
    """The parsed project, shared by every test of this module."""
    return Source()


def modules() -> dict[str, Path]:
    """``{dotted name: path}`` of every module of the package."""
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, source: Source) -> list[tuple[str, list[str], int]]:
    """``(imported module, names, line)`` of every import in a module, relative ones resolved."""
    tree = source.tree(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out.append((base, [a.name for a in node.names], node.lineno))
    return out


def layer_of(module: str) -> int:
    parts = module.split(".")
    if parts == ["mrgrpo"]:
        return LAYER["__init__"]
    return LAYER[parts[1]]


def internal_edges(source: Source) -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for target, names, _ in imports(name, path, source):
            if not target.startswith("mrgrpo"):
                continue
            for n in names or [""]:
                full = f"{target}.{n}" if n else target
                edges[name].add(full if full in mods else target)
    return edges


def test_every_module_is_small(source):
    big = {name: n for name, p in modules().items() if (n := len(source.read(p).splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_every_part_has_a_layer():
    assert {n.split(".")[1] for n in modules() if "." in n} <= set(LAYER)


def test_no_import_runs_up_the_layers(source):
    bad = []
    for name, path in modules().items():
        if name == "mrgrpo":
            continue  # the package face names everything lazily
        for target, _, line in imports(name, path, source):
            if target.startswith("mrgrpo.") and layer_of(target) > layer_of(name):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not bad, "imports from a lower layer up to a higher one:\n" + "\n".join(bad)


def test_science_never_imports_ops(source):
    bad = [f"{n} -> {t}" for n, ts in internal_edges(source).items() for t in ts
           if t.startswith("mrgrpo.ops") and not n.startswith(("mrgrpo.ops", "mrgrpo.cli"))]
    assert not bad


def test_no_circular_imports(source):
    edges = internal_edges(source)
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if nxt not in edges or nxt == node or nxt.startswith(node + "."):
                continue  # a package importing its own submodules is not a cycle
            if state.get(nxt) == 1 and not node.startswith(nxt + "."):
                cycles.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for n in edges:
        if n not in state:
            visit(n, [n])
    assert not cycles, f"import cycles: {cycles}"


def _python_files():
    for d in ("mrgrpo", "tests", "benchmarks", "scripts"):
        yield from (ROOT / d).rglob("*.py")


def test_no_underscore_name_is_imported_across_modules(source):
    bad = []
    for path in _python_files():
        tree = source.tree(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                bad += [f"{path.relative_to(ROOT)}:{node.lineno} {a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
            if isinstance(node, ast.Import):
                bad += [f"{path.relative_to(ROOT)}:{node.lineno} {a.name}" for a in node.names
                        if any(p.startswith("_") and not p.startswith("__") for p in a.name.split("."))]
    assert not bad, "underscore-prefixed names imported across modules:\n" + "\n".join(bad)


def _defining(pattern: str, source: Source) -> list[str]:
    """Modules whose code (string constants and docstrings aside) matches ``pattern``."""
    rx = re.compile(pattern, re.MULTILINE)
    return sorted(str(p.relative_to(ROOT)) for p in PKG.rglob("*.py") if rx.search(source.code(p)))


@pytest.mark.parametrize("concept, pattern, home", [
    ("the token sampler", r"torch\.(multinomial|searchsorted)\(|\.generate\(", ["mrgrpo/lm/sampling.py"]),
    ("left padding", r"L - len\(", ["mrgrpo/lm/padding.py"]),
    ("the model loader", r"(AutoModelForCausalLM|PeftModel|AutoTokenizer)\.from_pretrained\(",
     ["mrgrpo/lm/gguf.py", "mrgrpo/lm/loader.py"]),
    ("the prompt normalizer", r"apply_chat_template\(|def prompt_text\(|def as_prompt\(", ["mrgrpo/lm/prompts.py"]),
    ("the copula solver", r"integrate\.quad\(|def \w*(latent|bvn|pair_correlation)\w*\(", ["mrgrpo/sim/copula.py"]),
    ("the precision (dtype / autocast) rule", r"torch\.autocast\(|\b(bf16|fp16)=", ["mrgrpo/lm/precision.py"]),
    ("the held-out evaluation loop", r"group_uniforms\([^)]*eval_seed", ["mrgrpo/train/evaluation.py"]),
    ("the run-folder guard (marker, foreign files, staged replacement) of runs and corpora",
     r"def \w*(marker|foreign|roll_back|mark_started|settle)\w*\(", ["mrgrpo/core/run_folder.py"]),
])
def test_one_home_per_concept(concept, pattern, home, source):
    found = _defining(pattern, source)
    assert found and set(found) <= set(home), f"{concept} is written in {found}, expected only in {home}"


#: An interval spelled by hand in a format string: ``[{lo...}, {hi...}]`` (``_code`` blanks strings, so raw text).
HAND_INTERVAL = re.compile(r"\[\{[^{}\n]*\}, ?\{[^{}\n]*\}\]")
#: Where it may stay, and why: not a value with its interval, and a layer below ``analysis``.
INTERVAL_EXCEPTIONS = {"mrgrpo/sim/copula.py": "an attainable range in an error message"}


def test_one_home_per_concept_interval_formatter(source):
    """"x [lo, hi]" is written once, by ``verdicts.fmt_interval``: the package and the chapters call it."""
    files = [*PKG.rglob("*.py"), *(ROOT / "chapters").glob("*.md")]
    found = sorted(str(p.relative_to(ROOT)) for p in files if HAND_INTERVAL.search(source.read(p)))
    assert "mrgrpo/analysis/verdicts.py" in found  # the pattern still finds the one home
    assert set(found) - set(INTERVAL_EXCEPTIONS) == {"mrgrpo/analysis/verdicts.py"}, (
        f"an interval is formatted by hand in {sorted(set(found) - set(INTERVAL_EXCEPTIONS))}: "
        "use mrgrpo.analysis.verdicts.fmt_interval")


def test_the_eos_rule_is_read_in_one_place(source):
    """Reading ``generation_config``'s EOS ids (the half of the rule a tokenizer does not know) happens once."""
    readers = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(source.tree(path)):
            if isinstance(node, ast.Attribute) and node.attr == "eos_token_id" and "generation_config" in ast.unparse(node):
                readers.append(str(path.relative_to(ROOT)))
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "getattr" and len(node.args) >= 2 \
                    and "eos_token_id" in ast.unparse(node.args[1]) and "generation_config" in ast.unparse(node.args[0]):
                readers.append(str(path.relative_to(ROOT)))
    assert sorted(set(readers)) == ["mrgrpo/lm/loader.py"]


def test_the_corpus_metadata_key_is_defined_once(source):
    keys = [str(p.relative_to(ROOT)) for p in PKG.rglob("*.py") if 'b"mrgrpo.corpus"' in source.read(p)]
    assert keys == ["mrgrpo/corpus/io.py"]


def test_the_run_folder_layout_lives_in_train_checkpoint(source):
    """Only ``train.checkpoint`` spells the names inside a run folder; everyone else asks it."""
    rx = re.compile(r"[\"'](state\.json|checkpoints|trainable\.pt|optimizer\.pt|checkpoint-)")
    spelled = sorted(str(p.relative_to(ROOT)) for p in PKG.rglob("*.py") if rx.search(source.read(p)))
    assert spelled == ["mrgrpo/train/checkpoint.py"]
