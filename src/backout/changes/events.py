"""Recording a change event: audit record + outbox event, in the caller's transaction."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.orm import Session

from backout.changes.lifecycle import ChangeStatus, check_change
from backout.changes.notices import notify_change
from backout.changes.window import iso
from backout.store import audit, outbox
from backout.store.models import ChangeRow
from backout.store.outbox import ITSM_ROUTE


def summary(row: ChangeRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "title": row.title,
        "status": row.status,
        "plan": row.plan,
        "service": row.service,
        "risk": row.risk,
        "risk_computed": row.risk_computed,
        "requester": row.requester,
        "ref": row.ref,
        "plan_version": row.plan_version,
        "window": f"{iso(row.window_start)}..{iso(row.window_end)}"
        if row.window_start is not None
        else None,
        "window_start": row.window_start,
        "window_end": row.window_end,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def record(
    session: Session,
    row: ChangeRow,
    actor: str,
    event: str,
    details: dict[str, Any],
    runbook: str | None = None,
    body: str | None = None,
) -> int:
    """Audit the change event and queue it for the ITSM tool, in the caller's transaction;
    the audit record's sequence number. ``body``: the text the ITSM tool's note shows
    instead of the event's one-line summary (a post-incident report)."""
    entry = audit.append(session, actor, f"change.{event}", f"change:{row.id}", details)
    payload: dict[str, Any] = {
        "event": event,
        "actor": actor,
        "change": summary(row),
        "details": details,
    }
    if runbook is not None:
        payload["runbook"] = runbook
    if body is not None:
        payload["body"] = body
    outbox.enqueue(session, ITSM_ROUTE, f"change:{row.id}", event, payload, change_id=row.id)
    return entry.seq


def move(
    session: Session, row: ChangeRow, actor: str, target: ChangeStatus, details: dict[str, Any]
) -> None:
    """Transition a change by its rules, and record it."""
    current = ChangeStatus(row.status)
    check_change(row.id, current, target)
    row.status = target.value
    row.updated_at = time.time()
    seq = record(
        session, row, actor, "transitioned", {"from": current.value, "to": target.value, **details}
    )
    notify_change(session, row, actor, target, seq)
