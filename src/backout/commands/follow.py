"""Following a run as it goes (``journal --follow``, ``status --watch``): its events as they
are journalled, read by polling the store, until the run ends or needs attention."""

from __future__ import annotations

import time
from collections.abc import Iterator

from backout.commands.caller import Caller
from backout.engine.runner import empty_view, plan_of
from backout.engine.view import RunView, apply
from backout.kernel.events import Event
from backout.kernel.states import RUN_TERMINAL, RunStatus
from backout.store import repo
from backout.store.models import RunRow

POLL_INTERVAL = 0.5  # seconds between reads of the store while nothing new has happened
SETTLED = frozenset({*RUN_TERMINAL, RunStatus.NEEDS_ATTENTION})


def follow(caller: Caller, run_id: str, interval: float = POLL_INTERVAL) -> Iterator[Event]:
    """Every event of the run (the id may be a unique prefix), old and new, as it is
    journalled; the iterator ends once the run is finished or needs attention. An
    interrupted run (its executor gone) is followed until someone resumes it.

    Each poll is one read-only transaction (on SQLite it takes no write lock, so it never
    slows the executor down); the status is read before the events, so the events read
    always include the one that settled the run."""
    row = _row(caller, run_id)
    seen = 0
    while True:
        with caller.store.session(read_only=True) as session:
            status = repo.get_run(session, row.id).status
            events = repo.load_events(session, row.id, after=seen)
        yield from events
        seen = events[-1].seq if events else seen
        if status in SETTLED:
            return
        if not events:
            time.sleep(interval)


def follow_progress(
    caller: Caller, run_id: str, interval: float = POLL_INTERVAL
) -> Iterator[tuple[Event, RunView]]:
    """As :func:`follow`, with the run's state after each event (for live progress)."""
    row = _row(caller, run_id)
    plan, _ = plan_of(row)
    view = empty_view(row, plan)
    for event in follow(caller, row.id, interval):
        apply(view, event)
        yield event, view


def _row(caller: Caller, run_id: str) -> RunRow:
    with caller.store.session(read_only=True) as session:
        return repo.get_run(session, run_id)
