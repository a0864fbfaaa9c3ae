"""The faults of a rehearsal, as the step runner meets them: each one that acts is
journalled (``fault_injected``), so the drill's record says what it survived."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from backout.actions.base import Outcome
from backout.faults import FAULTS, Fault, FaultContext
from backout.kernel.events import EventKind
from backout.probes.base import Verdict
from backout.telemetry.base import Reading

Note = Callable[..., object]


@dataclass(frozen=True)
class Armed:
    fault: Fault
    options: Any

    @classmethod
    def of(cls, spec: dict[str, Any]) -> Armed:
        fault = FAULTS.get(spec["kind"])
        return cls(fault, fault.Options.model_validate(spec["options"]))

    def describe(self) -> str:
        return self.fault.describe(self.options)


class Injector:
    """Asked by the step runner before each attempt of a backout step and for each verify
    check; answers with what the armed faults make of it."""

    def __init__(self, faults: list[Armed], note: Note) -> None:
        self.faults = faults
        self._note = note
        self._tampered: set[str] = set()  # signals whose first replaced reading is journalled

    @classmethod
    def of(cls, specs: list[dict[str, Any]], note: Note) -> Injector:
        return cls([Armed.of(spec) for spec in specs], note)

    def kill_if(self, step: str, index: int, attempt: int) -> None:
        """Kill this process (SIGKILL) when an armed fault says so, once it is journalled."""
        for armed in self.faults:
            if armed.fault.kills(armed.options, step, attempt):
                self._journal(armed, step=index, effect="the executor is killed with SIGKILL")
                os.kill(os.getpid(), signal.SIGKILL)

    def before(self, step: str, index: int, attempt: int, ctx: FaultContext) -> None:
        """Let the armed faults act on the world before this attempt (journalled)."""
        for armed in self.faults:
            effect = armed.fault.before(armed.options, step, attempt, ctx)
            if effect:
                self._journal(armed, step=index, effect=effect)

    def outcome(self, step: str, index: int, attempt: int) -> Outcome | None:
        for armed in self.faults:
            outcome = armed.fault.on_step(armed.options, step, attempt)
            if outcome is not None:
                self._journal(armed, step=index, effect=outcome.summary)
                return outcome
        return None

    def delay(self, step: str, index: int) -> float:
        total = 0.0
        for armed in self.faults:
            seconds = armed.fault.delay(armed.options, step)
            if seconds > 0:
                self._journal(armed, step=index, effect=f"held {seconds:g}s before it runs")
                total += seconds
        return total

    def verdict(self, check: str, index: int) -> Verdict | None:
        for armed in self.faults:
            verdict = armed.fault.on_check(armed.options, check)
            if verdict is not None:
                self._journal(armed, check=index, effect=verdict.reason)
                return verdict
        return None

    def reading(self, signal: str, reading: Reading) -> Reading:
        """What ``signal`` reads under the armed faults (journalled the first time)."""
        for armed in self.faults:
            replaced = armed.fault.on_reading(armed.options, signal, reading)
            if replaced is not None:
                if signal not in self._tampered:
                    self._tampered.add(signal)
                    self._journal(armed, signal=signal, effect=replaced.detail)
                return replaced
        return reading

    def _journal(self, armed: Armed, **data: Any) -> None:
        self._note(
            EventKind.FAULT_INJECTED,
            fault=armed.fault.kind,
            described=armed.fault.describe(armed.options),
            **data,
        )


NO_FAULTS = Injector([], lambda *args, **kwargs: None)
