"""One HTTP request to the webhook listener: its path, its credential, its framing and its
deadline, and the JSON reply. What a webhook's body means is the listener's (``Owner``).

A request must arrive whole within the owner's ``deadline`` seconds (a client sending a byte
a second would otherwise hold its thread forever); its body is never read without a
``Content-Length`` of at most ``MAX_BODY`` bytes.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol

from backout.triggers.listener_auth import Credential

MAX_BODY = 1 << 20
REQUEST_DEADLINE_S = 10.0
PATH = "/alertmanager"


class Owner(Protocol):
    """What a request asks of the listener it arrived at: the one path it serves, the
    credential its ``Authorization`` header must carry (None: the body is signed instead,
    and ``accept`` checks the signature), and what a body that arrived whole means."""

    @property
    def credential(self) -> Credential | None: ...

    @property
    def deadline(self) -> float: ...

    @property
    def path(self) -> str: ...

    @property
    def what(self) -> str:
        """What is POSTed here, for the replies (e.g. "Alertmanager webhooks")."""
        ...

    def accept(self, body: bytes, headers: Message) -> tuple[int, str]:
        """Take a webhook body that arrived whole; (HTTP status, message)."""
        ...

    def reject(self, reason: str, client: str) -> None:
        """Journal a refused request."""
        ...


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    journal: str = ""  # what to journal as rejected ('' for nothing)
    headers: dict[str, str] = field(default_factory=dict)


class _Deadline:
    """Ends a request still arriving after ``seconds``. A socket timeout bounds one read;
    a client that sends a byte a second passes every read and would never be cut off."""

    RESPONSE = b"HTTP/1.0 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self.sock, self.lock = sock, threading.Lock()
        self.stopped = self.expired = False
        self.timer = threading.Timer(seconds, self._expire)
        self.timer.daemon = True
        self.timer.start()

    def _expire(self) -> None:
        with self.lock:
            if self.stopped:
                return
            self.expired = True
        with contextlib.suppress(OSError):
            self.sock.sendall(self.RESPONSE)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the handler's blocked read

    def stop(self) -> bool:
        """The request has arrived: stop the clock. False if it had already run out."""
        with self.lock:
            self.stopped = True
        self.timer.cancel()
        return not self.expired


def _content_length(headers: Message) -> int | Refusal:
    """The body's length, checked before a byte of it is read."""
    if headers.get("Transfer-Encoding"):
        return _bad(411, "a chunked body is not accepted: send Content-Length")
    values = {v.strip() for v in headers.get_all("Content-Length") or []}
    if not values:
        return _bad(411, "Content-Length is required")
    if len(values) > 1:
        return _bad(400, "conflicting Content-Length headers")
    text = values.pop()
    if not re.fullmatch(r"[0-9]{1,19}", text):
        return _bad(400, f"Content-Length {text[:20]!r} is not a number of bytes")
    if int(text) > MAX_BODY:
        return _bad(413, f"a body of {int(text)} bytes is over the limit of {MAX_BODY} bytes")
    return int(text)


def _bad(status: int, message: str) -> Refusal:
    return Refusal(status, message, f"bad request ({status}): {message}")


class Handler(BaseHTTPRequestHandler):
    owner: Owner
    server_version, sys_version = "backout", ""
    default_request_version = "HTTP/1.0"  # a garbled request line still gets a status line

    def setup(self) -> None:
        super().setup()
        self.clock = _Deadline(self.connection, self.owner.deadline)

    def finish(self) -> None:
        self.clock.stop()
        with contextlib.suppress(OSError):  # flushing to a client that is gone
            super().finish()

    def do_POST(self) -> None:
        received = self._receive()
        if not self.clock.stop():
            return  # out of time: the clock answered 408 and closed the connection
        if isinstance(received, Refusal):
            if received.journal:
                self.owner.reject(received.journal, self.client_address[0])
            self._reply(received.status, received.message, received.headers)
            return
        self._reply(*self.owner.accept(received, self.headers))

    def do_GET(self) -> None:
        self.clock.stop()
        self._reply(405, f"POST {self.owner.what} to {self.owner.path}", {"Allow": "POST"})

    def _receive(self) -> bytes | Refusal:
        """The body, or why not; all of it runs against the deadline."""
        if self.path.rstrip("/") != self.owner.path:
            return Refusal(404, f"POST {self.owner.what} to {self.owner.path}")
        credential = self.owner.credential
        why = credential.refusal(self.headers.get("Authorization")) if credential else ""
        if credential and why:
            return Refusal(
                401,
                f"unauthenticated: send the listener's {credential.scheme} credential",
                f"unauthenticated request from {self.client_address[0]}: {why}",
                {"WWW-Authenticate": credential.challenge},
            )
        length = _content_length(self.headers)
        if isinstance(length, Refusal):
            return length
        try:
            body = self.rfile.read(length)
        except TimeoutError:  # the per-read timeout beat the deadline's clock to it
            return Refusal(408, f"the request did not arrive within {self.owner.deadline:g}s")
        except OSError:
            body = b""
        if len(body) < length:
            return Refusal(400, "the body ended before Content-Length bytes")
        return body

    def _reply(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        body = json.dumps({"status": status, "message": message}).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
        with contextlib.suppress(OSError):  # the client may be gone; nothing to tell it
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The server's own errors (a garbled request line, an unknown method) as JSON too."""
        self.close_connection = True
        self._reply(code, message or HTTPStatus(code).phrase)

    def log_message(self, format: str, *args: Any) -> None:
        return


def handler_for(owner: Owner) -> type[Handler]:
    """The handler class for the requests that arrive at ``owner``."""

    served = owner  # a class body cannot read a name it assigns from the function's scope

    class OwnedHandler(Handler):
        owner = served
        # per read; the deadline (a little shorter) bounds the whole request
        timeout = served.deadline + 1.0

    return OwnedHandler
