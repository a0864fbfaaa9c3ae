"""What the status page is about, read from the store: components (one per service, or as
the plans' ``status_page:`` sections name and group them) with their state, and incidents
with their updates. Everything internal is still here: :mod:`.visibility` is the one place
that drops it before any renderer sees the page."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from sqlalchemy.orm import Session

from backout.statuspage.states import OPEN_STATUSES, Section, stable_id, worst_status
from backout.store import incidents as repo
from backout.store.changes import windowed_changes
from backout.store.models import ChangeRow, IncidentRow, IncidentUpdateRow

DAY_S = 86400.0


@dataclass(frozen=True)
class Update:
    id: int
    status: str
    component_status: str
    message: str
    actor: str
    at: float
    internal: bool


@dataclass(frozen=True)
class Incident:
    id: int
    service: str
    component_id: str
    component: str
    title: str
    status: str
    impact: str
    internal: bool
    created_at: float
    updated_at: float
    resolved_at: float | None
    updates: tuple[Update, ...]  # oldest first

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass(frozen=True)
class Maintenance:
    """A change window announced on the page (Statuspage's scheduled maintenance):
    ``scheduled`` before its window, ``in_progress`` while the window is open or the change
    is being made. Only services whose ``status_page.maintenance`` is true announce them."""

    id: str
    change_id: int
    service: str
    component_id: str
    component: str
    title: str
    status: str  # scheduled | in_progress
    scheduled_for: float
    scheduled_until: float
    internal: bool
    created_at: float
    updated_at: float


def maintenance_status(change: str, start: float, end: float, now: float) -> str | None:
    """What a change with a window is on the page at ``now``: ``scheduled`` (approved,
    window ahead), ``in_progress`` (approved and its window open, or being made), or
    nothing (not approved yet, rejected, over, or its window passed unused)."""
    if change == "in_progress":
        return "in_progress"
    if change != "approved":
        return None
    if now < start:
        return "scheduled"
    return "in_progress" if now < end else None


@dataclass(frozen=True)
class Component:
    id: str
    name: str
    group: str | None
    description: str | None
    internal: bool
    status: str
    seen_at: float  # the newest run of one of its services
    services: tuple[str, ...]


@dataclass(frozen=True)
class PageState:
    components: tuple[Component, ...]
    incidents: tuple[Incident, ...]  # open ones, and those resolved in the window; newest first
    at: float
    maintenances: tuple[Maintenance, ...] = ()  # soonest first


def load_state(session: Session, now: float, days: float) -> PageState:
    """The page as of ``now``, with the incidents resolved in the last ``days`` days."""
    rows = repo.incidents(session, since=now - days * DAY_S)
    runs = repo.newest_runs(session)
    sections = {s: Section.of_plan_doc(s, run.plan_doc) for s, run in runs.items()}
    for row in rows:  # a service known only by its incidents
        sections.setdefault(row.service, _section_of_incident(row))
    seen = {s: run.finished_at or run.created_at for s, run in runs.items()}
    updates = repo.updates_of(session, [r.id for r in rows])
    incidents = tuple(_incident(r, sections[r.service], updates[r.id]) for r in rows)
    maintenances = _maintenances(windowed_changes(session, now), sections, now)
    return PageState(
        _components(sections, seen, incidents, maintenances), incidents, now, maintenances
    )


def _maintenances(
    changes: Iterable[ChangeRow], sections: Mapping[str, Section], now: float
) -> tuple[Maintenance, ...]:
    """A change names its service without an environment (``shop``): it is announced on
    the component of each of the service's keys (``shop``, ``shop@production``) whose
    section asks for it."""
    found: list[Maintenance] = []
    for change in changes:
        start, end = change.window_start, change.window_end
        if start is None or end is None:
            continue
        status = maintenance_status(change.status, start, end, now)
        if status is None:
            continue
        for key, section in sorted(sections.items()):
            if key.partition("@")[0] != change.service or not section.maintenance:
                continue
            found.append(
                Maintenance(
                    id=stable_id("maintenance", str(change.id), section.component_id),
                    change_id=change.id,
                    service=key,
                    component_id=section.component_id,
                    component=section.component,
                    title=change.title,
                    status=status,
                    scheduled_for=start,
                    scheduled_until=end,
                    internal=section.internal,
                    created_at=change.created_at,
                    updated_at=change.updated_at,
                )
            )
    return tuple(sorted(found, key=lambda m: (m.scheduled_for, m.change_id)))


def _section_of_incident(row: IncidentRow) -> Section:
    return Section(row.service, row.component, internal=row.internal, quiet_s=row.quiet_s)


def _incident(row: IncidentRow, section: Section, updates: list[IncidentUpdateRow]) -> Incident:
    return Incident(
        id=row.id,
        service=row.service,
        component_id=section.component_id,
        component=section.component,
        title=row.title,
        status=row.status,
        impact=row.impact,
        internal=row.internal or section.internal,
        created_at=row.created_at,
        updated_at=row.updated_at,
        resolved_at=row.resolved_at,
        updates=tuple(
            Update(u.id, u.status, u.component_status, u.message, u.actor, u.at, u.internal)
            for u in updates
        ),
    )


def _components(
    sections: Mapping[str, Section],
    seen: Mapping[str, float],
    incidents: Iterable[Incident],
    maintenances: Iterable[Maintenance] = (),
) -> tuple[Component, ...]:
    """Services naming the same component (and group) share it: it is as bad as the worst
    of them, and internal if any of them is. Maintenance in progress puts it under
    maintenance, unless an open incident says worse."""
    states: dict[str, list[str]] = {}
    for incident in incidents:
        if incident.is_open and incident.updates:
            states.setdefault(incident.component_id, []).append(
                incident.updates[-1].component_status
            )
    for maintenance in maintenances:
        if maintenance.status == "in_progress":
            states.setdefault(maintenance.component_id, []).append("under_maintenance")
    merged: dict[str, Component] = {}
    for service, section in sorted(sections.items()):
        key = section.component_id
        found = merged.get(key)
        if found is None:
            merged[key] = Component(
                key,
                section.component,
                section.group,
                section.description,
                section.internal,
                worst_status(states.get(key, [])),
                seen.get(service, 0.0),
                (service,),
            )
            continue
        merged[key] = replace(
            found,
            description=found.description or section.description,
            internal=found.internal or section.internal,
            seen_at=max(found.seen_at, seen.get(service, 0.0)),
            services=(*found.services, service),
        )
    return tuple(sorted(merged.values(), key=lambda c: (c.group or "", c.name.lower())))
