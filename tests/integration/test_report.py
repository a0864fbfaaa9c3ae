"""`backout report` on real runs (SQLite and PostgreSQL): a deploy that backed out on a
real trigger, a backout whose step retried and whose check needed its window, a failed
backout, a resumed run; and `--check` against a store whose journal was edited."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from backout import commands
from backout.cli import cli
from backout.commands.report import report, report_check
from backout.errors import NotFound, UsageError
from backout.kernel.events import Event
from backout.postmortem import SECTIONS
from backout.store.models import EventRow
from tests.callers import caller
from tests.integration.test_deploy import fail_when_stage_starts, layout
from tests.integration.test_deploy import settings as deploy_settings
from tests.integration.test_engine import settings, write_plan

CITE = re.compile(r"\[(#\d+(?:, #\d+)*)\]")
SECRET = "hunter2-never-printed"


def timeline_seqs(markdown: str) -> list[int]:
    """The sequence number each timeline line cites (a line citing none fails)."""
    part = markdown.split("\n## Timeline\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in part.splitlines() if line.startswith("- ")]
    found = [re.search(r"\[#(\d+)\]", line) for line in lines]
    assert all(found), [line for line, hit in zip(lines, found, strict=True) if not hit]
    return [int(hit.group(1)) for hit in found if hit]


def assert_golden(markdown: str, events: list[Event]) -> None:
    """Every section is there, the timeline is the journal (every event, in order, each
    line citing its own sequence number), and every citation names a real event."""
    for section in SECTIONS:
        assert f"\n## {section}\n" in markdown, section
    assert timeline_seqs(markdown) == [e.seq for e in events]
    seqs = {e.seq for e in events}
    cited = {int(n.strip("# ")) for group in CITE.findall(markdown) for n in group.split(",")}
    assert cited <= seqs, cited - seqs
    assert "**Status: DRAFT**" in markdown


def md_of(url: str, run_id: str) -> str:
    text = report(caller(settings(url)), run_id, "md").text
    assert text is not None
    return text


def test_a_deploy_that_backed_out_on_a_trigger(store_url: str, tmp_path: Path) -> None:
    plan = layout(tmp_path, hold=["60s", "600ms"], stages=2)
    who = caller(deploy_settings(store_url))
    commands.snapshot(who, plan, telemetry_window=0.3)
    fail_when_stage_starts(tmp_path, 1)
    run = commands.deploy(who, plan, release="v2")
    assert (run.status, run.result) == ("succeeded", "backed_out")
    events = commands.journal(who, run.run_id)

    markdown = md_of(store_url, run.run_id)
    assert_golden(markdown, events)
    fired = next(e for e in events if e.kind == "trigger_fired")
    assert "Trigger 'errors above 5' (threshold) fired at" in markdown
    assert f"[#{fired.seq}]" in markdown.split("## Trigger and detection")[1]
    assert "was backed out after trigger 'errors above 5' fired" in markdown
    assert "Before: 0 " in markdown  # the snapshot's reading of the signal
    assert "| 1 | stage 1: shift 1 | forward | succeeded |" in markdown
    assert "| 3 | undo stage 2: shift 2 | reverse | skipped |" in markdown
    assert "| 4 | undo stage 1: shift 1 | reverse | succeeded |" in markdown
    assert "detection → restored:" in markdown
    assert "Authors | deployer |" in markdown

    document = json.loads(report(who, run.run_id, "json").text or "")
    assert document["format"] == "backout-report/1"
    assert [p["value"] for p in document["signal"]["points"]][-1] == 50.0
    assert document["signal"]["limit_label"] == "above 5"
    assert document["seal"]["journal_events"] == len(events)


def test_retries_and_a_check_that_needed_its_window(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPORT_TEST_TOKEN", SECRET)
    plan = write_plan(
        tmp_path,
        f"""
        plan: p
        service: svc
        owner: team-a
        rto: 1m
        secrets:
          token: {{env: REPORT_TEST_TOKEN}}
        steps:
          - name: flaky
            run: [sh, -c, 'echo "$REPORT_TEST_TOKEN"; echo x >> tries; test $(wc -l < tries) -ge 3']
            retries: 3
            retry_delay: 50ms
            idempotent: true
          - name: start the poller
            run: [sh, -c, '(sleep 0.4; touch ready) >/dev/null 2>&1 &']
        verify:
          - name: ready ({SECRET})
            command: [test, -e, ready]
            within: 10s
            interval: 100ms
        """,
    )
    run = commands.run(caller(settings(store_url)), plan)
    assert run.status == "succeeded", run.message
    events = commands.journal(caller(settings(store_url)), run.run_id)
    markdown = md_of(store_url, run.run_id)
    assert_golden(markdown, events)
    lucky = markdown.split("### Where we got lucky")[1].split("\n## ")[0]
    retries = [e.seq for e in events if e.kind == "step_retrying"]
    assert "step 1 'flaky' needed 3 attempts before it succeeded" in lucky
    assert f"[{', '.join(f'#{s}' for s in retries)}]" in lucky
    assert "verify check 1 'ready (\\*\\*\\*)' passed only after" in lucky
    assert "of its within: window of 10.0s" in lucky
    assert "_TODO(team-a): " in lucky
    assert "No trigger fired: the backout was started by hand by tester." in markdown
    assert "was backed out by hand; the backout finished and was verified in" in markdown
    assert "No telemetry was recorded for this run" in markdown
    assert "within the plan's RTO of 1m 00s" in markdown
    for fmt in ("md", "html", "json"):
        assert SECRET not in (report(caller(settings(store_url)), run.run_id, fmt).text or "")


def test_a_failed_backout(store_url: str, tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path,
        """
        plan: p
        steps:
          - name: breaks
            run: [sh, -c, 'echo boom; exit 3']
          - name: never
            run: [touch, never.txt]
        """,
    )
    run = commands.run(caller(settings(store_url)), plan)
    assert run.status == "failed"
    events = commands.journal(caller(settings(store_url)), run.run_id)
    markdown = md_of(store_url, run.run_id)
    assert_golden(markdown, events)
    assert "and the backout FAILED: step 1 'breaks' failed: exit code 3" in markdown
    wrong = markdown.split("### What went wrong")[1].split("### ")[0]
    assert "step 1 'breaks' failed: exit code 3" in wrong
    assert "the backout failed:" in wrong
    assert "| 2 | never | backout | pending | 0 |" in markdown
    assert "find why step 1 'breaks' failed on its first attempt" in markdown


def _killed_run(url: str, tmp_path: Path) -> str:
    """A `backout run` SIGKILLed after step 1 finished: interrupted, to be resumed."""
    plan = write_plan(
        tmp_path,
        """
        plan: p
        steps:
          - name: one
            run: [touch, one.txt]
          - name: two
            run: [touch, two.txt]
        """,
    )
    env = {**os.environ, "BACKOUT_DATABASE_URL": url, "BACKOUT_FAILPOINTS": "step_finished:1"}
    done = subprocess.run(
        [sys.executable, "-m", "backout", "run", str(plan)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    [row] = commands.runs(caller(settings(url)))
    return row.run_id


def test_a_run_in_progress_then_resumed(store_url: str, tmp_path: Path) -> None:
    run_id = _killed_run(store_url, tmp_path)
    who = caller(settings(store_url))
    early = report(who, run_id, "md", tmp_path / "early.md")
    assert early.in_progress
    text = (tmp_path / "early.md").read_text()
    assert "the run is still in progress (running); this draft will change" in text
    assert "is still in progress (status running)" in text
    assert report_check(who, tmp_path / "early.md").ok

    finished = commands.resume(who, run_id)
    assert finished.status == "succeeded"
    events = commands.journal(who, run_id)
    markdown = md_of(store_url, run_id)
    assert_golden(markdown, events)
    resumed = next(e for e in events if e.kind == "run_resumed")
    assert f"[#{resumed.seq}] run resumed by tester" in markdown
    lucky = markdown.split("### Where we got lucky")[1]
    assert "the run was interrupted and resumed by tester" in lucky
    assert "find why the run's executor stopped before the end" in markdown

    stale = report_check(who, tmp_path / "early.md")
    assert not stale.ok
    assert "the run went on after the report" in stale.differences[0]


def test_check_fails_once_a_journal_row_is_edited(store_url: str, tmp_path: Path) -> None:
    plan = write_plan(tmp_path, "plan: p\nsteps:\n  - name: one\n    run: ['true']\n")
    who = caller(settings(store_url))
    run = commands.run(who, plan)
    runner = CliRunner()
    base = ["--db", store_url]
    for fmt in ("md", "html", "json"):
        out = tmp_path / f"report.{fmt}"
        made = runner.invoke(cli, [*base, "report", run.run_id, "--format", fmt, "-o", str(out)])
        assert made.exit_code == 0, made.output
        checked = runner.invoke(cli, [*base, "report", "--check", str(out)])
        assert checked.exit_code == 0, checked.output
        assert "matches the store" in checked.output

    with who.store.session() as session:
        session.execute(
            update(EventRow)
            .where(EventRow.run_id == run.run_id, EventRow.seq == 4)
            .values(data={"outcome": "succeeded", "summary": "edited afterwards"})
        )
    for fmt in ("md", "html", "json"):
        checked = runner.invoke(cli, [*base, "report", "--check", str(tmp_path / f"report.{fmt}")])
        assert checked.exit_code == 1, checked.output
        assert "journal rows were edited, added or deleted since the report" in checked.output


def test_bad_input(store_url: str, tmp_path: Path) -> None:
    who = caller(settings(store_url))
    commands.run(who, write_plan(tmp_path, "plan: p\nsteps:\n  - name: one\n    run: ['true']\n"))
    with pytest.raises(NotFound, match="no run 'nope'"):
        report(who, "nope")
    stranger = tmp_path / "notes.md"
    stranger.write_text("# notes\n<!-- nothing -->\n")
    with pytest.raises(UsageError, match="not a backout report"):
        report_check(who, stranger)
    runner = CliRunner()
    for args in (["report", "nope"], ["report", "--check", str(stranger)], ["report"]):
        result = runner.invoke(cli, ["--db", store_url, *args])
        assert result.exit_code == 2, result.output
        assert "error:" in result.output


def test_check_of_a_run_that_is_gone(tmp_path: Path) -> None:
    first = f"sqlite:///{tmp_path / 'a.db'}"
    run = commands.run(
        caller(settings(first)),
        write_plan(tmp_path, "plan: p\nsteps:\n  - {name: one, run: ['true']}\n"),
    )
    report(caller(settings(first)), run.run_id, "md", tmp_path / "r.md")
    other = caller(settings(f"sqlite:///{tmp_path / 'b.db'}"))
    gone = report_check(other, tmp_path / "r.md")
    assert not gone.ok
    assert gone.exit_code == 1
    assert f"run {run.run_id} is not in this store" in gone.differences[0]
