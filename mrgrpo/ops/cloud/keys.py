"""Where the RunPod API key comes from: an argument, ``$RUNPOD_API_KEY`` or a ``.env`` file."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import RunPodError

__all__ = ["read_dotenv", "load_api_key"]


def read_dotenv(path: str | os.PathLike) -> dict[str, str]:
    """``KEY=VALUE`` lines of a ``.env`` file (``export`` prefixes, quotes and comments allowed)."""
    values: dict[str, str] = {}
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export "):]
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def load_api_key(api_key: str | None = None, env_file: str | os.PathLike | None = ".env") -> str:
    """The RunPod API key: ``api_key``, else ``$RUNPOD_API_KEY``, else ``RUNPOD_API_KEY`` in ``env_file``.

    Raises
    ------
    RunPodError
        If none of the three has a non-empty key (the message never contains one).
    """
    if api_key:
        return api_key.strip()
    if os.environ.get("RUNPOD_API_KEY", "").strip():
        return os.environ["RUNPOD_API_KEY"].strip()
    if env_file is not None and Path(env_file).is_file():
        value = read_dotenv(env_file).get("RUNPOD_API_KEY", "").strip()
        if value:
            return value
    raise RunPodError("no RunPod API key: pass api_key (--api-key), set RUNPOD_API_KEY, "
                      f"or put RUNPOD_API_KEY=... in {env_file or '.env'}")
