"""Shared parts of the cloud tests: a real sshd on loopback, the fake RunPod v2 API, a
small repo to upload, and the no-leak checks every scenario ends with.

Test modules load the fixtures with ``pytest_plugins = ["cloud_support"]``.
"""
from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from fake_runpod import FakeRunPod
from mrgrpo.ops import cloud as rp

API_KEY = "rp_TESTKEY_5f1d2c9e8b7a6f5e4d3c2b1a0"
REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- sshd
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A real sshd on 127.0.0.1:<free port>, non-daemon, with throwaway keys."""
    sshd_bin = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
    keygen = shutil.which("ssh-keygen")
    if sshd_bin is None or keygen is None or shutil.which("ssh") is None:
        pytest.fail("OpenSSH server/client not found (need sshd, ssh, ssh-keygen): run "
                    "`sudo scripts/ensure_sshd.sh` (apt-get install openssh-server openssh-client)")
    d = tmp_path_factory.mktemp("sshd")
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(d / "client_key")], check=True)
    auth = d / "authorized_keys"
    auth.write_text((d / "client_key.pub").read_text())
    auth.chmod(0o600)
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege-separation dir
    port = free_port()
    config = d / "sshd_config"
    config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d / 'host_key'}
AuthorizedKeysFile {auth}
PidFile {d / 'sshd.pid'}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
PrintMotd no
""")
    log = open(d / "sshd.log", "wb")
    proc = subprocess.Popen([sshd_bin, "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while True:
        if proc.poll() is not None:
            log.close()
            pytest.fail(f"sshd exited with {proc.returncode}: {(d / 'sshd.log').read_text()[-1000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("sshd did not start listening within 10 s")
            time.sleep(0.05)
    yield {"port": port, "dir": d, "authorized_keys": auth, "client_key": d / "client_key"}
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


@pytest.fixture
def fake(sshd):
    server = FakeRunPod(API_KEY, ssh_port=sshd["port"], authorized_keys=sshd["authorized_keys"])
    server.start()
    yield server
    server.stop()


@pytest.fixture
def dirs(tmp_path):
    """A small repo tree to upload, a remote working dir (the "pod"), a local results dir."""
    repo = tmp_path / "repo"
    (repo / "chapters").mkdir(parents=True)
    (repo / "pkg").mkdir()
    (repo / ".git").mkdir()
    (repo / "chapters" / "tier2.md").write_text("# Tier 2\n")
    (repo / "pkg" / "__init__.py").write_text("x = 1\n")
    (repo / ".git" / "config").write_text("[core]\n")
    (repo / ".env").write_text(f"RUNPOD_API_KEY={API_KEY}\n")
    for secret in (".env.local", ".envrc", ".netrc", "secrets.env", "id_rsa", "server.pem",
                   ".git-credentials"):
        (repo / secret).write_text("secret\n")
    return {"repo": repo, "remote": tmp_path / "pod" / "work", "local": tmp_path / "local"}


class Capture:
    def __init__(self):
        self.logs: list[str] = []
        self.lines: list[str] = []


def make_runner(fake, dirs, cap: Capture, *, gpus=("NVIDIA H100 PCIe",), cap_s=30.0,
                ready_timeout=5.0, retries=2, sleeps=None, on_line=None, http_timeout=5.0,
                key_path=None, env=None):
    client = rp.RunPodClient(API_KEY, fake.url, timeout=http_timeout, max_retries=retries,
                             backoff=0.01, max_backoff=0.05,
                             sleep=(sleeps.append if sleeps is not None else time.sleep),
                             log=cap.logs.append)

    def line(text):
        cap.lines.append(text)
        if on_line:
            on_line(text)

    return rp.PodRunner(client, rp.PodSpec(gpu_types=gpus, disk_gb=20, env=env or {}), cap_s=cap_s,
                        key_path=key_path, ssh_user=getpass.getuser(), remote_dir=str(dirs["remote"]),
                        ready_timeout=ready_timeout, poll_interval=0.05, ssh_connect_timeout=5,
                        download_grace_s=10, log=cap.logs.append, on_line=line, progress=False)


def assert_no_pod_left(fake: FakeRunPod, created: int | None = None) -> dict:
    state = fake.state()
    print("fake RunPod state:", state)   # shown with -s / on failure; quoted in the report
    assert state["live_pods"] == [], state
    assert fake.rejected == [], fake.rejected                  # every body met the v2 contract
    assert all(r.split()[1].startswith("/v2/pods") and not r.endswith("-> 405")
               for r in state["requests"]), state               # only the v2 routes it knows
    assert sorted(state["deleted"]) == sorted(state["created"]), state
    if created is not None:
        assert len(state["created"]) == created, state
    return state


def assert_no_key(*texts: str) -> None:
    for t in texts:
        assert API_KEY not in t


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie still answers kill(0); check its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def assert_remote_command_dead(dirs):
    """The wrapper recorded its pid on the "pod"; it must be gone (killed, not left running)."""
    pid = int((dirs["remote"] / ".mrgrpo-cloud.pid").read_text())
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid), "the remote command should have been killed too"


