"""The action interface: what a step kind must provide."""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Options(BaseModel):
    """Base for action/check/source options: closed and immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ArgvOptions(Options):
    """Options of anything that runs a program: an argv list (or just the list), no shell."""

    argv: list[str] = Field(min_length=1, description="Program and arguments, no shell.")
    cwd: str | None = Field(None, description="Working folder (relative to the plan file).")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {"argv": value}
        if isinstance(value, str):
            raise ValueError(
                f"takes a list [program, arg, ...], not a string; write "
                f"{shlex.split(value)!r}, or use a `shell:` step if you need a "
                "shell"
            )
        return value


@dataclass(frozen=True)
class Context:
    """What an action may use: where it runs, its time budget, its environment."""

    workdir: Path
    timeout: float
    env: Mapping[str, str] = field(default_factory=dict)
    redact: Callable[[str], str] = str
    store_url: str | None = None  # the run's store (actions that keep state there: flag)
    actor: str | None = None  # who started the run


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


def resolve(workdir: Path, path: str) -> Path:
    """Relative paths in plans resolve against the plan file's folder."""
    candidate = Path(path)
    return candidate if candidate.is_absolute() else workdir / candidate
