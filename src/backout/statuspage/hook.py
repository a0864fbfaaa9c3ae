"""The journal hook that moves a service's incident as its run goes, in the same
transaction as the event (so the page never says more, or less, than the journal):

=========================================  ===============  ============================
run event                                  incident         component
=========================================  ===============  ============================
trigger fired                              identified       partial_outage (major_outage
                                           (opened, or the  for a ``risk: critical`` plan)
                                           open one)
finished, backed out and verified          monitoring       operational
finished, backout failed                   identified       major_outage
=========================================  ===============  ============================

A finished run moves only an incident that is open (opened by a trigger, or by hand); a
plain ``backout run`` that nobody declared an incident for stays off the page. Rehearsals
never touch the status page. After the plan's quiet period in monitoring the incident is
resolved by :func:`backout.statuspage.moves.resolve_quiet`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from backout.kernel.events import Event, EventKind
from backout.kernel.states import RunStatus
from backout.spec.models import StatusPage
from backout.statuspage.moves import Move, apply, track
from backout.statuspage.states import Section
from backout.store import audit
from backout.store import incidents as repo

StatusPageHook = Callable[[Session, Event, Any], None]
HEALTHY_RESULTS = ("promoted", "healthy")  # the release stayed: nothing was backed out


def fired_move(component: str, risk: str) -> Move:
    state = "major_outage" if risk == "critical" else "partial_outage"
    return Move(
        "identified",
        state,
        f"We detected a problem with {component} after a change and are rolling the change back.",
    )


def backed_out_move() -> Move:
    return Move(
        "monitoring",
        "operational",
        "The change was rolled back and the service verified as restored. We are "
        "monitoring the results.",
    )


def failed_move() -> Move:
    return Move(
        "identified",
        "major_outage",
        "Rolling the change back did not complete. Engineers are working on it.",
    )


def title_for(component: str) -> str:
    return f"{component}: service disruption"


def statuspage_hook(
    service_key: str,
    status_page: StatusPage | None,
    risk: str,
    actor: str,
    mode: str = "backout",
) -> StatusPageHook:
    """The hook for one run of ``service_key`` (``shop@production``) whose plan has this
    ``status_page:`` section (None: the defaults) and risk; ``mode`` is the run's."""
    section = Section.of(service_key, status_page)

    def hook(session: Session, event: Event, view: Any) -> None:
        if mode == "rehearsal":
            return
        why = {"run_id": event.run_id, "event": str(event.kind), "seq": event.seq}
        if event.kind == EventKind.TRIGGER_FIRED:
            why["trigger"] = event.data.get("trigger")
            move = fired_move(section.component, risk)
            title = title_for(section.component)
            track(session, section, move, actor, event.at, title, event.run_id, why)
        elif event.kind == EventKind.RUN_FINISHED:
            finished = _finished_move(event, view.status)
            audit.lock(session)  # before reading what it moves: a person may move it too
            incident = repo.open_incident(session, section.service)
            if finished is not None and incident is not None:
                apply(session, incident, finished, actor, event.at, why)

    return hook


def _finished_move(event: Event, status: RunStatus) -> Move | None:
    if status is RunStatus.FAILED:
        return failed_move()
    if status is RunStatus.SUCCEEDED and event.data.get("result") not in HEALTHY_RESULTS:
        return backed_out_move()
    return None
