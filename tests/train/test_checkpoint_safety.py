"""Checkpoints are safe with untrusted run folders, resume never restarts silently, and
the run-folder layout has one home (``mrgrpo.train.checkpoint``)."""
from __future__ import annotations

import ast
import json
import os
import random
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mrgrpo.train import checkpoint as ck

REPO = Path(__file__).resolve().parents[2]


class TinyModel(torch.nn.Module):
    """Two trainable tensors and one frozen; ``save_pretrained`` like a peft model."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)
        self.frozen = torch.nn.Parameter(torch.ones(2), requires_grad=False)

    def save_pretrained(self, folder: str) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "adapter_config.json").write_text("{}")


def make_training(seed: int = 0):
    torch.manual_seed(seed)
    model = TinyModel()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    return model, opt, sched


def train_step(model, opt, sched):
    x = torch.randn(4, 3) + float(np.random.standard_normal()) + random.gauss(0, 1)
    loss = torch.nn.functional.dropout(model.lin(x), 0.5).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    return loss.item()


def malicious_pt(path: Path, marker: Path) -> None:
    """A torch zip file whose ``data.pkl`` calls ``os.system`` (pickle opcodes by hand)."""
    payload = b"cposix\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR."
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")


# ----------------------------------------------------------------------------- no code from files
@pytest.mark.parametrize("name", ["optimizer.pt", "scheduler.pt", "trainable.pt"])
def test_malicious_checkpoint_file_does_not_run_and_is_refused(tmp_path, name):
    model, opt, sched = make_training()
    path = ck.save_checkpoint(tmp_path / "checkpoints", 3, model, opt, sched, {"step": 3})
    marker = tmp_path / "PWNED"
    malicious_pt(path / name, marker)
    with pytest.raises(ValueError, match=rf"refusing to load .*{re.escape(name)}.*posix\.system"):
        ck.load_checkpoint(path, *make_training())
    assert not marker.exists(), "the checkpoint ran code"


def test_saved_files_load_with_weights_only_and_rng_is_json(tmp_path):
    model, opt, sched = make_training()
    train_step(model, opt, sched)
    path = ck.save_checkpoint(tmp_path, 1, model, opt, sched, {"step": 1})
    for name in ("trainable.pt", "optimizer.pt", "scheduler.pt"):
        torch.load(path / name, map_location="cpu", weights_only=True)
    rng = json.loads((path / "rng.json").read_text())
    assert set(rng) >= {"torch", "numpy", "python"}
    assert not (path / "rng.pt").exists()


def test_rng_state_round_trips_exactly_through_json():
    np.random.seed(3), random.seed(3)
    np.random.standard_normal(3)       # leaves a cached Gaussian in numpy's legacy state
    random.gauss(0, 1)                 # and in python's
    saved = json.loads(json.dumps(ck.capture_rng_state()))
    assert saved["numpy"]["has_gauss"] == 1 and saved["python"]["gauss_next"] is not None
    want = (torch.rand(5), np.random.standard_normal(5), [random.gauss(0, 1) for _ in range(5)],
            [random.random() for _ in range(3)])
    torch.rand(7), np.random.rand(9), random.random()     # move every generator on
    ck.restore_rng_state(saved)
    got = (torch.rand(5), np.random.standard_normal(5), [random.gauss(0, 1) for _ in range(5)],
           [random.random() for _ in range(3)])
    assert torch.equal(want[0], got[0]) and np.array_equal(want[1], got[1])
    assert want[2] == got[2] and want[3] == got[3]


def test_malformed_rng_state_names_the_field():
    state = ck.capture_rng_state()
    state["numpy"]["keys"] = state["numpy"]["keys"][:10]
    with pytest.raises(ValueError, match="numpy.keys"):
        ck.restore_rng_state(state)
    with pytest.raises(ValueError, match="malformed"):
        ck.restore_rng_state({"torch": []})


def test_resumed_training_is_bit_identical(tmp_path):
    model, opt, sched = make_training()
    np.random.seed(1), random.seed(1)
    for _ in range(3):
        train_step(model, opt, sched)
    path = ck.save_checkpoint(tmp_path, 3, model, opt, sched, {"step": 3})
    straight = [train_step(model, opt, sched) for _ in range(3)]
    final = model.lin.weight.detach().clone()

    model2, opt2, sched2 = make_training(seed=5)     # different init, to be overwritten
    np.random.seed(99), random.seed(99)
    assert ck.load_checkpoint(path, model2, opt2, sched2) == {"step": 3}
    resumed = [train_step(model2, opt2, sched2) for _ in range(3)]
    assert resumed == straight
    assert torch.equal(model2.lin.weight, final)
    assert torch.equal(model2.frozen, torch.ones(2))


# ----------------------------------------------------------------------------- resume
def test_latest_naming_a_missing_checkpoint_resumes_from_the_newest_complete(tmp_path):
    model, opt, sched = make_training()
    root = tmp_path / "checkpoints"
    ck.save_checkpoint(root, 9, model, opt, sched, {"step": 9})
    (root / "latest").write_text("checkpoint-000010")        # a save that never landed
    with pytest.warns(RuntimeWarning, match="checkpoint-000010.*checkpoint-000009"):
        assert ck.latest_checkpoint(root) == root / "checkpoint-000009"


def test_interrupted_resave_is_undone(tmp_path):
    model, opt, sched = make_training()
    root = tmp_path / "checkpoints"
    ck.save_checkpoint(root, 8, model, opt, sched, {"step": 8})
    ck.save_checkpoint(root, 9, model, opt, sched, {"step": 9})
    dead = _dead_pid()
    os.replace(root / "checkpoint-000009", root / f".old-checkpoint-000009-{dead}")  # mid re-save
    with pytest.warns(RuntimeWarning, match="re-saved"):
        assert ck.latest_checkpoint(root) == root / "checkpoint-000009"
    assert json.loads((root / "checkpoint-000009" / "state.json").read_text()) == {"step": 9}
    assert not list(root.glob(".old-*"))


def test_no_complete_checkpoint_refuses_instead_of_restarting(tmp_path):
    root = tmp_path / "checkpoints"
    (root / "checkpoint-000004").mkdir(parents=True)
    (root / "checkpoint-000004" / "rng.pt").write_bytes(b"old pickle")
    (root / "latest").write_text("checkpoint-000004")
    with pytest.raises(ValueError, match=r"rng\.pt.*refusing to restart at step 0"):
        ck.latest_checkpoint(root)
    assert ck.latest_checkpoint(tmp_path / "fresh") is None


def test_orphans_of_crashed_saves_are_removed(tmp_path):
    model, opt, sched = make_training()
    root = tmp_path / "checkpoints"
    root.mkdir()
    dead = _dead_pid()
    for name in (f".tmp-checkpoint-000002-{dead}", f".old-checkpoint-000001-{dead}"):
        (root / name).mkdir()
    (root / f".latest.tmp-{dead}").write_text("x")
    live = root / f".tmp-checkpoint-000002-{os.getppid()}"   # another live process: kept
    live.mkdir()
    ck.save_checkpoint(root, 3, model, opt, sched, {"step": 3})
    assert sorted(p.name for p in root.iterdir()) == sorted(["checkpoint-000003", "latest", live.name])


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ----------------------------------------------------------------------------- run-folder layout
def test_run_layout_and_readers(tmp_path):
    run = tmp_path / "run"
    lay = ck.RunLayout(run)
    assert lay.table("metrics") == (run / "metrics.json", run / "metrics.csv")
    assert lay.adapter == run / "adapter" and lay.checkpoints == run / "checkpoints"
    with pytest.raises(ValueError, match="stem"):
        lay.table("secrets")
    assert ck.read_run_config(run) == ({}, None)
    assert ck.read_run_table(run, "eval") == (None, None)
    model, opt, sched = make_training()
    ck.save_checkpoint(lay.checkpoints, 2, model, opt, sched, {"step": 2, "config": {"mode": "na"}})
    assert ck.read_run_config(run) == ({"mode": "na"}, None)
    lay.config.write_text(json.dumps({"mode": "an"}))
    assert ck.read_run_config(run) == ({"mode": "an"}, lay.config)
    lay.table("eval")[1].write_text("step,correct\n2,0.5\n")
    assert ck.read_run_table(run, "eval") == ([{"step": 2, "correct": 0.5}], run / "eval.csv")
    lay.table("eval")[0].write_text(json.dumps([{"step": 2, "correct": 0.25}]))
    assert ck.read_run_table(run, "eval")[0] == [{"step": 2, "correct": 0.25}]


def test_hub_reads_runs_only_through_the_layout():
    files = [p for p in (REPO / "mrgrpo" / "ops").rglob("*.py") if "hub" in p.relative_to(REPO).parts[2]]
    assert files, "no hub modules found"
    hub_src = "\n".join(p.read_text() for p in files)
    assert "read_run_config" in hub_src and "RunLayout" in hub_src
    for literal in ('"checkpoints"', '"latest"', '"state.json"', '"metrics.csv"', '"eval.json"',
                    'f"{stem}.csv"', '"optimizer.pt"'):
        assert literal not in hub_src, f"ops/hub knows the run-folder layout: {literal}"


# ----------------------------------------------------------------------------- no code from files, anywhere
_PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def _unsafe_calls(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names
                      if a.name.split(".")[0] in _PICKLE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in _PICKLE_MODULES:
            found.append((node.lineno, f"from {node.module} import ..."))
        elif isinstance(node, ast.ImportFrom) and node.module in ("torch", "numpy", "yaml") and any(
                a.name in ("load", "unsafe_load") for a in node.names):
            found.append((node.lineno, f"from {node.module} import load (calls cannot be checked)"))
        elif isinstance(node, ast.Attribute) and node.attr in ("read_pickle", "to_pickle"):
            found.append((node.lineno, node.attr))
        elif isinstance(node, ast.Call):
            kw = {k.arg: k.value for k in node.keywords if k.arg}
            func = ast.unparse(node.func)
            for name, bad in (("weights_only", False), ("allow_pickle", True), ("trust_remote_code", True)):
                if name in kw and isinstance(kw[name], ast.Constant) and kw[name].value is bad:
                    found.append((node.lineno, f"{func}({name}={bad})"))
            if func == "torch.load" or func.endswith(".torch.load"):
                ok = isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
                if not ok:
                    found.append((node.lineno, "torch.load without weights_only=True"))
            if func in ("yaml.load", "yaml.unsafe_load", "yaml.full_load"):
                found.append((node.lineno, f"{func} (use yaml.safe_load)"))
            if func in ("np.load", "numpy.load") and "allow_pickle" in kw and not (
                    isinstance(kw["allow_pickle"], ast.Constant) and kw["allow_pickle"].value is False):
                found.append((node.lineno, f"{func}(allow_pickle=<not False>)"))
    return found


def test_no_pickle_loading_anywhere():
    hits = []
    for folder in ("mrgrpo", "tests", "benchmarks", "scripts"):
        for path in sorted((REPO / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            hits += [f"{path.relative_to(REPO)}:{line}: {what}" for line, what in _unsafe_calls(tree)]
    for path in sorted((REPO / "chapters").glob("*.md")):
        text = path.read_text()
        for pat in (r"\bimport pickle\b", r"weights_only\s*=\s*False", r"allow_pickle\s*=\s*True",
                    r"read_pickle", r"trust_remote_code\s*=\s*True", r"\byaml\.load\("):
            hits += [f"{path.relative_to(REPO)}: {pat}" for _ in re.finditer(pat, text)]
    assert hits == [], "unsafe deserialization:\n" + "\n".join(hits)


def test_the_scanner_catches_what_it_should():
    src = ("import pickle\nfrom dill import loads\nimport torch, numpy as np, pandas as pd\n"
           "torch.load(f)\ntorch.load(f, weights_only=False)\nnp.load(f, allow_pickle=True)\n"
           "np.load(f, allow_pickle=flag)\npd.read_pickle(f)\nfrom torch import load\n"
           "AutoModel.from_pretrained(p, trust_remote_code=True)\nyaml.load(text)\n"
           "torch.load(f, weights_only=True)\nnp.load(f)\nnp.load(f, allow_pickle=False)\n"
           "yaml.safe_load(text)\nAutoModel.from_pretrained(p)\n")
    lines = sorted({line for line, _ in _unsafe_calls(ast.parse(src))})
    assert lines == [1, 2, 4, 5, 6, 7, 8, 9, 10, 11]
