"""Change events as notifications: a change approved, started or closed goes to the
channels its plan's ``notify.routes`` name for ``change.approved``, ``change.started`` or
``change.closed``, queued in the transaction that moved the change (so it exists iff the
move does). The plan is read from the change's plan file; a plan that cannot be read any
more routes nothing (the ITSM outbox and the audit trail still have the move)."""

from __future__ import annotations

import time

from sqlalchemy.orm import Session

from backout.changes.lifecycle import ChangeStatus
from backout.channels.notice import Notice, Severity
from backout.errors import BackoutError
from backout.notify.hook import channels_for, queue_notice, sending_context
from backout.plans import load_plan
from backout.store.models import ChangeRow

CHANGE_EVENTS: dict[ChangeStatus, tuple[str, Severity]] = {
    ChangeStatus.APPROVED: ("change.approved", "info"),
    ChangeStatus.IN_PROGRESS: ("change.started", "info"),
    ChangeStatus.COMPLETED: ("change.closed", "info"),
    ChangeStatus.BACKED_OUT: ("change.closed", "warning"),
    ChangeStatus.FAILED: ("change.closed", "critical"),
    ChangeStatus.REJECTED: ("change.closed", "info"),
}


def notify_change(
    session: Session, row: ChangeRow, actor: str, target: ChangeStatus, audit_seq: int
) -> list[str]:
    """Queue the notification of a change's move; the channels told."""
    event = CHANGE_EVENTS.get(target)
    if event is None:
        return []
    try:
        loaded = load_plan(row.plan_file)
    except BackoutError:
        return []
    notify = loaded.plan.notify
    if notify is None:
        return []
    name, severity = event
    environment = ""  # a change record is not bound to one environment
    channels = channels_for(notify, name, environment)
    if not channels:
        return []
    notice = Notice(
        event=name,
        title=f"change {row.id} {target.value.replace('_', ' ')}: {row.title}",
        text=f"{actor} moved change {row.id} ({row.service}, risk {row.risk}) to {target.value}.",
        severity=severity,
        run_id=f"change-{row.id}",
        service=row.service,
        plan=row.plan,
        status=target.value,
        risk=row.risk,
        mode="change",
        explain=f"backout change show {row.id}",
        at=time.time(),
        fields=[("Change", str(row.id)), ("Requester", row.requester)],
        links=dict(notify.links),
    ).to_json()
    context = sending_context(loaded.plan.secrets, loaded.base_dir, {})
    for channel in channels:
        key = f"backout-notify-{channel}-change-{row.id}-{audit_seq}"
        queue_notice(
            session, notify, channel, notice, context, key, None, stream=f"change:{row.id}"
        )
    return channels
