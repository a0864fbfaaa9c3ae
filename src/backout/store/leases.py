"""Leases: one executing worker per service, claimed atomically and renewed by heartbeat.

A new run claims by INSERT (the primary key on ``service`` makes a second claim fail on
both databases); a resume or a worker takes over only an expired lease, or one whose owner
is a dead process on this host, with a conditional UPDATE.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backout.proc import alive
from backout.store.models import LeaseRow


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str) -> bool:
    """True when the owner was a process on this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    return not alive(int(pid_text), None)  # a zombie is dead too


@dataclass(frozen=True)
class Holder:
    run_id: str
    owner: str
    expires_in: float


def try_insert(
    session: Session, service: str, run_id: str, owner: str, now: float, ttl: float
) -> bool:
    """Claim a free service. False when somebody holds it (their row stays untouched)."""
    try:
        with session.begin_nested():
            session.add(
                LeaseRow(
                    service=service,
                    run_id=run_id,
                    owner=owner,
                    acquired_at=now,
                    expires_at=now + ttl,
                )
            )
        return True
    except IntegrityError:
        return False


def take_over(
    session: Session,
    service: str,
    run_id: str,
    owner: str,
    now: float,
    ttl: float,
    *,
    stale_owner: str | None = None,
) -> bool:
    """Take an expired lease (or one whose owner is known dead) for ``run_id``."""
    condition = LeaseRow.expires_at < now
    if stale_owner is not None:
        condition = condition | (LeaseRow.owner == stale_owner)
    result = session.execute(
        update(LeaseRow)
        .where(LeaseRow.service == service, condition)
        .values(run_id=run_id, owner=owner, acquired_at=now, expires_at=now + ttl)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def holder(session: Session, service: str, now: float) -> Holder | None:
    row = session.get(LeaseRow, service)
    if row is None:
        return None
    return Holder(row.run_id, row.owner, round(row.expires_at - now, 1))


def renew(session: Session, service: str, owner: str, now: float, ttl: float) -> bool:
    result = session.execute(
        update(LeaseRow)
        .where(LeaseRow.service == service, LeaseRow.owner == owner)
        .values(expires_at=now + ttl)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release(session: Session, service: str, owner: str) -> None:
    session.execute(delete(LeaseRow).where(LeaseRow.service == service, LeaseRow.owner == owner))
