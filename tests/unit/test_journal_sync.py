"""What is synced when: every write is synced except the journal events whose loss a resume
handles (docs/operations.md), and a journal never gets a gap, even after a database lost
an unsynced commit."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from backout import commands
from backout.engine.journal import UNSYNCED
from backout.errors import StoreError
from backout.kernel.events import Event, EventKind
from backout.kernel.states import RunStatus
from backout.settings import Settings
from backout.store import repo
from backout.store.db import Store
from backout.store.models import RunRow
from tests.callers import caller


def level(session: Session, store: Store) -> str:
    """How this transaction's commit is synced, as the database says."""
    if store.is_sqlite:
        number = session.execute(text("PRAGMA synchronous")).scalar_one()
        return {1: "unsynced", 2: "synced"}[int(number)]
    value = session.execute(text("SHOW synchronous_commit")).scalar_one()
    return {"off": "unsynced", "on": "synced"}[str(value)]


def test_a_session_is_synced_unless_asked_not_to_be(store_url: str) -> None:
    store = Store(store_url)
    try:
        for _ in range(2):  # the same pooled connection switches back and forth
            with store.session() as session:
                assert level(session, store) == "synced"
            with store.session(synced=False) as session:
                assert level(session, store) == "unsynced"
        with store.session() as session:
            assert level(session, store) == "synced"
    finally:
        store.dispose()


def test_only_events_whose_loss_a_resume_handles_go_unsynced() -> None:
    """The write-ahead records, and anything people or the outbox act on, are synced."""
    assert {
        EventKind.STEP_STARTED,
        EventKind.STEP_PROCESS,
        EventKind.RUN_STARTED,
        EventKind.RUN_RESUMED,
        EventKind.RUN_FINISHED,
        EventKind.RUN_NEEDS_ATTENTION,
        EventKind.RUN_STOPPED,
        EventKind.OPERATOR_DECISION,
        EventKind.TRIGGER_FIRED,
        EventKind.BACKOUT_STARTED,
        EventKind.STEP_FINISHED,  # a finished step is never taken for an interrupted one
        EventKind.STEP_RETRYING,
    }.isdisjoint(UNSYNCED)
    assert {EventKind.CHECK_FINISHED, EventKind.TRIGGER_EVALUATED} <= UNSYNCED


def test_an_event_after_a_gap_is_refused_and_nothing_is_written(
    store_url: str, tmp_path: Path
) -> None:
    """As if the database had lost event N (an unsynced commit) while backout lived on."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        textwrap.dedent(
            """
            plan: gap
            steps:
              - name: one
                run: ['true']
            """
        )
    )
    me = caller(Settings(database_url=store_url, actor="tester", lease_ttl=5.0))
    report = commands.run(me, plan)
    with me.store.session() as session:
        events = repo.load_events(session, report.run_id)
    last = events[-1].seq
    skipped = Event(report.run_id, last + 2, time.time(), EventKind.WARNING, data={})
    refused = pytest.raises(StoreError, match=f"has no event {last + 1} to follow")
    with refused, me.store.session() as session:
        repo.append_event(session, skipped, RunStatus.SUCCEEDED, "", None)
    with me.store.session() as session:
        assert [e.seq for e in repo.load_events(session, report.run_id)] == [e.seq for e in events]
    following = Event(report.run_id, last + 1, time.time(), EventKind.WARNING, data={})
    with me.store.session() as session:
        repo.append_event(session, following, RunStatus.SUCCEEDED, "", None)
    assert commands.status(me, report.run_id).status == "succeeded"


def test_events_written_together_update_the_run_once_and_never_after_a_gap(
    store_url: str, tmp_path: Path
) -> None:
    """``append_events``: the rows, then one projection as the last event leaves the run;
    a batch whose first event does not follow the journal is refused whole."""
    plan = tmp_path / "plan.yaml"
    plan.write_text("plan: batch\nsteps:\n  - name: one\n    run: ['true']\n")
    me = caller(Settings(database_url=store_url, actor="tester", lease_ttl=5.0))
    report = commands.run(me, plan)
    with me.store.session() as session:
        last = repo.load_events(session, report.run_id)[-1].seq

    def batch(first: int) -> list[Event]:
        return [
            Event(report.run_id, seq, time.time(), EventKind.WARNING, data={"n": seq})
            for seq in (first, first + 1)
        ]

    gap = pytest.raises(StoreError, match=f"has no event {last + 1} to follow")
    with gap, me.store.session() as session:
        repo.append_events(session, batch(last + 2), RunStatus.FAILED, "x", None)
    updates: list[str] = []

    def count(conn: object, cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE RUNS"):
            updates.append(statement)

    event.listen(me.store.engine, "before_cursor_execute", count)
    try:
        with me.store.session() as session:
            repo.append_events(session, batch(last + 1), RunStatus.FAILED, "batched", 1.0)
    finally:
        event.remove(me.store.engine, "before_cursor_execute", count)
    assert len(updates) == 1
    with me.store.session() as session:
        seqs = [e.seq for e in repo.load_events(session, report.run_id)]
        projected = session.get(RunRow, report.run_id)
        assert projected is not None
        assert (projected.status, projected.message) == ("failed", "batched")
    assert seqs[-3:] == [last, last + 1, last + 2]
