"""The access log: one line per request, once its answer is sent, to the logger
``backout.server.access`` (stderr, with the server's other lines)::

    2026-11-30 22:41:07,118 INFO backout.server.access: 127.0.0.1 alice GET /api/v1/runs 200 12.4ms

The actor is the one the request's token named (``-`` when the request never proved who it
is: a refusal, a health check, a static file). A live event stream is logged when it ends,
with its whole duration. The query string is kept (filters, cursors, ``after=``); no token
ever travels in a URL, and the ``Authorization`` header and cookies are never logged.

A plain ASGI middleware, not Starlette's ``BaseHTTPMiddleware``: that one buffers nothing
but runs each response through a task of its own, which an event stream does not need.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOGGER = "backout.server.access"
ACTOR_KEY = "backout_actor"  # where auth leaves the request's actor: scope["state"]
WARM_UP_KEY = "backout_warm_up"  # the server's own warm-up request (server/upkeep.py)
log = logging.getLogger(LOGGER)


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_warm_up(scope):
            await self.app(scope, receive, send)  # the server's own warm-up is no request
            return
        began = time.perf_counter()
        status = [500]  # what a request that raised past every handler answers

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if log.isEnabledFor(logging.INFO):
                log.info(line(scope, status[0], time.perf_counter() - began))


def is_warm_up(scope: Scope) -> bool:
    """Whether the request is the server's own warm-up (server/upkeep.py), which no log
    tells of."""
    return bool(scope.get("state", {}).get(WARM_UP_KEY))


def line(scope: Scope, status: int, seconds: float) -> str:
    """``client actor METHOD path[?query] status duration``."""
    client: Any = scope.get("client") or ("-", 0)
    actor = scope.get("state", {}).get(ACTOR_KEY) or "-"
    target = scope.get("path", "")
    query = scope.get("query_string", b"")
    if query:
        target += "?" + query.decode("latin-1")
    return (
        f"{client[0]} {actor} {scope.get('method', '-')} {target} {status} {seconds * 1000:.1f}ms"
    )
