"""What the status page is about, read from the store: components (one per service, or as
the plans' ``status_page:`` sections name and group them) with their state, and incidents
with their updates. Everything internal is still here: :mod:`.visibility` is the one place
that drops it before any renderer sees the page."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from sqlalchemy.orm import Session

from backout.statuspage.states import OPEN_STATUSES, Section, worst_status
from backout.store import incidents as repo
from backout.store.models import IncidentRow, IncidentUpdateRow

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
    return PageState(_components(sections, seen, incidents), incidents, now)


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
    sections: Mapping[str, Section], seen: Mapping[str, float], incidents: Iterable[Incident]
) -> tuple[Component, ...]:
    """Services naming the same component (and group) share it: it is as bad as the worst
    of them, and internal if any of them is."""
    states: dict[str, list[str]] = {}
    for incident in incidents:
        if incident.is_open and incident.updates:
            states.setdefault(incident.component_id, []).append(
                incident.updates[-1].component_status
            )
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
