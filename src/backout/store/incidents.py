"""Incidents on the status page and their updates: the queries. What a move means (which
phase, which component state, the audit record) is decided above, in
:mod:`backout.statuspage`; this module only reads and writes rows."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from backout.store.models import IncidentRow, IncidentUpdateRow, RunRow

# Statuspage's incident phases, in their usual order; the first three are "open"
STATUSES = ("investigating", "identified", "monitoring", "resolved", "postmortem")
OPEN = ("investigating", "identified", "monitoring")
NEWEST_RUNS_LOOKED_AT = 100  # per service, to find one that is not a rehearsal


def open_incident(session: Session, service: str) -> IncidentRow | None:
    """The service's open incident (the newest, should there ever be two)."""
    query = (
        select(IncidentRow)
        .where(IncidentRow.service == service, IncidentRow.status.in_(OPEN))
        .order_by(IncidentRow.id.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def latest_incident(session: Session, service: str) -> IncidentRow | None:
    query = (
        select(IncidentRow)
        .where(IncidentRow.service == service)
        .order_by(IncidentRow.id.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def add_incident(session: Session, row: IncidentRow) -> IncidentRow:
    session.add(row)
    session.flush()
    return row


def add_update(session: Session, incident: IncidentRow, update: IncidentUpdateRow) -> None:
    """Record ``update`` and carry its phase onto the incident."""
    update.incident_id = incident.id
    session.add(update)
    incident.status = update.status
    incident.updated_at = update.at
    if update.status in OPEN:
        incident.resolved_at = None
    elif incident.resolved_at is None:
        incident.resolved_at = update.at
    session.flush()


def incidents(
    session: Session,
    service: str | None = None,
    open_only: bool = False,
    since: float | None = None,
) -> list[IncidentRow]:
    """Newest first; ``since``: open ones, and those resolved at or after it."""
    query = select(IncidentRow).order_by(IncidentRow.id.desc())
    if service is not None:
        query = query.where(IncidentRow.service == service)
    if open_only:
        query = query.where(IncidentRow.status.in_(OPEN))
    elif since is not None:
        query = query.where(or_(IncidentRow.status.in_(OPEN), IncidentRow.resolved_at >= since))
    return list(session.scalars(query))


def updates_of(session: Session, ids: Collection[int]) -> dict[int, list[IncidentUpdateRow]]:
    """Each incident's updates, oldest first."""
    found: dict[int, list[IncidentUpdateRow]] = {i: [] for i in ids}
    if not ids:
        return found
    query = (
        select(IncidentUpdateRow)
        .where(IncidentUpdateRow.incident_id.in_(list(ids)))
        .order_by(IncidentUpdateRow.at, IncidentUpdateRow.id)
    )
    for row in session.scalars(query):
        found[row.incident_id].append(row)
    return found


def monitoring(session: Session) -> list[IncidentRow]:
    query = select(IncidentRow).where(IncidentRow.status == "monitoring").order_by(IncidentRow.id)
    return list(session.scalars(query))


def services(session: Session) -> list[str]:
    """Every service a run or an incident names, sorted."""
    ran = session.scalars(select(RunRow.service).distinct())
    had = session.scalars(select(IncidentRow.service).distinct())
    return sorted(set(ran) | set(had))


def newest_runs(session: Session, among: Iterable[str] | None = None) -> dict[str, RunRow]:
    """Per service, its newest run that is not a rehearsal (drills never reach the status
    page); a service only ever rehearsed has none."""
    names = list(among) if among is not None else services(session)
    found: dict[str, RunRow] = {}
    for service in names:
        query = (
            select(RunRow)
            .where(RunRow.service == service)
            .order_by(RunRow.created_at.desc())
            .limit(NEWEST_RUNS_LOOKED_AT)
        )
        row = next(
            (r for r in session.scalars(query) if r.plan_doc.get("mode") != "rehearsal"), None
        )
        if row is not None:
            found[service] = row
    return found
