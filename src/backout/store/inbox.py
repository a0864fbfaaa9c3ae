"""The trigger inbox: what arrives from outside a running deploy or watch — a person's
`backout trigger`, an Alertmanager webhook, a `backout approve` — for that run to consume.

Writers never touch a run's journal (only its executor does, so its sequence never forks);
the executor reads the inbox every tick and journals what it consumed.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import JSON, Float, Integer, String, Text, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

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


def put(
    session: Session,
    service: str,
    kind: str,
    reason: str,
    actor: str,
    data: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> InboxRow:
    row = InboxRow(
        service=service,
        run_id=run_id,
        kind=kind,
        reason=reason,
        data=data or {},
        actor=actor,
        received_at=time.time(),
        consumed_at=None,
    )
    session.add(row)
    session.flush()
    return row


def take(session: Session, service: str, run_id: str, since: float) -> list[InboxRow]:
    """Unconsumed entries for this run (or for its service), oldest first; marks them taken."""
    query = (
        select(InboxRow)
        .where(
            InboxRow.service == service,
            InboxRow.consumed_at.is_(None),
            InboxRow.received_at >= since,
        )
        .order_by(InboxRow.id)
    )
    rows = [r for r in session.scalars(query) if r.run_id in (None, run_id)]
    if rows:
        session.execute(
            update(InboxRow)
            .where(InboxRow.id.in_([r.id for r in rows]))
            .values(consumed_at=time.time())
        )
    return rows
