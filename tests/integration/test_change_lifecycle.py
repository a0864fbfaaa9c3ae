"""Change records through the CLI on SQLite and PostgreSQL: the lifecycle rules, who may
approve, approvals bound to a plan version, runs that close a change, risk given vs computed."""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path

import pytest

from backout.changes.events import move
from backout.changes.lifecycle import CHANGE_RULES, ChangeStatus, check_change
from backout.errors import ChangeTransitionError, TransitionError, UsageError
from backout.store import audit
from backout.store.changes import get_change
from backout.store.db import open_store
from tests.integration.change_helpers import (
    FAILING_PLAN,
    OPEN_POLICY,
    PLAN,
    audit_records,
    create_change,
    invoke,
    outbox_rows,
    show,
    write,
)

S = ChangeStatus
FORBIDDEN = [
    (current, target)
    for current, target in itertools.product(S, S)
    if target not in CHANGE_RULES[current]
]
# the verbs a person can type, and where each asks the change to go
VERBS = {
    "approve": S.APPROVED,
    "reject": S.REJECTED,
    "start": S.IN_PROGRESS,
    "complete": S.COMPLETED,
    "fail": S.FAILED,
}


@pytest.mark.parametrize(("current", "target"), FORBIDDEN, ids=[f"{c}->{t}" for c, t in FORBIDDEN])
def test_every_forbidden_transition_is_refused(current: S, target: S) -> None:
    with pytest.raises(ChangeTransitionError) as caught:
        check_change(7, current, target)
    error = caught.value
    # a person asked for something impossible: bad input (exit 2), still a TransitionError
    assert isinstance(error, UsageError)
    assert isinstance(error, TransitionError)
    assert error.exit_code == 2
    assert f"change 7 cannot go from {current} to {target}" in error.message
    allowed = ", ".join(sorted(CHANGE_RULES[current])) or "nothing (it is closed)"
    assert error.message.endswith(f"from {current} it may go to {allowed}")
    assert error.hint


def test_the_rules_are_the_documented_lifecycle() -> None:
    allowed = {(c, t) for c, targets in CHANGE_RULES.items() for t in targets}
    assert allowed == {
        (S.PLANNED, S.APPROVED),
        (S.PLANNED, S.REJECTED),
        (S.APPROVED, S.IN_PROGRESS),
        (S.APPROVED, S.REJECTED),
        (S.IN_PROGRESS, S.COMPLETED),
        (S.IN_PROGRESS, S.BACKED_OUT),
        (S.IN_PROGRESS, S.FAILED),
    }
    for current, target in allowed:
        check_change(1, current, target)  # no error


def _change_in(url: str, plan: str, policy: str, status: S) -> int:
    """A change driven to ``status`` through the CLI the way a person would."""
    change_id = create_change(url, plan, "--risk", "low")
    if status is S.PLANNED:
        return change_id
    if status is S.REJECTED:
        assert invoke(url, "change", "reject", str(change_id), actor="bob").exit_code == 0
        return change_id
    approved = invoke(url, "change", "approve", str(change_id), "--policy", policy, actor="bob")
    assert approved.exit_code == 0, approved.output
    if status is S.BACKED_OUT:
        ran = invoke(url, "run", plan, "--change", str(change_id), actor="bob")
        assert ran.exit_code == 0, ran.output
    elif status is not S.APPROVED:
        started = invoke(url, "change", "start", str(change_id), "--policy", policy, actor="bob")
        assert started.exit_code == 0, started.output
        if status is not S.IN_PROGRESS:
            verb = "complete" if status is S.COMPLETED else "fail"
            assert invoke(url, "change", verb, str(change_id), actor="bob").exit_code == 0
    assert show(url, change_id)["status"] == status
    return change_id


def test_forbidden_verbs_through_the_cli_exit_2_and_change_nothing(
    store_url: str, tmp_path: Path
) -> None:
    plan = write(tmp_path / "plan.yaml", PLAN)
    policy = write(tmp_path / "policy.yaml", OPEN_POLICY)
    changes = {status: _change_in(store_url, plan, policy, status) for status in S}
    before = len(audit_records(store_url))
    refused = 0
    for status, change_id in changes.items():
        for verb, target in VERBS.items():
            if target in CHANGE_RULES[status] or (verb == "approve" and status is S.APPROVED):
                continue  # allowed (approving again is how an edited plan is re-approved)
            args = ["change", verb, str(change_id)]
            result = invoke(
                store_url, *args, *(["--policy", policy] if verb == "start" else []), actor="bob"
            )
            assert result.exit_code == 2, (verb, status, result.output)
            assert f"change {change_id} cannot go from {status} to {target}" in result.stderr
            assert "hint:" in result.stderr
            assert "Traceback" not in result.output
            refused += 1
    assert refused == 28
    listed = json.loads(invoke(store_url, "change", "list", "--json").stdout)
    assert {row["id"]: row["status"] for row in listed} == {i: s for s, i in changes.items()}
    assert len(audit_records(store_url)) == before  # a refused verb leaves no trace


def test_self_approval_and_non_approvers_are_refused(store_url: str, tmp_path: Path) -> None:
    plan = write(tmp_path / "plan.yaml", PLAN)
    change_id = create_change(store_url, plan, actor="alice")
    for verb in ("approve", "reject"):
        own = invoke(store_url, "change", verb, str(change_id), actor="alice")
        assert own.exit_code == 2
        assert f"alice requested change {change_id} and cannot decide on it" in own.stderr
    outsider = invoke(store_url, "change", "approve", str(change_id), actor="mallory")
    assert outsider.exit_code == 2
    assert "mallory is not an approver of plan web" in outsider.stderr
    assert "roles.approvers: bob, carol" in outsider.stderr
    report = show(store_url, change_id)
    assert report["status"] == "planned"
    assert report["approvals"] == []
    assert [r["action"] for r in audit_records(store_url)] == ["change.created"]


def test_approvals_needed_by_policy_then_reject(store_url: str, tmp_path: Path) -> None:
    plan = write(tmp_path / "plan.yaml", PLAN)
    policy = write(tmp_path / "policy.yaml", "medium: {approvals: 2}\n")
    change_id = create_change(store_url, plan, "--risk", "medium")
    first = invoke(store_url, "change", "approve", str(change_id), "--policy", policy, actor="bob")
    assert first.exit_code == 0
    assert show(store_url, change_id)["status"] == "planned"  # one of two
    again = invoke(store_url, "change", "approve", str(change_id), "--policy", policy, actor="bob")
    assert again.exit_code == 0
    assert show(store_url, change_id)["status"] == "planned"  # the same person twice is one
    second = invoke(
        store_url,
        "change",
        "approve",
        str(change_id),
        "--policy",
        policy,
        "--comment",
        "lgtm",
        actor="carol",
    )
    assert second.exit_code == 0, second.output
    assert "approved by carol" in second.stdout
    assert "lgtm" in second.stdout
    assert show(store_url, change_id)["status"] == "approved"
    rejected = invoke(
        store_url, "change", "reject", str(change_id), "--comment", "no", actor="carol"
    )
    assert rejected.exit_code == 0
    assert show(store_url, change_id)["status"] == "rejected"
    actions = [(r["action"], r["details"].get("to")) for r in audit_records(store_url)]
    assert actions == [
        ("change.created", None),
        ("change.approved", None),
        ("change.approved", None),
        ("change.approved", None),
        ("change.transitioned", "approved"),
        ("change.rejected", None),
        ("change.transitioned", "rejected"),
    ]
    listed = json.loads(
        invoke(store_url, "change", "list", "--status", "rejected", "--json").stdout
    )
    assert [c["id"] for c in listed] == [change_id]


def test_an_edited_plan_needs_approval_again(store_url: str, tmp_path: Path) -> None:
    plan_path = tmp_path / "plan.yaml"
    plan = write(plan_path, PLAN)
    policy = write(tmp_path / "policy.yaml", "medium: {approvals: 1}\n")
    change_id = create_change(store_url, plan, "--risk", "medium")
    assert (
        invoke(
            store_url, "change", "approve", str(change_id), "--policy", policy, actor="bob"
        ).exit_code
        == 0
    )
    assert invoke(store_url, "gate", str(change_id), "--policy", policy).exit_code == 0

    write(plan_path, PLAN.replace("timeout: 5s", "timeout: 6s"))  # one step's timeout

    gate = invoke(store_url, "gate", str(change_id), "--policy", policy, "--json")
    assert gate.exit_code == 1
    checks = {c["name"]: c for c in json.loads(gate.stdout)["checks"]}
    assert not checks["approvals"]["passed"]
    assert "0 of 1 approval(s)" in checks["approvals"]["reason"]
    assert "the plan was edited, so it needs approval again" in checks["approvals"]["reason"]
    assert [name for name, c in checks.items() if not c["passed"]] == ["approvals"]
    report = show(store_url, change_id)
    assert report["plan_version_now"] != report["plan_version"]
    assert [a["current"] for a in report["approvals"]] == [False]
    human = invoke(store_url, "change", "show", str(change_id))
    assert "approved by bob" in human.stdout
    assert "(for an earlier plan version)" in human.stdout
    assert "the plan file changed since the change was created" in human.stdout
    start = invoke(store_url, "change", "start", str(change_id), "--policy", policy, actor="bob")
    assert start.exit_code == 2
    assert f"change {change_id} may not start: approvals:" in start.stderr

    again = invoke(
        store_url, "change", "approve", str(change_id), "--policy", policy, actor="carol"
    )
    assert again.exit_code == 0, again.output
    assert invoke(store_url, "gate", str(change_id), "--policy", policy).exit_code == 0
    assert [a["current"] for a in show(store_url, change_id)["approvals"]] == [False, True]


def test_a_backout_run_closes_its_change_as_backed_out(store_url: str, tmp_path: Path) -> None:
    plan = write(tmp_path / "plan.yaml", PLAN)
    change_id = create_change(store_url, plan, "--risk", "low")
    assert invoke(store_url, "change", "approve", str(change_id), actor="bob").exit_code == 0
    ran = invoke(store_url, "run", plan, "--change", str(change_id), "--json", actor="bob")
    assert ran.exit_code == 0, ran.output
    run_id = json.loads(ran.stdout)["run_id"]
    report = show(store_url, change_id)
    assert report["status"] == "backed_out"
    assert report["runs"] == [
        {"run_id": run_id, "status": "succeeded", "created_at": report["runs"][0]["created_at"]}
    ]
    moves = [
        r["details"]
        for r in audit_records(store_url, "--subject", f"change:{change_id}")
        if r["action"] == "change.transitioned"
    ]
    assert [(m["from"], m["to"]) for m in moves] == [
        ("planned", "approved"),
        ("approved", "in_progress"),
        ("in_progress", "backed_out"),
    ]
    assert moves[1]["run_id"] == run_id
    assert moves[2]["run_id"] == run_id
    assert moves[2]["outcome"] == "succeeded"
    assert "trigger" in moves[2]  # none yet: this run was started by hand
    run_actions = [r["action"] for r in audit_records(store_url, "--subject", f"run:{run_id}")]
    assert run_actions == ["run.started", "run.finished"]
    events = [(row["event"], row["status"]) for row in outbox_rows(store_url)]
    assert events == [
        ("created", "pending"),
        ("approved", "pending"),
        ("transitioned", "pending"),
        ("transitioned", "pending"),
        ("transitioned", "pending"),
    ]


def test_a_failed_backout_fails_its_change(store_url: str, tmp_path: Path) -> None:
    plan = write(tmp_path / "plan.yaml", FAILING_PLAN)
    change_id = create_change(store_url, plan, "--risk", "low")
    assert invoke(store_url, "change", "approve", str(change_id), actor="carol").exit_code == 0
    ran = invoke(store_url, "run", plan, "--change", str(change_id), actor="carol")
    assert ran.exit_code == 1
    assert show(store_url, change_id)["status"] == "failed"
    last = audit_records(store_url, "--action", "change.transitioned")[-1]["details"]
    assert (last["from"], last["to"], last["outcome"]) == ("in_progress", "failed", "failed")
    assert "breaks" in last["message"]


def test_a_run_needs_an_approved_change_of_its_own_plan(store_url: str, tmp_path: Path) -> None:
    plan = write(tmp_path / "plan.yaml", PLAN)
    other = write(tmp_path / "other.yaml", PLAN.replace("plan: web", "plan: api"))
    change_id = create_change(store_url, plan)
    planned = invoke(store_url, "run", plan, "--change", str(change_id))
    assert planned.exit_code == 2
    assert (
        f"change {change_id} is planned; a run needs it approved or in progress" in planned.stderr
    )
    wrong = invoke(store_url, "run", other, "--change", str(change_id))
    assert wrong.exit_code == 2
    assert f"change {change_id} is for plan 'web', not 'api'" in wrong.stderr
    missing = invoke(store_url, "run", plan, "--change", "99")
    assert missing.exit_code == 2
    assert "no change 99 in this store" in missing.stderr
    assert json.loads(invoke(store_url, "runs", "--json").stdout) == []  # nothing left behind


RISKY = """plan: web
service: web
risk: medium
steps:
  - name: run the down migration
    run: [echo, down]
    timeout: 5s
"""


def test_risk_given_and_computed(store_url: str, tmp_path: Path) -> None:
    plan = write(tmp_path / "plan.yaml", RISKY)
    given = create_change(store_url, plan, "--risk", "low")
    report = show(store_url, given)
    # medium, +1 for a step that is not idempotent, +1 for no verify checks
    assert (report["risk"], report["risk_computed"]) == ("low", "critical")
    assert any("not idempotent" in reason for reason in report["risk_reasons"])
    assert any("no verify checks" in reason for reason in report["risk_reasons"])
    human = invoke(store_url, "change", "show", str(given))
    assert "risk low (computed from the plan: critical)" in human.stdout
    computed = create_change(store_url, plan)
    assert show(store_url, computed)["risk"] == "critical"
    same = invoke(store_url, "change", "show", str(computed))
    assert "risk critical" in same.stdout
    assert "computed from the plan" not in same.stdout
    calm = create_change(store_url, write(tmp_path / "calm.yaml", PLAN), "--risk", "low")
    assert show(store_url, calm)["risk_computed"] == "low"


def test_window_and_ref_are_recorded(store_url: str, tmp_path: Path) -> None:
    plan = write(tmp_path / "plan.yaml", PLAN)
    change_id = create_change(
        store_url, plan, "--window", "2026-12-01T22:00+01:00..23:30", "--ref", "CHG0042"
    )
    report = show(store_url, change_id)
    assert report["window"] == "2026-12-01T21:00+00:00..2026-12-01T22:30+00:00"
    assert report["ref"] == "CHG0042"
    for bad, message in [
        ("2026-12-01T22:00", "needs START..END"),
        ("2026-12-01T22:00..21:00", "ends before it starts"),
        ("tonight..tomorrow", "'tonight' is not a date and time"),
    ]:
        result = invoke(
            store_url, "change", "create", "--plan", plan, "--title", "x", "--window", bad
        )
        assert result.exit_code == 2, bad
        assert message in result.stderr
    assert len(json.loads(invoke(store_url, "change", "list", "--json").stdout)) == 1


def test_a_verb_and_a_finishing_run_do_not_deadlock(store_url: str, tmp_path: Path) -> None:
    """A run's last journal event audits first, then closes its change; `change complete`
    locks the change first, then audits. Both take the audit lock before the change row, so
    the second waits for the first instead of deadlocking (PostgreSQL would abort one)."""
    plan = write(tmp_path / "plan.yaml", PLAN)
    change_id = _change_in(store_url, plan, write(tmp_path / "p.yaml", OPEN_POLICY), S.IN_PROGRESS)
    store = open_store(store_url)
    audited = threading.Event()
    errors: list[Exception] = []

    def complete() -> None:  # the verb: change row, then audit
        audited.wait(10)
        try:
            with store.session() as session:
                row = get_change(session, change_id, lock=True)
                move(session, row, "bob", S.COMPLETED, {})
        except Exception as exc:  # the test reports whatever happened
            errors.append(exc)

    verb = threading.Thread(target=complete)
    verb.start()
    try:
        with store.session() as session:  # the run's last event: audit, then change
            audit.append(session, "engine", "run.finished", "run:x", {})
            audited.set()
            time.sleep(0.3)  # the verb is waiting now
            row = get_change(session, change_id, lock=True)
            move(session, row, "engine", S.BACKED_OUT, {"outcome": "succeeded"})
        verb.join(20)
    finally:
        store.dispose()
    assert not verb.is_alive()
    # the verb ran second and was refused cleanly: no deadlock, no store error
    assert [type(e) for e in errors] == [ChangeTransitionError], errors
    assert "cannot go from backed_out to completed" in str(errors[0])
    assert show(store_url, change_id)["status"] == "backed_out"
