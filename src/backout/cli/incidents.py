"""``backout incident`` (move a service's incident by hand, list incidents) and
``backout status-page build`` (the static page, status.json and the Atom feed)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import click
from rich.markup import escape
from rich.table import Table

from backout import commands
from backout.cli.base import caller_of, json_option, out
from backout.render import print_json

if TYPE_CHECKING:
    from backout.reports import IncidentReport

# backout.statuspage's INCIDENT_STATUSES and COMPONENT_STATUSES (tests/unit/test_startup.py
# keeps them equal), spelled here so that the help loads no store or templates
INCIDENT_STATUSES = ("investigating", "identified", "monitoring", "resolved", "postmortem")
COMPONENT_STATUSES = (
    "operational",
    "under_maintenance",
    "degraded_performance",
    "partial_outage",
    "major_outage",
)


def _when(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@click.group(name="incident")
def incident_group() -> None:
    """Incidents on the status page: post an update by hand, list them."""


@incident_group.command("update")
@click.argument("service")
@click.option(
    "--status",
    required=True,
    type=click.Choice(INCIDENT_STATUSES),
    help="The incident's phase from now on.",
)
@click.option("--message", required=True, metavar="TEXT", help="What readers are told.")
@click.option(
    "--component-status",
    type=click.Choice(COMPONENT_STATUSES),
    help="The component's state from now on (default: as it was; operational once resolved).",
)
@click.option("--title", metavar="TEXT", help="The title of an incident this update opens.")
@click.option("--internal", is_flag=True, help="A note for the team: never published.")
@json_option
@click.pass_context
def incident_update(
    ctx: click.Context,
    service: str,
    status: str,
    message: str,
    component_status: str | None,
    title: str | None,
    internal: bool,
    as_json: bool,
) -> None:
    """Post an update to SERVICE's incident (its open one, else a new one; a postmortem
    goes to its latest resolved one). SERVICE is as runs name it: `shop`, `shop@prod`."""
    report = commands.incident_update(
        caller_of(ctx), service, status, message, component_status, internal, title
    )
    if as_json:
        print_json(out, report.to_json())
        return
    last = report.updates[-1]
    note = " (internal note)" if last.internal else ""
    out.print(
        escape(
            f"incident {report.id} ({report.component}): {report.status}, component "
            f"{last.component_status}{note}"
        ),
        soft_wrap=True,
    )


@incident_group.command("list")
@click.option("--service", metavar="SERVICE", help="Only this service's incidents.")
@click.option("--open", "open_only", is_flag=True, help="Only open incidents.")
@json_option
@click.pass_context
def incident_list(ctx: click.Context, service: str | None, open_only: bool, as_json: bool) -> None:
    """List incidents, newest first, internal ones too (after resolving those whose quiet
    period has passed)."""
    reports = commands.incidents(caller_of(ctx, create=False), service, open_only)
    if as_json:
        print_json(out, [r.to_json() for r in reports])
        return
    if not reports:
        out.print("no incidents")
        return
    out.print(_table(reports))


def _table(reports: list[IncidentReport]) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("id", "service", "component", "status", "impact", "updated", "last update"):
        table.add_column(column)
    for r in reports:
        last = r.updates[-1] if r.updates else None
        text = (last.message if last else "") + (" [internal]" if r.internal else "")
        table.add_row(
            str(r.id),
            escape(r.service),
            escape(r.component),
            r.status,
            r.impact,
            _when(r.updated_at),
            escape(text),
        )
    return table


@click.group(name="status-page")
def status_page_group() -> None:
    """The public status page: a static page, status.json and an Atom feed."""


@status_page_group.command("build")
@click.argument("out_dir", type=click.Path(file_okay=True, dir_okay=True))
@click.option("--title", default="Status", show_default=True, help="The page's name.")
@click.option(
    "--url",
    default="",
    metavar="URL",
    help="Where the page will be served (absolute links in status.json and the feed).",
)
@click.option(
    "--days",
    default=7,
    show_default=True,
    type=click.IntRange(min=1, max=3650),
    help="Show incidents resolved in the last N days.",
)
@json_option
@click.pass_context
def status_page_build(
    ctx: click.Context, out_dir: str, title: str, url: str, days: int, as_json: bool
) -> None:
    """Write OUT_DIR/index.html, status.json, incidents.json and feed.atom; nothing marked
    internal is published. Safe to run from cron: each file is replaced whole."""
    report = commands.status_page_build(caller_of(ctx, create=False), out_dir, title, days, url)
    if as_json:
        print_json(out, report.to_json())
        return
    withheld = sum(report.withheld.values())
    out.print(
        escape(
            f"{report.out_dir}: {report.description}; {report.components} component(s), "
            f"{report.open_incidents} open incident(s), {report.resolved_incidents} resolved "
            f"in the last {days} days"
            + (f"; {withheld} internal item(s) withheld" if withheld else "")
        ),
        soft_wrap=True,
    )


COMMANDS: list[click.Command] = [incident_group, status_page_group]
