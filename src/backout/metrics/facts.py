"""What the figures are made of, read from the store in three queries: one row per run
(its row's columns and the few journal events that time it, aggregated in SQL), the
rehearsal records, and the first status update of each run.

A run's outcome comes from the same journal facts the engine's view folds
(:mod:`backout.engine.view`): ``run_finished`` carries ``outcome`` (the run's status) and
``result`` (``promoted``, ``healthy``, ``backed_out``, ``failed``, ``rehearsed``: what
:attr:`RunReport.result <backout.reports.RunReport.result>` shows); ``backout_started``
is written once per run (the view refuses a second). Only those kinds, ``run_started``
and ``trigger_fired`` are read, and only up to the window's end, so the figures for a
past window do not change as later events arrive.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal_column, or_, select
from sqlalchemy.orm import Session

from backout.kernel.events import EventKind
from backout.kernel.states import RunStatus
from backout.metrics.window import Window
from backout.store.models import AuditRow, EventRow, RehearsalRow, RunRow

# a run's outcome as the figures count it (``backout_runs_total{outcome}``)
PROMOTED = "promoted"  # a deploy passed every checkpoint
HEALTHY = "healthy"  # a watch ended with no trigger firing
BACKED_OUT = "backed_out"  # the backout finished and verified: service restored
BACKOUT_FAILED = "backout_failed"  # the backout failed (a step, or its verification)
NOT_STARTED = "not_started"  # a deploy or watch refused before it began (triggers unusable)
IN_PROGRESS = "in_progress"  # not finished when the window ends (running, needs attention)
REHEARSED = "rehearsed"  # a rehearsal drill passed
REHEARSAL_FAILED = "rehearsal_failed"
OUTCOMES = (
    PROMOTED,
    HEALTHY,
    BACKED_OUT,
    BACKOUT_FAILED,
    NOT_STARTED,
    IN_PROGRESS,
    REHEARSED,
    REHEARSAL_FAILED,
)
DEPLOYING = frozenset({"deploy", "watch"})
_KINDS = (
    EventKind.RUN_STARTED,
    EventKind.TRIGGER_FIRED,
    EventKind.BACKOUT_STARTED,
    EventKind.RUN_FINISHED,
)


@dataclass(slots=True)
class RunFact:
    """One run as the figures see it (read, never changed). Times are epoch seconds;
    ``started_at`` is its ``run_started`` (its creation when it never started),
    ``detected_at`` the first trigger that fired, ``backout_at`` when its backout began."""

    run_id: str
    plan: str
    service: str
    environment: str
    mode: str
    outcome: str
    created_at: float
    started_at: float
    detected_at: float | None
    triggers: int
    backout_at: float | None
    finished_at: float | None

    # derived once (the figures ask each of them of every run, several times):
    # a deploy or watch run that began is a deployment (a redeploy of the same release
    # too); rehearsals and plain backouts never are
    is_deployment: bool = field(init=False)
    # a deployment that backed out: once per run, however many triggers fired
    failed_deployment: bool = field(init=False)
    # `backout run PLAN`, with no deploy or watch of backout's behind it
    unplanned_backout: bool = field(init=False)
    # when a backout finished and verified: the service is back on its baseline
    restored_at: float | None = field(init=False)

    def __post_init__(self) -> None:
        self.is_deployment = self.mode in DEPLOYING and self.outcome != NOT_STARTED
        self.failed_deployment = self.is_deployment and self.backout_at is not None
        self.unplanned_backout = self.mode == "backout"
        self.restored_at = self.finished_at if self.outcome == BACKED_OUT else None

    @property
    def backout_began(self) -> float:
        """A deploy's or watch's backout began at ``backout_started``; a plain backout's
        when the run started."""
        return self.backout_at if self.backout_at is not None else self.started_at

    @property
    def detection(self) -> float | None:
        """When the failure was detected: the first trigger that fired (else, for a
        deployment that backed out, its backout's start)."""
        return self.detected_at if self.detected_at is not None else self.backout_at


@dataclass(frozen=True, slots=True)
class RehearsalFact:
    plan: str
    service: str
    environment: str
    passed: bool
    at: float


@dataclass(frozen=True)
class Dataset:
    """Everything the figures and the Prometheus exposition are computed from."""

    window: Window
    filters: dict[str, str | None]
    runs: list[RunFact]
    rehearsals: list[RehearsalFact]
    first_updates: dict[str, float]  # run id -> seconds from incident start to first update
    last_pass: dict[str, float]  # plan -> its latest passing rehearsal up to the window's end
    plans: list[str] = field(default_factory=list)  # the plans seen in the window


def outcome_of(mode: str, status: str | None, result: str | None, backout_at: float | None) -> str:
    """A run's outcome from its ``run_finished`` (``status`` None: not finished)."""
    if status is None:
        return IN_PROGRESS
    if mode == "rehearsal":
        return REHEARSED if result == REHEARSED else REHEARSAL_FAILED
    if result in (PROMOTED, HEALTHY):
        return result
    succeeded = status == RunStatus.SUCCEEDED
    if mode in DEPLOYING and backout_at is None:
        # a deploy or watch ends without a backout only promoted/healthy or refused
        return NOT_STARTED if not succeeded else (PROMOTED if mode == "deploy" else HEALTHY)
    return BACKED_OUT if succeeded else BACKOUT_FAILED


def mode_of(value: str | None) -> str:
    """A run's mode column (migration 0010), as :func:`backout.engine.runner.mode_of` reads
    it from ``plan_doc['mode']``."""
    return value if value in (*DEPLOYING, "rehearsal") else "backout"


def service_name(key: str) -> str:
    """The plan's service from the run's service key (``shop@staging`` -> ``shop``)."""
    return key.split("@", 1)[0]


def _environment(key: str) -> str:
    return key.split("@", 1)[1] if "@" in key else ""


def _where_service(
    column: Any, service: str | None, environment: str | None
) -> list[ColumnElement[bool]]:
    """A service by its name and an environment by its name, on the service key runs and
    rehearsals carry (``shop``, ``shop@staging``: names never hold an ``@``). Read from
    the key, not the plan document: no JSON to parse per run."""
    if service and environment:
        return [column == f"{service}@{environment}"]
    if service:
        return [or_(column == service, column.startswith(f"{service}@", autoescape=True))]
    if environment:
        return [column.endswith(f"@{environment}", autoescape=True)]
    return []


def _run_filters(
    window: Window, service: str | None, environment: str | None, team: str | None
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [RunRow.created_at < window.until]
    if window.since is not None:
        where.append(RunRow.created_at >= window.since)
    where += _where_service(RunRow.service, service, environment)
    if team:
        where.append(RunRow.plan_doc[("plan", "owner")].as_string() == team)
    return where


def _first(kind: EventKind) -> Any:
    return func.min(case((EventRow.kind == kind, EventRow.at)))


def _finished(value: Any) -> Any:
    return func.max(case((EventRow.kind == EventKind.RUN_FINISHED, value)))


def _runs_query(window: Window, where: list[ColumnElement[bool]], sqlite: bool) -> Any:
    """One row per run: its own columns and its journal's timing facts, aggregated in SQL.
    The journal is joined on the run (its index on ``run_id``), so each run's events are
    read once, and only those of the runs the filters keep."""
    # one group a run (its other columns depend on its id), formed in the order runs are
    # read by their creation time's index: by ``created_at`` and, on SQLite, the row's
    # rowid (which that index holds; it keeps runs in the order they were written) rather
    # than the id, whose random order would be a walk all over the table
    run = literal_column("runs.rowid") if sqlite else RunRow.id
    return (
        select(
            RunRow.id,
            RunRow.plan,
            RunRow.service,
            RunRow.created_at,
            RunRow.mode,
            _first(EventKind.RUN_STARTED),
            _first(EventKind.TRIGGER_FIRED),
            func.count(case((EventRow.kind == EventKind.TRIGGER_FIRED, 1))),
            _first(EventKind.BACKOUT_STARTED),
            _finished(EventRow.at),
            _finished(EventRow.data["outcome"].as_string()),
            _finished(EventRow.data["result"].as_string()),
        )
        .outerjoin(
            EventRow,
            and_(
                EventRow.run_id == RunRow.id,
                EventRow.kind.in_([str(kind) for kind in _KINDS]),
                EventRow.at < window.until,
            ),
        )
        .where(*where)
        .group_by(RunRow.created_at, run)
        .order_by(RunRow.created_at, RunRow.id)
    )


def load_runs(
    session: Session,
    window: Window,
    service: str | None = None,
    environment: str | None = None,
    team: str | None = None,
) -> list[RunFact]:
    """Every run created in the window that matches the filters, oldest first."""
    where = _run_filters(window, service, environment, team)
    query = _runs_query(window, where, session.get_bind().dialect.name == "sqlite")
    with _no_collection():
        # core rows (no ORM loading): a window may hold 100,000 runs
        return _facts_of(session.connection().execute(query).all())


@contextmanager
def _no_collection() -> Iterator[None]:
    """Without the cyclic garbage collector for a while: the rows and facts of a large
    window are a few hundred thousand new objects and no cycles, and the collector would
    walk them again and again as they pile up (with it, 100,000 facts take twice as long
    to build). It runs again afterwards, as it was."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _facts_of(rows: Iterable[Sequence[Any]]) -> list[RunFact]:
    """The facts of ``(id, plan, service key, created, mode column, started, first trigger,
    triggers, backout started, finished, status, result)`` rows. A run's mode and outcome
    depend only on its mode column, its status, its result and whether its backout began,
    and its service and environment only on its key: each combination is worked out once,
    not once a run."""
    kinds: dict[tuple[str | None, str | None, str | None, bool], tuple[str, str]] = {}
    places: dict[str, tuple[str, str]] = {}
    facts: list[RunFact] = []
    append = facts.append
    for (
        run_id,
        plan,
        key,
        created,
        mode_text,
        started,
        detected,
        triggers,
        backout,
        finished,
        status,
        result,
    ) in rows:
        kind = kinds.get((mode_text, status, result, backout is None))
        if kind is None:
            mode = mode_of(mode_text)
            kind = (mode, outcome_of(mode, status, result, backout))
            kinds[(mode_text, status, result, backout is None)] = kind
        place = places.get(key)
        if place is None:
            service, _, environment = key.partition("@")
            place = places[key] = (service, environment)
        append(
            RunFact(
                run_id,
                plan,
                place[0],
                place[1],
                kind[0],
                kind[1],
                created,
                started if started is not None else created,
                detected,
                triggers or 0,
                backout,
                finished if status is not None else None,
            )
        )
    return facts


def load_rehearsals(
    session: Session,
    window: Window,
    service: str | None = None,
    environment: str | None = None,
    team: str | None = None,
) -> list[RehearsalFact]:
    """The rehearsal records (``backout rehearse``) written in the window."""
    query = select(
        RehearsalRow.plan,
        RehearsalRow.service,
        RehearsalRow.outcome,
        RehearsalRow.at,
    ).where(RehearsalRow.at < window.until)
    if window.since is not None:
        query = query.where(RehearsalRow.at >= window.since)
    query = query.where(*_where_service(RehearsalRow.service, service, environment))
    if team:
        query = query.join(RunRow, RunRow.id == RehearsalRow.run_id).where(
            RunRow.plan_doc[("plan", "owner")].as_string() == team
        )
    rows = session.connection().execute(query.order_by(RehearsalRow.at)).all()
    return [
        RehearsalFact(
            plan, service_name(key or plan), _environment(key or ""), outcome == "succeeded", at
        )
        for plan, key, outcome, at in rows
    ]


def last_passes(session: Session, plans: list[str], until: float) -> dict[str, float]:
    """Each plan's latest passing rehearsal before ``until`` (any age)."""
    if not plans:
        return {}
    query = (
        select(RehearsalRow.plan, func.max(RehearsalRow.at))
        .where(
            RehearsalRow.plan.in_(plans),
            RehearsalRow.outcome == "succeeded",
            RehearsalRow.at < until,
        )
        .group_by(RehearsalRow.plan)
    )
    return {plan: float(at) for plan, at in session.execute(query)}


def first_updates(session: Session, window: Window, runs: Sequence[RunFact]) -> dict[str, float]:
    """Time to first update per production run (a rehearsal has none): what ``backout
    notify update`` recorded with a run's first status update (seconds from the first
    trigger, or a plain backout's start)."""
    if not runs:
        return {}
    query = select(AuditRow.subject, AuditRow.details["first_update_s"].as_float()).where(
        AuditRow.action == "run.updated", AuditRow.at < window.until
    )
    if window.since is not None:  # an update never comes before its run was created
        query = query.where(AuditRow.at >= window.since)
    updates = session.execute(query).all()
    if not updates:  # the runs' ids are gathered only when there are updates to match
        return {}
    production = {r.run_id for r in runs if r.mode != "rehearsal"}
    found: dict[str, float] = {}
    for subject, seconds in updates:
        run_id = subject.removeprefix("run:")
        if seconds is not None and run_id in production and run_id not in found:
            found[run_id] = float(seconds)
    return found


_plan = attrgetter("plan")


def load(
    session: Session,
    window: Window,
    service: str | None = None,
    environment: str | None = None,
    team: str | None = None,
) -> Dataset:
    """Everything for one window and filter set, read in one transaction."""
    with _no_collection():
        runs = load_runs(session, window, service, environment, team)
        rehearsals = load_rehearsals(session, window, service, environment, team)
        plans = sorted(set(map(_plan, runs)).union(map(_plan, rehearsals)))
        return Dataset(
            window=window,
            filters={"service": service, "environment": environment, "team": team},
            runs=runs,
            rehearsals=rehearsals,
            first_updates=first_updates(session, window, runs),
            last_pass=last_passes(session, plans, window.until),
            plans=plans,
        )


__all__ = [
    "OUTCOMES",
    "Dataset",
    "RehearsalFact",
    "RunFact",
    "load",
    "outcome_of",
]
