"""Leases: one executing worker per service, claimed atomically and renewed by heartbeat.

A service's first claim inserts its row (the primary key on ``service`` makes a second
claim fail on both databases); later claims take a released row (owner '') or, for a resume
or a worker, an expired one or one whose owner is a dead process on this host, with a
conditional UPDATE. Every claim counts the row's ``token`` up by one: the **fencing token**.

The executor holds a :class:`Fence` (service, owner, token). Every journal write calls it in
its own transaction (:func:`check_fence`): the lease row is read and locked (``FOR UPDATE``
on PostgreSQL; SQLite's writer lock is already held), and if it no longer carries this owner
and token the write is refused with :class:`LeaseLost`. So once a claim commits, an older
owner can commit nothing more to the run's journal: it cannot start a step (``step_started``
and each ``step_process`` are written before anything runs), nor finish one.

A released lease keeps its row (owner '', expired) so that tokens keep counting up. Every
claim and release sends a notice (:mod:`backout.store.notices`): a worker wakes, takes a
released run, and watches a new holder (its expiry; its exit, on this host).
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass

from sqlalchemy import bindparam, func, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backout.errors import StoreError
from backout.proc import alive
from backout.store import notices
from backout.store.models import LeaseRow

FREE = ""  # the owner of a released lease


class LeaseLost(StoreError):
    """This executor's lease was taken over: it may write nothing more to the run."""


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str) -> bool:
    """True when the owner was a process on this host that no longer exists."""
    pid = local_pid(owner)
    return pid is not None and not alive(pid, None)  # a zombie is dead too


@dataclass(frozen=True)
class Holder:
    run_id: str
    owner: str
    expires_in: float
    token: int = 0


@dataclass(frozen=True)
class Fence:
    """What an executor holds: its claim of the service (owner and fencing token)."""

    service: str
    run_id: str
    owner: str
    token: int

    def __call__(self, session: Session) -> None:
        check_fence(session, self)


def try_insert(
    session: Session, service: str, run_id: str, owner: str, now: float, ttl: float
) -> bool:
    """Claim a free service (no row yet, or a released one). False when somebody holds it
    (their row stays untouched)."""
    released = session.execute(
        update(LeaseRow)
        .where(LeaseRow.service == service, LeaseRow.owner == FREE)
        .values(
            run_id=run_id,
            owner=owner,
            acquired_at=now,
            expires_at=now + ttl,
            token=LeaseRow.token + 1,
        )
    )
    if not released.rowcount:  # type: ignore[attr-defined]
        try:
            with session.begin_nested():
                session.add(
                    LeaseRow(
                        service=service,
                        run_id=run_id,
                        owner=owner,
                        acquired_at=now,
                        expires_at=now + ttl,
                        token=1,
                    )
                )
        except IntegrityError:
            return False
    notices.notify(session, notices.LEASES, service)  # workers watch the new holder
    return True


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
        .values(
            run_id=run_id,
            owner=owner,
            acquired_at=now,
            expires_at=now + ttl,
            token=LeaseRow.token + 1,
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    notices.notify(session, notices.LEASES, service)  # workers watch the new holder
    return True


def holder(session: Session, service: str, now: float) -> Holder | None:
    """Who holds the service's lease; None when nobody does (no row, or released)."""
    row = session.get(LeaseRow, service)
    if row is None or row.owner == FREE:
        return None
    return Holder(row.run_id, row.owner, round(row.expires_at - now, 1), row.token)


def lock_for_claim(session: Session, service: str, skip_locked: bool) -> bool:
    """Lock the service's lease row for a claim in this transaction. With ``skip_locked``
    (PostgreSQL workers), False when another transaction holds it: its executor is writing
    or renewing right now, or another worker is claiming it."""
    query = select(LeaseRow.service).where(LeaseRow.service == service)
    found = session.execute(query.with_for_update(skip_locked=skip_locked)).first()
    if found is not None:
        return True
    # no row (a service never claimed): the primary key settles a race; locked only if
    # somebody else's row is there, which SKIP LOCKED hid from us
    return not skip_locked or session.get(LeaseRow, service) is None


def fence_of(session: Session, service: str, owner: str) -> Fence:
    """The fence of ``owner``'s claim, read right after the claim; LeaseLost if already gone."""
    row = session.get(LeaseRow, service)
    if row is None or row.owner != owner:
        current = (row.owner, row.token) if row is not None else None
        raise _lost(service, current, owner, None, row.run_id if row else None)
    return Fence(service, row.run_id, owner, row.token)


# built once: the fence is checked in every journal write's transaction
_FENCE = (
    select(LeaseRow.owner, LeaseRow.token)
    .where(LeaseRow.service == bindparam("b_service"))
    .with_for_update()
)


def check_fence(session: Session, fence: Fence) -> None:
    """In a journal write's transaction: refuse it unless the lease still carries this
    owner and token. The row stays locked until the write commits, so a claim made at the
    same moment waits for it (and then reads a journal that includes it)."""
    found = session.connection().execute(_FENCE, {"b_service": fence.service}).first()
    current = (str(found[0]), int(found[1])) if found is not None else None
    if current != (fence.owner, fence.token):
        raise _lost(fence.service, current, fence.owner, fence, fence.run_id)


def _lost(
    service: str,
    current: tuple[str, int] | None,
    owner: str,
    fence: Fence | None,
    run_id: str | None,
) -> LeaseLost:
    if current is None or current[0] == FREE:
        now = "the lease was released"
    else:
        now = f"it is held by {current[0]} (fencing token {current[1]})"
    ours = f" with token {fence.token}" if fence else ""
    return LeaseLost(
        f"this executor ({owner}{ours}) no longer holds the lease of service {service!r}: "
        f"{now}; it stops here, writing and starting nothing more",
        run_id=run_id,
        hint=f"another executor took the run over; see `backout status {run_id}`",
    )


def renew(session: Session, fence: Fence, now: float, ttl: float) -> bool:
    result = session.execute(
        update(LeaseRow)
        .where(
            LeaseRow.service == fence.service,
            LeaseRow.owner == fence.owner,
            LeaseRow.token == fence.token,
        )
        .values(expires_at=now + ttl)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


RENEW_CHUNK = 300  # fences per statement (three parameters each)


def renew_many(session: Session, fences: list[Fence], now: float, ttl: float) -> list[Fence]:
    """Renew many leases in a statement per :data:`RENEW_CHUNK` (one process watching a
    fleet holds a lease per service); returns the fences whose lease was lost."""
    kept: set[tuple[str, int]] = set()
    for start in range(0, len(fences), RENEW_CHUNK):
        chunk = fences[start : start + RENEW_CHUNK]
        keys = [(f.service, f.owner, f.token) for f in chunk]
        statement = (
            update(LeaseRow)
            .where(tuple_(LeaseRow.service, LeaseRow.owner, LeaseRow.token).in_(keys))
            .values(expires_at=now + ttl)
            .returning(LeaseRow.service, LeaseRow.token)
        )
        kept.update((str(service), int(token)) for service, token in session.execute(statement))
    return [f for f in fences if (f.service, f.token) not in kept]


def release(session: Session, service: str, owner: str) -> None:
    """Give the lease up (if ``owner`` still holds it); a waiting worker is told at once."""
    result = session.execute(
        update(LeaseRow)
        .where(LeaseRow.service == service, LeaseRow.owner == owner)
        .values(owner=FREE, expires_at=0.0)
    )
    if result.rowcount:  # type: ignore[attr-defined]
        notices.notify(session, notices.LEASES, service)


def held(session: Session) -> list[tuple[str, str]]:
    """(service, owner) of every lease held now (expired or not)."""
    query = select(LeaseRow.service, LeaseRow.owner).where(LeaseRow.owner != FREE)
    return [(str(service), str(owner)) for service, owner in session.execute(query)]


def local_pid(owner: str) -> int | None:
    """The pid of an owner that is a process on this host (None for another host)."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    return int(pid_text) if host == socket.gethostname() and pid_text.isdigit() else None


def next_expiry(session: Session, now: float) -> float | None:
    """When the soonest held lease expires if nobody renews it (None: none is held)."""
    query = select(func.min(LeaseRow.expires_at)).where(
        LeaseRow.owner != FREE, LeaseRow.expires_at >= now
    )
    value = session.execute(query).scalar()
    return float(value) if value is not None else None
