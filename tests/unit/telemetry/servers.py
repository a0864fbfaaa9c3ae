"""A real local HTTP server whose answers a test sets (and changes) between reads, and a
clock the test moves."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit


@dataclass
class Endpoint:
    """What the server answers right now: status, body, and how long it sleeps first.
    ``statuses`` (if set) are used in turn, one per request, the last one repeating."""

    body: str = ""
    status: int = 200
    delay: float = 0.0
    content_type: str = "text/plain; version=0.0.4"
    statuses: list[int] = field(default_factory=list)
    requests: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    base: str = ""

    def serve_json(self, document: object, status: int = 200) -> None:
        self.body, self.status = json.dumps(document), status
        self.content_type = "application/json"

    def next_status(self) -> int:
        with self.lock:
            if len(self.statuses) > 1:
                return self.statuses.pop(0)
            return self.statuses[0] if self.statuses else self.status

    def url(self, path: str = "/metrics") -> str:
        return self.base + path


def handler(endpoint: Endpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            with endpoint.lock:
                endpoint.requests.append((parts.path, parse_qs(parts.query)))
            time.sleep(endpoint.delay)
            data = endpoint.body.encode()
            try:
                self.send_response(endpoint.next_status())
                self.send_header("Content-Type", endpoint.content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting: that is what a timeout test wants

        def log_message(self, format: str, *args: object) -> None:
            return None

    return Handler


class Clock:
    """A clock the test moves: readings get exact timestamps, rates exact intervals."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
