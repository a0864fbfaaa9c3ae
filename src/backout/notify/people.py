"""What people say about a run: ``backout ack`` (someone took it: escalation stops, a
paging channel acknowledges) and ``backout notify update`` (a status update for everyone
routed ``run.updated``; the first one's delay after the trigger is recorded). Both are
audited and told through the plan's routes, in one transaction."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from backout.channels.notice import Severity
from backout.notify.escalation import audited, facts_of, incident_start, waiting
from backout.notify.hook import channels_for, queue_notice, sending_context
from backout.spec.environments import environment_values
from backout.spec.models import Plan
from backout.store import audit, repo
from backout.store.models import RunRow


@dataclass(frozen=True)
class Said:
    """What was recorded: the audit record's sequence number and time, the channels told,
    and for an ack what the run was waiting for (``""``: nothing); for an update, the
    seconds since the incident began when it is the run's first."""

    seq: int
    at: float
    channels: list[str]
    waiting_for: str = ""
    first_update_s: float | None = None


def acknowledge(
    session: Session,
    row: RunRow,
    actor: str,
    message: str,
    *,
    source: dict[str, str] | None = None,
    skip_kinds: frozenset[str] = frozenset(),
) -> Said:
    """Record that ``actor`` took the run. ``source``: where the ack came from when not
    from a person at the CLI (kept in the audit record, e.g. PagerDuty's event id);
    ``skip_kinds``: channel kinds not to tell (the service the ack came from knows)."""
    events = repo.load_events(session, row.id)
    wait = waiting(events)
    details = {"message": message, "waiting_for": wait.reason if wait else "", **(source or {})}
    record = audit.append(session, actor, "run.acknowledged", f"run:{row.id}", details)
    title = f"acknowledged by {actor}"
    text = message or f"{actor} took the run: escalation stops."
    key = f"ack-{record.seq}"
    told = _tell(session, row, "run.acknowledged", title, text, "info", key, skip=skip_kinds)
    return Said(record.seq, record.at, told, wait.reason if wait else "")


def post_update(session: Session, row: RunRow, actor: str, message: str) -> Said:
    plan = Plan.model_validate(row.plan_doc["plan"])
    events = repo.load_events(session, row.id)
    start = incident_start(events, str(row.plan_doc.get("mode") or "backout"))
    now = time.time()
    earlier = [a for a in audited(session, "run.updated", row.id) if start and a.at >= start]
    first = round(now - start, 3) if start is not None and not earlier else None
    details: dict[str, object] = {"message": message}
    if first is not None:  # time to first update, kept with the record that made it
        details["first_update_s"] = first
    record = audit.append(session, actor, "run.updated", f"run:{row.id}", details)
    title = f"update from {actor}"
    told = _tell(session, row, "run.updated", title, message, "info", f"upd-{record.seq}", plan)
    return Said(record.seq, record.at, told, first_update_s=first)


def share_report(
    session: Session,
    row: RunRow,
    actor: str,
    title: str,
    text: str,
    details: dict[str, object],
) -> Said:
    """Tell the routes of ``run.report`` that the run's post-incident report is drafted
    (audited as ``run.report_shared`` with ``details``: its hash, where it is)."""
    record = audit.append(session, actor, "run.report_shared", f"run:{row.id}", details)
    told = _tell(session, row, "run.report", title, text, "info", f"report-{record.seq}")
    return Said(record.seq, record.at, told)


def _tell(
    session: Session,
    row: RunRow,
    event: str,
    title: str,
    text: str,
    severity: Severity,
    key: str,
    plan: Plan | None = None,
    skip: frozenset[str] = frozenset(),
) -> list[str]:
    plan = plan or Plan.model_validate(row.plan_doc["plan"])
    notify = plan.notify
    if notify is None:
        return []
    facts = facts_of(row, plan)
    channels = [
        name
        for name in channels_for(notify, event, facts.environment)
        if notify.channels[name].kind not in skip
    ]
    context = sending_context(
        plan.secrets,
        Path(row.plan_doc["base_dir"]),
        environment_values(plan, facts.environment or None),
    )
    notice = facts.notice(event, f"{facts.service}: {title}", text, severity, time.time())
    for channel in channels:
        full_key = f"backout-notify-{channel}-run-{row.id}-{key}"
        queue_notice(session, notify, channel, notice.to_json(), context, full_key, row.id)
    return channels
