"""Escalation and update reminders: timers over the journal and the audit trail, evaluated
with an explicit ``now`` so that any process that delivers (a command's courier,
``backout notify send``, a worker) can run them, and tests can move the clock.

*Escalation*: while a run waits for a person (an approval, ``needs_attention``, or a failed
backout) and nobody has run ``backout ack``, each ``notify.escalation`` level whose
``after`` has passed calls on its roles (their ``notify.contacts`` mentioned) through its
channels. *Updates*: once a trigger has fired, the comms role is reminded when the first
status update (``backout notify update``) is due, then every ``every``, until the run is
resolved. Each reminder has a deterministic delivery key, so evaluating the timers again
(in another process, after a crash) never sends one twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backout.channels.notice import Severity
from backout.kernel.durations import format_duration
from backout.kernel.events import Event, EventKind
from backout.kernel.states import RunStatus
from backout.notify.hook import queue_notice, sending_context
from backout.notify.messages import RunFacts
from backout.spec.environments import environment_values
from backout.spec.models import Notify, Plan
from backout.store import repo
from backout.store.db import Store
from backout.store.models import AuditRow, RunRow

LOOKBACK_S = 7 * 24 * 3600.0  # runs older than a week are no longer chased
WAITING_STATUSES = ("running", "needs_attention", "failed")


@dataclass(frozen=True)
class Waiting:
    """The run waits for a person since ``since`` (journal event ``seq``), because of
    ``reason`` (a notify event: approval.waiting, run.needs_attention, run.failed)."""

    reason: str
    seq: int
    since: float


@dataclass(frozen=True)
class TimerReport:
    escalations: int = 0
    reminders: int = 0


def waiting(events: list[Event]) -> Waiting | None:
    """What the run waits on a person for now, if anything, from its journal."""
    found: Waiting | None = None
    for e in events:
        if e.kind == EventKind.CHECKPOINT_STARTED and e.data.get("approve"):
            found = Waiting("approval.waiting", e.seq, e.at)
        elif e.kind == EventKind.RUN_NEEDS_ATTENTION:
            found = Waiting("run.needs_attention", e.seq, e.at)
        elif e.kind == EventKind.RUN_FINISHED and e.data.get("outcome") == RunStatus.FAILED:
            found = Waiting("run.failed", e.seq, e.at)
        elif e.kind in (
            EventKind.CHECKPOINT_PASSED,
            EventKind.STAGE_APPROVED,
            EventKind.BACKOUT_STARTED,
            EventKind.RUN_RESUMED,
            EventKind.RUN_FINISHED,
            EventKind.RUN_ABANDONED,  # a person decided: nobody is chased any more
        ):
            found = None
    return found


def incident_start(events: list[Event], mode: str) -> float | None:
    """When the incident began: the first trigger that fired (a plain backout: its start)."""
    for e in events:
        if e.kind == EventKind.TRIGGER_FIRED:
            return e.at
    if mode == "backout":
        return next((e.at for e in events if e.kind == EventKind.RUN_STARTED), None)
    return None


def facts_of(row: RunRow, plan: Plan, **extra: Any) -> RunFacts:
    """What every message about this run says of it, from its row and plan."""
    notify = plan.notify
    return RunFacts(
        run_id=row.id,
        service=plan.service_name,
        plan=row.plan,
        environment=str(row.plan_doc.get("environment") or ""),
        risk=plan.risk,
        mode=str(row.plan_doc.get("mode") or "backout"),
        actor=row.actor,
        release=str(row.plan_doc.get("release") or ""),
        links=dict(notify.links) if notify else {},
        **extra,
    )


def audited(session: Session, action: str, run_id: str) -> list[AuditRow]:
    query = select(AuditRow).where(AuditRow.action == action, AuditRow.subject == f"run:{run_id}")
    return list(session.scalars(query.order_by(AuditRow.seq)))


def run_timers(store: Store, actor: str, now: float | None = None) -> TimerReport:
    """Queue every escalation and update reminder due at ``now`` (default: the clock)."""
    now = time.time() if now is None else now
    escalations = reminders = 0
    query = select(RunRow.id, RunRow.plan_doc).where(
        RunRow.status.in_(WAITING_STATUSES), RunRow.created_at >= now - LOOKBACK_S
    )
    with store.session(read_only=True) as session:  # a poll: no write lock unless needed
        timed = [run_id for run_id, doc in session.execute(query) if _has_timers(doc)]
    if not timed:
        return TimerReport()
    with store.session() as session:
        for run_id in timed:
            row = session.get(RunRow, run_id)
            if row is None:
                continue
            plan = Plan.model_validate(row.plan_doc["plan"])
            assert plan.notify is not None  # _has_timers
            timers = _Timers(session, row, plan, plan.notify, now)
            escalations += timers.escalate()
            reminders += timers.remind()
    return TimerReport(escalations, reminders)


def _has_timers(doc: dict[str, Any]) -> bool:
    """Does this run's plan escalate or remind (a drill never does)?"""
    notify = (doc.get("plan") or {}).get("notify") or {}
    if doc.get("mode") == "rehearsal":
        return False
    return bool(notify.get("escalation") or notify.get("updates"))


class _Timers:
    def __init__(self, session: Session, row: RunRow, plan: Plan, notify: Notify, now: float):
        self.session, self.row, self.plan, self.notify, self.now = session, row, plan, notify, now
        self.events = repo.load_events(session, row.id)
        self.facts = facts_of(row, plan)
        env = self.facts.environment or None
        self.context = sending_context(
            plan.secrets, Path(row.plan_doc["base_dir"]), environment_values(plan, env)
        )

    def escalate(self) -> int:
        wait = waiting(self.events)
        if wait is None:
            return 0
        if any(a.at >= wait.since for a in audited(self.session, "run.acknowledged", self.row.id)):
            return 0
        queued = 0
        for index, level in enumerate(self.notify.escalation):
            if self.now < wait.since + level.after:
                continue
            what = {
                "approval.waiting": "waits for approval",
                "run.needs_attention": "needs attention",
                "run.failed": "failed",
            }[wait.reason]
            waited = _minutes(self.now - wait.since)
            title = f"{self.facts.service}: the run {what}, unacknowledged for {waited}"
            text = (
                f"Escalating to {', '.join(level.roles)} (level {index + 1}). "
                f"Take it with `backout ack {self.row.id}`."
            )
            severity: Severity = "critical" if wait.reason == "run.failed" else "error"
            key = f"esc-{wait.seq}-{index}"
            queued += self._send("run.escalated", level.to, level.roles, title, text, severity, key)
        return queued

    def remind(self) -> int:
        cadence = self.notify.updates
        start = incident_start(self.events, self.facts.mode)
        if cadence is None or start is None or self._resolved():
            return 0
        updates = [a.at for a in audited(self.session, "run.updated", self.row.id) if a.at >= start]
        if updates and cadence.every is None:
            return 0
        due = updates[-1] + (cadence.every or 0) if updates else start + cadence.first_within
        if self.now < due:
            return 0
        title = f"{self.facts.service}: a status update is due"
        overdue = _minutes(self.now - start)
        text = (
            f"The incident started {overdue} ago. Post an update with "
            f"`backout notify update {self.row.id} --message '…'`."
        )
        return self._send(
            "run.update_due", cadence.to, [cadence.role], title, text, "warning", f"upd-{int(due)}"
        )

    def _resolved(self) -> bool:
        status = RunStatus(self.row.status)
        if status is RunStatus.SUCCEEDED:
            return True
        acks = audited(self.session, "run.acknowledged", self.row.id)
        return status is RunStatus.FAILED and bool(acks)

    def _send(
        self,
        event: str,
        channels: list[str],
        roles: list[str],
        title: str,
        text: str,
        severity: Severity,
        key: str,
    ) -> int:
        """Queue the notice on each channel; 1 if any of it is new, else 0."""
        new = False
        for channel in channels:
            mentions = [
                self.notify.contacts[role][channel]
                for role in roles
                if channel in self.notify.contacts.get(role, {})
            ]
            notice = self.facts.notice(event, title, text, severity, self.now, mentions=mentions)
            full_key = f"backout-notify-{channel}-run-{self.row.id}-{key}"
            new |= queue_notice(
                self.session,
                self.notify,
                channel,
                notice.to_json(),
                self.context,
                full_key,
                self.row.id,
            )
        return int(new)


def _minutes(seconds: float) -> str:
    return format_duration(max(0.0, round(seconds)))
