"""The RunPod runner against real parts on loopback.

A fake RunPod REST API (``tests/fake_runpod.py``, a real HTTP server) and a real
OpenSSH ``sshd`` started here on 127.0.0.1 with throwaway keys stand in for the
pod. Every case ends by checking the fake server's state: no pod left behind.
"""
from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fake_runpod import FakeRunPod
from mrgrpo.ops.cloud import runpod as rp
from mrgrpo.ops.cloud import ssh as rssh

API_KEY = "rp_TESTKEY_5f1d2c9e8b7a6f5e4d3c2b1a0"
REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- sshd
def _free_port() -> int:
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
    port = _free_port()
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
    return {"repo": repo, "remote": tmp_path / "pod" / "work", "local": tmp_path / "local"}


class Capture:
    def __init__(self):
        self.logs: list[str] = []
        self.lines: list[str] = []


def make_runner(fake, dirs, cap: Capture, *, gpus=("NVIDIA H100 PCIe",), cap_s=30.0,
                ready_timeout=5.0, retries=2, sleeps=None, on_line=None, http_timeout=5.0,
                key_path=None):
    client = rp.RunPodClient(API_KEY, fake.url, timeout=http_timeout, max_retries=retries,
                             backoff=0.01, max_backoff=0.05,
                             sleep=(sleeps.append if sleeps is not None else time.sleep),
                             log=cap.logs.append)

    def line(text):
        cap.lines.append(text)
        if on_line:
            on_line(text)

    return rp.PodRunner(client, rp.PodSpec(gpu_types=gpus, disk_gb=20), cap_s=cap_s,
                        key_path=key_path, ssh_user=getpass.getuser(), remote_dir=str(dirs["remote"]),
                        ready_timeout=ready_timeout, poll_interval=0.05, ssh_connect_timeout=5,
                        download_grace_s=10, log=cap.logs.append, on_line=line)


def assert_no_pod_left(fake: FakeRunPod, created: int | None = None) -> dict:
    state = fake.state()
    print("fake RunPod state:", state)   # shown with -s / on failure; quoted in the report
    assert state["live_pods"] == [], state
    assert sorted(state["deleted"]) == sorted(state["created"]), state
    if created is not None:
        assert len(state["created"]) == created, state
    return state


def assert_no_key(*texts: str) -> None:
    for t in texts:
        assert API_KEY not in t


# ----------------------------------------------------------------------------- cases
def test_happy_path_uploads_runs_streams_downloads_and_deletes(fake, dirs):
    fake.available_gpus = {"NVIDIA A100 80GB PCIe"}        # first preference is sold out
    cap = Capture()
    runner = make_runner(fake, dirs, cap, gpus=("NVIDIA H100 PCIe", "NVIDIA A100 80GB PCIe"))
    command = ("echo started; cat chapters/tier2.md; test -e .env || echo no-dotenv; "
               "test -e .git || echo no-git; mkdir -p chapters/runs runs; "
               "echo nb > chapters/runs/tier2_gpu.ipynb; echo '{\"r\": 1}' > runs/metrics.json; "
               "echo done")
    result = runner.run(command, upload_dir=dirs["repo"], setup="echo setup-ok",
                        download=["chapters/runs", "runs", "missing_dir"], local_dir=dirs["local"])
    assert result.exit_code == 0
    assert result.gpu_type == "NVIDIA A100 80GB PCIe"
    assert cap.lines == ["setup-ok", "started", "# Tier 2", "no-dotenv", "no-git", "done"]
    assert (dirs["local"] / "chapters" / "runs" / "tier2_gpu.ipynb").read_text() == "nb\n"
    assert (dirs["local"] / "runs" / "metrics.json").read_text() == '{"r": 1}\n'
    assert sorted(result.downloaded) == ["chapters/runs/tier2_gpu.ipynb", "runs/metrics.json"]
    assert result.log_path.parent == dirs["local"] / "runs" and result.log_path.name.startswith("cloud-")
    assert result.log_path.read_text().splitlines() == cap.lines
    assert not (dirs["remote"] / ".env").exists() and (dirs["remote"] / "pkg" / "__init__.py").exists()
    # the preference list was tried in order, one type per request, with our key as PUBLIC_KEY
    bodies = fake.create_bodies
    assert [b["gpuTypeIds"] for b in bodies] == [["NVIDIA H100 PCIe"], ["NVIDIA A100 80GB PCIe"]]
    assert bodies[1]["ports"] == ["22/tcp"] and bodies[1]["env"]["PUBLIC_KEY"].startswith("ssh-ed25519 ")
    assert API_KEY not in str(bodies)
    # cost: rate from the pod's costPerHr, before (cap bound) and after (elapsed)
    assert result.cost_per_hr == pytest.approx(1.64)
    assert result.max_cost_usd == pytest.approx(1.64 * 30 / 3600)
    assert 0 < result.cost_usd < result.max_cost_usd
    assert any("cap bounds the cost" in m for m in cap.logs)
    assert any("estimated cost" in m for m in cap.logs)
    assert result.deleted
    assert_no_pod_left(fake, created=1)


def test_create_fails_for_every_gpu_type(fake, dirs):
    fake.fail_create = (400, "There are no longer any instances available")
    cap = Capture()
    runner = make_runner(fake, dirs, cap, gpus=("NVIDIA H100 PCIe", "NVIDIA H100 80GB HBM3"))
    with pytest.raises(rp.RunPodError, match="any GPU type") as info:
        runner.run("echo never", download=[], local_dir=dirs["local"])
    msg = str(info.value)
    assert "NVIDIA H100 PCIe" in msg and "NVIDIA H100 80GB HBM3" in msg and "HTTP 400" in msg
    assert info.value.result.pod_id is None
    state = assert_no_pod_left(fake, created=0)
    assert state["requests"].count("POST /v1/pods -> 400") == 2   # 4xx: not retried


def test_unauthorized_key_stops_at_once(fake, dirs):
    cap = Capture()
    client = rp.RunPodClient("wrong-key", fake.url, max_retries=3, sleep=lambda s: None)
    runner = rp.PodRunner(client, rp.PodSpec(gpu_types=("NVIDIA H100 PCIe", "NVIDIA A100 80GB PCIe")),
                          log=cap.logs.append, poll_interval=0.05)
    with pytest.raises(rp.RunPodHTTPError, match="HTTP 401") as info:
        runner.run("true", download=[], local_dir=dirs["local"])
    assert "wrong-key" not in str(info.value)
    state = assert_no_pod_left(fake, created=0)
    assert state["requests"].count("POST /v1/pods -> 401") == 1


def test_pod_never_ready_times_out_and_is_deleted(fake, dirs):
    fake.never_ready = True
    cap = Capture()
    runner = make_runner(fake, dirs, cap, ready_timeout=0.5)
    t = time.monotonic()
    with pytest.raises(rp.PodNotReadyError, match="not ready after") as info:
        runner.run("echo never", download=[], local_dir=dirs["local"])
    assert time.monotonic() - t < 5
    assert info.value.result.pod_id is not None
    state = assert_no_pod_left(fake, created=1)
    assert f"DELETE /v1/pods/{info.value.result.pod_id} -> 204" in state["requests"]


def test_ssh_never_answers_is_not_ready(fake, dirs):
    fake.ssh_port = _free_port()            # RUNNING, but nothing listens on that port
    cap = Capture()
    runner = make_runner(fake, dirs, cap, ready_timeout=1.0)
    with pytest.raises(rp.PodNotReadyError, match="ssh .* never answered"):
        runner.run("echo never", download=[], local_dir=dirs["local"])
    assert_no_pod_left(fake, created=1)


def test_command_fails_results_still_downloaded(fake, dirs):
    cap = Capture()
    runner = make_runner(fake, dirs, cap)
    with pytest.raises(rp.RemoteCommandError, match="exit code 3") as info:
        runner.run("mkdir -p runs && echo half > runs/partial.txt && echo boom >&2 && exit 3",
                   download=["runs"], local_dir=dirs["local"])
    assert info.value.exit_code == 3
    assert info.value.result.downloaded == ["runs/partial.txt"]
    assert (dirs["local"] / "runs" / "partial.txt").read_text() == "half\n"
    assert "boom" in cap.lines                                  # stderr is streamed too
    assert_no_pod_left(fake, created=1)


def test_wall_clock_cap_kills_command_and_deletes_pod(fake, dirs):
    cap = Capture()
    runner = make_runner(fake, dirs, cap, cap_s=3.0)
    t = time.monotonic()
    with pytest.raises(rp.WallClockCapError, match="cap of 3 s") as info:
        runner.run("mkdir -p runs; echo part > runs/p.txt; echo started; sleep 60",
                   download=["runs"], local_dir=dirs["local"])
    assert time.monotonic() - t < 15
    assert "started" in cap.lines
    assert info.value.result.downloaded == ["runs/p.txt"]       # partial results come back
    assert_no_pod_left(fake, created=1)
    assert_remote_command_dead(dirs)


def _pid_alive(pid: int) -> bool:
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
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(pid), "the remote command should have been killed too"


def test_keyboard_interrupt_mid_run_deletes_pod(fake, dirs):
    def interrupt(line):
        if line == "started":
            raise KeyboardInterrupt

    cap = Capture()
    runner = make_runner(fake, dirs, cap, on_line=interrupt)
    with pytest.raises(KeyboardInterrupt):
        runner.run("echo started; sleep 60", download=["runs"], local_dir=dirs["local"])
    assert any("interrupted" in m for m in cap.logs)
    assert_no_pod_left(fake, created=1)
    assert_remote_command_dead(dirs)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_to_cli_process_deletes_pod(fake, dirs, sshd, sig):
    env = {**os.environ, "RUNPOD_API_KEY": API_KEY, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "mrgrpo", "cloud", "run", "--api-url", fake.url,
           "--gpu", "NVIDIA H100 PCIe", "--cap", "60", "--no-upload", "--poll", "0.05",
           "--ready-timeout", "10", "--remote-dir", str(dirs["remote"]),
           "--local-dir", str(dirs["local"]), "--ssh-key", str(sshd["client_key"]),
           "--ssh-user", getpass.getuser(), "--env-file", str(dirs["repo"] / "none.env"),
           "--", "echo started; sleep 60"]
    # A shell starts background jobs with SIGINT ignored, and Python then installs no
    # KeyboardInterrupt handler; start the CLI as a terminal would, whatever launched pytest.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            cwd=dirs["repo"], preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 20
        seen = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline().decode()
            seen.append(line)
            if line.strip() == "started" or not line:
                break
        if "started\n" not in seen:
            proc.kill()
            pytest.fail(f"no 'started' line; stdout {seen}, stderr {proc.communicate()[1].decode()}")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = err.decode()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "deleted" in err
    assert_no_key(err, out.decode(), "".join(seen))
    assert_no_pod_left(fake, created=1)


def test_http_500_then_success_retries_with_backoff(fake, dirs):
    fake.fail_next = [500, 503]
    fake.fail_paths = ["POST /v1/pods"]
    cap, sleeps = Capture(), []
    runner = make_runner(fake, dirs, cap, retries=3, sleeps=sleeps)
    result = runner.run("echo ok", download=[], local_dir=dirs["local"])
    assert result.exit_code == 0 and cap.lines == ["ok"]
    assert sleeps[:2] == [0.01, 0.02]                          # exponential backoff
    assert sum("retry" in m for m in cap.logs) == 2
    state = assert_no_pod_left(fake, created=1)
    assert state["requests"][:3] == ["POST /v1/pods -> 500", "POST /v1/pods -> 503",
                                     "POST /v1/pods -> 201"]


def test_http_500_on_delete_is_retried(fake, dirs):
    fake.fail_next = [500, 502]
    fake.fail_paths = ["DELETE /v1/pods/"]
    cap = Capture()
    runner = make_runner(fake, dirs, cap, retries=3)
    runner.run("true", download=[], local_dir=dirs["local"])
    state = assert_no_pod_left(fake, created=1)
    assert [r.split(" -> ")[1] for r in state["requests"] if r.startswith("DELETE")] == ["500", "502", "204"]


def test_retries_are_bounded(fake, dirs):
    fake.fail_next = [500] * 50
    cap, sleeps = Capture(), []
    client = rp.RunPodClient(API_KEY, fake.url, max_retries=2, backoff=1.0, max_backoff=1.5,
                             sleep=sleeps.append, log=cap.logs.append)
    with pytest.raises(rp.RunPodHTTPError, match="after 3 attempts: HTTP 500") as info:
        client.get_pod("abc")
    assert info.value.status == 500
    assert sleeps == [1.0, 1.5]                                 # capped by max_backoff
    assert len(fake.log) == 3


def test_slow_create_answer_lost_orphan_pod_is_swept(fake, dirs):
    # The first POST is answered after the client's timeout: the pod exists on the
    # server but the client never learns its id. The retry creates a second pod.
    # Teardown must delete both (it sweeps pods carrying the run's unique name).
    fake.delay_s, fake.delay_paths, fake.delay_count = 0.6, ["POST /v1/pods"], 1
    cap = Capture()
    runner = make_runner(fake, dirs, cap, http_timeout=0.3, retries=2)
    result = runner.run("sleep 0.5; echo ok", download=[], local_dir=dirs["local"])
    assert result.exit_code == 0
    assert any("network error" in m and "retry" in m for m in cap.logs)
    assert_no_pod_left(fake, created=2)


def test_api_key_never_in_logs_or_exceptions(fake, dirs, capsys, monkeypatch):
    fake.echo_auth_in_errors = True      # the server puts the Authorization header in its errors
    fake.fail_create = (500, "internal error")
    cap = Capture()
    runner = make_runner(fake, dirs, cap, gpus=("NVIDIA H100 PCIe",), retries=1)
    with pytest.raises(rp.RunPodError) as info:
        runner.run("echo never", download=[], local_dir=dirs["local"])
    text = str(info.value)
    assert "Bearer ***" in text                                 # the echo happened, masked
    out = capsys.readouterr()
    assert_no_key(text, repr(info.value), "\n".join(cap.logs), out.out, out.err, repr(runner.client))
    assert_no_key(*(str(e) for e in [info.value.__cause__, info.value.__context__] if e))
    assert_no_pod_left(fake, created=0)


def test_load_api_key_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    env = tmp_path / ".env"
    env.write_text('# comment\nexport RUNPOD_API_KEY="from-file"\nOTHER=1\n')
    assert rp.load_api_key(None, env) == "from-file"
    monkeypatch.setenv("RUNPOD_API_KEY", "from-env")
    assert rp.load_api_key(None, env) == "from-env"
    assert rp.load_api_key("explicit", env) == "explicit"
    monkeypatch.delenv("RUNPOD_API_KEY")
    with pytest.raises(rp.RunPodError, match="no RunPod API key"):
        rp.load_api_key(None, tmp_path / "missing.env")


def test_bad_inputs_are_clear():
    with pytest.raises(ValueError, match="gpu_types"):
        rp.PodSpec(gpu_types=())
    with pytest.raises(ValueError, match="cloud_type"):
        rp.PodSpec(cloud_type="CHEAP")
    client = rp.RunPodClient(API_KEY, "http://127.0.0.1:9")
    with pytest.raises(ValueError, match="cap_s"):
        rp.PodRunner(client, cap_s=0)
    with pytest.raises(ValueError, match="empty"):
        rp.PodRunner(client).run("  ")


def test_ssh_helpers_direct(sshd, tmp_path):
    target = rssh.SSHTarget("127.0.0.1", sshd["port"], getpass.getuser(), sshd["client_key"],
                            tmp_path / "known_hosts", connect_timeout=5)
    assert rssh.wait_reachable(target, time.monotonic() + 5, 0.05)
    res = rssh.run(target, "echo $((6*7))", timeout=10)
    assert res.returncode == 0 and res.stdout == b"42\n"
    with pytest.raises(ValueError, match="relative"):
        rssh.download(target, str(tmp_path), ["../etc"], tmp_path / "x", timeout=5)


def test_missing_upload_folder_fails_before_renting(fake, dirs):
    runner = make_runner(fake, dirs, Capture())
    with pytest.raises(FileNotFoundError, match="upload folder"):
        runner.run("true", upload_dir=dirs["repo"] / "nope", local_dir=dirs["local"])
    assert fake.state()["requests"] == []
