"""The RunPod runner against real parts on loopback.

A fake RunPod REST API v2 (``tests/fake_runpod.py``, a real HTTP server that checks
every create body against RunPod's ``CreatePodRequest``) and a real OpenSSH ``sshd``
started on 127.0.0.1 with throwaway keys (``tests/cloud_support.py``) stand in for the
pod. Every case ends by checking the fake server's state: no pod left behind.
"""
from __future__ import annotations

import getpass
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.register_assert_rewrite("cloud_support")
from cloud_support import (API_KEY, REPO, Capture, assert_no_key, assert_no_pod_left,
                           assert_remote_command_dead, free_port, make_runner)
from mrgrpo.ops import cloud as rp


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
    assert result.refused == []
    assert result.log_path == dirs["local"] / f"cloud-{result.pod_name}.log"
    assert result.log_path.read_text().splitlines() == cap.lines
    assert (dirs["remote"] / "pkg" / "__init__.py").exists()
    # the v2 create body: one GPU type per request, in order, with our key as PUBLIC_KEY
    bodies = fake.create_bodies
    assert [b["gpu"] for b in bodies] == [{"id": "NVIDIA H100 PCIe", "count": 1},
                                          {"id": "NVIDIA A100 80GB PCIe", "count": 1}]
    assert bodies[1]["ports"] == ["22/tcp"] and bodies[1]["startSsh"] is True
    assert bodies[1]["env"]["PUBLIC_KEY"].startswith("ssh-ed25519 ")
    assert bodies[1]["name"] == result.pod_name and bodies[1]["disk"] == 20
    assert API_KEY not in str(bodies)
    # the pod went PROVISIONING -> STARTING -> RUNNING before ssh was tried
    assert fake.served[result.pod_id][:3] == ["PROVISIONING", "STARTING", "RUNNING"]
    # cost: rate from the pod's `cost`, before (cap bound) and after (elapsed)
    assert result.cost_per_hr == pytest.approx(1.64)
    assert result.max_cost_usd == pytest.approx(1.64 * 30 / 3600)
    assert 0 < result.cost_usd < result.max_cost_usd
    assert any("cap bounds the cost" in m for m in cap.logs)
    assert any("estimated cost" in m for m in cap.logs)
    assert result.deleted
    assert_no_pod_left(fake, created=1)

pytest_plugins = ["cloud_support"]  # the sshd, fake and dirs fixtures


def test_upload_leaves_dotfiles_and_secret_files_behind(fake, dirs):
    cap = Capture()
    runner = make_runner(fake, dirs, cap)
    runner.run("ls -A", upload_dir=dirs["repo"], download=[], local_dir=dirs["local"])
    assert sorted(cap.lines) == [".mrgrpo-cloud.pid", "chapters", "pkg"]   # the runner's own pid file
    sent = sorted(p.name for p in dirs["remote"].iterdir() if p.name != ".mrgrpo-cloud.pid")
    assert sent == ["chapters", "pkg"]
    note = next(m for m in cap.logs if "left out" in m)
    for name in (".env", ".env.local", ".envrc", ".netrc", "secrets.env", "id_rsa", "server.pem",
                 ".git-credentials", ".git/"):
        assert name in note, note
    assert_no_pod_left(fake, created=1)


def test_default_local_folder_is_a_fresh_cloud_runs_folder(fake, dirs, monkeypatch):
    work = dirs["local"].parent / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    runner = make_runner(fake, dirs, Capture())
    result = runner.run("mkdir -p runs && echo 1 > runs/a.txt && echo 2 > Makefile", download=["runs"])
    assert result.local_dir == Path("cloud-runs") / result.pod_name
    assert sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file()) == [
        f"cloud-runs/{result.pod_name}/cloud-{result.pod_name}.log",
        f"cloud-runs/{result.pod_name}/runs/a.txt"]
    assert_no_pod_left(fake, created=1)


def test_create_fails_for_every_gpu_type(fake, dirs):
    fake.fail_create = (400, "There are no longer any instances available")
    cap = Capture()
    runner = make_runner(fake, dirs, cap, gpus=("NVIDIA H100 PCIe", "NVIDIA H100 80GB HBM3"))
    with pytest.raises(rp.RunPodError, match="any GPU type") as info:
        runner.run("echo never", download=[], local_dir=dirs["local"])
    msg = str(info.value)
    assert "NVIDIA H100 PCIe" in msg and "NVIDIA H100 80GB HBM3" in msg
    assert "HTTP 400: Bad Request: There are no longer any instances available" in msg  # RFC 9457
    assert info.value.result.pod_id is None
    state = assert_no_pod_left(fake, created=0)
    assert state["requests"].count("POST /v2/pods -> 400") == 2   # 4xx: not retried


def test_forbidden_pool_skips_to_the_next_gpu_type(fake, dirs):
    fake.fail_next, fake.fail_paths = [403], ["POST /v2/pods"]
    cap = Capture()
    runner = make_runner(fake, dirs, cap, gpus=("NVIDIA H100 PCIe", "NVIDIA A100 80GB PCIe"))
    result = runner.run("true", download=[], local_dir=dirs["local"])
    assert result.gpu_type == "NVIDIA A100 80GB PCIe"
    assert any("could not rent NVIDIA H100 PCIe" in m and "HTTP 403" in m for m in cap.logs)
    assert_no_pod_left(fake, created=1)


@pytest.mark.parametrize("status,why", [(402, "balance"), (422, "request body")])
def test_no_balance_or_bad_body_stops_at_once(fake, dirs, status, why):
    fake.fail_create = (status, "nope")
    runner = make_runner(fake, dirs, Capture(), gpus=("NVIDIA H100 PCIe", "NVIDIA A100 80GB PCIe"))
    with pytest.raises(rp.RunPodHTTPError, match=why) as info:
        runner.run("true", download=[], local_dir=dirs["local"])
    assert info.value.status == status and info.value.detail == "nope"
    state = assert_no_pod_left(fake, created=0)
    assert state["requests"] == [f"POST /v2/pods -> {status}", "GET /v2/pods -> 200"]  # + the sweep


def test_unauthorized_key_stops_at_once(fake, dirs):
    cap = Capture()
    client = rp.RunPodClient("wrong-key", fake.url, max_retries=3, sleep=lambda s: None)
    runner = rp.PodRunner(client, rp.PodSpec(gpu_types=("NVIDIA H100 PCIe", "NVIDIA A100 80GB PCIe")),
                          log=cap.logs.append, poll_interval=0.05)
    with pytest.raises(rp.RunPodHTTPError, match="HTTP 401") as info:
        runner.run("true", download=[], local_dir=dirs["local"])
    assert "wrong-key" not in str(info.value)
    state = assert_no_pod_left(fake, created=0)
    assert state["requests"].count("POST /v2/pods -> 401") == 1


def test_pod_never_ready_times_out_and_is_deleted(fake, dirs):
    fake.never_ready = True
    cap = Capture()
    runner = make_runner(fake, dirs, cap, ready_timeout=0.5)
    t = time.monotonic()
    with pytest.raises(rp.PodNotReadyError, match="not ready after .*status=STARTING") as info:
        runner.run("echo never", download=[], local_dir=dirs["local"])
    assert time.monotonic() - t < 5
    assert info.value.result.pod_id is not None
    state = assert_no_pod_left(fake, created=1)
    assert f"DELETE /v2/pods/{info.value.result.pod_id} -> 204" in state["requests"]


def test_pod_that_goes_to_error_is_deleted_with_a_clear_message(fake, dirs):
    fake.error_after_polls = 2
    cap = Capture()
    runner = make_runner(fake, dirs, cap)
    with pytest.raises(rp.PodFailedError, match="went to status ERROR while starting") as info:
        runner.run("echo never", download=[], local_dir=dirs["local"])
    assert info.value.status == "ERROR" and "--gpu" in str(info.value)
    pod_id = info.value.result.pod_id
    state = assert_no_pod_left(fake, created=1)
    assert state["requests"][-1] == f"DELETE /v2/pods/{pod_id} -> 204"
    assert any(f"pod {pod_id} deleted" in m for m in cap.logs)


def test_ssh_never_answers_is_not_ready(fake, dirs):
    fake.ssh_port = free_port()            # RUNNING, but nothing listens on that port
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
    fake.fail_paths = ["POST /v2/pods"]
    cap, sleeps = Capture(), []
    runner = make_runner(fake, dirs, cap, retries=3, sleeps=sleeps)
    result = runner.run("echo ok", download=[], local_dir=dirs["local"])
    assert result.exit_code == 0 and cap.lines == ["ok"]
    assert sleeps[:2] == [0.01, 0.02]                          # exponential backoff
    assert sum("retry" in m for m in cap.logs) == 2
    state = assert_no_pod_left(fake, created=1)
    assert state["requests"][:3] == ["POST /v2/pods -> 500", "POST /v2/pods -> 503",
                                     "POST /v2/pods -> 201"]


def test_http_500_on_delete_is_retried(fake, dirs):
    fake.fail_next = [500, 502]
    fake.fail_paths = ["DELETE /v2/pods/"]
    cap = Capture()
    runner = make_runner(fake, dirs, cap, retries=3)
    runner.run("true", download=[], local_dir=dirs["local"])
    state = assert_no_pod_left(fake, created=1)
    assert [r.split(" -> ")[1] for r in state["requests"] if r.startswith("DELETE")] == ["500", "502", "204"]


def test_slow_create_answer_lost_orphan_pod_is_swept(fake, dirs):
    # The first POST is answered after the client's timeout: the pod exists on the
    # server but the client never learns its id. The retry creates a second pod.
    # Teardown must delete both (it lists pods and deletes those carrying the run's name).
    fake.delay_s, fake.delay_paths, fake.delay_count = 0.6, ["POST /v2/pods"], 1
    cap = Capture()
    runner = make_runner(fake, dirs, cap, http_timeout=0.3, retries=2)
    result = runner.run("sleep 0.5; echo ok", download=[], local_dir=dirs["local"])
    assert result.exit_code == 0
    assert any("network error" in m and "retry" in m for m in cap.logs)
    state = assert_no_pod_left(fake, created=2)
    assert "GET /v2/pods -> 200" in state["requests"]


def test_other_pods_of_the_account_are_left_alone(fake, dirs):
    client = rp.RunPodClient(API_KEY, fake.url)
    other = client.create_pod(rp.PodSpec().body("NVIDIA H100 PCIe", "someone-elses", "ssh-ed25519 A x"))
    make_runner(fake, dirs, Capture()).run("true", download=[], local_dir=dirs["local"])
    assert fake.state()["live_pods"] == [other["id"]]
    client.delete_pod(other["id"])
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


def test_env_values_for_the_pod_are_masked_too(fake, dirs):
    token = "hf_PODSECRET_0123456789abcdef"
    cap = Capture()
    runner = make_runner(fake, dirs, cap, env={"HF_TOKEN": token})
    runner.run(f"echo token={token}", download=[], local_dir=dirs["local"])
    assert fake.create_bodies[0]["env"]["HF_TOKEN"] == token     # it reaches the pod
    assert cap.lines == ["token=***"]
    assert token not in "\n".join(cap.logs) + cap.lines[0]
    assert_no_pod_left(fake, created=1)


def test_missing_upload_folder_fails_before_renting(fake, dirs):
    runner = make_runner(fake, dirs, Capture())
    with pytest.raises(FileNotFoundError, match="upload folder"):
        runner.run("true", upload_dir=dirs["repo"] / "nope", local_dir=dirs["local"])
    assert fake.state()["requests"] == []
