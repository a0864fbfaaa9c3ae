"""The verbs, as plain functions taking settings (alembic's ``command.py`` is the model).

The CLI, and later the REST API and UI, are thin layers over these; nothing here prints.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from backout.changes import outbox
from backout.engine import baseline
from backout.engine.create import create_run
from backout.engine.environment import RunEnvironment, resolve_secrets
from backout.engine.journal import Observer
from backout.engine.lease import claim_for_resume
from backout.engine.orphans import StepMayBeRunning
from backout.engine.runner import (
    Decision,
    Execution,
    check_decisions,
    empty_view,
    execute,
    plan_of,
)
from backout.engine.view import fold
from backout.engine.worker import claim_orphan
from backout.errors import Conflict, Issue, NoStoreError, PlanError, TemplateError, UsageError
from backout.explain import explain
from backout.kernel.events import Event
from backout.kernel.states import RUN_TERMINAL
from backout.plans import KINDS, load_plan, plan_schema
from backout.redact import Redactor
from backout.reports import (
    DryRunReport,
    DryRunStep,
    RunReport,
    SnapshotReport,
    run_report,
)
from backout.settings import Settings
from backout.spec.lint import lint, needs_release
from backout.spec.loader import LoadedPlan
from backout.spec.runbook import render_runbook
from backout.spec.templating import render_value
from backout.stop import STOP
from backout.store import audit, inbox, leases, repo
from backout.store import changes as change_store
from backout.store.db import Store, open_store
from backout.triggers.listener import Listener


# --- plans ------------------------------------------------------------------------------
def validate(paths: Sequence[str | Path], strict: bool = False) -> dict[str, list[Issue]]:
    """Issues per file: load errors, then lint warnings (errors too when ``strict``)."""
    results: dict[str, list[Issue]] = {}
    for path in paths:
        try:
            loaded = load_plan(path)
        except PlanError as exc:
            results[str(path)] = exc.issues
            continue
        issues = lint(loaded)
        if strict:
            issues = [
                Issue(i.file, i.line, i.col, i.field, i.message, i.hint, "error") for i in issues
            ]
        results[str(path)] = issues
    return results


def schema() -> dict[str, Any]:
    return plan_schema()


def init(path: str | Path, force: bool = False) -> Path:
    """Write the starter plan at ``path``, creating its folder (like ``git init``)."""
    target = Path(path)
    if target.exists() and not force:
        raise UsageError(f"{target} already exists", hint="choose another name or pass --force")
    if target.is_dir():
        raise UsageError(f"{target} is a folder", hint=f"name the file: {target / 'backout.yaml'}")
    from importlib.resources import files

    starter = (files("backout.spec") / "starter.yaml").read_text(encoding="utf-8")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(starter, encoding="utf-8")
    except OSError as exc:
        blocker = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
        problem = f"{blocker} is a file, not a folder" if blocker else exc.strerror
        raise UsageError(
            f"cannot write {target}: {problem}", hint="choose another path for the plan"
        ) from exc
    return target


def show(path: str | Path) -> str:
    return render_runbook(load_plan(path))


# --- baseline ---------------------------------------------------------------------------
def snapshot(settings: Settings, path: str | Path, telemetry_window: float = 5.0) -> SnapshotReport:
    """Record the last known good state: the plan's baseline values, and what its telemetry
    signals read over ``telemetry_window`` seconds (for relative and sequential triggers)."""
    loaded = load_plan(path)
    plan = loaded.plan
    if not plan.baseline and not plan.telemetry:
        raise UsageError(
            f"{path}: the plan declares no `baseline:` values or `telemetry:` signals to record",
            hint="add e.g. `baseline: {release: {readlink: releases/current}}`",
        )
    secrets = resolve_secrets(plan, loaded.base_dir)
    redactor = Redactor(secrets.values())
    values = baseline.read_values(plan, loaded.base_dir, redactor)
    signals: dict[str, Any] = {}
    if plan.telemetry:
        scope = {"env": dict(os.environ), "secrets": secrets, "baseline": values}
        readings = baseline.read_telemetry(plan, loaded.base_dir, telemetry_window, scope)
        values[baseline.TELEMETRY_KEY] = baseline.encode(readings)
        signals = {
            name: {
                "status": r.status,
                "value": r.value,
                "events": r.events,
                "trials": r.trials,
                "samples": len(r.samples),
            }
            for name, r in readings.items()
        }
    store = open_store(settings.database_url)
    try:
        with store.session() as session:
            row = repo.add_snapshot(
                session,
                plan.service_name,
                plan.plan,
                loaded.version,
                time.time(),
                settings.actor,
                values,
            )
            shown = baseline.template_values(values)
            audit.append(
                session,
                settings.actor,
                "snapshot.taken",
                f"service:{plan.service_name}",
                {
                    "snapshot_id": row.id,
                    "plan": plan.plan,
                    "plan_version": loaded.version,
                    "values": shown,
                    "telemetry": signals,
                },
            )
            return SnapshotReport(row.id, row.service, row.plan, row.taken_at, shown, signals)
    finally:
        store.dispose()


# --- runs -------------------------------------------------------------------------------
def run(
    settings: Settings,
    path: str | Path,
    observer: Observer | None = None,
    strict: bool = False,
    change_id: int | None = None,
) -> RunReport:
    """Execute the plan's backout now, to the end (or until it needs attention)."""
    loaded = load_plan(path)
    _refuse_release_users(loaded)
    return _start_run(settings, loaded, {}, observer, strict, change_id)


def _refuse_release_users(loaded: LoadedPlan) -> None:
    """Refused before anything is created: with no release given, ``run.release`` would
    render '' in the backout steps and checks, silently."""
    release_users = needs_release(loaded)
    if release_users:
        raise PlanError(release_users)


def deploy(
    settings: Settings,
    path: str | Path,
    release: str | None = None,
    observer: Observer | None = None,
    change_id: int | None = None,
    listen: str | None = None,
) -> RunReport:
    """Deploy stage by stage; back out the stages done so far if a trigger fires."""
    loaded = load_plan(path)
    if loaded.plan.deploy is None:
        raise UsageError(
            f"{path}: the plan has no `deploy:` block",
            hint="add `deploy: {stages: [...]}`; see docs/deploy.md",
        )
    if release is None:
        _refuse_release_users(loaded)
    extra = {"mode": "deploy", "release": release}
    return _start_run(settings, loaded, extra, observer, False, change_id, listen)


def watch(
    settings: Settings,
    path: str | Path,
    seconds: float,
    observer: Observer | None = None,
    change_id: int | None = None,
    listen: str | None = None,
) -> RunReport:
    """Watch a deployed release for ``seconds``; back out if a trigger fires."""
    loaded = load_plan(path)
    if not loaded.plan.triggers and listen is None:
        raise UsageError(
            f"{path}: the plan has no `triggers:` to watch",
            hint="add triggers (docs/triggers.md), or --listen for Alertmanager",
        )
    _refuse_release_users(loaded)  # a watch backs out with no release either
    extra = {"mode": "watch", "watch_for": seconds}
    return _start_run(settings, loaded, extra, observer, False, change_id, listen)


def _start_run(
    settings: Settings,
    loaded: LoadedPlan,
    extra: dict[str, Any],
    observer: Observer | None,
    strict: bool,
    change_id: int | None,
    listen: str | None = None,
) -> RunReport:
    _refuse_lint_errors(loaded, strict)
    store = open_store(settings.database_url)
    try:
        # bind the webhook port first: a busy port must not leave a run behind
        with contextlib.ExitStack() as stack:
            listener = (
                stack.enter_context(Listener(store, loaded.plan.service_name, None, listen))
                if listen
                else None
            )
            owner = leases.new_owner()
            row = create_run(
                store, loaded, settings.actor, owner, settings.lease_ttl, change_id, extra
            )
            if listener is not None:
                listener.run_id = row.id
            execution = Execution(
                store,
                row,
                loaded.plan,
                owner,
                settings.actor,
                settings.lease_ttl,
                observer=observer,
            )
            return run_report(row, execute(execution))
    finally:
        store.dispose()


def _refuse_lint_errors(loaded: LoadedPlan, strict: bool) -> None:
    errors = [i for i in lint(loaded) if i.severity == "error" or strict]
    if errors:
        raise PlanError(errors)


def dry_run(settings: Settings, path: str | Path) -> DryRunReport:
    """Render every step with the latest baseline; execute nothing, write nothing."""
    loaded = load_plan(path)
    plan = loaded.plan
    problems = [str(issue) for issue in needs_release(loaded)]
    snap = _latest_snapshot(settings, plan.service_name, problems)
    values = baseline.template_values(dict(snap.values)) if snap else {}
    try:
        secrets = resolve_secrets(plan, loaded.base_dir)
    except UsageError as exc:
        problems.append(exc.message)
        secrets = {}
    run_values = {
        "id": "DRY-RUN",
        "plan": plan.plan,
        "service": plan.service_name,
        "actor": settings.actor,
        "release": "",  # as `backout run` sees it: only `backout deploy --release` sets it
    }
    env = RunEnvironment(loaded.base_dir, values, secrets, run_values)
    redactor = env.redactor
    steps = [
        DryRunStep(
            i + 1,
            s.name,
            s.kind,
            redactor.value(_render(s, env, problems)),
            s.timeout,
            s.retries,
            s.idempotent,
            s.on_failure,
        )
        for i, s in enumerate(plan.steps)
    ]
    checks = [
        {
            "number": i + 1,
            "name": c.name,
            "check": c.kind,
            "within_s": c.within,
            "rendered": redactor.value(_render(c, env, problems)),
        }
        for i, c in enumerate(plan.verify)
    ]
    return DryRunReport(
        plan.plan, plan.service_name, snap.id if snap else None, values, steps, checks, problems
    )


def _latest_snapshot(settings: Settings, service: str, problems: list[str]) -> Any:
    """The service's newest snapshot, read without creating a store."""
    try:
        store = open_store(settings.database_url, create=False)
    except NoStoreError as exc:
        problems.append(f"{exc.message}: no snapshot of {service!r} to render baseline values")
        return None
    try:
        with store.session() as session:
            return repo.latest_snapshot(session, service)
    finally:
        store.dispose()


def _render(item: Any, env: RunEnvironment, problems: list[str]) -> Any:
    section = "steps" if hasattr(item, "retries") else "verify"
    kind = KINDS.of(section).get(item.kind)
    if not getattr(kind, "templated", True):
        return item.options
    try:
        return render_value(item.options, env.scope())
    except TemplateError as exc:  # the only error rendering raises; it would fail this step
        # the message may quote a value, and a value may be a secret
        problems.append(env.redactor(f"{item.name}: {exc.message}"))
        return item.options


def resume(
    settings: Settings,
    run_id: str,
    decisions: dict[int, Decision] | None = None,
    observer: Observer | None = None,
) -> RunReport:
    store = open_store(settings.database_url)
    try:
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
            claim_for_resume(session, row.service, row.id, owner, settings.lease_ttl)
        final = execute(
            Execution(
                store,
                row,
                plan,
                owner,
                settings.actor,
                settings.lease_ttl,
                decisions=dict(decisions or {}),
                observer=observer,
            )
        )
        return run_report(row, final)
    finally:
        store.dispose()


def work(
    settings: Settings, once: bool = False, interval: float = 2.0, observer: Observer | None = None
) -> list[RunReport]:
    """Finish orphaned runs (their executor died and the lease expired); ``once``: one pass.

    A run whose interrupted step may still be running under its previous executor (on
    another host, or hung) is left alone until that step's timeout has ended. On a stop
    (SIGTERM) the worker claims nothing new; the run in hand is stopped and handed back.
    """
    store = open_store(settings.database_url)
    reports: list[RunReport] = []
    waiting: dict[str, float] = {}  # run id -> when its previous executor's step must be over
    try:
        while not STOP.requested:
            now = time.time()
            owner = leases.new_owner()
            skip = {run_id for run_id, until in waiting.items() if until > now}
            row = claim_orphan(store, owner, settings.lease_ttl, skip=skip)
            if row is None:
                if once or STOP.wait(interval):
                    break
                continue
            plan, _ = plan_of(row)
            execution = Execution(
                store, row, plan, owner, settings.actor, settings.lease_ttl, observer=observer
            )
            try:
                reports.append(run_report(row, execute(execution)))
            except StepMayBeRunning as exc:
                waiting[row.id] = exc.until
        STOP.check()
        return reports
    finally:
        store.dispose()


def _report(store: Store, run_id: str) -> RunReport:
    with store.session() as session:
        row = repo.get_run(session, run_id)
        events = repo.load_events(session, row.id)
    plan, _ = plan_of(row)
    return run_report(row, fold(empty_view(row, plan), events))


def status(settings: Settings, run_id: str) -> RunReport:
    store = open_store(settings.database_url, create=False)
    try:
        return _report(store, run_id)
    finally:
        store.dispose()


def runs(settings: Settings, service: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    store = open_store(settings.database_url, create=False)
    try:
        with store.session() as session:
            return [repo.run_summary(row) for row in repo.list_runs(session, service, limit)]
    finally:
        store.dispose()


def journal(settings: Settings, run_id: str) -> list[Event]:
    store = open_store(settings.database_url, create=False)
    try:
        with store.session() as session:
            row = repo.get_run(session, run_id)
            return repo.load_events(session, row.id)
    finally:
        store.dispose()


# --- audit ------------------------------------------------------------------------------
def audit_log(
    settings: Settings,
    action: str | None = None,
    subject: str | None = None,
    actor: str | None = None,
    since: float | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    store = open_store(settings.database_url, create=False)
    try:
        with store.session() as session:
            return [
                {**audit.record_of(row), "prev_hash": row.prev_hash, "hash": row.hash}
                for row in audit.log(session, action, subject, actor, since, limit)
            ]
    finally:
        store.dispose()


def audit_verify(settings: Settings, against: str | None = None) -> audit.Verification:
    checkpoint = None if against is None else _checkpoint_hash(against)
    store = open_store(settings.database_url, create=False)
    try:
        with store.session() as session:
            return audit.verify(session, checkpoint)
    finally:
        store.dispose()


def _checkpoint_hash(text: str) -> str:
    """A checkpoint to verify against: an empty or garbled one would prove nothing."""
    value = text.strip().lower()
    if not value:
        raise UsageError(
            "--against is empty: expected a checkpoint hash (64 hex digits)",
            hint="the file or variable it came from is empty; take a checkpoint with "
            "`backout audit checkpoint | cut -d' ' -f1`",
        )
    if not audit.is_hash(value):
        raise UsageError(
            f"--against {text.strip()!r} is not a checkpoint hash: expected 64 hex digits",
            hint="use the first field of `backout audit checkpoint` (its `hash` with --json)",
        )
    return value


def audit_checkpoint(settings: Settings) -> dict[str, Any]:
    """The chain's head: keep its hash elsewhere, then `audit verify --against HASH`."""
    store = open_store(settings.database_url, create=False)
    try:
        with store.session() as session:
            head = audit.head(session)
            return {
                "seq": head.seq if head else 0,
                "hash": head.hash if head else audit.GENESIS,
                "at": head.at if head else None,
            }
    finally:
        store.dispose()


# --- outbox -----------------------------------------------------------------------------
def outbox_send(
    settings: Settings, target: outbox.Target, timeout: float = 60.0, once: bool = False
) -> outbox.SendReport:
    store = open_store(settings.database_url)
    try:
        return outbox.send(store, target, settings.actor, timeout, once)
    finally:
        store.dispose()


def outbox_list(settings: Settings, status: str | None = None) -> list[dict[str, Any]]:
    store = open_store(settings.database_url, create=False)
    try:
        with store.session() as session:
            return [
                {
                    "id": r.id,
                    "change_id": r.change_id,
                    "event": r.event,
                    "status": r.status,
                    "attempts": r.attempts,
                    "last_error": r.last_error,
                    "created_at": r.created_at,
                    "sent_at": r.sent_at,
                }
                for r in change_store.list_outbox(session, status)
            ]
    finally:
        store.dispose()


# --- triggers from outside ---------------------------------------------------------------
def _watching_run(session: Any, service: str) -> Any:
    for row in repo.active_runs(session, service):
        if row.plan_doc.get("mode") in ("deploy", "watch") and row.status == "running":
            return row
    raise Conflict(
        f"no deploy or watch is running for service {service!r}",
        hint="to back out now, run `backout run PLAN`",
    )


def trigger(settings: Settings, service: str, reason: str) -> dict[str, Any]:
    """A person's call: the running deploy or watch of SERVICE backs out at its next tick."""
    store = open_store(settings.database_url)
    try:
        with store.session() as session:
            row = _watching_run(session, service)
            entry = inbox.put(session, service, "manual", reason, settings.actor, {}, row.id)
            audit.append(
                session,
                settings.actor,
                "trigger.manual",
                f"run:{row.id}",
                {"service": service, "reason": reason},
            )
            return {"run_id": row.id, "service": service, "inbox_id": entry.id, "reason": reason}
    finally:
        store.dispose()


def approve(settings: Settings, run_id: str, comment: str = "") -> dict[str, Any]:
    """Approve the checkpoint a deploy is waiting at."""
    store = open_store(settings.database_url)
    try:
        with store.session() as session:
            row = repo.get_run(session, run_id)
            events = repo.load_events(session, row.id)
            stage = _waiting_stage(events, row.id)
            inbox.put(
                session, row.service, "approve", comment, settings.actor, {"stage": stage}, row.id
            )
            audit.append(
                session,
                settings.actor,
                "run.approve",
                f"run:{row.id}",
                {"stage": stage + 1, "comment": comment},
            )
            return {"run_id": row.id, "stage": stage + 1}
    finally:
        store.dispose()


def _waiting_stage(events: list[Event], run_id: str) -> int:
    passed = {e.data.get("stage") for e in events if e.kind == "checkpoint_passed"}
    waiting = [
        e
        for e in events
        if e.kind == "checkpoint_started"
        and e.data.get("approve")
        and e.data.get("stage") not in passed
    ]
    if not waiting or events[-1].kind in ("run_finished", "backout_started"):
        raise Conflict(
            f"run {run_id} is not waiting for an approval", hint=f"see `backout status {run_id}`"
        )
    return int(waiting[-1].data["stage"])


def explain_run(settings: Settings, run_id: str) -> tuple[RunReport, list[str]]:
    store = open_store(settings.database_url, create=False)
    try:
        report = _report(store, run_id)
        with store.session() as session:
            events = repo.load_events(session, report.run_id)
        return report, explain(report, events)
    finally:
        store.dispose()
