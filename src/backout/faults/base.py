"""What a fault is: something a rehearsal injects into the backout itself, to prove the plan
survives it. A fault is asked at three points of a drill's backout and answers only where
it applies: before a step's attempt (``on_step``: a replaced outcome), how long to hold a
step before it runs (``delay``), in place of a verify check (``on_check``), in place of a
telemetry reading while the triggers watch (``on_reading``), and whether to kill the
executor inside a step (``kills``).

Faults are named kinds, like actions: built-ins here, others from the ``backout.faults``
entry point group. An in-process fault exists only while its run runs, so nothing is
left to revert when the drill stops, however it stops.
"""

from __future__ import annotations

from abc import ABC
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from backout.actions.base import Outcome
from backout.plugins import Registry
from backout.probes.base import Verdict
from backout.telemetry.base import Reading


@dataclass(frozen=True)
class FaultContext:
    """What a fault acting on the world may need: the plan's folder (for relative paths)
    and the store's URL (None when the run has none)."""

    workdir: Path
    store_url: str | None = None


class FaultOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)  # built when used


class Fault(ABC):
    """A kind of fault. ``targets`` names the steps and checks it refers to (the linter
    checks they exist)."""

    kind: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = FaultOptions
    # True for a fault that kills the executor: `backout rehearse` (and the server's
    # POST /api/v1/rehearsals) then runs the drill in a child process, and resumes the run
    # from the journal when the child is killed
    kills_executor: ClassVar[bool] = False

    def kills(self, options: Any, step: str, attempt: int) -> bool:
        """True to kill the executor (SIGKILL) inside this attempt of ``step``, after the
        attempt is journalled and before its action runs."""
        return False

    def on_step(self, options: Any, step: str, attempt: int) -> Outcome | None:
        """An outcome that replaces this attempt of ``step`` (nothing runs), or None."""
        return None

    def before(self, options: Any, step: str, attempt: int, ctx: FaultContext) -> str | None:
        """Do something to the world before this attempt of ``step`` runs (kill a process,
        drop a connection); the text returned says what, and is journalled."""
        return None

    def delay(self, options: Any, step: str) -> float:
        """Seconds to hold ``step`` before each attempt runs (inside its timeout)."""
        return 0.0

    def on_check(self, options: Any, check: str) -> Verdict | None:
        """A verdict that replaces ``check``'s, or None."""
        return None

    def on_reading(self, options: Any, signal: str, reading: Reading) -> Reading | None:
        """A telemetry reading that replaces what ``signal`` read while the drill watches
        its triggers, or None."""
        return None

    def targets(self, options: Any) -> dict[str, str]:
        """What it refers to: {"step": name} or {"check": name}."""
        return {}

    def describe(self, options: Any) -> str:
        return self.kind


FAULTS: Registry[Fault] = Registry("fault", "backout.faults")
