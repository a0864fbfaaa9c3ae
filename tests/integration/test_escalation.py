"""Escalation by role and update reminders, on SQLite and PostgreSQL, with the clock
moved by the test (``run_timers(now=…)``), never slept: a failed backout calls on its
escalation levels as their `after` passes, each once however often the timers run, until
`backout ack`; the comms role is reminded when an update is due, and the first update's
delay is recorded. The notices reach a stand-in receiver with the roles' mentions."""

from __future__ import annotations

from pathlib import Path

import pytest

from backout import commands
from backout.kernel.events import Event, EventKind
from backout.notify import run_timers, waiting
from backout.settings import Settings
from tests.callers import caller
from tests.receivers import WEBHOOK_SECRET, stand_ins


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_HOOK_SECRET", WEBHOOK_SECRET)


def write_plan(folder: Path, url: str) -> Path:
    plan = folder / "plan.yaml"
    plan.write_text(
        f"""plan: escalated
secrets:
  hook_secret: {{env: TEST_HOOK_SECRET}}
steps:
  - name: switch back
    run: ["false"]
notify:
  channels:
    feed:
      webhook: {{url: "{url}/hook", secrets: ["{{{{ secrets.hook_secret }}}}"]}}
  routes:
    - events: [run.failed, run.acknowledged, run.updated]
      to: [feed]
  contacts:
    lead: {{feed: "@alice"}}
    manager: {{feed: "@bob"}}
    comms: {{feed: "@carol"}}
  escalation:
    - after: 0s
      roles: [lead]
      to: [feed]
    - after: 10m
      roles: [manager]
      to: [feed]
  updates:
    role: comms
    to: [feed]
    first_within: 5m
    every: 30m
"""
    )
    return plan


def test_a_failed_backout_escalates_until_acknowledged(store_url: str, tmp_path: Path) -> None:
    with stand_ins() as receivers:
        who = caller(Settings(database_url=store_url, actor="ops-bot"))
        report = commands.run(who, write_plan(tmp_path, receivers.url))
        assert report.status == "failed"
        events = commands.journal(who, report.run_id)
        failed_at, started_at = events[-1].at, events[0].at
        assert run_timers(who.store, "ops-bot", failed_at + 1).escalations == 1  # level 1
        assert run_timers(who.store, "ops-bot", failed_at + 2).escalations == 0  # once only
        assert run_timers(who.store, "ops-bot", started_at + 301).reminders == 1
        assert run_timers(who.store, "ops-bot", failed_at + 601).escalations == 1  # level 2
        commands.notify_send(who, timeout=20)
        kinds = [(r.body["type"], r.body["data"]["mentions"]) for r in receivers.of("webhook")]
        assert kinds == [
            ("run.failed", []),
            ("run.escalated", ["@alice"]),
            ("run.update_due", ["@carol"]),
            ("run.escalated", ["@bob"]),
        ]
        escalated = receivers.of("webhook")[3].body["data"]
        assert f"backout ack {report.run_id}" in escalated["text"]
        assert escalated["severity"] == "critical"

        ack = commands.ack(caller(Settings(database_url=store_url, actor="alice")), report.run_id)
        assert ack.waiting_for == "run.failed"
        assert ack.told == ["feed"]
        later = run_timers(who.store, "ops-bot", failed_at + 100_000)
        assert (later.escalations, later.reminders) == (0, 0)  # taken, and so resolved
        commands.notify_send(who, timeout=20)
        last = receivers.of("webhook")[-1].body
        assert last["type"] == "run.acknowledged"
        assert "alice" in last["data"]["title"]
        audit = commands.audit_log(who, action="run.acknowledged")
        assert [(a.actor, a.subject) for a in audit] == [("alice", f"run:{report.run_id}")]


def test_updates_reset_the_reminder_and_the_first_is_timed(store_url: str, tmp_path: Path) -> None:
    with stand_ins() as receivers:
        who = caller(Settings(database_url=store_url, actor="carol"))
        report = commands.run(who, write_plan(tmp_path, receivers.url))
        started_at = commands.journal(who, report.run_id)[0].at
        first = commands.notify_update(who, report.run_id, "rolled back; looking into it")
        assert first.first_update_s is not None
        assert first.first_update_s >= 0
        second = commands.notify_update(who, report.run_id[:8], "still looking")
        assert second.first_update_s is None  # only the first is timed
        # the next reminder is due `every` (30m) after the last update, not before
        assert run_timers(who.store, "carol", second.at + 29 * 60).reminders == 0
        assert run_timers(who.store, "carol", second.at + 31 * 60).reminders == 1
        assert run_timers(who.store, "carol", started_at + 301).reminders == 0  # not overdue
        audit = commands.audit_log(who, action="run.updated")
        assert audit[0].details["first_update_s"] == first.first_update_s
        assert "first_update_s" not in audit[1].details
        commands.notify_send(who, timeout=20)
        texts = [r.body["data"]["text"] for r in receivers.of("webhook")]
        assert "rolled back; looking into it" in texts


def test_an_ack_needs_a_run_and_an_update_a_message(store_url: str, tmp_path: Path) -> None:
    from backout.errors import NotFound, UsageError

    who = caller(Settings(database_url=store_url))
    with pytest.raises(NotFound):
        commands.ack(who, "nosuchrun")
    with pytest.raises(UsageError, match="needs a message"):
        commands.notify_update(who, "whatever", "  ")


def ev(seq: int, kind: EventKind, **data: object) -> Event:
    return Event("r", seq, float(seq), kind, data=dict(data))


def test_what_a_run_waits_for() -> None:
    approval = [ev(1, EventKind.RUN_STARTED), ev(2, EventKind.CHECKPOINT_STARTED, approve=True)]
    found = waiting(approval)
    assert found is not None
    assert (found.reason, found.seq) == ("approval.waiting", 2)
    assert waiting([*approval, ev(3, EventKind.STAGE_APPROVED)]) is None
    stuck = [ev(1, EventKind.RUN_STARTED), ev(2, EventKind.RUN_NEEDS_ATTENTION)]
    assert waiting(stuck) is not None
    assert waiting([*stuck, ev(3, EventKind.RUN_RESUMED)]) is None
    held = [ev(1, EventKind.CHECKPOINT_STARTED, approve=False)]
    assert waiting(held) is None
    done = [ev(1, EventKind.RUN_FINISHED, outcome="succeeded")]
    assert waiting(done) is None
    failed = waiting([ev(1, EventKind.RUN_FINISHED, outcome="failed")])
    assert failed is not None
    assert failed.reason == "run.failed"


def test_ack_and_update_from_the_command_line(store_url: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from backout.cli import cli

    def backout(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli, ["--db", store_url, "--actor", "dana", *args], obj={})
        return result.exit_code, result.output

    with stand_ins() as receivers:
        report = commands.run(
            caller(Settings(database_url=store_url)), write_plan(tmp_path, receivers.url)
        )
        code, said = backout("ack", report.run_id[:6], "--message", "on it")
        assert code == 0, said
        assert f"run {report.run_id} acknowledged by dana (it waited: run.failed)" in said
        code, said = backout("notify", "update", report.run_id, "-m", "restoring from backup")
        assert code == 0, said
        assert "first update," in said
        code, said = backout("notify", "update", report.run_id, "-m", "")
        assert code == 2
        assert "needs a message" in said
        code, said = backout("ack", "zzzz")
        assert code != 0
        assert "no run 'zzzz'" in said


def test_a_follow_sender_escalates_for_a_run_nobody_watches(store_url: str, tmp_path: Path) -> None:
    """The failed run's process is gone: `backout notify send --follow` (a sidecar) sees
    the first level due, delivers it, and stops cleanly on SIGTERM."""
    import os
    import signal
    import subprocess
    import sys

    with stand_ins() as receivers:
        who = caller(Settings(database_url=store_url))
        commands.run(who, write_plan(tmp_path, receivers.url))
        env = {**os.environ, "BACKOUT_DATABASE_URL": store_url}
        sidecar = subprocess.Popen(
            [sys.executable, "-m", "backout", "notify", "send", "--follow", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            escalated = receivers.wait_for("webhook", 2, timeout=60)
        finally:
            sidecar.send_signal(signal.SIGTERM)
            out, errors = sidecar.communicate(timeout=60)
        assert sorted(r.body["type"] for r in escalated) == ["run.escalated", "run.failed"]
        assert sidecar.returncode == 0, errors
        assert '"sent": 2' in out
