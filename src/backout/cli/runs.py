"""Runs: snapshot, run, runs, status, resume, journal, worker, and the demo."""

from __future__ import annotations

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
from backout.cli.rehearsals import print_drill
from backout.engine.runner import Decision
from backout.render import journal_lines, print_dry_run, print_json, print_run, runs_table


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
        counts = (
            f" ({reading['events']} of {reading['trials']})"
            if reading.get("trials") is not None
            else ""
        )
        out.print(f"  telemetry {name}: {reading['status']}, value {reading['value']}{counts}")


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


@click.command()
@click.option("--service", help="Only this service.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000))
@json_option
@click.pass_context
def runs(ctx: click.Context, service: str | None, limit: int, as_json: bool) -> None:
    """List runs, newest first."""
    rows = commands.runs(caller_of(ctx, create=False), service=service, limit=limit)
    print_json(out, rows) if as_json else out.print(runs_table(rows))


@click.command()
@click.argument("run_id")
@json_option
@click.pass_context
def status(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show a run's steps, durations and outcome (exit code follows the outcome)."""
    finish(commands.status(caller_of(ctx, create=False), run_id), as_json)


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
        print_run(out, report)
        print_drill(drill)
    exit_with(max(report.exit_code, drill.exit_code))


@click.command()
@click.argument("run_id")
@json_option
@click.pass_context
def journal(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Print a run's journal: every event, in order."""
    events = commands.journal(caller_of(ctx, create=False), run_id)
    if as_json:
        print_json(out, [e.to_json() for e in events])
        return
    for line in journal_lines(events):
        out.print(line, soft_wrap=True)


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
