"""``backout notify``: the notify events, a test message per channel, delivering what is
queued."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from rich.markup import escape
from rich.table import Table

from backout import commands
from backout.cli.audit import print_send_report
from backout.cli.base import (
    Duration,
    caller_of,
    env_option,
    exit_with,
    json_option,
    out,
    send_options,
)
from backout.kernel.durations import format_duration
from backout.kernel.events import NOTIFY_EVENTS
from backout.render import print_json
from backout.stop import on_signals

if TYPE_CHECKING:
    from backout.notify.pagerduty_acks import Taken


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
@send_options
@click.option(
    "--follow",
    is_flag=True,
    help="Keep escalating and delivering until SIGTERM or Ctrl-C (a sidecar or service).",
)
@json_option
@click.pass_context
def notify_send(
    ctx: click.Context,
    timeout: float,
    retry_delay: float,
    max_attempts: int,
    once: bool,
    follow: bool,
    as_json: bool,
) -> None:
    """Queue due escalations and update reminders, then deliver queued notifications (of
    any run); exit 1 if some are still pending. Commands that run a backout do both as they
    go; this covers what they could not (a channel was down, the process was killed) and
    runs whose process has ended (a failed backout still escalates until `backout ack`)."""
    with on_signals():
        report = commands.notify_send(
            caller_of(ctx), timeout, once, retry_delay, max_attempts, follow=follow
        )
    print_send_report(report, as_json)


@notify_group.command("receive")
@click.option(
    "--listen",
    "listen",
    required=True,
    metavar="HOST:PORT",
    help="Where to serve POST /pagerduty, e.g. 127.0.0.1:9096.",
)
@click.option(
    "--secret-file",
    type=click.Path(dir_okay=False),
    help="The webhook subscription's secret, one a line (two while rotating); "
    "default: env BACKOUT_PAGERDUTY_WEBHOOK_SECRET.",
)
@json_option
@click.pass_context
def notify_receive(ctx: click.Context, listen: str, secret_file: str | None, as_json: bool) -> None:
    """Receive PagerDuty's V3 webhooks: an `incident.acknowledged` for an incident a run
    raised acknowledges the run, as `backout ack` would (audited, escalation stops). Every
    request must carry a valid X-PagerDuty-Signature. Runs until SIGTERM or Ctrl-C."""
    secrets = commands.webhook_secrets(secret_file)

    def ready(url: str) -> None:
        if not as_json:
            out.print(f"receiving PagerDuty webhooks at {url} (Ctrl-C to stop)")

    def taken(result: Taken) -> None:
        if not as_json and result.acknowledged:
            out.print(escape(result.message), soft_wrap=True)

    with on_signals():
        report = commands.receive_pagerduty(caller_of(ctx), listen, secrets, ready, taken)
    if as_json:
        print_json(out, report)
        return
    out.print(
        f"stopped: {len(report.acknowledged)} acknowledged, {report.ignored} ignored, "
        f"{report.refused} refused"
    )


@notify_group.command("update")
@click.argument("run_id")
@click.option("--message", "-m", required=True, help="The update, as people should read it.")
@json_option
@click.pass_context
def notify_update(ctx: click.Context, run_id: str, message: str, as_json: bool) -> None:
    """Post a status update about a run to the channels routed `run.updated` (audited; the
    first update's delay after the incident began is recorded)."""
    update = commands.notify_update(caller_of(ctx, create=False), run_id, message)
    if as_json:
        print_json(out, update)
        return
    told = ", ".join(update.told) or "no channel routes run.updated"
    first = (
        f"; first update, {format_duration(update.first_update_s)} after the incident began"
        if update.first_update_s is not None
        else ""
    )
    out.print(escape(f"update recorded for run {update.run_id} (told: {told}){first}"))


@click.command("ack")
@click.argument("run_id")
@click.option("--message", "-m", default="", help="What you are doing about it.")
@json_option
@click.pass_context
def ack(ctx: click.Context, run_id: str, message: str, as_json: bool) -> None:
    """Take a run that waits for a person: escalation stops, the channels routed
    `run.acknowledged` are told (PagerDuty acknowledges), and who took it is audited."""
    receipt = commands.ack(caller_of(ctx, create=False), run_id, message)
    if as_json:
        print_json(out, receipt)
        return
    waited = f" (it waited: {receipt.waiting_for})" if receipt.waiting_for else " (nothing waited)"
    told = ", ".join(receipt.told) or "no channel routes run.acknowledged"
    out.print(escape(f"run {receipt.run_id} acknowledged by {receipt.actor}{waited}; told: {told}"))


COMMANDS: list[click.Command] = [notify_group, ack]
