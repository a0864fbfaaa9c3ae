"""An HTTP listener for Alertmanager's webhook, writing what arrives to the trigger inbox.

Point an Alertmanager receiver at ``http://HOST:PORT/alertmanager`` with the listener's
credential in its ``http_config`` (docs/triggers.md#alertmanager). Whoever can POST here can
back the service out, so a credential is always required, on loopback too: any local
process could reach a loopback port.

What the listener answers, and what the running deploy or watch journals of it:

* 401 (with ``WWW-Authenticate``) without the right credential: ``alert_rejected``;
* 411 / 400 / 413 for a missing, malformed or too large ``Content-Length`` (the body is
  never read then), 400 for a body that is not Alertmanager's webhook: ``alert_rejected``;
* 200 for a webhook: every alert in it is queued for the run, which journals each one,
  acted on or not (watcher.py says why not);
* 503 if the store cannot take it (Alertmanager retries a 5xx, not a 4xx).

A request must arrive whole within ``deadline`` seconds (a client sending a byte a second
would otherwise hold its thread forever), and at most ``MAX_CONNECTIONS`` are served at once.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import hmac
import ipaddress
import json
import os
import re
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from backout.errors import BackoutError, UsageError
from backout.store import inbox
from backout.store.db import Store
from backout.triggers.alerts import WebhookPayload

MAX_BODY = 1 << 20
REQUEST_DEADLINE_S = 10.0
MAX_CONNECTIONS = 16
MIN_SECRET_CHARS = 16
REJECTIONS_PER_MINUTE = 10  # journalled; a flood of bad requests must not flood the journal
TOKEN_ENV = "BACKOUT_LISTEN_TOKEN"  # noqa: S105 (the variable's name, not a token)
USER_ENV = "BACKOUT_LISTEN_USER"
PATH = "/alertmanager"
KIND = "alertmanager"  # the inbox kind and actor of a queued alert
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")
_ADDRESS = re.compile(
    r"\[(?P<v6>[0-9A-Fa-f:.%\w]+)\]:(?P<p6>[0-9]+)|(?P<host>[^\s:\[\]]+):(?P<port>[0-9]+)"
)
_CREDENTIAL_HINT = (
    "put a random token in a file (`openssl rand -hex 32 > token; chmod 600 token`), pass "
    "--listen-token-file token (or set BACKOUT_LISTEN_TOKEN) and give Alertmanager the same "
    "token in its receiver's http_config (docs/triggers.md#alertmanager)"
)


# --- the credential ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Credential:
    """The secret Alertmanager must send: a bearer token, or, with ``user``, the password of
    HTTP basic auth. ``source`` says where it came from (never the secret itself)."""

    secret: str = field(repr=False)
    source: str
    user: str | None = None

    @property
    def scheme(self) -> str:
        return "Basic" if self.user else "Bearer"

    @property
    def challenge(self) -> str:
        return f'{self.scheme} realm="backout"'

    def refusal(self, header: str | None) -> str:
        """Why an ``Authorization`` header does not authenticate; '' when it does."""
        if not header:
            return "no Authorization header"
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != self.scheme.lower():
            return f"{scheme[:20]!r} credentials where {self.scheme} was expected"
        if self.user is None:
            return "" if _same(value.strip().encode(), self.secret.encode()) else "wrong token"
        return "" if self._basic(value.strip()) else "wrong user or password"

    def _basic(self, value: str) -> bool:
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return False
        user, colon, password = decoded.partition(b":")
        # both compared, always: the time taken must not tell which of the two was wrong
        same_user = _same(user, (self.user or "").encode())
        same_password = _same(password, self.secret.encode())
        return bool(colon) and same_user and same_password


def _same(given: bytes, expected: bytes) -> bool:
    """Constant time, and hashed first so that not even the secret's length leaks."""
    return hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(expected).digest())


def load_credential(
    token_file: str | None, user: str | None, environ: Mapping[str, str]
) -> Credential | None:
    """The listener's credential: ``--listen-token-file`` (else ``BACKOUT_LISTEN_TOKEN``), sent
    as a bearer token, or as the basic-auth password of ``--listen-user`` (else
    ``BACKOUT_LISTEN_USER``) when one is given. None if no secret is configured."""
    if token_file:
        secret, source = _read_secret(token_file), f"--listen-token-file {token_file}"
    elif environ.get(TOKEN_ENV):
        secret, source = environ[TOKEN_ENV].strip(), TOKEN_ENV
    else:
        return None
    _check_secret(secret, source)
    name = user if user is not None else environ.get(USER_ENV) or None
    if name is not None:
        _check_user(name)
    return Credential(secret, source, name)


def _read_secret(path: str) -> str:
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(4097)
    except OSError as exc:
        raise UsageError(
            f"cannot read --listen-token-file {path}: {exc.strerror or exc}",
            hint="give the path of a file holding the listener's token",
        ) from exc
    if len(data) > 4096:
        raise UsageError(
            f"--listen-token-file {path} is over 4 KiB: not a token",
            hint="the file holds only the token, e.g. `openssl rand -hex 32 > token`",
        )
    try:
        # like Alertmanager's credentials_file: surrounding whitespace is not part of it
        return data.decode().strip()
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"--listen-token-file {path} is not text",
            hint="the file holds only the token, e.g. `openssl rand -hex 32 > token`",
        ) from exc


def _check_secret(secret: str, source: str) -> None:
    if not _VISIBLE_ASCII.fullmatch(secret):
        raise UsageError(
            f"the listener token from {source} must be visible ASCII characters, without spaces",
            hint="e.g. `openssl rand -hex 32`",
        )
    if len(secret) < MIN_SECRET_CHARS:
        raise UsageError(
            f"the listener token from {source} has {len(secret)} characters; "
            f"at least {MIN_SECRET_CHARS} are needed",
            hint="a guessable token lets anyone back the service out; `openssl rand -hex 32`",
        )


def _check_user(user: str) -> None:
    if not _VISIBLE_ASCII.fullmatch(user) or ":" in user:
        raise UsageError(
            f"--listen-user {user!r}: a basic-auth user name is visible ASCII without ':' "
            "or spaces",
            hint="e.g. --listen-user alertmanager",
        )


# --- the address ------------------------------------------------------------------------------
class ListenAddress(str):
    """``HOST:PORT`` as the user wrote it, carrying what the listener needs to bind and to
    authenticate. A str, so it passes unchanged through the verbs' ``listen`` argument."""

    host: str
    port: int
    credential: Credential

    def __new__(cls, text: str, host: str, port: int, credential: Credential) -> ListenAddress:
        address = super().__new__(cls, text)
        address.host, address.port, address.credential = host, port, credential
        return address


def listen_address(
    text: str,
    token_file: str | None = None,
    user: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ListenAddress:
    """Check ``--listen HOST:PORT`` and its credential; UsageError (exit 2) says what is wrong."""
    host, port = _host_port(text)
    credential = load_credential(token_file, user, os.environ if environ is None else environ)
    if credential is None:
        raise UsageError(_no_credential(text, host), hint=_CREDENTIAL_HINT)
    return ListenAddress(text, host, port, credential)


def _host_port(text: str) -> tuple[str, int]:
    match = _ADDRESS.fullmatch(text.strip())
    if not match:
        raise UsageError(
            f"--listen {text!r} is not HOST:PORT",
            hint="e.g. --listen 127.0.0.1:9095 ([::1]:9095 for IPv6)",
        )
    host = match["v6"] or match["host"]
    digits = match["p6"] or match["port"]
    if len(digits) > 5 or not 1 <= int(digits) <= 65535:
        raise UsageError(
            f"--listen {text!r}: port {digits} is out of range",
            hint="a port is a number from 1 to 65535, e.g. 127.0.0.1:9095",
        )
    return host, int(digits)


def _no_credential(text: str, host: str) -> str:
    if _is_loopback(host):
        return (
            f"--listen {text} needs a credential: without one, any local process could POST "
            "an alert and back the service out"
        )
    return (
        f"refusing to listen on {text} without a credential: it is not a loopback address, "
        "so anyone who can reach it could POST an alert and back the service out"
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


# --- the server -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    journal: str = ""  # what to journal as rejected ('' for nothing)
    headers: dict[str, str] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    # a slow client must never keep the run from ending, nor the command from exiting
    daemon_threads, block_on_close = True, False
    request_queue_size = 64  # a burst of connections waits to be accepted, not refused

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer's own looks the host's name up in DNS, which can hang for seconds
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        # a flood of connections must not become a flood of threads: over the limit, close
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except RuntimeError:  # no thread could be started
            self.slots.release()
            self.shutdown_request(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Never a traceback on the operator's terminal: a client that went away is no
        news, anything else is one line."""
        error = sys.exc_info()[1]
        if error is None or isinstance(error, OSError):
            return
        print(
            f"backout: listener: request from {client_address[0]} failed: "
            f"{type(error).__name__}: {error}",
            file=sys.stderr,
        )


class _Server6(_Server):
    address_family = socket.AF_INET6


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


class _Throttle:
    """At most ``limit`` rejections a minute are journalled; the next one journalled says how
    many were left out."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit, self.window = limit, window
        self.lock = threading.Lock()
        self.times: list[float] = []
        self.dropped = 0

    def admit(self) -> int | None:
        """How many were left out before this one, or None to leave this one out too."""
        now = time.monotonic()
        with self.lock:
            self.times = [t for t in self.times if now - t < self.window]
            if len(self.times) >= self.limit:
                self.dropped += 1
                return None
            self.times.append(now)
            dropped, self.dropped = self.dropped, 0
            return dropped


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


class Listener:
    """Serves ``POST /alertmanager`` while the run runs; bind errors are UsageError (exit 2)."""

    def __init__(
        self,
        store: Store,
        service: str,
        run_id: str | None,
        address: str,
        deadline: float = REQUEST_DEADLINE_S,
    ) -> None:
        self.address = address if isinstance(address, ListenAddress) else listen_address(address)
        self.credential = self.address.credential
        self.store, self.service = store, service
        self.deadline = deadline
        self._has_run = threading.Event()
        self.run_id = run_id
        self.throttle = _Throttle(REJECTIONS_PER_MINUTE)
        self.server = _bind(self.address, self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def run_id(self) -> str | None:
        return self._run_id

    @run_id.setter
    def run_id(self, value: str | None) -> None:
        # the port is bound before the run exists (a busy port must not leave a run behind)
        self._run_id = value
        if value is not None:
            self._has_run.set()

    def _run(self) -> str | None:
        """The run to queue for; a request arriving before it exists waits for it, or
        its alerts would be queued for no run and never read."""
        self._has_run.wait(self.deadline)
        return self._run_id

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        shown = f"[{host!s}]" if ":" in str(host) else str(host)
        return f"http://{shown}:{port}{PATH}"

    def __enter__(self) -> Listener:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def accept(self, body: bytes) -> tuple[int, str]:
        """Validate one webhook body and queue its alerts; (HTTP status, message)."""
        try:
            payload = WebhookPayload.model_validate(json.loads(body))
        except (ValueError, ValidationError) as exc:
            reason = f"malformed Alertmanager webhook: {str(exc).splitlines()[0][:300]}"
            self.reject(reason, KIND)
            return 400, reason
        run_id = self._run()
        if run_id is None:
            return 503, "the run has not started yet; retry"
        try:
            self._queue(payload, run_id)
        except (BackoutError, SQLAlchemyError) as exc:
            # a 5xx: Alertmanager retries it (it gives up on a 4xx)
            return 503, f"the store cannot take the alerts now ({type(exc).__name__}); retry"
        firing = sum(a.status == "firing" for a in payload.alerts)
        return 200, f"{len(payload.alerts)} alert(s) queued ({firing} firing)"

    def _queue(self, payload: WebhookPayload, run_id: str) -> None:
        with self.store.session() as session:  # all of a webhook's alerts, or none
            for alert in payload.alerts:
                data = alert.entry(payload)
                inbox.put(session, self.service, KIND, alert.name, KIND, data, run_id)

    def reject(self, reason: str, client: str) -> None:
        """Queue a rejection for the run's journal (throttled; never the secret). The
        client gets its 4xx even when the store cannot take the record."""
        dropped = self.throttle.admit()
        if dropped is None:
            return
        data = {"client": client, "left_out": dropped} if dropped else {"client": client}
        run_id = self._run()
        with contextlib.suppress(BackoutError, SQLAlchemyError), self.store.session() as session:
            inbox.put(session, self.service, "rejected", reason, client, data, run_id)

    def _handler(self) -> type[_Handler]:
        listener = self

        class Handler(_Handler):
            owner = listener
            # per read; the deadline (a little shorter) bounds the whole request
            timeout = listener.deadline + 1.0

        return Handler


class _Handler(BaseHTTPRequestHandler):
    owner: Listener
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
        self._reply(*self.owner.accept(received))

    def do_GET(self) -> None:
        self.clock.stop()
        self._reply(405, f"POST Alertmanager webhooks to {PATH}", {"Allow": "POST"})

    def _receive(self) -> bytes | Refusal:
        """The body, or why not; all of it runs against the deadline."""
        if self.path.rstrip("/") != PATH:
            return Refusal(404, f"POST Alertmanager webhooks to {PATH}")
        credential = self.owner.credential
        why = credential.refusal(self.headers.get("Authorization"))
        if why:
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


def _bind(address: ListenAddress, handler: type[_Handler]) -> _Server:
    try:
        infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(
            f"cannot listen on {address}: cannot resolve {address.host!r} ({exc.strerror})",
            hint="use an IP address of this machine, e.g. 127.0.0.1:9095",
        ) from exc
    # "localhost" may resolve to ::1 first; receivers are usually given 127.0.0.1
    family, _, _, _, sockaddr = min(infos, key=lambda info: info[0] != socket.AF_INET)
    server = _Server6 if family == socket.AF_INET6 else _Server
    try:
        return server((str(sockaddr[0]), int(sockaddr[1])), handler)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {address}: {exc.strerror or exc}", hint=_bind_hint(exc, address)
        ) from exc


def _bind_hint(exc: OSError, address: ListenAddress) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"another process listens on port {address.port}; stop it or choose another port"
    if exc.errno == errno.EACCES:
        return "ports below 1024 need privileges; choose a port above 1024, e.g. 9095"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{address.host} is not an address of this machine; e.g. 127.0.0.1"
    return "use HOST:PORT with a free port, e.g. 127.0.0.1:9095"
