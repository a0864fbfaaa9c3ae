"""The ``backout`` command line: a thin click layer over :mod:`backout.commands`.

Exit codes: 0 success, 1 backout or verification failed, 2 bad input, 3 needs attention.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from backout import __version__, commands
from backout.engine.runner import Decision
from backout.errors import BackoutError, PlanError
from backout.render import (
    Progress,
    journal_lines,
    print_dry_run,
    print_issues,
    print_json,
    print_run,
    runs_table,
)
from backout.reports import RunReport
from backout.settings import Settings
from backout.spec.durations import parse_duration
from backout.stop import Stopped, on_signals

F = TypeVar("F", bound=Callable[..., Any])
# emoji=False: user text such as ``plan.yaml:100:5`` must never turn into 💯
out = Console(highlight=False, emoji=False)
err = Console(stderr=True, highlight=False, emoji=False)


def handle_errors(func: F) -> F:
    """Turn BackoutError into a message and its exit code; never show a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PlanError as exc:
            print_issues(err, exc.issues)
            sys.exit(exc.exit_code)
        except BackoutError as exc:
            err.print(f"[red]error[/]: {escape(str(exc))}", soft_wrap=True)
            sys.exit(exc.exit_code)
        except Stopped as stop:
            err.print(escape(stopped_line(stop)), soft_wrap=True)
            sys.exit(stop.exit_code)
        except KeyboardInterrupt:
            err.print("interrupted")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def stopped_line(stop: Stopped) -> str:
    where = f" {stop.where}" if stop.where else ""
    if stop.run_id is None:
        return f"stopped by {stop.name}{where}"
    steps = (
        "a step may still be finishing in this process as it exits"
        if stop.abandoned
        else "its steps stopped"
    )
    return (
        f"stopped by {stop.name}{where}: run {stop.run_id} is interrupted, {steps}; "
        f"continue it with `backout resume {stop.run_id}`"
    )


@contextmanager
def live_progress(enabled: bool, drain: float = 0.0) -> Iterator[Progress | None]:
    """Step-by-step progress on stderr, and a graceful stop on SIGTERM or Ctrl-C: running
    steps are stopped (after ``drain`` seconds), the run is journalled as stopped, its
    lease released, and the command exits 143 (130 for Ctrl-C) saying how to resume."""
    progress = Progress(err) if enabled else None
    try:
        with on_signals(drain):
            yield progress
    finally:
        if progress:
            progress.close()


def settings_of(ctx: click.Context) -> Settings:
    return ctx.ensure_object(dict)["settings"]  # type: ignore[no-any-return]


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")


class Duration(click.ParamType):  # type: ignore[type-arg]
    """A plan-style duration on the command line: ``500ms``, ``10s``, ``2m``, ``1h``."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = Duration()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="backout")
@click.option(
    "--db",
    envvar="BACKOUT_DATABASE_URL",
    metavar="URL",
    help="Store URL (default sqlite:///.backout/backout.db; env BACKOUT_DATABASE_URL).",
)
@click.option("--actor", envvar="BACKOUT_ACTOR", help="Who is acting (default: the OS user).")
@click.pass_context
@handle_errors
def cli(ctx: click.Context, db: str | None, actor: str | None) -> None:
    """Backout plans as code: validate, snapshot, run, resume and verify a way back."""
    defaults = Settings()
    ctx.ensure_object(dict)["settings"] = Settings(
        database_url=db or defaults.database_url, actor=actor or defaults.actor
    )


@cli.command()
@click.argument("plans", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--strict", is_flag=True, help="Treat lint warnings as errors.")
@json_option
@handle_errors
def validate(plans: tuple[str, ...], strict: bool, as_json: bool) -> None:
    """Check plan files; exit 2 on any error (FILE:LINE:COL: field: message (hint))."""
    results = commands.validate(plans, strict=strict)
    failed = any(i.severity == "error" for issues in results.values() for i in issues)
    if as_json:
        print_json(out, {path: [vars(i) for i in issues] for path, issues in results.items()})
    else:
        for path, issues in results.items():
            print_issues(err, issues)
            if not any(i.severity == "error" for i in issues):
                warnings = len(issues)
                out.print(
                    f"{path}: [green]valid[/]" + (f" ({warnings} warning(s))" if warnings else "")
                )
    sys.exit(2 if failed else 0)


@cli.command()
@handle_errors
def schema() -> None:
    """Print the plan's JSON Schema (for editor completion)."""
    import json

    click.echo(json.dumps(commands.schema(), indent=2))


@cli.command()
@click.argument("path", default="backout.yaml", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@handle_errors
def init(path: str, force: bool) -> None:
    """Write a commented starter plan."""
    written = commands.init(path, force=force)
    out.print(f"wrote {written}; edit it, then run `backout validate {written}`")


@cli.command()
@click.argument("plan", type=click.Path(dir_okay=False))
@handle_errors
def show(plan: str) -> None:
    """Render the plan as a Markdown runbook."""
    click.echo(commands.show(plan))


@cli.command()
@click.argument("plan", type=click.Path(dir_okay=False))
@json_option
@click.pass_context
@handle_errors
def snapshot(ctx: click.Context, plan: str, as_json: bool) -> None:
    """Record the plan's baseline values (the last known good state) in the store."""
    report = commands.snapshot(settings_of(ctx), plan)
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


def _finish(report: RunReport, as_json: bool) -> None:
    if as_json:
        print_json(out, report.to_json())
    else:
        print_run(out, report)
    sys.exit(report.exit_code)


@cli.command(name="run")
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
@json_option
@click.pass_context
@handle_errors
def run_cmd(
    ctx: click.Context, plan: str, dry_run: bool, strict: bool, change_id: int | None, as_json: bool
) -> None:
    """Execute the plan's backout now."""
    settings = settings_of(ctx)
    if dry_run:
        report = commands.dry_run(settings, plan)
        print_json(out, report.to_json()) if as_json else print_dry_run(out, report)
        return
    with live_progress(enabled=not as_json) as progress:
        result = commands.run(settings, plan, observer=progress, strict=strict, change_id=change_id)
    _finish(result, as_json)


@cli.command()
@click.option("--service", help="Only this service.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000))
@json_option
@click.pass_context
@handle_errors
def runs(ctx: click.Context, service: str | None, limit: int, as_json: bool) -> None:
    """List runs, newest first."""
    rows = commands.runs(settings_of(ctx), service=service, limit=limit)
    print_json(out, rows) if as_json else out.print(runs_table(rows))


@cli.command()
@click.argument("run_id")
@json_option
@click.pass_context
@handle_errors
def status(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show a run's steps, durations and outcome (exit code follows the outcome)."""
    _finish(commands.status(settings_of(ctx), run_id), as_json)


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


@cli.command()
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
@handle_errors
def resume(
    ctx: click.Context,
    run_id: str,
    mark_done: tuple[int, ...],
    retry: tuple[int, ...],
    skip: tuple[int, ...],
    as_json: bool,
) -> None:
    """Continue a run after a crash; finished steps are never run again."""
    with live_progress(enabled=not as_json) as progress:
        report = commands.resume(
            settings_of(ctx), run_id, _decisions(mark_done, retry, skip), observer=progress
        )
    _finish(report, as_json)


@cli.command()
@click.argument("run_id")
@json_option
@click.pass_context
@handle_errors
def journal(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Print a run's journal: every event, in order."""
    events = commands.journal(settings_of(ctx), run_id)
    if as_json:
        print_json(out, [e.to_json() for e in events])
        return
    for line in journal_lines(events):
        out.print(line, soft_wrap=True)


@cli.command()
@click.option("--once", is_flag=True, help="One pass over orphaned runs, then exit.")
@click.option(
    "--interval",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds between polls.",
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
@handle_errors
def worker(ctx: click.Context, once: bool, interval: float, drain: float, as_json: bool) -> None:
    """Resume runs whose executor died, once their lease has expired.

    On SIGTERM the worker drains: it claims nothing new, lets the step in flight finish
    (up to --drain), journals the run as stopped, hands its lease back and exits 143.
    """
    with live_progress(enabled=not as_json, drain=drain) as progress:
        reports = commands.work(settings_of(ctx), once=once, interval=interval, observer=progress)
    if as_json:
        print_json(out, [r.to_json() for r in reports])
    else:
        out.print(f"finished {len(reports)} orphaned run(s)")
    worst = max((r.exit_code for r in reports), default=0)
    sys.exit(worst)


@cli.command()
@json_option
@click.option("--keep", is_flag=True, help="Keep the demo folder for a look afterwards.")
@click.pass_context
@handle_errors
def demo(ctx: click.Context, as_json: bool, keep: bool) -> None:
    """Watch a bad release get detected, backed out and verified (self-contained)."""
    from backout.demo import run_demo

    result = run_demo(json_mode=as_json, keep=keep, console=err)
    if as_json:
        print_json(out, result)
    sys.exit(0 if result.get("outcome") == "succeeded" else 1)


def main() -> None:
    cli(obj={})


# registers the change, gate, audit, outbox and flags verbs on `cli` (they import it from here)
from backout import cli_changes, cli_deploy, cli_flags  # noqa: E402, F401
