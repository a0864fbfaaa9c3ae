"""Change verbs as plain functions taking settings (the CLI is a thin layer over them).

Every mutation writes, in one transaction: the change row, an audit record and an outbox
event for the ITSM tool — so none of the three can exist without the others.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from backout.changes import risk as risk_mod
from backout.changes.events import move as _move
from backout.changes.events import record, summary
from backout.changes.gate import GateCheck, GateInput, evaluate
from backout.changes.lifecycle import ChangeStatus, check_change
from backout.changes.policy import Policy, load_policy
from backout.changes.window import parse_window
from backout.errors import Conflict, Forbidden, PlanError, UsageError
from backout.plans import load_plan
from backout.settings import Settings
from backout.spec.loader import LoadedPlan
from backout.spec.runbook import render_runbook
from backout.store import changes as repo
from backout.store.db import Store, open_store
from backout.store.models import ApprovalRow, ChangeRow


@dataclass(frozen=True)
class ChangeReport:
    id: int
    title: str
    status: str
    plan: str
    plan_file: str
    plan_version: str
    plan_version_now: str | None
    service: str
    risk: str
    risk_computed: str
    risk_reasons: list[str]
    window: str | None
    ref: str | None
    requester: str
    created_at: float
    updated_at: float
    approvals: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateReport:
    change_id: int
    risk: str
    policy: str
    passed: bool
    checks: list[GateCheck]

    def to_json(self) -> dict[str, Any]:
        return {
            "change_id": self.change_id,
            "risk": self.risk,
            "policy": self.policy,
            "passed": self.passed,
            "checks": [c.to_json() for c in self.checks],
        }


def _with_store(settings: Settings, create: bool = True) -> Store:
    """The store; read-only verbs pass ``create=False`` so they never create one."""
    return open_store(settings.database_url, create=create)


def _load_for(row: ChangeRow, plan_path: str | Path | None) -> LoadedPlan:
    """The change's plan: the file at ``plan_path`` (a checkout elsewhere, e.g. in CI) or the
    path recorded when the change was created. It must be the same plan."""
    loaded = load_plan(plan_path or row.plan_file)
    if loaded.plan.plan != row.plan:
        raise UsageError(
            f"{loaded.path} is plan {loaded.plan.plan!r}; change {row.id} is for plan {row.plan!r}",
            hint="pass the change's own plan file with --plan",
        )
    return loaded


def _plan_version_now(row: ChangeRow) -> str | None:
    try:
        return load_plan(row.plan_file).version
    except PlanError:
        return None


def create(
    settings: Settings,
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
    store = _with_store(settings)
    try:
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
                requester=settings.actor,
                status=ChangeStatus.PLANNED.value,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()
            record(
                session,
                row,
                settings.actor,
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
    finally:
        store.dispose()


def _report(store: Store, change_id: int) -> ChangeReport:
    with store.session() as session:
        row = repo.get_change(session, change_id)
        approvals = repo.approvals(session, change_id)
        runs = repo.runs_of(session, change_id)
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
    )


def show(settings: Settings, change_id: int) -> ChangeReport:
    store = _with_store(settings, create=False)
    try:
        return _report(store, change_id)
    finally:
        store.dispose()


def list_all(
    settings: Settings, status: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    store = _with_store(settings, create=False)
    try:
        with store.session() as session:
            return [summary(row) for row in repo.list_changes(session, status, limit)]
    finally:
        store.dispose()


def _decide(
    settings: Settings,
    change_id: int,
    decision: str,
    comment: str,
    policy: str | None,
    plan_path: str | Path | None = None,
) -> ChangeReport:
    store = _with_store(settings)
    try:
        with store.session() as session:
            row = repo.get_change(session, change_id, lock=True)
            loaded = _load_for(row, plan_path)
            _check_approver(row, loaded, settings.actor, decision)
            target = ChangeStatus.REJECTED if decision == "rejected" else ChangeStatus.APPROVED
            current = ChangeStatus(row.status)
            # approving again is allowed while approved: an edited plan needs new approvals
            if not (decision == "approved" and current is ChangeStatus.APPROVED):
                check_change(row.id, current, target)
            session.add(
                ApprovalRow(
                    change_id=row.id,
                    actor=settings.actor,
                    decision=decision,
                    comment=comment,
                    plan_version=loaded.version,
                    at=time.time(),
                )
            )
            record(
                session,
                row,
                settings.actor,
                decision,
                {"comment": comment, "plan_version": loaded.version},
            )
            if _should_move(session, row, loaded, decision, policy):
                _move(session, row, settings.actor, target, {"by": decision})
        return _report(store, change_id)
    finally:
        store.dispose()


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
    settings: Settings,
    change_id: int,
    comment: str = "",
    policy: str | None = None,
    plan_path: str | Path | None = None,
) -> ChangeReport:
    return _decide(settings, change_id, "approved", comment, policy, plan_path)


def reject(settings: Settings, change_id: int, comment: str = "") -> ChangeReport:
    return _decide(settings, change_id, "rejected", comment, None)


def transition(
    settings: Settings, change_id: int, target: ChangeStatus, note: str = ""
) -> ChangeReport:
    """Complete or fail a change. Starting one goes through :func:`start` and its policy
    checks, whoever asks."""
    if target is ChangeStatus.IN_PROGRESS:
        return start(settings, change_id, note)
    store = _with_store(settings)
    try:
        with store.session() as session:
            row = repo.get_change(session, change_id, lock=True)
            _move(session, row, settings.actor, target, {"note": note} if note else {})
        return _report(store, change_id)
    finally:
        store.dispose()


def start(
    settings: Settings,
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
    store = _with_store(settings)
    try:
        with store.session() as session:
            row = repo.get_change(session, change_id, lock=True)
            check_change(row.id, ChangeStatus(row.status), ChangeStatus.IN_PROGRESS)
            failed = [
                c for c in evaluate(_gate_input(session, row, policy, plan_path)) if not c.passed
            ]
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
            _move(session, row, settings.actor, ChangeStatus.IN_PROGRESS, details)
        return _report(store, change_id)
    finally:
        store.dispose()


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
    )


def gate(
    settings: Settings,
    change_id: int,
    policy_path: str | None = None,
    plan_path: str | Path | None = None,
) -> GateReport:
    policy, source = load_policy(policy_path)
    store = _with_store(settings, create=False)
    try:
        with store.session() as session:
            row = repo.get_change(session, change_id)
            data = _gate_input(session, row, policy, plan_path)
        checks = evaluate(data)
        return GateReport(row.id, row.risk, source, all(c.passed for c in checks), checks)
    finally:
        store.dispose()
