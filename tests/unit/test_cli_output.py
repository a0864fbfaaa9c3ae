"""What the CLI prints, in one format (issue 7, "CLI conventions"): error lines, paths as
given, the retry line, resumed step durations, steps a promoted deploy never needed, the
journal's JSON step numbers, snapshot readings without data, and the dry run's word on a
missing snapshot."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from backout.cli import cli
from backout.engine.view import RunView, fold, new_view
from backout.errors import ActionError, Issue
from backout.kernel.events import Event, EventKind
from backout.kernel.options import Context
from backout.probes.command import CommandCheck, CommandOptions, CommandSource
from backout.redact import Redactor
from backout.render import (
    Progress,
    journal_json,
    journal_lines,
    not_needed_line,
    number_ranges,
    print_run,
    retry_text,
    telemetry_line,
)
from backout.reports import RunReport
from backout.reports.runs import CheckReport, StepReport

WritePlan = Callable[..., Path]

PLAN = """\
plan: shop
baseline:
  release: {readlink: current}
steps:
  - name: switch back
    symlink: {link: current, target: "{{ baseline.release }}"}
  - name: restart
    run: [sh, -c, 'exit 0']
    retries: 1
verify:
  - name: restarted
    command: [sh, -c, 'exit 0']
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), obj={})


def plain(markup: str) -> str:
    """A line of rich markup as a terminal shows it, without colours."""
    console = Console(width=300, no_color=True, highlight=False)
    with console.capture() as captured:
        console.print(markup, soft_wrap=True)
    return captured.get().rstrip("\n")


# --- error lines ------------------------------------------------------------------------
def test_a_missing_plan_is_file_colon_no_such_file() -> None:
    result = invoke("validate", "missing.yaml")
    assert result.exit_code == 2
    assert result.stderr == "error: missing.yaml: no such file\n"


def test_every_plan_verb_names_a_missing_file_the_same_way() -> None:
    for args in (["show", "gone.yaml"], ["run", "--dry-run", "gone.yaml"]):
        result = invoke(*args)
        assert result.exit_code == 2, args
        assert result.stderr == "error: gone.yaml: no such file\n", args


def test_an_issue_about_no_one_field_leaves_the_placeholder_out() -> None:
    assert str(Issue("p.yaml", 3, 5, "-", "invalid YAML: x", "fix it")) == (
        "p.yaml:3:5: invalid YAML: x (fix it)"
    )
    assert str(Issue("p.yaml", 3, 5, "steps[0]", "bad")) == "p.yaml:3:5: steps[0]: bad"
    assert str(Issue("p.yaml", 0, 0, "-", "no such file")) == "p.yaml: no such file"


def test_paths_are_printed_as_given(write_plan: WritePlan, in_tmp: Path) -> None:
    (in_tmp / "plans").mkdir()
    write_plan(PLAN, "plans/shop.yaml")
    warned = invoke("validate", "./plans/../plans/shop.yaml")
    assert warned.exit_code == 0, warned.output
    # a lint warning names the file as typed: not resolved to an absolute path
    assert warned.stderr.startswith("warning: ./plans/../plans/shop.yaml:9:5: steps[1].retries:")
    assert str(in_tmp) not in warned.stderr
    missing = invoke("validate", "./plans/none.yaml")
    assert missing.stderr == "error: ./plans/none.yaml: no such file\n"


def test_a_yaml_error_has_no_field_placeholder(write_plan: WritePlan) -> None:
    write_plan("plan: shop\nsteps: [\n")
    result = invoke("validate", "plan.yaml")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: plan.yaml:3:1: invalid YAML: ")
    assert ": -:" not in result.stderr


# --- checks and sources without output ----------------------------------------------------
def context(folder: Path) -> Context:
    return Context(folder, 5.0, {}, Redactor([]))


def test_a_failed_check_with_no_output_does_not_end_in_a_colon(in_tmp: Path) -> None:
    options = CommandOptions(argv=["sh", "-c", "exit 1"])
    verdict = CommandCheck().check(options, context(in_tmp))
    assert verdict.reason == "exit code 1, expected 0"
    said = CommandOptions(argv=["sh", "-c", "echo one; echo two; exit 1"])
    assert CommandCheck().check(said, context(in_tmp)).reason == "exit code 1, expected 0: two"


def test_a_failed_baseline_source_with_no_output_does_not_end_in_a_colon(in_tmp: Path) -> None:
    with pytest.raises(ActionError) as silent:
        CommandSource().read(CommandOptions(argv=["sh", "-c", "exit 3"]), context(in_tmp))
    assert str(silent.value) == "`sh -c 'exit 3'` failed (exit code 3)"
    with pytest.raises(ActionError) as said:
        CommandSource().read(
            CommandOptions(argv=["sh", "-c", "echo nope; exit 3"]), context(in_tmp)
        )
    assert str(said.value) == "`sh -c 'echo nope; exit 3'` failed (exit code 3): nope"


# --- the retry line ---------------------------------------------------------------------
def retrying(attempt: int, **data: object) -> Event:
    return Event("r1", 7, 0.0, EventKind.STEP_RETRYING, step=1, attempt=attempt, data=data)


def test_the_retry_line_says_the_delay_before_the_next_attempt() -> None:
    event = retrying(1, delay_s=2.0, last_attempt=3, summary="exit code 1", duration_s=0.031)
    assert plain(retry_text(event)) == (
        "attempt 1 failed in 0.03s (exit code 1); retrying in 2s (attempt 2 of 3)"
    )
    second = retrying(2, delay_s=4.0, last_attempt=3, summary="", duration_s=0.5)
    assert plain(retry_text(second)) == "attempt 2 failed in 0.50s; retrying in 4s (attempt 3 of 3)"


def test_a_journal_written_before_last_attempt_still_reads_well() -> None:
    event = retrying(1, delay_s=1.0, summary="exit code 1", duration_s=0.02)
    assert plain(retry_text(event)) == (
        "attempt 1 failed in 0.02s (exit code 1); retrying in 1s (attempt 2)"
    )


def test_the_progress_line_of_a_retry() -> None:
    console = Console(width=300, no_color=True, highlight=False, record=True)
    progress = Progress(console)
    started = Event("r1", 1, 0.0, EventKind.RUN_CREATED)
    view = new_view("r1", ["switch", "restart"], [])
    fold(view, [started])
    event = retrying(1, delay_s=2.0, last_attempt=3, summary="exit code 1", duration_s=0.03)
    line = progress._line(event, view)
    assert line is not None
    assert plain(line).endswith(
        " step 2 attempt 1 failed in 0.03s (exit code 1); retrying in 2s (attempt 2 of 3)"
    )


def test_a_finished_step_or_check_without_a_summary_does_not_end_in_a_colon() -> None:
    view = new_view("r1", ["one"], ["check"])
    progress = Progress(Console(width=300, no_color=True))
    finished = Event(
        "r1", 4, 0.0, EventKind.STEP_FINISHED, step=0, attempt=1, data={"outcome": "succeeded"}
    )
    line = progress._line(finished, view)
    assert line is not None
    assert plain(line).endswith("succeeded step 1")
    check = Event("r1", 5, 0.0, EventKind.CHECK_FINISHED, step=0, data={"passed": False})
    line = progress._line(check, view)
    assert line is not None
    assert plain(line).endswith("failed verify 1")


class StuckTerminal:
    """A stderr nobody reads: every write waits until ``unstick`` is set."""

    def __init__(self) -> None:
        self.unstick = threading.Event()
        self.text = ""

    def write(self, text: str) -> int:
        self.unstick.wait(30)
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


def test_progress_never_holds_the_engine_and_keeps_its_lines_in_order() -> None:
    """The engine calls the progress display between a step's journal write and its
    program's go: a terminal that does not take the line must not hold the step back."""
    terminal = StuckTerminal()
    progress = Progress(Console(file=terminal, width=300, no_color=True))  # type: ignore[arg-type]
    view = new_view("r1", ["switch", "restart"], [])
    fold(view, [Event("r1", 1, 0.0, EventKind.RUN_CREATED)])
    events = [
        Event("r1", 2, 0.0, EventKind.RUN_STARTED),
        Event("r1", 3, 0.0, EventKind.STEP_STARTED, step=0, attempt=1),
        Event("r1", 4, 0.0, EventKind.STEP_FINISHED, 0, 1, {"outcome": "succeeded"}),
        Event("r1", 5, 0.0, EventKind.STEP_STARTED, step=1, attempt=1),
    ]
    observed = threading.Thread(target=lambda: [progress(e, view) for e in events])
    observed.start()
    observed.join(10)
    assert not observed.is_alive(), "the engine waited for the terminal"
    terminal.unstick.set()
    progress.close()
    lines = [line for line in terminal.text.splitlines() if "step" in line or "run" in line]
    assert [line.split(" ", 1)[1] for line in lines] == [
        "run r1 started",
        "▶ step 1 switch",
        "succeeded step 1",
        "▶ step 2 restart",
    ]


class CountedTerminal(StuckTerminal):
    """A stuck stderr that counts the writes it was asked for."""

    def __init__(self, tty: bool = False) -> None:
        super().__init__()
        self.writes = 0
        self.tty = tty

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)

    def isatty(self) -> bool:
        return self.tty


def two_steps() -> tuple[RunView, list[Event]]:
    view = new_view("r1", ["switch", "restart"], [])
    fold(view, [Event("r1", 1, 0.0, EventKind.RUN_CREATED)])
    return view, [
        Event("r1", 2, 0.0, EventKind.RUN_STARTED),
        Event("r1", 3, 0.0, EventKind.STEP_STARTED, step=0, attempt=1),
        Event("r1", 4, 0.0, EventKind.STEP_FINISHED, 0, 1, {"outcome": "succeeded"}),
        Event("r1", 5, 0.0, EventKind.STEP_STARTED, step=1, attempt=1),
    ]


def test_lines_that_came_while_the_display_was_busy_are_shown_in_one_write() -> None:
    terminal = CountedTerminal()
    progress = Progress(Console(file=terminal, width=300, no_color=True))  # type: ignore[arg-type]
    view, events = two_steps()
    progress(events[0], view)
    waited = time.monotonic() + 30
    while terminal.writes == 0:  # the display took the first line and is stuck writing it
        assert time.monotonic() < waited
        time.sleep(0.01)
    for event in events[1:]:
        progress(event, view)
    terminal.unstick.set()
    progress.close()
    assert terminal.writes == 2, terminal.text
    assert "▶ step 2 restart" in terminal.text


def test_a_spinner_only_on_a_terminal() -> None:
    """Where nobody watches (a pipe, a file, CI) no spinner starts: it would start and stop
    a refresh thread of rich's at every step."""
    for tty in (False, True):
        terminal = CountedTerminal(tty=tty)
        terminal.unstick.set()
        console = Console(file=terminal, width=300, no_color=True)  # type: ignore[arg-type]
        progress = Progress(console)
        view, events = two_steps()
        progress(events[1], view)
        progress.flush()
        assert (progress._status is not None) is tty
        progress.close()
        assert progress._status is None


# --- a resumed step's duration ----------------------------------------------------------
def crashed_and_resumed(decision_events: list[Event]) -> list[Event]:
    """Step 1 started at t=10, its executor died; resumed at t=500."""
    return [
        Event("r1", 1, 0.0, EventKind.RUN_CREATED),
        Event("r1", 2, 1.0, EventKind.RUN_STARTED),
        Event("r1", 3, 10.0, EventKind.STEP_STARTED, step=0, attempt=1),
        Event("r1", 4, 500.0, EventKind.RUN_RESUMED),
        *decision_events,
    ]


def test_a_resumed_step_counts_from_the_resumed_attempt() -> None:
    events = crashed_and_resumed(
        [
            Event("r1", 5, 500.5, EventKind.WARNING, step=0, data={"message": "again"}),
            Event("r1", 6, 501.0, EventKind.STEP_STARTED, step=0, attempt=2),
            Event("r1", 7, 502.0, EventKind.STEP_RETRYING, step=0, attempt=2, data={}),
            Event("r1", 8, 504.0, EventKind.STEP_STARTED, step=0, attempt=3),
            Event(
                "r1",
                9,
                504.25,
                EventKind.STEP_FINISHED,
                step=0,
                attempt=3,
                data={"outcome": "succeeded"},
            ),
        ]
    )
    view = fold(new_view("r1", ["migrate"], []), events)
    step = view.steps[0]
    # from the resumed attempt's start (retries and their delay included), not from t=10
    assert (step.attempts, step.duration_s) == (3, 3.25)


def test_a_step_marked_done_has_no_duration() -> None:
    events = crashed_and_resumed(
        [
            Event("r1", 5, 500.1, EventKind.OPERATOR_DECISION, step=0, data={"decision": "done"}),
            Event(
                "r1",
                6,
                500.2,
                EventKind.STEP_FINISHED,
                step=0,
                data={"outcome": "succeeded", "summary": "marked done by ann", "resolved": True},
            ),
        ]
    )
    step = fold(new_view("r1", ["migrate"], []), events).steps[0]
    assert (step.status, step.duration_s) == ("succeeded", None)


def test_an_uninterrupted_step_still_counts_from_its_first_attempt() -> None:
    events = [
        Event("r1", 1, 0.0, EventKind.RUN_CREATED),
        Event("r1", 2, 1.0, EventKind.RUN_STARTED),
        Event("r1", 3, 10.0, EventKind.STEP_STARTED, step=0, attempt=1),
        Event("r1", 4, 11.0, EventKind.STEP_RETRYING, step=0, attempt=1, data={"delay_s": 1.0}),
        Event("r1", 5, 12.0, EventKind.STEP_STARTED, step=0, attempt=2),
        Event(
            "r1", 6, 12.5, EventKind.STEP_FINISHED, step=0, attempt=2, data={"outcome": "failed"}
        ),
    ]
    assert fold(new_view("r1", ["flaky"], []), events).steps[0].duration_s == 2.5


# --- steps a promoted deploy never needed -----------------------------------------------
def report(result: str | None, statuses: list[str], checks: int = 1) -> RunReport:
    return RunReport(
        run_id="abc",
        plan="shop",
        service="shop",
        status="succeeded",
        message="promoted: 2 stage(s) passed their checkpoints",
        actor="ann",
        plan_version="v",
        created_at=0.0,
        finished_at=2.0,
        duration_s=2.0,
        verified=False,
        result=result,
        steps=[
            StepReport(n, f"step {n}", s, 1 if s == "succeeded" else 0, None, "")
            for n, s in enumerate(statuses, start=1)
        ],
        checks=[CheckReport(n, f"check {n}", None, "", 0) for n in range(1, checks + 1)],
    )


def printed(run: RunReport) -> str:
    console = Console(width=120, no_color=True, record=True)
    print_run(console, run)
    return console.export_text()


def test_a_promoted_deploy_leaves_out_the_steps_it_never_needed() -> None:
    run = report("promoted", ["succeeded", "succeeded", "not_run", "not_run", "not_run"])
    text = printed(run)
    for absent in ("pending", "not_run", "│ 3 ", "verify: check 1"):
        assert absent not in text
    note = (
        "steps 3-5 and verify 1 not needed (promoted): the undo and backout steps and their "
        "checks run only when a trigger fires"
    )
    assert not_needed_line(run) == note
    assert note in text.splitlines()


def test_a_healthy_watch_says_its_backout_steps_were_not_needed() -> None:
    run = report("healthy", ["not_run"], checks=0)
    text = printed(run)
    assert text.splitlines()[0] == "run abc · shop · succeeded"  # no empty table
    assert not_needed_line(run) == (
        "step 1 not needed (healthy): the backout steps and their checks run only when a "
        "trigger fires"
    )


def test_a_failed_run_shows_the_steps_it_never_ran_as_not_run() -> None:
    run = report(None, ["failed", "not_run"])
    assert not_needed_line(run) is None
    assert "not_run" in printed(run)


def test_number_ranges() -> None:
    assert number_ranges([9, 5, 6, 7, 2]) == "2, 5-7, 9"
    assert number_ranges([4]) == "4"


# --- the journal's JSON counts like its text --------------------------------------------
def test_journal_json_step_is_the_number_the_text_shows() -> None:
    events = [
        Event("r1", 1, 0.0, EventKind.RUN_CREATED),
        Event("r1", 2, 1.0, EventKind.STEP_STARTED, step=0, attempt=1),
        Event("r1", 3, 2.0, EventKind.CHECK_STARTED, step=1),
    ]
    shapes = [journal_json(e) for e in events]
    assert [(s["step"], s["step_index"]) for s in shapes] == [(None, None), (1, 0), (2, 1)]
    assert list(shapes[1]) == ["seq", "at", "kind", "step", "step_index", "attempt", "data"]
    lines = [plain(line) for line in journal_lines(events)]
    assert " step_started step 1 #1" in lines[1]
    assert " check_started check 2" in lines[2]
    json.dumps(shapes)  # plain JSON data


# --- snapshot: no data ------------------------------------------------------------------
def test_a_signal_without_data_reads_no_data() -> None:
    assert telemetry_line("errors", {"status": "no_data", "value": None}) == (
        "telemetry errors: no data"
    )
    assert telemetry_line("errors", {"status": "timeout", "value": None}) == (
        "telemetry errors: timeout, no data"
    )
    assert telemetry_line("ratio", {"status": "ok", "value": 0.0, "events": 0, "trials": 30}) == (
        "telemetry ratio: ok, value 0.0 (0 of 30)"
    )


# --- run --dry-run without a snapshot ---------------------------------------------------
def test_dry_run_without_a_snapshot_says_how_to_take_one(
    write_plan: WritePlan, in_tmp: Path
) -> None:
    write_plan(PLAN.replace("    retries: 1\n", ""))
    (in_tmp / "other.yaml").write_text(
        "plan: other\nbaseline:\n  x: {command: [echo, x]}\n"
        "steps:\n  - name: n\n    run: ['true']\n"
    )
    db = f"sqlite:///{in_tmp / 'b.db'}"
    assert invoke("--db", db, "snapshot", "other.yaml").exit_code == 0  # a store, no snapshot
    result = invoke("--db", db, "run", "--dry-run", "plan.yaml")
    assert result.exit_code == 1, result.output
    problems = [line for line in result.stdout.splitlines() if line.startswith("problem")]
    assert problems == ["problem: no snapshot for service shop: run `backout snapshot plan.yaml`"]
    assert "undefined" not in result.stdout
    assert "dict object" not in result.stdout
    # the step that needs the baseline is shown as written
    assert '   {"link": "current", "target": "{{ baseline.release }}"}' in result.stdout


def test_dry_run_with_a_snapshot_that_lacks_a_value(write_plan: WritePlan, in_tmp: Path) -> None:
    (in_tmp / "current").symlink_to("releases/v1")
    write_plan(PLAN.replace("    retries: 1\n", ""))
    db = f"sqlite:///{in_tmp / 'b.db'}"
    assert invoke("--db", db, "snapshot", "plan.yaml").exit_code == 0
    write_plan(  # the plan now uses a value the snapshot did not record
        PLAN.replace("    retries: 1\n", "")
        .replace(
            "  release: {readlink: current}\n",
            "  release: {readlink: current}\n  config: {readlink: current}\n",
        )
        .replace("command: [sh, -c, 'exit 0']", "command: [test, '{{ baseline.config }}']")
    )
    result = invoke("--db", db, "run", "--dry-run", "--json", "plan.yaml")
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["problems"] == [
        "snapshot #1 of service shop has no baseline.config: run `backout snapshot plan.yaml`"
    ]


def test_dry_run_of_a_plan_without_baseline_needs_no_snapshot(
    write_plan: WritePlan, in_tmp: Path
) -> None:
    write_plan("plan: shop\nsteps:\n  - name: n\n    run: ['true']\n")
    result = invoke("--db", f"sqlite:///{in_tmp / 'none.db'}", "run", "--dry-run", "plan.yaml")
    assert result.exit_code == 0, result.output
    assert "problem" not in result.stdout


def test_flush_returns_once_the_lines_handed_over_are_shown() -> None:
    """A failpoint's kill flushes the display first (engine/failpoints.py ``before_kill``):
    the crash tests' transcripts show every line up to the crash, every time."""
    terminal = StuckTerminal()
    progress = Progress(Console(file=terminal, width=300, no_color=True))  # type: ignore[arg-type]
    view = new_view("r1", ["switch"], [])
    fold(view, [Event("r1", 1, 0.0, EventKind.RUN_CREATED)])
    progress(Event("r1", 2, 0.0, EventKind.RUN_STARTED), view)
    progress(Event("r1", 3, 0.0, EventKind.STEP_STARTED, step=0, attempt=1), view)
    flushing = threading.Thread(target=progress.flush)
    flushing.start()
    flushing.join(0.2)
    assert flushing.is_alive(), "flush returned before the terminal took the lines"
    terminal.unstick.set()
    flushing.join(30)
    assert not flushing.is_alive()
    assert "▶ step 1 switch" in terminal.text  # shown before flush returned
    progress.close()


def test_a_failpoint_calls_what_was_registered_before_it_kills(tmp_path: Path) -> None:
    mark = tmp_path / "flushed"
    program = (
        "from pathlib import Path\n"
        "from backout.engine import failpoints\n"
        f"failpoints.before_kill(lambda: Path({str(mark)!r}).write_text('yes'))\n"
        "failpoints.hit('action_done', 3)\n"
        "print('not killed')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        env={**os.environ, "BACKOUT_FAILPOINTS": "action_done:3"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL
    assert "not killed" not in done.stdout
    assert mark.read_text() == "yes"
