"""Rehearsals through the real engine and store (SQLite and PostgreSQL): a drill breaks a
real service (a `current` symlink), real telemetry (a process reading it) detects the
break, the plan's backout restores it under injected faults, and the evidence the gate
reads is recorded in the run's last transaction. Failed drills leave staging as they
found it; a drill killed mid-backout resumes without repeating its break."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from string import Template
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from backout import commands
from backout.engine.hooks import journal_hash
from backout.kernel.events import Event
from backout.reports import RehearsalReport
from backout.settings import Settings
from backout.store import leases
from tests.callers import caller
from tests.e2e import procs
from tests.integration.change_helpers import create_change, invoke, write

# The plan of the brief: a fault makes the backout's first attempt fail, its retry works.
PLAN = Template("""\
plan: shop
risk: high
rto: $rto
steps:
  - name: switch back
    symlink: {link: current, target: releases/good}
    timeout: $timeout
    retries: $retries
    retry_delay: $retry_delay
    idempotent: $idempotent
verify:
  - name: good release live
    command: {argv: [cat, current/VERSION], contains: good}
telemetry:
  bad:
    command: {argv: [sh, -c, 'if grep -q bad current/VERSION; then echo 1; else echo 0; fi']}
    interval: 200ms
triggers:
  - name: bad release
    signal: bad
    threshold: {above: $above}
    on_no_data: ignore
rehearsal:
  break:
    - name: ship the bad build
      symlink: {link: current, target: releases/bad}
      undo: {symlink: {link: current, target: releases/good}}
  detect_within: $detect_within
  faults: $faults
""")
DEFAULTS = {
    "rto": "30s",
    "timeout": "5s",
    "retries": "1",
    "retry_delay": "100ms",
    "idempotent": "false",
    "above": "0.5",
    "detect_within": "10s",
    "faults": "[{fail_first: {step: switch back}}]",
}
GOOD, BAD = Path("releases/good"), Path("releases/bad")
# unit indexes of a drill's layout: the break, its undo, then the plan's steps
BREAK, UNDO, BACKOUT = 0, 1, 2
CHECK = "good release live"
HIGH_POLICY = "high:\n  rehearsal: {max_age: 24h, fits_rto: %s}\n"


def settings(url: str) -> Settings:
    return Settings(database_url=url, actor="drill-lead", lease_ttl=5.0)


def layout(folder: Path, **changes: str) -> Path:
    """Two releases, `current` pointing at the good one, and the plan (with ``changes``)."""
    for release in ("good", "bad"):
        (folder / "releases" / release).mkdir(parents=True, exist_ok=True)
        (folder / "releases" / release / "VERSION").write_text(release + "\n")
    (folder / "current").symlink_to(GOOD)
    plan = folder / "plan.yaml"
    plan.write_text(PLAN.substitute({**DEFAULTS, **changes}), encoding="utf-8")
    return plan


def live(folder: Path) -> Path:
    return (folder / "current").readlink()


def journal(url: str, run_id: str) -> list[Event]:
    return commands.journal(caller(settings(url)), run_id)


def statuses(report: RehearsalReport) -> list[str]:
    return [s.status for s in report.run.steps]


def gate_check(url: str, change_id: int, policy: str, name: str = "rehearsal") -> dict[str, Any]:
    result = invoke(url, "gate", str(change_id), "--policy", policy, "--json")
    assert result.exit_code in (0, 1), result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    return checks[name]  # type: ignore[no-any-return]


# --- 1. a passing drill -------------------------------------------------------------------
def test_passing_drill_records_its_evidence(store_url: str, tmp_path: Path) -> None:
    plan = layout(tmp_path)
    report = commands.rehearse(caller(settings(store_url)), plan)

    assert report.passed, report.message
    assert (report.run.status, report.run.result, report.exit_code) == (
        "succeeded",
        "rehearsed",
        0,
    )
    assert report.steady == {"before": True, "after": True}
    assert report.run.trigger is not None
    assert report.run.trigger["trigger"] == "bad release"  # detected by real telemetry
    assert statuses(report) == ["succeeded", "skipped", "succeeded"]
    steps = report.run.steps
    assert steps[BREAK].summary == "current -> releases/bad (was releases/good)"
    assert steps[UNDO].summary == "the drill's backout restored the service"
    assert steps[BACKOUT].attempts == 2  # the fault failed the first one
    assert steps[BACKOUT].summary == "current -> releases/good (was releases/bad)"
    assert [c.passed for c in report.run.checks] == [True]
    assert live(tmp_path) == GOOD

    events = journal(store_url, report.run.run_id)
    injected = [e for e in events if e.kind == "fault_injected"]
    assert [(e.data["fault"], e.step) for e in injected] == [("fail_first", BACKOUT)]
    assert report.faults == [
        {
            "kind": "fail_first",
            "options": {"step": "switch back"},
            "described": "the first attempt of 'switch back' fails",
            "acted": True,
        }
    ]

    total = report.phases["total_s"]
    assert report.rto_s == 30.0
    assert 0 < total <= report.rto_s
    assert report.fits_rto is True
    assert report.phases["detect_s"] is not None
    assert report.phases["break_s"] is not None
    assert report.phases["result"] == "rehearsed"
    assert report.journal_hash == journal_hash(events)
    assert events[-1].kind == "run_finished"  # the hash covers the whole journal

    rows = commands.rehearsals(caller(settings(store_url)))
    assert [(r.id, r.outcome, r.run_id) for r in rows] == [
        (report.rehearsal_id, "succeeded", report.run.run_id)
    ]
    assert rows[0].total_s == total
    assert (rows[0].plan, rows[0].plan_version, rows[0].actor) == (
        "shop",
        report.plan_version,
        "drill-lead",
    )
    audit = commands.audit_log(caller(settings(store_url)), action="rehearsal.recorded")
    assert len(audit) == 1
    assert audit[0].subject == f"run:{report.run.run_id}"
    assert audit[0].details["rehearsal_id"] == report.rehearsal_id
    assert audit[0].details["outcome"] == "succeeded"
    assert audit[0].details["journal_hash"] == report.journal_hash


# --- 2. the gate reads the evidence -------------------------------------------------------
def test_gate_rehearsal_check_turns_green_then_stale_on_edit(
    store_url: str, tmp_path: Path
) -> None:
    plan = layout(tmp_path)
    policy = write(tmp_path / "policy.yaml", HIGH_POLICY % "true")
    change_id = create_change(store_url, str(plan), "--risk", "high")

    before = gate_check(store_url, change_id, policy)
    assert before["required"] is True
    assert before["passed"] is False
    assert before["reason"].startswith("no rehearsal recorded for plan version ")

    drill = invoke(store_url, "rehearse", str(plan), "--json")
    assert drill.exit_code == 0, drill.output
    rehearsed = json.loads(drill.stdout)["drills"][0]
    assert rehearsed["passed"] is True
    version = rehearsed["plan_version"]
    assert before["reason"] == f"no rehearsal recorded for plan version {version}"

    after = gate_check(store_url, change_id, policy)
    assert after["passed"] is True, after["reason"]
    assert after["reason"].startswith("rehearsed ")
    assert after["reason"].endswith("(rto 30s)")
    shown = json.loads(invoke(store_url, "change", "show", str(change_id), "--json").stdout)
    assert [(d["outcome"], d["current"]) for d in shown["rehearsals"]] == [("succeeded", True)]
    assert shown["rehearsals"][0]["run_id"] == rehearsed["run"]["run_id"]

    plan.write_text(plan.read_text().replace("retry_delay: 100ms", "retry_delay: 200ms"))
    stale = gate_check(store_url, change_id, policy)
    assert stale["passed"] is False
    assert stale["reason"].startswith("no rehearsal recorded for plan version ")
    assert version not in stale["reason"]  # the drill was of another plan version
    rows = commands.rehearsals(caller(settings(store_url)))
    assert [(r.outcome, r.plan_version) for r in rows] == [("succeeded", version)]
    text = invoke(store_url, "change", "show", str(change_id)).stdout
    assert "rehearsal 1 succeeded in " in text
    assert "(an earlier plan version)" in text  # the plan was edited since the drill


# --- 3. fits_rto --------------------------------------------------------------------------
def test_slow_backout_does_not_fit_the_rto_and_the_gate_says_so(
    store_url: str, tmp_path: Path
) -> None:
    plan = layout(tmp_path, rto="1s", timeout="10s", faults="[]")
    slow = commands.rehearsal_fault("slow:step=switch back,by=1.5s")
    report = commands.rehearse(caller(settings(store_url)), plan, faults=[slow])

    assert report.passed, report.message  # it worked, just too slowly
    assert report.rto_s == 1.0
    assert report.phases["total_s"] >= 1.5
    assert report.fits_rto is False
    assert report.to_json()["fits_rto"] is False
    assert [f["acted"] for f in report.faults] == [True]
    assert report.faults[0]["described"] == "'switch back' is slowed by 1.5s"

    change_id = create_change(store_url, str(plan), "--risk", "high")
    strict = write(tmp_path / "strict.yaml", HIGH_POLICY % "true")
    check = gate_check(store_url, change_id, strict)
    assert check["passed"] is False
    took = report.phases["total_s"]
    assert check["reason"] == f"rehearsal took {took:.1f}s, more than the rto of 1s"
    lenient = write(tmp_path / "lenient.yaml", HIGH_POLICY % "false")
    assert gate_check(store_url, change_id, lenient)["passed"] is True


# --- 4. a failing post-check, and a failing backout step ----------------------------------
def test_failed_check_fails_the_drill_and_reverts_the_break(store_url: str, tmp_path: Path) -> None:
    plan = layout(tmp_path)
    fault = commands.rehearsal_fault(f"fail_check:check={CHECK}")
    report = commands.rehearse(caller(settings(store_url)), plan, faults=[fault])

    assert not report.passed
    assert (report.run.status, report.run.result, report.exit_code) == ("failed", "failed", 1)
    assert report.message.startswith("rehearsal failed: verification failed: ")
    assert "injected fault: the check fails" in report.message
    assert [(c.passed, c.reason) for c in report.run.checks] == [
        (False, "injected fault: the check fails")
    ]
    assert statuses(report) == ["succeeded", "succeeded", "succeeded"]  # the undo ran
    assert live(tmp_path) == GOOD
    assert {f["kind"]: f["acted"] for f in report.faults} == {
        "fail_first": True,
        "fail_check": True,
    }
    rows = commands.rehearsals(caller(settings(store_url)))
    assert [(r.outcome, r.run_id) for r in rows] == [("failed", report.run.run_id)]
    assert report.journal_hash == journal_hash(journal(store_url, report.run.run_id))


def test_failed_backout_step_is_reverted_by_the_break_undo(store_url: str, tmp_path: Path) -> None:
    """No retry left for the faulted attempt: the backout fails, `current` is still the
    bad release, and only the break's undo brings the good one back."""
    plan = layout(tmp_path, retries="0")
    report = commands.rehearse(caller(settings(store_url)), plan)

    assert not report.passed
    assert report.exit_code == 1
    assert "step 'switch back' failed: injected fault: the first attempt fails" in report.message
    assert statuses(report) == ["succeeded", "succeeded", "failed"]
    assert report.run.steps[UNDO].summary == "current -> releases/good (was releases/bad)"
    assert live(tmp_path) == GOOD
    assert [c.passed for c in report.run.checks] == [None]  # no checks after a failed step


# --- 5. not steady before -----------------------------------------------------------------
def test_not_steady_before_touches_nothing(store_url: str, tmp_path: Path) -> None:
    plan = layout(tmp_path)
    (tmp_path / "current").unlink()
    (tmp_path / "current").symlink_to(BAD)
    report = commands.rehearse(caller(settings(store_url)), plan)

    assert not report.passed
    assert (report.run.status, report.run.result, report.exit_code) == (
        "failed",
        "not_steady",
        1,
    )
    assert report.message.startswith("not started: the service is not in its steady state: ")
    assert repr(CHECK) in report.message
    assert report.steady == {"before": False}
    assert statuses(report) == ["not_run", "not_run", "not_run"]
    kinds = [e.kind for e in journal(store_url, report.run.run_id)]
    assert "step_started" not in kinds
    assert "backout_started" not in kinds
    assert live(tmp_path) == BAD  # left exactly as found
    rows = commands.rehearsals(caller(settings(store_url)))
    assert [r.outcome for r in rows] == ["failed"]


# --- 6. undetected ------------------------------------------------------------------------
def test_undetected_break_fails_and_is_reverted(store_url: str, tmp_path: Path) -> None:
    plan = layout(tmp_path, above="2", detect_within="1s")
    report = commands.rehearse(caller(settings(store_url)), plan)

    assert not report.passed
    assert report.exit_code == 1
    assert report.message == "rehearsal failed: no trigger fired within 1s"
    assert report.run.trigger is not None
    assert report.run.trigger["trigger_kind"] == "undetected"
    assert report.phases["detect_s"] is None
    events = journal(store_url, report.run.run_id)
    assert "trigger_fired" not in [e.kind for e in events]
    # the telemetry saw the break (1), the trigger (above 2) could not call it bad
    evaluated = [e.data for e in events if e.kind == "trigger_evaluated"]
    assert [(d["verdict"], d["statistic"]) for d in evaluated] == [("pass", 1.0)]
    assert report.run.steps[UNDO].status == "succeeded"
    assert live(tmp_path) == GOOD
    assert [r.outcome for r in commands.rehearsals(caller(settings(store_url)))] == ["failed"]


# --- 7. SIGKILL in the backout, then resume -----------------------------------------------
def wait_for(what: str, probe: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def lease_expired(url: str) -> bool:
    with caller(settings(url)).store.session() as session:
        holder = leases.holder(session, "shop", time.time())
    return holder is None or holder.expires_in < 0


def test_drill_killed_in_its_backout_resumes_without_breaking_again(
    store_url: str, tmp_path: Path
) -> None:
    plan = layout(tmp_path, faults="[]", idempotent="true")
    caller(settings(store_url)).store.open()  # migrated here, before the drill's process
    stderr = (tmp_path / "stderr.txt").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backout",
            "--db",
            store_url,
            "rehearse",
            str(plan),
            "--trigger",
            "manual",
            "--fault",
            "slow:step=switch back,by=4s",
        ],
        cwd=tmp_path,
        env={**os.environ, "BACKOUT_LEASE_TTL": "2"},
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        start_new_session=True,
    )

    def running() -> bool:
        """The drill still runs (if it died, fail now, saying why)."""
        assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()
        return True

    def slowed(run_id: str) -> bool:
        return running() and any(
            e.kind == "fault_injected" and e.data["fault"] == "slow"
            for e in journal(store_url, run_id)
        )

    try:
        runs = wait_for(
            "the drill's run", lambda: running() and commands.runs(caller(settings(store_url)))
        )
        run_id = runs[0].run_id
        wait_for("the slow fault to act", lambda: slowed(run_id))
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the group is the drill's
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            procs.kill_group_of(proc.pid)
            proc.wait(10)
        stderr.close()
    killed = journal(store_url, run_id)
    assert [e.kind for e in killed if e.step == BACKOUT][-1] == "fault_injected", (
        "the drill was not killed inside the slowed step"
    )
    assert "run_finished" not in [e.kind for e in killed]
    assert live(tmp_path) == BAD  # killed broken: the backout never got to switch back

    wait_for("the lease to expire", lambda: lease_expired(store_url), timeout=30)
    resumed = commands.resume(caller(Settings(database_url=store_url, actor="night-shift")), run_id)

    assert (resumed.status, resumed.result) == ("succeeded", "rehearsed"), resumed.message
    assert live(tmp_path) == GOOD
    events = journal(store_url, run_id)
    kinds = [e.kind for e in events]
    # the resumed drill went on from the interrupted step: no phase of it ran twice
    assert kinds.count("run_resumed") == 1
    assert kinds.count("steady_state") == 2  # before (first process), after (resumed)
    assert kinds.count("backout_started") == 1
    assert kinds.index("backout_started") < kinds.index("run_resumed")
    assert [e.step for e in events if e.kind == "step_started"].count(BREAK) == 1
    assert [e.step for e in events if e.kind == "step_finished"] == [BREAK, BACKOUT]
    rows = [r for r in commands.rehearsals(caller(settings(store_url))) if r.run_id == run_id]
    assert [(r.outcome, r.actor) for r in rows] == [("succeeded", "night-shift")]
    assert len(commands.rehearsals(caller(settings(store_url)))) == 1


# --- 8. the CLI ---------------------------------------------------------------------------
def test_cli_refuses_bad_faults_with_one_line(store_url: str, tmp_path: Path) -> None:
    plan = layout(tmp_path)
    cases = {
        "nope:step=switch back": "error: no fault named 'nope'",
        "slow:step=not a step,by=1s": "error: fault 'slow': the plan has no step named "
        "'not a step'",
        "fail_check:check=not a check": "error: fault 'fail_check': the plan has no check "
        "named 'not a check'",
        "slow:step": "error: --fault 'slow:step': 'step' is not key=value",
        "slow:step=switch back,by=soon": "error: fault 'slow': by: ",
    }
    for fault, message in cases.items():
        result = invoke(store_url, "rehearse", str(plan), "--fault", fault)
        assert result.exit_code == 2, (fault, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), fault
        assert "Traceback" not in result.output
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, (fault, result.stderr)
        assert errors[0].startswith(message), (fault, errors[0])
    assert commands.runs(caller(settings(store_url))) == []  # refused before any run
    assert live(tmp_path) == GOOD


def test_cli_times_json_junit_and_listing(store_url: str, tmp_path: Path) -> None:
    plan = layout(tmp_path)
    junit = tmp_path / "drills.xml"
    twice = invoke(
        store_url, "rehearse", str(plan), "--times", "2", "--json", "--junit", str(junit)
    )
    assert twice.exit_code == 0, twice.output
    data = json.loads(twice.stdout)
    drills = data["drills"]
    assert [d["passed"] for d in drills] == [True, True]
    assert len({d["run"]["run_id"] for d in drills}) == 2
    phases = ("break_s", "detect_s", "backout_s", "verify_s", "total_s")
    assert set(data["percentiles"]) == set(phases)
    for phase in phases:
        values = sorted(d["phases"][phase] for d in drills)
        cut = data["percentiles"][phase]
        assert set(cut) == {"p50", "p95"}
        low, high = values
        assert cut["p50"] == pytest.approx(low + 0.5 * (high - low), abs=0.0011), phase
        assert cut["p95"] == pytest.approx(low + 0.95 * (high - low), abs=0.0011), phase
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert len(suites) == 2
    assert [s.get("failures") for s in suites] == ["0", "0"]
    assert [s.get("name") for s in suites] == [
        "backout rehearse shop #1",
        "backout rehearse shop #2",
    ]

    failing = tmp_path / "failing.xml"
    fault = f"fail_check:check={CHECK}"
    failed = invoke(store_url, "rehearse", str(plan), "--fault", fault, "--junit", str(failing))
    assert failed.exit_code == 1, failed.output
    assert "FAILED" in failed.stdout
    (suite,) = ET.parse(failing).getroot().findall("testsuite")
    assert suite.get("failures") == str(len(suite.findall("testcase/failure")))
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    failure = cases[f"check {CHECK}"].find("failure")
    assert failure is not None
    assert failure.get("message") == "injected fault: the check fails"
    assert cases["step switch back"].find("failure") is None  # only the check failed

    listed = invoke(store_url, "rehearsals", "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [r["outcome"] for r in rows] == ["failed", "succeeded", "succeeded"]
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
    assert [r["run_id"] for r in rows[1:]] == [d["run"]["run_id"] for d in reversed(drills)]


def test_cli_plan_without_rehearsal_needs_trigger_manual(store_url: str, tmp_path: Path) -> None:
    plan = layout(tmp_path)
    plan.write_text(plan.read_text().split("rehearsal:")[0])
    refused = invoke(store_url, "rehearse", str(plan))
    assert refused.exit_code == 2, refused.output
    assert "Traceback" not in refused.output
    assert "the plan has no `rehearsal:` section" in refused.stderr
    hints = [line for line in refused.stderr.splitlines() if line.startswith("hint:")]
    assert len(hints) == 1
    assert "--trigger manual" in hints[0]
    assert commands.runs(caller(settings(store_url))) == []

    manual = invoke(store_url, "rehearse", str(plan), "--trigger", "manual", "--json")
    assert manual.exit_code == 0, manual.output
    (drill,) = json.loads(manual.stdout)["drills"]
    assert drill["passed"] is True
    assert [s["name"] for s in drill["run"]["steps"]] == ["switch back"]  # nothing to break
    assert drill["phases"]["detect_s"] is None  # detection by hand is not timed
    assert drill["run"]["trigger"]["trigger_kind"] == "manual"
