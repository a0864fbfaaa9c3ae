"""What stands between the network and the flag server's routes: the bearer token, caps on
head and body size, the body read deadline, and the JSON nesting cap for contexts.

:class:`Guard` is a pure ASGI middleware. It answers 431 to a head over
:attr:`Limits.max_head`; 401, before reading anything, when a token is required and missing
or wrong; 413 when the declared or received body is larger than :attr:`Limits.max_body`;
408 when the body does not arrive within :attr:`Limits.body_timeout`. Otherwise the routes
get the whole body, already read. Its refusals carry OFREP's ``errorCode``/``errorDetails``
and ``Connection: close``, so the server drops a client refused mid-body, not reads on.

The request head has its own deadline, set where uvicorn reads it (:mod:`.listen`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SINGLE_PREFIX = "/ofrep/v1/evaluate/flags/"
MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Caps and deadlines for one server; every one has a default, none is unbounded."""

    max_body: int = MIB  # bytes of request body (413 above)
    max_depth: int = 32  # nesting of JSON arrays/objects in a body (400 PARSE_ERROR above)
    max_head: int = 16 * 1024  # bytes of request line + headers (400 or 431 above)
    head_timeout: float = 10.0  # seconds for a request head to arrive (connection closed)
    body_timeout: float = 10.0  # seconds for a request body to arrive (408)
    keep_alive: int = 5  # seconds an idle keep-alive connection stays open
    shutdown_timeout: int = 10  # seconds in-flight requests get to finish on SIGTERM


@dataclass
class ServedTraffic:
    """Requests handled, and requests cut off when the server stopped (for its last line)."""

    handled: int = 0
    cut_off: int = 0


class _TooLarge(Exception):
    pass


class _Gone(Exception):
    """The client disconnected before its body arrived."""


class Guard:
    """Bearer token, body size and body deadline for every request (see the module doc)."""

    def __init__(
        self, app: ASGIApp, *, token: str | None, limits: Limits, traffic: ServedTraffic
    ) -> None:
        self.app = app
        self.token_digest = _digest(token) if token is not None else None
        self.limits = limits
        self.traffic = traffic

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self._guarded(scope, receive, send)
        except asyncio.CancelledError:
            self.traffic.cut_off += 1  # the shutdown's grace period ran out
            raise
        self.traffic.handled += 1

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _head_size(scope) > self.limits.max_head:
            await _refuse(
                scope, send, 431, f"the request head is over {self.limits.max_head} bytes"
            )
            return
        headers = _headers(scope)
        if self.token_digest is not None and not self._authorized(headers):
            await _refuse(
                scope, send, 401, "missing or wrong token: send Authorization: Bearer <token>"
            )
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limits.max_body:
            await _refuse(scope, send, 413, self._too_large())
            return
        try:
            async with asyncio.timeout(self.limits.body_timeout):
                body = await _read_body(receive, self.limits.max_body)
        except _TooLarge:
            await _refuse(scope, send, 413, self._too_large())
        except TimeoutError:
            seconds = f"{self.limits.body_timeout:g}"
            await _refuse(scope, send, 408, f"the body did not arrive within {seconds}s")
        except _Gone:
            return  # nobody to answer
        else:
            await self.app(scope, _replay(body, receive), send)

    def _authorized(self, headers: dict[str, str]) -> bool:
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or self.token_digest is None:
            return False
        # equal-length digests, compared in constant time: neither length nor content leaks
        return hmac.compare_digest(_digest(given.strip()), self.token_digest)

    def _too_large(self) -> str:
        return f"the body is larger than {_size(self.limits.max_body)}"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _size(count: int) -> str:
    return f"{count // MIB} MiB" if count % MIB == 0 else f"{count} bytes"


def _head_size(scope: Scope) -> int:
    """About the bytes of the request line and headers. uvicorn's h11 caps a head that is
    still arriving (``Limits.max_head``); one that arrived whole, in one read, is caught here."""
    line = len(scope.get("raw_path") or b"") + len(scope.get("query_string", b""))
    return line + sum(len(name) + len(value) + 4 for name, value in scope["headers"])


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Gone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the routes: the body read already, then the client's own messages."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(scope: Scope, send: Send, status: int, details: str) -> None:
    body: dict[str, Any] = {"errorCode": "GENERAL", "errorDetails": details}
    path = str(scope.get("path", ""))
    if path.startswith(SINGLE_PREFIX):
        body = {"key": path.removeprefix(SINGLE_PREFIX), **body}
    data = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
        (b"connection", b"close"),
    ]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="backout flags"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


# --- JSON nesting -----------------------------------------------------------------------------
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_AS_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


def too_deep(body: bytes, limit: int) -> bool:
    """Whether arrays and objects in ``body`` nest more than ``limit`` levels deep.

    Checked before parsing, so a hostile body never reaches the recursive parser: strings
    are cut out, brackets kept, and each round removes the innermost ``[]`` pairs — as many
    rounds as the nesting is deep. Anything unbalanced counts as too deep (it is not JSON).
    """
    left = _STRING.sub(b"", body).translate(_AS_SQUARE, _NOT_BRACKETS)
    for _ in range(limit):
        if not left:
            return False
        shorter = left.replace(b"[]", b"")
        if len(shorter) == len(left):
            return True
        left = shorter
    return bool(left)
