"""``backout notify``: the notify events, a test message per channel, delivering what is
queued."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from backout import commands
from backout.cli.audit import print_send_report
from backout.cli.base import (
    DURATION,
    Duration,
    caller_of,
    env_option,
    exit_with,
    json_option,
    max_attempts_option,
    out,
)
from backout.kernel.events import NOTIFY_EVENTS
from backout.render import print_json


@click.group(name="notify")
def notify_group() -> None:
    """Notifications: which events a plan's `notify:` routes, test messages, delivery."""


@notify_group.command("events")
@json_option
def notify_events(as_json: bool) -> None:
    """List the notify events a route may name (`*` names them all)."""
    if as_json:
        print_json(out, dict(NOTIFY_EVENTS))
        return
    table = Table(box=None, show_header=False, pad_edge=False)
    for name, description in NOTIFY_EVENTS.items():
        table.add_row(name, description)
    out.print(table)


@notify_group.command("test")
@click.argument("plan", type=click.Path(dir_okay=False))
@click.option(
    "--channel",
    "channels",
    multiple=True,
    metavar="NAME",
    help="Only this channel of notify.channels (repeatable); default: every one.",
)
@click.option(
    "--timeout",
    default="15s",
    show_default=True,
    type=Duration(minimum=0.1),
    help="How long to wait for the channels to answer.",
)
@env_option
@json_option
@click.pass_context
def notify_test(
    ctx: click.Context,
    plan: str,
    channels: tuple[str, ...],
    timeout: float,
    environment: str | None,
    as_json: bool,
) -> None:
    """Send a test message through each channel the plan configures; exit 1 if any
    channel did not take it (each is tried once; the error says why)."""
    report = commands.notify_test(
        caller_of(ctx), plan, list(channels) or None, environment, timeout
    )
    if as_json:
        print_json(out, report)
    else:
        for result in report.results:
            verdict = "[green]ok[/]" if result.ok else f"[red]failed[/]: {escape(result.error)}"
            out.print(f"{escape(result.channel)} ({result.kind}): {verdict}", soft_wrap=True)
    exit_with(report.exit_code)


@notify_group.command("send")
@click.option(
    "--timeout",
    default="60s",
    show_default=True,
    type=DURATION,
    help="Keep retrying this long (30s, 10m).",
)
@click.option(
    "--retry-delay",
    default="1s",
    show_default=True,
    type=Duration(minimum=0.01),
    help="First retry delay; doubles (with jitter) up to 5 minutes.",
)
@max_attempts_option
@click.option("--once", is_flag=True, help="One pass: send what is due, then exit.")
@json_option
@click.pass_context
def notify_send(
    ctx: click.Context,
    timeout: float,
    retry_delay: float,
    max_attempts: int,
    once: bool,
    as_json: bool,
) -> None:
    """Deliver queued notifications (of any run); exit 1 if some are still pending.
    Commands that run a backout deliver their own as they go; this sends what they could
    not (a channel was down, the process was killed)."""
    report = commands.notify_send(caller_of(ctx), timeout, once, retry_delay, max_attempts)
    print_send_report(report, as_json)


COMMANDS: list[click.Command] = [notify_group]
