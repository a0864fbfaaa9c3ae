"""The journal folds each event into the run's view in place, copying only what the event
touches (no deep copy of the whole run per event). Whatever the shortcut, the view must be
the one a from-scratch fold of the same events gives, after every event of real journals
(runs that succeed, retry, fail, verify, and resume after a crash), and the hooks must see
the view the event leads to, while a refused or failed write leaves the view untouched."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from backout import commands
from backout.engine import runner
from backout.engine.journal import Journal
from backout.engine.runner import Execution, empty_view, plan_of
from backout.engine.view import RunView, apply, fold, trial
from backout.errors import TransitionError
from backout.kernel.events import Event, EventKind
from backout.redact import Redactor
from backout.settings import Settings
from backout.store import repo
from tests.callers import caller

PLANS = {
    "succeeds": """
        plan: fold-ok
        steps:
          - name: one
            run: [sh, -c, 'echo one >> out.txt']
          - name: two
            run: [sh, -c, 'echo two >> out.txt']
            retries: 1
            retry_delay: 100ms
          - name: three
            wait: {delay: 0s}
        verify:
          - name: both ran
            command: [grep, -q, two, out.txt]
          - name: three is not there
            command: [sh, -c, '! grep -q three out.txt']
    """,
    "retries then fails": """
        plan: fold-fail
        steps:
          - name: flaky
            run: [sh, -c, 'echo x >> tries.txt; test $(wc -l < tries.txt) -ge 2']
            retries: 2
            retry_delay: 100ms
          - name: broken
            run: [sh, -c, 'exit 3']
            on_failure: continue
          - name: never
            run: ['false']
        verify:
          - name: fails
            command: ['false']
    """,
}
CRASHED = """
    plan: fold-crash
    steps:
      - name: first
        run: [sh, -c, 'echo 1 >> out.txt']
      - name: not idempotent
        run: [sh, -c, 'echo 2 >> out.txt']
      - name: last
        run: [sh, -c, 'echo 3 >> out.txt']
        idempotent: true
"""


def settings(url: str) -> Settings:
    return Settings(database_url=url, actor="tester", lease_ttl=5.0)


def write(folder: Path, body: str) -> Path:
    path = folder / "plan.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def from_scratch(url: str, run_id: str) -> tuple[RunView, list[Event]]:
    """A new, empty view of the run, and its journal as stored."""
    store = caller(settings(url)).store
    with store.session() as session:
        row = repo.get_run(session, run_id)
        events = repo.load_events(session, row.id)
        plan, _ = plan_of(row)
        return empty_view(row, plan), events


Seen = list[tuple[Event, RunView]]


def recording(monkeypatch: pytest.MonkeyPatch) -> Seen:
    """Every (event, view) the journal's hooks are given from now on, the view copied."""
    seen: Seen = []
    hooks = runner.run_hooks

    def record(session: Session, event: Event, view: RunView) -> None:
        seen.append((event, copy.deepcopy(view)))

    def with_recorder(ex: Execution) -> list[Callable[[Session, Event, RunView], None]]:
        return [*hooks(ex), record]

    monkeypatch.setattr(runner, "run_hooks", with_recorder)
    return seen


def crashed_and_resumed(url: str, folder: Path) -> str:
    """A run killed inside its non-idempotent step 2 (a real SIGKILL), then resumed by
    an operator who marks the step done: a journal with run_resumed and decisions."""
    plan = write(folder, CRASHED)
    env = {**os.environ, "BACKOUT_DATABASE_URL": url, "BACKOUT_FAILPOINTS": "action_done:2"}
    killed = subprocess.run(
        [sys.executable, "-m", "backout", "run", str(plan)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr
    run_id = commands.runs(caller(settings(url)), limit=1)[0].run_id
    first = commands.resume(caller(settings(url)), run_id)
    assert first.status == "needs_attention"
    done = commands.resume(caller(settings(url)), run_id, {1: "done"})
    assert done.status == "succeeded"
    return run_id


@pytest.mark.parametrize("kind", sorted(PLANS))
def test_each_hook_sees_the_view_a_fresh_fold_gives(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    seen = recording(monkeypatch)
    report = commands.run(caller(settings(store_url)), write(tmp_path, PLANS[kind]))
    assert report.status == ("succeeded" if kind == "succeeds" else "failed")
    empty, events = from_scratch(store_url, report.run_id)
    assert [event for event, _ in seen] == events[1:]  # run_created is written on creation
    for event, view in seen:
        assert view == fold(copy.deepcopy(empty), events[: event.seq]), event.kind
    assert seen[-1][1] == fold(copy.deepcopy(empty), events)


@pytest.mark.parametrize("kind", sorted(PLANS))
def test_a_copy_on_touch_fold_equals_a_fresh_fold_after_every_event(
    store_url: str, tmp_path: Path, kind: str
) -> None:
    report = commands.run(caller(settings(store_url)), write(tmp_path, PLANS[kind]))
    empty, events = from_scratch(store_url, report.run_id)
    folds_alike(empty, events)


def test_a_resumed_journal_folds_alike(store_url: str, tmp_path: Path) -> None:
    run_id = crashed_and_resumed(store_url, tmp_path)
    empty, events = from_scratch(store_url, run_id)
    kinds = {event.kind for event in events}
    assert {EventKind.RUN_RESUMED, EventKind.OPERATOR_DECISION} <= kinds
    folds_alike(empty, events)
    assert (tmp_path / "out.txt").read_text() == "1\n2\n3\n"  # step 2 ran once


def folds_alike(empty: RunView, events: list[Event]) -> None:
    """After each event: the copy-on-touch trial, applied, equals the view a from-scratch
    fold gives, and applying it left the view it was copied from as it was."""
    view = copy.deepcopy(empty)
    for index, event in enumerate(events):
        before = copy.deepcopy(view)
        draft = trial(view, event)
        apply(draft, event)
        assert view == before, f"the trial of {event.kind} (seq {event.seq}) changed the view"
        assert draft == fold(copy.deepcopy(empty), events[: index + 1]), event.kind
        apply(view, event)
        assert view == draft


def test_a_refused_or_failed_append_leaves_the_view_as_it_was(
    store_url: str, tmp_path: Path
) -> None:
    report = commands.run(caller(settings(store_url)), write(tmp_path, PLANS["succeeds"]))
    store = caller(settings(store_url)).store
    empty, events = from_scratch(store_url, report.run_id)

    def failing(session: Session, event: Event, view: Any) -> None:
        raise RuntimeError("a hook failed")

    journal = Journal.open(store, empty, Redactor(), hooks=[failing])
    before = copy.deepcopy(journal.view)
    with pytest.raises(TransitionError):  # a finished run cannot start a step again
        journal.append(EventKind.STEP_STARTED, step=0, attempt=9)
    assert journal.view == before
    with pytest.raises(RuntimeError, match="a hook failed"):
        journal.append(EventKind.WARNING, message="not written")
    assert journal.view == before
    assert len(from_scratch(store_url, report.run_id)[1]) == len(events)


def test_events_appended_together_are_written_all_or_none(store_url: str, tmp_path: Path) -> None:
    """A trigger's verdict and the backout it starts go in one transaction: a failure while
    writing the second leaves neither; written, they follow each other with one time."""
    report = commands.run(caller(settings(store_url)), write(tmp_path, PLANS["succeeds"]))
    store = caller(settings(store_url)).store
    empty, events = from_scratch(store_url, report.run_id)

    def fails_on_the_second(session: Session, event: Event, view: Any) -> None:
        if event.data.get("n") == 2:
            raise RuntimeError("the second failed")

    journal = Journal.open(store, empty, Redactor(), hooks=[fails_on_the_second])
    before = copy.deepcopy(journal.view)
    with pytest.raises(RuntimeError, match="the second failed"):
        journal.append_together((EventKind.WARNING, {"n": 1}), (EventKind.WARNING, {"n": 2}))
    assert journal.view == before
    assert len(from_scratch(store_url, report.run_id)[1]) == len(events)  # not even the first

    first, second = journal.append_together(
        (EventKind.WARNING, {"n": 1}), (EventKind.WARNING, {"n": 3})
    )
    assert (first.seq, second.seq) == (events[-1].seq + 1, events[-1].seq + 2)
    assert first.at == second.at
    fresh, written = from_scratch(store_url, report.run_id)
    assert [e.data for e in written[-2:]] == [{"n": 1}, {"n": 3}]
    assert journal.view == fold(fresh, written)
