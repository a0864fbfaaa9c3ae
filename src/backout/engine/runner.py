"""Execute a run in this process: claim nothing (the caller holds the lease), open the
journal, keep the lease alive, and drive the run's flow to an end or ``needs_attention``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backout import heap
from backout.engine import baseline as baseline_mod
from backout.engine.drill import Drill
from backout.engine.environment import RunEnvironment
from backout.engine.flows import Flow
from backout.engine.hooks import hooks_for
from backout.engine.injection import Injector
from backout.engine.journal import Hook, Journal, Observer
from backout.engine.layout import Mode, layout
from backout.engine.lease import Heartbeat
from backout.engine.orphans import Executor, settle
from backout.engine.steps import Decision, StepRunner
from backout.engine.view import RunView, new_view
from backout.errors import Conflict, StoreError, UsageError
from backout.kernel.events import EventKind
from backout.kernel.states import RUN_TERMINAL, RunStatus, StepStatus
from backout.notify import facts_of, notify_hook, sending_context
from backout.proc import STEP_OWNER, drop_spare, shim_zygote, stop_all
from backout.settings import DEFAULT_HEARTBEAT
from backout.spec.environments import environment_values
from backout.spec.models import Plan
from backout.spec.secrets import resolve_secrets
from backout.statuspage import statuspage_hook
from backout.stop import Stopped
from backout.store import leases, repo
from backout.store.db import Store
from backout.store.models import RunRow
from backout.telemetry import SourceContext
from backout.triggers.watcher import Lag, WatchContext, Watcher

if TYPE_CHECKING:
    from backout.telemetry.hub import TelemetryHub

__all__ = [
    "LAG_FOR",
    "Decision",
    "Execution",
    "check_decisions",
    "empty_view",
    "execute",
    "plan_of",
    "run_hooks",
]


@dataclass(frozen=True)
class Execution:
    """Everything needed to execute one run in this process."""

    store: Store
    row: RunRow
    plan: Plan
    owner: str
    actor: str
    lease_ttl: float
    decisions: dict[int, Decision] = field(default_factory=dict)
    observer: Observer | None = None
    heartbeat: float = DEFAULT_HEARTBEAT  # seconds between renewals (at most lease_ttl / 3)
    # a process watching many deployments: the hub reads the signals of them all
    hub: TelemetryHub | None = None
    lag: Lag | None = None  # each reading's evaluation lag (seconds) and triggers reached


# the watches this thread executes report their readings here (by service key) when their
# execution brings no ``lag`` of its own: a server's workers set it, for the server's /metrics
LAG_FOR: ContextVar[Callable[[str], Lag] | None] = ContextVar("backout_lag_for", default=None)


def plan_of(row: RunRow) -> tuple[Plan, Path]:
    return Plan.model_validate(row.plan_doc["plan"]), Path(row.plan_doc["base_dir"])


def mode_of(row: RunRow) -> Mode:
    mode = row.plan_doc.get("mode", "backout")
    return mode if mode in ("deploy", "watch", "rehearsal") else "backout"


def empty_view(row: RunRow, plan: Plan) -> RunView:
    units = layout(plan, mode_of(row))
    return new_view(row.id, [u.name for u in units], [c.name for c in plan.verify])


def _snapshot_values(store: Store, row: RunRow) -> dict[str, str]:
    if row.snapshot_id is None:
        return {}
    with store.session() as session:
        snapshot = repo.get_snapshot(session, row.snapshot_id)
        return dict(snapshot.values) if snapshot else {}


def environment(store: Store, row: RunRow, plan: Plan, base_dir: Path) -> RunEnvironment:
    values = baseline_mod.template_values(_snapshot_values(store, row))
    name = row.plan_doc.get("environment")
    run = {
        "id": row.id,
        "plan": row.plan,
        "service": plan.service_name,
        "actor": row.actor,
        "release": str(row.plan_doc.get("release") or ""),
        "environment": name or "",
    }
    return RunEnvironment(
        base_dir,
        values,
        resolve_secrets(plan, base_dir),
        run,
        store_url=store.url,
        environment=environment_values(plan, name),
    )


def execute(ex: Execution) -> RunView:
    """Drive the run to a terminal state or ``needs_attention``; return the final view.

    The caller holds the service's lease; it is released when this returns or raises.
    Raises :class:`~backout.engine.orphans.StepMayBeRunning` when a previous executor may
    still run one of its steps, and :class:`~backout.stop.Stopped` after a graceful stop
    (journalled as ``run_stopped``, the interrupted step left for ``resume``).
    """
    heap.settle()  # the start-up's objects out of the cycle collector's way, once
    owner = STEP_OWNER.set(ex.row.id)  # its steps are this run's (a stop ends only those)
    try:
        with shim_zygote():  # the run's shims are forked by a zygote; it goes with the run
            return _execute(ex)
    finally:
        STEP_OWNER.reset(owner)


def _execute(ex: Execution) -> RunView:
    plan, base_dir = plan_of(ex.row)
    env = environment(ex.store, ex.row, plan, base_dir)
    hooks = run_hooks(ex)
    dr_pages = plan.disaster_recovery.page if plan.disaster_recovery else []
    if plan.notify is not None and (plan.notify.routes or dr_pages):
        hooks.append(_notify_hook(ex, plan, env))
    hooks.append(_statuspage_hook(ex, plan))
    journal = Journal.open(ex.store, empty_view(ex.row, plan), env.redactor, ex.observer, hooks)
    if journal.view.status in RUN_TERMINAL:
        _release(ex)
        return journal.view
    with ex.store.session() as session:
        fence = leases.fence_of(session, ex.row.service, ex.owner)
    journal.fence = fence  # every event from now on: only while this claim holds
    with Heartbeat(ex.store, fence, ex.lease_ttl, ex.heartbeat) as heartbeat:
        with ex.store.session() as session:
            events = repo.load_events(session, ex.row.id)
        orphans = settle(journal.view, layout(plan, mode_of(ex.row)), events)
        _start(journal, ex, orphans)
        runner = StepRunner(journal, plan, env, heartbeat, ex.row.id, ex.actor, dict(ex.decisions))
        if mode_of(ex.row) == "rehearsal":
            runner.faults = Injector.of(ex.row.plan_doc.get("faults", []), journal.append)
        watchers: list[Watcher] = []
        try:
            _flow(ex, runner, env, watchers).run()
        except Stopped as stop:
            _stopped(journal, stop)
            raise
        except StoreError as exc:
            raise _store_lost(exc, ex.row.id) from exc
        finally:
            # a step's end held for the next step's transaction, if the run left before it
            with contextlib.suppress(Exception):  # the error that ends the run comes first
                journal.flush()
            for watcher in watchers:
                watcher.close()
            drop_spare()  # no next step: a spare shim would only idle until it timed out
    return journal.view


def run_hooks(ex: Execution) -> list[Hook]:
    """What the run's events mean elsewhere (audit, its change, its outbox routes, a drill's
    evidence), for whoever journals them: the executor, or a person abandoning the run."""
    return hooks_for(
        ex.row.change_id,
        ex.actor,
        ex.row.plan_doc.get("outbound"),
        {
            "service": ex.row.service,
            "plan": ex.row.plan,
            "plan_version": ex.row.plan_version,
            "environment": ex.row.plan_doc.get("environment") or "",
        },
        ex.row.plan_doc.get("faults", []) if mode_of(ex.row) == "rehearsal" else None,
    )


def _statuspage_hook(ex: Execution, plan: Plan) -> Hook:
    """Move the service's incident on the status page as the run goes (a rehearsal never
    does; plan ``status_page:``, or the defaults)."""
    return statuspage_hook(
        ex.row.service, plan.status_page, plan.risk, ex.actor, mode=mode_of(ex.row)
    )


def _notify_hook(ex: Execution, plan: Plan, env: RunEnvironment) -> Hook:
    """Queue the run's notifications as its events are journalled (plan ``notify:``)."""
    assert plan.notify is not None
    steps = [unit.name for unit in layout(plan, mode_of(ex.row))]
    facts = facts_of(ex.row, plan, step_names=steps, checks=len(plan.verify))
    context = sending_context(plan.secrets, env.base_dir, env.environment)
    return notify_hook(plan.notify, facts, env.redactor, context, plan.disaster_recovery)


def _store_lost(exc: StoreError, run_id: str) -> StoreError:
    """The store went away mid-run: say which run, and how to go on once it is back."""
    if exc.run_id is not None and exc.hint:
        return exc
    return StoreError(
        f"lost the store in the middle of the run: {exc.message}",
        run_id=run_id,
        hint=f"once the store is reachable again, continue with `backout resume {run_id}` "
        "(finished steps are not run again)",
    )


def _release(ex: Execution) -> None:
    with ex.store.session() as session:
        leases.release(session, ex.row.service, ex.owner)


def _stopped(journal: Journal, stop: Stopped) -> None:
    """Journal a graceful stop: which step was interrupted, and whether its processes are
    known to be gone (a taker-over need not wait out its timeout then). If the store is
    gone too, the stop stands: resume treats the run as after a crash."""
    # what still runs of this run's step (a drained stop reached a safe point); the steps
    # of other runs in this process (a server's other workers) drain on
    groups_gone = stop_all(owner=journal.view.run_id)
    stop.abandoned = stop.abandoned or not groups_gone
    running = [s for s in journal.view.steps if s.status is StepStatus.RUNNING]
    stop.run_id = journal.view.run_id
    stop.where = f"during step {running[0].index + 1} {running[0].name!r}" if running else ""
    resume = f"backout resume {journal.view.run_id}"
    with contextlib.suppress(StoreError):
        journal.append(
            EventKind.RUN_STOPPED,
            signal=stop.name,
            step=running[0].index if running else None,
            steps_stopped=not stop.abandoned,
            message=f"stopped by {stop.name}"
            + (f" {stop.where}" if stop.where else "")
            + f"; continue it with `{resume}`",
        )


def _flow(ex: Execution, runner: StepRunner, env: RunEnvironment, watchers: list[Watcher]) -> Flow:
    def watcher() -> Watcher:
        if not watchers:
            watchers.append(_watcher(ex, runner, env))
        return watchers[0]

    mode = mode_of(ex.row)
    if mode == "rehearsal":
        rehearsal = ex.plan.rehearsal
        return Drill(
            runner,
            layout(ex.plan, mode),
            mode,
            watcher,
            manual=bool(ex.row.plan_doc.get("manual")),
            detect_within=rehearsal.detect_within if rehearsal else 60.0,
        )
    return Flow(
        runner,
        layout(ex.plan, mode),
        mode,
        watcher,
        float(ex.row.plan_doc.get("watch_for", 0.0)),
        lambda: _promote(ex, env),
    )


def _watcher(ex: Execution, runner: StepRunner, env: RunEnvironment) -> Watcher:
    baseline = baseline_mod.decode(_snapshot_values(ex.store, ex.row))

    def source_ctx(timeout: float, interval: float) -> SourceContext:
        return SourceContext(
            timeout=timeout,
            interval=interval,
            workdir=env.base_dir,
            env=env.process_env(),
            redact=runner.journal.redactor,
        )

    ctx = WatchContext(
        ex.store,
        ex.row.service,
        ex.row.id,
        env.scope(),
        source_ctx,
        runner.journal.append,
        since=ex.row.created_at,
        tamper=runner.faults.reading,
        hub=ex.hub,
        lag=ex.lag or _lag_for(ex.row.service),
    )
    return Watcher(ex.plan, baseline, ctx)


def _lag_for(service: str) -> Lag | None:
    lag_for = LAG_FOR.get()
    return lag_for(service) if lag_for is not None else None


def _promote(ex: Execution, env: RunEnvironment) -> dict[str, Any]:
    """All checkpoints passed: the new release is the last known good state now."""
    taken = baseline_mod.record(
        ex.store,
        ex.row.service,
        ex.plan,
        env.base_dir,
        ex.row.plan_version,
        ex.actor,
        env.redactor,
        lambda _values: env.scope(),
        0.0,
        {"run_id": ex.row.id, "reason": "promoted"},
    )
    return {"snapshot_id": taken.snapshot_id, "baseline": taken.values}


def check_decisions(view: RunView, decisions: dict[int, Decision]) -> None:
    """Operator decisions apply only to a step that started and never finished."""
    for index, decision in decisions.items():
        if not 0 <= index < len(view.steps):
            raise UsageError(
                f"step {index + 1} does not exist; the plan has {len(view.steps)} steps",
                run_id=view.run_id,
            )
        step = view.steps[index]
        if step.status is not StepStatus.RUNNING:
            flag = "--mark-done" if decision == "done" else f"--{decision}"
            raise Conflict(
                f"step {index + 1} {step.name!r} is {step.status}, not "
                f"interrupted; {flag} applies only to a step that started and "
                "never finished",
                run_id=view.run_id,
            )


def _start(journal: Journal, ex: Execution, orphans: list[dict[str, Any]]) -> None:
    view = journal.view
    executor = Executor.this_process().to_json()
    if view.status is RunStatus.PENDING:
        journal.append(EventKind.RUN_STARTED, actor=ex.actor, owner=ex.owner, executor=executor)
    else:
        decisions = {str(i + 1): d for i, d in ex.decisions.items()}
        journal.append(
            EventKind.RUN_RESUMED,
            actor=ex.actor,
            owner=ex.owner,
            executor=executor,
            decisions=decisions,
            previous_status=view.status.value,
            orphans_stopped=orphans,
        )
