"""`backout drills due` and the kill fault, on SQLite and PostgreSQL: a plan is due exactly
when the gate would refuse its rehearsal; a backout that got 20% slower is flagged; a drill
whose executor is SIGKILLed inside the backout is resumed from its journal and passes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from backout import commands
from backout.commands.rehearsals import parse_fault
from backout.kernel.events import EventKind
from backout.settings import Settings
from backout.store.models import RehearsalRow
from tests.callers import caller
from tests.integration.change_helpers import invoke
from tests.integration.test_rehearse import layout


def test_a_plan_is_due_until_this_version_is_rehearsed(store_url: str, tmp_path: Path) -> None:
    plan = layout(tmp_path, idempotent="true")
    me = caller(Settings(database_url=store_url, actor="ci"))
    assert commands.rehearse(me, plan).passed  # creates the store; plan v1 rehearsed
    [ok] = commands.drills_due(me, [plan])
    assert (ok.due, ok.required, ok.risk) == (False, True, "high")
    assert ok.reason.startswith("rehearsed ")

    plan.write_text(plan.read_text().replace("retry_delay: 100ms", "retry_delay: 200ms"))
    result = invoke(store_url, "drills", "due", str(plan), "--json")
    assert result.exit_code == 1, result.output
    [due] = json.loads(result.stdout)
    assert due["due"] is True
    assert due["reason"].startswith("no rehearsal recorded for plan version ")

    low = tmp_path / "low.yaml"
    low.write_text(plan.read_text().replace("risk: high", "risk: low"))
    [relaxed] = commands.drills_due(me, [low])
    assert (relaxed.due, relaxed.required) == (False, False)  # the policy asks for none


def test_a_backout_that_got_slower_is_flagged(store_url: str, tmp_path: Path) -> None:
    plan = layout(tmp_path, idempotent="true")
    me = caller(Settings(database_url=store_url, actor="ci"))
    report = commands.rehearse(me, plan)
    assert report.passed
    assert commands.drills_due(me, [plan])[0].slower is None  # one drill: no trend yet
    with me.store.session() as session:
        for total in (0.10, 0.11, 0.09, 0.30):  # the last one is 3x the usual
            session.add(
                RehearsalRow(
                    plan="shop",
                    plan_version=report.plan_version,
                    run_id=None,
                    outcome="succeeded",
                    duration_s=total,
                    at=time.time() + total,  # after the real drill, in this order
                )
            )
    [flagged] = commands.drills_due(me, [plan])
    assert flagged.slower is not None
    assert "0.30s" in flagged.slower
    assert "more than the median" in flagged.slower
    assert flagged.due is False  # slower is a warning, not a refusal


def test_the_kill_fault_resumes_the_drill_from_its_journal(store_url: str, tmp_path: Path) -> None:
    plan = layout(tmp_path, idempotent="true", faults="[]")
    me = caller(Settings(database_url=store_url, actor="ci"))
    report = commands.rehearse(me, plan, faults=[parse_fault("kill:step=switch back")])
    assert report.passed, report.message
    kinds = [e.kind for e in commands.journal(me, report.run.run_id)]
    killed = kinds.index(EventKind.FAULT_INJECTED)
    assert kinds[killed + 1] == EventKind.RUN_RESUMED  # nothing after the kill but the resume
    assert kinds.count(EventKind.BACKOUT_STARTED) == 1
    assert report.run.steps[2].attempts == 2  # killed inside attempt 1, run again on resume
    assert (tmp_path / "current").readlink() == Path("releases/good")
    assert [f["acted"] for f in report.faults] == [True]
    assert len(commands.rehearsals(me)) == 1


def test_the_gate_counts_the_policys_environment_and_the_latest_drill(
    store_url: str, tmp_path: Path
) -> None:
    from backout.changes.gate import rehearsal_check
    from backout.changes.policy import Rehearsal
    from backout.plans import load_plan
    from backout.store import changes as change_repo

    plan = layout(tmp_path, idempotent="true", faults="[]")
    me = caller(Settings(database_url=store_url, actor="ci"))
    assert commands.rehearse(me, plan).passed
    loaded = load_plan(plan)

    def check(rule: Rehearsal) -> tuple[bool, str]:
        with me.store.session() as session:
            rows = change_repo.rehearsals(session, "shop")
        verdict = rehearsal_check(rule, loaded, rows, time.time())
        return verdict.passed, verdict.reason

    assert check(Rehearsal())[0] is True
    passed, reason = check(Rehearsal(environment="staging"))  # this drill had no environment
    assert (passed, reason) == (
        False,
        f"no rehearsal recorded in staging for plan version {loaded.version}",
    )

    failed = commands.rehearse(me, plan, faults=[parse_fault("fail_check:check=good release live")])
    assert not failed.passed
    passed, reason = check(Rehearsal())
    assert passed is False
    assert reason.startswith("the latest drill of this plan version failed: rehearsal failed: ")


def test_over_the_rto_exits_1_and_a_hold_past_the_timeout_times_out(
    store_url: str, tmp_path: Path
) -> None:
    plan = layout(tmp_path, idempotent="true", faults="[]", rto="1s", timeout="1s", retries="0")
    me = caller(Settings(database_url=store_url, actor="ci"))
    held = commands.rehearse(
        me, plan, manual=True, faults=[parse_fault("slow:step=switch back,by=3s")]
    )
    assert held.passed is False
    step = held.run.steps[2]
    assert step.summary == "timed out after 1s (held by a slow fault)"
    assert (tmp_path / "current").readlink() == Path("releases/good")  # the break was reverted
    assert held.exit_code == 1
    assert "detection by hand" not in held.message  # it failed

    plan.write_text(plan.read_text().replace("rto: 1s", "rto: 100ms"))
    over = commands.rehearse(
        me, plan, manual=True, faults=[parse_fault("slow:step=switch back,by=300ms")]
    )
    assert over.passed is True
    assert over.message.startswith("rehearsal passed: detection by hand, backed out")
    assert over.fits_rto is False
    assert over.exit_code == 1


def test_the_evidence_report_in_markdown_and_html(store_url: str, tmp_path: Path) -> None:
    plan = layout(tmp_path, idempotent="true")
    md, page = tmp_path / "evidence.md", tmp_path / "evidence.html"
    for report in (md, page):
        result = invoke(store_url, "rehearse", str(plan), "--times", "2", "--report", str(report))
        assert result.exit_code == 0, result.output
    text = md.read_text()
    drills = commands.rehearsals(caller(Settings(database_url=store_url, actor="ci")))
    assert text.startswith("# Rehearsal evidence: shop\n")
    assert "| total |" in text  # the percentiles of the two drills
    assert text.count("## Drill ") == 2
    assert f"run `{drills[3].run_id}`" in text  # the first run of the first report
    assert "| check good release live | pass |" in text
    assert "fault: the first attempt of 'switch back' fails (acted)" in text
    html_text = page.read_text()
    assert html_text.startswith("<!doctype html>")
    assert "<h2>Drill 2: passed</h2>" in html_text
    assert "<td>check good release live</td><td>pass</td>" in html_text
    assert "'switch back'" not in html_text  # quotes are escaped in the page
    assert "&#x27;switch back&#x27;" in html_text


def test_a_drill_refuses_what_it_cannot_do_before_it_starts(store_url: str, tmp_path: Path) -> None:
    plan = layout(tmp_path, idempotent="true", faults="[]")
    text = plan.read_text()
    start = text.index("triggers:")
    plan.write_text(
        text[:start]
        + "triggers:\n  - name: pager\n    alertmanager: {}\n"
        + text[text.index("rehearsal:") :]
    )
    result = invoke(store_url, "rehearse", str(plan))
    assert result.exit_code == 2, result.output
    assert "only `alertmanager:` triggers, which a drill cannot hear" in result.stderr
    unwritable = invoke(
        store_url, "rehearse", str(plan), "--trigger", "manual", "--junit", "/proc/x.xml"
    )
    assert unwritable.exit_code == 2
    assert "cannot write the report /proc/x.xml" in unwritable.stderr
    assert (
        invoke(store_url, "rehearsals", "--json").exit_code != 0
        or json.loads(invoke(store_url, "rehearsals", "--json").stdout) == []
    )  # no drill ran


def test_telemetry_faults_exercise_on_no_data(store_url: str, tmp_path: Path) -> None:
    """A signal with no data: a trigger that ignores missing data never detects the break
    (the drill fails and reverts); one that backs out on missing data detects it."""
    plan = layout(tmp_path, idempotent="true", faults="[]", detect_within="2s")
    me = caller(Settings(database_url=store_url, actor="ci"))
    blind = commands.rehearse(me, plan, faults=[parse_fault("no_data:signal=bad")])
    assert blind.passed is False
    assert blind.message == "rehearsal failed: no trigger fired within 2s"
    assert [f["acted"] for f in blind.faults] == [True]
    events = commands.journal(me, blind.run.run_id)
    injected = [e for e in events if e.kind == EventKind.FAULT_INJECTED]
    assert [e.data["signal"] for e in injected] == ["bad"]  # journalled once, not per reading
    assert (tmp_path / "current").readlink() == Path("releases/good")

    plan.write_text(plan.read_text().replace("on_no_data: ignore", "on_no_data: backout"))
    loud = commands.rehearse(me, plan, faults=[parse_fault("telemetry_error:signal=bad")])
    assert loud.passed is True
    assert loud.run.trigger is not None
    assert loud.run.trigger["trigger"] == "bad release"


def test_kill_process_kills_the_service_before_a_backout_step(
    store_url: str, tmp_path: Path
) -> None:
    """The service's process dies just before the backout's step: the fault sends the
    signal to the pid in the pidfile, the journal says so, and the backout goes on."""
    plan = layout(tmp_path, idempotent="true", faults="[]")
    service = subprocess.Popen(
        ["sleep", "120"], env={**os.environ}, start_new_session=True, cwd=tmp_path
    )
    try:
        (tmp_path / "service.pid").write_text(f"{service.pid}\n")
        me = caller(Settings(database_url=store_url, actor="ci"))
        fault = parse_fault("kill_process:pidfile=service.pid,before=switch back")
        report = commands.rehearse(me, plan, manual=True, faults=[fault])
        assert service.wait(10) == -signal.SIGKILL  # killed by the fault, not by the test
    finally:
        if service.poll() is None:
            service.kill()
            service.wait(10)
    assert report.passed, report.message
    [acted] = [
        e for e in commands.journal(me, report.run.run_id) if e.kind == EventKind.FAULT_INJECTED
    ]
    assert acted.data["effect"] == f"sent SIGKILL to pid {service.pid} (from service.pid)"
    assert acted.step == 2  # the backout's step


def test_store_drop_leaves_the_journal_whole(store_url: str, tmp_path: Path) -> None:
    """PostgreSQL terminates the executor's connections before the backout's step; the
    engine reconnects and the drill finishes with a contiguous journal. SQLite has no
    connection to drop, and the journal says so."""
    plan = layout(tmp_path, idempotent="true", faults="[]")
    me = caller(Settings(database_url=store_url, actor="ci"))
    fault = parse_fault("store_drop:before=switch back")
    report = commands.rehearse(me, plan, manual=True, faults=[fault])
    assert report.passed, report.message
    events = commands.journal(me, report.run.run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    [acted] = [e for e in events if e.kind == EventKind.FAULT_INJECTED]
    if store_url.startswith("sqlite"):
        assert acted.data["effect"] == "the store is SQLite: it has no connection to drop"
    else:
        dropped = int(acted.data["effect"].split()[1])
        assert dropped >= 1, acted.data["effect"]


def test_fits_rto_reads_the_p95_of_the_passing_drills(store_url: str, tmp_path: Path) -> None:
    """One fast drill does not hide slow ones: the p95 of the passing drills of this
    plan version must fit the rto."""
    from backout.changes.gate import rehearsal_check
    from backout.changes.policy import Rehearsal
    from backout.plans import load_plan
    from backout.store import changes as change_repo

    plan = layout(tmp_path, idempotent="true", faults="[]", rto="1s")
    me = caller(Settings(database_url=store_url, actor="ci"))
    report = commands.rehearse(me, plan)  # fast: well within 1s
    assert report.passed
    loaded = load_plan(plan)

    def verdict() -> tuple[bool, str]:
        with me.store.session() as session:
            rows = change_repo.rehearsals(session, "shop")
        check = rehearsal_check(Rehearsal(), loaded, rows, time.time() + 10)
        return check.passed, check.reason

    assert verdict()[0] is True
    with me.store.session() as session:
        for total in (0.2, 3.0, 2.5):  # two of four drills took longer than the rto
            session.add(
                RehearsalRow(
                    plan="shop",
                    plan_version=report.plan_version,
                    run_id=None,
                    outcome="succeeded",
                    duration_s=total,
                    at=time.time() - 5,  # older than the real drill: it stays the latest
                )
            )
    passed, reason = verdict()
    assert passed is False
    assert reason.startswith("the p95 of 4 passing drills is 2.9s, more than the rto of 1s")
