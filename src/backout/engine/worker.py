"""Workers: pick up runs whose executor died, and finish them.

A run is orphaned when it is ``pending`` or ``running`` and its lease has expired (or is
gone). Candidates are read with ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two
workers never claim the same run; the lease itself is then taken with a conditional UPDATE,
which keeps SQLite (one writer at a time) correct too.
"""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from backout.engine.lease import claim_for_resume
from backout.errors import ServiceBusyError
from backout.kernel.states import RunStatus
from backout.store import dialect, leases
from backout.store.db import Store
from backout.store.models import RunRow

ORPHAN_STATES = (RunStatus.PENDING.value, RunStatus.RUNNING.value)


def _candidates(session: Session, store: Store, limit: int, skip: set[str]) -> list[RunRow]:
    query = (
        select(RunRow)
        .where(RunRow.status.in_(ORPHAN_STATES), RunRow.id.not_in(skip))
        .order_by(RunRow.created_at)
        .limit(limit)
    )
    query = query.with_for_update(**dialect.skip_locked(store.engine))
    return list(session.scalars(query))


def claim_orphan(
    store: Store, owner: str, ttl: float, limit: int = 20, skip: set[str] | None = None
) -> RunRow | None:
    """Claim one orphaned run for ``owner`` (none of ``skip``); None when there is none."""
    now = time.time()
    with store.session() as session:
        for row in _candidates(session, store, limit, skip or set()):
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
