"""The package's shape, checked: small modules, layers that import downwards, one home per concept.

The layers of ``mrgrpo``, bottom to top (a module may import its own layer and
the layers below it, never a higher one):

    core < sim, lm < rewards < tasks < corpus < train, analysis < integrations < tiny < ops < cli

Imports inside functions count too: a deferred import is still a dependency.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "mrgrpo"
MAX_LINES = 450

#: Layer of every top-level part of the package.
LAYER = {"core": 0, "sim": 1, "lm": 1, "rewards": 2, "tasks": 3, "examples": 3, "corpus": 4, "generation": 4,
         "train": 5, "analysis": 5, "integrations": 6, "tiny": 7, "ops": 8, "cli": 9, "__main__": 9,
         "__init__": 10}


def modules() -> dict[str, Path]:
    """``{dotted name: path}`` of every module of the package."""
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """``(imported module, names, line)`` of every import in a module, relative ones resolved."""
    tree = ast.parse(path.read_text())
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


def internal_edges() -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for target, names, _ in imports(name, path):
            if not target.startswith("mrgrpo"):
                continue
            for n in names or [""]:
                full = f"{target}.{n}" if n else target
                edges[name].add(full if full in mods else target)
    return edges


def test_every_module_is_small():
    big = {name: n for name, p in modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_every_part_has_a_layer():
    assert {n.split(".")[1] for n in modules() if "." in n} <= set(LAYER)


def test_no_import_runs_up_the_layers():
    bad = []
    for name, path in modules().items():
        if name == "mrgrpo":
            continue  # the package face names everything lazily
        for target, _, line in imports(name, path):
            if target.startswith("mrgrpo.") and layer_of(target) > layer_of(name):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not bad, "imports from a lower layer up to a higher one:\n" + "\n".join(bad)


def test_science_never_imports_ops():
    bad = [f"{n} -> {t}" for n, ts in internal_edges().items() for t in ts
           if t.startswith("mrgrpo.ops") and not n.startswith(("mrgrpo.ops", "mrgrpo.cli"))]
    assert not bad


def test_no_circular_imports():
    edges = internal_edges()
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


def test_no_underscore_name_is_imported_across_modules():
    bad = []
    for path in _python_files():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                bad += [f"{path.relative_to(ROOT)}:{node.lineno} {a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
            if isinstance(node, ast.Import):
                bad += [f"{path.relative_to(ROOT)}:{node.lineno} {a.name}" for a in node.names
                        if any(p.startswith("_") and not p.startswith("__") for p in a.name.split("."))]
    assert not bad, "underscore-prefixed names imported across modules:\n" + "\n".join(bad)


def _defining(pattern: str) -> list[str]:
    """Modules whose code (string constants and docstrings aside) matches ``pattern``."""
    rx = re.compile(pattern, re.MULTILINE)
    return sorted(str(p.relative_to(ROOT)) for p in PKG.rglob("*.py") if rx.search(_code(p)))


def _code(path: Path) -> str:
    """The module's source with every string constant blanked (model cards and docstrings quote code)."""
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    spans = [(offsets[n.lineno - 1] + n.col_offset, offsets[n.end_lineno - 1] + n.end_col_offset)
             for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    out = list(text)
    for a, b in spans:
        out[a:b] = " " * (b - a)
    return "".join(out)


@pytest.mark.parametrize("concept, pattern, home", [
    ("the token sampler", r"torch\.(multinomial|searchsorted)\(|\.generate\(", ["mrgrpo/lm/sampling.py"]),
    ("left padding", r"L - len\(", ["mrgrpo/lm/padding.py"]),
    ("the model loader", r"(AutoModelForCausalLM|PeftModel|AutoTokenizer)\.from_pretrained\(",
     ["mrgrpo/lm/gguf.py", "mrgrpo/lm/loader.py"]),
    ("the prompt normalizer", r"apply_chat_template\(|def prompt_text\(|def as_prompt\(", ["mrgrpo/lm/prompts.py"]),
    ("the copula solver", r"integrate\.quad\(|def \w*(latent|bvn|pair_correlation)\w*\(", ["mrgrpo/sim/copula.py"]),
])
def test_one_home_per_concept(concept, pattern, home):
    found = _defining(pattern)
    assert found and set(found) <= set(home), f"{concept} is written in {found}, expected only in {home}"


def test_the_eos_rule_is_read_in_one_place():
    """Reading ``generation_config``'s EOS ids (the half of the rule a tokenizer does not know) happens once."""
    readers = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "eos_token_id" and "generation_config" in ast.unparse(node):
                readers.append(str(path.relative_to(ROOT)))
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "getattr" and len(node.args) >= 2 \
                    and "eos_token_id" in ast.unparse(node.args[1]) and "generation_config" in ast.unparse(node.args[0]):
                readers.append(str(path.relative_to(ROOT)))
    assert sorted(set(readers)) == ["mrgrpo/lm/loader.py"]


def test_the_corpus_metadata_key_is_defined_once():
    keys = [str(p.relative_to(ROOT)) for p in PKG.rglob("*.py") if 'b"mrgrpo.corpus"' in p.read_text()]
    assert keys == ["mrgrpo/corpus/io.py"]


def test_the_run_folder_layout_lives_in_train_checkpoint():
    """Only ``train.checkpoint`` spells the names inside a run folder; everyone else asks it."""
    rx = re.compile(r"[\"'](state\.json|checkpoints|trainable\.pt|optimizer\.pt|checkpoint-)")
    spelled = sorted(str(p.relative_to(ROOT)) for p in PKG.rglob("*.py") if rx.search(p.read_text()))
    assert spelled == ["mrgrpo/train/checkpoint.py"]
