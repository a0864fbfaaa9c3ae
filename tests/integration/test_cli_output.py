"""What `backout` prints for real runs (SQLite and PostgreSQL), through the CLI: the retry
line, the journal's JSON step numbers, a healthy watch's and a promoted deploy's table,
`snapshot` on a signal without data, and a resumed step's duration after a SIGKILL."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner, Result

from backout import commands
from backout.cli import cli
from backout.settings import Settings
from tests.callers import caller

RETRIES = """\
plan: web
steps:
  - name: flaky
    run: [sh, -c, 'exit 1']
    retries: 2
    retry_delay: 100ms
    idempotent: true
  - name: after
    run: ['true']
"""

SIGNALS = """\
plan: web
service: web
telemetry:
  quiet:
    command: [sh, -c, 'true']
    interval: 100ms
  rate:
    command: [echo, '0.5']
    interval: 100ms
triggers:
  - name: rate above 5
    signal: rate
    threshold: {above: 5, for: 300ms}
"""

WATCHED = (
    SIGNALS
    + """\
steps:
  - name: switch back
    run: ['true']
  - name: restart
    run: ['true']
verify:
  - name: up
    command: ['true']
"""
)

DEPLOYED = (
    SIGNALS
    + """\
deploy:
  strategy: canary
  stages:
    - name: one
      steps:
        - name: shift 1
          run: [sh, -c, 'echo 1 >> stages.txt']
          undo: {run: [sh, -c, 'echo undo 1 >> stages.txt']}
      hold: 200ms
    - name: two
      steps:
        - name: shift 2
          run: [sh, -c, 'echo 2 >> stages.txt']
          undo: {run: [sh, -c, 'echo undo 2 >> stages.txt']}
      hold: 200ms
steps:
  - name: all back
    run: ['true']
verify:
  - name: up
    command: ['true']
"""
)


def invoke(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", url, "--actor", "ann", *args], obj={})


def write(folder: Path, text: str, name: str = "plan.yaml") -> str:
    (folder / name).write_text(text)
    return str(folder / name)


def latest_run(url: str) -> str:
    return str(commands.runs(caller(Settings(database_url=url)), limit=1)[0].run_id)


def test_the_retry_line_says_the_delay_and_the_attempts_left(
    store_url: str, tmp_path: Path
) -> None:
    result = invoke(store_url, "run", write(tmp_path, RETRIES))
    assert result.exit_code == 1
    retries = [line for line in result.stderr.splitlines() if "retrying" in line]
    assert len(retries) == 2
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d step 1 attempt 1 failed in \d+\.\d\ds \(exit code 1\); "
        r"retrying in 0\.1s \(attempt 2 of 3\)",
        retries[0],
    ), retries[0]
    assert retries[1].endswith("(exit code 1); retrying in 0.2s (attempt 3 of 3)")


def test_journal_json_counts_steps_as_the_text_does(store_url: str, tmp_path: Path) -> None:
    assert invoke(store_url, "run", write(tmp_path, RETRIES)).exit_code == 1
    run_id = latest_run(store_url)
    text = invoke(store_url, "journal", run_id).stdout.splitlines()
    events = json.loads(invoke(store_url, "journal", run_id, "--json").stdout)
    assert len(text) == len(events)
    for line, event in zip(text, events, strict=True):
        shown = re.search(r" (?:step|check) (\d+)", line)
        assert event["step"] == (int(shown.group(1)) if shown else None), line
        if event["step"] is not None:
            assert event["step_index"] == event["step"] - 1
    finished = [e for e in events if e["kind"] == "step_finished"]
    assert [e["step"] for e in finished] == [1]  # step 1 failed: step 2 never started
    status = json.loads(invoke(store_url, "status", run_id, "--json").stdout)
    assert [(s["number"], s["status"]) for s in status["steps"]] == [
        (1, "failed"),
        (2, "not_run"),  # the run is over: pending would say it might still run
    ]


def test_a_healthy_watch_shows_no_pending_backout_steps(store_url: str, tmp_path: Path) -> None:
    plan = write(tmp_path, WATCHED)
    result = invoke(store_url, "watch", plan, "--for", "300ms")
    assert result.exit_code == 0, result.output
    run_id = latest_run(store_url)
    for shown in (result.stdout, invoke(store_url, "status", run_id).stdout):
        lines = shown.splitlines()
        assert lines[0].startswith(f"run {run_id} · web · succeeded")
        assert "pending" not in shown
        assert "switch back" not in shown
        assert (
            "steps 1-2 and verify 1 not needed (healthy): the backout steps and their checks "
            "run only when a trigger fires"
        ) in lines
    report = json.loads(invoke(store_url, "status", run_id, "--json").stdout)
    assert report["result"] == "healthy"
    assert [s["status"] for s in report["steps"]] == ["not_run", "not_run"]


def test_a_promoted_deploy_leaves_out_its_undo_and_backout_steps(
    store_url: str, tmp_path: Path
) -> None:
    plan = write(tmp_path, DEPLOYED)
    result = invoke(store_url, "deploy", plan, "--release", "v2")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "stages.txt").read_text() == "1\n2\n"
    table = result.stdout
    assert "one: shift 1" in table
    assert "two: shift 2" in table
    for absent in ("pending", "undo one", "all back", "verify: up"):
        assert absent not in table
    assert (
        "steps 3-5 and verify 1 not needed (promoted): the undo and backout steps and their "
        "checks run only when a trigger fires"
    ) in table.splitlines()
    report = json.loads(invoke(store_url, "status", latest_run(store_url), "--json").stdout)
    assert [s["status"] for s in report["steps"]] == ["succeeded"] * 2 + ["not_run"] * 3


def test_snapshot_says_no_data_for_a_silent_signal(store_url: str, tmp_path: Path) -> None:
    result = invoke(store_url, "snapshot", write(tmp_path, WATCHED))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "  telemetry quiet: no data" in lines
    assert "  telemetry rate: ok, value 0.5" in lines
    assert "None" not in result.stdout


# --- a resumed step's duration ----------------------------------------------------------
SLOW_AFTER_CRASH = """\
plan: web
steps:
  - name: idempotent step
    run: [sh, -c, 'echo ran >> ran.txt']
    idempotent: true
"""


def backout(url: str, folder: Path, *args: str, env: dict[str, str] | None = None) -> int:
    done = subprocess.run(
        [sys.executable, "-m", "backout", "--db", url, *args],
        capture_output=True,
        text=True,
        cwd=folder,
        env={**os.environ, **(env or {})},
        timeout=120,
    )
    return done.returncode


def test_a_resumed_step_does_not_count_the_time_its_executor_was_dead(
    store_url: str, tmp_path: Path
) -> None:
    write(tmp_path, SLOW_AFTER_CRASH)
    killed = backout(
        store_url, tmp_path, "run", "plan.yaml", env={"BACKOUT_FAILPOINTS": "step_started:1"}
    )
    assert killed == -9  # SIGKILL right after step 1's step_started was durable
    run_id = latest_run(store_url)
    assert backout(store_url, tmp_path, "resume", run_id) == 0
    events = commands.journal(caller(Settings(database_url=store_url)), run_id)
    starts = [e.at for e in events if e.kind == "step_started"]
    resumed = next(e.at for e in events if e.kind == "run_resumed")
    finished = next(e.at for e in events if e.kind == "step_finished")
    assert len(starts) == 2
    assert starts[0] < resumed <= starts[1]
    report = json.loads(invoke(store_url, "status", run_id, "--json").stdout)
    step = report["steps"][0]
    assert (step["status"], step["attempts"]) == ("succeeded", 2)
    # from the resumed attempt's start to the end: not from the dead executor's attempt
    assert step["duration_s"] == round(finished - starts[1], 3)
    assert step["duration_s"] < round(finished - starts[0], 3)
