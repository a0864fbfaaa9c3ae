"""What the demo measures, read from the run's journal (the journal is the truth).

* fault: the deploy's last forward step succeeded. ``bin/restart`` returns once the new
  release answers /health, so from that moment users get its errors.
* detected: the journal's ``trigger_fired`` event.
* restored: the ``run_finished`` event of a backout that finished and verified.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from backout.engine.layout import layout
from backout.kernel.events import Event, EventKind
from backout.spec.models import Plan

PHASES = {"forward": "deploy", "reverse": "undo", "backout": "backout"}


@dataclass(frozen=True)
class Moments:
    """Journal times (seconds since the epoch) of the fault, the detection, the restore."""

    fault_at: float | None
    detected_at: float | None
    restored_at: float | None

    def since_fault(self, at: float | None) -> float | None:
        if at is None or self.fault_at is None:
            return None
        return round(at - self.fault_at, 3)


def fault_step(plan: Plan) -> int:
    """The index of the deploy's last forward step: once it finished, the release is live."""
    forward = [unit.index for unit in layout(plan, "deploy") if unit.role == "forward"]
    if not forward:
        raise ValueError(f"plan {plan.plan!r} has no deploy steps")
    return forward[-1]


def phases(plan: Plan) -> list[str]:
    """Per step of a deploy run: ``deploy``, ``undo`` (a reverse) or ``backout``."""
    return [PHASES[unit.role] for unit in layout(plan, "deploy")]


def went_live(event: Event, fault_index: int) -> bool:
    """The deploy's last forward step succeeded: the new release is answering now."""
    return (
        event.kind == EventKind.STEP_FINISHED
        and event.step == fault_index
        and event.data.get("outcome") == "succeeded"
    )


def moments(events: Sequence[Event], fault_index: int) -> Moments:
    fault = _first(e for e in events if went_live(e, fault_index))
    fired = _first(e for e in events if e.kind == EventKind.TRIGGER_FIRED)
    restored = _first(
        e
        for e in events
        if e.kind == EventKind.RUN_FINISHED
        and e.data.get("outcome") == "succeeded"
        and e.data.get("result") == "backed_out"
    )
    return Moments(
        fault.at if fault else None,
        fired.at if fired else None,
        restored.at if restored else None,
    )


def _first(events: Iterable[Event]) -> Event | None:
    return next(iter(events), None)


def trigger_of(reason: dict[str, Any] | None) -> dict[str, Any] | None:
    """The trigger that started the backout, flattened from the journal's reason."""
    if not reason:
        return None
    decision = reason.get("evidence") or {}
    return {
        "name": reason.get("trigger"),
        "kind": reason.get("trigger_kind"),
        "summary": reason.get("summary"),
        "statistic": decision.get("statistic"),
        "threshold": decision.get("threshold"),
        "evidence": decision.get("evidence", decision),
    }
