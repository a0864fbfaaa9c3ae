"""``backout metrics``: delivery figures across runs (docs/metrics.md)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from backout.cli.base import caller_of, out
from backout.errors import UsageError

if TYPE_CHECKING:
    from backout.commands.metrics import MetricsReport


def _format(as_json: bool, as_csv: bool, as_prometheus: bool) -> str:
    chosen = [
        name
        for name, on in (("--json", as_json), ("--csv", as_csv), ("--prometheus", as_prometheus))
        if on
    ]
    if len(chosen) > 1:
        raise UsageError(
            f"{' and '.join(chosen)} cannot be combined: they are different outputs",
            hint="choose one of --json, --csv, --prometheus (or none, for the table)",
        )
    return chosen[0].lstrip("-") if chosen else "text"


def _write(path: Path, text: str) -> None:
    """Write whole or not at all (the textfile collector may read at any moment)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        partial.write_text(text)
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise UsageError(
            f"cannot write {path}: {exc.strerror}",
            hint="does the folder exist, and may this user write in it?",
        ) from exc


@click.command()
@click.option(
    "--since",
    metavar="WHEN",
    help="Runs created from then: 30d, 2w, 12h, a date (2026-11-01) or a UTC time "
    "(2026-11-01T12:00Z); `all` for the whole store. Default 30d (--prometheus: all).",
)
@click.option("--until", metavar="WHEN", help="Runs created before then (default: now).")
@click.option("--service", help="Only this service (every environment of it).")
@click.option("--environment", "--env", "environment", metavar="NAME", help="Only this one.")
@click.option("--team", help="Only plans whose `owner:` is this team.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (docs/metrics.md).")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV: all, then one row per service.")
@click.option(
    "--prometheus",
    "as_prometheus",
    is_flag=True,
    help="Print Prometheus text exposition (node_exporter textfile collector).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (atomically: a temporary file renamed) instead of stdout.",
)
@click.pass_context
def metrics(
    ctx: click.Context,
    since: str | None,
    until: str | None,
    service: str | None,
    environment: str | None,
    team: str | None,
    as_json: bool,
    as_csv: bool,
    as_prometheus: bool,
    output: Path | None,
) -> None:
    """Deployments, change failure rate, recovery and backout times, DORA levels."""
    # loaded only when this command runs: the other commands never need them
    from backout.commands.metrics import metrics as compute
    from backout.metrics import window_of

    form = _format(as_json, as_csv, as_prometheus)
    if output is not None and form == "text":
        raise UsageError(
            "--output writes --json, --csv or --prometheus, not the table",
            hint="add one of them, or leave --output out",
        )
    if since is None and form == "prometheus":
        since = "all"  # counters over the whole store only grow: PromQL takes the windows
    window = window_of(since, until, time.time())
    report = compute(caller_of(ctx, create=False), window, service, environment, team)
    if form == "text":
        from backout.metrics.text import render

        out.print(render(report.figures))
        return
    text = _payload(form, report)
    if output is not None:
        _write(output, text)
    else:
        click.echo(text, nl=False)


def _payload(form: str, report: MetricsReport) -> str:
    from backout.metrics import exposition
    from backout.metrics.text import to_csv

    if form == "prometheus":
        return exposition(report.data)
    if form == "csv":
        return to_csv(report.figures)
    return json.dumps(report.to_json(), indent=2) + "\n"


COMMANDS: list[click.Command] = [metrics]
