"""Step kinds, and the public API for writing one.

A plugin action imports everything it needs from here (never from a private module such
as ``backout.actions.base``): subclass :class:`Action`, give it :class:`Options` (or
:class:`ArgvOptions` for a program and its arguments), return an :class:`Outcome`, and
start programs with :func:`run_process`, letting :class:`Stopped` through. Built-ins are
registered in :data:`ACTIONS` here; plugins come from ``backout.actions`` entry points.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backout.actions.base import Action, Outcome
from backout.kernel.options import ArgvOptions, Context, Options, resolve
from backout.plugins import Registry

if TYPE_CHECKING:
    from backout.proc import run_process
    from backout.stop import Stopped

ACTIONS: Registry[Action] = Registry(
    "action",
    group="backout.actions",
    builtins={
        "run": "backout.actions.run:RunAction",
        "shell": "backout.actions.shell:ShellAction",
        "http": "backout.actions.http:HttpAction",
        "symlink": "backout.actions.symlink:SymlinkAction",
        "wait": "backout.actions.wait:WaitAction",
        "nginx": "backout.actions.nginx:NginxAction",
        "flag": "backout.actions.flag:FlagAction",
        "sql_migration": "backout.actions.sql_migration:SqlMigrationAction",
        "alembic": "backout.actions.alembic:AlembicAction",
    },  # each module loads when a plan first uses its kind
)

_LAZY = {"run_process": "backout.proc", "Stopped": "backout.stop"}


def __getattr__(name: str) -> Any:
    """``run_process`` and ``Stopped`` load when first asked for: `backout validate`
    reads this package for its registry, and processes and signals are not its business."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
