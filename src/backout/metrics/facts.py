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

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, case, func, or_, select
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


def _events(window: Window, where: list[ColumnElement[bool]]) -> Any:
    """Per run: the journal's timing facts, aggregated in SQL (one row per run)."""
    return (
        select(
            EventRow.run_id.label("run_id"),
            _first(EventKind.RUN_STARTED).label("started"),
            _first(EventKind.TRIGGER_FIRED).label("detected"),
            func.count(case((EventRow.kind == EventKind.TRIGGER_FIRED, 1))).label("triggers"),
            _first(EventKind.BACKOUT_STARTED).label("backout"),
            _finished(EventRow.at).label("finished"),
            _finished(EventRow.data["outcome"].as_string()).label("status"),
            _finished(EventRow.data["result"].as_string()).label("result"),
        )
        .where(
            EventRow.kind.in_([str(kind) for kind in _KINDS]),
            EventRow.at < window.until,
            EventRow.run_id.in_(select(RunRow.id).where(*where)),
        )
        .group_by(EventRow.run_id)
        .subquery()
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
    ev = _events(window, where)
    query = (
        select(
            RunRow.id,
            RunRow.plan,
            RunRow.service,
            RunRow.created_at,
            RunRow.mode,
            ev.c.started,
            ev.c.detected,
            ev.c.triggers,
            ev.c.backout,
            ev.c.finished,
            ev.c.status,
            ev.c.result,
        )
        .outerjoin(ev, ev.c.run_id == RunRow.id)
        .where(*where)
        .order_by(RunRow.created_at, RunRow.id)
    )
    # core rows (no ORM loading): a window may hold 100,000 runs
    return [_fact(row) for row in session.connection().execute(query).all()]


def _fact(row: Any) -> RunFact:
    run_id, plan, key, created, mode_text, started, detected, triggers = row[:8]
    backout, finished, status, result = row[8:]
    mode = mode_of(mode_text)
    service, _, environment = key.partition("@")
    return RunFact(
        run_id=run_id,
        plan=plan,
        service=service,
        environment=environment,
        mode=mode,
        outcome=outcome_of(mode, status, result, backout),
        created_at=created,
        started_at=started if started is not None else created,
        detected_at=detected,
        triggers=int(triggers or 0),
        backout_at=backout,
        finished_at=finished if status is not None else None,
    )


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
    return [
        RehearsalFact(
            plan, service_name(key or plan), _environment(key or ""), outcome == "succeeded", at
        )
        for plan, key, outcome, at in session.execute(query.order_by(RehearsalRow.at))
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


def first_updates(session: Session, window: Window, run_ids: set[str]) -> dict[str, float]:
    """Time to first update per run: what ``backout notify update`` recorded with a run's
    first status update (seconds from the first trigger, or a plain backout's start)."""
    if not run_ids:
        return {}
    query = select(AuditRow.subject, AuditRow.details["first_update_s"].as_float()).where(
        AuditRow.action == "run.updated", AuditRow.at < window.until
    )
    if window.since is not None:  # an update never comes before its run was created
        query = query.where(AuditRow.at >= window.since)
    found: dict[str, float] = {}
    for subject, seconds in session.execute(query):
        run_id = subject.removeprefix("run:")
        if seconds is not None and run_id in run_ids and run_id not in found:
            found[run_id] = float(seconds)
    return found


def load(
    session: Session,
    window: Window,
    service: str | None = None,
    environment: str | None = None,
    team: str | None = None,
) -> Dataset:
    """Everything for one window and filter set, read in one transaction."""
    runs = load_runs(session, window, service, environment, team)
    rehearsals = load_rehearsals(session, window, service, environment, team)
    plans = sorted({r.plan for r in runs} | {r.plan for r in rehearsals})
    production = {r.run_id for r in runs if r.mode != "rehearsal"}
    return Dataset(
        window=window,
        filters={"service": service, "environment": environment, "team": team},
        runs=runs,
        rehearsals=rehearsals,
        first_updates=first_updates(session, window, production),
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
