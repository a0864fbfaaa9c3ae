"""``/api/v1/audit`` and ``/api/v1/outbox``: the hash-chained audit trail (read, verify,
checkpoint) and the outbound events (list, retry), as ``backout audit ...`` and
``backout outbox list/retry`` show and do them.

An outbox row's ``last_error`` is what the receiver or the transport answered; the channels
scrub their own secrets from it, and this layer also cuts every URL in it down to its
scheme and host (a webhook's path or query string may be its secret). The payload and the
channel options (headers, tokens) never leave the store.

No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations.
"""

import re
import time
from dataclasses import asdict, replace
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query

from backout import commands
from backout.commands.caller import Caller
from backout.errors import Conflict, NotFound, UsageError
from backout.kernel.roles import Permission
from backout.metrics.window import parse_bound
from backout.redact import MASK
from backout.reports import OutboxEntry
from backout.server.auth import Gate, needs
from backout.server.routes import API
from backout.store.models import OutboxRow

AUDIT_LIMIT = 1000
STATUSES = ("pending", "sending", "sent", "dead")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def audit(gate: Gate) -> APIRouter:
    router = APIRouter(prefix=API, tags=["audit"])
    reader = Annotated[Caller, Depends(needs(gate, Permission.READ))]
    admin = Annotated[Caller, Depends(needs(gate, Permission.ADMIN))]

    @router.get(
        "/audit",
        summary="Audit records, the newest LIMIT that match, oldest first (as `backout audit log`)",
    )
    def audit_log(
        caller: reader,
        action: Annotated[
            str | None, Query(max_length=200, description="Action prefix: change. or flag.set")
        ] = None,
        subject: Annotated[
            str | None, Query(max_length=300, description="Exactly: change:3, flag:KEY, run:ID")
        ] = None,
        by: Annotated[str | None, Query(max_length=200, description="Only this actor")] = None,
        since: Annotated[
            str | None, Query(description="30m, 12h, 7d, 2026-11-30 or an ISO 8601 time")
        ] = None,
        limit: Annotated[
            int, Query(ge=1, le=AUDIT_LIMIT, description="At most this many (the newest)")
        ] = 100,
        before: Annotated[
            int | None,
            Query(ge=1, description="The page older than this seq: the first seq of the last page"),
        ] = None,
        after: Annotated[
            int | None, Query(ge=0, description="The oldest records newer than this seq")
        ] = None,
    ) -> list[dict[str, Any]]:
        if before is not None and after is not None:
            raise UsageError("give before or after, not both", hint="one page at a time")
        moment = None if since is None else parse_bound(since, time.time(), "since")
        rows = commands.audit_log(
            caller,
            action or None,
            subject or None,
            by or None,
            moment,
            limit,
            before=before,
            after=after,
        )
        return [row.to_json() for row in rows]

    @router.get(
        "/audit/verify",
        summary="Walk the chain: intact, or the first broken link (as `backout audit verify`)",
    )
    def audit_verify(
        caller: reader,
        against: Annotated[
            str | None,
            Query(description="A checkpoint hash (64 hex digits) the chain must still hold"),
        ] = None,
    ) -> dict[str, Any]:
        result = commands.audit_verify(caller, against)
        return {**asdict(result), "exit_code": result.exit_code}

    @router.post(
        "/audit/checkpoint",
        summary="The chain's head, to keep elsewhere and verify against later (admin)",
    )
    def audit_checkpoint(caller: admin) -> dict[str, Any]:
        return commands.audit_checkpoint(caller).to_json()

    return router


def outbox(gate: Gate) -> APIRouter:
    router = APIRouter(prefix=API, tags=["outbox"])
    reader = Annotated[Caller, Depends(needs(gate, Permission.READ))]
    operator = Annotated[Caller, Depends(needs(gate, Permission.OPERATE))]

    @router.get(
        "/outbox",
        summary="Outbound events, the newest 100, newest first (as `backout outbox list`)",
    )
    def outbox_list(
        caller: reader,
        status: Annotated[str | None, Query(description=" | ".join(STATUSES))] = None,
        route: Annotated[
            str | None, Query(max_length=64, description="Only this route: itsm, notify:ops …")
        ] = None,
    ) -> list[dict[str, Any]]:
        if status is not None and status not in STATUSES:
            raise UsageError(
                f"no outbox status is called {status!r}", hint="one of: " + ", ".join(STATUSES)
            )
        return [shown(row) for row in commands.outbox_list(caller, status, route or None)]

    @router.post(
        "/outbox/{outbox_id}/retry",
        summary="Make an unsent event due again with a fresh retry budget; audited "
        "(as `backout outbox retry ID`)",
    )
    def outbox_retry(
        caller: operator,
        outbox_id: int,
        route: Annotated[
            str | None,
            Query(max_length=64, description="Needed for a `notify test` event: its route"),
        ] = None,
    ) -> dict[str, Any]:
        rows = commands.outbox_retry(caller, [outbox_id], False, route or None)
        if not rows:
            _not_requeued(caller, outbox_id, route)
        return shown(rows[0])

    return router


def _not_requeued(caller: Caller, outbox_id: int, route: str | None) -> None:
    """Why the verb requeued nothing: no such event (404), or one it may not retry (409)."""
    with caller.store.session(read_only=True) as session:
        row = session.get(OutboxRow, outbox_id)
        found = None if row is None else (row.status, row.route)
    if found is None:
        raise NotFound(f"no outbox event #{outbox_id}", hint="list them with GET /api/v1/outbox")
    status, actual = found
    if status == "sent":
        raise Conflict(
            f"outbox event #{outbox_id} was delivered already: there is nothing to retry",
            hint="only pending, sending and dead events can be retried",
        )
    if route is not None and route != actual:
        raise Conflict(
            f"outbox event #{outbox_id} is queued for route {actual!r}, not {route!r}",
            hint=f"retry it with ?route={actual}, or without route",
        )
    raise Conflict(
        f"outbox event #{outbox_id} is a `notify test` event: it is retried only by its route",
        hint=f"retry it with ?route={actual}",
    )


def shown(entry: OutboxEntry) -> dict[str, Any]:
    """An outbox entry as the API shows it: every URL in its error cut to scheme and host."""
    return replace(entry, last_error=scrub_urls(entry.last_error)).to_json()


def scrub_urls(text: str) -> str:
    """``text`` with every URL's credentials, path and query replaced by the mask."""
    return _URL.sub(_scrub_url, text) if "://" in (text or "") else text


def _scrub_url(match: re.Match[str]) -> str:
    url = match.group(0)
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return MASK
    where = f"{parts.scheme}://{host}" + (f":{port}" if port else "")
    return where if url.rstrip("/") == where else f"{where}/{MASK}"
