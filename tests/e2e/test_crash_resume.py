"""SIGKILL a real `backout run` at every step boundary and inside every step, then resume.

Shown on SQLite and PostgreSQL: every run finishes, no non-idempotent step's side effect
appears twice, and the journal has no gaps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from signal import SIGKILL

import pytest

from backout import commands
from backout.settings import Settings
from tests.callers import caller
from tests.e2e import crash_plan, procs

pytestmark = pytest.mark.slow


def backout(
    url: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "BACKOUT_DATABASE_URL": url, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "backout", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=120,
    )


def only_run_id(url: str) -> str:
    runs = commands.runs(caller(Settings(database_url=url)))
    assert len(runs) == 1
    return str(runs[0].run_id)


def finish(url: str, run_id: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """Resume; when the run needs attention, decide as an operator would: look at the system."""
    result = backout(url, "resume", run_id, "--json")
    if result.returncode == 3:
        status = json.loads(result.stdout)
        stuck = next(s for s in status["steps"] if s["status"] == "running")
        took_effect = stuck["number"] in crash_plan.side_effects(folder)
        decision = "--mark-done" if took_effect else "--retry"
        assert not crash_plan.IDEMPOTENT[stuck["number"]]
        result = backout(url, "resume", run_id, decision, str(stuck["number"]), "--json")
    return result


def assert_sound(url: str, run_id: str, folder: Path) -> None:
    report = commands.status(caller(Settings(database_url=url)), run_id)
    assert report.status == "succeeded"
    assert [s.status for s in report.steps] == ["succeeded"] * 5
    assert report.verified
    seen = crash_plan.side_effects(folder)
    assert sorted(set(seen)) == [1, 2, 3, 4, 5]
    for number, idempotent in crash_plan.IDEMPOTENT.items():
        if not idempotent:
            assert seen.count(number) == 1, f"non-idempotent step {number} ran twice: {seen}"
    events = commands.journal(caller(Settings(database_url=url)), run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), "journal has a gap"
    assert events[-1].kind == "run_finished"
    finished = [e.step for e in events if e.kind == "step_finished"]
    assert sorted(finished) == [0, 1, 2, 3, 4], "each step finished exactly once"


# Every boundary, at a non-idempotent step (2) and an idempotent one (3): which step it is
# matters to resume only through `idempotent`; then the boundaries of verify and finish.
FAILPOINTS = [
    f"{point}:{n}"
    for n in (2, 3)
    for point in ("before_step", "step_started", "action_done", "step_finished")
]
FAILPOINTS += ["step_finished:5", "verify_started", "check_finished:1", "before_finish"]


@pytest.mark.parametrize("failpoint", FAILPOINTS)
def test_sigkill_at_failpoint_then_resume(store_url: str, tmp_path: Path, failpoint: str) -> None:
    plan = crash_plan.write(tmp_path)
    killed = backout(store_url, "run", str(plan), env={"BACKOUT_FAILPOINTS": failpoint})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run_id = only_run_id(store_url)
    result = finish(store_url, run_id, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_sound(store_url, run_id, tmp_path)


@pytest.mark.parametrize("step", [1, 2, 3])
def test_sigkill_from_outside_inside_a_step_then_resume(
    store_url: str, tmp_path: Path, step: int
) -> None:
    plan = crash_plan.write(tmp_path)
    env = {**os.environ, "BACKOUT_DATABASE_URL": store_url, "SLOW_STEP": str(step)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "backout", "run", str(plan)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    step_pid = int(procs.wait_for_file(tmp_path / f"inside-{step}"))
    proc.send_signal(SIGKILL)
    assert proc.wait(10) == -SIGKILL
    try:  # the step dies with its executor: nothing runs on unobserved
        assert procs.wait_gone(step_pid), "the step's process outlived its executor"
    finally:
        procs.kill_group_of(step_pid)
    run_id = only_run_id(store_url)
    result = finish(store_url, run_id, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_sound(store_url, run_id, tmp_path)


def test_interrupted_non_idempotent_step_needs_attention(store_url: str, tmp_path: Path) -> None:
    plan = crash_plan.write(tmp_path)
    backout(store_url, "run", str(plan), env={"BACKOUT_FAILPOINTS": "action_done:2"})
    run_id = only_run_id(store_url)
    result = backout(store_url, "resume", run_id)
    assert result.returncode == 3
    assert "step 2 'step 2' was interrupted and is not idempotent" in result.stderr
    assert f"backout resume {run_id} --mark-done 2" in result.stderr
    assert crash_plan.side_effects(tmp_path) == [1, 2]  # nothing ran again on its own
    assert (
        commands.status(caller(Settings(database_url=store_url)), run_id).status
        == "needs_attention"
    )
