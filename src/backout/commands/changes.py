"""Change verbs: create, show, list, approve, reject, start (through the policy gate),
complete or fail a change, and evaluate its gate.

Every mutation writes, in one transaction: the change row, an audit record and an outbox
event for the ITSM tool — so none of the three can exist without the others.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from backout.changes import risk as risk_mod
from backout.changes.events import move as _move
from backout.changes.events import record, summary
from backout.changes.gate import GateInput, evaluate
from backout.changes.lifecycle import ChangeStatus, check_change
from backout.changes.policy import Policy, load_policy
from backout.changes.window import parse_window
from backout.commands.caller import Caller
from backout.errors import Conflict, Forbidden, PlanError, UsageError
from backout.plans import load_plan
from backout.reports import ChangeReport, ChangeSummary, GateReport
from backout.spec.loader import LoadedPlan
from backout.spec.runbook import render_runbook
from backout.store import changes as repo
from backout.store.db import Store
from backout.store.models import ApprovalRow, ChangeRow


def _load_for(row: ChangeRow, plan_path: str | Path | None) -> LoadedPlan:
    """The change's plan: the file at ``plan_path`` (a checkout elsewhere, e.g. in CI) or the
    path recorded when the change was created. It must be the same plan."""
    loaded = load_plan(plan_path or row.plan_file)
    if loaded.plan.plan != row.plan:
        raise UsageError(
            f"{loaded.shown} is plan {loaded.plan.plan!r}; "
            f"change {row.id} is for plan {row.plan!r}",
            hint="pass the change's own plan file with --plan",
        )
    return loaded


def _plan_version_now(row: ChangeRow) -> str | None:
    try:
        return load_plan(row.plan_file).version
    except PlanError:
        return None


def create(
    caller: Caller,
    plan_path: str | Path,
    title: str,
    risk: str | None = None,
    window: str | None = None,
    ref: str | None = None,
) -> ChangeReport:
    loaded = load_plan(plan_path)
    assessment = risk_mod.assess(loaded.plan)
    start, end = parse_window(window) if window else (None, None)
    now = time.time()
    store = caller.store
    with store.session() as session:
        row = ChangeRow(
            title=title,
            plan=loaded.plan.plan,
            plan_file=str(loaded.path),
            plan_version=loaded.version,
            service=loaded.plan.service_name,
            risk=risk or assessment.level,
            risk_computed=assessment.level,
            window_start=start,
            window_end=end,
            ref=ref,
            requester=caller.actor,
            status=ChangeStatus.PLANNED.value,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        session.flush()
        record(
            session,
            row,
            caller.actor,
            "created",
            {
                "title": title,
                "risk": row.risk,
                "risk_computed": assessment.level,
                "plan_version": loaded.version,
            },
            runbook=render_runbook(loaded),
        )
        change_id = row.id
    return _report(store, change_id)


def _report(store: Store, change_id: int) -> ChangeReport:
    with store.session() as session:
        row = repo.get_change(session, change_id)
        approvals = repo.approvals(session, change_id)
        runs = repo.runs_of(session, change_id)
        drills = sorted(repo.rehearsals(session, row.plan), key=lambda r: r.at, reverse=True)
    now_version = _plan_version_now(row)
    try:
        reasons = risk_mod.assess(load_plan(row.plan_file).plan).reasons
    except PlanError as exc:
        reasons = [f"the plan file no longer loads: {exc.issues[0]}"]
    base = summary(row)
    return ChangeReport(
        id=row.id,
        title=row.title,
        status=row.status,
        plan=row.plan,
        plan_file=row.plan_file,
        plan_version=row.plan_version,
        plan_version_now=now_version,
        service=row.service,
        risk=row.risk,
        risk_computed=row.risk_computed,
        risk_reasons=reasons,
        window=base["window"],
        ref=row.ref,
        requester=row.requester,
        created_at=row.created_at,
        updated_at=row.updated_at,
        approvals=[
            {
                "actor": a.actor,
                "decision": a.decision,
                "comment": a.comment,
                "plan_version": a.plan_version,
                "at": a.at,
                "current": a.plan_version == now_version,
            }
            for a in approvals
        ],
        runs=[{"run_id": r.id, "status": r.status, "created_at": r.created_at} for r in runs],
        rehearsals=[
            {
                "id": d.id,
                "run_id": d.run_id,
                "outcome": d.outcome,
                "environment": d.environment,
                "total_s": d.duration_s,
                "at": d.at,
                "plan_version": d.plan_version,
                "current": d.plan_version == now_version,
            }
            for d in drills[:10]
        ],
        rehearsals_total=len(drills),
    )


def show(caller: Caller, change_id: int) -> ChangeReport:
    return _report(caller.store, change_id)


def list_all(caller: Caller, status: str | None = None, limit: int = 50) -> list[ChangeSummary]:
    """Changes, newest first, optionally in one status."""
    with caller.store.session() as session:
        return [ChangeSummary(**summary(row)) for row in repo.list_changes(session, status, limit)]


def _decide(
    caller: Caller,
    change_id: int,
    decision: str,
    comment: str,
    policy: str | None,
    plan_path: str | Path | None = None,
) -> ChangeReport:
    store = caller.store
    with store.session() as session:
        row = repo.get_change(session, change_id, lock=True)
        loaded = _load_for(row, plan_path)
        _check_approver(row, loaded, caller.actor, decision)
        target = ChangeStatus.REJECTED if decision == "rejected" else ChangeStatus.APPROVED
        current = ChangeStatus(row.status)
        # approving again is allowed while approved: an edited plan needs new approvals
        if not (decision == "approved" and current is ChangeStatus.APPROVED):
            check_change(row.id, current, target)
        session.add(
            ApprovalRow(
                change_id=row.id,
                actor=caller.actor,
                decision=decision,
                comment=comment,
                plan_version=loaded.version,
                at=time.time(),
            )
        )
        record(
            session,
            row,
            caller.actor,
            decision,
            {"comment": comment, "plan_version": loaded.version},
        )
        if _should_move(session, row, loaded, decision, policy):
            _move(session, row, caller.actor, target, {"by": decision})
    return _report(store, change_id)


def _check_approver(row: ChangeRow, loaded: LoadedPlan, actor: str, decision: str) -> None:
    if actor == row.requester:
        raise Forbidden(
            f"{actor} requested change {row.id} and cannot decide on it",
            hint="ask one of the plan's roles.approvers",
        )
    approvers = loaded.plan.roles.approvers
    if approvers and actor not in approvers:
        raise Forbidden(
            f"{actor} is not an approver of plan {loaded.plan.plan}",
            hint=f"roles.approvers: {', '.join(approvers)}",
        )


def _should_move(
    session: Session, row: ChangeRow, loaded: LoadedPlan, decision: str, policy: str | None
) -> bool:
    if decision == "rejected":
        return True
    if ChangeStatus(row.status) is not ChangeStatus.PLANNED:
        return False
    needed = max(1, load_policy(policy)[0].for_risk(row.risk).approvals)
    approvers = {
        a.actor
        for a in repo.approvals(session, row.id)
        if a.decision == "approved" and a.plan_version == loaded.version
    }
    return len(approvers) >= needed


def approve(
    caller: Caller,
    change_id: int,
    comment: str = "",
    policy: str | None = None,
    plan_path: str | Path | None = None,
) -> ChangeReport:
    return _decide(caller, change_id, "approved", comment, policy, plan_path)


def reject(caller: Caller, change_id: int, comment: str = "") -> ChangeReport:
    return _decide(caller, change_id, "rejected", comment, None)


def transition(
    caller: Caller, change_id: int, target: ChangeStatus, note: str = ""
) -> ChangeReport:
    """Complete or fail a change. Starting one goes through :func:`start` and its policy
    checks, whoever asks."""
    if target is ChangeStatus.IN_PROGRESS:
        return start(caller, change_id, note)
    store = caller.store
    with store.session() as session:
        row = repo.get_change(session, change_id, lock=True)
        _move(session, row, caller.actor, target, {"note": note} if note else {})
    return _report(store, change_id)


def start(
    caller: Caller,
    change_id: int,
    note: str = "",
    policy_path: str | None = None,
    plan_path: str | Path | None = None,
    override: str | None = None,
) -> ChangeReport:
    """Start a change only when every policy check passes (the gate, evaluated in the same
    transaction). ``override`` starts it anyway — an emergency — and the audit record says
    which checks were overridden and why."""
    policy, source = load_policy(policy_path)
    store = caller.store
    with store.session() as session:
        row = repo.get_change(session, change_id, lock=True)
        check_change(row.id, ChangeStatus(row.status), ChangeStatus.IN_PROGRESS)
        failed = [c for c in evaluate(_gate_input(session, row, policy, plan_path)) if not c.passed]
        if failed and not override:
            raise Conflict(
                f"change {row.id} may not start: "
                + "; ".join(f"{c.name}: {c.reason}" for c in failed),
                hint=f"see `backout gate {row.id}`; `--override REASON` starts it anyway "
                "and records why",
            )
        details: dict[str, Any] = {"note": note} if note else {}
        details["policy"] = source
        if failed:
            details |= {"override": override, "overridden": [c.name for c in failed]}
        _move(session, row, caller.actor, ChangeStatus.IN_PROGRESS, details)
    return _report(store, change_id)


def _gate_input(
    session: Session, row: ChangeRow, policy: Policy, plan_path: str | Path | None
) -> GateInput:
    return GateInput(
        row,
        policy.for_risk(row.risk),
        repo.approvals(session, row.id),
        repo.rehearsals(session, row.plan),
        time.time(),
        str(plan_path) if plan_path else None,
        repo.preflights(session, row.plan),
    )


def gate(
    caller: Caller,
    change_id: int,
    policy_path: str | None = None,
    plan_path: str | Path | None = None,
) -> GateReport:
    policy, source = load_policy(policy_path)
    store = caller.store
    with store.session() as session:
        row = repo.get_change(session, change_id)
        data = _gate_input(session, row, policy, plan_path)
    checks = evaluate(data)
    return GateReport(row.id, row.risk, source, all(c.passed for c in checks), checks)
