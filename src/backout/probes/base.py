"""Read-only probes: verification checks and baseline sources."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel

from backout.kernel.options import Context


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str
    observed: Any = None


class Check(ABC):
    """A ``verify:`` kind: says whether the restored state is what was promised."""

    kind: ClassVar[str]
    Options: ClassVar[type[BaseModel]]

    @abstractmethod
    def check(self, options: Any, ctx: Context) -> Verdict: ...

    @abstractmethod
    def describe(self, options: Any) -> str: ...


class Source(ABC):
    """A ``baseline:`` kind: reads one last-known-good value as text."""

    kind: ClassVar[str]
    Options: ClassVar[type[BaseModel]]

    @abstractmethod
    def read(self, options: Any, ctx: Context) -> str:
        """Return the value; raise :class:`~backout.errors.ActionError` when it cannot."""

    @abstractmethod
    def describe(self, options: Any) -> str: ...
