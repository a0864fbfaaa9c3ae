"""The audit trail and the ITSM outbox."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING, NoReturn

import click
from rich.markup import escape

from backout import commands
from backout.changes.window import iso, parse_instant
from backout.cli.base import (
    caller_of,
    err,
    exit_with,
    json_option,
    out,
    send_options,
)
from backout.render import clock, print_json

if TYPE_CHECKING:
    from backout.channels import SendReport

# backout.store.outbox.ITSM_ROUTE (tests/unit/test_startup.py keeps them equal), spelled
# here so that the help loads no store
ITSM_ROUTE = "itsm"


@click.group(name="audit")
def audit_group() -> None:
    """The tamper-evident audit trail."""


@audit_group.command("log")
@click.option("--action", help="Action prefix, e.g. change. or run.finished")
@click.option("--subject", help="e.g. change:3 or run:4f2a…")
@click.option("--by", "actor", help="Only this actor.")
@click.option("--since", help="ISO 8601 time.")
@click.option(
    "--limit", default=100, show_default=True, type=click.IntRange(1), help="At most this many."
)
@json_option
@click.pass_context
def audit_log(
    ctx: click.Context,
    action: str | None,
    subject: str | None,
    actor: str | None,
    since: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List audit records, oldest first."""
    rows = commands.audit_log(
        caller_of(ctx, create=False),
        action,
        subject,
        actor,
        parse_instant(since) if since else None,
        limit,
    )
    if as_json:
        print_json(out, rows)
        return
    for row in rows:
        details = ", ".join(f"{k}={v}" for k, v in row.details.items())
        out.print(
            f"{row.seq:>5}  {clock(row.at)}  {escape(row.actor)}  "
            f"{row.action}  {row.subject}  [dim]{escape(details)}[/]",
            soft_wrap=True,
        )


@audit_group.command("verify")
@click.option("--against", metavar="HASH", help="A checkpoint hash the log must still contain.")
@json_option
@click.pass_context
def audit_verify(ctx: click.Context, against: str | None, as_json: bool) -> None:
    """Walk the chain; exit 1 naming the first broken link."""
    result = commands.audit_verify(caller_of(ctx, create=False), against)
    if as_json:
        print_json(out, vars(result))
    elif result.ok:
        out.print(
            f"[green]audit chain intact[/]: {result.records} records, head {result.head_hash}"
            + (f", extends checkpoint {against.strip().lower()}" if against else ""),
            soft_wrap=True,
        )
    else:
        err.print(f"[red]audit chain broken[/]: {escape(result.problem)}", soft_wrap=True)
    exit_with(result.exit_code)


@audit_group.command("checkpoint")
@json_option
@click.pass_context
def audit_checkpoint(ctx: click.Context, as_json: bool) -> None:
    """Print the head hash; keep it elsewhere to prove the log later."""
    head = commands.audit_checkpoint(caller_of(ctx, create=False))
    if as_json:
        print_json(out, head)
    else:
        out.print(f"{head.hash}  (record {head.seq}, {iso(head.at)})", soft_wrap=True)


@click.group(name="outbox")
def outbox_group() -> None:
    """Outbound events: change records queued for the ITSM tool (route `itsm`)."""


@outbox_group.command("send")
@click.option(
    "--url",
    envvar="BACKOUT_OUTBOX_URL",
    required=True,
    help="Base URL, e.g. https://acme.service-now.com (env BACKOUT_OUTBOX_URL).",
)
@click.option(
    "--format",
    "--channel",
    "fmt",
    envvar="BACKOUT_OUTBOX_FORMAT",
    default="servicenow",
    show_default=True,
    metavar="CHANNEL",
    help="The channel that delivers: servicenow, jira, or an installed plugin's name.",
)
@click.option(
    "--route",
    default=ITSM_ROUTE,
    show_default=True,
    help="Which queued events to deliver (change records are queued for `itsm`).",
)
@click.option(
    "--project",
    envvar="BACKOUT_OUTBOX_PROJECT",
    default="CHG",
    show_default=True,
    help="Jira project key.",
)
@send_options
@json_option
@click.pass_context
def outbox_send(
    ctx: click.Context,
    url: str,
    fmt: str,
    route: str,
    project: str,
    timeout: float,
    retry_delay: float,
    max_attempts: int,
    once: bool,
    as_json: bool,
) -> None:
    """Deliver queued events; exit 1 if any are still pending at the end."""
    from backout.channels import Route

    options = {"url": url, "token": os.environ.get("BACKOUT_OUTBOX_TOKEN"), "project": project}
    target = replace(Route.of(route, fmt, options, retry_delay), max_attempts=max_attempts)
    report = commands.outbox_send(caller_of(ctx), target, timeout, once)
    print_send_report(report, as_json)


@outbox_group.command("retry")
@click.argument("ids", nargs=-1, type=int, metavar="[ID]...")
@click.option("--dead", is_flag=True, help="Every dead-lettered event (of --route, if given).")
@click.option("--route", help="Only events of this route (itsm, notify:ops-chat …).")
@json_option
@click.pass_context
def outbox_retry(
    ctx: click.Context, ids: tuple[int, ...], dead: bool, route: str | None, as_json: bool
) -> None:
    """Make events due again now, with a fresh retry budget: those given by id, or with
    --dead every dead-lettered one. The next send (or a running command) delivers them."""
    if not ids and not dead:
        raise click.UsageError("give event ids, or --dead")
    rows = commands.outbox_retry(caller_of(ctx, create=False), list(ids), dead, route)
    if as_json:
        print_json(out, rows)
        return
    out.print(f"requeued {len(rows)} event(s)" + (": " if rows else ""), end="")
    out.print(", ".join(str(r.id) for r in rows))


@outbox_group.command("list")
@click.option(
    "--status",
    type=click.Choice(["pending", "sending", "sent", "dead"]),
    help="Only events in this state.",
)
@click.option("--route", help="Only events queued for this route (e.g. itsm).")
@json_option
@click.pass_context
def outbox_list(ctx: click.Context, status: str | None, route: str | None, as_json: bool) -> None:
    """List queued and delivered events, newest first."""
    rows = commands.outbox_list(caller_of(ctx, create=False), status, route)
    if as_json:
        print_json(out, rows)
        return
    for row in rows:
        out.print(
            f"{row.id:>5}  {row.route:<6} {row.stream:<14} {row.event:<13} "
            f"{row.status:<8} attempts {row.attempts}  "
            f"{escape((row.last_error or '')[:80])}"
        )


def print_send_report(report: SendReport, as_json: bool) -> NoReturn:
    """Print what a send did and exit 1 if events are still pending."""
    if as_json:
        print_json(out, report)
    else:
        dead = (
            f", dead-lettered {report.dead} (`backout outbox retry --dead`)" if report.dead else ""
        )
        out.print(
            f"sent {report.sent}, failed attempts {report.failed_attempts}, "
            f"still pending {report.pending}{dead}"
        )
        for error in report.errors[-5:]:
            err.print(f"  {escape(error)}", soft_wrap=True)
    exit_with(report.exit_code)


COMMANDS: list[click.Command] = [audit_group, outbox_group]
