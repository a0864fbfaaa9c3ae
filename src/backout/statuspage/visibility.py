"""The visibility guard: the one place internal things are dropped, before any renderer
(HTML, ``status.json``, the Atom feed) sees the page. The renderers take only a
:class:`PublicPage`, and only :func:`publish` makes one.

Withheld: a component any of whose services is ``internal``; an incident or a scheduled
maintenance that is internal or on a withheld component; an update marked internal
(``--internal``); and who posted an update. What remains of a published incident (its
title, phase and public updates) is shown, and its times are those of what is shown, so
not even the time of an internal note is published."""

from __future__ import annotations

from dataclasses import dataclass, replace

from backout.statuspage.page import Component, Incident, Maintenance, PageState
from backout.statuspage.states import stable_id


@dataclass(frozen=True)
class PublishedComponent:
    component: Component
    updated_at: float


@dataclass(frozen=True)
class PublicPage:
    """The page as anyone may read it."""

    title: str
    url: str
    id: str
    at: float
    components: tuple[PublishedComponent, ...]
    incidents: tuple[Incident, ...]  # newest first; updates oldest first
    maintenances: tuple[Maintenance, ...] = ()  # soonest first


@dataclass(frozen=True)
class Withheld:
    """What the guard kept off the page (counts only, for the operator's report)."""

    components: int
    incidents: int
    updates: int


def publish(state: PageState, title: str, url: str = "") -> tuple[PublicPage, Withheld]:
    components = [c for c in state.components if not c.internal]
    shown = {c.id for c in components}
    incidents = [i for i in state.incidents if not i.internal and i.component_id in shown]
    public = tuple(_public_updates(i) for i in incidents)
    withheld = Withheld(
        components=len(state.components) - len(components),
        incidents=len(state.incidents) - len(incidents),
        updates=sum(len(i.updates) for i in incidents) - sum(len(i.updates) for i in public),
    )
    page = PublicPage(
        title=title,
        url=url,
        id=stable_id("page", url or title),
        at=state.at,
        components=tuple(_dated(c, public) for c in components),
        incidents=public,
        maintenances=tuple(
            m for m in state.maintenances if not m.internal and m.component_id in shown
        ),
    )
    return page, withheld


def _public_updates(incident: Incident) -> Incident:
    # who posted an update is for the audit trail, not the public
    updates = tuple(replace(u, actor="") for u in incident.updates if not u.internal)
    times = [incident.created_at, incident.resolved_at or 0.0, *(u.at for u in updates)]
    return replace(incident, updates=updates, updated_at=max(times))


def _dated(component: Component, incidents: tuple[Incident, ...]) -> PublishedComponent:
    times = [component.seen_at]
    times += [i.updated_at for i in incidents if i.component_id == component.id]
    return PublishedComponent(component, max(times))
