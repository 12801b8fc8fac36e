"""A fake RunPod REST API v2 for the tests: a real HTTP server on 127.0.0.1.

It speaks the subset of https://api.runpod.io/v2 that
:class:`mrgrpo.ops.cloud.api.RunPodClient` uses, with the shapes of RunPod's
OpenAPI document (runpod/docs ``api-reference-v2/openapi.json``, 2026-08-20):

- ``POST /v2/pods``           201 + Pod (``status`` PROVISIONING); the body is checked
                              against ``CreatePodRequest`` (unknown keys, a missing
                              ``name``/``image``, ``gpu`` and ``cpu`` together, a bad
                              ``gpu``/``mounts`` -> 422 with ``errors``); 400 when no
                              requested GPU type can be placed
- ``GET /v2/pods``            200 + ``{"pods": [Pod, ...]}`` (no name filter, like RunPod)
- ``GET /v2/pods/{id}``       200 + Pod; 404 when unknown or deleted
- ``DELETE /v2/pods/{id}``    204; 404 when unknown or deleted

Every error is an RFC 9457 problem document (``application/problem+json``,
``{"title", "status", "detail"}``). A pod moves PROVISIONING -> STARTING ->
RUNNING as it is polled; ``ssh.direct`` (host, port, username) appears when it
is RUNNING. Like RunPod's images, a pod installs its ``env.PUBLIC_KEY`` into an
``authorized_keys`` file (when the server is given one), so the client's
throwaway key really logs in to the test's ``sshd``.

Knobs (attributes; set them before or during a test):

``available_gpus``     GPU type ids that can be placed (others get 400)
``fail_create``        (status, detail) answered to every POST /v2/pods
``never_ready``        pods stay STARTING without ``ssh.direct`` forever
``ready_after_polls``  GETs of a pod before it is RUNNING with ``ssh.direct``
``error_after_polls``  GETs of a pod before it goes to ERROR (None: never)
``fail_next``          statuses answered (in order) to the next requests, before
                       normal service, e.g. ``[500, 500]``
``fail_paths``         only requests whose ``METHOD /path`` starts with one of these
                       prefixes consume ``fail_next`` (empty: all requests)
``retry_after``        ``Retry-After`` seconds sent with injected 429s
``delay_s``            seconds to sleep before answering each request
``delay_paths``        only delay requests matching one of these prefixes
``delay_count``        delay only this many (matching) requests; None: all of them
``echo_auth_in_errors`` put the request's Authorization header in error details
                       (to test that the client masks the key)

State: ``pods`` (id -> Pod, live ones), ``deleted`` (ids), ``log`` (one
``(method, path, status)`` per request), ``created`` (ids, in order),
``create_bodies`` (POST /v2/pods bodies), ``rejected`` (422 details), ``served``
(id -> the ``status`` of each Pod object answered, in order).
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

PRICES = {  # $/h; only used to fill `cost`
    "NVIDIA H100 PCIe": 2.39,
    "NVIDIA H100 80GB HBM3": 2.99,
    "NVIDIA A100 80GB PCIe": 1.64,
    "NVIDIA A100-SXM4-80GB": 1.74,
    "NVIDIA GeForce RTX 4090": 0.69,
}
#: ``CreatePodRequest`` (``ContainerConfig`` + its own properties; unevaluatedProperties: false).
CREATE_KEYS = {"args", "disk", "env", "image", "ports", "registry", "name", "cloud", "cpu",
               "dataCenterIds", "globalNetworking", "gpu", "mounts", "startJupyter", "startSsh",
               "templateId"}
GPU_KEYS = {"id", "count", "allowedCudaVersions", "minCudaVersion"}
TITLES = {400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
          404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
          422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
          502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def create_errors(body: Any) -> list[str]:
    """Contract violations of a ``CreatePodRequest`` (empty when valid)."""
    if not isinstance(body, dict):
        return ["$: expected an object"]
    errs = [f"$: additional properties '{k}' not allowed" for k in sorted(set(body) - CREATE_KEYS)]
    if not isinstance(body.get("name"), str) or not body.get("name"):
        errs.append("$.name: required non-empty string")
    if "templateId" not in body and not isinstance(body.get("image"), str):
        errs.append("$.image: required unless templateId is set")
    if ("gpu" in body) == ("cpu" in body):
        errs.append("$: exactly one of gpu or cpu must be set")
    gpu = body.get("gpu")
    if gpu is not None:
        if not isinstance(gpu, dict) or not isinstance(gpu.get("id"), str):
            errs.append("$.gpu.id: required string")
        else:
            errs += [f"$.gpu: additional properties '{k}' not allowed" for k in sorted(set(gpu) - GPU_KEYS)]
            if not isinstance(gpu.get("count", 1), int) or gpu.get("count", 1) < 1:
                errs.append("$.gpu.count: integer >= 1")
    if "disk" in body and (not isinstance(body["disk"], int) or body["disk"] < 1):
        errs.append("$.disk: integer >= 1")
    if "cloud" in body and body["cloud"] not in ("SECURE", "COMMUNITY"):
        errs.append("$.cloud: one of SECURE, COMMUNITY")
    if "ports" in body and not (isinstance(body["ports"], list)
                                and all(isinstance(p, str) and "/" in p for p in body["ports"])):
        errs.append("$.ports: list of 'port/protocol' strings")
    if "env" in body and not (isinstance(body["env"], dict)
                              and all(isinstance(v, str) for v in body["env"].values())):
        errs.append("$.env: object of strings")
    mounts = body.get("mounts")
    if mounts is not None:
        pers = mounts.get("persistent") if isinstance(mounts, dict) else None
        if (not isinstance(mounts, dict) or set(mounts) - {"persistent", "network"}
                or (pers is not None and (set(pers) != {"size", "path"}
                                          or not isinstance(pers["size"], int) or pers["size"] < 10))):
            errs.append("$.mounts: persistent needs exactly size (>= 10) and path")
    if "startSsh" in body and not isinstance(body["startSsh"], bool):
        errs.append("$.startSsh: boolean")
    return errs


class FakeRunPod:
    def __init__(self, api_key: str, ssh_port: int | None = None, public_ip: str = "127.0.0.1",
                 authorized_keys: Path | None = None):
        self.api_key = api_key
        self.ssh_port = ssh_port
        self.public_ip = public_ip
        self.authorized_keys = authorized_keys
        self.available_gpus: set[str] = set(PRICES)
        self.fail_create: tuple[int, str] | None = None
        self.never_ready = False
        self.ready_after_polls = 3
        self.error_after_polls: int | None = None
        self.fail_next: list[int] = []
        self.fail_paths: list[str] = []
        self.retry_after: int | None = None
        self.delay_s = 0.0
        self.delay_paths: list[str] = []
        self.delay_count: int | None = None
        self.create_bodies: list[dict[str, Any]] = []
        self.rejected: list[list[str]] = []
        self.echo_auth_in_errors = False
        self.pods: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []
        self.created: list[str] = []
        self.log: list[tuple[str, str, int]] = []
        self._polls: dict[str, int] = {}
        self.served: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v2"

    def start(self) -> "FakeRunPod":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeRunPod":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def state(self) -> dict[str, Any]:
        """A summary for assertions and reports."""
        with self._lock:
            return {"live_pods": sorted(self.pods), "created": list(self.created),
                    "deleted": list(self.deleted),
                    "requests": [f"{m} {p} -> {s}" for m, p, s in self.log]}

    # -- pod objects
    def _new_pod(self, body: dict[str, Any]) -> dict[str, Any]:
        gpu = dict(body["gpu"])
        gpu.setdefault("count", 1)
        return {
            "id": uuid.uuid4().hex[:14], "name": body["name"], "status": "PROVISIONING",
            "actions": ["stop", "terminate"], "image": body["image"], "args": body.get("args", ""),
            "disk": body.get("disk", 50), "mounts": body.get("mounts", {}),
            "ports": list(body.get("ports") or []), "env": dict(body.get("env") or {}),
            "registry": None, "gpu": {"id": gpu["id"], "count": gpu["count"]},
            "cloud": body.get("cloud", "SECURE"), "dataCenterId": None, "cudaVersion": None,
            "ssh": {"proxy": None, "direct": None}, "template": None,
            "cost": round(PRICES.get(gpu["id"], 1.0) * gpu["count"], 4), "locked": False,
            "runtime": None, "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "startedAt": None, "globalNetworking": {"enabled": False},
        }

    def _install_key(self, pod: dict[str, Any]) -> None:
        key = (pod.get("env") or {}).get("PUBLIC_KEY")
        if key and self.authorized_keys is not None:
            with open(self.authorized_keys, "a") as fh:
                fh.write(key.strip() + "\n")

    def _view(self, pod_id: str) -> dict[str, Any]:
        pod = self.pods[pod_id]
        n = self._polls[pod_id] = self._polls.get(pod_id, 0) + 1
        if pod["status"] in ("ERROR", "RUNNING"):
            self.served.setdefault(pod_id, []).append(pod["status"])
            return pod
        if self.error_after_polls is not None and n >= self.error_after_polls:
            pod.update(status="ERROR", actions=["start", "terminate"], cost=0.0, runtime=None)
        elif self.never_ready or self.ssh_port is None or n < self.ready_after_polls:
            pod["status"] = "STARTING" if n > 1 else "PROVISIONING"
        else:
            pod.update(status="RUNNING", actions=["stop", "restart", "terminate"],
                       dataCenterId="US-TX-3", cudaVersion="12.8",
                       startedAt=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            if "22/tcp" in pod["ports"]:
                pod["ssh"] = {"proxy": {"host": "ssh.runpod.io", "port": 22,
                                        "username": f"{pod_id}-64411eb2",
                                        "command": f"ssh {pod_id}-64411eb2@ssh.runpod.io"},
                              "direct": {"host": self.public_ip, "port": self.ssh_port,
                                         "username": "root",
                                         "command": f"ssh root@{self.public_ip} -p {self.ssh_port}"}}
                pod["runtime"] = {"uptime": 0, "ports": [{"private": 22, "public": self.ssh_port,
                                                          "type": "tcp", "ip": self.public_ip}]}
        self.served.setdefault(pod_id, []).append(pod["status"])
        return pod

    # -- HTTP
    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _send(self, status: int, payload: Any = None, content_type="application/json",
                      headers: dict | None = None) -> None:
                with fake._lock:
                    fake.log.append((self.command, urlparse(self.path).path, status))
                body = b"" if payload is None else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    if body:
                        self.send_header("Content-Type", content_type)
                    for k, v in (headers or {}).items():
                        self.send_header(k, str(v))
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if body:
                        self.wfile.write(body)
                except OSError:  # the client gave up (timeout); the work is done anyway
                    pass

            def _problem(self, status: int, detail: str, errors: list[str] | None = None) -> None:
                if fake.echo_auth_in_errors:
                    detail += f" (request had Authorization: {self.headers.get('Authorization')})"
                doc = {"title": TITLES.get(status, "Error"), "status": status, "detail": detail}
                if errors:
                    doc["errors"] = errors
                headers = {"Retry-After": fake.retry_after} if status == 429 and fake.retry_after else None
                self._send(status, doc, "application/problem+json", headers)

            def _route(self) -> None:
                url = urlparse(self.path)
                key = f"{self.command} {url.path}"
                delay = False
                with fake._lock:
                    if fake.delay_s and (not fake.delay_paths
                                         or any(key.startswith(p) for p in fake.delay_paths)):
                        if fake.delay_count is None:
                            delay = True
                        elif fake.delay_count > 0:
                            fake.delay_count -= 1
                            delay = True
                if delay:
                    time.sleep(fake.delay_s)
                if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    return self._problem(401, "invalid bearer token")
                with fake._lock:
                    injected = None
                    if fake.fail_next and (not fake.fail_paths
                                           or any(key.startswith(p) for p in fake.fail_paths)):
                        injected = fake.fail_next.pop(0)
                if injected is not None:
                    return self._problem(injected, "injected failure")
                parts = [p for p in url.path.split("/") if p]
                if len(parts) < 2 or parts[:2] != ["v2", "pods"] or len(parts) > 3:
                    return self._problem(404, f"no route for {url.path}")
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length)) if length else None
                except ValueError:
                    return self._problem(400, "request body is not JSON")
                if len(parts) == 2 and self.command == "POST":
                    return self._create(body)
                if len(parts) == 2 and self.command == "GET":
                    with fake._lock:
                        pods = [fake._view(i) for i in list(fake.pods)]
                    return self._send(200, {"pods": pods})
                if len(parts) == 3 and self.command in ("GET", "DELETE"):
                    pod_id = parts[2]
                    with fake._lock:
                        exists = pod_id in fake.pods
                        if exists and self.command == "DELETE":
                            del fake.pods[pod_id]
                            fake.deleted.append(pod_id)
                        pod = fake._view(pod_id) if exists and self.command == "GET" else None
                    if not exists:
                        return self._problem(404, "The requested Pod does not exist.")
                    return self._send(204) if self.command == "DELETE" else self._send(200, pod)
                return self._problem(405, "The requested method is not allowed for this path.")

            def _create(self, body: Any) -> None:
                with fake._lock:
                    fake.create_bodies.append(body)
                errors = create_errors(body)
                if errors:
                    with fake._lock:
                        fake.rejected.append(errors)
                    return self._problem(422, "Request validation failed.", errors)
                if fake.fail_create is not None:
                    return self._problem(*fake.fail_create)
                if body["gpu"]["id"] not in fake.available_gpus:
                    return self._problem(400, "There are no longer any instances available with "
                                              "the requested specifications.")
                pod = fake._new_pod(body)
                with fake._lock:
                    fake.pods[pod["id"]] = pod
                    fake.created.append(pod["id"])
                fake._install_key(pod)
                return self._send(201, pod)

            do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _route

        return Handler
