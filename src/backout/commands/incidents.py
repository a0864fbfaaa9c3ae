"""Status page verbs: move a service's incident by hand, list incidents, build the static
page. Run events move incidents by themselves (:mod:`backout.statuspage.hook`); listing
and building first resolve the incidents whose quiet period has passed. The server draws
the page read-only (:func:`status_page_html`) and resolves quiet incidents on a timer
(:func:`resolve_quiet_incidents`)."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy.orm import Session

from backout.commands.caller import Caller
from backout.errors import NotFound, UsageError
from backout.reports import IncidentReport, IncidentUpdateEntry, StatusPageReport
from backout.statuspage import (
    Move,
    PublicPage,
    Section,
    Withheld,
    apply,
    check_component_status,
    check_status,
    load_state,
    publish,
    resolve_quiet,
    track,
    write_site,
)
from backout.statuspage.build import prepare, render_html
from backout.statuspage.hook import title_for
from backout.statuspage.states import INDICATOR_DESCRIPTIONS
from backout.store import incidents as repo
from backout.store import repo as runs_repo
from backout.store.models import IncidentRow, IncidentUpdateRow

NEW_INCIDENT_STATE = "degraded_performance"  # a person's new incident, unless told


def incident_update(
    caller: Caller,
    service: str,
    status: str,
    message: str,
    component_status: str | None = None,
    internal: bool = False,
    title: str | None = None,
) -> IncidentReport:
    """Post an update to SERVICE's incident: its open one, or a new one (``investigating``,
    ``identified``, ``monitoring``), or, for ``postmortem``, its latest resolved one.
    ``internal``: a note for the team, never published."""
    check_status(status)
    if component_status is not None:
        check_component_status(component_status)
    text = message.strip()
    if not text:
        raise UsageError("the update has no message", hint="say what is going on: --message TEXT")
    now = time.time()
    with caller.store.session() as session:
        section = _section(session, service)
        why = {"by_hand": True}
        if status == "postmortem":
            incident = repo.open_incident(session, service) or repo.latest_incident(
                session, service
            )
            if incident is None:
                raise NotFound(
                    f"service {service!r} has no incident to add a postmortem to",
                    hint=f"`backout incident list --service {service}`",
                )
            move = Move(status, component_status or "operational", text, internal)
            apply(session, incident, move, caller.actor, now, why)
        else:
            state = component_status or _current_state(session, service, status)
            move = Move(status, state, text, internal)
            heading = title or title_for(section.component)
            incident = track(session, section, move, caller.actor, now, heading, None, why)
        return _report(session, incident)


def incidents(
    caller: Caller, service: str | None = None, open_only: bool = False
) -> list[IncidentReport]:
    """Incidents newest first (after resolving those whose quiet period has passed)."""
    with caller.store.session() as session:
        resolve_quiet(session, time.time(), caller.actor)
    with caller.store.session() as session:
        if service is not None:
            _known(session, service)
        rows = repo.incidents(session, service, open_only)
        updates = repo.updates_of(session, [r.id for r in rows])
        return [_report_of(row, updates[row.id]) for row in rows]


def status_page_build(
    caller: Caller,
    out_dir: str | Path,
    title: str = "Status",
    days: float = 7,
    url: str = "",
) -> StatusPageReport:
    """Write the static page, ``status.json``, ``incidents.json`` and ``feed.atom`` into
    OUT_DIR: components, open incidents and those resolved in the last ``days`` days,
    without anything internal."""
    _check_days(days)
    folder = prepare(Path(out_dir))  # a file in the way is refused before anything moves
    now = time.time()
    with caller.store.session() as session:
        resolved = [row.id for row in resolve_quiet(session, now, caller.actor)]
    page, withheld = _public_page(caller, now, title, days, url)
    written = write_site(folder, page, days)
    return StatusPageReport(
        out_dir=str(written.out_dir),
        files=[str(path) for path in written.files],
        indicator=written.indicator,
        description=INDICATOR_DESCRIPTIONS[written.indicator],
        components=len(page.components),
        open_incidents=sum(1 for i in page.incidents if i.is_open),
        resolved_incidents=sum(1 for i in page.incidents if not i.is_open),
        withheld={
            "components": withheld.components,
            "incidents": withheld.incidents,
            "updates": withheld.updates,
        },
        resolved_now=resolved,
    )


def status_page_html(caller: Caller, title: str = "Status", days: float = 7, url: str = "") -> str:
    """The page's ``index.html`` as :func:`status_page_build` writes it, drawn in memory
    from the store as it is: it writes nothing, so an incident whose quiet period has
    passed shows as ``monitoring`` until something resolves it
    (:func:`resolve_quiet_incidents`)."""
    _check_days(days)
    page, _ = _public_page(caller, time.time(), title, days, url)
    return render_html(page, days)


def resolve_quiet_incidents(caller: Caller) -> list[int]:
    """Resolve the incidents whose quiet period has passed, as the actor of automatic moves
    (``backout``), whoever calls; their ids. Each move is audited and dated when the quiet
    period ended. Nothing due: no write transaction (SQLite's one write lock stays free)."""
    now = time.time()
    with caller.store.session(read_only=True) as session:
        due = any(row.updated_at + row.quiet_s <= now for row in repo.monitoring(session))
    if not due:
        return []
    with caller.store.session() as session:
        return [row.id for row in resolve_quiet(session, now)]


def _check_days(days: float) -> None:
    if not days > 0:
        raise UsageError(f"--days must be more than 0, not {days:g}")


def _public_page(
    caller: Caller, now: float, title: str, days: float, url: str
) -> tuple[PublicPage, Withheld]:
    with caller.store.session(read_only=True) as session:
        state = load_state(session, now, days)
    return publish(state, title, url)


def _known(session: Session, service: str) -> None:
    known = repo.services(session)
    if service not in known:
        raise NotFound(
            f"no run and no incident for service {service!r}",
            hint=(
                "known services: " + ", ".join(known)
                if known
                else "this store has no runs yet; a service is known once a plan of it ran"
            ),
        )


def _section(session: Session, service: str) -> Section:
    """Where SERVICE is on the page: its newest run's plan says, else its last incident."""
    _known(session, service)
    run = repo.newest_runs(session, [service]).get(service)
    if run is not None:
        return Section.of_plan_doc(service, run.plan_doc)
    latest = repo.latest_incident(session, service)
    if latest is not None:
        return Section(service, latest.component, internal=latest.internal, quiet_s=latest.quiet_s)
    rehearsed = runs_repo.list_runs(session, service, limit=1)  # only ever rehearsed
    return Section.of_plan_doc(service, rehearsed[0].plan_doc)


def _current_state(session: Session, service: str, status: str) -> str:
    """A move that does not say the component's state: operational once resolved, else
    what its open incident said last (a new incident: degraded performance)."""
    if status == "resolved":
        return "operational"
    incident = repo.open_incident(session, service)
    if incident is None:
        return NEW_INCIDENT_STATE
    updates = repo.updates_of(session, [incident.id])[incident.id]
    return updates[-1].component_status if updates else NEW_INCIDENT_STATE


def _report(session: Session, row: IncidentRow) -> IncidentReport:
    return _report_of(row, repo.updates_of(session, [row.id])[row.id])


def _report_of(row: IncidentRow, updates: list[IncidentUpdateRow]) -> IncidentReport:
    return IncidentReport(
        id=row.id,
        service=row.service,
        component=row.component,
        title=row.title,
        status=row.status,
        impact=row.impact,
        run_id=row.run_id,
        internal=row.internal,
        created_at=row.created_at,
        updated_at=row.updated_at,
        resolved_at=row.resolved_at,
        updates=[
            IncidentUpdateEntry(
                u.id, u.status, u.component_status, u.message, u.actor, u.at, u.internal
            )
            for u in updates
        ],
    )
