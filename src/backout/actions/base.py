"""The action interface: what a step kind must provide. Plugin authors import it from
:mod:`backout.actions`, never from here."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel

from backout.kernel.options import Context


@dataclass(frozen=True)
class Outcome:
    ok: bool
    summary: str
    output: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


class Action(ABC):
    """A step kind. ``templated = False`` means option strings are never rendered."""

    kind: ClassVar[str]
    Options: ClassVar[type[BaseModel]]
    templated: ClassVar[bool] = True
    # False when the action's only effects come from programs it starts through
    # ``backout.proc`` (journalled before they run): a taker-over that killed those
    # need not wait for a hung executor. Plugins doing work in-process keep True.
    in_process: ClassVar[bool] = True
    # False for a kind that changes nothing a backout would have to reverse (`wait`): the
    # linter does not ask a deploy step of this kind for an `undo:`.
    changes_state: ClassVar[bool] = True

    @abstractmethod
    def execute(self, options: Any, ctx: Context) -> Outcome:
        """Do the work within ``ctx.timeout``; report failure as ``Outcome(ok=False)``."""

    @abstractmethod
    def describe(self, options: Any) -> str:
        """One line for runbooks and ``--dry-run``."""

    def reverse(self, options: Any, done: dict[str, Any], ctx: Context) -> Outcome | None:
        """Undo what :meth:`execute` did, from the ``detail`` it returned (journaled).

        ``None`` means this kind has no automatic reverse: a deploy step of this kind needs
        an explicit ``undo:`` in the plan to be backed out.
        """
        return None

    @property
    def reversible(self) -> bool:
        """Whether this kind reverses itself (overrides :meth:`reverse`): the linter asks a
        deploy step of any other kind for an explicit ``undo:``."""
        return type(self).reverse is not Action.reverse
