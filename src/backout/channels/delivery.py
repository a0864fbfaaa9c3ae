"""Deliver a route's queued events through a channel: retried with backoff, never lost
while the receiver is down, never sent again once acknowledged.

Each delivery claims its row first (``status=sending`` until a short deadline) in its own
transaction, sends outside any transaction, then settles it. A sender that dies
mid-delivery leaves a claim that expires and is retried with the same key, so the receiver
can drop the duplicate such a crash could cause. Events of one stream go out in order: a
later one never overtakes a pending earlier one, and one that needs its stream's remote
record (a comment on a change) waits until the record exists.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backout.channels.base import CHANNELS, Channel, Delivery, Receipt, Sender
from backout.errors import UsageError
from backout.store import audit
from backout.store import outbox as queue
from backout.store.db import Store
from backout.store.models import OutboxRow

CLAIM_S = 30.0
MAX_BACKOFF_S = 300.0


@dataclass
class SendReport:
    """What one ``outbox send`` did."""

    sent: int = 0
    failed_attempts: int = 0
    pending: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when nothing is left to deliver, 1 when events are still pending."""
        return 0 if self.pending == 0 else 1

    def to_json(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "failed_attempts": self.failed_attempts,
            "pending": self.pending,
            "errors": self.errors,
        }


@dataclass(frozen=True)
class Route:
    """Deliver the events queued for ``name`` with ``channel``, first retry after
    ``retry_delay`` seconds (doubling up to five minutes)."""

    name: str
    channel: Channel
    options: object
    retry_delay: float = 1.0

    @classmethod
    def of(cls, name: str, kind: str, options: dict[str, Any], retry_delay: float = 1.0) -> Route:
        """A route to the channel named ``kind``, its options validated by its model."""
        if kind not in CHANNELS:
            raise UsageError(
                f"no channel named {kind!r}",
                hint=f"installed channels: {', '.join(CHANNELS.names())}",
            )
        channel = CHANNELS.get(kind)
        fields = channel.Options.model_fields
        given = {k: v for k, v in options.items() if k in fields and v is not None}
        try:
            validated = channel.Options.model_validate(given)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise UsageError(
                f"channel {kind!r}: {problems}",
                hint="e.g. --url https://acme.service-now.com (and BACKOUT_OUTBOX_TOKEN)",
            ) from exc
        return cls(name, channel, validated, retry_delay)


def _next_due(store: Store, route: Route, now: float) -> Delivery | None:
    """Claim the oldest due event of some stream, as a Delivery."""
    with store.session() as session:
        pending = session.scalars(
            select(OutboxRow)
            .where(OutboxRow.route == route.name, OutboxRow.status != "sent")
            .order_by(OutboxRow.id)
        ).all()
        firsts: dict[str, OutboxRow] = {}
        for row in pending:
            firsts.setdefault(row.stream, row)
        for row in firsts.values():
            if row.next_attempt_at > now:
                continue
            delivery = Delivery(
                row.id,
                row.key,
                row.route,
                row.stream,
                row.event,
                dict(row.payload),
                queue.stream_ref(session, route.name, row.stream),
            )
            if delivery.ref is None and route.channel.needs_ref(delivery):
                continue  # the remote record does not exist yet
            if _claim(session, row, now):
                return delivery
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


def _settle(store: Store, route: Route, delivery: Delivery, receipt: Receipt, actor: str) -> None:
    with store.session() as session:
        row = session.get(OutboxRow, delivery.id)
        assert row is not None
        if receipt.ok:
            row.status, row.sent_at, row.ref = "sent", time.time(), receipt.ref
            row.last_error = receipt.warning
            audit.append(
                session,
                actor,
                "outbox.delivered",
                _subject(row),
                {
                    "outbox_id": row.id,
                    "route": row.route,
                    "channel": route.channel.kind,
                    "event": row.event,
                    "attempts": row.attempts + 1,
                },
            )
        else:
            delay = min(route.retry_delay * 2**row.attempts, MAX_BACKOFF_S)
            if receipt.retry_after is not None:
                delay = max(delay, min(receipt.retry_after, MAX_BACKOFF_S))
            row.status, row.next_attempt_at = "pending", time.time() + delay
            row.last_error = receipt.error
        row.attempts += 1


def _subject(row: OutboxRow) -> str:
    if row.change_id is not None:
        return f"change:{row.change_id}"
    return f"run:{row.run_id}" if row.run_id else row.stream


def pending_count(store: Store, route: str) -> int:
    with store.session() as session:
        return queue.pending_count(session, route)


def send(store: Store, route: Route, actor: str, timeout: float, once: bool) -> SendReport:
    """Deliver what is due until nothing is pending or ``timeout`` seconds have passed
    (``once``: one pass over what is due now)."""
    with route.channel.open(route.options) as sender:
        return _send_all(store, route, sender, actor, timeout, once)


def _send_all(
    store: Store, route: Route, sender: Sender, actor: str, timeout: float, once: bool
) -> SendReport:
    report = SendReport()
    deadline = time.monotonic() + timeout
    while True:
        delivery = _next_due(store, route, time.time())
        if delivery is None:
            report.pending = pending_count(store, route.name)
            if once or report.pending == 0 or time.monotonic() >= deadline:
                return report
            time.sleep(min(0.2, route.retry_delay))
            continue
        receipt = sender.deliver(delivery)
        _settle(store, route, delivery, receipt, actor)
        if receipt.warning:
            report.errors.append(f"event {delivery.id}: {receipt.warning}")
        if receipt.ok:
            report.sent += 1
        else:
            report.failed_attempts += 1
            report.errors.append(f"event {delivery.id}: {receipt.error}")
