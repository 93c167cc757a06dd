"""A stand-in for Kaggle's HTTP API on 127.0.0.1, for the real kagglehub client to talk to.

kagglehub (through kagglesdk) talks to ``http://localhost:7777`` when
``KAGGLE_API_ENVIRONMENT=TEST``. It calls, as POSTs with a JSON body:

- ``/api/v1/datasets.DatasetApiService/GetDataset`` for the current version
  (``{"currentVersionNumber": N}``), when the handle names no version;
- ``/api/v1/datasets.DatasetApiService/DownloadDataset``, answered with a redirect to the archive,
  which it GETs (``Content-Length``, ``Accept-Ranges: bytes``, ``x-goog-hash: md5=…``) and, after
  an interruption, GETs again with ``Range: bytes=N-``.

The server serves one archive per (slug, version), can fail on purpose (a status for the next
calls, a cut-off body, a wrong checksum, a body that never ends), records every request, answers at most
``MAX_REQUESTS`` and binds loopback only; the fixture that starts it stops it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = 7777  # fixed by kagglesdk for KAGGLE_API_ENVIRONMENT=TEST
MAX_REQUESTS = 60
ENDLESS_BYTES = 256 * 2**20  # what an "endless" body sends at most, if the client never stops
ENDLESS_SECONDS = 30
API = "/api/v1/datasets.DatasetApiService/"


@dataclass
class Request:
    method: str
    path: str
    body: dict
    headers: dict[str, str]


@dataclass
class Behaviour:
    """What the stand-in does; tests change it between calls."""

    archives: dict[tuple[str, int], bytes] = field(default_factory=dict)  # (owner/name, version)
    current: dict[str, int] = field(default_factory=dict)  # owner/name -> current version
    failures: deque[int] = field(default_factory=deque)  # statuses for the next API calls
    private: bool = False  # refuse calls without an Authorization header (401)
    cut_next_download: bool = False  # send half the archive, then drop the connection
    endless: bool = False  # announce no size and send zeros until the client hangs up (bounded)
    wrong_checksum: bool = False
    requests: list[Request] = field(default_factory=list)

    def add(self, slug: str, version: int, archive: bytes, current: bool = True) -> None:
        self.archives[(slug, version)] = archive
        if current:
            self.current[slug] = version

    def downloads(self) -> list[Request]:
        return [r for r in self.requests if r.method == "GET" and r.path.startswith("/files/")]


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def handler_for(behaviour: Behaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10  # a client that stalls does not hold a thread for ever

        def log_message(self, *args: object) -> None:  # quiet test output
            pass

        def _record(self, body: dict) -> bool:
            behaviour.requests.append(Request(self.command, self.path, body, dict(self.headers)))
            if len(behaviour.requests) > MAX_REQUESTS:
                self._json(503, {"code": 503, "message": "stand-in request budget spent"})
                return False
            return True

        def _json(self, status: int, payload: dict, extra: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if not self._record(body):
                return
            if behaviour.failures:
                status = behaviour.failures.popleft()
                self._json(status, {"code": status, "message": f"stand-in {status}"}, {"Retry-After": "0"})
                return
            if behaviour.private and "Authorization" not in self.headers:
                self._json(401, {"code": 401, "message": "Unauthenticated"})
                return
            slug = f"{body.get('ownerSlug')}/{body.get('datasetSlug')}"
            if self.path == API + "GetDataset":
                if slug not in behaviour.current:
                    self._json(404, {"code": 404, "message": "Not found"})
                    return
                self._json(200, {"ref": slug, "currentVersionNumber": behaviour.current[slug]})
            elif self.path == API + "DownloadDataset":
                version = int(body.get("datasetVersionNumber") or 0)
                if (slug, version) not in behaviour.archives:
                    self._json(404, {"code": 404, "message": "Not found"})
                    return
                self.send_response(302)
                self.send_header("Location", f"/files/{slug}/{version}.zip")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._json(404, {"code": 404, "message": "no such call"})

        def do_GET(self) -> None:
            if not self._record({}):
                return
            owner, name, file_name = self.path.removeprefix("/files/").split("/")
            data = behaviour.archives.get((f"{owner}/{name}", int(file_name.removesuffix(".zip"))))
            if data is None:
                self._json(404, {"code": 404, "message": "Not found"})
                return
            if behaviour.endless:
                self._endless()
                return
            start = 0
            if (wanted := self.headers.get("Range", "")).startswith("bytes="):
                start = int(wanted.removeprefix("bytes=").split("-")[0])
            digest = _md5(data + b"x") if behaviour.wrong_checksum else _md5(data)
            self.send_response(206 if start else 200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", str(len(data) - start))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("x-goog-hash", f"crc32c=AAAAAA==,md5={digest}")
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if behaviour.cut_next_download:
                behaviour.cut_next_download = False
                self.wfile.write(data[start : start + (len(data) - start) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(data[start:])

        def _endless(self) -> None:
            """A body with no announced size that goes on until the client stops reading."""
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            chunk, sent, deadline = bytes(2**16), 0, time.monotonic() + ENDLESS_SECONDS
            try:
                while sent < ENDLESS_BYTES and time.monotonic() < deadline:
                    self.wfile.write(chunk)
                    sent += len(chunk)
            except OSError:  # the client hung up: what a bounded download does
                pass

    return Handler


class StandIn:
    """The server, running on a thread: ``with StandIn() as kaggle: ...``."""

    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.server = ThreadingHTTPServer(("127.0.0.1", PORT), handler_for(self.behaviour))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1})

    def __enter__(self) -> Behaviour:
        self.thread.start()
        return self.behaviour

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
