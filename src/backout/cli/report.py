"""``backout report``: a run's post-incident report draft, and ``--check`` of one."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import click
from rich.markup import escape

from backout import commands
from backout.cli.base import caller_of, err, exit_with, out
from backout.errors import UsageError
from backout.render import print_json

if TYPE_CHECKING:
    from backout.commands.report import SharedReport
    from backout.postmortem import Format, ReportCheck

# backout.postmortem.FORMATS (tests/unit/test_startup.py keeps them equal), spelled here
# so that the help loads no store or engine
FORMATS: tuple[Format, ...] = ("md", "html", "json")


@click.command(name="report")
@click.argument("run_id", required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="md",
    show_default=True,
    help="Markdown, one self-contained HTML file (charts inline), or JSON.",
)
@click.option(
    "--output",
    "-o",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Write the report here (Markdown: the charts go next to it as SVG files).",
)
@click.option(
    "--check",
    "check_file",
    metavar="FILE",
    type=click.Path(dir_okay=False, exists=True),
    help="Check a report's seal against the store: exit 0 it matches, 1 it does not.",
)
@click.option(
    "--attach",
    is_flag=True,
    help="Attach the report (Markdown) to the run's change record, through the ITSM outbox.",
)
@click.option(
    "--share",
    is_flag=True,
    help="Tell the plan's channels routed `run.report` that the report is drafted.",
)
@click.option(
    "--url",
    metavar="URL",
    help="Where the published report is read (linked from what --attach and --share send).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the --check result, what --output wrote, or where it was shared, as JSON.",
)
@click.pass_context
def report(
    ctx: click.Context,
    run_id: str | None,
    fmt: str,
    output: str | None,
    check_file: str | None,
    attach: bool,
    share: bool,
    url: str | None,
    as_json: bool,
) -> None:
    """Draft the post-incident report of run RUN_ID (or check one with --check FILE).

    The sections of the Google SRE post-mortem, filled from the run's journal, its audit
    records and its baseline snapshot; what only people know is left as TODO placeholders.
    The report carries the journal's SHA-256 and the audit chain's position: `--check`
    says whether the store still matches them. `--attach` adds the report to the run's
    change record (ServiceNow work note, Jira comment); `--share` tells the channels
    routed `run.report`.
    """
    if check_file is not None:
        if run_id is not None:
            raise UsageError("give either RUN_ID or --check FILE, not both")
        _print_check(commands.report_check(caller_of(ctx, create=False), check_file), as_json)
    if run_id is None:
        raise UsageError(
            "missing RUN_ID", hint="`backout report RUN_ID`; list runs with `backout runs`"
        )
    if attach or share:
        if output is not None:
            commands.report(caller_of(ctx, create=False), run_id, cast("Format", fmt), output)
        shared = commands.report_share(caller_of(ctx, create=False), run_id, attach, share, url)
        _print_shared(shared, as_json)
        return
    if url is not None:
        raise UsageError("--url goes with --attach or --share")
    if as_json and output is None:
        raise UsageError(
            "--json describes a --check or what --output wrote",
            hint="for the report itself as JSON, give --format json",
        )
    written = commands.report(caller_of(ctx, create=False), run_id, cast("Format", fmt), output)
    if written.in_progress:
        err.print(f"run {written.run_id} is still in progress: this report drafts it so far")
    if as_json:
        print_json(out, written.to_json())
    elif written.text is not None:
        click.echo(written.text, nl=False)
    else:
        for path in written.files:
            out.print(f"wrote {escape(path)}", soft_wrap=True)


def _print_shared(shared: SharedReport, as_json: bool) -> None:
    if as_json:
        print_json(out, shared.to_json())
        return
    if shared.change_id is not None:
        out.print(f"report of run {shared.run_id} attached to change {shared.change_id}")
    if shared.told:
        out.print(escape(f"told: {', '.join(shared.told)}"), soft_wrap=True)
    elif shared.change_id is None:
        out.print("no channel routes run.report: nobody was told")
    out.print("queued: `backout notify send` and `backout outbox send` deliver it")


def _print_check(result: ReportCheck, as_json: bool) -> None:
    if as_json:
        print_json(out, result.to_json())
    elif result.ok:
        out.print(
            f"{escape(result.path)}: matches the store (run {result.run_id}, "
            f"{result.journal_events} journal events)",
            soft_wrap=True,
        )
    else:
        out.print(f"{escape(result.path)}: DOES NOT match the store:", soft_wrap=True)
        for difference in result.differences:
            out.print(f"  {escape(difference)}", soft_wrap=True)
    exit_with(result.exit_code)


COMMANDS: list[click.Command] = [report]
