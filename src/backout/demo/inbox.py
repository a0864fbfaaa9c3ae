"""The demo's inbox: a local HTTP receiver standing in for Slack or PagerDuty, to which the
demo plan's `notify:` sends every notification, signed the Standard Webhooks way. It
checks each signature with the reference verifier (`backout.channels.verify`) and keeps
what arrived, so the summary can show what people would have been told."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from backout.channels import verify

INBOX_ENV = "BACKOUT_DEMO_INBOX_PORT"
SIGNING_KEY = "whsec_ZGVtby1zaWduaW5nLWtleS0wMQ=="  # the demo plan's, not a secret


@dataclass
class Inbox:
    """``with Inbox() as inbox:`` — serves on a free port until the block ends."""

    port: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Inbox:
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    verify(SIGNING_KEY, dict(self.headers.items()), body)
                    message = json.loads(body)
                except ValueError:
                    with inbox.lock:
                        inbox.refused += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                with inbox.lock:
                    inbox.received.append({"arrived_at": time.time(), **message})
                self.send_response(200)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), name="demo-inbox", daemon=True
        )
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def messages(self) -> list[dict[str, Any]]:
        """What arrived, oldest first: event, title, severity, when."""
        with self.lock:
            arrived = list(self.received)
        return [
            {
                "event": m["type"],
                "title": m["data"]["title"],
                "severity": m["data"]["severity"],
                "at": m["data"]["at"],
                "arrived_at": m["arrived_at"],
            }
            for m in arrived
        ]
