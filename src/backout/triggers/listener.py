"""An HTTP listener for Alertmanager's webhook, writing what arrives to the trigger inbox.

Point an Alertmanager receiver at ``http://HOST:PORT/alertmanager``. A malformed body gets
HTTP 400 and is recorded as rejected (the running deploy or watch journals it); each firing
alert is queued for the run, which matches it against its ``alertmanager:`` triggers.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import ValidationError

from backout.errors import UsageError
from backout.store import inbox
from backout.store.db import Store
from backout.triggers.alerts import WebhookPayload

MAX_BODY = 1 << 20


class Listener:
    def __init__(self, store: Store, service: str, run_id: str | None, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.store, self.service, self.run_id = store, service, run_id
        try:
            self.server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), self._handler())
            self.server.daemon_threads = True
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"cannot listen on {address!r}: {exc}",
                hint="use HOST:PORT with a free port, e.g. 127.0.0.1:9095",
            ) from exc
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/alertmanager"

    def __enter__(self) -> Listener:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def accept(self, body: bytes) -> tuple[int, str]:
        """Validate one webhook body and queue it; (HTTP status, message)."""
        try:
            payload = WebhookPayload.model_validate(json.loads(body))
        except (ValueError, ValidationError) as exc:
            reason = f"malformed Alertmanager webhook: {str(exc).splitlines()[0][:300]}"
            self._put("rejected", reason, {})
            return 400, reason
        firing = [a for a in payload.alerts if a.status == "firing"]
        for alert in firing:
            name = alert.labels.get("alertname", "alert")
            self._put(
                "alertmanager",
                name,
                {
                    "labels": alert.labels,
                    "annotations": alert.annotations,
                    "group_key": payload.groupKey,
                },
            )
        return 200, f"{len(firing)} firing alert(s) queued"

    def _put(self, kind: str, reason: str, data: dict[str, Any]) -> None:
        with self.store.session() as session:
            inbox.put(session, self.service, kind, reason, "alertmanager", data, self.run_id)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path.rstrip("/") != "/alertmanager":
                    self._reply(404, "POST Alertmanager webhooks to /alertmanager")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._reply(413, "body too large")
                    return
                self._reply(*listener.accept(self.rfile.read(length)))

            def _reply(self, status: int, message: str) -> None:
                body = json.dumps({"status": status, "message": message}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
