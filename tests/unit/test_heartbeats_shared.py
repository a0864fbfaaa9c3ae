"""The heartbeats of one process share one thread that renews every lease in one statement
(engine/lease.py): a process watching a thousand deployments writes once a beat, not a
thousand times. Fencing still holds lease by lease. SQLite and PostgreSQL."""

from __future__ import annotations

import time

from backout.engine.lease import Heartbeat, _Beater
from backout.store import leases
from backout.store.db import Store
from backout.store.models import LeaseRow
from tests.services import wait_until

SERVICES = [f"svc-{n}" for n in range(5)]


def beaters(store: Store) -> list[_Beater]:
    """The heartbeat threads renewing leases of this store."""
    return [beater for beater in _Beater._running.values() if beater.store is store]


def expiry(store: Store, service: str) -> float:
    with store.session() as session:
        row = session.get(LeaseRow, service)
        assert row is not None
        return float(row.expires_at)


def test_one_thread_renews_every_lease_and_a_lost_one_is_told_alone(store_url: str) -> None:
    store = Store(store_url)
    try:
        fences = []
        with store.session() as session:
            for n, service in enumerate(SERVICES):
                assert leases.try_insert(session, service, f"run-{n}", "me", time.time(), 3.0)
        with store.session() as session:
            fences = [leases.fence_of(session, service, "me") for service in SERVICES]
        before = {service: expiry(store, service) for service in SERVICES}
        hearts = [Heartbeat(store, fence, ttl=3.0, every=0.05) for fence in fences]
        for heart in hearts:
            heart.__enter__()
        (shared,) = beaters(store)  # one thread for all five
        assert shared.members == set(hearts)
        assert shared.thread.is_alive()
        wait_until(
            lambda: all(expiry(store, s) > before[s] for s in SERVICES), 30, "every lease renewed"
        )
        # somebody takes svc-2 over: its old owner must learn it, nobody else
        with store.session() as session:
            assert leases.take_over(
                session, "svc-2", "run-x", "thief", time.time() + 10, 3.0, stale_owner="me"
            )
        wait_until(hearts[2].lost.is_set, 30, "the lost lease noticed")
        assert [h.lost.is_set() for h in hearts] == [False, False, True, False, False]
        stolen = expiry(store, "svc-2")
        renewed = expiry(store, "svc-4")
        wait_until(lambda: expiry(store, "svc-4") > renewed, 30, "the others still renewed")
        assert expiry(store, "svc-2") == stolen  # never renewed for its old owner again
        for heart in hearts:
            heart.__exit__(None, None, None)
        with store.session() as session:  # each released on leaving (the stolen one is not ours)
            assert leases.holder(session, "svc-0", time.time()) is None
            holder = leases.holder(session, "svc-2", time.time())
            assert holder is not None
            assert holder.owner == "thief"
        assert beaters(store) == []
        shared.thread.join(30)
        assert not shared.thread.is_alive()  # the last to leave ends it
    finally:
        store.dispose()
