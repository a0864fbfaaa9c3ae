"""The ``backout`` command line: a thin click layer over :mod:`backout.commands`.

Exit codes: 0 success, 1 backout or verification failed, 2 bad input, 3 needs attention.
One module per command group; :mod:`.base` holds the root group (which reports every
error once) and the helpers the groups share. The groups are attached here, so no module
imports the package back.
"""

from __future__ import annotations

from backout.cli import (
    audit,
    changes,
    config,
    deploy,
    flags,
    incidents,
    metrics,
    notify,
    plans,
    rehearsals,
    report,
    runs,
)
from backout.cli.base import cli

for _group in (
    plans,
    runs,
    deploy,
    rehearsals,
    changes,
    audit,
    notify,
    incidents,
    flags,
    config,
    report,
    metrics,
):
    for _command in _group.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    cli(obj={})


__all__ = ["cli", "main"]
