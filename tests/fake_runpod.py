"""A fake RunPod REST API v1 for the tests: a real HTTP server on 127.0.0.1.

Implements the endpoints :class:`mrgrpo.ops.cloud.runpod.RunPodClient` uses, with the
JSON shapes of https://rest.runpod.io/v1 (Pod objects with ``id``,
``desiredStatus``, ``costPerHr`` as a string, ``publicIp``, ``portMappings``
``{"22": port}``, ``gpu``, ``machine``...; errors as ``{"error": ..., "status": ...}``):

- ``POST /pods``          201 + Pod; 400 when no requested GPU type is available
- ``GET /pods``           200 + list of Pods (``?name=`` filter)
- ``GET /pods/{id}``      200 + Pod; 404 when unknown or deleted
- ``DELETE /pods/{id}``   204; 404 when unknown or deleted

Like RunPod's images, a created pod installs its ``env.PUBLIC_KEY`` into an
``authorized_keys`` file (when the server is given one), so the client's
throwaway key really logs in to the test's ``sshd``.

Knobs (attributes; set them before or during a test):

``available_gpus``     GPU type ids that can be rented (others get 400)
``fail_create``        (status, message) answered to every POST /pods
``never_ready``        pods stay without publicIp/portMappings forever
``ready_after_polls``  GETs of a pod before it shows its public SSH port
``fail_next``          list of statuses answered (in order) to the next requests,
                       before normal service, e.g. ``[500, 500]``
``fail_paths``         only requests whose ``METHOD /path`` starts with one of these
                       prefixes consume ``fail_next`` (empty: all requests)
``delay_s``            seconds to sleep before answering each request
``delay_paths``        only delay requests matching one of these prefixes
``delay_count``        delay only this many (matching) requests; None: all of them
``echo_auth_in_errors`` put the request's Authorization header in error bodies
                       (to test that the client masks the key)

State: ``pods`` (id -> Pod, live ones), ``deleted`` (ids), ``log`` (one
``(method, path, status)`` per request), ``created`` (ids, in order), ``create_bodies`` (POST /pods bodies).
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

PRICES = {  # $/h, securePrice-like; only used to fill costPerHr
    "NVIDIA H100 PCIe": 2.39,
    "NVIDIA H100 80GB HBM3": 2.99,
    "NVIDIA A100 80GB PCIe": 1.64,
    "NVIDIA A100-SXM4-80GB": 1.74,
    "NVIDIA GeForce RTX 4090": 0.69,
}


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
        self.ready_after_polls = 1
        self.fail_next: list[int] = []
        self.fail_paths: list[str] = []
        self.delay_s = 0.0
        self.delay_paths: list[str] = []
        self.delay_count: int | None = None
        self.create_bodies: list[dict[str, Any]] = []
        self.echo_auth_in_errors = False
        self.pods: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []
        self.created: list[str] = []
        self.log: list[tuple[str, str, int]] = []
        self._polls: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

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
    def _new_pod(self, body: dict[str, Any], gpu: str) -> dict[str, Any]:
        pod_id = uuid.uuid4().hex[:14]
        price = PRICES.get(gpu, 1.0) * int(body.get("gpuCount", 1))
        gpu_obj = {"id": gpu, "count": int(body.get("gpuCount", 1)), "displayName": gpu,
                   "securePrice": PRICES.get(gpu, 1.0), "communityPrice": PRICES.get(gpu, 1.0)}
        return {
            "id": pod_id, "name": body.get("name"), "image": body.get("imageName"),
            "desiredStatus": "RUNNING", "costPerHr": f"{price:.2f}", "adjustedCostPerHr": price,
            "containerDiskInGb": body.get("containerDiskInGb", 50),
            "volumeInGb": body.get("volumeInGb", 0),
            "volumeMountPath": body.get("volumeMountPath", "/workspace"),
            "env": dict(body.get("env") or {}), "ports": list(body.get("ports") or []),
            "gpu": gpu_obj, "machine": {"gpuTypeId": gpu, "gpuType": gpu_obj},
            "machineId": "fake-machine", "consumerUserId": "user_fake", "interruptible": False,
            "locked": False, "lastStartedAt": None, "lastStatusChange": "Rented by User",
            "memoryInGb": 62, "vcpuCount": 16, "publicIp": None, "portMappings": None,
        }

    def _install_key(self, pod: dict[str, Any]) -> None:
        key = (pod.get("env") or {}).get("PUBLIC_KEY")
        if key and self.authorized_keys is not None:
            with open(self.authorized_keys, "a") as fh:
                fh.write(key.strip() + "\n")

    def _view(self, pod_id: str) -> dict[str, Any]:
        pod = self.pods[pod_id]
        self._polls[pod_id] = self._polls.get(pod_id, 0) + 1
        if (not self.never_ready and self.ssh_port is not None
                and self._polls[pod_id] >= self.ready_after_polls and pod["publicIp"] is None):
            pod["publicIp"] = self.public_ip
            pod["portMappings"] = {"22": self.ssh_port}
            pod["lastStartedAt"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return pod

    # -- HTTP
    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _send(self, status: int, payload: Any = None) -> None:
                with fake._lock:
                    fake.log.append((self.command, self.path, status))
                body = b"" if payload is None else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    if body:
                        self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if body:
                        self.wfile.write(body)
                except OSError:  # the client gave up (timeout); the work is done anyway
                    pass

            def _error(self, status: int, message: str) -> None:
                if fake.echo_auth_in_errors:
                    message += f" (request had Authorization: {self.headers.get('Authorization')})"
                self._send(status, {"error": message, "status": status})

            def _route(self) -> None:
                key = f"{self.command} {urlparse(self.path).path}"
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
                    return self._error(401, "Unauthorized")
                with fake._lock:
                    injected = None
                    if fake.fail_next and (not fake.fail_paths
                                           or any(key.startswith(p) for p in fake.fail_paths)):
                        injected = fake.fail_next.pop(0)
                if injected is not None:
                    return self._error(injected, "injected failure")
                url = urlparse(self.path)
                parts = [p for p in url.path.split("/") if p]
                if len(parts) < 2 or parts[0] != "v1" or parts[1] != "pods":
                    return self._error(404, "not found")
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null") if length else None
                if len(parts) == 2 and self.command == "POST":
                    return self._create(body or {})
                if len(parts) == 2 and self.command == "GET":
                    name = parse_qs(url.query).get("name", [None])[0]
                    with fake._lock:
                        pods = [fake._view(i) for i in fake.pods
                                if name is None or fake.pods[i]["name"] == name]
                    return self._send(200, pods)
                if len(parts) == 3:
                    pod_id = parts[2]
                    with fake._lock:
                        exists = pod_id in fake.pods
                        if exists and self.command == "DELETE":
                            del fake.pods[pod_id]
                            fake.deleted.append(pod_id)
                        pod = fake._view(pod_id) if exists and self.command == "GET" else None
                    if not exists:
                        return self._error(404, f"pod {pod_id} not found")
                    if self.command == "DELETE":
                        return self._send(204)
                    if self.command == "GET":
                        return self._send(200, pod)
                return self._error(405, "method not allowed")

            def _create(self, body: dict[str, Any]) -> None:
                with fake._lock:
                    fake.create_bodies.append(body)
                if fake.fail_create is not None:
                    status, message = fake.fail_create
                    return self._error(status, message)
                if not body.get("imageName"):
                    return self._error(400, "imageName is required")
                wanted = list(body.get("gpuTypeIds") or [])
                gpu = next((g for g in wanted if g in fake.available_gpus), None)
                if gpu is None:
                    return self._error(400, "There are no longer any instances available with "
                                            "the requested specifications. Please refresh and try again.")
                pod = fake._new_pod(body, gpu)
                with fake._lock:
                    fake.pods[pod["id"]] = pod
                    fake.created.append(pod["id"])
                fake._install_key(pod)
                return self._send(201, pod)

            do_GET = do_POST = do_DELETE = do_PATCH = _route

        return Handler
