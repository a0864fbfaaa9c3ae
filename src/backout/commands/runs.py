"""Run verbs: run, deploy and watch start a run; resume and work continue one; status,
runs, journal and explain read them."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from backout.commands.caller import Caller
from backout.commands.handoff import hand_off
from backout.engine.create import create_run
from backout.engine.journal import Observer
from backout.engine.lease import claim_for_resume
from backout.engine.orphans import StepMayBeRunning
from backout.engine.runner import Decision, Execution, check_decisions, empty_view, execute, plan_of
from backout.engine.view import fold
from backout.engine.worker import claim_orphan, next_wake
from backout.engine.worker import doorbell as worker_doorbell
from backout.errors import PlanError, UsageError
from backout.explain import explain
from backout.kernel.events import Event, EventKind
from backout.kernel.states import RUN_TERMINAL, RunStatus
from backout.plans import load_plan, with_notify_defaults
from backout.reports import RunReport, RunSummary, run_report
from backout.spec.environments import select_environment
from backout.spec.lint import lint, needs_release
from backout.spec.loader import LoadedPlan
from backout.stop import STOP
from backout.store import audit, leases, repo
from backout.store.models import RunRow
from backout.store.notices import Doorbell
from backout.triggers.listener import Listener

STOP_CHECK_S = 0.05  # how soon a sleeping worker notices a stop


def run(
    caller: Caller,
    path: str | Path,
    observer: Observer | None = None,
    strict: bool = False,
    change_id: int | None = None,
    outbound: Mapping[str, Collection[str]] | None = None,
    environment: str | None = None,
) -> RunReport:
    """Execute the plan's backout now, to the end (or until it needs attention).

    ``outbound`` queues the run's events of the given kinds for each route (route -> event
    kinds) in the outbox, as they are journalled; it is kept with the run, so a resume or
    a worker goes on queuing. Channels deliver them (:mod:`backout.channels`)."""
    loaded = load_plan(path)
    refuse_release_users(loaded)
    extra: dict[str, Any] = {"environment": select_environment(loaded.plan, environment)}
    if outbound:
        extra["outbound"] = _routes(outbound)
    return start_run(caller, loaded, extra, observer, strict, change_id)


def _routes(outbound: Mapping[str, Collection[str]]) -> dict[str, list[str]]:
    """Routes as the run keeps them; an event kind the journal never writes is refused."""
    routes: dict[str, list[str]] = {}
    for route, kinds in outbound.items():
        unknown = sorted(set(kinds) - {k.value for k in EventKind})
        if unknown:
            raise UsageError(
                f"route {route!r}: no journal event is called {', '.join(unknown)}",
                hint="event kinds are listed in docs/operations.md (the journal)",
            )
        routes[route] = sorted(kinds)
    return routes


def deploy(
    caller: Caller,
    path: str | Path,
    release: str | None = None,
    observer: Observer | None = None,
    change_id: int | None = None,
    listen: str | None = None,
    environment: str | None = None,
) -> RunReport:
    """Deploy stage by stage; back out the stages done so far if a trigger fires."""
    loaded = load_plan(path)
    name = select_environment(loaded.plan, environment)
    if loaded.plan.deploy is None:
        raise UsageError(
            f"{path}: the plan has no `deploy:` block",
            hint="add `deploy: {stages: [...]}`; see docs/deploy.md",
        )
    if release is None:
        refuse_release_users(loaded)
    extra = {"mode": "deploy", "release": release, "environment": name}
    return start_run(caller, loaded, extra, observer, False, change_id, listen)


def watch(
    caller: Caller,
    path: str | Path,
    seconds: float,
    observer: Observer | None = None,
    change_id: int | None = None,
    listen: str | None = None,
    environment: str | None = None,
) -> RunReport:
    """Watch a deployed release for ``seconds``; back out if a trigger fires."""
    loaded = load_plan(path)
    name = select_environment(loaded.plan, environment)
    if not loaded.plan.triggers and listen is None:
        raise UsageError(
            f"{path}: the plan has no `triggers:` to watch",
            hint="add triggers (docs/triggers.md), or --listen for Alertmanager",
        )
    refuse_release_users(loaded)  # a watch backs out with no release either
    extra = {"mode": "watch", "watch_for": seconds, "environment": name}
    return start_run(caller, loaded, extra, observer, False, change_id, listen)


def refuse_release_users(loaded: LoadedPlan) -> None:
    """Refused before anything is created: with no release given, ``run.release`` would
    render '' in the backout steps and checks, silently."""
    release_users = needs_release(loaded)
    if release_users:
        raise PlanError(release_users)


def refuse_lint_errors(loaded: LoadedPlan, strict: bool) -> None:
    errors = [i for i in lint(loaded) if i.severity == "error" or strict]
    if errors:
        raise PlanError(errors)


def start_run(
    caller: Caller,
    loaded: LoadedPlan,
    extra: dict[str, Any],
    observer: Observer | None,
    strict: bool,
    change_id: int | None,
    listen: str | None = None,
) -> RunReport:
    loaded = with_notify_defaults(loaded, caller.notify)
    refuse_lint_errors(loaded, strict)
    store = caller.store
    service = loaded.plan.service_key(extra.get("environment"))
    # bind the webhook port first: a busy port must not leave a run behind
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(Listener(store, service, None, listen)) if listen else None
        owner = leases.new_owner()
        row = create_run(store, loaded, caller.actor, owner, caller.lease_ttl, change_id, extra)
        if listener is not None:
            listener.run_id = row.id
        execution = Execution(
            store,
            row,
            loaded.plan,
            owner,
            caller.actor,
            caller.lease_ttl,
            observer=observer,
            heartbeat=caller.heartbeat,
        )
        report = run_report(row, execute(execution))
    return handed_off(caller, row, report, observer)


def resume(
    caller: Caller,
    run_id: str,
    decisions: dict[int, Decision] | None = None,
    observer: Observer | None = None,
) -> RunReport:
    """Continue an interrupted run; finished steps never run again."""
    store = caller.store
    with store.session() as session:
        row = repo.get_run(session, run_id)
        events = repo.load_events(session, row.id)
    plan, _ = plan_of(row)
    view = fold(empty_view(row, plan), events)
    check_decisions(view, decisions or {})
    if view.status in RUN_TERMINAL:
        return run_report(row, view)
    owner = leases.new_owner()
    with store.session() as session:
        claim_for_resume(session, row.service, row.id, owner, caller.lease_ttl)
    final = execute(
        Execution(
            store,
            row,
            plan,
            owner,
            caller.actor,
            caller.lease_ttl,
            decisions=dict(decisions or {}),
            observer=observer,
            heartbeat=caller.heartbeat,
        )
    )
    return handed_off(caller, row, run_report(row, final), observer)


def handed_off(
    caller: Caller, row: RunRow, report: RunReport, observer: Observer | None
) -> RunReport:
    """A failed backout hands over to disaster recovery (plan ``disaster_recovery:``)."""
    mode = row.plan_doc.get("mode", "backout")
    if report.status != RunStatus.FAILED or mode == "rehearsal":
        return report
    plan, base_dir = plan_of(row)
    environment = row.plan_doc.get("environment") or None

    def start(path: Path, extra: dict[str, Any]) -> RunReport:
        loaded = load_plan(path)
        env = environment if loaded.plan.environments else None
        chosen = {**extra, "environment": select_environment(loaded.plan, env)}
        return start_run(caller, loaded, chosen, observer, False, None)

    if row.plan_doc.get("handoff_from"):  # a recovery run that failed: never chain on
        return report
    return replace(report, handoff=hand_off(caller, report, plan, base_dir, environment, start))


def work(
    caller: Caller, once: bool = False, interval: float = 2.0, observer: Observer | None = None
) -> list[RunReport]:
    """Finish orphaned runs (their executor died and the lease expired); ``once``: one pass.

    A run whose interrupted step may still be running under its previous executor (on
    another host, or hung) is left alone until that step's timeout has ended. On a stop
    (SIGTERM) the worker claims nothing new; the run in hand is stopped and handed back.
    """
    reports: list[RunReport] = []
    waiting: dict[str, float] = {}  # run id -> when its previous executor's step must be over
    with worker_doorbell(caller.store) as bell:  # a released lease wakes the worker at once
        while not STOP.requested:
            now = time.time()
            owner = leases.new_owner()
            skip = {run_id for run_id, until in waiting.items() if until > now}
            row = claim_orphan(caller.store, owner, caller.lease_ttl, skip=skip)
            if row is None:
                if once or _sleep(bell, next_wake(caller.store, interval)):
                    break
                continue
            plan, _ = plan_of(row)
            execution = Execution(
                caller.store,
                row,
                plan,
                owner,
                caller.actor,
                caller.lease_ttl,
                observer=observer,
                heartbeat=caller.heartbeat,
            )
            try:
                reports.append(run_report(row, execute(execution)))
            except StepMayBeRunning as exc:
                waiting[row.id] = exc.until
            except leases.LeaseLost:
                continue  # another executor took this run over: it is theirs now
    STOP.check()
    return reports


def _sleep(bell: Doorbell, seconds: float) -> bool:
    """Sleep until woken or ``seconds`` pass; True (soon) when a stop is requested."""
    deadline = time.monotonic() + seconds
    while not STOP.requested:
        left = deadline - time.monotonic()
        if left <= 0 or bell.wait(min(left, STOP_CHECK_S)):
            return False
    return True


def status(caller: Caller, run_id: str) -> RunReport:
    """A run's steps, checks and outcome, as its journal tells them."""
    return _report(caller, run_id)[0]


def _report(caller: Caller, run_id: str) -> tuple[RunReport, list[Event]]:
    with caller.store.session() as session:
        row = repo.get_run(session, run_id)
        events = repo.load_events(session, row.id)
    plan, _ = plan_of(row)
    return run_report(row, fold(empty_view(row, plan), events)), events


def runs(
    caller: Caller,
    service: str | None = None,
    limit: int = 20,
    *,
    status: str | None = None,
    since: float | None = None,
) -> list[RunSummary]:
    """Runs, newest first: of ``service``, in ``status``, created at or after ``since``
    (seconds since the epoch). An unknown status is refused, not silently empty."""
    if status is not None and status not in {s.value for s in RunStatus}:
        raise UsageError(
            f"no run status is called {status!r}",
            hint="one of: " + ", ".join(s.value for s in RunStatus),
        )
    with caller.store.session() as session:
        rows = repo.list_runs(session, service, limit, status=status, since=since)
        return [RunSummary.of(row) for row in rows]


def journal(caller: Caller, run_id: str) -> list[Event]:
    """Every event of a run, in order (the id may be a unique prefix)."""
    with caller.store.session() as session:
        row = repo.get_run(session, run_id)
        return repo.load_events(session, row.id)


def explain_run(caller: Caller, run_id: str) -> tuple[RunReport, list[str]]:
    """Why the run did what it did, in sentences; with the hand-off to disaster recovery
    when the backout failed (or which failed run this recovery run took over from)."""
    report, events = _report(caller, run_id)
    lines = explain(report, events)
    with caller.store.session() as session:
        row = repo.get_run(session, report.run_id)
        handoffs = audit.log(session, "run.handoff", f"run:{report.run_id}")
        origin = row.plan_doc.get("handoff_from")
    if origin:
        lines.insert(1, f"a disaster-recovery run: it took over from failed run {origin}")
    for record in handoffs:
        d = record.details
        lines.append(
            f"hand-off to disaster recovery: owner {d.get('owner')}"
            + (f", runbook {d['runbook']}" if d.get("runbook") else "")
            + f"; {d.get('outcome')}"
            + (f" ({d['recovery_status']})" if d.get("recovery_status") else "")
        )
    return report, lines
