"""The ``backout`` command line: a thin click layer over :mod:`backout.commands`.

Exit codes: 0 success, 1 backout or verification failed, 2 bad input, 3 needs attention,
4 a deploy or watch backed out, 129/130/143 stopped by SIGHUP/Ctrl-C/SIGTERM; every
command's ``--help`` lists its own (:mod:`.conventions`).
One module per command group, each listing its commands in ``COMMANDS``; :mod:`.base`
holds the root group (which reports every error once) and the helpers the groups share.
The root group imports a command's module only when the command is used: it lists them
from :mod:`.catalog` (name, module, short help), so start-up stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backout import heap

if TYPE_CHECKING:
    from backout.cli.base import cli


def main() -> None:
    """The ``backout`` program. Start-up (click, rich, pydantic, the command's module) runs
    with the cycle collector held (:func:`backout.heap.hold`): it is released as the
    command is found, before the command does its work."""
    heap.hold()
    try:
        from backout.cli.base import cli

        # the same name under `python -m backout`: usage lines, and the completion variable
        # (_BACKOUT_COMPLETE) the shell scripts of `backout completion` set
        cli(obj={}, prog_name="backout")
    finally:
        heap.release()


def __getattr__(name: str) -> Any:
    if name == "cli":  # the group, for CliRunner and for documentation tools
        from backout.cli.base import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["cli", "main"]
