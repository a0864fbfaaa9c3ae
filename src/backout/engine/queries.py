"""Questions about live runs that the journal answers: which run is watching a service,
which checkpoint a deploy is waiting at. The verbs ask; the engine knows its journal."""

from __future__ import annotations

from sqlalchemy.orm import Session

from backout.errors import Conflict
from backout.kernel.events import Event, EventKind
from backout.store import repo
from backout.store.models import RunRow


def watching_run(session: Session, service: str) -> RunRow:
    """The service's running deploy or watch (the one a trigger from outside backs out)."""
    for row in repo.active_runs(session, service):
        if row.plan_doc.get("mode") in ("deploy", "watch") and row.status == "running":
            return row
    raise Conflict(
        f"no deploy or watch is running for service {service!r}",
        hint="to back out now, run `backout run PLAN`",
    )


def waiting_stage(events: list[Event], run_id: str) -> int:
    """The stage (from 0) whose checkpoint waits for an approval; Conflict when none does."""
    passed = {e.data.get("stage") for e in events if e.kind == EventKind.CHECKPOINT_PASSED}
    waiting = [
        e
        for e in events
        if e.kind == EventKind.CHECKPOINT_STARTED
        and e.data.get("approve")
        and e.data.get("stage") not in passed
    ]
    if not waiting or events[-1].kind in (EventKind.RUN_FINISHED, EventKind.BACKOUT_STARTED):
        raise Conflict(
            f"run {run_id} is not waiting for an approval", hint=f"see `backout status {run_id}`"
        )
    return int(waiting[-1].data["stage"])
