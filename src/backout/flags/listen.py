"""Run the flag server (``backout flags serve``): the token, the listening socket, uvicorn.

- The socket is bound here, before uvicorn starts, and handed to it: a busy port or an
  address this machine does not have is a one-line :class:`UsageError` (exit 2), with no
  window for another process to take the port in between.
- A non-loopback address needs a token, unless the caller explicitly allows serving without
  one (a proxy in front authenticates); then :attr:`FlagListener.warning` says so, loudly.
- uvicorn reads request heads; its keep-alive timeout only starts after a response, so a
  client that connects and sends nothing, or half a head, would hold a connection forever.
  :func:`_head_deadline_protocol` closes such a connection after ``Limits.head_timeout``.
- SIGTERM and SIGINT stop the server gracefully: no new connections, in-flight requests
  finish (for up to ``Limits.shutdown_timeout``), and :func:`serve` returns which signal
  stopped it, so the CLI can say so and exit 128 + the signal number.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import re
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from backout.errors import UsageError
from backout.flags.guard import Limits, ServedTraffic
from backout.flags.server import create_app
from backout.store.db import open_store

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
TOKEN_ENV = "BACKOUT_FLAGS_TOKEN"  # noqa: S105 (the variable's name, not a token)
MIN_TOKEN_LENGTH = 16
_TOKEN = re.compile(r"[\x21-\x7e]+")  # visible ASCII: it must fit in an HTTP header as is
_GENERATE_ONE = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > flags.token"


# --- the token ------------------------------------------------------------------------------
def load_token(token_file: str | None, env_token: str | None) -> str | None:
    """The bearer token from ``--token-file`` or the environment, or None for no token."""
    if token_file is not None and env_token:
        raise UsageError(
            f"a token from both --token-file and {TOKEN_ENV}",
            hint=f"give the token one way: unset {TOKEN_ENV} or drop --token-file",
        )
    if token_file is not None:
        return _checked_token(_read_token(Path(token_file)), f"token file {token_file}")
    if env_token is not None:
        return _checked_token(env_token.strip(), TOKEN_ENV)
    return None


def _read_token(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(
            f"cannot read token file {path}: {reason}",
            hint=f"write one token on one line, e.g. {_GENERATE_ONE}",
        ) from None


def _checked_token(token: str, where: str) -> str:
    if not _TOKEN.fullmatch(token):
        problem = "is empty" if not token else "has spaces or characters a header cannot carry"
        raise UsageError(
            f"{where} {problem}", hint=f"use letters, digits and punctuation: {_GENERATE_ONE}"
        )
    if len(token) < MIN_TOKEN_LENGTH:
        raise UsageError(
            f"{where} is {len(token)} characters; a token needs at least {MIN_TOKEN_LENGTH}",
            hint=f"make a long random one: {_GENERATE_ONE}",
        )
    return token


# --- the socket -----------------------------------------------------------------------------
@dataclass
class FlagListener:
    sock: socket.socket
    token: str | None
    warning: str = ""  # said before serving: e.g. no token on a non-loopback address

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def listen(host: str, port: int, token: str | None, *, allow_no_token: bool) -> FlagListener:
    """Bind and listen on ``host:port`` (0 picks a free port), or explain why not (exit 2)."""
    if allow_no_token and token is not None:
        raise UsageError(
            "--no-token and a token at once", hint="drop --no-token to require the token"
        )
    sock = _bind(host, port)
    address = str(sock.getsockname()[0])
    if token is not None or ipaddress.ip_address(address.partition("%")[0]).is_loopback:
        return FlagListener(sock, token)
    if not allow_no_token:
        sock.close()
        raise UsageError(
            f"refusing to serve flags on {_named(host, address)} without a token: anyone who "
            "can reach it could read every flag",
            hint=f"give --token-file PATH or {TOKEN_ENV}; or bind 127.0.0.1; or, when a proxy "
            "in front authenticates, pass --no-token",
        )
    warning = (
        f"WARNING: serving flags on {address} with no token (--no-token): anyone who can "
        "reach this port can read every flag"
    )
    return FlagListener(sock, None, warning)


def _named(host: str, address: str) -> str:
    return host if host == address else f"{host} ({address})"


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise UsageError(
            f"cannot listen on {host!r}: {exc.strerror}",
            hint="give an address of this machine: 127.0.0.1, ::1, 0.0.0.0 or a host name",
        ) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise _bind_error(host, port, exc) from None
    return sock


def _bind_error(host: str, port: int, exc: OSError) -> UsageError:
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return UsageError(
            f"cannot listen on {where}: the port is in use",
            hint=f"pick another --port, or stop what listens there (ss -ltnp 'sport = :{port}')",
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return UsageError(
            f"cannot listen on {where}: this machine has no such address",
            hint="give one of this machine's addresses (ip -brief address), or 0.0.0.0",
        )
    if exc.errno == errno.EACCES:
        return UsageError(
            f"cannot listen on {where}: permission denied",
            hint="ports below 1024 need privileges; pick --port 1024 or above",
        )
    return UsageError(f"cannot listen on {where}: {exc.strerror}")


# --- uvicorn --------------------------------------------------------------------------------
class _HeadDeadline(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head is still incomplete
    ``head_timeout`` seconds after the connection opened or the head's first byte came."""

    head_timeout = Limits().head_timeout
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._stop_timer()

    def _watch_head(self) -> None:
        # IDLE: h11 has not seen a whole request line + headers (a body or a response is
        # covered elsewhere: the body deadline, and uvicorn's keep-alive after a response)
        waiting = self.conn.their_state is h11.IDLE and not self.transport.is_closing()
        if not waiting:
            self._stop_timer()
        elif self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._too_slow)

    def _too_slow(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()

    def _stop_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None


def _head_deadline_protocol(seconds: float) -> type[H11Protocol]:
    return type("HeadDeadlineProtocol", (_HeadDeadline,), {"head_timeout": seconds})


class FlagServer(uvicorn.Server):
    """uvicorn's server, remembering the first signal that asked it to stop."""

    stopped_by: int | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.stopped_by is None:
            self.stopped_by = sig
        super().handle_exit(sig, frame)


def make_server(app: Any, limits: Limits) -> FlagServer:
    """A uvicorn server for ``app`` with ``limits``; run it with ``.run(sockets=[sock])``."""
    config = uvicorn.Config(
        app,
        http=_head_deadline_protocol(limits.head_timeout),
        h11_max_incomplete_event_size=limits.max_head,
        timeout_keep_alive=limits.keep_alive,
        timeout_graceful_shutdown=limits.shutdown_timeout,
        ws="none",  # no websockets here: an Upgrade request is a plain request
        lifespan="off",
        log_level="warning",
        access_log=False,
    )
    return FlagServer(config)


@dataclass
class ServeStopped:
    """How :func:`serve` ended: the signal that stopped it (None: it stopped on its own)."""

    signal: int | None
    traffic: ServedTraffic

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else ""


def serve(
    store_url: str,
    listener: FlagListener,
    *,
    limits: Limits | None = None,
    ready: Callable[[], None] = lambda: None,
) -> ServeStopped:
    """Serve flags on ``listener`` until SIGTERM or SIGINT. ``ready`` runs once the store is
    open and those signals stop the server gracefully (say "serving" there, not before)."""
    limits = limits or Limits()
    traffic = ServedTraffic()
    with listener.sock:
        store = open_store(store_url)
        try:
            server = make_server(
                create_app(store, token=listener.token, limits=limits, traffic=traffic), limits
            )
            with signals_stop(server):
                ready()
                server.run(sockets=[listener.sock])
        finally:
            store.dispose()
    return ServeStopped(server.stopped_by, traffic)


class Stoppable(Protocol):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None: ...


@contextmanager
def signals_stop(server: Stoppable) -> Iterator[None]:
    """SIGTERM and SIGINT stop ``server`` (a uvicorn server) from now on, also before
    uvicorn installs its own handlers (it raises the signal again once it has stopped: that
    lands here too, instead of killing the process or raising KeyboardInterrupt), so the
    caller can report the stop and exit 128 + N itself."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, server.handle_exit) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
