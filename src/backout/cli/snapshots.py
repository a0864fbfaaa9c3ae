"""``backout snapshots SERVICE``: the baselines recorded for a service, and one's values."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from rich.markup import escape
from rich.table import Table

from backout import commands
from backout.cli.base import caller_of, err, json_option, out
from backout.render import clock, print_json, telemetry_line

if TYPE_CHECKING:
    from backout.reports import SnapshotSummary


@click.command()
@click.argument("service")
@click.option(
    "--show",
    "snapshot_id",
    type=int,
    metavar="ID",
    help="Print this snapshot's values and telemetry readings instead of the list.",
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
def snapshots(
    ctx: click.Context, service: str, snapshot_id: int | None, limit: int, as_json: bool
) -> None:
    """List the baselines recorded for SERVICE, newest first (the first is the one a new
    run uses). A service in an environment is SERVICE@ENV. A service with none prints a
    line saying so and exits 0."""
    caller = caller_of(ctx, create=False)
    if snapshot_id is not None:
        shown = commands.snapshot_show(caller, service, snapshot_id)
        print_json(out, shown) if as_json else _print_values(shown)
        return
    rows = commands.snapshots(caller, service, limit)
    if as_json:
        print_json(out, rows)
    elif rows:
        out.print(_table(rows))
    else:
        known = commands.snapshot_services(caller)
        hint = f" (services with snapshots: {', '.join(known)})" if known else ""
        err.print(escape(f"no snapshots for service {service!r}{hint}"), soft_wrap=True)


def _table(rows: list[SnapshotSummary]) -> Table:
    table = Table()
    table.add_column("id", no_wrap=True, justify="right")
    for column in ("taken (UTC)", "values", "signals", "plan", "by", "source"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row.snapshot_id),
            clock(row.taken_at),
            str(row.values_count),
            escape(", ".join(row.signals)) or "-",
            escape(f"{row.plan} {row.plan_version[:8]}"),
            escape(row.actor),
            escape(row.source),
        )
    return table


def _print_values(row: SnapshotSummary) -> None:
    out.print(
        escape(
            f"snapshot #{row.snapshot_id} of {row.service}, taken {clock(row.taken_at)} UTC "
            f"by {row.actor} ({row.source}), plan {row.plan} {row.plan_version[:8]}:"
        ),
        soft_wrap=True,
    )
    for key, value in (row.values or {}).items():
        out.print(f"  {escape(key)} = {escape(value)}", soft_wrap=True)
    for name, reading in (row.telemetry or {}).items():
        out.print(f"  {telemetry_line(name, reading)}", soft_wrap=True)


COMMANDS: list[click.Command] = [snapshots]
