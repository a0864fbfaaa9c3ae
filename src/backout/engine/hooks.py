"""What a run's journal events mean elsewhere, written in the same transaction as the event:
the audit trail, the change record the run belongs to, and the outbox routes the run was
started with."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy.orm import Session

from backout.changes.events import move
from backout.changes.lifecycle import ChangeStatus
from backout.engine.journal import Hook
from backout.engine.view import RunView
from backout.kernel.events import Event, EventKind
from backout.kernel.states import RunStatus
from backout.store import audit, outbox
from backout.store import changes as change_repo

AUDITED: dict[str, str] = {
    EventKind.RUN_RESUMED: "run.resumed",
    EventKind.OPERATOR_DECISION: "run.decision",
    EventKind.RUN_NEEDS_ATTENTION: "run.needs_attention",
    EventKind.RUN_FINISHED: "run.finished",
    EventKind.TRIGGER_FIRED: "trigger.fired",
    EventKind.STAGE_APPROVED: "run.stage_approved",
    EventKind.PROMOTED: "run.promoted",
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
        if event.kind != EventKind.RUN_FINISHED:
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


def outbox_hook(route: str, kinds: Collection[str], about: Mapping[str, str]) -> Hook:
    """Queue the run's events of these kinds for ``route``, in the journal's transaction:
        an event is queued iff it is journalled. The key is the run and the event's sequence,
        so the same event is one row however often it is offered. ``about`` (the run's service
    and plan) goes into every payload."""
    wanted = frozenset(kinds)

    def hook(session: Session, event: Event, view: RunView) -> None:
        if event.kind not in wanted:
            return
        payload = {
            "run_id": event.run_id,
            **about,
            "status": view.status.value,
            **event.to_json(),
        }
        outbox.enqueue(
            session,
            route,
            f"run:{event.run_id}",
            str(event.kind),
            payload,
            key=f"backout-{route}-run-{event.run_id}-{event.seq}",
            run_id=event.run_id,
        )

    return hook


def hooks_for(
    change_id: int | None,
    actor: str,
    outbound: Mapping[str, Collection[str]] | None = None,
    about: Mapping[str, str] | None = None,
) -> list[Hook]:
    """The hooks of a run: the audit trail, its change record (if any), and one outbox
    hook per route it was started with (route -> the event kinds queued for it)."""
    hooks = [audit_hook(actor)]
    if change_id is not None:
        hooks.append(change_hook(change_id, actor))
    for route, kinds in (outbound or {}).items():
        hooks.append(outbox_hook(route, kinds, about or {}))
    return hooks
