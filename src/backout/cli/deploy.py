"""Progressive deploys, watching, triggers from people, approvals and explanations."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from backout import commands
from backout.cli.base import (
    caller_of,
    env_option,
    err,
    exit_with,
    finish,
    json_option,
    live_progress,
    out,
    stopped_line,
)
from backout.errors import UsageError
from backout.kernel.durations import parse_duration
from backout.render import print_json, styled

if TYPE_CHECKING:
    from backout.commands.fleet import FleetReport
    from backout.triggers.listener import ListenAddress

F = TypeVar("F", bound=Callable[..., Any])
_LISTEN_OPTIONS = (
    click.option(
        "--listen",
        metavar="HOST:PORT",
        help="Receive Alertmanager webhooks at http://HOST:PORT/alertmanager while running "
        "(needs a token: --listen-token-file or BACKOUT_LISTEN_TOKEN).",
    ),
    click.option(
        "--listen-token-file",
        metavar="PATH",
        help="File holding the token Alertmanager must send as `Authorization: Bearer` "
        "(else the environment's BACKOUT_LISTEN_TOKEN).",
    ),
    click.option(
        "--listen-user",
        metavar="NAME",
        help="Expect the token as the basic-auth password of NAME instead of a bearer token "
        "(else the environment's BACKOUT_LISTEN_USER).",
    ),
)


def listen_options(func: F) -> F:
    """The same webhook options on `deploy` and `watch`."""
    for option in reversed(_LISTEN_OPTIONS):
        func = option(func)
    return func


def _listen(address: str | None, token_file: str | None, user: str | None) -> ListenAddress | None:
    """The checked --listen address with its credential; a bad one stops before any run."""
    if address is None:
        given = "--listen-token-file" if token_file else "--listen-user" if user else ""
        if given:
            raise UsageError(
                f"{given} applies only with --listen", hint="add --listen HOST:PORT, or drop it"
            )
        return None
    from backout.triggers.listener import listen_address

    return listen_address(address, token_file, user)


change_option = click.option(
    "--change", "change_id", type=int, metavar="ID", help="The change record this belongs to."
)


def _seconds(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.argument("plan", type=click.Path(dir_okay=False))
@click.option("--release", help="The release being deployed (templates: {{ run.release }}).")
@change_option
@listen_options
@env_option
@json_option
@click.pass_context
def deploy(
    ctx: click.Context,
    plan: str,
    release: str | None,
    change_id: int | None,
    listen: str | None,
    listen_token_file: str | None,
    listen_user: str | None,
    environment: str | None,
    as_json: bool,
) -> None:
    """Deploy stage by stage, watching triggers at every checkpoint; back out if one fires.

    Exit 0 promoted, 4 backed out (and verified), 1 failed, 3 needs attention.
    """
    listen = _listen(listen, listen_token_file, listen_user)
    with live_progress(ctx, enabled=not as_json) as progress:
        report = commands.deploy(
            caller_of(ctx), plan, release, progress, change_id, listen, environment
        )
    finish(report, as_json)


@click.command()
@click.argument("plans", nargs=-1, required=True, type=click.Path(), metavar="PLAN...")
@click.option(
    "--for",
    "seconds",
    default="10m",
    show_default=True,
    callback=_seconds,
    help="How long to watch (500ms, 30s, 10m, 1h).",
)
@change_option
@listen_options
@click.option(
    "--metrics",
    "metrics_address",
    metavar="HOST:PORT",
    help="With several plans: serve the watch's own metrics (evaluations per trigger "
    "and evaluation lag per deployment) at http://HOST:PORT/metrics while it runs.",
)
@env_option
@json_option
@click.pass_context
def watch(
    ctx: click.Context,
    plans: tuple[str, ...],
    seconds: float,
    change_id: int | None,
    listen: str | None,
    listen_token_file: str | None,
    listen_user: str | None,
    metrics_address: str | None,
    environment: str | None,
    as_json: bool,
) -> None:
    """Watch deployed releases; back out any whose trigger fires.

    One plan, or several (files, or folders of *.yaml plans) watched by this one process,
    each in a run of its own.

    Exit 0 healthy for the whole time, 4 backed out (and verified), 1 failed; with several
    plans, the worst of them.
    """
    if len(plans) == 1 and not Path(plans[0]).is_dir():
        if metrics_address is not None:
            raise UsageError(
                "--metrics applies when watching several plans",
                hint="drop --metrics, or name several plans or a folder",
            )
        address = _listen(listen, listen_token_file, listen_user)
        with live_progress(ctx, enabled=not as_json) as progress:
            report = commands.watch(
                caller_of(ctx), plans[0], seconds, progress, change_id, address, environment
            )
        finish(report, as_json)
    if listen is not None:
        raise UsageError(
            "--listen takes one plan: its webhook queues alerts for that plan's service",
            hint="give each watched service its own `backout watch PLAN --listen`, or send "
            "alerts with `backout trigger SERVICE`",
        )
    from backout.commands import fleet

    serve = fleet.metrics_server(metrics_address) if metrics_address else None
    say = (lambda _line: None) if as_json else _say
    with live_progress(ctx, enabled=False):  # a graceful stop, and notifications sent
        result = fleet.watch_many(
            caller_of(ctx), list(plans), seconds, say, change_id, environment, serve
        )
    if as_json:
        print_json(out, result.to_json())
    else:
        print_fleet(out, result)
    if result.stopped is not None:
        err.print(escape(stopped_line(result.stopped)), soft_wrap=True)
    exit_with(result.exit_code)


def print_fleet(console: Console, report: FleetReport) -> None:
    """A row per watched deployment, then the evaluation lag over them all."""
    table = Table(title=f"{len(report.outcomes)} deployments watched", title_justify="left")
    for column in ("service", "run", "outcome", "message"):
        table.add_column(column, overflow="fold")
    for outcome in report.outcomes:
        run = outcome.report
        if run is None:
            shown = "stopped" if outcome.stopped else "failed"
            row = (outcome.service, outcome.run_id or "-", styled(shown), escape(outcome.error))
            table.add_row(*row)
            continue
        shown = run.result or run.status
        message = outcome.error or run.message
        table.add_row(outcome.service, run.run_id, styled(shown), escape(message))
    console.print(table)
    console.print(f"evaluation lag: {report.lag.text()}", soft_wrap=True)


def _say(line: str) -> None:
    out.print(f"{time.strftime('%H:%M:%S')} {escape(line)}", soft_wrap=True)


@click.command(name="trigger")
@click.argument("service")
@click.option("--reason", required=True, help="Why: it is journaled and audited.")
@json_option
@click.pass_context
def trigger_cmd(ctx: click.Context, service: str, reason: str, as_json: bool) -> None:
    """Make the running deploy or watch of SERVICE back out now."""
    result = commands.trigger(caller_of(ctx), service, reason)
    if as_json:
        print_json(out, result)
    else:
        out.print(f"run {result.run_id} of {service} will back out at its next tick")


@click.command()
@click.argument("run_id")
@click.option("--comment", default="", help="Why you approve (kept in the audit trail).")
@json_option
@click.pass_context
def approve(ctx: click.Context, run_id: str, comment: str, as_json: bool) -> None:
    """Approve the checkpoint a deploy is waiting at."""
    result = commands.approve(caller_of(ctx), run_id, comment)
    if as_json:
        print_json(out, result)
    else:
        out.print(f"approved stage {result.stage} of run {result.run_id}")


@click.command()
@click.argument("run_id")
@json_option
@click.pass_context
def explain(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Why a run backed out (or was promoted): triggers, evidence, what was undone."""
    report, lines = commands.explain_run(caller_of(ctx, create=False), run_id)
    if as_json:
        print_json(out, {"run": report.to_json(), "explanation": lines})
        return
    for line in lines:
        out.print(escape(line), soft_wrap=True, highlight=False)


COMMANDS: list[click.Command] = [deploy, watch, trigger_cmd, approve, explain]
