"""A step that succeeds, when the next step follows at once, has its ``step_finished``
written in that step's first transaction: one disk flush a step, not two. The last step's
end, a failed step's end, and an end whose next step never starts are written too, and
nothing is written twice or out of order."""

from __future__ import annotations

from pathlib import Path

import pytest

from backout import commands
from backout.engine.view import RunView
from backout.kernel.events import Event
from backout.settings import Settings
from tests.callers import caller

PLAN = """\
plan: held
service: held
steps:
  - name: a program
    run: ["true"]
  - name: no program
    wait: {delay: 0s}
  - name: a program again
    run: ["true"]
  - name: fails, the run goes on
    run: ["false"]
    on_failure: continue
  - name: last
    run: ["true"]
"""


class InStore:
    """An observer that notes, for each step's end it is shown, what the store held at
    that moment (the observer is called once the event's transaction committed)."""

    def __init__(self, store_url: str) -> None:
        self.me = caller(Settings(database_url=store_url, actor="t"))
        self.at_end: dict[int, list[tuple[str, int | None]]] = {}

    def __call__(self, event: Event, view: RunView) -> None:
        if event.kind == "step_finished" and event.step is not None:
            stored = commands.journal(self.me, view.run_id)
            self.at_end[event.step] = [(e.kind, e.step) for e in stored]


def test_a_steps_end_is_written_with_the_next_steps_start(store_url: str, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    seen = InStore(store_url)
    result = commands.run(seen.me, plan, observer=seen)
    assert result.status == "succeeded"
    events = commands.journal(seen.me, result.run_id)
    kinds = [(e.kind, e.step) for e in events]

    # step 1 (a program), then step 2 (no program): each end came with the next start
    assert ("step_started", 1) in seen.at_end[0]
    assert ("step_started", 2) in seen.at_end[1]
    assert ("step_process", 2) in seen.at_end[1]
    # ... in one transaction: consecutive numbers
    for step in (0, 1):
        end = next(e for e in events if e.kind == "step_finished" and e.step == step)
        start = next(e for e in events if e.kind == "step_started" and e.step == step + 1)
        assert start.seq == end.seq + 1
    # a failed step's end is written on its own, before the next step starts
    assert ("step_finished", 3) in seen.at_end[3]
    assert ("step_started", 4) not in seen.at_end[3]
    # the last step's end is written on its own, before the run's end
    assert ("step_finished", 4) in seen.at_end[4]
    assert ("run_finished", None) not in seen.at_end[4]

    # each step started and ended once, in order; the journal has no gap
    assert [s for k, s in kinds if k == "step_started"] == [0, 1, 2, 3, 4]
    assert [s for k, s in kinds if k == "step_finished"] == [0, 1, 2, 3, 4]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def test_an_end_held_for_a_step_that_never_starts_is_written_with_its_failure(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Step 2's options fail to render: nothing of it starts, and step 1's end is written
    with step 2's failure, so the journal still says step 1 finished."""
    monkeypatch.delenv("BACKOUT_TEST_NEVER_SET", raising=False)
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "plan: held\nservice: held\nsteps:\n"
        "  - name: first\n    run: ['sh', '-c', 'echo ran >> ran.txt']\n"
        "  - name: bad template\n    run: ['echo', '{{ env.BACKOUT_TEST_NEVER_SET }}']\n"
    )
    me = caller(Settings(database_url=store_url, actor="t"))
    result = commands.run(me, plan)
    assert result.status == "failed"
    events = commands.journal(me, result.run_id)
    ends = [e for e in events if e.kind == "step_finished"]
    assert [(e.step, e.data["outcome"]) for e in ends] == [(0, "succeeded"), (1, "failed")]
    assert ends[1].data["started"] is False
    assert ends[1].seq == ends[0].seq + 1  # one transaction
    assert (tmp_path / "ran.txt").read_text() == "ran\n"
