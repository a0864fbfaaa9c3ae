"""What ``backout server``'s ``/metrics`` adds to the store's figures
(:mod:`backout.metrics.prometheus`): the state of the moment, read on each scrape with a
few aggregate queries (nothing is kept in the process, so every server over one store
answers the same), and the trigger evaluations of this server's own workers.

- the outbox backlog: unsent and dead-lettered events by route and status, and the age of
  each route's oldest unsent event;
- lease holders: each service's lease, held (1) or not (0), and a held one's seconds to
  expiry (a holder that stopped renewing shows it running down to 0 and below);
- step durations: a histogram of the steps that finished in the last :data:`WINDOW_S`
  seconds, by outcome, counted in SQL (one row per service and outcome);
- trigger verdicts: the watches journal a trigger's verdict when it changes (not each
  reading), and each trigger that fired; both counted over the same window;
- trigger evaluations: not in the store, so counted by the process that evaluates them.
  :data:`EVALUATIONS` holds those of the watches (and deploys' checkpoints) this server's
  workers run: each trigger's evaluations and each reading's lag, with the definitions
  ``backout watch --metrics`` serves (:mod:`backout.triggers.lag`). A watch running in
  another process is counted there, not here.

The step and trigger figures cover a window, not the store's whole history: they can go
down as events leave it, so read them as they are (bucket ratios, ``max_over_time``),
not with ``rate()``. They count the events journaled in the window by runs that started
in it or are still going, which the indexes on ``runs`` find without reading the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client.metrics_core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from backout.kernel.events import EventKind
from backout.kernel.states import RUN_ACTIVE
from backout.store.db import Store
from backout.store.leases import FREE
from backout.store.models import EventRow, LeaseRow, OutboxRow, RunRow
from backout.triggers.lag import Evaluations

WINDOW_S = 24 * 3600.0
# seconds: a step runs from a fraction of a second (a symlink) to an hour (a migration)
STEP_BUCKETS: tuple[float, ...] = (
    0.1,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
)
BACKLOG = ("pending", "sending", "dead")  # the outbox statuses the backlog counts
UNSENT = ("pending", "sending")
SERVICE = ("service", "environment")
_WINDOW = "in the last 24 hours"
METRICS = {
    "backout_outbox_backlog": "Outbound events not delivered, by route and status "
    "(pending, sending, dead).",
    "backout_outbox_oldest_unsent_age_seconds": "Age of each route's oldest pending or "
    "sending event.",
    "backout_lease_held": "Whether a run holds the service's lease (1) or not (0).",
    "backout_lease_expiry_seconds": "Seconds until a held lease expires unless renewed.",
    "backout_step_duration_seconds": f"Duration of the steps that finished {_WINDOW}, by outcome.",
    "backout_trigger_verdict_changes": f"Trigger verdicts journaled {_WINDOW} (a watch "
    "journals a verdict when it changes), by trigger and verdict.",
    "backout_triggers_fired": f"Triggers that fired {_WINDOW}, by trigger.",
}
# what this process's workers evaluate: since the process started, as counters go
EVALUATIONS = Evaluations()


def _where(key: str) -> tuple[str, str]:
    """(service, environment) from a service key (``shop@staging``)."""
    service, _, environment = key.partition("@")
    return service, environment


def _gauge(name: str, labels: Sequence[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, METRICS[name], labels=labels)


class LiveCollector(Collector):
    """Reads the store on each ``collect()``, and adds what ``evaluations`` counted in this
    process; ``clock`` gives now (a test may fix it)."""

    def __init__(
        self,
        store: Store,
        clock: Callable[[], float] = time.time,
        evaluations: Evaluations = EVALUATIONS,
    ) -> None:
        self.store = store
        self.clock = clock
        self.evaluations = evaluations

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        with self.store.session(read_only=True) as session:
            families = [
                *_outbox(session, now),
                *_leases(session, now),
                _steps(session, now - WINDOW_S),
                *_triggers(session, now - WINDOW_S),
            ]
        yield from families
        yield from self.evaluations.registry.collect()


def _outbox(session: Session, now: float) -> list[Metric]:
    backlog = _gauge("backout_outbox_backlog", ("route", "status"))
    oldest = _gauge("backout_outbox_oldest_unsent_age_seconds", ("route",))
    query = (
        select(OutboxRow.route, OutboxRow.status, func.count(), func.min(OutboxRow.created_at))
        .where(OutboxRow.status.in_(BACKLOG))
        .group_by(OutboxRow.route, OutboxRow.status)
        .order_by(OutboxRow.route, OutboxRow.status)
    )
    first: dict[str, float] = {}
    for route, status, count, created in session.execute(query):
        backlog.add_metric((route, status), float(count))
        if status in UNSENT:
            first[route] = min(first.get(route, created), created)
    for route, created in sorted(first.items()):
        oldest.add_metric((route,), max(0.0, now - created))
    return [backlog, oldest]


def _leases(session: Session, now: float) -> list[Metric]:
    held = _gauge("backout_lease_held", SERVICE)
    expiry = _gauge("backout_lease_expiry_seconds", SERVICE)
    query = select(LeaseRow.service, LeaseRow.owner, LeaseRow.expires_at).order_by(LeaseRow.service)
    for service, owner, expires_at in session.execute(query):
        holding = owner != FREE
        held.add_metric(_where(service), 1.0 if holding else 0.0)
        if holding:
            expiry.add_metric(_where(service), expires_at - now)
    return [held, expiry]


def _recent_runs(since: float) -> Any:
    """The runs whose events the window may hold: started in it, or still going."""
    return (
        select(RunRow.id, RunRow.service)
        .where(or_(RunRow.created_at >= since, RunRow.status.in_(list(RUN_ACTIVE))))
        .subquery()
    )


def _steps(session: Session, since: float) -> Metric:
    runs = _recent_runs(since)
    seconds = EventRow.data["duration_s"].as_float()
    outcome = EventRow.data["outcome"].as_string()
    query = (
        select(
            runs.c.service,
            outcome,
            func.count(),
            func.sum(seconds),
            *(func.sum(case((seconds <= edge, 1), else_=0)) for edge in STEP_BUCKETS),
        )
        .join(runs, runs.c.id == EventRow.run_id)
        .where(
            EventRow.kind == EventKind.STEP_FINISHED.value,
            EventRow.at >= since,
            seconds.is_not(None),
        )
        .group_by(runs.c.service, outcome)
    )
    family = HistogramMetricFamily(
        "backout_step_duration_seconds",
        METRICS["backout_step_duration_seconds"],
        labels=(*SERVICE, "outcome"),
    )
    for service, result, count, total, *under in sorted(
        session.execute(query), key=lambda row: (row[0], str(row[1]))
    ):
        buckets = [(str(edge), float(n or 0)) for edge, n in zip(STEP_BUCKETS, under, strict=True)]
        buckets.append(("+Inf", float(count)))
        family.add_metric((*_where(service), str(result or "")), buckets, float(total or 0.0))
    return family


def _triggers(session: Session, since: float) -> list[Metric]:
    runs = _recent_runs(since)
    trigger = EventRow.data["trigger"].as_string()
    verdict = EventRow.data["verdict"].as_string()
    kinds = (EventKind.TRIGGER_EVALUATED.value, EventKind.TRIGGER_FIRED.value)
    query = (
        select(runs.c.service, EventRow.kind, trigger, verdict, func.count())
        .join(runs, runs.c.id == EventRow.run_id)
        .where(EventRow.kind.in_(kinds), EventRow.at >= since)
        .group_by(runs.c.service, EventRow.kind, trigger, verdict)
    )
    verdicts = _gauge("backout_trigger_verdict_changes", (*SERVICE, "trigger", "verdict"))
    fired: dict[tuple[str, ...], int] = {}
    rows = sorted(
        (str(service), str(kind), str(name or ""), str(value or ""), int(count))
        for service, kind, name, value, count in session.execute(query)
    )
    for service, kind, name, value, count in rows:
        if kind == EventKind.TRIGGER_EVALUATED.value:
            verdicts.add_metric((*_where(service), name, value), float(count))
        else:
            key: tuple[str, ...] = (*_where(service), name)
            fired[key] = fired.get(key, 0) + count
    fired_family = _gauge("backout_triggers_fired", (*SERVICE, "trigger"))
    for key, count in sorted(fired.items()):
        fired_family.add_metric(key, float(count))
    return [verdicts, fired_family]
