"""Step kinds. Built-ins are registered here; more come from ``backout.actions`` entry points."""

from __future__ import annotations

from backout.actions.base import Action, Context, Outcome
from backout.actions.flag import FlagAction
from backout.actions.http import HttpAction
from backout.actions.nginx import NginxAction
from backout.actions.run import RunAction
from backout.actions.shell import ShellAction
from backout.actions.symlink import SymlinkAction
from backout.actions.wait import WaitAction
from backout.plugins import Registry

ACTIONS: Registry[Action] = Registry("action", group="backout.actions")
for _action in (
    RunAction(),
    ShellAction(),
    HttpAction(),
    SymlinkAction(),
    WaitAction(),
    NginxAction(),
    FlagAction(),
):
    ACTIONS.register(_action)

__all__ = ["ACTIONS", "Action", "Context", "Outcome"]
