"""Repository functions for change records, approvals, rehearsals and the outbox."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from backout.errors import NotFound
from backout.store import audit
from backout.store.models import ApprovalRow, AuditRow, ChangeRow, RehearsalRow, RunRow


def get_change(session: Session, change_id: int, lock: bool = False) -> ChangeRow:
    """The change; with ``lock``, locked for update until the transaction ends. A locked
    change is about to be audited, so the audit lock comes first: a run's last journal event
    (audit, then change) and a verb (change, then audit) would otherwise deadlock."""
    query = select(ChangeRow).where(ChangeRow.id == change_id)
    if lock:
        audit.lock(session)
        query = query.with_for_update()
    row = session.scalars(query).first()
    if row is None:
        raise NotFound(
            f"no change {change_id} in this store", hint="list changes with `backout change list`"
        )
    return row


def list_changes(session: Session, status: str | None = None, limit: int = 50) -> list[ChangeRow]:
    query = select(ChangeRow).order_by(ChangeRow.id.desc()).limit(limit)
    if status:
        query = query.where(ChangeRow.status == status)
    return list(session.scalars(query))


def approvals(session: Session, change_id: int) -> list[ApprovalRow]:
    query = select(ApprovalRow).where(ApprovalRow.change_id == change_id).order_by(ApprovalRow.at)
    return list(session.scalars(query))


def rehearsals(session: Session, plan: str) -> list[RehearsalRow]:
    return list(session.scalars(select(RehearsalRow).where(RehearsalRow.plan == plan)))


def preflights(session: Session, plan: str) -> list[AuditRow]:
    """The recorded ``backout preflight`` results of a plan (any version), oldest first."""
    query = select(AuditRow).where(
        AuditRow.action.in_(("preflight.passed", "preflight.failed")),
        AuditRow.subject == f"plan:{plan}",
    )
    return list(session.scalars(query.order_by(AuditRow.seq)))


def runs_of(session: Session, change_id: int) -> list[RunRow]:
    query = select(RunRow).where(RunRow.change_id == change_id).order_by(RunRow.created_at)
    return list(session.scalars(query))


def windowed_changes(session: Session, now: float) -> list[ChangeRow]:
    """Changes with a window that may still be announced at ``now``: approved or being
    made, whose window has not ended (one being made is shown however late it runs)."""
    query = select(ChangeRow).where(
        ChangeRow.window_start.is_not(None),
        ChangeRow.status.in_(("approved", "in_progress")),
        or_(ChangeRow.status == "in_progress", ChangeRow.window_end > now),
    )
    return list(session.scalars(query.order_by(ChangeRow.window_start, ChangeRow.id)))
