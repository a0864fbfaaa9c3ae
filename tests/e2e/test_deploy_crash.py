"""SIGKILL a real `backout deploy` mid-stage and mid-backout, then resume: the deploy goes on
from where the journal says, and an interrupted reverse step is never run twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from backout import commands
from backout.settings import Settings
from tests.callers import caller
from tests.integration.test_deploy import fail_when_stage_starts, layout

pytestmark = pytest.mark.slow


def backout(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backout", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "BACKOUT_DATABASE_URL": url, **env},
        timeout=120,
        check=False,
    )


def test_killed_after_a_forward_step_resumes_to_promotion(store_url: str, tmp_path: Path) -> None:
    plan = layout(tmp_path, hold="200ms", stages=3)
    commands.snapshot(caller(Settings(database_url=store_url)), plan, telemetry_window=0.3)
    killed = backout(store_url, "deploy", str(plan), BACKOUT_FAILPOINTS="step_finished:2")
    assert killed.returncode == -signal.SIGKILL
    run_id = commands.runs(caller(Settings(database_url=store_url)))[0].run_id
    resumed = backout(store_url, "resume", run_id)
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "stages.txt").read_text().split() == ["1", "2", "3"]
    report = commands.status(caller(Settings(database_url=store_url)), run_id)
    assert report.result == "promoted"


def test_killed_inside_a_reverse_step_needs_a_decision(store_url: str, tmp_path: Path) -> None:
    # stage 2 holds long: the trigger fires in it however busy the machine is
    plan = layout(tmp_path, hold=["200ms", "60s", "200ms", "200ms"], stages=4)
    commands.snapshot(caller(Settings(database_url=store_url)), plan, telemetry_window=0.3)
    fail_when_stage_starts(tmp_path, 2)
    # units: 1-4 forward, 5-8 undo stages 4..1, 9 the plan's step; 7 is "undo stage 2"
    killed = backout(store_url, "deploy", str(plan), BACKOUT_FAILPOINTS="action_done:7")
    assert killed.returncode == -signal.SIGKILL
    assert (tmp_path / "stages.txt").read_text().split("\n")[:-1] == ["1", "2", "undo 2"]
    run_id = commands.runs(caller(Settings(database_url=store_url)))[0].run_id
    attention = backout(store_url, "resume", run_id)
    assert attention.returncode == 3
    assert f"backout resume {run_id} --mark-done 7" in attention.stderr
    done = backout(store_url, "resume", run_id, "--mark-done", "7")
    assert done.returncode == 4, done.stderr  # backed out and verified
    assert (tmp_path / "stages.txt").read_text().split("\n")[:-1] == ["1", "2", "undo 2", "undo 1"]
    events = commands.journal(caller(Settings(database_url=store_url)), run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
