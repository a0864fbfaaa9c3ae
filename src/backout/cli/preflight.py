"""``backout preflight PLAN``: the plan's migrations, up → down → up on a throwaway database."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from rich.markup import escape

from backout import commands
from backout.cli.base import Duration, caller_of, exit_with, json_option, out
from backout.render import print_json
from backout.stop import on_signals

if TYPE_CHECKING:
    from backout.commands.preflight import PreflightReport


@click.command(name="preflight")
@click.argument("plan", type=click.Path(dir_okay=False))
@click.option(
    "--database",
    envvar="BACKOUT_PREFLIGHT_DATABASE",
    metavar="URL",
    help="A PostgreSQL server where a throwaway database is created and dropped "
    "(postgresql://postgres@127.0.0.1/postgres), or sqlite:// for a temporary SQLite file. "
    "Default: a temporary SQLite file, when every migration step names a SQLite URL.",
)
@click.option(
    "--timeout",
    type=Duration(minimum=1.0),
    default="5m",
    show_default=True,
    help="Time budget for each upgrade, downgrade and schema read.",
)
@json_option
@click.pass_context
def preflight_command(
    ctx: click.Context, plan: str, database: str | None, timeout: float, as_json: bool
) -> None:
    """Prove that PLAN's migrations reverse: for each `alembic` and `sql_migration` step,
    apply up, down, up on a database made for the purpose (dropped afterwards, also after a
    failure or Ctrl-C), and compare the schema after the down with the one before the up.
    Exit 1 listing every difference (a table, column, index, constraint or enum type the
    downgrade left behind or lost). The result is audited; a policy with `preflight: true`
    needs a passing one for the plan's version."""
    caller = caller_of(ctx)
    with on_signals():
        report = commands.preflight(caller, plan, database, timeout)
    if as_json:
        print_json(out, report)
    else:
        _print(report)
    exit_with(report.exit_code)


def _print(report: PreflightReport) -> None:
    out.print(
        escape(f"preflight of plan {report.plan} {report.plan_version[:8]} on {report.database}:"),
        soft_wrap=True,
    )
    for result in report.results:
        mark = "[green]ok[/]" if result.passed else "[red]FAILED[/]"
        where = escape(f"{result.kind} {result.migration} (step {result.step!r})")
        out.print(f"  {mark}   {where}", soft_wrap=True)
        if result.problem:
            out.print(f"        {escape(result.problem)}", soft_wrap=True)
        for label, changes in (
            ("after the downgrade, compared with before the upgrade", result.after_down),
            ("after upgrading again, compared with the first upgrade", result.after_reapply),
        ):
            if changes:
                out.print(f"        {label}:", soft_wrap=True)
                for change in changes:
                    out.print(f"          {escape(str(change))}", soft_wrap=True)
    failed = sum(1 for r in report.results if not r.passed)
    if failed:
        out.print(
            f"preflight [red]failed[/]: {failed} of {len(report.results)} migration(s) checked"
        )
    else:
        out.print(f"preflight [green]passed[/]: {len(report.results)} migration(s) round-tripped")


COMMANDS: list[click.Command] = [preflight_command]
