"""Incidents on the status page and their updates: the queries. What a move means (which
phase, which component state, the audit record) is decided above, in
:mod:`backout.statuspage`; this module only reads and writes rows.

The writes, and the reads a move makes first, are single Core statements: a trigger's
move runs in the transaction of its ``trigger_fired`` event, on the way from an alert to
the backout's first step, where an ORM flush (its unit of work, its autoflush) would cost
milliseconds. The rows they hand back are :class:`IncidentRow` objects that no session
holds (or, for one loaded by a listing query, whose new values are set as committed), so
nothing is written twice."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy import Table, bindparam, insert, or_, select
from sqlalchemy import update as update_rows
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from backout.store.models import IncidentRow, IncidentUpdateRow, RunRow

_INCIDENTS: Table = IncidentRow.__table__  # type: ignore[assignment]
_UPDATES: Table = IncidentUpdateRow.__table__  # type: ignore[assignment]
_MOVED = ("status", "impact", "internal", "updated_at", "resolved_at")  # what a move changes

# Statuspage's incident phases, in their usual order; the first three are "open"
STATUSES = ("investigating", "identified", "monitoring", "resolved", "postmortem")
OPEN = ("investigating", "identified", "monitoring")
# built once (a trigger's verdict opens or moves an incident on the way to the backout's
# first step): SQLAlchemy reuses their compiled forms without building them again
_OPEN_ONE = (
    select(_INCIDENTS)
    .where(_INCIDENTS.c.service == bindparam("b_service"), _INCIDENTS.c.status.in_(OPEN))
    .order_by(_INCIDENTS.c.id.desc())
    .limit(1)
)
_ADD_INCIDENT = insert(_INCIDENTS).returning(_INCIDENTS.c.id)
_ADD_UPDATE = insert(_UPDATES).returning(_UPDATES.c.id)
_MOVE = (
    update_rows(_INCIDENTS)
    .where(_INCIDENTS.c.id == bindparam("b_id"))
    .values({name: bindparam(f"b_{name}") for name in _MOVED})
)
NEWEST_RUNS_LOOKED_AT = 100  # per service, to find one that is not a rehearsal


def _detached(mapping: RowMapping) -> IncidentRow:
    return IncidentRow(**dict(mapping))


def open_incident(session: Session, service: str) -> IncidentRow | None:
    """The service's open incident (the newest, should there ever be two)."""
    found = session.connection().execute(_OPEN_ONE, {"b_service": service}).mappings().first()
    return None if found is None else _detached(found)


def latest_incident(session: Session, service: str) -> IncidentRow | None:
    query = (
        select(_INCIDENTS)
        .where(_INCIDENTS.c.service == service)
        .order_by(_INCIDENTS.c.id.desc())
        .limit(1)
    )
    found = session.connection().execute(query).mappings().first()
    return None if found is None else _detached(found)


def set_fields(incident: IncidentRow | IncidentUpdateRow, **values: Any) -> None:
    """Set ``values`` on the object as already stored (the next :func:`add_update` stores
    them): a row a listing query loaded is never flushed again by the ORM."""
    for name, value in values.items():
        set_committed_value(incident, name, value)


def add_incident(session: Session, row: IncidentRow) -> IncidentRow:
    values = {c.name: getattr(row, c.name) for c in _INCIDENTS.columns if c.name != "id"}
    added = session.connection().execute(_ADD_INCIDENT, values)
    set_fields(row, id=added.scalar_one())
    return row


def add_update(session: Session, incident: IncidentRow, update: IncidentUpdateRow) -> None:
    """Record ``update`` and carry its phase onto the incident (and the incident's impact
    and visibility, as set with :func:`set_fields`)."""
    _carry(incident, update)
    _insert_update(session, incident, update)
    moved = {f"b_{name}": getattr(incident, name) for name in _MOVED}
    session.connection().execute(_MOVE, {"b_id": incident.id, **moved})


def open_with(session: Session, incident: IncidentRow, update: IncidentUpdateRow) -> None:
    """Store a new incident already in its first update's phase, then that update: two
    INSERTs (it is in the transaction of the trigger that fired, on the way to the
    backout's first step)."""
    _carry(incident, update)
    add_incident(session, incident)
    _insert_update(session, incident, update)


def _carry(incident: IncidentRow, update: IncidentUpdateRow) -> None:
    resolved_at = incident.resolved_at
    if update.status in OPEN:
        resolved_at = None
    elif resolved_at is None:
        resolved_at = update.at
    set_fields(incident, status=update.status, updated_at=update.at, resolved_at=resolved_at)


def _insert_update(session: Session, incident: IncidentRow, update: IncidentUpdateRow) -> None:
    set_fields(update, incident_id=incident.id)
    values = {c.name: getattr(update, c.name) for c in _UPDATES.columns if c.name != "id"}
    added = session.connection().execute(_ADD_UPDATE, values)
    set_fields(update, id=added.scalar_one())


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
