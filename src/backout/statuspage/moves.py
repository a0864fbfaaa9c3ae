"""Moving an incident from one phase to the next: each move is one ``incident_updates`` row
and one audit record (``incident.updated``), written in the caller's transaction — the
journal's, for a move a run event makes. Run events, a person (``backout incident
update``) and the quiet period (:func:`resolve_quiet`) all move incidents through here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from backout.errors import Conflict
from backout.kernel.durations import format_duration
from backout.statuspage.states import (
    OPEN_STATUSES,
    Section,
    check_component_status,
    check_status,
    impact_of,
    worse_impact,
)
from backout.store import audit
from backout.store import incidents as repo
from backout.store.models import IncidentRow, IncidentUpdateRow

AUDIT_ACTION = "incident.updated"


@dataclass(frozen=True)
class Move:
    """Where an incident goes: its phase, its component's state from now on, the message
    (never published when ``internal``)."""

    status: str
    component_status: str
    message: str
    internal: bool = False

    def __post_init__(self) -> None:
        check_status(self.status)
        check_component_status(self.component_status)


def new_incident(section: Section, title: str, at: float, run_id: str | None = None) -> IncidentRow:
    return IncidentRow(
        service=section.service,
        component=section.component,
        title=title,
        status="investigating",  # replaced by its first move, in the same transaction
        impact="none",
        run_id=run_id,
        internal=section.internal,
        quiet_s=section.quiet_s,
        created_at=at,
        updated_at=at,
        resolved_at=None,
    )


def apply(
    session: Session,
    incident: IncidentRow,
    move: Move,
    actor: str,
    at: float,
    why: dict[str, Any] | None = None,
) -> IncidentUpdateRow:
    """One update: the incident takes the move's phase, its impact the worst its component
    has been, and the audit chain a record of it."""
    audit.lock(session)  # before the rows it audits, as every audited writer does
    _check_transition(incident, move)
    previous = incident.status if incident.id is not None else None
    repo.set_fields(
        incident, impact=worse_impact(incident.impact, impact_of(move.component_status))
    )
    update = IncidentUpdateRow(
        status=move.status,
        component_status=move.component_status,
        message=move.message,
        actor=actor,
        at=at,
        internal=move.internal,
    )
    if incident.id is None:
        repo.open_with(session, incident, update)
    else:
        repo.add_update(session, incident, update)
    audit.append(
        session,
        actor,
        AUDIT_ACTION,
        f"incident:{incident.id}",
        {
            "service": incident.service,
            "component": incident.component,
            "update_id": update.id,
            "from": previous,
            "status": move.status,
            "component_status": move.component_status,
            "impact": incident.impact,
            "message": move.message,
            "internal": move.internal or incident.internal,
            "run_id": incident.run_id,
            **(why or {}),
        },
    )
    return update


def _check_transition(incident: IncidentRow, move: Move) -> None:
    """Statuspage's one rule: a postmortem follows a resolved incident."""
    if move.status == "postmortem" and incident.status not in ("resolved", "postmortem"):
        raise Conflict(
            f"incident {incident.id} is {incident.status}; a postmortem follows a resolved "
            "incident",
            hint="resolve it first (`--status resolved`)",
        )


def track(
    session: Session,
    section: Section,
    move: Move,
    actor: str,
    at: float,
    title: str,
    run_id: str | None = None,
    why: dict[str, Any] | None = None,
) -> IncidentRow:
    """Move the service's open incident; with none open, open one with this move (a move
    into an open phase only: nothing to resolve is not an incident).

    An incident opened by an internal note is a draft: unpublished until its first public
    update (an internal service's incidents stay internal whatever their updates)."""
    audit.lock(session)  # two movers of one service never both open an incident
    incident = repo.open_incident(session, section.service)
    if incident is None:
        if move.status not in OPEN_STATUSES:
            raise Conflict(
                f"service {section.service!r} has no open incident to mark {move.status}",
                hint=f"`backout incident list --service {section.service}` shows its incidents",
            )
        incident = new_incident(section, title, at, run_id)
        repo.set_fields(incident, internal=section.internal or move.internal)
    elif not move.internal:
        repo.set_fields(incident, internal=section.internal)
    apply(session, incident, move, actor, at, why)
    return incident


def resolve_quiet(session: Session, now: float, actor: str = "backout") -> list[IncidentRow]:
    """Resolve every monitoring incident whose last update is older than its quiet period.
    The resolution is dated when the quiet period ended, however late this runs."""
    audit.lock(session)
    resolved: list[IncidentRow] = []
    for incident in repo.monitoring(session):
        quiet_until = incident.updated_at + incident.quiet_s
        if quiet_until > now:
            continue
        quiet = format_duration(incident.quiet_s)
        message = f"No new problem for {quiet} after the fix: this incident is resolved."
        move = Move("resolved", "operational", message)
        apply(session, incident, move, actor, quiet_until, {"reason": "quiet period"})
        resolved.append(incident)
    return resolved
