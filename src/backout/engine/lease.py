"""Claiming a service for a run, and keeping the claim alive with a heartbeat thread."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import ClassVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from backout.errors import ServiceBusyError, StoreError
from backout.settings import DEFAULT_HEARTBEAT
from backout.store import leases, repo
from backout.store.db import Store


def busy_error(
    service: str, holder: leases.Holder | None, run_id: str | None = None, status: str = ""
) -> ServiceBusyError:
    if holder is None:
        # only a run that needs attention may be given up; any other is resumed
        give_up = (
            f', or give it up with `backout abandon {run_id} --reason "…"`'
            if status == "needs_attention"
            else ""
        )
        return ServiceBusyError(
            f"service {service!r} has an unfinished run {run_id}",
            hint=f"finish it with `backout resume {run_id}` (see `backout status {run_id}`)"
            + give_up,
        )
    when = (
        f"expires in {holder.expires_in:g}s"
        if holder.expires_in > 0
        else f"expired {-holder.expires_in:g}s ago"
    )
    if leases.owner_is_dead(holder.owner) or holder.expires_in <= 0:
        return ServiceBusyError(
            f"service {service!r} has an unfinished run {holder.run_id} whose executor is gone "
            f"(owner {holder.owner}, lease {when})",
            hint=f"continue it with `backout resume {holder.run_id}`, or let `backout worker` "
            "pick it up",
        )
    return ServiceBusyError(
        f"service {service!r} is busy: run {holder.run_id} is executing "
        f"(owner {holder.owner}, lease {when})",
        hint="wait for it to finish; only one run per service may be active",
    )


def claim_for_new_run(session: Session, service: str, run_id: str, owner: str, ttl: float) -> None:
    """In the run-creation transaction: refuse when any run of the service is unfinished."""
    now = time.time()
    active = repo.active_runs(session, service)
    if active:
        raise busy_error(
            service, leases.holder(session, service, now), active[0].id, active[0].status
        )
    if leases.try_insert(session, service, run_id, owner, now, ttl):
        return
    current = leases.holder(session, service, now)
    # a finished run's lease may linger if its process died after finishing
    if (
        current is not None
        and not _run_is_active(session, current.run_id)
        and leases.take_over(session, service, run_id, owner, now, ttl, stale_owner=current.owner)
    ):
        return
    raise busy_error(service, current)


def claim_for_resume(session: Session, service: str, run_id: str, owner: str, ttl: float) -> None:
    now = time.time()
    if leases.try_insert(session, service, run_id, owner, now, ttl):
        return
    current = leases.holder(session, service, now)
    if current is None:
        raise busy_error(service, current, run_id)
    dead = current.owner if leases.owner_is_dead(current.owner) else None
    if current.run_id != run_id and _run_is_active(session, current.run_id):
        raise busy_error(service, current)
    if leases.take_over(session, service, run_id, owner, now, ttl, stale_owner=dead):
        return
    raise busy_error(service, current)


def _run_is_active(session: Session, run_id: str) -> bool:
    return repo.is_active(session, run_id)


class Heartbeat:
    """Renews the lease every ``every`` seconds (at most a third of ``ttl``) until stopped;
    records if the lease was lost. Renewal checks the fencing token too: a lease taken over
    and claimed back by nobody in particular is never renewed by its old owner.

    The heartbeats of one process (per store, interval and lease time) share one thread that
    renews them all in one transaction: a process watching a thousand deployments writes
    once a second, not a thousand times."""

    def __init__(
        self, store: Store, fence: leases.Fence, ttl: float, every: float = DEFAULT_HEARTBEAT
    ) -> None:
        self.store, self.fence, self.ttl = store, fence, ttl
        self.every = min(every, ttl / 3)
        self.lost = threading.Event()

    def __enter__(self) -> Heartbeat:
        _Beater.join(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _Beater.leave(self)
        # Releasing is best effort: if the store is unreachable now, the lease simply expires.
        with contextlib.suppress(StoreError, SQLAlchemyError), self.store.session() as session:
            leases.release(session, self.fence.service, self.fence.owner)


class _Beater:
    """One thread renewing the leases of every :class:`Heartbeat` that shares its store,
    interval and lease time; it ends when the last one leaves."""

    _lock = threading.Lock()
    _running: ClassVar[dict[tuple[int, float, float], _Beater]] = {}

    def __init__(self, key: tuple[int, float, float], store: Store, every: float, ttl: float):
        self.key, self.store, self.every, self.ttl = key, store, every, ttl
        self.members: set[Heartbeat] = set()
        self.thread = threading.Thread(target=self._loop, name="backout-heartbeat", daemon=True)

    @classmethod
    def join(cls, heartbeat: Heartbeat) -> None:
        key = (id(heartbeat.store), heartbeat.every, heartbeat.ttl)
        with cls._lock:
            beater = cls._running.get(key)
            if beater is None:
                beater = cls._running[key] = _Beater(
                    key, heartbeat.store, heartbeat.every, heartbeat.ttl
                )
                beater.thread.start()
            beater.members.add(heartbeat)

    @classmethod
    def leave(cls, heartbeat: Heartbeat) -> None:
        with cls._lock:
            beater = cls._running.get((id(heartbeat.store), heartbeat.every, heartbeat.ttl))
            if beater is not None:
                beater.members.discard(heartbeat)
                if not beater.members:  # the thread sees it is no longer running and ends
                    del cls._running[beater.key]

    def _loop(self) -> None:
        while True:
            time.sleep(self.every)
            with self._lock:
                if self._running.get(self.key) is not self:
                    return
                members = [m for m in self.members if not m.lost.is_set()]
            self._beat(members)

    def _beat(self, members: list[Heartbeat]) -> None:
        if not members:
            return
        # A missed beat is tried again next time; expiry is the backstop.
        with contextlib.suppress(StoreError, SQLAlchemyError), self.store.session() as session:
            lost = leases.renew_many(session, [m.fence for m in members], time.time(), self.ttl)
            gone = {(f.service, f.token) for f in lost}
            for member in members:
                if (member.fence.service, member.fence.token) in gone:
                    member.lost.set()
