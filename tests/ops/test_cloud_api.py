"""The RunPod v2 client and the ``mrgrpo cloud`` command: retries, rate limits, the
retired v1 API, the API key's sources, input checks and one-line CLI errors."""
from __future__ import annotations

import getpass
import time

import pytest

pytest.register_assert_rewrite("cloud_support")
from cloud_support import API_KEY, Capture, assert_no_pod_left
from mrgrpo.cli import main
from mrgrpo.ops import cloud as rp
from mrgrpo.ops.cloud import ssh as rssh

pytest_plugins = ["cloud_support"]  # the sshd, fake and dirs fixtures


def test_rate_limit_waits_for_retry_after(fake, dirs):
    fake.fail_next, fake.fail_paths, fake.retry_after = [429], ["GET /v2/pods/"], 3
    sleeps = []
    client = rp.RunPodClient(API_KEY, fake.url, max_retries=2, backoff=0.01, max_backoff=5,
                             sleep=sleeps.append)
    assert client.get_pod("nope") is None
    assert sleeps == [3.0]
    assert [r.split(" -> ")[1] for r in fake.state()["requests"]] == ["429", "404"]


def test_retries_are_bounded(fake, dirs):
    fake.fail_next = [500] * 50
    cap, sleeps = Capture(), []
    client = rp.RunPodClient(API_KEY, fake.url, max_retries=2, backoff=1.0, max_backoff=1.5,
                             sleep=sleeps.append, log=cap.logs.append)
    with pytest.raises(rp.RunPodHTTPError, match="after 3 attempts: HTTP 500") as info:
        client.get_pod("abc")
    assert info.value.status == 500 and info.value.title == "Internal Server Error"
    assert sleeps == [1.0, 1.5]                                 # capped by max_backoff
    assert len(fake.log) == 3


def test_retired_v1_api_is_refused_with_a_message(capsys, monkeypatch):
    for url in ("https://rest.runpod.io/v1", "http://127.0.0.1:9/v1/"):
        with pytest.raises(rp.RunPodError, match="retired on 2026-11-15"):
            rp.RunPodClient(API_KEY, url)
    monkeypatch.setenv("RUNPOD_API_KEY", API_KEY)
    assert main(["cloud", "run", "--api-url", "https://rest.runpod.io/v1", "--", "true"]) == 1
    err = capsys.readouterr().err
    assert "retired" in err and "https://api.runpod.io/v2" in err and "Traceback" not in err
    assert rp.DEFAULT_BASE_URL == "https://api.runpod.io/v2"


def test_cli_without_a_command_names_the_subcommand(capsys, monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", API_KEY)
    assert main(["cloud", "run", "--gpu", "NVIDIA H100 PCIe"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mrgrpo cloud run: error: no command given") and "[]" not in err


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
    with pytest.raises(ValueError, match="volume_gb"):
        rp.PodSpec(volume_gb=5)
    with pytest.raises(ValueError, match="PUBLIC_KEY"):
        rp.PodSpec(env={"PUBLIC_KEY": "ssh-ed25519 A"})
    with pytest.raises(ValueError, match="cuda_versions"):
        rp.PodSpec(cuda_versions=("12",))
    assert rp.PodSpec(gpu_types="NVIDIA H100 PCIe").gpu_types == ("NVIDIA H100 PCIe",)
    client = rp.RunPodClient(API_KEY, "http://127.0.0.1:9/v2")
    with pytest.raises(ValueError, match="cap_s"):
        rp.PodRunner(client, cap_s=0)
    with pytest.raises(ValueError, match="empty"):
        rp.PodRunner(client).run("  ")
    with pytest.raises(ValueError, match="list of paths"):
        rp.PodRunner(client).run("true", download="runs")
    with pytest.raises(ValueError, match="download path '../x'"):          # before renting
        rp.PodRunner(client).run("true", download=["runs", "../x"])


def test_ssh_helpers_direct(sshd, tmp_path):
    target = rssh.SSHTarget("127.0.0.1", sshd["port"], getpass.getuser(), sshd["client_key"],
                            tmp_path / "known_hosts", connect_timeout=5)
    assert rssh.wait_reachable(target, time.monotonic() + 5, 0.05)
    res = rssh.run(target, "echo $((6*7))", timeout=10)
    assert res.returncode == 0 and res.stdout == b"42\n"


def test_cli_reports_a_pod_in_error_in_one_line(fake, dirs, sshd, capsys, monkeypatch):
    fake.error_after_polls = 1
    monkeypatch.setenv("RUNPOD_API_KEY", API_KEY)
    code = main(["cloud", "run", "--api-url", fake.url, "--gpu", "NVIDIA H100 PCIe", "--no-upload",
                 "--poll", "0.05", "--local-dir", str(dirs["local"]),
                 "--env-file", str(dirs["repo"] / "none.env"), "--", "true"])
    err = capsys.readouterr().err
    assert code == 1
    assert "mrgrpo cloud run: error: pod" in err and "ERROR" in err and "Traceback" not in err
    assert_no_pod_left(fake, created=1)
