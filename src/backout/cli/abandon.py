"""``backout abandon RUN --reason TEXT``: give up on a run that needs attention."""

from __future__ import annotations

import click
from rich.markup import escape

from backout import commands
from backout.cli.base import caller_of, json_option, out
from backout.render import print_json


@click.command()
@click.argument("run_id")
@click.option(
    "--reason",
    default="",
    metavar="TEXT",
    help="Why the run is given up (required; kept in the journal and the audit trail).",
)
@json_option
@click.pass_context
def abandon(ctx: click.Context, run_id: str, reason: str, as_json: bool) -> None:
    """Release a run stuck in needs_attention: it ends failed (result abandoned), its
    service is free for a new run, and no worker resumes it.

    Check the system first: the interrupted step may or may not have taken effect. To
    finish the run instead, decide on the step with `backout resume` (see its --help)."""
    report = commands.abandon(caller_of(ctx), run_id, reason)
    if as_json:
        print_json(out, report)
        return
    out.print(
        escape(
            f"run {report.run_id} abandoned: {report.status} ({report.message}); "
            f"service {report.service} is free for a new run"
        ),
        soft_wrap=True,
    )


COMMANDS: list[click.Command] = [abandon]
