"""Step kinds, and the public API for writing one.

A plugin action imports everything it needs from here (never from a private module such
as ``backout.actions.base``): subclass :class:`Action`, give it :class:`Options` (or
:class:`ArgvOptions` for a program and its arguments), return an :class:`Outcome`, and
start programs with :func:`run_process`, letting :class:`Stopped` through. Built-ins are
registered in :data:`ACTIONS` here; plugins come from ``backout.actions`` entry points.
"""

from __future__ import annotations

from backout.actions.alembic import AlembicAction
from backout.actions.base import Action, Outcome
from backout.actions.flag import FlagAction
from backout.actions.http import HttpAction
from backout.actions.nginx import NginxAction
from backout.actions.run import RunAction
from backout.actions.shell import ShellAction
from backout.actions.sql_migration import SqlMigrationAction
from backout.actions.symlink import SymlinkAction
from backout.actions.wait import WaitAction
from backout.kernel.options import ArgvOptions, Context, Options, resolve
from backout.plugins import Registry
from backout.proc import run_process
from backout.stop import Stopped

ACTIONS: Registry[Action] = Registry("action", group="backout.actions")
for _action in (
    RunAction(),
    ShellAction(),
    HttpAction(),
    SymlinkAction(),
    WaitAction(),
    NginxAction(),
    FlagAction(),
    SqlMigrationAction(),
    AlembicAction(),
):
    ACTIONS.register(_action)

__all__ = [
    "ACTIONS",
    "Action",
    "ArgvOptions",
    "Context",
    "Options",
    "Outcome",
    "Stopped",
    "resolve",
    "run_process",
]
