"""The ``backout`` command line: a thin click layer over :mod:`backout.commands`.

Exit codes: 0 success, 1 backout or verification failed, 2 bad input, 3 needs attention,
4 a deploy or watch backed out, 129/130/143 stopped by SIGHUP/Ctrl-C/SIGTERM; every
command's ``--help`` lists its own (:mod:`.conventions`).
One module per command group; :mod:`.base` holds the root group (which reports every
error once) and the helpers the groups share. The groups are attached here, so no module
imports the package back.
"""

from __future__ import annotations

from backout.cli import (
    abandon,
    audit,
    changes,
    completion,
    config,
    deploy,
    flags,
    incidents,
    metrics,
    notify,
    plans,
    policy,
    preflight,
    rehearsals,
    report,
    runs,
    snapshots,
)
from backout.cli.base import cli

for _group in (
    plans,
    runs,
    snapshots,
    abandon,
    deploy,
    rehearsals,
    changes,
    policy,
    preflight,
    audit,
    notify,
    incidents,
    flags,
    config,
    report,
    metrics,
    completion,
):
    for _command in _group.COMMANDS:
        cli.add_command(_command)


def main() -> None:
    # the same name under `python -m backout`: usage lines, and the completion variable
    # (_BACKOUT_COMPLETE) the shell scripts of `backout completion` set
    cli(obj={}, prog_name="backout")


__all__ = ["cli", "main"]
