"""The cloud transfers: a hostile pod's tar stream writes only what was asked for, and an
upload leaves dotfiles and secrets behind. A stand-in ``ssh`` on PATH replays a prepared
stream, so no sshd is needed here (the end-to-end runs are in test_cloud_runpod.py)."""
from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from mrgrpo.ops.cloud import transfer
from mrgrpo.ops.cloud.ssh import SSHTarget


def _member(name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, link: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, io.BytesIO(data) if kind == tarfile.REGTYPE else None


def hostile_stream() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in [
            _member("runs", kind=tarfile.DIRTYPE),
            _member("runs/metrics.json", b'{"ok": 1}'),
            _member("./runs/seed0/eval.csv", b"step\n1\n"),
            _member("Makefile", b"pwned"),                                # not asked for
            _member("mrgrpo/__init__.py", b"pwned"),
            _member(".venv/bin/activate", b"pwned"),
            _member("runs2/x.txt", b"pwned"),                             # a prefix, not a folder
            _member("runs/../Makefile", b"pwned"),
            _member("/tmp/mrgrpo-abs-pwned", b"pwned"),
            _member("runs/link", kind=tarfile.SYMTYPE, link="../Makefile"),
            _member("runs/link", b"written through the link"),            # follows the link
            _member("runs/hard", kind=tarfile.LNKTYPE, link="Makefile"),
            _member("runs/dev", kind=tarfile.CHRTYPE),
        ]:
            tar.addfile(info, data)
    return buf.getvalue()


@pytest.fixture
def fake_ssh(tmp_path, monkeypatch):
    """An ``ssh`` that answers the existence check with the requested paths and the tar
    command with a prepared stream."""
    stream = tmp_path / "stream.tgz"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "ssh"
    script.write_text("#!/bin/sh\n"
                      'for last; do :; done\n'
                      'case "$last" in *"tar -czf"*) cat "' + str(stream) + '" ;; '
                      "*) printf 'runs\\n' ;; esac\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    target = SSHTarget("pod", 22, "root", tmp_path / "key", tmp_path / "known_hosts")
    return stream, target


def test_hostile_tar_writes_only_the_requested_paths(fake_ssh, tmp_path):
    stream, target = fake_ssh
    stream.write_bytes(hostile_stream())
    local = tmp_path / "local"
    local.mkdir()
    (local / "Makefile").write_text("ours\n")
    report = transfer.download(target, "/workspace/x", ["runs"], local, timeout=30, progress=False)
    written = sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file() or p.is_symlink())
    assert written == ["Makefile", "runs/link", "runs/metrics.json", "runs/seed0/eval.csv"]
    assert (local / "Makefile").read_text() == "ours\n"
    assert not (local / "runs" / "link").is_symlink()          # a plain file, not through a link
    assert sorted(report.files) == ["runs/link", "runs/metrics.json", "runs/seed0/eval.csv"]
    refused = "\n".join(report.left_out)
    for name in ("Makefile (outside", "mrgrpo/__init__.py (outside", ".venv/bin/activate (outside",
                 "runs2/x.txt (outside", "runs/../Makefile (absolute or '..'",
                 "/tmp/mrgrpo-abs-pwned (absolute", "runs/link (not a regular", "runs/hard (not a regular",
                 "runs/dev (not a regular"):
        assert name in refused, (name, refused)
    assert not Path("/tmp/mrgrpo-abs-pwned").exists()


def test_a_link_already_in_the_local_folder_is_not_followed(fake_ssh, tmp_path):
    stream, target = fake_ssh
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.addfile(*_member("runs/escape.txt", b"pwned"))
    stream.write_bytes(buf.getvalue())
    outside = tmp_path / "outside"
    outside.mkdir()
    local = tmp_path / "local"
    local.mkdir()
    (local / "runs").symlink_to(outside)            # a local folder the user already had
    report = transfer.download(target, "/w", ["runs"], local, timeout=30, progress=False)
    assert not (outside / "escape.txt").exists()
    assert report.files == [] and "data filter" in report.left_out[0]


def test_download_paths_must_be_relative():
    target = SSHTarget("pod", 22, "root", Path("k"), Path("kh"))
    for bad in ("../etc", "/etc", ".", "runs/../../x", ""):
        with pytest.raises(ValueError, match="download path"):
            transfer.download(target, "/w", [bad], "x", timeout=1)


def test_requested_member_rules():
    def ok(name, kind=tarfile.REGTYPE, requested=("runs", "chapters/runs")):
        info = tarfile.TarInfo(name)
        info.type = kind
        return transfer.requested_member(info, requested) is None

    assert ok("runs", tarfile.DIRTYPE) and ok("runs")
    assert ok("runs/a/b.json") and ok("./runs/a") and ok("chapters/runs/x.ipynb")
    assert not ok("runsX/a") and not ok("chapters/runs2/x") and not ok("chapters/x.md")
    assert not ok("runs/x", tarfile.SYMTYPE) and not ok("runs/x", tarfile.FIFOTYPE)


# ----------------------------------------------------------------------------- upload
SECRETS = [".env", ".env.local", ".env.production", ".envrc", ".netrc", "_netrc", "secrets.env",
           "my_secret.txt", "prod.env", "id_rsa", "id_rsa.pub", "id_ed25519", "server.pem",
           "tls.key", "cert.p12", ".git-credentials", ".pypirc", ".npmrc", "credentials.json",
           "SECRETS.yaml", "terraform.tfvars"]
KEPT = ["main.py", "pyproject.toml", "chapters/tier2.md", "data/tiny-math/tokenizer.json",
        "mrgrpo/ops/cloud/keys.py", "environment.yml", "README.md"]


def test_upload_leaves_dotfiles_and_secrets_behind(tmp_path):
    repo = tmp_path / "repo"
    for rel in KEPT + SECRETS + [f"sub/deeper/{n}" for n in SECRETS] + [
            ".git/config", ".venv/bin/python", ".aws/credentials", ".ssh/id_rsa",
            "mrgrpo/__pycache__/x.pyc", "runs/old/metrics.json", "cloud-runs/mrgrpo-1/x"]:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text("x")
    (repo / "data" / "linked").symlink_to(repo / "chapters")   # a linked folder: sent as a link
    report = transfer.upload_listing(repo, transfer.DEFAULT_EXCLUDES + transfer.SECRET_PATTERNS)
    assert sorted(report.files) == sorted(KEPT + ["data/linked"])
    left = set(report.left_out)
    assert {*SECRETS, *(f"sub/deeper/{n}" for n in SECRETS)} <= left
    assert {".git/", ".venv/", ".aws/", ".ssh/", "runs/", "cloud-runs/", "mrgrpo/__pycache__/"} <= left
