"""The deploy gate on SQLite and PostgreSQL: each policy check failing alone gives exit 1 and
names itself, JUnit XML lists every check, --json for machines, and the policy files."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from backout.changes.gate import CHECKS
from backout.changes.policy import Policy, load_policy
from backout.errors import PlanError
from backout.plans import load_plan
from backout.store.db import open_store
from backout.store.models import RehearsalRow
from tests.integration.change_helpers import (
    PLAN,
    audit_records,
    create_change,
    invoke,
    show,
    write,
)

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["status", "plan_valid", "verify", "rto", "approvals", "window", "rehearsal", "preflight"]
# everything a high-risk change can be asked for
STRICT = """high:
  lint_clean: true
  verify: true
  rto: true
  approvals: 1
  window: true
  rehearsal: {max_age: 24h, fits_rto: true}
  preflight: true
"""
LINE = re.compile(r"^\s+(pass|FAIL|n/a)\s+(\w+)\s+(.*)$")
HOUR = 3600.0


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, tz=dt.UTC).isoformat(timespec="minutes")


@dataclass
class Scenario:
    """One change that passes every check of STRICT; each test breaks exactly one thing."""

    plan: str = PLAN
    window: tuple[float, float] | None = (-HOUR, HOUR)  # relative to now
    rehearsal: tuple[float, float, str] | None = (HOUR, 5.0, "succeeded")  # age, duration, outcome
    rehearsal_version: str | None = None  # default: the plan's own version
    gate_policy: str = STRICT
    reject: bool = False


def _build(url: str, tmp_path: Path, s: Scenario, name: str = "web") -> int:
    plan = write(tmp_path / name / "plan.yaml", s.plan.replace("web", name))
    approve_policy = write(tmp_path / "approve-policy.yaml", "high: {approvals: 1}\n")
    now = time.time()
    extra = ["--risk", "high"]
    if s.window:
        extra += ["--window", f"{_iso(now + s.window[0])}..{_iso(now + s.window[1])}"]
    change_id = create_change(url, plan, *extra)
    approved = invoke(
        url, "change", "approve", str(change_id), "--policy", approve_policy, actor="bob"
    )
    assert approved.exit_code == 0, approved.output
    if s.reject:
        assert invoke(url, "change", "reject", str(change_id), actor="carol").exit_code == 0
    if s.rehearsal:
        age, duration, outcome = s.rehearsal
        version = s.rehearsal_version or load_plan(plan).version
        store = open_store(url)
        try:
            with store.session() as session:
                session.add(
                    RehearsalRow(
                        plan=name,
                        plan_version=version,
                        run_id=None,
                        outcome=outcome,
                        duration_s=duration,
                        at=now - age,
                    )
                )
        finally:
            store.dispose()
    return change_id


def _gate(
    url: str, tmp_path: Path, s: Scenario, name: str = "web"
) -> tuple[int, dict[str, tuple[str, str]], Path]:
    change_id = _build(url, tmp_path, s, name)
    policy = write(tmp_path / name / "gate-policy.yaml", s.gate_policy)
    junit = tmp_path / name / "gate.xml"
    result = invoke(url, "gate", str(change_id), "--policy", policy, "--junit", str(junit))
    assert "Traceback" not in result.output
    marks = {}
    for line in result.stdout.splitlines():
        match = LINE.match(line)
        if match:
            marks[match.group(2)] = (match.group(1), match.group(3))
    assert list(marks) == NAMES, result.stdout
    return result.exit_code, marks, junit


def test_every_check_passes(store_url: str, tmp_path: Path) -> None:
    code, marks, junit = _gate(store_url, tmp_path, Scenario())
    assert code == 0
    assert {name: mark for name, (mark, _) in marks.items()} == dict.fromkeys(NAMES, "pass")
    assert marks["approvals"][1].endswith("(bob)")
    assert marks["window"][1].startswith("now is inside the window")
    assert marks["rehearsal"][1].startswith("rehearsed 1.0h ago in 5.0s (rto 1m)")
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("8", "0", "0")
    assert [case.get("name") for case in suite.iter("testcase")] == NAMES
    assert not list(suite.iter("failure"))


V = "0123456789abcdef"
CASES = {
    "status": (Scenario(reject=True), "change is rejected, not approved"),
    "plan_valid": (
        Scenario(plan=PLAN.replace("run: [touch, marker.txt]", 'run: [touch, "{{ marker"]')),
        "1 lint problem(s), first: ",
    ),
    "verify": (Scenario(plan=PLAN.split("verify:")[0]), "the plan has no `verify:` checks"),
    "rto": (Scenario(plan=PLAN.replace("rto: 1m\n", "")), "the plan has no `rto:`"),
    "approvals": (
        Scenario(gate_policy=STRICT.replace("approvals: 1", "approvals: 2")),
        "1 of 2 approval(s) for plan version",
    ),
    "window": (Scenario(window=(-3 * HOUR, -2 * HOUR)), "now is after the window"),
    "window-missing": (Scenario(window=None), "no change window set"),
    "rehearsal": (Scenario(rehearsal=None), "no rehearsal recorded for plan version"),
    "rehearsal-failed": (
        Scenario(rehearsal=(HOUR, 5.0, "failed")),
        "no rehearsal recorded for plan version",
    ),
    "rehearsal-other-version": (
        Scenario(rehearsal_version=V),
        "no rehearsal recorded for plan version",
    ),
    "rehearsal-too-old": (
        Scenario(rehearsal=(48 * HOUR, 5.0, "succeeded")),
        "latest passing rehearsal of this plan version is 2.0 days old; the policy allows 1.0 days",
    ),
    "rehearsal-too-slow": (
        Scenario(rehearsal=(HOUR, 90.0, "succeeded")),
        "rehearsal took 90.0s, more than the rto of 1m",
    ),
}


def test_each_check_failing_alone(store_url: str, tmp_path: Path) -> None:
    # one store for every case (each its own plan name, so rehearsals do not leak between
    # them): a database per case would cost more than the cases themselves
    for number, (case, (scenario, reason)) in enumerate(CASES.items()):
        failing = case.split("-")[0]
        code, marks, junit = _gate(store_url, tmp_path, scenario, f"web{number}")
        assert code == 1, case
        assert marks[failing][0] == "FAIL", case
        assert reason in marks[failing][1], (case, marks[failing][1])
        others = {n: m for n, (m, _) in marks.items() if n != failing}
        assert others == {n: "pass" for n in NAMES if n != failing}, (case, marks)
        _assert_junit_fails_only(junit, failing, reason)


def _assert_junit_fails_only(junit: Path, failing: str, reason: str) -> None:
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("8", "1")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert list(cases) == NAMES
    for name, element in cases.items():
        failure = element.find("failure")
        assert (failure is not None) == (name == failing), name
        assert element.findtext("system-out")
    failure = cases[failing].find("failure")
    assert failure is not None
    assert reason in (failure.get("message") or "")


def test_checks_the_policy_does_not_ask_for_are_not_applicable(
    store_url: str, tmp_path: Path
) -> None:
    plan = write(tmp_path / "plan.yaml", PLAN.split("verify:")[0])
    change_id = create_change(store_url, plan, "--risk", "low")
    assert invoke(store_url, "change", "approve", str(change_id), actor="carol").exit_code == 0
    result = invoke(store_url, "gate", str(change_id), "--json")  # the built-in default
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"change_id", "risk", "policy", "passed", "checks"}
    assert (report["change_id"], report["risk"], report["policy"], report["passed"]) == (
        change_id,
        "low",
        "built-in default",
        True,
    )
    for check in report["checks"]:
        assert set(check) == {"name", "required", "passed", "reason"}
        assert isinstance(check["reason"], str)
        assert check["reason"]
    required = {c["name"]: c["required"] for c in report["checks"]}
    assert required == {
        "status": True,
        "plan_valid": True,
        "verify": False,
        "rto": False,
        "approvals": False,
        "window": False,
        "rehearsal": False,
        "preflight": False,
    }
    human = invoke(store_url, "gate", str(change_id))
    assert "n/a  verify" in human.stdout
    assert "the change may start" in human.stdout
    junit = tmp_path / "gate.xml"
    invoke(store_url, "gate", str(change_id), "--junit", str(junit))
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert suite.get("skipped") == "6"


def test_gate_reads_the_plan_checked_out_here(store_url: str, tmp_path: Path) -> None:
    original = tmp_path / "laptop" / "plan.yaml"
    change_id = create_change(store_url, write(original, PLAN), "--risk", "low")
    assert invoke(store_url, "change", "approve", str(change_id), actor="bob").exit_code == 0
    checkout = write(tmp_path / "ci" / "plan.yaml", PLAN)
    original.unlink()
    gone = invoke(store_url, "gate", str(change_id), "--json")
    assert gone.exit_code == 1
    plan_valid = json.loads(gone.stdout)["checks"][1]
    assert plan_valid["name"] == "plan_valid"
    assert "no such file" in plan_valid["reason"]
    assert invoke(store_url, "gate", str(change_id), "--plan", checkout).exit_code == 0
    other = write(tmp_path / "ci" / "api.yaml", PLAN.replace("plan: web", "plan: api"))
    mismatch = invoke(store_url, "gate", str(change_id), "--plan", other, "--json")
    assert mismatch.exit_code == 1
    assert (
        "is plan 'api'; change 1 is for plan 'web'"
        in json.loads(mismatch.stdout)["checks"][1]["reason"]
    )


def test_start_is_gated_and_an_override_is_audited(store_url: str, tmp_path: Path) -> None:
    change_id = _build(store_url, tmp_path, Scenario(rehearsal=None))
    policy = write(tmp_path / "gate-policy.yaml", STRICT)
    refused = invoke(store_url, "change", "start", str(change_id), "--policy", policy)
    assert refused.exit_code == 2
    assert f"change {change_id} may not start: rehearsal: no rehearsal recorded" in refused.stderr
    assert show(store_url, change_id)["status"] == "approved"
    forced = invoke(
        store_url, "change", "start", str(change_id), "--policy", policy, "--override", "outage"
    )
    assert forced.exit_code == 0, forced.output
    assert show(store_url, change_id)["status"] == "in_progress"
    last = audit_records(store_url, "--action", "change.transitioned")[-1]
    assert last["details"]["override"] == "outage"
    assert last["details"]["overridden"] == ["rehearsal"]
    assert last["details"]["policy"] == policy


def test_gate_errors_are_usage_errors(store_url: str, tmp_path: Path) -> None:
    open_store(store_url).dispose()
    missing = invoke(store_url, "gate", "42")
    assert missing.exit_code == 2
    assert "no change 42 in this store" in missing.stderr
    change_id = create_change(store_url, write(tmp_path / "plan.yaml", PLAN))
    bad = write(tmp_path / "policy.yaml", "high:\n  approvals: many\n")
    result = invoke(store_url, "gate", str(change_id), "--policy", bad)
    assert result.exit_code == 2
    assert f"{bad}:2:" in result.stderr
    assert "approvals" in result.stderr
    unknown = write(tmp_path / "typo.yaml", "high:\n  aprovals: 2\n")
    assert invoke(store_url, "gate", str(change_id), "--policy", unknown).exit_code == 2
    nowhere = invoke(store_url, "gate", str(change_id), "--junit", str(tmp_path / "no" / "x.xml"))
    assert nowhere.exit_code == 2
    assert "cannot write the JUnit report" in nowhere.stderr


def test_the_gate_has_the_documented_checks() -> None:
    assert [check.__name__.lstrip("_") for check in CHECKS] == NAMES


def test_example_policy_is_the_built_in_default() -> None:
    policy, source = load_policy(ROOT / "examples" / "backout-policy.yaml")
    assert source.endswith("backout-policy.yaml")
    assert policy == Policy()


def test_policy_in_docs_is_the_built_in_default(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "changes.md").read_text(encoding="utf-8")
    blocks = [
        block
        for block in re.findall(r"^```yaml\n(.*?)^```$", text, re.DOTALL | re.MULTILINE)
        if block.startswith("# backout-policy.yaml")
    ]
    assert blocks, "docs/changes.md shows the default policy in a ```yaml block"
    path = write(tmp_path / "backout-policy.yaml", blocks[0])
    assert load_policy(path)[0] == Policy()


def test_policy_file_errors_have_positions(tmp_path: Path) -> None:
    path = write(tmp_path / "backout-policy.yaml", "medium:\n  rehearsal: {max_age: soon}\n")
    with pytest.raises(PlanError) as caught:
        load_policy(path)
    assert caught.value.issues[0].line == 2
