"""A step whose kind acts only through the programs it starts journals its start with its
first process, in one transaction (one disk flush less a step); every other kind journals
its start on its own, before it acts."""

from __future__ import annotations

from pathlib import Path

from backout import commands
from backout.kernel.events import Event
from backout.settings import Settings
from tests.callers import caller

PLAN = """\
plan: starts
service: starts
steps:
  - name: a program
    run: ["sh", "-c", "echo ran >> ran.txt"]
  - name: no program
    wait: {delay: 0s}
  - name: a program that is not there
    run: ["./missing-program"]
    on_failure: continue
  - name: after
    run: ["true"]
"""


def step_events(events: list[Event], step: int) -> list[Event]:
    return [e for e in events if e.step == step and e.kind.startswith("step_")]


def test_a_programs_start_is_journalled_with_its_process(store_url: str, tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    me = caller(Settings(database_url=store_url, actor="t"))
    result = commands.run(me, plan)
    events = commands.journal(me, result.run_id)

    # 1. run: start and process in one transaction (one time, consecutive), then the end
    started, process, finished = step_events(events, 0)
    assert [started.kind, process.kind, finished.kind] == [
        "step_started",
        "step_process",
        "step_finished",
    ]
    assert process.seq == started.seq + 1
    assert process.at == started.at  # the same append
    assert finished.at > process.at
    assert (tmp_path / "ran.txt").read_text() == "ran\n"  # and the program ran once

    # 2. no program: the start is its own append, before the step acts
    started, finished = step_events(events, 1)
    assert [started.kind, finished.kind] == ["step_started", "step_finished"]
    assert finished.at > started.at

    # 3. a program that never started: its start is written with its end, and nothing else
    started, finished = step_events(events, 2)
    assert [started.kind, finished.kind] == ["step_started", "step_finished"]
    assert finished.at == started.at
    assert finished.seq == started.seq + 1
    assert finished.data["outcome"] == "failed"

    # every step ran, in order, each started once
    assert [e.step for e in events if e.kind == "step_started"] == [0, 1, 2, 3]
    assert events[-1].data["outcome"] == "succeeded"
