"""The hand-off to disaster recovery: when a backout fails, the plan's
``disaster_recovery:`` names who takes over; with ``auto: true`` the recovery plan is
started at once — only if its own gate passes (it loads, lints clean, and no drill is due
for it) — and the two runs are linked in the audit trail (``run.handoff``) and in the
recovery run itself (``handoff_from``). The page to the DR owner is a notification
(``dr.handoff``), queued with the failed run's last journal event."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from backout.changes.gate import rehearsal_check
from backout.changes.policy import load_policy
from backout.commands.caller import Caller
from backout.errors import BackoutError
from backout.plans import load_plan
from backout.reports import Handoff, RunReport
from backout.spec.lint import lint
from backout.spec.models import Plan
from backout.store import audit
from backout.store import changes as change_repo

StartRun = Callable[[Path, dict[str, object]], RunReport]


def hand_off(
    caller: Caller,
    failed: RunReport,
    plan: Plan,
    base_dir: Path,
    environment: str | None,
    start: StartRun,
) -> Handoff | None:
    """What became of the hand-off of the ``failed`` run (None: the plan names no DR)."""
    dr = plan.disaster_recovery
    if dr is None:
        return None
    path = (base_dir / dr.plan).resolve() if dr.plan else None
    handoff = Handoff(dr.owner, dr.runbook, str(path) if path else None, started=False)
    if path is None or not dr.auto:
        return _recorded(caller, failed, handoff, "auto is off: the owner starts recovery")
    refused = _gate(caller, path)
    if refused:
        return _recorded(caller, failed, handoff, f"not started: {refused}")
    extra: dict[str, object] = {"handoff_from": failed.run_id}
    if environment:
        extra["environment"] = environment
    try:
        recovery = start(path, extra)
    except BackoutError as exc:  # refused before it began (the service is busy …)
        return _recorded(caller, failed, handoff, f"not started: {exc.message}")
    started = Handoff(dr.owner, dr.runbook, str(path), True, "", recovery.run_id, recovery.status)
    return _recorded(caller, failed, started, f"started recovery run {recovery.run_id}")


def _gate(caller: Caller, path: Path) -> str:
    """Why the recovery plan may not start on its own ("" when it may): it must load,
    lint clean, and pass the gate's rehearsal check (as `backout drills due` reads it)."""
    try:
        loaded = load_plan(path)
    except BackoutError as exc:
        return f"the recovery plan {path} does not load ({str(exc).splitlines()[0]})"
    errors = [i for i in lint(loaded) if i.severity == "error"]
    if errors:
        return f"the recovery plan has lint errors ({errors[0].message})"
    policy, _ = load_policy(None)
    with caller.store.session() as session:
        drills = change_repo.rehearsals(session, loaded.plan.plan)
    rule = policy.for_risk(loaded.plan.risk).rehearsal
    check = rehearsal_check(rule, loaded, drills, time.time())
    if check.required and not check.passed:
        return f"a drill of the recovery plan is due ({check.reason})"
    return ""


def _recorded(caller: Caller, failed: RunReport, handoff: Handoff, outcome: str) -> Handoff:
    done = Handoff(
        handoff.owner,
        handoff.runbook,
        handoff.plan,
        handoff.started,
        outcome,
        handoff.recovery_run,
        handoff.recovery_status,
    )
    with caller.store.session() as session:
        audit.append(
            session,
            caller.actor,
            "run.handoff",
            f"run:{failed.run_id}",
            {
                "owner": done.owner,
                "runbook": done.runbook,
                "plan": done.plan,
                "started": done.started,
                "outcome": outcome,
                "recovery_run": done.recovery_run,
                "recovery_status": done.recovery_status,
            },
        )
    return done
