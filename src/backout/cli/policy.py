"""The change policy: ``backout policy validate``."""

from __future__ import annotations

import click
from rich.markup import escape

from backout import commands
from backout.cli.base import err, exit_with, json_option, out
from backout.render import print_issues, print_json


@click.group()
def policy() -> None:
    """The change policy (backout-policy.yaml): what a change needs, per risk level."""


@policy.command(name="validate")
@click.argument("files", nargs=-1, envvar="BACKOUT_POLICY", type=click.Path(dir_okay=False))
@json_option
def validate_policy(files: tuple[str, ...], as_json: bool) -> None:
    """Check policy files; exit 2 on any error (FILE:LINE:COL: field: message (hint)).

    Without FILES: the file in BACKOUT_POLICY, else ./backout-policy.yaml, as `backout gate`
    and `backout change start` read it.
    """
    paths = list(files) or [commands.policy_file_in_effect()]
    results = commands.validate_policy(paths)
    if as_json:
        print_json(out, {path: [vars(i) for i in issues] for path, issues in results.items()})
    else:
        for path, issues in results.items():
            print_issues(err, issues)
            if not issues:
                out.print(f"{escape(path)}: [green]valid[/] policy", soft_wrap=True)
    exit_with(2 if any(results.values()) else 0)


COMMANDS: list[click.Command] = [policy]
