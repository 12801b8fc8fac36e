"""Push a staged adapter or corpus with ``huggingface_hub.HfApi`` (``create_repo`` +
``upload_folder``). A dry run is exactly the upload minus the network: the same
staging, into the folder you name."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from .stage import Staged, stage_adapter, stage_corpus

__all__ = ["PushResult", "push_adapter", "push_corpus", "hub_token"]


@dataclass
class PushResult:
    """``files``: what was (or would be) uploaded; ``left_out``: what was not, with why."""

    repo_id: str
    repo_type: str
    folder: Path
    files: list[str]
    uploaded: bool
    url: Optional[str] = None
    left_out: list[str] = field(default_factory=list)


def hub_token(token: Optional[str] = None) -> Optional[str]:
    """``token``, else ``$HF_TOKEN``, else ``HF_TOKEN`` in ``./.env``, else None (a cached login)."""
    if token:
        return token
    if os.environ.get("HF_TOKEN"):
        return os.environ["HF_TOKEN"]
    env = Path(".env")
    if env.is_file():
        for line in env.read_text().splitlines():
            line = line.strip().removeprefix("export ").strip()
            if line.startswith("HF_TOKEN="):
                return line.split("=", 1)[1].strip().strip('"').strip("'") or None
    return None


def _push(stage_fn: Callable[..., Staged], repo_type: str, repo_id: str, dry_run, api, token,
          private, commit_message) -> PushResult:
    if dry_run is not None:
        staged = stage_fn(dry_run, secrets=[token] if token else [])
        return PushResult(repo_id, repo_type, Path(dry_run), staged.files, uploaded=False,
                          left_out=staged.left_out)
    if api is None:
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
        if offline in ("1", "true", "yes", "on"):
            raise RuntimeError("HF_HUB_OFFLINE is set, so nothing can be uploaded: unset it "
                               "(the Makefile sets it for tests) or use --dry-run OUT")
        from huggingface_hub import HfApi

        token = hub_token(token)
        api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="mrgrpo-hub-") as tmp:
        folder = Path(tmp) / "upload"
        staged = stage_fn(folder, secrets=[token] if token else [])
        api.create_repo(repo_id=repo_id, repo_type=repo_type, private=private, exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type,
                                 commit_message=commit_message)
    url = getattr(info, "commit_url", None) or (str(info) if info is not None else None)
    return PushResult(repo_id, repo_type, folder, staged.files, uploaded=True, url=url,
                      left_out=staged.left_out)


def push_adapter(run_dir: str | os.PathLike, repo_id: str, *, dry_run: str | os.PathLike | None = None,
                 private: bool = False, token: Optional[str] = None, api=None,
                 base_model: Optional[str] = None, license: str = "mit",
                 commit_message: str = "Upload adapter with mrgrpo") -> PushResult:
    """Upload a trained adapter with a generated model card to the model repo ``repo_id``.

    With ``dry_run=OUT`` the files are written to ``OUT`` (atomically) and nothing
    is uploaded. ``api`` (an ``HfApi``-like object) is for tests; the token comes
    from ``token``, ``$HF_TOKEN``, ``HF_TOKEN`` in ``.env`` or a cached login.
    """
    return _push(lambda out, secrets: stage_adapter(run_dir, out, repo_id, base_model=base_model,
                                                    license=license, secrets=secrets),
                 "model", repo_id, dry_run, api, token, private, commit_message)


def push_corpus(path: str | os.PathLike, repo_id: str, *, npz: str | os.PathLike | None = None,
                dry_run: str | os.PathLike | None = None, private: bool = False,
                token: Optional[str] = None, api=None, license: str = "mit",
                commit_message: str = "Upload rollout corpus with mrgrpo") -> PushResult:
    """Upload a rollout corpus (Parquet + npz) with a dataset card to the dataset repo ``repo_id``."""
    return _push(lambda out, secrets: stage_corpus(path, out, repo_id, npz=npz, license=license,
                                                   secrets=secrets),
                 "dataset", repo_id, dry_run, api, token, private, commit_message)
