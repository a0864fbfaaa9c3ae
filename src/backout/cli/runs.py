"""Runs: snapshot, run, runs, status, resume, journal, worker, and the demo."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape

from backout import commands
from backout.cli.base import (
    DURATION,
    Duration,
    caller_of,
    env_option,
    err,
    exit_with,
    finish,
    json_option,
    live_progress,
    out,
)
from backout.kernel.durations import parse_duration
from backout.kernel.events import Event
from backout.kernel.states import RunStatus
from backout.render import (
    Progress,
    journal_json,
    journal_lines,
    print_dry_run,
    print_json,
    print_run,
    runs_table,
    telemetry_line,
)

if TYPE_CHECKING:
    from backout.engine.runner import Decision


@click.command()
@click.argument("plan", type=click.Path(dir_okay=False))
@env_option
@json_option
@click.pass_context
def snapshot(ctx: click.Context, plan: str, environment: str | None, as_json: bool) -> None:
    """Record the plan's baseline values (the last known good state) in the store."""
    report = commands.snapshot(caller_of(ctx), plan, environment=environment)
    if as_json:
        print_json(out, report.to_json())
        return
    out.print(f"snapshot #{report.snapshot_id} of {report.service}:")
    for key, value in report.values.items():
        out.print(f"  {key} = {escape(value)}", soft_wrap=True)
    for name, reading in report.telemetry.items():
        out.print(f"  {telemetry_line(name, reading)}", soft_wrap=True)


@click.command(name="run")
@click.argument("plan", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Print the rendered steps; execute nothing.")
@click.option("--strict", is_flag=True, help="Refuse to run on lint warnings too.")
@click.option(
    "--change",
    "change_id",
    type=int,
    metavar="ID",
    help="The change record this backout belongs to (closed as backed_out/failed).",
)
@env_option
@json_option
@click.pass_context
def run_cmd(
    ctx: click.Context,
    plan: str,
    dry_run: bool,
    strict: bool,
    change_id: int | None,
    environment: str | None,
    as_json: bool,
) -> None:
    """Execute the plan's backout now."""
    if dry_run:
        report = commands.dry_run(caller_of(ctx, create=False), plan, environment)
        print_json(out, report.to_json()) if as_json else print_dry_run(out, report)
        exit_with(1 if report.problems else 0)  # a problem listed would fail the real run
    with live_progress(ctx, enabled=not as_json) as progress:
        result = commands.run(
            caller_of(ctx),
            plan,
            observer=progress,
            strict=strict,
            change_id=change_id,
            environment=environment,
        )
    finish(result, as_json)


class Since(click.ParamType):  # type: ignore[type-arg]
    """A moment: how long ago (``30m``, ``12h``, ``7d``) or an ISO 8601 date or time
    (``2026-11-30``, ``2026-11-30T14:00``, UTC unless it says otherwise); as epoch seconds."""

    name = "since"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        text = str(value).strip()
        days = re.fullmatch(r"(\d+(?:\.\d+)?)\s*d", text)
        try:
            ago = float(days.group(1)) * 86400 if days else parse_duration(text)
        except ValueError:
            return self._instant(text, param, ctx)
        return time.time() - ago

    def _instant(
        self, text: str, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{text!r} is neither a duration nor a date; expected e.g. 30m, 12h, 7d, "
                "2026-11-30 or 2026-11-30T14:00",
                param,
                ctx,
            )
        return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()


@click.command()
@click.option("--service", help="Only this service.")
@click.option(
    "--status",
    type=click.Choice([s.value for s in RunStatus]),
    help="Only runs in this state.",
)
@click.option(
    "--since",
    type=Since(),
    metavar="WHEN",
    help="Only runs created since: a time ago (30m, 12h, 7d) or an ISO date (2026-11-30).",
)
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(1, 10000),
    help="At most this many (the newest).",
)
@json_option
@click.pass_context
def runs(
    ctx: click.Context,
    service: str | None,
    status: str | None,
    since: float | None,
    limit: int,
    as_json: bool,
) -> None:
    """List runs, newest first; the filters are combined."""
    rows = commands.runs(
        caller_of(ctx, create=False), service=service, limit=limit, status=status, since=since
    )
    print_json(out, rows) if as_json else out.print(runs_table(rows))


@click.command()
@click.argument("run_id")
@click.option(
    "--watch",
    "-w",
    is_flag=True,
    help="Show the run's progress live (on stderr) until it ends or needs attention, then "
    "its table; Ctrl-C stops watching, not the run.",
)
@json_option
@click.pass_context
def status(ctx: click.Context, run_id: str, watch: bool, as_json: bool) -> None:
    """Show a run's steps, durations and outcome (exit code follows the outcome)."""
    caller = caller_of(ctx, create=False)
    if watch:
        progress = None if as_json else Progress(err)
        try:
            for event, view in commands.follow_progress(caller, run_id):
                if progress is not None:
                    progress(event, view)
        finally:
            if progress is not None:
                progress.close()
    finish(commands.status(caller, run_id), as_json)


def _decisions(
    mark_done: tuple[int, ...], retry: tuple[int, ...], skip: tuple[int, ...]
) -> dict[int, Decision]:
    decisions: dict[int, Decision] = {}
    for numbers, decision in ((mark_done, "done"), (retry, "retry"), (skip, "skip")):
        for number in numbers:
            if number - 1 in decisions:
                raise click.BadParameter(f"step {number} has two decisions")
            decisions[number - 1] = decision  # type: ignore[assignment]
    return decisions


@click.command()
@click.argument("run_id")
@click.option(
    "--mark-done",
    multiple=True,
    type=click.IntRange(1),
    metavar="STEP",
    help="The interrupted step took effect: record it as succeeded.",
)
@click.option(
    "--retry",
    multiple=True,
    type=click.IntRange(1),
    metavar="STEP",
    help="Run the interrupted step again even though it is not idempotent.",
)
@click.option(
    "--skip",
    multiple=True,
    type=click.IntRange(1),
    metavar="STEP",
    help="Skip the interrupted step.",
)
@json_option
@click.pass_context
def resume(
    ctx: click.Context,
    run_id: str,
    mark_done: tuple[int, ...],
    retry: tuple[int, ...],
    skip: tuple[int, ...],
    as_json: bool,
) -> None:
    """Continue a run after a crash; finished steps are never run again."""
    with live_progress(ctx, enabled=not as_json) as progress:
        report = commands.resume(
            caller_of(ctx), run_id, _decisions(mark_done, retry, skip), observer=progress
        )
    drill = commands.drill_of(caller_of(ctx), report.run_id)
    if drill is None:
        finish(report, as_json)
    if as_json:
        print_json(out, drill)
    else:
        from backout.cli.rehearsals import print_drill  # loads the drills' reports

        print_run(out, report)
        print_drill(drill)
    exit_with(max(report.exit_code, drill.exit_code))


@click.command()
@click.argument("run_id")
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Then print each new event as it is journalled, until the run ends or needs "
    "attention (with --json: one object per line); Ctrl-C stops following, not the run.",
)
@click.option(
    "--server",
    envvar="BACKOUT_SERVER_URL",
    metavar="URL",
    help="Read it from `backout server` at URL instead of the store (the token in "
    "BACKOUT_TOKEN); --follow then streams its live events.",
)
@json_option
@click.pass_context
def journal(
    ctx: click.Context, run_id: str, follow: bool, server: str | None, as_json: bool
) -> None:
    """Print a run's journal: every event, in order."""
    if server:
        _remote(server, run_id, follow, as_json)
        return
    if follow:
        _follow(caller_of(ctx, create=False), run_id, as_json)
        return
    _print_journal(commands.journal(caller_of(ctx, create=False), run_id), as_json)


def _print_journal(events: list[Event], as_json: bool) -> None:
    if as_json:
        print_json(out, [journal_json(e) for e in events])
        return
    for line in journal_lines(events):
        out.print(line, soft_wrap=True)


def _follow(caller: commands.Caller, run_id: str, as_json: bool) -> None:
    _print_live(commands.follow(caller, run_id), as_json)


def _print_live(events: Iterable[Event], as_json: bool) -> None:
    for event in events:
        if as_json:  # JSON Lines: a reader can act on each event as it comes
            out.file.write(json.dumps(journal_json(event), default=str) + "\n")
            out.file.flush()
        else:
            out.print(journal_lines([event])[0], soft_wrap=True)


def _remote(server: str, run_id: str, follow: bool, as_json: bool) -> None:
    """The journal from a server's API; followed through its event stream."""
    from backout.client import TOKEN_ENV, ApiClient

    client = ApiClient.of(server, os.environ.get(TOKEN_ENV))
    if follow:
        _print_live(client.follow(run_id), as_json)
        return
    _print_journal(client.journal(run_id), as_json)


@click.command()
@click.option("--once", is_flag=True, help="One pass over orphaned runs, then exit.")
@click.option(
    "--interval",
    default="2s",
    show_default=True,
    type=Duration(minimum=0.1),
    help="Time between polls (500ms, 2s, 1m).",
)
@click.option(
    "--drain",
    default="30s",
    show_default=True,
    type=DURATION,
    help="On SIGTERM, let the step in flight finish for up to this long before stopping it.",
)
@json_option
@click.pass_context
def worker(ctx: click.Context, once: bool, interval: float, drain: float, as_json: bool) -> None:
    """Resume runs whose executor died, once their lease has expired.

    On SIGTERM the worker drains: it claims nothing new, lets the step in flight finish
    (up to --drain), journals the run as stopped, hands its lease back and exits 143.
    """
    with live_progress(ctx, enabled=not as_json, drain=drain) as progress:
        reports = commands.work(caller_of(ctx), once=once, interval=interval, observer=progress)
    if as_json:
        print_json(out, [r.to_json() for r in reports])
    else:
        out.print(f"finished {len(reports)} orphaned run(s)")
    worst = max((r.exit_code for r in reports), default=0)
    exit_with(worst)


@click.command()
@json_option
@click.option("--keep", is_flag=True, help="Keep the demo folder for a look afterwards.")
@click.option(
    "--rehearse",
    is_flag=True,
    help="Then rehearse the plan (`backout rehearse`) and show the gate's rehearsal check.",
)
@click.pass_context
def demo(ctx: click.Context, as_json: bool, keep: bool, rehearse: bool) -> None:
    """Watch a bad release get detected, backed out and verified (self-contained)."""
    from backout.demo import run_demo

    result = run_demo(json_mode=as_json, keep=keep, console=err, rehearse=rehearse)
    if as_json:
        print_json(out, result)
    drill = result.get("rehearsal")
    passed = result.get("outcome") == "succeeded" and (
        not rehearse or bool(drill and drill["passed"])
    )
    exit_with(0 if passed else 1)


COMMANDS: list[click.Command] = [
    snapshot,
    run_cmd,
    runs,
    status,
    resume,
    journal,
    worker,
    demo,
]
