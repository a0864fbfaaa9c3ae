"""A run's journal events enter the outbox without a change record: the routes a run was
started with are kept with the run, each chosen event is queued in the journal's own
transaction, keyed by run and sequence (queuing one again is the same row)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from backout import commands
from backout.errors import UsageError
from backout.settings import Settings
from tests.callers import caller

PLAN = """
plan: p
service: shop
steps:
  - name: one
    run: [sh, -c, 'echo one >> out.txt']
  - name: flaky
    run: [sh, -c, 'test -f ok']
    timeout: 5s
    on_failure: stop
"""


def test_run_events_are_queued_once_for_their_route(store_url: str, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(textwrap.dedent(PLAN))
    me = caller(Settings(database_url=store_url, actor="tester", lease_ttl=5.0))
    routes = {"ops": ["run_started", "step_finished", "run_resumed", "run_finished"]}

    first = commands.run(me, plan, outbound=routes)
    assert first.status == "failed"
    (tmp_path / "ok").touch()
    queued_before = commands.outbox_list(me, route="ops")
    again = commands.resume(me, first.run_id)  # finished: nothing runs, nothing is queued
    assert again.status == "failed"
    assert len(commands.outbox_list(me, route="ops")) == len(queued_before)

    rows = sorted(commands.outbox_list(me, route="ops"), key=lambda r: r.id)
    journal = commands.journal(me, first.run_id)
    wanted = [e for e in journal if e.kind in routes["ops"]]
    assert [r.event for r in rows] == [e.kind for e in wanted]
    assert {r.run_id for r in rows} == {first.run_id}
    assert {r.change_id for r in rows} == {None}
    assert {r.stream for r in rows} == {f"run:{first.run_id}"}
    assert [r.key for r in rows] == [f"backout-ops-run-{first.run_id}-{e.seq}" for e in wanted]
    assert commands.outbox_list(me, route="itsm") == []  # no other route gets anything


def test_a_route_for_an_event_that_does_not_exist_is_refused(
    store_url: str, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(textwrap.dedent(PLAN))
    me = caller(Settings(database_url=store_url, actor="tester"))
    with pytest.raises(UsageError) as refused:
        commands.run(me, plan, outbound={"ops": ["run_exploded"]})
    assert "route 'ops': no journal event is called run_exploded" in refused.value.message
    assert commands.runs(me) == []  # refused before a run was created
