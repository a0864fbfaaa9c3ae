"""Rehearsals: `rehearse` drills a plan's backout; `rehearsals` lists the evidence."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape
from rich.table import Table

from backout import commands
from backout.cli.base import caller_of, env_option, exit_with, json_option, live_progress, out
from backout.errors import UsageError
from backout.render import clock, print_json, seconds, styled

if TYPE_CHECKING:
    from backout.reports import RehearsalReport


@click.command()
@click.argument("plan", type=click.Path(dir_okay=False))
@click.option(
    "--trigger",
    type=click.Choice(["auto", "manual"]),
    default="auto",
    show_default=True,
    help="auto: the plan's triggers must detect the break; manual: time the backout alone.",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="KIND:KEY=VALUE,…",
    help="Inject a fault into the backout, e.g. 'slow:step=switch back,by=2s' (repeatable).",
)
@click.option(
    "--times",
    default=1,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Drill this many times in a row (each one recorded).",
)
@click.option("--junit", type=click.Path(dir_okay=False), help="Write JUnit XML here.")
@click.option(
    "--report",
    type=click.Path(dir_okay=False),
    help="Write an evidence report here: Markdown, or HTML for a .html name.",
)
@env_option
@json_option
@click.pass_context
def rehearse(
    ctx: click.Context,
    plan: str,
    trigger: str,
    faults: tuple[str, ...],
    times: int,
    junit: str | None,
    report: str | None,
    environment: str | None,
    as_json: bool,
) -> None:
    """Drill the plan's backout (in staging): break, detect, back out, verify, time it.

    Exit 0 when every drill passed, 1 when one failed, 3 when one needs an operator."""
    from backout.drills import evidence_html, evidence_markdown, junit_xml, percentiles

    specs = [commands.rehearsal_fault(text) for text in faults]
    for path in filter(None, (junit, report)):
        _writable(path)  # before the drills: a bad path must not cost a drill's evidence
    reports: list[RehearsalReport] = []
    for _ in range(times):
        with live_progress(ctx, enabled=not as_json) as progress:
            drill = commands.rehearse(
                caller_of(ctx),
                plan,
                trigger == "manual",
                specs,
                observer=progress,
                environment=environment,
            )
        reports.append(drill)
        if not as_json:
            print_drill(drill)
        if drill.exit_code == 3 or drill.exit_code > 128:  # an operator, or a stop
            break
    if junit:
        try:
            Path(junit).write_text(junit_xml(reports), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write the JUnit report {junit}: {exc.strerror}") from exc
    if report:
        text = evidence_html(reports) if report.endswith(".html") else evidence_markdown(reports)
        Path(report).write_text(text, encoding="utf-8")
    summary = percentiles(reports)
    if as_json:
        print_json(out, {"drills": reports, "percentiles": summary})
    elif len(reports) > 1:
        _print_percentiles(reports, summary)
    exit_with(max(r.exit_code for r in reports))


def _writable(path: str) -> None:
    try:
        Path(path).touch()
    except OSError as exc:
        raise UsageError(
            f"cannot write the report {path}: {exc.strerror}",
            hint="choose a path in a folder this user can write",
        ) from exc


def print_drill(report: RehearsalReport) -> None:
    from backout.drills import PHASES

    verdict = "[green]passed[/]" if report.passed else "[red]FAILED[/]"
    if report.exit_code == 3:
        verdict = "[yellow]needs attention[/]"
    elif report.passed and report.fits_rto is False:
        verdict = "[red]passed, but over the rto[/]"
    out.print(
        f"rehearsal of {report.plan} (run {report.run.run_id}): {verdict} — "
        f"{escape(report.message)}",
        soft_wrap=True,
    )
    phases = report.phases
    parts = [f"{name[:-2]} {seconds(phases.get(name))}" for name in PHASES if name in phases]
    rto = ""
    if report.fits_rto is not None:
        rto = f" (rto {seconds(report.rto_s)}: {'fits' if report.fits_rto else 'EXCEEDED'})"
    if parts:
        out.print("  " + " · ".join(parts) + rto, soft_wrap=True)
    for fault in report.faults:
        acted = "acted" if fault.get("acted") else "[yellow]never acted[/]"
        out.print(f"  fault: {escape(str(fault.get('described', fault['kind'])))} ({acted})")


def _print_percentiles(
    reports: list[RehearsalReport], summary: dict[str, dict[str, float | None]]
) -> None:
    passed = sum(1 for r in reports if r.passed)
    table = Table(title=f"{len(reports)} drills, {passed} passed", title_justify="left")
    for column in ("phase", "p50", "p95"):
        table.add_column(column)
    for phase, values in summary.items():
        table.add_row(phase[:-2], seconds(values["p50"]), seconds(values["p95"]))
    out.print(table)


@click.command()
@click.option("--plan", help="Only this plan's drills.")
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(1, 10000),
    help="At most this many.",
)
@json_option
@click.pass_context
def rehearsals(ctx: click.Context, plan: str | None, limit: int, as_json: bool) -> None:
    """List recorded rehearsals, newest first (the evidence the gate reads)."""
    rows = commands.rehearsals(caller_of(ctx, create=False), plan, limit)
    if as_json:
        print_json(out, rows)
        return
    table = Table()
    for column in ("id", "plan", "env", "version", "outcome", "total", "when (UTC)", "actor"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row.id),
            row.plan,
            row.environment or "-",
            row.plan_version,
            styled(row.outcome),
            seconds(row.total_s),
            clock(row.at),
            escape(row.actor or ""),
        )
    out.print(table)


@click.group()
def drills() -> None:
    """Which plans need a drill (for a nightly CI job)."""


@drills.command("due")
@click.argument("plans", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--policy",
    metavar="FILE",
    envvar="BACKOUT_POLICY",
    help="Policy file (default ./backout-policy.yaml, else built in; env BACKOUT_POLICY).",
)
@json_option
@click.pass_context
def drills_due(
    ctx: click.Context, plans: tuple[str, ...], policy: str | None, as_json: bool
) -> None:
    """List each plan's rehearsal status; exit 1 when any plan is due for a drill.

    A plan is due when the gate would refuse its rehearsal: none passed for this plan
    version, the latest is older than the policy allows for its risk, or it did not fit
    the rto. A backout whose latest drill took 20% longer than usual is flagged."""
    rows = commands.drills_due(caller_of(ctx, create=False), plans, policy)
    if as_json:
        print_json(out, rows)
    else:
        for row in rows:
            mark = (
                "[red]DUE[/]" if row.due else ("[green]ok [/]" if row.required else "[dim]n/a[/]")
            )
            out.print(
                f"{mark} {row.plan} ({row.file}, risk {row.risk}): {escape(row.reason)}",
                soft_wrap=True,
            )
            if row.slower:
                out.print(f"    [yellow]slower[/]: {escape(row.slower)}", soft_wrap=True)
    exit_with(max((r.exit_code for r in rows), default=0))


COMMANDS: list[click.Command] = [rehearse, rehearsals, drills]
