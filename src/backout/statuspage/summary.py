"""``status.json`` in the shape of Statuspage's ``/api/v2/summary.json`` (the page, its
indicator, components with their groups, unresolved incidents with their updates, upcoming
and in-progress scheduled maintenances), so the tools that read a Statuspage page read this one; and
``incidents.json``, the shape of ``/api/v2/incidents.json`` (recent incidents, resolved
ones too). Both are made from a :class:`PublicPage` only."""

from __future__ import annotations

import datetime as dt
from typing import Any

from backout.statuspage.page import Incident, Maintenance, Update
from backout.statuspage.states import (
    INDICATOR_DESCRIPTIONS,
    impact_of,
    stable_id,
    worse_impact,
    worst_status,
)
from backout.statuspage.visibility import PublicPage, PublishedComponent

# an open incident weighs on the indicator until it is fixed; in monitoring the
# components say how things are
WEIGHING = ("investigating", "identified")


def iso(at: float) -> str:
    """ISO 8601 in UTC with milliseconds, as Statuspage writes its times."""
    moment = dt.datetime.fromtimestamp(at, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def indicator(page: PublicPage) -> str:
    """none, minor, major or critical: the worst of the components' states and of the
    impact of incidents still being worked on."""
    from_components = [impact_of(p.component.status) for p in page.components]
    from_incidents = [i.impact for i in page.incidents if i.status in WEIGHING]
    return worse_impact(*from_components, *from_incidents)


def page_json(page: PublicPage) -> dict[str, Any]:
    return {
        "id": page.id,
        "name": page.title,
        "url": page.url,
        "time_zone": "Etc/UTC",
        "updated_at": iso(page.at),
    }


def summary(page: PublicPage) -> dict[str, Any]:
    level = indicator(page)
    return {
        "page": page_json(page),
        "status": {"indicator": level, "description": INDICATOR_DESCRIPTIONS[level]},
        "components": components_json(page),
        "incidents": [incident_json(page, i) for i in page.incidents if i.is_open],
        "scheduled_maintenances": [maintenance_json(page, m) for m in page.maintenances],
    }


def incidents_document(page: PublicPage) -> dict[str, Any]:
    return {"page": page_json(page), "incidents": [incident_json(page, i) for i in page.incidents]}


def group_id(page: PublicPage, group: str) -> str:
    return stable_id("group", page.id, group)


def components_json(page: PublicPage) -> list[dict[str, Any]]:
    """Components in page order; each group is a component too (``group: true``) listing
    its members, as Statuspage does, as bad as the worst of them."""
    listed: list[dict[str, Any]] = []
    groups: dict[str, dict[str, Any]] = {}
    for position, published in enumerate(page.components, start=1):
        item = component_json(page, published, position)
        group = published.component.group
        if group is not None:
            gid = group_id(page, group)
            if gid not in groups:
                groups[gid] = _group_json(page, gid, group, position)
                listed.append(groups[gid])
            members = groups[gid]
            members["components"].append(item["id"])
            members["status"] = worst_status([members["status"], item["status"]])
            members["created_at"] = min(members["created_at"] or "~", item["created_at"])
            members["updated_at"] = max(members["updated_at"], item["updated_at"])
        listed.append(item)
    return listed


def component_json(
    page: PublicPage, published: PublishedComponent, position: int
) -> dict[str, Any]:
    component = published.component
    group = component.group
    return {
        "id": component.id,
        "name": component.name,
        "status": component.status,
        "created_at": iso(component.seen_at),
        "updated_at": iso(published.updated_at),
        "position": position,
        "description": component.description,
        "showcase": True,
        "start_date": None,
        "group_id": group_id(page, group) if group is not None else None,
        "page_id": page.id,
        "group": False,
        "only_show_if_degraded": False,
    }


def _group_json(page: PublicPage, gid: str, name: str, position: int) -> dict[str, Any]:
    return {
        "id": gid,
        "name": name,
        "status": "operational",
        "created_at": "",  # its members' earliest and latest, filled in as they are listed
        "updated_at": "",
        "position": position,
        "description": None,
        "showcase": False,
        "start_date": None,
        "group_id": None,
        "page_id": page.id,
        "group": True,
        "only_show_if_degraded": False,
        "components": [],
    }


def incident_json(page: PublicPage, incident: Incident) -> dict[str, Any]:
    monitoring = [u.at for u in incident.updates if u.status == "monitoring"]
    shown = next((p for p in page.components if p.component.id == incident.component_id), None)
    found: dict[str, Any] = {
        "id": str(incident.id),
        "name": incident.title,
        "status": incident.status,
        "impact": incident.impact,
        "created_at": iso(incident.created_at),
        "updated_at": iso(incident.updated_at),
        "started_at": iso(incident.created_at),
        "monitoring_at": iso(monitoring[-1]) if monitoring else None,
        "resolved_at": iso(incident.resolved_at) if incident.resolved_at is not None else None,
        "page_id": page.id,
        "incident_updates": updates_json(incident, shown),
        "components": [component_json(page, shown, 0)] if shown else [],
    }
    if page.url:  # a link to it on the hosted page; none is known without --url
        found["shortlink"] = f"{page.url.rstrip('/')}/#incident-{incident.id}"
    return found


def updates_json(incident: Incident, shown: PublishedComponent | None) -> list[dict[str, Any]]:
    """Newest first, as Statuspage lists them, each naming its component's change."""
    items: list[dict[str, Any]] = []
    before = "operational"
    for update in incident.updates:
        items.append(_update_json(incident, update, shown, before))
        before = update.component_status
    return items[::-1]


def _update_json(
    incident: Incident, update: Update, shown: PublishedComponent | None, before: str
) -> dict[str, Any]:
    affected = (
        [
            {
                "code": shown.component.id,
                "name": shown.component.name,
                "old_status": before,
                "new_status": update.component_status,
            }
        ]
        if shown
        else []
    )
    return {
        "id": str(update.id),
        "incident_id": str(incident.id),
        "status": update.status,
        "body": update.message,
        "created_at": iso(update.at),
        "updated_at": iso(update.at),
        "display_at": iso(update.at),
        "affected_components": affected,
    }


def maintenance_json(page: PublicPage, maintenance: Maintenance) -> dict[str, Any]:
    """A scheduled maintenance as Statuspage shows one: an incident with impact
    ``maintenance``, its window, and the component it puts under maintenance."""
    shown = next((p for p in page.components if p.component.id == maintenance.component_id), None)
    started = maintenance.status == "in_progress"
    body = (
        f"{maintenance.title}: change #{maintenance.change_id}, "
        f"scheduled {iso(maintenance.scheduled_for)} to {iso(maintenance.scheduled_until)}."
    )
    update = {
        "id": stable_id("maintenance-update", maintenance.id, maintenance.status),
        "incident_id": maintenance.id,
        "status": maintenance.status,
        "body": body,
        "created_at": iso(maintenance.updated_at),
        "updated_at": iso(maintenance.updated_at),
        "display_at": iso(maintenance.updated_at),
        "affected_components": [
            {
                "code": shown.component.id,
                "name": shown.component.name,
                "old_status": "operational",
                "new_status": "under_maintenance" if started else "operational",
            }
        ]
        if shown
        else [],
    }
    return {
        "id": maintenance.id,
        "name": maintenance.title,
        "status": maintenance.status,
        "impact": "maintenance",
        "created_at": iso(maintenance.created_at),
        "updated_at": iso(maintenance.updated_at),
        "started_at": iso(maintenance.scheduled_for),
        "monitoring_at": None,
        "resolved_at": None,
        "scheduled_for": iso(maintenance.scheduled_for),
        "scheduled_until": iso(maintenance.scheduled_until),
        "page_id": page.id,
        "incident_updates": [update],
        "components": [component_json(page, shown, 0)] if shown else [],
    }
