"""Change records and the deploy gate."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape
from rich.table import Table

from backout import commands
from backout.changes.lifecycle import ChangeStatus
from backout.changes.risk import LEVELS
from backout.cli.base import caller_of, exit_with, json_option, out
from backout.errors import UsageError
from backout.render import clock, print_json, styled

if TYPE_CHECKING:
    from backout.reports import ChangeReport

RISKS = click.Choice(LEVELS)
SHOWN_DRILLS = 5  # `change show` lists the newest rehearsals; the rest are a command away


def _print_change(report: ChangeReport, as_json: bool) -> None:
    if as_json:
        print_json(out, report.to_json())
        return
    out.print(f"[bold]change {report.id}[/] · {escape(report.title)} · {styled(report.status)}")
    risk = (
        report.risk
        if report.risk == report.risk_computed
        else (f"{report.risk} (computed from the plan: {report.risk_computed})")
    )
    out.print(f"plan {report.plan} version {report.plan_version} · service {report.service}")
    out.print(f"risk {risk}")
    for reason in report.risk_reasons:
        out.print(f"  - {escape(reason)}", soft_wrap=True)
    if report.plan_version_now is None:
        out.print(
            f"[yellow]the plan file {escape(report.plan_file)} no longer loads[/]", soft_wrap=True
        )
    elif report.plan_version_now != report.plan_version:
        out.print(
            f"[yellow]the plan file changed since the change was created "
            f"(now version {report.plan_version_now}): approvals of the earlier version "
            "no longer count[/]",
            soft_wrap=True,
        )
    out.print(
        f"requester {escape(report.requester)} · window {report.window or 'none'} · "
        f"ref {report.ref or '-'}"
    )
    for a in report.approvals:
        stale = "" if a["current"] else " [yellow](for an earlier plan version)[/]"
        out.print(
            f"  {a['decision']} by {escape(a['actor'])} at {clock(a['at'])}{stale}"
            + (f": {escape(a['comment'])}" if a["comment"] else "")
        )
    for run in report.runs:
        out.print(f"  run {run['run_id']} {styled(run['status'])}")
    for drill in report.rehearsals[:SHOWN_DRILLS]:
        where = f" in {drill['environment']}" if drill["environment"] else ""
        stale = "" if drill["current"] else " [yellow](an earlier plan version)[/]"
        out.print(
            f"  rehearsal {drill['id']}{where} {styled(drill['outcome'])} in "
            f"{drill['total_s']:.2f}s at {clock(drill['at'])}{stale}",
            soft_wrap=True,
        )
    total = max(report.rehearsals_total, len(report.rehearsals))
    earlier = total - SHOWN_DRILLS
    if earlier > 0:
        command = f"backout rehearsals --plan {shlex.quote(report.plan)} --limit {total}"
        drills = "rehearsal" if earlier == 1 else "rehearsals"
        out.print(escape(f"  and {earlier} earlier {drills}: `{command}` lists them all"))


@click.group()
def change() -> None:
    """Change records: create, approve, track a change and its backout."""


@change.command("create")
@click.option(
    "--plan",
    "plan",
    required=True,
    type=click.Path(dir_okay=False),
    help="The plan file that backs the change out.",
)
@click.option("--title", required=True, help="What the change does, in a line.")
@click.option("--risk", type=RISKS, help="Given risk; computed from the plan when omitted.")
@click.option("--window", metavar="START..END", help="ISO 8601, e.g. 2026-12-01T22:00..23:30")
@click.option("--ref", metavar="EXTERNAL-ID", help="The change's id in another system.")
@json_option
@click.pass_context
def change_create(
    ctx: click.Context,
    plan: str,
    title: str,
    risk: str | None,
    window: str | None,
    ref: str | None,
    as_json: bool,
) -> None:
    """Record a planned change that carries PLAN as its backout."""
    _print_change(commands.changes.create(caller_of(ctx), plan, title, risk, window, ref), as_json)


@change.command("list")
@click.option(
    "--status",
    type=click.Choice([s.value for s in ChangeStatus]),
    help="Only changes in this state.",
)
@json_option
@click.pass_context
def change_list(ctx: click.Context, status: str | None, as_json: bool) -> None:
    """List change records, newest first."""
    rows = commands.changes.list_all(caller_of(ctx, create=False), status)
    if as_json:
        print_json(out, rows)
        return
    table = Table()
    for column in ("id", "title", "status", "plan", "risk", "requester", "window"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row.id),
            escape(row.title),
            styled(row.status),
            row.plan,
            row.risk,
            escape(row.requester),
            row.window or "-",
        )
    out.print(table)


@change.command("show")
@click.argument("change_id", type=int)
@json_option
@click.pass_context
def change_show(ctx: click.Context, change_id: int, as_json: bool) -> None:
    """Show a change: risk, approvals, runs."""
    _print_change(commands.changes.show(caller_of(ctx, create=False), change_id), as_json)


policy_option = click.option(
    "--policy",
    type=click.Path(dir_okay=False),
    envvar="BACKOUT_POLICY",
    help="Policy file (default ./backout-policy.yaml, else built in; env BACKOUT_POLICY).",
)
plan_option = click.option(
    "--plan",
    "plan_path",
    type=click.Path(dir_okay=False),
    help="The change's plan file as checked out here (default: the path recorded at create).",
)


@change.command("approve")
@click.argument("change_id", type=int)
@click.option("--comment", default="", help="Why you approve (kept in the audit trail).")
@policy_option
@plan_option
@json_option
@click.pass_context
def change_approve(
    ctx: click.Context,
    change_id: int,
    comment: str,
    policy: str | None,
    plan_path: str | None,
    as_json: bool,
) -> None:
    """Approve a change (as --actor); binds to the plan version you approve."""
    report = commands.changes.approve(caller_of(ctx), change_id, comment, policy, plan_path)
    _print_change(report, as_json)


@change.command("reject")
@click.argument("change_id", type=int)
@click.option("--comment", default="", help="Why you reject (kept in the audit trail).")
@json_option
@click.pass_context
def change_reject(ctx: click.Context, change_id: int, comment: str, as_json: bool) -> None:
    """Reject a change."""
    _print_change(commands.changes.reject(caller_of(ctx), change_id, comment), as_json)


def _transition_command(name: str, target: ChangeStatus, help_text: str) -> None:
    @change.command(name, help=help_text)
    @click.argument("change_id", type=int)
    @click.option("--note", default="", help="A note for the change's history.")
    @json_option
    @click.pass_context
    def command(ctx: click.Context, change_id: int, note: str, as_json: bool) -> None:
        _print_change(commands.changes.transition(caller_of(ctx), change_id, target, note), as_json)


@change.command("start")
@click.argument("change_id", type=int)
@click.option("--note", default="", help="A note for the change's history.")
@policy_option
@plan_option
@click.option(
    "--override",
    metavar="REASON",
    help="Start even though policy checks fail (an emergency); the reason is audited.",
)
@json_option
@click.pass_context
def change_start(
    ctx: click.Context,
    change_id: int,
    note: str,
    policy: str | None,
    plan_path: str | None,
    override: str | None,
    as_json: bool,
) -> None:
    """Start an approved change; refused unless every policy check passes (see `gate`)."""
    report = commands.changes.start(caller_of(ctx), change_id, note, policy, plan_path, override)
    _print_change(report, as_json)


_transition_command("complete", ChangeStatus.COMPLETED, "Close a change that went well.")
_transition_command("fail", ChangeStatus.FAILED, "Close a change that failed.")


@click.command()
@click.argument("change_id", type=int)
@policy_option
@plan_option
@click.option("--junit", type=click.Path(dir_okay=False), help="Write JUnit XML here.")
@json_option
@click.pass_context
def gate(
    ctx: click.Context,
    change_id: int,
    policy: str | None,
    plan_path: str | None,
    junit: str | None,
    as_json: bool,
) -> None:
    """Exit 0 when the change may start, 1 when any policy check fails (for CI)."""
    report = commands.changes.gate(caller_of(ctx, create=False), change_id, policy, plan_path)
    if junit:
        try:
            Path(junit).write_text(report.junit_xml(), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write the JUnit report {junit}: {exc.strerror}") from exc
    if as_json:
        print_json(out, report.to_json())
    else:
        out.print(f"gate for change {change_id} (risk {report.risk}, policy {report.policy})")
        for check in report.checks:
            mark = "[green]pass[/]" if check.passed else "[red]FAIL[/]"
            if check.passed and not check.required:
                mark = "[dim]n/a [/]"
            out.print(f"  {mark} {check.name:<11} {escape(check.reason)}", soft_wrap=True)
        out.print(
            "[green]the change may start[/]"
            if report.passed
            else "[red]the change may not start[/]"
        )
    exit_with(report.exit_code)


COMMANDS: list[click.Command] = [change, gate]
