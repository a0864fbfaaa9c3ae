"""Workers: pick up runs whose executor died, and finish them.

A run is orphaned when it is ``pending`` or ``running`` and its lease has expired, was
released, or belongs to a dead process on this host. For each candidate a worker locks the
service's lease row with ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL: a row locked by
someone else (its executor writing to the journal or renewing, another worker claiming) is
passed over, so two workers never claim the same run and a worker never waits on a live
executor. The lease itself is then taken with a conditional UPDATE that counts the fencing
token up, which keeps SQLite (one writer at a time) correct too.

A worker sleeps until the first of: a notice that a lease was released
(:mod:`backout.store.notices`), the exit of an executor on this host that holds a lease
(watched through a pidfd: a ``kill -9`` wakes the worker at once), the moment the soonest
held lease would expire, or its poll interval.
"""

from __future__ import annotations

import contextlib
import os
import select as io_select
import threading
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from backout.engine.lease import claim_for_resume
from backout.errors import ServiceBusyError
from backout.kernel.states import RunStatus
from backout.store import dialect, leases, notices
from backout.store.db import Store
from backout.store.models import RunRow

ORPHAN_STATES = (RunStatus.PENDING.value, RunStatus.RUNNING.value)
EXPIRY_SLACK_S = 0.02  # wake this long after a lease's expiry, so that it has expired


def _candidates(session: Session, limit: int, skip: set[str]) -> list[RunRow]:
    query = (
        select(RunRow)
        .where(RunRow.status.in_(ORPHAN_STATES), RunRow.id.not_in(skip))
        .order_by(RunRow.created_at)
        .limit(limit)
    )
    return list(session.scalars(query))


def claim_orphan(
    store: Store, owner: str, ttl: float, limit: int = 20, skip: set[str] | None = None
) -> RunRow | None:
    """Claim one orphaned run for ``owner`` (none of ``skip``); None when there is none."""
    now = time.time()
    skip_locked = bool(dialect.skip_locked(store.engine))
    with store.session() as session:
        for row in _candidates(session, limit, skip or set()):
            if not leases.lock_for_claim(session, row.service, skip_locked):
                continue
            holder = leases.holder(session, row.service, now)
            if (
                holder is not None
                and holder.expires_in > 0
                and not leases.owner_is_dead(holder.owner)
            ):
                continue
            try:
                claim_for_resume(session, row.service, row.id, owner, ttl)
            except ServiceBusyError:
                continue
            return row
    return None


def next_wake(store: Store, interval: float) -> float:
    """Seconds to sleep before looking for orphans again: the poll interval, or less if a
    held lease expires sooner. Executors on this host that hold a lease are watched: their
    exit rings the worker's doorbell."""
    now = time.time()
    with store.session(read_only=True) as session:
        expiry = leases.next_expiry(session, now)
        holders = leases.held(session)
    for service, owner in holders:
        pid = leases.local_pid(owner)
        if pid is not None:
            _watch_exit(pid, service)
    if expiry is None:
        return interval
    return max(0.0, min(interval, expiry - now + EXPIRY_SLACK_S))


_WATCHED: set[int] = set()  # pids whose exit a thread waits for
_WATCHED_LOCK = threading.Lock()


def _watch_exit(pid: int, service: str) -> None:
    """Ring the leases doorbell when process ``pid`` exits (Linux pidfd; elsewhere the poll
    finds it)."""
    with _WATCHED_LOCK:
        if pid in _WATCHED or pid == os.getpid() or not hasattr(os, "pidfd_open"):
            return
        try:
            fd = os.pidfd_open(pid)
        except OSError:  # gone already (the next look claims it), or not ours to watch
            return
        _WATCHED.add(pid)

    def wait() -> None:
        with contextlib.suppress(OSError):
            io_select.select([fd], [], [])
        os.close(fd)
        with _WATCHED_LOCK:
            _WATCHED.discard(pid)
        notices.ring(notices.LEASES, service)

    threading.Thread(target=wait, name=f"backout-watch-{pid}", daemon=True).start()


def doorbell(store: Store) -> notices.Doorbell:
    """Rings when any lease is released (a run stopped, or finished, or was handed back)."""
    return notices.doorbell(store.engine, notices.LEASES)
