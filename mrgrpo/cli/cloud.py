"""``mrgrpo cloud run``: run a command on a rented RunPod GPU, then delete the pod.

Example::

    export RUNPOD_API_KEY=...        # or put it in .env
    mrgrpo cloud run --gpu "NVIDIA H100 PCIe" --cap 1800 -- \\
        mrgrpo book run chapters/tier2.md -p model Qwen/Qwen2.5-1.5B-Instruct

Talks to RunPod's REST API v2 (https://api.runpod.io/v2). The upload leaves out
dotfiles (.env*, .envrc, .netrc, .git, ...) and files that look like secrets;
results come back into a fresh cloud-runs/<pod name>/ unless --local-dir is given.

Exit codes: 0 success; the command's own exit code when it fails on the pod;
124 when the wall-clock cap passed; 130 on Ctrl-C; 1 for other cloud errors.
"""
from __future__ import annotations

import argparse
import shlex
import sys

DEFAULT_SETUP = "python -m pip install -q -e '.[llm,book,data]'"


def register(subparsers) -> None:
    """Add ``cloud`` (and ``cloud run``) to the ``mrgrpo`` parser."""
    cloud = subparsers.add_parser("cloud", help="run a command on a rented RunPod GPU",
                                  description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = cloud.add_subparsers(dest="cloud_command", metavar="SUBCOMMAND")
    run = sub.add_parser(
        "run", help="create a pod, run COMMAND on it, download results, delete the pod",
        description="Create a RunPod pod, upload this repo, run COMMAND (after `--`), stream "
                    "its log, download results and always delete the pod.")
    run.add_argument("--gpu", action="append", default=None, metavar="TYPE",
                     help="RunPod GPU type id; repeat for a preference list "
                          "(default: H100 PCIe, H100 SXM, A100 80GB PCIe, A100 SXM)")
    run.add_argument("--gpu-count", type=int, default=1, help="GPUs per pod (default 1)")
    run.add_argument("--cap", type=float, default=1800.0, metavar="SECONDS",
                     help="wall-clock cap from pod creation to the end of COMMAND (default 1800)")
    run.add_argument("--image", default=None, help="container image (default: a RunPod PyTorch image)")
    run.add_argument("--disk", type=int, default=50, metavar="GB", help="container disk (default 50)")
    run.add_argument("--volume", type=int, default=0, metavar="GB",
                     help="persistent volume at /workspace (default 0: none; else >= 10)")
    run.add_argument("--cloud-type", choices=("SECURE", "COMMUNITY"), default="SECURE",
                     help="RunPod's cloud tier (default SECURE)")
    run.add_argument("--cuda", action="append", default=None, metavar="X.Y",
                     help="acceptable host CUDA version; repeatable (default: any)")
    run.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                     help="environment variable for the pod (repeatable; values are masked in logs)")
    run.add_argument("--download", default="chapters/runs,runs", metavar="PATHS",
                     help="comma-separated paths (relative to the remote dir) to bring back; "
                          "nothing else in the pod's archive is written (default: chapters/runs,runs)")
    run.add_argument("--upload", default=".", metavar="DIR",
                     help="local directory to upload (default: .; dotfiles, secrets, venvs and "
                          "caches are never sent)")
    run.add_argument("--no-upload", action="store_true", help="upload nothing")
    run.add_argument("--install", default=None, metavar="SPEC",
                     help="instead of uploading: `pip install SPEC` on the pod (implies --no-upload)")
    run.add_argument("--setup", default=None,
                     help=f"shell command run before COMMAND (default after an upload: {DEFAULT_SETUP!r}; "
                          "'' for none)")
    run.add_argument("--remote-dir", default=None,
                     help="working directory on the pod (default /workspace/mrgrpo-book)")
    run.add_argument("--local-dir", default=None,
                     help="where downloaded results and the log go (default: a fresh "
                          "cloud-runs/<pod name>/)")
    run.add_argument("--api-key", default=None,
                     help="RunPod API key (prefer RUNPOD_API_KEY or .env: arguments show in `ps`)")
    run.add_argument("--env-file", default=".env", help="file read for RUNPOD_API_KEY (default .env)")
    run.add_argument("--api-url", default=None,
                     help="RunPod REST API v2 base URL (default https://api.runpod.io/v2)")
    run.add_argument("--ssh-key", default=None,
                     help="SSH private key (with KEY.pub); default: a throwaway key for this run")
    run.add_argument("--ssh-user", default=None, help="login on the pod (default: the pod's ssh user)")
    run.add_argument("--ready-timeout", type=float, default=900.0, metavar="SECONDS",
                     help="wait for RUNNING + ssh at most this long (default 900)")
    run.add_argument("--poll", type=float, default=5.0, metavar="SECONDS",
                     help="poll interval (default 5)")
    run.add_argument("--http-timeout", type=float, default=30.0, metavar="SECONDS",
                     help="per API request (default 30)")
    run.add_argument("--retries", type=int, default=4,
                     help="retries per API call on 429/5xx/timeouts (default 4)")
    run.add_argument("--price-per-hour", type=float, default=None, metavar="USD",
                     help="known $/GPU-hour, to print a cost estimate before renting")
    run.add_argument("--no-progress", action="store_true", help="no upload/download progress bars")
    run.add_argument("remote_command", nargs=argparse.REMAINDER, metavar="COMMAND",
                     help="-- COMMAND [ARGS...]")
    run.set_defaults(func=handle_run)
    cloud.set_defaults(func=lambda args: (cloud.print_help(), 2)[1])


def _command_string(parts: list[str]) -> str:
    if parts and parts[0] == "--":
        parts = parts[1:]
    if not parts:
        raise ValueError("no command given: use `mrgrpo cloud run [options] -- COMMAND`")
    return parts[0] if len(parts) == 1 else shlex.join(parts)


def _env_pairs(items: list[str]) -> dict[str, str]:
    env = {}
    for item in items:
        if "=" not in item or not item.split("=", 1)[0]:
            raise ValueError(f"--env needs KEY=VALUE, got {item.split('=', 1)[0]!r}=...")
        key, value = item.split("=", 1)
        env[key] = value
    return env


def _fail(message: str, code: int = 1) -> int:
    print(f"mrgrpo cloud run: error: {message}", file=sys.stderr)
    return code


def handle_run(args: argparse.Namespace) -> int:
    """Check the options, rent a pod, run the command; return the exit code (see above)."""
    from mrgrpo.ops import cloud as rp

    try:
        command = _command_string(list(args.remote_command))
        downloads = [p.strip() for p in args.download.split(",") if p.strip()]
        spec = rp.PodSpec(gpu_types=tuple(args.gpu or rp.DEFAULT_GPU_TYPES),
                          image=args.image or rp.DEFAULT_IMAGE, gpu_count=args.gpu_count,
                          disk_gb=args.disk, volume_gb=args.volume, cloud_type=args.cloud_type,
                          env=_env_pairs(args.env), cuda_versions=tuple(args.cuda or ()))
    except ValueError as exc:
        return _fail(str(exc), 2)
    try:
        key = rp.load_api_key(args.api_key, args.env_file)
        client = rp.RunPodClient(key, args.api_url or rp.DEFAULT_BASE_URL, timeout=args.http_timeout,
                                 max_retries=args.retries,
                                 log=lambda m: print(m, file=sys.stderr, flush=True))
    except rp.RunPodError as exc:
        return _fail(str(exc))
    upload = None if (args.no_upload or args.install) else args.upload
    setup = args.setup
    if setup is None:
        if args.install:
            setup = f"python -m pip install -q {shlex.quote(args.install)}"
        elif upload is not None:
            setup = DEFAULT_SETUP
    runner = rp.PodRunner(client, spec, cap_s=args.cap, key_path=args.ssh_key, ssh_user=args.ssh_user,
                          remote_dir=args.remote_dir or rp.DEFAULT_REMOTE_DIR,
                          ready_timeout=args.ready_timeout, poll_interval=args.poll,
                          price_per_hour=args.price_per_hour, progress=not args.no_progress)
    try:
        result = runner.run(command, upload_dir=upload, setup=setup or None,
                            download=downloads, local_dir=args.local_dir)
    except KeyboardInterrupt:
        print("mrgrpo cloud run: interrupted; the pod was deleted", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError) as exc:    # checked before anything is rented
        return _fail(str(exc), 2)
    except rp.WallClockCapError as exc:
        return _fail(str(exc), 124)
    except rp.RemoteCommandError as exc:
        return _fail(str(exc), exc.exit_code or 1)
    except rp.RunPodError as exc:
        return _fail(str(exc))
    print(f"mrgrpo cloud run: done on {result.gpu_type} in {result.elapsed_s:.0f} s; "
          f"{len(result.downloaded)} result files in {result.local_dir}"
          + (f"; {len(result.refused)} archive members refused" if result.refused else ""),
          file=sys.stderr)
    return 0
