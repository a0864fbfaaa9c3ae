"""Outbox verbs: deliver queued outbound events through a channel, list them."""

from __future__ import annotations

from backout.channels import Route, SendReport, send
from backout.commands.caller import Caller
from backout.reports import OutboxEntry
from backout.store import audit, outbox
from backout.store.models import OutboxRow


def outbox_send(
    caller: Caller, route: Route, timeout: float = 60.0, once: bool = False
) -> SendReport:
    """Deliver the route's pending events until none is left or ``timeout`` seconds have
    passed (``once``: one pass over what is due now)."""
    return send(caller.store, route, caller.actor, timeout, once)


def outbox_retry(
    caller: Caller, ids: list[int], dead: bool = False, route: str | None = None
) -> list[OutboxEntry]:
    """Make unsent events due again now with a fresh retry budget (``ids``, and with
    ``dead`` every dead-lettered one); audited as ``outbox.requeued``."""
    with caller.store.session() as session:
        rows = outbox.requeue(session, ids, dead, route)
        for row in rows:
            audit.append(
                session,
                caller.actor,
                "outbox.requeued",
                f"outbox:{row.id}",
                {"outbox_id": row.id, "route": row.route, "event": row.event},
            )
        return [_entry(row) for row in rows]


def outbox_list(
    caller: Caller, status: str | None = None, route: str | None = None
) -> list[OutboxEntry]:
    """Outbound events, newest first, optionally of one delivery status or route."""
    with caller.store.session() as session:
        return [_entry(r) for r in outbox.rows(session, status, route)]


def _entry(r: OutboxRow) -> OutboxEntry:
    return OutboxEntry(
        r.id,
        r.route,
        r.stream,
        r.key,
        r.change_id,
        r.run_id,
        r.event,
        r.status,
        r.attempts,
        r.last_error,
        r.ref,
        r.created_at,
        r.sent_at,
    )
