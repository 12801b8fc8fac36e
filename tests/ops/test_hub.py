"""Hub publishing: dry-run folders, card content, the upload calls (no network), and
what never leaves: anything off the allow-list, tokens, half-written dry runs."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mrgrpo.corpus import save_npz, save_parquet
from mrgrpo.cli import main
from mrgrpo.ops import hub
from mrgrpo.train.checkpoint import checkpoint_root

REPO_ID = "someone/mrgrpo-na-test"
CHANNELS = ("correctness", "length", "format")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)


def front_matter(text: str) -> tuple[dict, str]:
    assert text.startswith("---\n")
    head, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


@pytest.fixture
def run_dir(tmp_path):
    """A run folder in the trainer's layout (see mrgrpo.ops.hub's docstring)."""
    run = tmp_path / "run"
    adapter = run / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps(
        {"base_model_name_or_path": "Qwen/Qwen2.5-1.5B-Instruct", "peft_type": "LORA", "r": 16}))
    (adapter / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    (adapter / "tokenizer_config.json").write_text("{}")
    ck = checkpoint_root(run) / "checkpoint-000040"
    ck.mkdir(parents=True)
    (ck / "optimizer.pt").write_bytes(b"opt")
    cfg = {"model": "Qwen/Qwen2.5-1.5B-Instruct", "mode": "na", "weights": [1.0, 1.0, 0.5],
           "conditioning": "none", "n_steps": 40, "m": 8, "batch_prompts": 4, "lr": 5e-6,
           "kl_coef": 0.05, "lora_r": 16, "lora_alpha": 32, "temperature": 0.8, "seed": 3}
    (run / "config.json").write_text(json.dumps(cfg))
    rng = np.random.default_rng(0)
    steps = np.arange(1, 41)
    metrics = pd.DataFrame({"step": steps, **{f"reward/{c}": rng.random(40) for c in CHANNELS},
                            "kl": rng.random(40) * 0.01})
    metrics.to_csv(run / "metrics.csv", index=False)
    (run / "metrics.json").write_text(metrics.to_json(orient="records"))
    pd.DataFrame({"step": [20, 40], "correctness": [0.41, 0.625], "length": [0.5, 0.55],
                  "format": [0.9, 1.0], "aggregate": [1.36, 1.675]}).to_csv(run / "eval.csv", index=False)
    return run


def test_adapter_dry_run_writes_exactly_the_upload(run_dir, tmp_path):
    out = tmp_path / "out"
    res = hub.push_adapter(run_dir, REPO_ID, dry_run=out)
    assert not res.uploaded
    assert res.left_out == ["checkpoints/"]
    on_disk = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert res.files == on_disk == sorted([
        "README.md", "adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json",
        "training_curve.png", "training/config.json", "training/metrics.csv",
        "training/metrics.json", "training/eval.csv"])
    assert (out / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "adapter_model.safetensors").read_bytes() == b"\0" * 64


def test_model_card_front_matter_and_tables(run_dir, tmp_path):
    hub.push_adapter(run_dir, REPO_ID, dry_run=tmp_path / "out")
    meta, body = front_matter((tmp_path / "out" / "README.md").read_text())
    assert meta["base_model"] == "Qwen/Qwen2.5-1.5B-Instruct"
    assert meta["library_name"] == "peft" and meta["license"] == "mit"
    assert {"mrgrpo", "grpo", "advantage-na"} <= set(meta["tags"])
    assert "| advantage mode | na |" in body
    assert "| weights | 1, 1, 0.5 |" in body
    assert "| steps | 40 |" in body and "| group size m | 8 |" in body and "| seed | 3 |" in body
    assert "| learning rate | 5e-06 |" in body
    # eval table, verbatim from eval.csv
    assert "| step | correctness | length | format | aggregate |" in body
    assert "| 40 | 0.625 | 0.55 | 1 | 1.675 |" in body
    assert "![training curve](training_curve.png)" in body
    # last-30-step summary equals pandas on the same rows
    m = pd.read_csv(run_dir / "metrics.csv").tail(30)
    want = f"| correctness | {hub.card_cell(float(m['reward/correctness'].mean()))} | " \
           f"{hub.card_cell(float(m['reward/correctness'].std(ddof=1)))} |"
    assert want in body
    assert f'PeftModel.from_pretrained(model, "{REPO_ID}")' in body
    assert f'AutoTokenizer.from_pretrained("{REPO_ID}")' in body     # tokenizer files shipped


def test_model_card_from_plain_dicts_without_files():
    card = hub.model_card({"model": "Qwen/Qwen2.5-1.5B-Instruct", "mode": "an", "weights": (1, 2),
                           "seeds": [0, 1, 2], "n_steps": 500}, repo_id="a/b")
    meta, body = front_matter(card)
    assert meta["tags"][-1] == "advantage-an"
    assert "| seeds | 0, 1, 2 |" in body and "| steps | 500 |" in body
    assert "No evaluation was recorded" in body and "No training metrics" in body
    card = hub.model_card({"model": "Qwen/Qwen2.5-1.5B-Instruct"}, repo_id="a/b", tokenizer_in_repo=False)
    assert 'AutoTokenizer.from_pretrained("Qwen/Qwen2.5-1.5B-Instruct")' in card
    with pytest.raises(ValueError, match="base model"):
        hub.model_card({"mode": "na"}, repo_id="a/b")


def test_local_base_model_path_is_not_a_hub_id(run_dir, tmp_path):
    cfg = json.loads((run_dir / "config.json").read_text())
    cfg["model"] = "/work/main/data/tiny-policy"
    (run_dir / "config.json").write_text(json.dumps(cfg))
    hub.push_adapter(run_dir, REPO_ID, dry_run=tmp_path / "out")
    meta, body = front_matter((tmp_path / "out" / "README.md").read_text())
    assert "base_model" not in meta and "`tiny-policy`" in body


def test_config_falls_back_to_checkpoint_state(run_dir, tmp_path):
    cfg = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").unlink()
    ck = checkpoint_root(run_dir)
    (ck / "checkpoint-000040" / "state.json").write_text(json.dumps({"step": 40, "config": cfg}))
    (ck / "latest").write_text("checkpoint-000040")
    res = hub.push_adapter(run_dir, REPO_ID, dry_run=tmp_path / "out")
    assert "training/config.json" in res.files
    assert json.loads((tmp_path / "out" / "training" / "config.json").read_text()) == cfg


def test_adapter_errors_are_clear(run_dir, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "x").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        hub.push_adapter(run_dir, REPO_ID, dry_run=out)
    with pytest.raises(ValueError, match="owner/name"):
        hub.push_adapter(run_dir, "no-owner", dry_run=tmp_path / "o2")
    (run_dir / "adapter" / "adapter_model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no adapter"):
        hub.push_adapter(run_dir, REPO_ID, dry_run=tmp_path / "o3")
    (run_dir / "adapter" / "adapter_model.bin").write_bytes(b"a pickle")
    with pytest.raises(FileNotFoundError, match="adapter_model.bin is a pickle"):
        hub.push_adapter(run_dir, REPO_ID, dry_run=tmp_path / "o4")
    assert not any((tmp_path / n).exists() for n in ("o2", "o3", "o4"))


class FakeApi:
    """Records the calls an HfApi would get, and what the upload folder held."""

    def __init__(self):
        self.calls = []

    def create_repo(self, **kw):
        self.calls.append(("create_repo", kw))

    def upload_folder(self, **kw):
        folder = Path(kw["folder_path"])
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        self.calls.append(("upload_folder", {**kw, "files": files}))
        return type("CommitInfo", (), {"commit_url": "https://huggingface.co/x/commit/1"})()


def test_real_push_calls_hfapi_with_repo_type_and_folder(run_dir, tmp_path):
    api = FakeApi()
    res = hub.push_adapter(run_dir, REPO_ID, api=api, private=True)
    dry = hub.push_adapter(run_dir, REPO_ID, dry_run=tmp_path / "dry")
    assert res.uploaded and res.url.endswith("/commit/1")
    (n1, create), (n2, upload) = api.calls
    assert (n1, n2) == ("create_repo", "upload_folder")
    assert create == {"repo_id": REPO_ID, "repo_type": "model", "private": True, "exist_ok": True}
    assert upload["repo_id"] == REPO_ID and upload["repo_type"] == "model"
    assert upload["files"] == dry.files == res.files


def test_real_push_refuses_when_offline(run_dir):
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE"):
        hub.push_adapter(run_dir, REPO_ID)


# ----------------------------------------------------------------------------- corpora
def released_frame(P=3, K=2, m=4, seed=0):
    rng = np.random.default_rng(seed)
    p, k, j = np.meshgrid(np.arange(P), np.arange(K), np.arange(m), indexing="ij")
    n = P * K * m
    return pd.DataFrame({
        "model": "Qwen2.5-1.5B-Instruct", "prompt_idx": p.ravel(), "seed_idx": k.ravel(),
        "rollout_idx": j.ravel(), "group_size_m_max": m,
        "correctness": rng.integers(0, 2, n).astype(float), "length": rng.random(n),
        "format": rng.integers(0, 2, n).astype(float), "raw_length": rng.integers(5, 90, n).astype(float),
        "question": [f"q{i}" for i in p.ravel()], "gold_answer": "4", "gold_reasoning": "2+2"})


@pytest.fixture
def corpus_files(tmp_path):
    df = released_frame()
    pq_path = tmp_path / "corpus" / "rollouts.parquet"
    pq_path.parent.mkdir()
    df.to_parquet(pq_path, index=False)
    rewards = df[list(CHANNELS)].to_numpy().reshape(3, 2, 4, 3)
    np.savez_compressed(pq_path.with_suffix(".npz"), rewards_m4=rewards,
                        m_grid=np.array([4]), reward_names=np.array(CHANNELS))
    return pq_path


def test_corpus_dry_run_files_and_card(corpus_files, tmp_path):
    out = tmp_path / "out"
    res = hub.push_corpus(corpus_files, "someone/rollouts", dry_run=out)
    assert res.files == ["README.md", "data/train.parquet", "rollouts.npz"]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "data" / "train.parquet"),
                                  pd.read_parquet(corpus_files))
    meta, body = front_matter((out / "README.md").read_text())
    assert meta["configs"] == [{"config_name": "default",
                                "data_files": [{"split": "train", "path": "data/train.parquet"}]}]
    assert "| rows (rollouts) | 24 |" in body and "| prompts P | 3 |" in body
    assert "| seeds K | 2 |" in body and "| group size (largest m) | 4 |" in body
    assert "| correctness | float64 |" in body
    assert "| rewards_m4 | (3, 2, 4, 3) |" in body
    assert 'pd.read_parquet("hf://datasets/someone/rollouts/data/train.parquet")' in body


def test_corpus_from_mrgrpo_rollouts(tmp_path):
    from mrgrpo.corpus import MockBackend, run_corpus

    C = np.array([[1.0, 0.5], [0.5, 1.0]])
    corpus = run_corpus(MockBackend(C=C), [(f"p{i}", "0") for i in range(3)], m_grid=[4], K_seeds=2)
    folder = tmp_path / "c"
    folder.mkdir()
    save_parquet(corpus, folder / "corpus.parquet")
    save_npz(corpus, folder / "corpus.npz")
    res = hub.push_corpus(folder, "someone/mock", dry_run=tmp_path / "out")
    assert res.files == ["README.md", "corpus.npz", "data/train.parquet"]
    body = (tmp_path / "out" / "README.md").read_text()
    assert "| rows (rollouts) | 24 |" in body and "| m grid | 4 |" in body
    assert "| rewards_m4 | (3, 2, 4, 2) |" in body


def test_corpus_schema_is_checked(tmp_path):
    bad = tmp_path / "bad.parquet"
    released_frame().drop(columns=["seed_idx"]).to_parquet(bad, index=False)
    with pytest.raises(ValueError, match="missing column.*seed_idx"):
        hub.push_corpus(bad, "a/b", dry_run=tmp_path / "o")
    ok = tmp_path / "ok.parquet"
    released_frame().to_parquet(ok, index=False)
    np.savez(tmp_path / "ok.npz", other=np.zeros(3))
    with pytest.raises(ValueError, match="no rewards array"):
        hub.push_corpus(ok, "a/b", dry_run=tmp_path / "o2")
    with pytest.raises(FileNotFoundError):
        hub.push_corpus(tmp_path / "missing.parquet", "a/b", dry_run=tmp_path / "o3")


def test_corpus_real_push_uses_dataset_repo(corpus_files):
    api = FakeApi()
    hub.push_corpus(corpus_files, "someone/rollouts", api=api)
    (_, create), (_, upload) = api.calls
    assert create["repo_type"] == "dataset" and create["repo_id"] == "someone/rollouts"
    assert upload["repo_type"] == "dataset"
    assert upload["files"] == ["README.md", "data/train.parquet", "rollouts.npz"]


def test_cli_dry_runs(run_dir, corpus_files, tmp_path, capsys):
    assert main(["hub", "push-adapter", str(run_dir), "--repo", REPO_ID,
                 "--dry-run", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "README.md").is_file()
    assert main(["hub", "push-corpus", str(corpus_files), "--repo", "x/y",
                 "--dry-run", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "nothing uploaded" in out and "data/train.parquet" in out
    assert main(["hub", "push-corpus", str(corpus_files), "--repo", "x/y"]) == 1  # offline


def test_released_sample_passes_the_schema_check(tmp_path):
    sample = Path(__file__).parents[1] / "fixtures" / "released_rollouts_sample.parquet"
    res = hub.push_corpus(sample, "someone/released-sample", dry_run=tmp_path / "out")
    assert res.files == ["README.md", "data/train.parquet"]
    body = (tmp_path / "out" / "README.md").read_text()
    assert f"| rows (rollouts) | {len(pd.read_parquet(sample))} |" in body
    assert "| completion | " in body


# ----------------------------------------------------------------------------- what never leaves
@pytest.fixture
def flat_run(tmp_path):
    """A run folder without adapter/: the adapter files sit beside everything else."""
    run = tmp_path / "flat"
    run.mkdir()
    (run / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "Qwen/Qwen2.5-1.5B-Instruct"}))
    (run / "adapter_model.safetensors").write_bytes(b"\0" * 8)
    (run / "tokenizer.json").write_text("{}")
    (run / "config.json").write_text(json.dumps({"model": "Qwen/Qwen2.5-1.5B-Instruct", "mode": "na"}))
    (run / "metrics.json").write_text(json.dumps([{"step": 1, "reward/a": 0.5}, {"step": 2, "reward/a": 0.7}]))
    (run / ".env").write_text("HF_TOKEN=hf_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\n")
    (run / ".env.local").write_text("RUNPOD_API_KEY=x\n")
    (run / "notes.txt").write_text("todo\n")
    (run / "adapter_model.bin").write_bytes(b"a pickle")
    (run / "wandb").mkdir()
    (run / "wandb" / "settings").write_text("api_key=x\n")
    return run


def test_only_the_allow_list_is_uploaded_and_the_rest_is_listed(flat_run, tmp_path):
    res = hub.push_adapter(flat_run, REPO_ID, dry_run=tmp_path / "out")
    assert res.files == ["README.md", "adapter_config.json", "adapter_model.safetensors",
                         "tokenizer.json", "training/config.json", "training/metrics.json",
                         "training_curve.png"]
    assert res.left_out == [".env", ".env.local", "adapter_model.bin", "notes.txt", "wandb/"]
    on_disk = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert on_disk == res.files


def test_cli_lists_what_was_left_out(flat_run, tmp_path, capsys):
    assert main(["hub", "push-adapter", str(flat_run), "--repo", REPO_ID, "--dry-run", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "left out (not uploaded): .env, .env.local, adapter_model.bin, notes.txt, wandb/" in out


def _entries(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_failed_dry_run_leaves_no_partial_output(flat_run, tmp_path, monkeypatch):
    def card_fails(*args, **kwargs):                            # after the files are copied
        raise RuntimeError("the card could not be written")

    monkeypatch.setattr("mrgrpo.ops.hub.stage.model_card", card_fails)
    before = _entries(tmp_path)
    with pytest.raises(RuntimeError, match="card could not"):
        hub.push_adapter(flat_run, REPO_ID, dry_run=tmp_path / "out")
    assert _entries(tmp_path) == before                         # no out/, no hidden staging folder
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuntimeError, match="card could not"):
        hub.push_adapter(flat_run, REPO_ID, dry_run=tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []


@pytest.mark.parametrize("where", ["metrics", "config"])
def test_a_token_in_an_uploaded_file_refuses_the_upload(run_dir, tmp_path, monkeypatch, where):
    token = "hf_" + "Q" * 34
    if where == "metrics":
        (run_dir / "eval.csv").write_text(f"step,note\n40,{token}\n")
    else:
        monkeypatch.setenv("HF_TOKEN", "my-very-own-token-value")
        cfg = json.loads((run_dir / "config.json").read_text())
        (run_dir / "config.json").write_text(json.dumps({**cfg, "note": "my-very-own-token-value"}))
    with pytest.raises(ValueError, match="refusing to upload: .*looks like a token"):
        hub.push_adapter(run_dir, REPO_ID, dry_run=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    api = FakeApi()
    with pytest.raises(ValueError, match="refusing to upload"):
        hub.push_adapter(run_dir, REPO_ID, api=api)
    assert api.calls == []                                      # nothing reached the Hub


def test_corpus_folder_uploads_only_the_parquet_and_npz(corpus_files, tmp_path):
    (corpus_files.parent / ".env").write_text("HF_TOKEN=x\n")
    (corpus_files.parent / "notes.md").write_text("x\n")
    res = hub.push_corpus(corpus_files.parent, "someone/rollouts", dry_run=tmp_path / "out")
    assert res.files == ["README.md", "data/train.parquet", "rollouts.npz"]
    assert res.left_out == [".env", "notes.md"]


def test_a_table_that_is_not_numeric_is_a_clear_error(flat_run, tmp_path, capsys):
    (flat_run / "metrics.json").write_text(json.dumps([{"step": 1, "reward/a": "n/a"}]))
    assert main(["hub", "push-adapter", str(flat_run), "--repo", REPO_ID, "--dry-run", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "metrics.json: column 'reward/a' holds values that are not numbers" in err and "Traceback" not in err
    assert not (tmp_path / "a").exists()


# ----------------------------------------------------------------------------- symlinks and secret shapes (issue 21)
PEM = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n"


@pytest.mark.parametrize("link", ["adapter/tokenizer.json", "adapter/merges.txt", "metrics.csv", "adapter"])
def test_a_symlink_out_of_the_run_folder_refuses_the_upload(run_dir, tmp_path, link):
    outside = tmp_path / "home"
    outside.mkdir()
    (outside / "id_rsa").write_text(PEM.replace("PRIVATE KEY", "KEY"))  # no secret shape: only the link refuses
    target = outside / "id_rsa"
    if link == "adapter":  # the whole adapter folder lives elsewhere
        shutil.move(run_dir / "adapter", outside / "adapter")
        target = outside / "adapter"
    elif (run_dir / link).exists():
        (run_dir / link).unlink()
    (run_dir / link).symlink_to(target)
    with pytest.raises(ValueError, match=r"refusing to upload: .* leads outside .*symbolic link to"):
        hub.push_adapter(run_dir, REPO_ID, dry_run=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    api = FakeApi()
    assert main(["hub", "push-adapter", str(run_dir), "--repo", REPO_ID, "--dry-run", str(tmp_path / "o2")]) == 2
    with pytest.raises(ValueError, match="leads outside"):
        hub.push_adapter(run_dir, REPO_ID, api=api)
    assert api.calls == [] and not (tmp_path / "o2").exists()


def test_a_symlink_inside_the_run_folder_is_uploaded(run_dir, tmp_path):
    (run_dir / "shared_tokenizer.json").write_text('{"version": "1.0"}')
    (run_dir / "adapter" / "tokenizer.json").symlink_to(run_dir / "shared_tokenizer.json")
    res = hub.push_adapter(run_dir, REPO_ID, dry_run=tmp_path / "out")
    assert "tokenizer.json" in res.files
    assert (tmp_path / "out" / "tokenizer.json").read_text() == '{"version": "1.0"}'


def test_a_symlink_out_of_a_corpus_folder_refuses_the_upload(corpus_files, tmp_path):
    real = tmp_path / "elsewhere.parquet"
    shutil.move(corpus_files, real)
    corpus_files.symlink_to(real)
    with pytest.raises(ValueError, match="leads outside"):
        hub.push_corpus(corpus_files.parent, "someone/rollouts", dry_run=tmp_path / "out")
    assert not (tmp_path / "out").exists()


HEX40 = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize("where, text, kind", [
    ("adapter/tokenizer.json", json.dumps({"note": PEM}), "a private key (PEM)"),
    ("adapter/tokenizer_config.json", PEM.replace("OPENSSH ", ""), "a private key (PEM)"),
    ("config.json", json.dumps({"model": "Qwen/Qwen2.5-1.5B-Instruct", "note": "ghp_" + "A1b2" * 9}), "a GitHub token"),
    ("eval.csv", "step,note\n40,github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz\n", "a GitHub token"),
    ("adapter/adapter_config.json", json.dumps({"peft_type": "LORA", "hub_token": "hf_" + "x" * 34}),
     "a Hugging Face token"),
    ("metrics.json", json.dumps([{"step": 1, "reward/a": 0.5, "k": "rpa_" + "Q7" * 20}]), "a RunPod API key"),
    ("adapter/adapter_config.json", json.dumps({"peft_type": "LORA", "wandb_api_key": HEX40}), "a wandb API key"),
    ("adapter/adapter_config.json", json.dumps({"peft_type": "LORA", "WANDB-KEY": HEX40.upper()}), "a wandb API key"),
    ("adapter/adapter_model.safetensors", "\0" * 8 + json.dumps({"__metadata__": {"aws": "AKIA" + "ABCD2345" * 2}}),
     "an AWS access key"),
])
def test_a_secret_is_found_by_its_shape(run_dir, tmp_path, monkeypatch, where, text, kind):
    """None of these is set in the environment (RUNPOD_API_KEY is unset): the shape alone refuses."""
    for var in hub.stage.SECRET_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    (run_dir / where).write_text(text)
    name = Path(where).name
    with pytest.raises(ValueError, match=rf"refusing to upload: .*{re.escape(name)} \({re.escape(kind)}\)"):
        hub.push_adapter(run_dir, REPO_ID, dry_run=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    api = FakeApi()
    with pytest.raises(ValueError, match="refusing to upload"):
        hub.push_adapter(run_dir, REPO_ID, api=api)
    assert api.calls == []


def test_hex_digests_and_key_names_alone_are_not_secrets(run_dir, tmp_path):
    """A sha256, a commit id or a wandb run id is not a key: the scan must not cry wolf."""
    cfg = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**cfg, "commit": HEX40, "sha256": HEX40 + HEX40[:24],
                                                     "wandb_project": "mrgrpo", "wandb_run_id": "3xk9z2",
                                                     "note": "BEGIN PUBLIC KEY, hf_short, rpa_"}))
    res = hub.push_adapter(run_dir, REPO_ID, dry_run=tmp_path / "out")
    assert "training/config.json" in res.files


def test_a_secret_set_in_the_environment_is_found_in_any_file(run_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "my-own-wandb-secret-value")
    (run_dir / "adapter" / "adapter_model.safetensors").write_bytes(b"\0" * 8 + b"my-own-wandb-secret-value")
    with pytest.raises(ValueError, match=r"adapter_model.safetensors \(a token or key set in this environment\)"):
        hub.push_adapter(run_dir, REPO_ID, dry_run=tmp_path / "out")
