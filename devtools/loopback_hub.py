"""A Hugging Face Hub compatible HTTP server on 127.0.0.1, for tests and benchmarks.

It serves the parts of the hub API that huggingface_hub's download path uses
(tree listing, repo info, HEAD/GET on resolve URLs with ETag, X-Repo-Commit,
Content-Length and Range), logs every request, and injects faults on demand:
429 with Retry-After, 500, a connection dropped mid-body, wrong bytes of the
right length, slow bodies, a Range request ignored, 404. With ``advertise_xet`` it also sends the
headers by which the official hub offers a file over Xet, so a test can tell
which transfer path a client takes. File contents may be any buffer (an mmap
of a large file serves without a copy in memory).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import mmap
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

START_TIMEOUT = 60.0
LFS_SUFFIXES = (".onnx", ".onnx_data", ".bin", ".safetensors")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$")
_XET_TOKEN_ROUTE = "/api/models/{repo}/xet-read-token/{rev}"
_INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    status: int
    started: float
    headers: Mapping[str, str]


@dataclass
class Fault:
    """Answer matching requests with ``kind`` for the next ``times`` requests."""

    kind: str  # "status", "drop", "corrupt", "slow", "no-range" (answer a Range request with the whole file)
    pattern: str = "*"
    method: str = "*"
    times: int = 1
    status: int = 500
    retry_after: str | None = None
    delay: float = 0.0


FileData = bytes | mmap.mmap


@dataclass
class HubRepo:
    files: dict[str, FileData]
    _entries: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def is_lfs(self, path: str) -> bool:
        return path.endswith(LFS_SUFFIXES)

    def entry(self, path: str) -> dict[str, Any]:
        # Hashed once per file: the tree and every resolve answer need it, and large files are slow to hash.
        if path not in self._entries:
            self._entries[path] = self._describe(path)
        return self._entries[path]

    def _describe(self, path: str) -> dict[str, Any]:
        data = self.files[path]
        blob_hash = hashlib.sha1(b"blob %d\0" % len(data), usedforsecurity=False)
        blob_hash.update(data)
        blob_id = blob_hash.hexdigest()
        entry: dict[str, Any] = {"type": "file", "oid": blob_id, "size": len(data), "path": path}
        if self.is_lfs(path):
            sha = hashlib.sha256(data).hexdigest()
            # The git oid of an LFS file hashes its pointer; mimic that so clients cannot lean on it.
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n".encode()
            entry["oid"] = hashlib.sha1(b"blob %d\0" % len(pointer) + pointer, usedforsecurity=False).hexdigest()
            entry["lfs"] = {"oid": sha, "size": len(data), "pointerSize": len(pointer)}
        return entry

    def etag(self, path: str) -> str:
        entry = self.entry(path)
        return str(entry["lfs"]["oid"] if "lfs" in entry else entry["oid"])


@dataclass
class LoopbackHub:
    """The server state: repos by (repo id, revision), faults and the request log."""

    repos: dict[tuple[str, str], HubRepo] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    requests: list[LoggedRequest] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)  # "METHOD path" of requests being answered
    base_url: str = ""
    advertise_xet: bool = False  # offer every LFS file over Xet, as the official hub does
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_repo(self, repo: str, revision: str, files: Mapping[str, FileData]) -> None:
        self.repos[(repo, revision)] = HubRepo(dict(files))

    def add_fault(self, kind: str, pattern: str = "*", **options: Any) -> Fault:
        fault = Fault(kind, pattern, **options)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.requests.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.method in ("*", method) and fnmatch.fnmatch(path, fault.pattern):
                    fault.times -= 1
                    return fault
        return None

    def log(self, request: LoggedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def requests_for(self, suffix: str, method: str | None = None) -> list[LoggedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith(suffix) and method in (None, r.method)]


class _Handler(BaseHTTPRequestHandler):
    _logged: tuple[str, float]
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without this, Nagle + delayed ACK add 40 ms each.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the hub keeps its own structured log

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def _dispatch(self, *, head: bool) -> None:
        hub = self.server.hub
        started = time.monotonic()
        url = urlsplit(self.path)
        path = unquote(url.path)
        fault = hub.take_fault(self.command, path)
        self._logged = (path, started)
        hub.in_flight.append(f"{self.command} {path}")
        try:
            self._answer(hub, path, parse_qs(url.query), fault, head=head)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-answer (a killed prepare): not our failure
        finally:
            hub.in_flight.remove(f"{self.command} {path}")

    def _answer(
        self, hub: LoopbackHub, path: str, query: dict[str, list[str]], fault: Fault | None, *, head: bool
    ) -> int:
        if fault is not None and fault.kind == "status":
            extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            return self._send_json(fault.status, {"error": f"injected {fault.status}"}, head=head, headers=extra)
        if match := _RESOLVE.match(path):
            return self._resolve(hub, match, fault, head=head)
        if match := _TREE.match(path):
            return self._tree(hub, match, query, head=head)
        if match := _INFO.match(path):
            return self._info(hub, match, head=head)
        return self._send_json(404, {"error": "not found"}, head=head)

    def _repo(self, hub: LoopbackHub, repo_id: str, revision: str) -> HubRepo | int:
        if not any(r == repo_id for r, _ in hub.repos):
            return 401  # the hub answers 401 for repos that do not exist (or are private)
        return hub.repos.get((repo_id, revision), 404)

    def _resolve(self, hub: LoopbackHub, match: re.Match[str], fault: Fault | None, *, head: bool) -> int:
        repo = self._repo(hub, match["repo"], match["rev"])
        if isinstance(repo, int):
            code = "RepoNotFound" if repo == 401 else "RevisionNotFound"
            return self._send_json(repo, {"error": code}, head=head, headers={"X-Error-Code": code})
        file_path = match["path"]
        if file_path not in repo.files:
            return self._send_json(404, {"error": "entry"}, head=head, headers={"X-Error-Code": "EntryNotFound"})
        data = repo.files[file_path]
        start = 0 if fault is not None and fault.kind == "no-range" else _range_start(self.headers.get("Range"))
        status = 206 if start else 200
        headers = {
            "ETag": f'"{repo.etag(file_path)}"',
            "X-Repo-Commit": match["rev"],
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        if hub.advertise_xet and repo.is_lfs(file_path):
            headers["X-Xet-Hash"] = repo.etag(file_path)
            token_route = _XET_TOKEN_ROUTE.format(repo=match["repo"], rev=match["rev"])
            headers["X-Xet-Refresh-Route"] = hub.base_url + token_route
        body = memoryview(data)[start:]
        self._send_head(status, len(body), headers)
        if head:
            return status
        self._send_body(body, fault)
        return status

    def _send_body(self, body: memoryview, fault: Fault | None) -> None:
        if fault is not None and fault.kind == "corrupt":
            self.wfile.write(bytes(b ^ 0xFF for b in body[:64]))
            body = body[64:]
        if fault is not None and fault.kind == "drop":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if fault is not None and fault.kind == "slow":
            step = max(1, len(body) // 50)
            for offset in range(0, len(body), step):
                self.wfile.write(body[offset : offset + step])
                self.wfile.flush()
                time.sleep(fault.delay)
            return
        self.wfile.write(body)

    def _tree(self, hub: LoopbackHub, match: re.Match[str], query: dict[str, list[str]], *, head: bool) -> int:
        repo = self._repo(hub, match["repo"], match["rev"])
        if isinstance(repo, int):
            return self._send_json(repo, {"error": "not found"}, head=head)
        prefix = (match["path"] or "").strip("/")
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        entries: list[dict[str, Any]] = []
        folders: set[str] = set()
        for file_path in sorted(repo.files):
            if prefix and not file_path.startswith(prefix + "/"):
                continue
            rest = file_path[len(prefix) + 1 :] if prefix else file_path
            if "/" in rest and not recursive:
                folders.add((f"{prefix}/" if prefix else "") + rest.split("/", 1)[0])
                continue
            for depth, _ in enumerate(rest.split("/")[:-1]):
                folders.add((f"{prefix}/" if prefix else "") + "/".join(rest.split("/")[: depth + 1]))
            entries.append(repo.entry(file_path))
        entries += [{"type": "directory", "oid": "0" * 40, "size": 0, "path": f} for f in sorted(folders)]
        return self._send_json(200, entries, head=head)

    def _info(self, hub: LoopbackHub, match: re.Match[str], *, head: bool) -> int:
        revision = match["rev"] or next((rev for r, rev in hub.repos if r == match["repo"]), "")
        repo = self._repo(hub, match["repo"], revision)
        if isinstance(repo, int):
            return self._send_json(repo, {"error": "not found"}, head=head)
        siblings = [{"rfilename": p} for p in sorted(repo.files)]
        body = {"id": match["repo"], "modelId": match["repo"], "sha": revision, "siblings": siblings, "private": False}
        return self._send_json(200, body, head=head)

    def _send_json(self, status: int, payload: Any, *, head: bool, headers: Mapping[str, str] | None = None) -> int:
        body = json.dumps(payload).encode()
        self._send_head(status, len(body), {"Content-Type": "application/json", **(headers or {})})
        if not head:
            self.wfile.write(body)
        return status

    def _send_head(self, status: int, length: int, headers: Mapping[str, str]) -> None:
        # Logged before the client can see the answer, so a test reading the log right
        # after a failed call never misses the last request.
        path, started = self._logged
        request_headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.hub.log(LoggedRequest(self.command, path, status, started, request_headers))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hub: LoopbackHub


def _range_start(header: str | None) -> int:
    match = re.fullmatch(r"bytes=(\d+)-", header or "")
    return int(match.group(1)) if match else 0


@contextmanager
def serve_hub(hub: LoopbackHub | None = None, host: str = "127.0.0.1") -> Iterator[LoopbackHub]:
    """Run ``hub`` on an ephemeral port of ``host`` until the block ends."""
    hub = hub or LoopbackHub()
    server = _Server((host, 0), _Handler)
    server.hub = hub
    ready = threading.Event()

    def run() -> None:
        ready.set()
        server.serve_forever(poll_interval=0.05)

    thread = threading.Thread(target=run, name="loopback-hub", daemon=True)
    thread.start()
    if not ready.wait(START_TIMEOUT):
        raise RuntimeError("loopback hub did not start within 5 s; most likely failed to start server")
    hub.base_url = f"http://{host}:{server.server_address[1]}"
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(START_TIMEOUT)
