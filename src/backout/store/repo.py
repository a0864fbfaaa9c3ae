"""Repository functions: the only place that writes SQL for runs, journals and snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from backout.errors import Ambiguous, NotFound, StoreError
from backout.kernel.events import Event
from backout.kernel.states import RUN_ACTIVE, RunStatus
from backout.store.models import EventRow, RunRow, SnapshotRow

_JOURNAL = cast(Table, EventRow.__table__)
_RUNS = cast(Table, RunRow.__table__)

# The journal's statements, built once: SQLAlchemy then reuses each one's compiled form and
# cache key, where a statement built per call cost about 0.1 ms of Python before it ran.
_ADD_EVENTS = insert(_JOURNAL)
_PROJECT = (
    update(_RUNS)
    .where(_RUNS.c.id == bindparam("b_run"))
    .values(
        status=bindparam("b_status"),
        message=bindparam("b_message"),
        finished_at=bindparam("b_finished"),
    )
)
# ... only if the event before the batch is in the store (a journal never gets a gap)
_PROJECT_AFTER = _PROJECT.where(
    select(_JOURNAL.c.id)
    .where(_JOURNAL.c.run_id == bindparam("b_run"), _JOURNAL.c.seq == bindparam("b_prev"))
    .exists()
)


def get_run(session: Session, run_id: str) -> RunRow:
    """A run by id or unique id prefix (like git)."""
    row = session.get(RunRow, run_id)
    if row is not None:
        return row
    matches = list(session.scalars(select(RunRow).where(RunRow.id.startswith(run_id)).limit(2)))
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise Ambiguous(f"run id {run_id!r} is ambiguous", hint="give more characters of the id")
    raise NotFound(f"no run {run_id!r} in this store", hint="list runs with `backout runs`")


def list_runs(
    session: Session,
    service: str | None = None,
    limit: int = 20,
    *,
    status: str | None = None,
    since: float | None = None,
) -> list[RunRow]:
    """Runs, newest first: of ``service``, in ``status``, created at or after ``since``."""
    query = select(RunRow).order_by(RunRow.created_at.desc()).limit(limit)
    if service:
        query = query.where(RunRow.service == service)
    if status:
        query = query.where(RunRow.status == status)
    if since is not None:
        query = query.where(RunRow.created_at >= since)
    return list(session.scalars(query))


def active_runs(session: Session, service: str) -> list[RunRow]:
    query = select(RunRow).where(
        RunRow.service == service, RunRow.status.in_([s.value for s in RUN_ACTIVE])
    )
    return list(session.scalars(query))


def is_active(session: Session, run_id: str) -> bool:
    row = session.get(RunRow, run_id)
    return row is not None and row.status in {status.value for status in RUN_ACTIVE}


def load_events(session: Session, run_id: str, after: int = 0) -> list[Event]:
    """The run's events in order; those after sequence number ``after`` (to follow a run)."""
    query = select(EventRow).where(EventRow.run_id == run_id, EventRow.seq > after)
    rows = session.scalars(query.order_by(EventRow.seq))
    return [event_of(row) for row in rows]


def event_of(row: EventRow) -> Event:
    """A journal row as the event it records (its kind as stored)."""
    return Event(row.run_id, row.seq, row.at, row.kind, row.step, row.attempt, dict(row.data))


def append_event(
    session: Session, event: Event, status: RunStatus, message: str, finished_at: float | None
) -> None:
    """Write one event and the run's status projection in the caller's transaction: two
    statements, no ORM unit of work. The projection is updated only if the event before
    this one is in the store: a journal never gets a gap, even if a database that crashed
    lost an unsynced commit while this process lived on (StoreError then)."""
    append_events(session, [event], status, message, finished_at)


def append_events(
    session: Session,
    events: Sequence[Event],
    status: RunStatus,
    message: str,
    finished_at: float | None,
) -> None:
    """Write consecutive events of one run and, once, the run's status projection as the
    last of them leaves it (``status``, ``message``, ``finished_at``), in the caller's
    transaction: the rows in one statement, the projection in another. As for one event,
    the projection is updated only if the event before the first is in the store."""
    first = events[0]
    rows = [
        {
            "run_id": event.run_id,
            "seq": event.seq,
            "at": event.at,
            "kind": str(event.kind),
            "step": event.step,
            "attempt": event.attempt,
            "data": event.data,
        }
        for event in events
    ]
    conn = session.connection()
    conn.execute(_ADD_EVENTS, rows[0] if len(rows) == 1 else rows)
    done = conn.execute(
        _PROJECT_AFTER if first.seq > 1 else _PROJECT,
        {
            "b_run": first.run_id,
            "b_prev": first.seq - 1,
            "b_status": status.value,
            "b_message": message,
            "b_finished": finished_at,
        },
    )
    if done.rowcount != 1:
        raise StoreError(
            f"the journal of run {first.run_id} has no event {first.seq - 1} to follow; "
            "the store lost writes (a database crash?) or the run is gone",
            run_id=first.run_id,
            hint=f"check `backout journal {first.run_id}`, then `backout resume` it",
        )


def add_snapshot(
    session: Session,
    service: str,
    plan: str,
    plan_version: str,
    taken_at: float,
    actor: str,
    values: dict[str, str],
) -> SnapshotRow:
    row = SnapshotRow(
        service=service,
        plan=plan,
        plan_version=plan_version,
        taken_at=taken_at,
        actor=actor,
        values=values,
    )
    session.add(row)
    session.flush()
    return row


def latest_snapshot(
    session: Session, service: str, before: float | None = None
) -> SnapshotRow | None:
    query = select(SnapshotRow).where(SnapshotRow.service == service)
    if before is not None:
        query = query.where(SnapshotRow.taken_at <= before)
    return session.scalars(
        query.order_by(SnapshotRow.taken_at.desc(), SnapshotRow.id.desc()).limit(1)
    ).first()


def get_snapshot(session: Session, snapshot_id: int) -> SnapshotRow | None:
    return session.get(SnapshotRow, snapshot_id)


def list_snapshots(session: Session, service: str, limit: int = 20) -> list[SnapshotRow]:
    """A service's snapshots, newest first (the order ``latest_snapshot`` picks by)."""
    query = (
        select(SnapshotRow)
        .where(SnapshotRow.service == service)
        .order_by(SnapshotRow.taken_at.desc(), SnapshotRow.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def snapshot_services(session: Session) -> list[str]:
    """Every service with at least one snapshot, by name."""
    query = select(SnapshotRow.service).distinct().order_by(SnapshotRow.service)
    return list(session.scalars(query))


def count_events(session: Session, run_id: str) -> int:
    return int(session.scalar(select(func.count()).where(EventRow.run_id == run_id)) or 0)


def run_summary(row: RunRow) -> dict[str, Any]:
    return {
        "run_id": row.id,
        "plan": row.plan,
        "service": row.service,
        "status": row.status,
        "actor": row.actor,
        "created_at": row.created_at,
        "finished_at": row.finished_at,
        "message": row.message,
        "plan_version": row.plan_version,
    }
