"""The journal's record: one event of one run. The store writes and reads it, the engine
folds it into the run's state, reports and renderers interpret it; so it lives below all
of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    run_id: str
    seq: int
    at: float
    kind: str
    step: int | None = None
    attempt: int | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "kind": self.kind,
            "step": self.step,
            "attempt": self.attempt,
            "data": self.data,
        }
