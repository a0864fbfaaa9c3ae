"""The trigger inbox: what arrives from outside a running deploy or watch — a person's
`backout trigger`, an Alertmanager webhook, a `backout approve` — for that run to consume.

Writers never touch a run's journal (only its executor does, so its sequence never forks);
the executor reads the inbox every tick and journals what it consumed.

Alertmanager delivers at least once, and every member of an HA set delivers on its own, so
the same alert can arrive again at any time — also at the next run, re-armed on the release
the first copy restored. ``alert_actions`` remembers each alert that made a service back
out, by its (fingerprint, startsAt); one row per service and alert, kept across runs.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.orm.attributes import set_committed_value

from backout.errors import StoreError
from backout.store import notices
from backout.store.models import Base


class InboxRow(Base):
    __tablename__ = "trigger_inbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(200), index=True)
    run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    kind: Mapped[str] = mapped_column(String(32))  # manual | alertmanager | rejected | approve
    reason: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    actor: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[float] = mapped_column(Float)
    consumed_at: Mapped[float | None] = mapped_column(Float, nullable=True)


_INBOX: Table = InboxRow.__table__  # type: ignore[assignment]


def put(
    session: Session,
    service: str,
    kind: str,
    reason: str,
    actor: str,
    data: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> InboxRow:
    values = {
        "service": service,
        "run_id": run_id,
        "kind": kind,
        "reason": reason,
        "data": data or {},
        "actor": actor,
        "received_at": time.time(),
        "consumed_at": None,
    }
    # one plain INSERT (no unit of work): it is on the path from an alert to the backout
    inserted = session.connection().execute(_PUT, values)
    notices.notify(session, notices.INBOX, service)  # the service's watch reads it at once
    return InboxRow(id=inserted.scalar_one(), **values)  # a copy of the row, not tracked


# built once (each is on the path from an alert to its backout): SQLAlchemy reuses their
# compiled forms without building them again
_PUT = insert(_INBOX).returning(_INBOX.c.id)
_UNCONSUMED = select(InboxRow).where(
    InboxRow.service == bindparam("b_service"),
    InboxRow.consumed_at.is_(None),
    InboxRow.received_at >= bindparam("b_since"),
)
_LOOK = _UNCONSUMED.with_only_columns(InboxRow.run_id)
_TAKE = _UNCONSUMED.order_by(InboxRow.id)
_MARK_TAKEN = (
    update(_INBOX)
    .where(_INBOX.c.id.in_(bindparam("b_ids", expanding=True)))
    .values(consumed_at=bindparam("b_at"))
)


def waiting(session: Session, service: str, run_id: str, since: float) -> bool:
    """Whether :func:`take` would find anything (a cheap read: no write lock on SQLite)."""
    found = session.scalars(_LOOK, {"b_service": service, "b_since": since})
    return any(run in (None, run_id) for run in found)


def services_waiting(session: Session, since: float) -> set[str]:
    """The services with unconsumed entries received since ``since``: one look for a
    process watching many (it rings the doorbells of those it watches)."""
    query = (
        select(InboxRow.service)
        .where(InboxRow.consumed_at.is_(None), InboxRow.received_at >= since)
        .distinct()
    )
    return set(session.scalars(query))


def take(session: Session, service: str, run_id: str, since: float) -> list[InboxRow]:
    """Unconsumed entries for this run (or for its service), oldest first; marks them taken."""
    found = session.scalars(_TAKE, {"b_service": service, "b_since": since})
    rows = [r for r in found if r.run_id in (None, run_id)]
    if rows:
        taken = {"b_ids": [r.id for r in rows], "b_at": time.time()}
        session.connection().execute(_MARK_TAKEN, taken)
        for row in rows:  # as stored now (the rows are the session's)
            set_committed_value(row, "consumed_at", taken["b_at"])
    return rows


class AlertActionRow(Base):
    """An alert that made a service back out. The unique key is the claim: of two copies
    consumed at once (two runs, two members), only one insert succeeds."""

    __tablename__ = "alert_actions"
    __table_args__ = (
        UniqueConstraint("service", "fingerprint", "starts_at", name="uq_alert_actions_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[str] = mapped_column(String(40))  # ISO 8601 UTC, microseconds
    alert: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[str] = mapped_column(String(32))
    acted_at: Mapped[float] = mapped_column(Float)


def acted_on(session: Session, service: str, key: tuple[str, str]) -> AlertActionRow | None:
    """The record of the backout this alert (fingerprint, startsAt) already caused, if any."""
    fingerprint, starts_at = key
    found = {"b_service": service, "b_fingerprint": fingerprint, "b_starts_at": starts_at}
    return session.scalars(_ACTED_ON, found).first()


def claim_alert(
    session: Session, service: str, key: tuple[str, str], alert: str, run_id: str
) -> AlertActionRow:
    """Record that ``run_id`` backs out because of this alert; if another run got there first,
    its record is returned instead (compare ``run_id`` to tell). One INSERT … ON CONFLICT DO
    NOTHING: of two claims at once, the second waits for the first to commit, inserts
    nothing, and reads the winner's record."""
    values = {
        "service": service,
        "fingerprint": key[0],
        "starts_at": key[1],
        "alert": alert[:200],
        "run_id": run_id,
        "acted_at": time.time(),
    }
    claim = _CLAIM[session.get_bind().dialect.name]
    inserted = session.connection().execute(claim, values).first()
    if inserted is not None:
        return AlertActionRow(id=inserted[0], **values)  # a copy of the row, not tracked
    winner = acted_on(session, service, key)
    if winner is None:  # the conflicting row is gone again: nothing deletes these
        raise StoreError(f"alert {alert!r} was claimed and its claim is gone")
    return winner


_ACTIONS: Table = AlertActionRow.__table__  # type: ignore[assignment]
_ACTED_ON = select(AlertActionRow).where(
    AlertActionRow.service == bindparam("b_service"),
    AlertActionRow.fingerprint == bindparam("b_fingerprint"),
    AlertActionRow.starts_at == bindparam("b_starts_at"),
)
# the dialect's INSERT … ON CONFLICT DO NOTHING (SQLite and PostgreSQL alike), by name
_CLAIM = {
    name: dialect_insert(_ACTIONS).on_conflict_do_nothing().returning(_ACTIONS.c.id)
    for name, dialect_insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}
