"""Fixtures for the plan-layer and action tests: plan files on disk and a real HTTP server."""

from __future__ import annotations

import json
import socket
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Reply:
    status: int
    body: str
    content_type: str

    @classmethod
    def of(cls, spec: int | tuple[int, object]) -> Reply:
        """``503`` or ``(200, "text")`` or ``(200, {"json": "body"})``."""
        status, body = (spec, "") if isinstance(spec, int) else spec
        if isinstance(body, str):
            return cls(status, body, "text/plain")
        return cls(status, json.dumps(body), "application/json")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    """Routes answer with their replies in order; the last reply repeats."""

    base: str = ""
    routes: dict[str, list[Reply]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def route(self, path: str, *replies: int | tuple[int, object]) -> str:
        """Serve ``replies`` at ``path`` in order (the last repeats); return its URL."""
        with self.lock:
            self.routes[path] = [Reply.of(spec) for spec in replies]
        return self.url(path)

    def url(self, path: str) -> str:
        return self.base + path

    def answer(self, request: Request) -> Reply:
        with self.lock:
            self.requests.append(request)
            replies = self.routes.get(request.path)
            if not replies:
                return Reply.of((404, "not found"))
            return replies.pop(0) if len(replies) > 1 else replies[0]


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = Request(self.command, self.path, dict(self.headers.items()), body)
            reply = server.answer(request)
            data = reply.body.encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _handle

        def log_message(self, format: str, *args: object) -> None:
            return None

    return Handler


@pytest.fixture
def http_server() -> Iterator[Server]:
    """A real ThreadingHTTPServer on a free local port, serving ``Server.routes``."""
    state = Server()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def closed_port_url() -> Iterator[str]:
    """A local URL on which nothing listens (connection refused). The port stays bound, but
    not listening, for the whole test, so no other process can start serving on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/health"


@pytest.fixture
def write_plan(tmp_path: Path) -> Callable[..., Path]:
    """Write dedented YAML to ``tmp_path/name``; line 1 is the first line of the text."""

    def write(text: str, name: str = "plan.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write
