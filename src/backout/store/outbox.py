"""The outbox table: events queued in the transaction that caused them, for delivery after
it commits. Queue with :func:`enqueue`; the channels deliver (``backout.channels``)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from backout.store.models import OutboxRow

ITSM_ROUTE = "itsm"  # change records, for the configured ITSM tool
# a row is pending (due at next_attempt_at), sending (claimed until next_attempt_at),
# sent, or dead (gave up after its route's max attempts; `backout outbox retry` revives it)
UNSENT = ("pending", "sending")


def enqueue(
    session: Session,
    route: str,
    stream: str,
    event: str,
    payload: dict[str, Any],
    *,
    key: str | None = None,
    change_id: int | None = None,
    run_id: str | None = None,
) -> OutboxRow:
    """Queue ``event`` for ``route`` in the caller's transaction: it exists iff what caused
    it does. ``key`` identifies the delivery everywhere (give a deterministic one, e.g.
    from a run id and journal sequence, where the same event could be queued twice: the
    second is then the first row, not a copy); by default ``backout-outbox-ID``."""
    if key is not None:
        existing = session.scalars(select(OutboxRow).where(OutboxRow.key == key)).first()
        if existing is not None:
            return existing
    now = time.time()
    row = OutboxRow(
        route=route,
        stream=stream,
        key=key or f"pending-{uuid.uuid4().hex}",
        change_id=change_id,
        run_id=run_id,
        event=event,
        payload=payload,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        last_error="",
        created_at=now,
    )
    session.add(row)
    session.flush()
    if key is None:
        row.key = f"backout-outbox-{row.id}"  # readable, and unique as the id is
    return row


def rows(
    session: Session, status: str | None = None, route: str | None = None, limit: int = 100
) -> list[OutboxRow]:
    """Newest first."""
    query = select(OutboxRow).order_by(OutboxRow.id.desc()).limit(limit)
    if status:
        query = query.where(OutboxRow.status == status)
    if route:
        query = query.where(OutboxRow.route == route)
    return list(session.scalars(query))


def by_key(session: Session, key: str) -> OutboxRow:
    row = session.scalars(select(OutboxRow).where(OutboxRow.key == key)).one()
    return row


def count(session: Session, where: ColumnElement[bool], statuses: Collection[str]) -> int:
    query = select(func.count()).where(where, OutboxRow.status.in_(list(statuses)))
    return int(session.scalar(query) or 0)


def requeue(
    session: Session, ids: Collection[int], dead: bool, route: str | None
) -> list[OutboxRow]:
    """Make events due again now with a fresh retry budget: the ``ids`` given (not yet
    sent), and with ``dead`` every dead-lettered one (of ``route``, if given)."""
    query = select(OutboxRow).where(OutboxRow.status != "sent")
    picks: list[ColumnElement[bool]] = []
    if ids:
        picks.append(OutboxRow.id.in_(list(ids)))
    if dead:
        picks.append(OutboxRow.status == "dead")
    if not picks:
        return []
    query = query.where(picks[0] if len(picks) == 1 else picks[0] | picks[1])
    if route:
        query = query.where(OutboxRow.route == route)
    else:  # a failed `notify test` stays failed unless its route is named
        query = query.where(~OutboxRow.route.startswith("notify-test:", autoescape=True))
    rows = list(session.scalars(query.order_by(OutboxRow.id)))
    for row in rows:
        row.status, row.attempts, row.next_attempt_at = "pending", 0, time.time()
    return rows


def stream_ref(session: Session, route: str, stream: str) -> str | None:
    """What the receiver named for this stream: the ref of its first acknowledged event."""
    query = (
        select(OutboxRow.ref)
        .where(
            OutboxRow.route == route,
            OutboxRow.stream == stream,
            OutboxRow.status == "sent",
            OutboxRow.ref.is_not(None),
        )
        .order_by(OutboxRow.id)
        .limit(1)
    )
    return session.scalar(query)
