"""Which journal events people are told about: each notify event (``trigger.fired``,
``run.backed_out`` …, described in :data:`backout.kernel.events.NOTIFY_EVENTS`) is made
from exactly one journal event, so a resumed run, which never journals an event twice,
never notifies twice."""

from __future__ import annotations

from backout.kernel.events import Event, EventKind
from backout.kernel.states import RunStatus


def notify_event(event: Event, status: RunStatus, mode: str) -> str | None:
    """The notify event this journal event is, if any. ``status`` is the run's status after
    the event; ``mode`` the run's (``backout``, ``deploy``, ``watch``, ``rehearsal``): a
    drill tells only how it went, never pages as if production were down."""
    kind = event.kind
    if mode == "rehearsal":
        if kind != EventKind.RUN_FINISHED:
            return None
        return "rehearsal.passed" if event.data.get("result") == "rehearsed" else "rehearsal.failed"
    if kind == EventKind.RUN_FINISHED:
        return _finished(event, status)
    simple: dict[str, str] = {
        EventKind.RUN_STARTED: "run.started",
        EventKind.TRIGGER_FIRED: "trigger.fired",
        EventKind.RUN_NEEDS_ATTENTION: "run.needs_attention",
        EventKind.RUN_STOPPED: "run.stopped",
        EventKind.RUN_ABANDONED: "run.abandoned",
    }
    if kind in simple:
        return simple[kind]
    if kind == EventKind.CHECKPOINT_STARTED and event.data.get("approve"):
        return "approval.waiting"
    if kind == EventKind.STEP_FINISHED and event.data.get("outcome") == "failed":
        return "step.failed"  # a failed attempt with retries left is STEP_RETRYING instead
    return None


def _finished(event: Event, status: RunStatus) -> str:
    if status is RunStatus.FAILED:
        return "run.failed"
    result = event.data.get("result")
    if result == "promoted":
        return "run.promoted"
    if result == "healthy":
        return "run.healthy"
    return "run.backed_out"
