"""The audit trail and the ITSM outbox."""

from __future__ import annotations

import os
import sys

import click
from rich.markup import escape

from backout import commands
from backout.changes.outbox import Target
from backout.changes.window import iso, parse_instant
from backout.cli.base import err, json_option, out, settings_of
from backout.errors import UsageError
from backout.render import clock, print_json


@click.group(name="audit")
def audit_group() -> None:
    """The tamper-evident audit trail."""


@audit_group.command("log")
@click.option("--action", help="Action prefix, e.g. change. or run.finished")
@click.option("--subject", help="e.g. change:3 or run:4f2a…")
@click.option("--by", "actor", help="Only this actor.")
@click.option("--since", help="ISO 8601 time.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1))
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
        settings_of(ctx), action, subject, actor, parse_instant(since) if since else None, limit
    )
    if as_json:
        print_json(out, rows)
        return
    for row in rows:
        details = ", ".join(f"{k}={v}" for k, v in row["details"].items())
        out.print(
            f"{row['seq']:>5}  {clock(row['at'])}  {escape(row['actor'])}  "
            f"{row['action']}  {row['subject']}  [dim]{escape(details)}[/]",
            soft_wrap=True,
        )


@audit_group.command("verify")
@click.option("--against", metavar="HASH", help="A checkpoint hash the log must still contain.")
@json_option
@click.pass_context
def audit_verify(ctx: click.Context, against: str | None, as_json: bool) -> None:
    """Walk the chain; exit 1 naming the first broken link."""
    result = commands.audit_verify(settings_of(ctx), against)
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
    sys.exit(0 if result.ok else 1)


@audit_group.command("checkpoint")
@json_option
@click.pass_context
def audit_checkpoint(ctx: click.Context, as_json: bool) -> None:
    """Print the head hash; keep it elsewhere to prove the log later."""
    head = commands.audit_checkpoint(settings_of(ctx))
    if as_json:
        print_json(out, head)
    else:
        out.print(f"{head['hash']}  (record {head['seq']}, {iso(head['at'])})", soft_wrap=True)


@click.group(name="outbox")
def outbox_group() -> None:
    """Change events queued for the ITSM tool (ServiceNow or Jira)."""


@outbox_group.command("send")
@click.option(
    "--url",
    envvar="BACKOUT_OUTBOX_URL",
    required=True,
    help="Base URL, e.g. https://acme.service-now.com (env BACKOUT_OUTBOX_URL).",
)
@click.option(
    "--format",
    "fmt",
    envvar="BACKOUT_OUTBOX_FORMAT",
    default="servicenow",
    show_default=True,
    type=click.Choice(["servicenow", "jira"]),
)
@click.option(
    "--project",
    envvar="BACKOUT_OUTBOX_PROJECT",
    default="CHG",
    show_default=True,
    help="Jira project key.",
)
@click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Keep retrying for this many seconds.",
)
@click.option(
    "--retry-delay",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.01),
    help="First retry delay; doubles up to 5 minutes.",
)
@click.option("--once", is_flag=True, help="One pass: send what is due, then exit.")
@json_option
@click.pass_context
def outbox_send(
    ctx: click.Context,
    url: str,
    fmt: str,
    project: str,
    timeout: float,
    retry_delay: float,
    once: bool,
    as_json: bool,
) -> None:
    """Deliver queued events; exit 1 if any are still pending at the end."""
    if not url.startswith(("http://", "https://")):
        raise UsageError(
            f"--url {url!r} is not an http(s) URL",
            hint="the tool's base URL, e.g. https://acme.service-now.com",
        )
    token = os.environ.get("BACKOUT_OUTBOX_TOKEN")
    target = Target(
        url, "jira" if fmt == "jira" else "servicenow", token, project, retry_delay=retry_delay
    )
    report = commands.outbox_send(settings_of(ctx), target, timeout, once)
    if as_json:
        print_json(out, vars(report))
    else:
        out.print(
            f"sent {report.sent}, failed attempts {report.failed_attempts}, "
            f"still pending {report.pending}"
        )
        for error in report.errors[-5:]:
            err.print(f"  {escape(error)}", soft_wrap=True)
    sys.exit(0 if report.pending == 0 else 1)


@outbox_group.command("list")
@click.option("--status", type=click.Choice(["pending", "sending", "sent"]))
@json_option
@click.pass_context
def outbox_list(ctx: click.Context, status: str | None, as_json: bool) -> None:
    """List queued and delivered events."""
    rows = commands.outbox_list(settings_of(ctx), status)
    if as_json:
        print_json(out, rows)
        return
    for row in rows:
        out.print(
            f"{row['id']:>5}  change {row['change_id']}  {row['event']:<13} "
            f"{row['status']:<8} attempts {row['attempts']}  "
            f"{escape(row['last_error'][:80])}"
        )


COMMANDS: list[click.Command] = [audit_group, outbox_group]
