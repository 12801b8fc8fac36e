"""A small client for RunPod's REST API v2 (the pod endpoints the runner needs).

What it speaks, from RunPod's OpenAPI document ``api-reference-v2/openapi.json``
(runpod/docs, commit a900806e of 2026-08-20; served at
https://api.runpod.io/v2/openapi.json) and the migration guide
https://docs.runpod.io/api-reference-v2/migrate-from-v1 (read 2026-11-30):

- ``POST /v2/pods``: 201 + Pod, whose ``status`` goes PROVISIONING -> STARTING ->
  RUNNING, or ERROR;
- ``GET /v2/pods/{id}``: 200 + Pod; 404 when it does not exist;
- ``GET /v2/pods``: 200 + ``{"pods": [Pod, ...]}`` (no name filter: filtered here);
- ``DELETE /v2/pods/{id}``: 204; 404 when already gone.

Errors are RFC 9457 problem documents (``application/problem+json`` with
``title``, ``status``, ``detail`` and an optional ``errors`` list). Every request
has a timeout; 429 (after ``Retry-After`` seconds), 5xx and network errors are
retried a bounded number of times with exponential backoff. The API key is
sent only in the ``Authorization: Bearer`` header and masked in every message.

REST v1 (``https://rest.runpod.io/v1``) was retired on 2026-11-15 (RunPod's
release notes of 2026-08-18; the migration guide moved the date from
2026-12-01 in runpod/docs commit df512e53 of 2026-08-19): a v1 base URL is
refused with a message rather than failing later with a 404.
"""
from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Mapping

from .errors import Redactor, RunPodError, RunPodHTTPError

__all__ = ["DEFAULT_BASE_URL", "RunPodClient", "problem_text", "check_base_url"]

DEFAULT_BASE_URL = "https://api.runpod.io/v2"


def check_base_url(base_url: str) -> str:
    """Return ``base_url`` without a trailing slash; refuse the retired REST v1.

    Raises
    ------
    RunPodError
        If the URL is not http(s), or names REST v1 (``rest.runpod.io`` or a ``/v1`` path).
    """
    url = base_url.rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RunPodError(f"RunPod API base URL must be http(s)://HOST/v2, got {base_url!r}")
    if parts.netloc == "rest.runpod.io" or parts.path.rstrip("/").endswith("/v1"):
        raise RunPodError(
            f"{base_url} is RunPod's REST API v1, which RunPod retired on 2026-11-15; "
            f"use the v2 API ({DEFAULT_BASE_URL}, the default)")
    return url


def problem_text(payload: bytes) -> tuple[str, dict]:
    """A one-line summary of an error body, and the problem document's fields.

    An RFC 9457 problem document gives ``"<title>: <detail> (<errors>)"``; any
    other body gives its first 300 characters.
    """
    text = payload.decode(errors="replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        return text[:300], {}
    if not isinstance(doc, dict) or not ({"title", "detail"} & set(doc)):
        return text[:300], {}
    fields = {"title": str(doc.get("title") or ""), "detail": str(doc.get("detail") or ""),
              "errors": [str(e) for e in doc.get("errors") or [] if e]}
    summary = ": ".join(s for s in (fields["title"], fields["detail"]) if s)
    if fields["errors"]:
        summary += " (" + "; ".join(fields["errors"][:5]) + ")"
    return summary[:500], fields


class RunPodClient:
    """RunPod REST API v2, pods only.

    Parameters
    ----------
    api_key
        Sent as ``Authorization: Bearer ...``; masked in all messages.
    base_url
        ``https://api.runpod.io/v2`` by default (tests point it at a fake server).
    timeout
        Seconds per HTTP request.
    max_retries
        Extra attempts after a 429, a 5xx, a timeout or a connection error.
    backoff, max_backoff
        The wait before retry ``i`` (0-based) is ``min(max_backoff, backoff * 2**i)``
        (or the server's ``Retry-After`` on 429, capped by ``max_backoff``).
    sleep
        Injected for tests; ``time.sleep`` by default.
    log
        Called with each (redacted) message about retries.
    """

    def __init__(self, api_key: str, base_url: str = DEFAULT_BASE_URL, *, timeout: float = 30.0,
                 max_retries: int = 4, backoff: float = 1.0, max_backoff: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep,
                 log: Callable[[str], None] | None = None):
        if not api_key or not isinstance(api_key, str):
            raise RunPodError("RunPodClient needs a non-empty api_key")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        self._key = api_key
        self.redact = Redactor([api_key])
        self.base_url = check_base_url(base_url)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self._sleep = sleep
        self._log = log or (lambda msg: None)
        #: POST attempts whose outcome is unknown (timeout, 5xx, dropped connection):
        #: the server may have created a pod without us learning its id.
        self.ambiguous_posts = 0

    def __repr__(self) -> str:  # never show the key
        return f"RunPodClient(base_url={self.base_url!r}, api_key=***)"

    # -- transport
    def _once(self, method: str, url: str, body: bytes | None) -> tuple[int, bytes, Mapping[str, str]]:
        req = urllib.request.Request(url, data=body, method=method, headers={
            "Authorization": f"Bearer {self._key}",
            "Content-Type": "application/json",
            "Accept": "application/json, application/problem+json",
            "User-Agent": "mrgrpo-cloud",
        })
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            payload = exc.read() if exc.fp is not None else b""
            return exc.code, payload, dict(exc.headers or {})

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """Send one API call with bounded retries; return the decoded JSON (None if empty).

        Raises
        ------
        RunPodHTTPError
            On a non-retryable status, or when the retries run out.
        """
        url = self.base_url + path
        data = None if body is None else json.dumps(body).encode()
        last, status, fields = "", None, {}
        for attempt in range(self.max_retries + 1):
            retry_after: float | None = None
            try:
                status, payload, headers = self._once(method, url, data)
            except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                status, fields = None, {}
                last = f"network error: {type(reason).__name__}: {reason}"
                if method == "POST" and not isinstance(reason, ConnectionRefusedError):
                    self.ambiguous_posts += 1
            else:
                if method == "POST" and status >= 500:
                    self.ambiguous_posts += 1
                if 200 <= status < 300:
                    return self._decode(method, path, status, payload)
                summary, fields = problem_text(payload)
                last = f"HTTP {status}: {summary}"
                if status != 429 and status < 500:
                    raise self._http_error(f"RunPod API {method} {path} failed: {last}", status, fields)
                if status == 429:
                    try:
                        retry_after = float(headers.get("Retry-After", ""))
                    except ValueError:
                        retry_after = None
            if attempt == self.max_retries:
                break
            wait = min(self.max_backoff, retry_after if retry_after is not None
                       else self.backoff * (2 ** attempt))
            self._log(self.redact(f"RunPod API {method} {path}: {last}; retry "
                                  f"{attempt + 1}/{self.max_retries} in {wait:.2g} s"))
            self._sleep(wait)
        raise self._http_error(f"RunPod API {method} {path} failed after {self.max_retries + 1} "
                               f"attempts: {last}", status, fields)

    def _decode(self, method: str, path: str, status: int, payload: bytes) -> Any:
        if not payload.strip():
            return None
        try:
            return json.loads(payload)
        except ValueError:
            raise self._http_error(f"RunPod API {method} {path}: HTTP {status} with a body that "
                                   "is not JSON", status, {}) from None

    def _http_error(self, message: str, status: int | None, fields: Mapping[str, Any]) -> RunPodHTTPError:
        return RunPodHTTPError(self.redact(message), status,
                               title=self.redact(fields.get("title", "")),
                               detail=self.redact(fields.get("detail", "")),
                               errors=[self.redact(e) for e in fields.get("errors", [])])

    # -- endpoints
    def create_pod(self, body: Mapping[str, Any]) -> dict:
        """``POST /pods``; return the Pod (its ``status`` is usually PROVISIONING)."""
        pod = self.request("POST", "/pods", dict(body))
        if not isinstance(pod, dict) or not pod.get("id"):
            raise RunPodError("RunPod API POST /pods answered without a pod id")
        return pod

    def get_pod(self, pod_id: str) -> dict | None:
        """``GET /pods/{id}``; None if the pod does not exist (404)."""
        try:
            pod = self.request("GET", f"/pods/{urllib.parse.quote(pod_id, safe='')}")
        except RunPodHTTPError as exc:
            if exc.status == 404:
                return None
            raise
        if not isinstance(pod, dict):
            raise RunPodError(f"RunPod API GET /pods/{pod_id} answered with a {type(pod).__name__}, "
                              "not a Pod object")
        return pod

    def list_pods(self, name: str | None = None) -> list[dict]:
        """``GET /pods`` (``{"pods": [...]}``), keeping those named ``name`` if given."""
        answer = self.request("GET", "/pods")
        pods = answer.get("pods") if isinstance(answer, dict) else None
        if not isinstance(pods, list):
            raise RunPodError("RunPod API GET /pods answered without a 'pods' list "
                              f"(got {type(answer).__name__})")
        return [p for p in pods if isinstance(p, dict) and (name is None or p.get("name") == name)]

    def delete_pod(self, pod_id: str) -> bool:
        """``DELETE /pods/{id}``; True if deleted, False if it was already gone (404)."""
        try:
            self.request("DELETE", f"/pods/{urllib.parse.quote(pod_id, safe='')}")
            return True
        except RunPodHTTPError as exc:
            if exc.status == 404:
                return False
            raise
