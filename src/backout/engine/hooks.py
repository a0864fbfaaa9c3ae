"""What a run's journal events mean elsewhere, written in the same transaction as the event:
the audit trail, and the change record the run belongs to."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from backout.changes.events import move
from backout.changes.lifecycle import ChangeStatus
from backout.engine.journal import Hook
from backout.engine.view import RunView
from backout.kernel.events import Event
from backout.kernel.states import RunStatus
from backout.store import audit
from backout.store import changes as change_repo

AUDITED = {
    "run_resumed": "run.resumed",
    "operator_decision": "run.decision",
    "run_needs_attention": "run.needs_attention",
    "run_finished": "run.finished",
    "trigger_fired": "trigger.fired",
    "stage_approved": "run.stage_approved",
    "promoted": "run.promoted",
}
# what a finished run means for its change: by the run's result, else by its outcome
CHANGE_RESULT = {
    "promoted": ChangeStatus.COMPLETED,
    "healthy": ChangeStatus.COMPLETED,
    "backed_out": ChangeStatus.BACKED_OUT,
    "failed": ChangeStatus.FAILED,
}
CHANGE_OUTCOME = {
    RunStatus.SUCCEEDED: ChangeStatus.BACKED_OUT,
    RunStatus.FAILED: ChangeStatus.FAILED,
}


def _details(event: Event) -> dict[str, Any]:
    details = {k: v for k, v in event.data.items() if k != "output"}
    if event.step is not None:
        details["step"] = event.step + 1
    return details


def audit_hook(actor: str) -> Hook:
    def hook(session: Session, event: Event, view: RunView) -> None:
        action = AUDITED.get(event.kind)
        if action:
            audit.append(session, actor, action, f"run:{event.run_id}", _details(event))

    return hook


def change_hook(change_id: int, actor: str) -> Hook:
    """A finished backout closes its change: backed_out when it worked, failed when not."""

    def hook(session: Session, event: Event, view: RunView) -> None:
        if event.kind != "run_finished":
            return
        result = event.data.get("result")
        target = CHANGE_RESULT.get(result) if result else CHANGE_OUTCOME.get(view.status)
        if view.status is RunStatus.FAILED:
            target = ChangeStatus.FAILED
        if target is None:
            return
        row = change_repo.get_change(session, change_id, lock=True)
        if ChangeStatus(row.status) is ChangeStatus.IN_PROGRESS:
            move(
                session,
                row,
                actor,
                target,
                {
                    "run_id": event.run_id,
                    "outcome": view.status.value,
                    "message": view.message,
                    "trigger": event.data.get("trigger"),
                },
            )

    return hook


def hooks_for(change_id: int | None, actor: str) -> list[Hook]:
    hooks = [audit_hook(actor)]
    if change_id is not None:
        hooks.append(change_hook(change_id, actor))
    return hooks
