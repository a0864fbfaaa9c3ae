"""What a run's journal events mean elsewhere, written in the same transaction as the event:
the audit trail, the change record the run belongs to, and the outbox routes the run was
started with."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy.orm import Session

from backout.changes.events import move
from backout.changes.lifecycle import ChangeStatus
from backout.engine.drill import phases
from backout.engine.injection import Armed
from backout.engine.journal import Hook
from backout.engine.view import RunView
from backout.kernel.events import Event, EventKind
from backout.kernel.states import RunStatus
from backout.store import audit, outbox, repo
from backout.store import changes as change_repo
from backout.store.models import RehearsalRow

AUDITED: dict[str, str] = {
    EventKind.RUN_RESUMED: "run.resumed",
    EventKind.OPERATOR_DECISION: "run.decision",
    EventKind.RUN_NEEDS_ATTENTION: "run.needs_attention",
    EventKind.RUN_FINISHED: "run.finished",
    EventKind.TRIGGER_FIRED: "trigger.fired",
    EventKind.STAGE_APPROVED: "run.stage_approved",
    EventKind.PROMOTED: "run.promoted",
    EventKind.RUN_ABANDONED: "run.abandoned",
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
        if event.kind not in (EventKind.RUN_FINISHED, EventKind.RUN_ABANDONED):
            return  # an abandoned backout failed: its change did too
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


def rehearsal_hook(actor: str, about: Mapping[str, str], faults: list[Any]) -> Hook:
    """A finished drill leaves its evidence in the same transaction: the rehearsal record
    the gate reads (verdict, phase timings, faults, the journal's hash), audited."""

    def hook(session: Session, event: Event, view: RunView) -> None:
        if event.kind != EventKind.RUN_FINISHED:
            return
        events = repo.load_events(session, event.run_id)
        timings = phases(events)
        acted = sorted(
            {str(e.data.get("described")) for e in events if e.kind == EventKind.FAULT_INJECTED}
        )
        passed = event.data.get("result") == "rehearsed"
        row = RehearsalRow(
            plan=about["plan"],
            plan_version=about["plan_version"],
            run_id=event.run_id,
            outcome="succeeded" if passed else "failed",
            duration_s=timings["total_s"] or 0.0,
            at=event.at,
            service=about["service"],
            environment=about.get("environment") or None,
            actor=actor,
            message=str(event.data.get("message", "")),
            phases={
                **timings,
                "result": event.data.get("result"),
                "signal": event.data.get("signal"),
            },
            faults=[
                {**spec, "described": text, "acted": text in acted}
                for spec, text in _described(faults)
            ],
            journal_hash=journal_hash(events),
        )
        session.add(row)
        session.flush()
        audit.append(
            session,
            actor,
            "rehearsal.recorded",
            f"run:{event.run_id}",
            {
                "rehearsal_id": row.id,
                "plan": row.plan,
                "plan_version": row.plan_version,
                "outcome": row.outcome,
                "total_s": timings["total_s"],
                "journal_hash": row.journal_hash,
            },
        )

    return hook


def _described(faults: list[Any]) -> list[tuple[dict[str, Any], str]]:
    return [(dict(spec), Armed.of(spec).describe()) for spec in faults]


def journal_hash(events: list[Event]) -> str:
    """SHA-256 of the journal as canonical JSON: the evidence names exactly this record."""
    text = json.dumps([e.to_json() for e in events], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def hooks_for(
    change_id: int | None,
    actor: str,
    outbound: Mapping[str, Collection[str]] | None = None,
    about: Mapping[str, str] | None = None,
    drill_faults: list[Any] | None = None,
) -> list[Hook]:
    """The hooks of a run: the audit trail, its change record (if any), and one outbox
    hook per route it was started with (route -> the event kinds queued for it)."""
    hooks = [audit_hook(actor)]
    if change_id is not None:
        hooks.append(change_hook(change_id, actor))
    for route, kinds in (outbound or {}).items():
        hooks.append(outbox_hook(route, kinds, about or {}))
    if drill_faults is not None:
        hooks.append(rehearsal_hook(actor, about or {}, drill_faults))
    return hooks
