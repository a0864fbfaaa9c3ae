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

import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from backout import proc
from backout.channels.base import CHANNELS, CLAIM_S, Channel, Delivery, Receipt, Sender
from backout.errors import UsageError
from backout.store import audit
from backout.store import outbox as queue
from backout.store.db import Store
from backout.store.models import OutboxRow

MAX_BACKOFF_S = 300.0
MAX_ATTEMPTS = 10  # then the event is dead-lettered: kept, shown, re-sendable by hand


@dataclass
class SendReport:
    """What one ``outbox send`` did."""

    sent: int = 0
    failed_attempts: int = 0
    pending: int = 0
    dead: int = 0
    dead_lettered: int = 0  # by this send
    errors: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when nothing is left to deliver, 1 when events are still pending or this send
        gave up on some (dead-lettered)."""
        return 0 if self.pending == 0 and self.dead_lettered == 0 else 1

    def to_json(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "failed_attempts": self.failed_attempts,
            "pending": self.pending,
            "dead": self.dead,
            "dead_lettered": self.dead_lettered,
            "errors": self.errors,
        }


@dataclass(frozen=True)
class Route:
    """Deliver the events queued for ``name`` with ``channel``, first retry after
    ``retry_delay`` seconds (doubling up to five minutes, with jitter); after
    ``max_attempts`` failures an event is dead-lettered (status ``dead``). ``prefix``: the
    route is every route whose name starts with ``name`` (``notify:`` for all channels)."""

    name: str
    channel: Channel
    options: object
    retry_delay: float = 1.0
    max_attempts: int = MAX_ATTEMPTS
    prefix: bool = False

    def matches(self) -> ColumnElement[bool]:
        """The outbox rows of this route, as a query condition."""
        if self.prefix:
            return OutboxRow.route.startswith(self.name, autoescape=True)
        return OutboxRow.route == self.name

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
    with store.session(read_only=True) as session:
        # the head of every stream, without payloads: a backlog costs a narrow scan
        pending = session.execute(
            select(OutboxRow.id, OutboxRow.route, OutboxRow.stream)
            .where(route.matches(), OutboxRow.status.in_(queue.UNSENT))
            .order_by(OutboxRow.id)
        ).all()
    if not pending:
        return None  # nothing queued: no write lock taken
    firsts: dict[tuple[str, str], int] = {}
    for row_id, name, stream in pending:
        firsts.setdefault((name, stream), row_id)
    with store.session() as session:
        for row_id in firsts.values():
            row = session.get(OutboxRow, row_id)  # fresh: another sender may have claimed it
            if row is None or row.status not in queue.UNSENT or not _due(row, now):
                continue
            delivery = Delivery(
                row.id,
                row.key,
                row.route,
                row.stream,
                row.event,
                dict(row.payload),
                queue.stream_ref(session, row.route, row.stream),
            )
            if delivery.ref is None and route.channel.needs_ref(delivery):
                continue  # the remote record does not exist yet
            if _claim(session, row, now):
                return delivery
    return None


def _due(row: OutboxRow, now: float) -> bool:
    """Due now: its time has come, or it is claimed by a process of this host that died
    mid-delivery (no need to wait for the claim to expire: its key makes a repeat safe)."""
    if row.next_attempt_at <= now:
        return True
    return row.status == "sending" and _claimer_gone(row.claimed_by)


def claimer() -> str:
    """This process, as a claim names it: host, boot, pid and start time."""
    host, boot = proc.this_host()
    pid = os.getpid()
    return f"{host}|{boot or ''}|{pid}|{proc.start_time(pid) or ''}"


def _claimer_gone(claimed_by: str | None) -> bool:
    host, boot, pid, start = (claimed_by or "").split("|") + [""] * (
        3 - (claimed_by or "").count("|")
    )
    here, this_boot = proc.this_host()
    if host != here or not pid.isdigit():
        return False  # another host's sender: only its claim's expiry tells
    if boot and this_boot and boot != this_boot:
        return True  # this host rebooted since
    return not proc.alive(int(pid), int(start) if start.isdigit() else None)


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
        .values(status="sending", next_attempt_at=now + CLAIM_S, claimed_by=claimer())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined, no-any-return]


def _settle(store: Store, route: Route, delivery: Delivery, receipt: Receipt, actor: str) -> str:
    """Record how the delivery went; the row's new status."""
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
                    "channel": _kind(route, row),
                    "event": row.event,
                    "attempts": row.attempts + 1,
                },
            )
        else:
            _failed(session, route, row, receipt, actor)
        row.attempts += 1
        return row.status


def _kind(route: Route, row: OutboxRow) -> str:
    """The channel kind that delivers this row (a notification names its own)."""
    named = row.payload.get("channel") if isinstance(row.payload, dict) else None
    return str(named.get("kind")) if isinstance(named, dict) else route.channel.kind


def backoff(route: Route, attempts: int, retry_after: float | None) -> float:
    """Seconds before the next try: doubling from ``retry_delay``, jittered (half fixed,
    half random, so senders that failed together do not retry together), never sooner
    than a receiver's ``Retry-After``, at most five minutes."""
    delay = min(route.retry_delay * 2.0**attempts, MAX_BACKOFF_S)
    delay = delay / 2 + random.uniform(0, delay / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_BACKOFF_S))
    return delay


def _failed(session: Session, route: Route, row: OutboxRow, receipt: Receipt, actor: str) -> None:
    """A failed try: retried later, or dead-lettered after ``max_attempts``; audited."""
    dead = receipt.permanent or row.attempts + 1 >= route.max_attempts
    row.last_error = receipt.error
    if dead:
        row.status = "dead"
    else:
        row.status = "pending"
        row.next_attempt_at = time.time() + backoff(route, row.attempts, receipt.retry_after)
    audit.append(
        session,
        actor,
        "outbox.dead" if dead else "outbox.failed",
        _subject(row),
        {
            "outbox_id": row.id,
            "route": row.route,
            "channel": _kind(route, row),
            "event": row.event,
            "attempts": row.attempts + 1,
            "error": receipt.error[:500],
        },
    )


def _subject(row: OutboxRow) -> str:
    if row.change_id is not None:
        return f"change:{row.change_id}"
    return f"run:{row.run_id}" if row.run_id else row.stream


def pending_count(store: Store, route: Route) -> int:
    with store.session(read_only=True) as session:
        return queue.count(session, route.matches(), queue.UNSENT)


def dead_count(store: Store, route: Route) -> int:
    with store.session(read_only=True) as session:
        return queue.count(session, route.matches(), ("dead",))


def send(store: Store, route: Route, actor: str, timeout: float, once: bool) -> SendReport:
    """Deliver what is due until nothing is pending or ``timeout`` seconds have passed
    (``once``: one pass over what is due now)."""
    with route.channel.open(route.options) as sender:
        return send_with(store, route, sender, actor, timeout, once)


def send_with(
    store: Store,
    route: Route,
    sender: Sender,
    actor: str,
    timeout: float,
    once: bool,
    *,
    counts: bool = True,
) -> SendReport:
    """Deliver with an open sender; ``counts=False`` (a background pass, many a second)
    leaves the report's pending and dead counts at 0: a pass that finds nothing due is then
    one read, not three."""
    report = SendReport()
    deadline = time.monotonic() + timeout
    while True:
        delivery = _next_due(store, route, time.time())
        if delivery is None and once and not counts:
            return report
        if delivery is None:
            report.pending = pending_count(store, route)
            if once or report.pending == 0 or time.monotonic() >= deadline:
                report.dead = dead_count(store, route)
                return report
            time.sleep(min(0.2, route.retry_delay))
            continue
        receipt = sender.deliver(delivery)
        if _settle(store, route, delivery, receipt, actor) == "dead":
            report.dead_lettered += 1
        if receipt.warning:
            report.errors.append(f"event {delivery.id}: {receipt.warning}")
        if receipt.ok:
            report.sent += 1
        else:
            report.failed_attempts += 1
            report.errors.append(f"event {delivery.id}: {receipt.error}")
