"""The journal's record: one event of one run. The store writes and reads it, the engine
folds it into the run's state, reports and renderers interpret it; so it lives below all
of them.

:class:`EventKind` names every kind of event the engine journals, and
:data:`EVENT_DESCRIPTIONS` says in a phrase what each one means: the one place a new kind
is added (docs/operations.md lists them too; a unit test keeps the three in step).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class EventKind(StrEnum):
    """What a journal event records. A member equals its string, which is what the store
    keeps: ``EventKind.RUN_STARTED == "run_started"``."""

    RUN_CREATED = "run_created"
    RUN_STARTED = "run_started"
    RUN_RESUMED = "run_resumed"
    STEP_STARTED = "step_started"
    STEP_PROCESS = "step_process"
    STEP_RETRYING = "step_retrying"
    STEP_FINISHED = "step_finished"
    STEP_SKIPPED = "step_skipped"
    WARNING = "warning"
    OPERATOR_DECISION = "operator_decision"
    RUN_NEEDS_ATTENTION = "run_needs_attention"
    VERIFY_STARTED = "verify_started"
    CHECK_STARTED = "check_started"
    CHECK_FINISHED = "check_finished"
    RUN_FINISHED = "run_finished"
    WATCH_STARTED = "watch_started"
    CHECKPOINT_STARTED = "checkpoint_started"
    TRIGGER_EVALUATED = "trigger_evaluated"
    TRIGGER_FIRED = "trigger_fired"
    CHECKPOINT_PASSED = "checkpoint_passed"
    STAGE_APPROVED = "stage_approved"
    ALERT_REJECTED = "alert_rejected"
    ALERT_IGNORED = "alert_ignored"
    RUN_STOPPED = "run_stopped"
    BACKOUT_STARTED = "backout_started"
    PROMOTED = "promoted"
    STEADY_STATE = "steady_state"
    FAULT_INJECTED = "fault_injected"
    RUN_ABANDONED = "run_abandoned"

    @property
    def description(self) -> str:
        """What this event means, in a short phrase (from :data:`EVENT_DESCRIPTIONS`)."""
        return EVENT_DESCRIPTIONS[self]


EVENT_DESCRIPTIONS: Mapping[EventKind, str] = MappingProxyType(
    {
        EventKind.RUN_CREATED: "run created",
        EventKind.RUN_STARTED: "run started",
        EventKind.RUN_RESUMED: "run resumed (by `backout resume` or a worker)",
        EventKind.STEP_STARTED: "step attempt started",
        EventKind.STEP_PROCESS: "step is starting a program",
        EventKind.STEP_RETRYING: "step attempt failed, another follows",
        EventKind.STEP_FINISHED: "step finished",
        EventKind.STEP_SKIPPED: "step skipped",
        EventKind.WARNING: "warning for the operator",
        EventKind.OPERATOR_DECISION: "operator decision on an interrupted step",
        EventKind.RUN_NEEDS_ATTENTION: "run needs attention",
        EventKind.VERIFY_STARTED: "verification started",
        EventKind.CHECK_STARTED: "verify check started",
        EventKind.CHECK_FINISHED: "verify check finished",
        EventKind.RUN_FINISHED: "run finished",
        EventKind.WATCH_STARTED: "watch started",
        EventKind.CHECKPOINT_STARTED: "stage checkpoint started",
        EventKind.TRIGGER_EVALUATED: "trigger verdict changed",
        EventKind.TRIGGER_FIRED: "trigger fired",
        EventKind.CHECKPOINT_PASSED: "stage checkpoint passed",
        EventKind.STAGE_APPROVED: "stage approved",
        EventKind.ALERT_REJECTED: "webhook request rejected",
        EventKind.ALERT_IGNORED: "alert not acted on",
        EventKind.STEADY_STATE: "rehearsal steady-state check (before or after the drill)",
        EventKind.FAULT_INJECTED: "rehearsal fault acted on the backout",
        EventKind.RUN_STOPPED: "run stopped by a signal",
        EventKind.BACKOUT_STARTED: "backout started",
        EventKind.PROMOTED: "promoted to the new baseline",
        EventKind.RUN_ABANDONED: "run abandoned by a person (`backout abandon`)",
    }
)
# the events whose ``step`` is the index of a verify check, not of a step
CHECK_EVENTS = frozenset({EventKind.CHECK_STARTED, EventKind.CHECK_FINISHED})


def describe(kind: str) -> str:
    """What an event of ``kind`` means; a kind this version does not know (a row written
    by a newer one) is shown as its words."""
    try:
        return EventKind(kind).description
    except ValueError:
        return kind.replace("_", " ")


@dataclass(frozen=True)
class Event:
    run_id: str
    seq: int
    at: float
    # an EventKind when written; a plain string when read back from the store (they are
    # equal: compare with EventKind members, and the stored value is the same either way)
    kind: str
    step: int | None = None
    attempt: int | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "kind": str(self.kind),
            "step": self.step,
            "attempt": self.attempt,
            "data": self.data,
        }


# What people are told about: the notify events a plan's `notify.routes` name, each made
# from one journal event (backout.notify.events); `*` names them all.
NOTIFY_EVENTS: Mapping[str, str] = MappingProxyType(
    {
        "run.started": "a backout, deploy or watch started",
        "trigger.fired": "a trigger fired: the run is backing out (with the evidence)",
        "approval.waiting": "a deploy stage waits for `backout approve RUN`",
        "step.failed": "a step failed after its retries",
        "run.needs_attention": "the run stopped and needs a person (`backout resume`)",
        "run.stopped": "the run was stopped by a signal (resume continues it)",
        "run.abandoned": "a person gave up a run that needed attention (`backout abandon`)",
        "run.backed_out": "the backout finished and its verify checks passed",
        "run.promoted": "a deploy finished every stage and was promoted",
        "run.healthy": "a watch ended with the release healthy",
        "run.failed": "the backout failed: the disaster-recovery owner is needed",
        "rehearsal.passed": "a rehearsal drill passed",
        "rehearsal.failed": "a rehearsal drill failed",
        "run.acknowledged": "a person took the run (`backout ack RUN`); escalation stops",
        "run.escalated": "nobody acknowledged in time: the next escalation level is called on",
        "run.update_due": "the comms role is reminded that a status update is due",
        "run.updated": "a person posted a status update (`backout notify update RUN`)",
        "run.report": "a post-incident report draft was shared (`backout report RUN --share`)",
        "change.approved": "a change record was approved (`backout change approve`)",
        "change.started": "a change record's deploy started",
        "change.closed": "a change record was closed: completed, backed out, failed or rejected",
        "dr.handoff": "the backout failed: disaster recovery is handed over (and maybe started)",
    }
)
