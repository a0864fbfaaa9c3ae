"""Warm a waiting process's alert path: the reads an alert makes, made once ahead of it.

A process compiles each SQL statement the first time it runs it (SQLAlchemy caches the
compiled form per engine): on a fresh watch that is several milliseconds of the time from
an alert to its backout's first program. A watch makes these reads before it says it
watches, for a service no run has (no name starts with ``-``), so they find nothing and
write nothing; the alert's own reads then run compiled. Its writes (the inbox entry, its
taking, the alert's claim) are made too, for that service, in a transaction rolled back:
nothing is kept, and no notice is sent (one is sent only when its transaction commits).
"""

from __future__ import annotations

import weakref

from sqlalchemy import Engine

from backout.store import audit, inbox, incidents
from backout.store.db import Store

NO_SERVICE = "-"  # never a service's name: names start with a letter or a digit
_WARM: weakref.WeakSet[Engine] = weakref.WeakSet()  # engines whose alert reads are compiled


def warm_alert_path(store: Store, run_id: str, since: float) -> None:
    """The inbox's look, take and claim check, the status page's open incident and the audit
    chain's last link, in one read-only transaction, then the inbox's writes rolled back;
    once per store's engine (its compiled cache is shared by every run the process
    watches)."""
    engine = store.engine
    if engine in _WARM:
        return
    with store.session(read_only=True) as session:
        inbox.waiting(session, NO_SERVICE, run_id, since)
        inbox.take(session, NO_SERVICE, run_id, since)  # finds nothing, so updates nothing
        inbox.acted_on(session, NO_SERVICE, ("", ""))
        incidents.open_incident(session, NO_SERVICE)
        audit.last_link(session)
    # the writes: an alert's entry, its taking and its claim, in a transaction rolled back
    with store.rolled_back() as session:
        inbox.put(session, NO_SERVICE, "warm-up", "", "backout", {}, run_id)
        inbox.take(session, NO_SERVICE, run_id, since)  # finds it: the UPDATE that takes it
        inbox.claim_alert(session, NO_SERVICE, ("", ""), "", run_id)
    _WARM.add(engine)
