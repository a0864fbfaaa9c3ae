"""A watch rehearses its verdict's transaction before it says it watches (Journal.rehearse):
every statement of ``trigger_fired`` + ``backout_started`` and their hooks runs once and is
rolled back, so the real verdict runs compiled. Nothing of the rehearsal is kept: no journal
event, no audit record, no incident; the verdict, when it comes, is written once."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from backout import commands
from backout.settings import Settings
from tests.callers import caller
from tests.services import wait_until

PLAN = """\
plan: rehearsed
service: rehearsed
triggers:
  - name: paged
    alertmanager: {match: {service: rehearsed}}
steps:
  - name: back out
    wait: {delay: 0s}
"""


def watching(url: str) -> str | None:
    me = caller(Settings(database_url=url, actor="t"))
    newest = commands.runs(me, "rehearsed", limit=1)
    if not newest or newest[0].status != "running":
        return None
    kinds = [e.kind for e in commands.journal(me, newest[0].run_id)]
    return newest[0].run_id if "watch_started" in kinds else None


def test_a_watch_rehearses_its_verdict_and_keeps_nothing_of_it(
    store_url: str, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    me = caller(Settings(database_url=store_url, actor="watcher"))
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(" ".join(statement.split()[:3]).upper())

    seen_while_watching: dict[str, Any] = {}

    def look_then_trigger() -> None:
        try:
            wait_until(lambda: watching(store_url) is not None, 30, "the watch to start")
            run_id = watching(store_url)
            seen_while_watching["statements"] = list(statements)
            seen_while_watching["kinds"] = [e.kind for e in commands.journal(me, run_id)]
            seen_while_watching["incidents"] = commands.incidents(me, "rehearsed")
            seen_while_watching["audit"] = [
                a.action for a in commands.audit_log(me, subject=f"run:{run_id}")
            ]
        finally:
            commands.trigger(me, "rehearsed", "looks bad")

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        thread = threading.Thread(target=look_then_trigger, daemon=True)
        thread.start()
        report = commands.watch(me, plan, 60)
        thread.join(30)
    finally:
        event.remove(Engine, "before_cursor_execute", seen)

    assert report.result == "backed_out"
    # rehearsed: the status page's incident was opened (and rolled back) before any trigger
    assert "INSERT INTO INCIDENTS" in seen_while_watching["statements"]
    assert "trigger_fired" not in seen_while_watching["kinds"]
    assert "backout_started" not in seen_while_watching["kinds"]
    assert seen_while_watching["incidents"] == []
    assert not any("trigger" in a for a in seen_while_watching["audit"])
    # the real verdict: written once, its seqs following the journal without a gap
    events = commands.journal(me, report.run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    kinds = [e.kind for e in events]
    assert kinds.count("trigger_fired") == 1
    assert kinds.count("backout_started") == 1
    assert kinds.index("watch_started") < kinds.index("trigger_fired")
    assert len(commands.incidents(me, "rehearsed")) == 1
