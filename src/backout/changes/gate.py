"""The deploy gate: every policy check for a change, each pass or fail with its reason."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from backout.changes.gate_checks import GateCheck
from backout.changes.lifecycle import ChangeStatus
from backout.changes.policy import Rehearsal as RehearsalRule
from backout.changes.policy import Requirements
from backout.changes.window import iso
from backout.errors import PlanError
from backout.kernel.durations import format_duration
from backout.plans import load_plan
from backout.spec.lint import lint
from backout.spec.loader import LoadedPlan
from backout.store.models import ApprovalRow, AuditRow, ChangeRow, RehearsalRow

MIGRATION_KINDS = ("alembic", "sql_migration")  # what `backout preflight` round-trips


@dataclass(frozen=True)
class GateInput:
    change: ChangeRow
    requirements: Requirements
    approvals: Sequence[ApprovalRow]
    rehearsals: Sequence[RehearsalRow]
    now: float
    plan_path: str | None = None  # the plan as checked out here; default: the path recorded
    preflights: Sequence[AuditRow] = ()  # `backout preflight` results of the plan, oldest first


def _span(seconds: float) -> str:
    """An age or a limit as people read it at a glance: 3.5 days, 2.0h, 12m, 45s."""
    for unit, size in ((" days", 86400), ("h", 3600)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds / 60:.0f}m" if seconds >= 60 else f"{seconds:.0f}s"


Check = Callable[[GateInput, LoadedPlan | None, str], GateCheck]


def _status(data: GateInput, loaded: LoadedPlan | None, load_error: str) -> GateCheck:
    status = ChangeStatus(data.change.status)
    ok = status is ChangeStatus.APPROVED
    reason = "change is approved" if ok else f"change is {status}, not approved"
    return GateCheck("status", True, ok, reason)


def _plan_valid(data: GateInput, loaded: LoadedPlan | None, load_error: str) -> GateCheck:
    if loaded is None:
        return GateCheck("plan_valid", True, False, load_error)
    issues = lint(loaded)
    strict = data.requirements.lint_strict
    blocking = [i for i in issues if strict or i.severity == "error"]
    if blocking and data.requirements.lint_clean:
        return GateCheck(
            "plan_valid", True, False, f"{len(blocking)} lint problem(s), first: {blocking[0]}"
        )
    return GateCheck(
        "plan_valid",
        data.requirements.lint_clean,
        True,
        f"plan {loaded.plan.plan} version {loaded.version} is valid"
        + (f" ({len(issues)} lint issue(s) the policy allows)" if issues else ""),
    )


def _verify(data: GateInput, loaded: LoadedPlan | None, load_error: str) -> GateCheck:
    required = data.requirements.verify
    count = len(loaded.plan.verify) if loaded else 0
    return GateCheck(
        "verify",
        required,
        count > 0 or not required,
        f"{count} verify check(s)" if count else "the plan has no `verify:` checks",
    )


def _rto(data: GateInput, loaded: LoadedPlan | None, load_error: str) -> GateCheck:
    required = data.requirements.rto
    rto = loaded.plan.rto if loaded else None
    return GateCheck(
        "rto",
        required,
        rto is not None or not required,
        f"rto {format_duration(rto)}" if rto is not None else "the plan has no `rto:`",
    )


def _approvals(data: GateInput, loaded: LoadedPlan | None, load_error: str) -> GateCheck:
    needed = data.requirements.approvals
    version = loaded.version if loaded else None
    approvers = set(loaded.plan.roles.approvers) if loaded else set()
    valid = {
        a.actor
        for a in data.approvals
        if a.decision == "approved"
        and a.plan_version == version
        and a.actor != data.change.requester
        and (not approvers or a.actor in approvers)
    }
    stale = {
        a.actor for a in data.approvals if a.decision == "approved" and a.plan_version != version
    } - valid
    ok = len(valid) >= needed
    reason = f"{len(valid)} of {needed} approval(s) for plan version {version}"
    if valid:
        reason += f" ({', '.join(sorted(valid))})"
    if loaded and not approvers and needed:
        reason += "; the plan names no roles.approvers, so anyone but the requester counts"
    if stale and not ok:
        reason += (
            f"; {len(stale)} approval(s) were for an earlier plan version — the plan "
            "was edited, so it needs approval again"
        )
    return GateCheck("approvals", needed > 0, ok, reason)


def _window(data: GateInput, loaded: LoadedPlan | None, load_error: str) -> GateCheck:
    required = data.requirements.window
    start, end = data.change.window_start, data.change.window_end
    if start is None or end is None:
        return GateCheck("window", required, not required, "no change window set")
    inside = start <= data.now <= end
    where = "inside" if inside else ("before" if data.now < start else "after")
    return GateCheck(
        "window",
        required,
        inside or not required,
        f"now is {where} the window {iso(start)}..{iso(end)}",
    )


def _rehearsal(data: GateInput, loaded: LoadedPlan | None, load_error: str) -> GateCheck:
    return rehearsal_check(data.requirements.rehearsal, loaded, data.rehearsals, data.now)


def _preflight(data: GateInput, loaded: LoadedPlan | None, load_error: str) -> GateCheck:
    """The latest `backout preflight` of this plan version passed (a plan without migration
    steps has nothing to round-trip, and passes)."""
    if not data.requirements.preflight:
        return GateCheck("preflight", False, True, "not required for this risk level")
    if loaded is None:
        return GateCheck("preflight", True, False, "cannot tell: the plan does not load")
    plan = loaded.plan
    steps = [s for stage in (plan.deploy.stages if plan.deploy else []) for s in stage.steps]
    if not any(s.kind in MIGRATION_KINDS for s in [*steps, *plan.steps]):
        return GateCheck("preflight", True, True, "the plan has no migration steps")
    version = loaded.version
    runs = [a for a in data.preflights if a.details.get("plan_version") == version]
    if not runs:
        return GateCheck(
            "preflight",
            True,
            False,
            f"no preflight recorded for plan version {version}: "
            f"run `backout preflight {loaded.shown}`",
        )
    latest = runs[-1]
    if latest.action != "preflight.passed":
        problems = "; ".join(str(p) for p in latest.details.get("problems") or []) or "failed"
        return GateCheck(
            "preflight", True, False, f"the latest preflight of this version failed: {problems}"
        )
    return GateCheck(
        "preflight",
        True,
        True,
        f"up, down and up again matched {_span(max(data.now - latest.at, 0.0))} ago",
    )


def _p95(values: list[float]) -> float:
    """The 95th percentile (inclusive interpolation; the value itself for one drill)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[94]


def rehearsal_check(
    rule: RehearsalRule | None,
    loaded: LoadedPlan | None,
    rehearsals: Sequence[RehearsalRow],
    now: float,
) -> GateCheck:
    """The latest passing rehearsal of this plan version, no older than the rule allows
    and (with ``fits_rto``) the p95 of the passing drills' totals within the plan's rto.
    Also what ``backout drills due`` asks."""
    if rule is None:
        return GateCheck("rehearsal", False, True, "not required for this risk level")
    if loaded is None:
        return GateCheck("rehearsal", True, False, "cannot tell: the plan does not load")
    version = loaded.version
    where = f" in {rule.environment}" if rule.environment else ""
    drills = [
        r
        for r in rehearsals
        if r.plan_version == version and rule.environment in (None, r.environment)
    ]
    passing = [r for r in drills if r.outcome == "succeeded"]
    if not passing:
        return GateCheck(
            "rehearsal", True, False, f"no rehearsal recorded{where} for plan version {version}"
        )
    newest = max(drills, key=lambda r: r.at)
    if newest.outcome != "succeeded":
        return GateCheck(
            "rehearsal",
            True,
            False,
            f"the latest drill{where} of this plan version failed: {newest.message}",
        )
    latest = max(passing, key=lambda r: r.at)
    age = now - latest.at
    if age > rule.max_age:
        return GateCheck(
            "rehearsal",
            True,
            False,
            f"latest passing rehearsal of this plan version is {_span(age)} old; "
            f"the policy allows {_span(rule.max_age)}",
        )
    rto = loaded.plan.rto
    slowest = _p95([r.duration_s for r in passing])
    if rule.fits_rto and rto is not None and slowest > rto:
        took = (
            f"rehearsal took {slowest:.1f}s"
            if len(passing) == 1
            else f"the p95 of {len(passing)} passing drills is {slowest:.1f}s"
        )
        return GateCheck(
            "rehearsal", True, False, f"{took}, more than the rto of {format_duration(rto)}"
        )
    return GateCheck(
        "rehearsal",
        True,
        True,
        f"rehearsed {_span(max(age, 0.0))} ago in {latest.duration_s:.1f}s"
        + (f" (rto {format_duration(rto)})" if rto is not None else ""),
    )


CHECKS: list[Check] = [
    _status,
    _plan_valid,
    _verify,
    _rto,
    _approvals,
    _window,
    _rehearsal,
    _preflight,
]


def _load(data: GateInput) -> tuple[LoadedPlan | None, str]:
    try:
        loaded = load_plan(data.plan_path or data.change.plan_file)
    except PlanError as exc:
        return None, f"{len(exc.issues)} error(s), first: {exc.issues[0]}"
    if loaded.plan.plan != data.change.plan:
        return None, (
            f"{loaded.shown} is plan {loaded.plan.plan!r}; change {data.change.id} is for "
            f"plan {data.change.plan!r}"
        )
    return loaded, ""


def evaluate(data: GateInput) -> list[GateCheck]:
    loaded, load_error = _load(data)
    return [check(data, loaded, load_error) for check in CHECKS]
