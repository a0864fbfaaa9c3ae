"""Deliver queued change events to the ITSM tool: retried with backoff, never lost while the
endpoint is down, never sent again once acknowledged.

Each delivery claims its row first (``status=sending`` until a short deadline) in its own
transaction, sends outside any transaction, then marks it ``sent``. A sender that dies
mid-delivery leaves a claim that expires and is retried; every request carries an
``Idempotency-Key`` so the receiver can drop the duplicate such a crash could cause.
Events of one change go out in order: a later one never overtakes a pending earlier one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backout.changes import itsm
from backout.store import audit
from backout.store.db import Store
from backout.store.models import ChangeRow, OutboxRow

CLAIM_S = 30.0
MAX_BACKOFF_S = 300.0


@dataclass(frozen=True)
class Target:
    url: str
    format: itsm.Format
    token: str | None = None
    project: str = "CHG"
    timeout: float = 10.0
    retry_delay: float = 1.0


@dataclass
class SendReport:
    sent: int = 0
    failed_attempts: int = 0
    pending: int = 0
    errors: list[str] = field(default_factory=list)


def _next_due(store: Store, target: Target, now: float) -> tuple[int, itsm.Request, str] | None:
    """Claim the oldest due event of some change; return (id, request, idempotency key)."""
    with store.session() as session:
        rows = session.scalars(
            select(OutboxRow).where(OutboxRow.status != "sent").order_by(OutboxRow.id)
        ).all()
        firsts: dict[int, OutboxRow] = {}
        for row in rows:
            firsts.setdefault(row.change_id, row)
        for row in firsts.values():
            if row.next_attempt_at > now:
                continue
            change = session.get(ChangeRow, row.change_id)
            external = change.external_id if change else None
            if row.event != "created" and external is None:
                continue  # the remote record does not exist yet
            if not _claim(session, row, now):
                continue  # another sender took it between our read and now
            request = itsm.build(target.format, row.payload, external, target.project)
            return row.id, request, f"backout-outbox-{row.id}"
    return None


def _claim(session: Session, row: OutboxRow, now: float) -> bool:
    """Compare-and-set: only the sender that still sees the row as we read it wins, so two
    senders on PostgreSQL never deliver the same event twice."""
    result = session.execute(
        update(OutboxRow)
        .where(
            OutboxRow.id == row.id,
            OutboxRow.status == row.status,
            OutboxRow.next_attempt_at == row.next_attempt_at,
        )
        .values(status="sending", next_attempt_at=now + CLAIM_S)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]


def _client(target: Target) -> httpx.Client:
    """One client per send: connections are reused across deliveries."""
    headers = {"Accept": "application/json"}
    if target.token:
        headers["Authorization"] = f"Bearer {target.token}"
    return httpx.Client(base_url=target.url.rstrip("/"), headers=headers, timeout=target.timeout)


def _deliver(
    client: httpx.Client, request: itsm.Request, key: str
) -> tuple[bool, str, dict[str, object]]:
    try:
        response = client.request(
            request.method, request.path, json=request.body, headers={"Idempotency-Key": key}
        )
    except httpx.HTTPError as exc:
        return False, f"{type(exc).__name__}: {exc}", {}
    if not 200 <= response.status_code < 300:
        return False, f"HTTP {response.status_code}: {response.text[:200]}", {}
    try:
        body = response.json()
    except ValueError:
        body = {}
    return True, "", body if isinstance(body, dict) else {}


def _settle(
    store: Store,
    target: Target,
    outbox_id: int,
    ok: bool,
    error: str,
    body: dict[str, object],
    actor: str,
) -> str:
    """Record the delivery's result; returns a warning when an acknowledged create named no
    remote record (the change's later events then wait: there is nothing to add them to)."""
    warning = ""
    with store.session() as session:
        row = session.get(OutboxRow, outbox_id)
        assert row is not None
        if ok:
            row.status, row.sent_at, row.last_error = "sent", time.time(), ""
            if row.event == "created":
                change = session.get(ChangeRow, row.change_id)
                if change is not None:
                    change.external_id = itsm.external_id_of(target.format, body)
                    if change.external_id is None:
                        warning = row.last_error = (
                            "acknowledged, but the answer named no record (ServiceNow "
                            "result.sys_id, Jira key): later events of this change wait"
                        )
            audit.append(
                session,
                actor,
                "outbox.delivered",
                f"change:{row.change_id}",
                {"outbox_id": row.id, "event": row.event, "attempts": row.attempts + 1},
            )
        else:
            delay = min(target.retry_delay * 2**row.attempts, MAX_BACKOFF_S)
            row.status, row.next_attempt_at, row.last_error = "pending", time.time() + delay, error
        row.attempts += 1
    return warning


def pending_count(store: Store) -> int:
    with store.session() as session:
        return len(session.scalars(select(OutboxRow.id).where(OutboxRow.status != "sent")).all())


def send(store: Store, target: Target, actor: str, timeout: float, once: bool) -> SendReport:
    with _client(target) as client:
        return _send_all(store, target, client, actor, timeout, once)


def _send_all(
    store: Store, target: Target, client: httpx.Client, actor: str, timeout: float, once: bool
) -> SendReport:
    report = SendReport()
    deadline = time.monotonic() + timeout
    while True:
        claimed = _next_due(store, target, time.time())
        if claimed is None:
            report.pending = pending_count(store)
            if once or report.pending == 0 or time.monotonic() >= deadline:
                return report
            time.sleep(min(0.2, target.retry_delay))
            continue
        outbox_id, request, key = claimed
        ok, error, body = _deliver(client, request, key)
        warning = _settle(store, target, outbox_id, ok, error, body, actor)
        if warning:
            report.errors.append(f"event {outbox_id}: {warning}")
        if ok:
            report.sent += 1
        else:
            report.failed_attempts += 1
            report.errors.append(f"event {outbox_id}: {error}")
