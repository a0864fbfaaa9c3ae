"""Plan files: validate, schema, init, show."""

from __future__ import annotations

import json

import click

from backout import commands
from backout.cli.base import err, exit_with, json_option, out
from backout.render import print_issues, print_json


@click.command()
@click.argument("plans", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--strict", is_flag=True, help="Treat lint warnings as errors.")
@json_option
def validate(plans: tuple[str, ...], strict: bool, as_json: bool) -> None:
    """Check plan files; exit 2 on any error (FILE:LINE:COL: field: message (hint))."""
    results = commands.validate(plans, strict=strict)
    failed = any(i.severity == "error" for issues in results.values() for i in issues)
    if as_json:
        print_json(out, {path: [vars(i) for i in issues] for path, issues in results.items()})
    else:
        for path, issues in results.items():
            print_issues(err, issues)
            if not any(i.severity == "error" for i in issues):
                warnings = len(issues)
                kind = " policy" if commands.looks_like_policy(path) else ""
                out.print(
                    f"{path}: [green]valid[/]{kind}"
                    + (f" ({warnings} warning(s))" if warnings else "")
                )
    exit_with(2 if failed else 0)


@click.command()
def schema() -> None:
    """Print the plan's JSON Schema (for editor completion)."""

    click.echo(json.dumps(commands.schema(), indent=2))


@click.command()
@click.argument("path", default="backout.yaml", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: str, force: bool) -> None:
    """Write a commented starter plan."""
    written = commands.init(path, force=force)
    out.print(f"wrote {written}; edit it, then run `backout validate {written}`")


@click.command()
@click.argument("plan", type=click.Path(dir_okay=False))
def show(plan: str) -> None:
    """Render the plan as a Markdown runbook."""
    click.echo(commands.show(plan))


COMMANDS: list[click.Command] = [validate, schema, init, show]
