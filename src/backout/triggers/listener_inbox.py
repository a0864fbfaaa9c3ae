"""What the webhook listener leaves in the trigger inbox for the run: a webhook body read as
Alertmanager's payload, its alerts (all of them, or none), and the requests it refused
(throttled: a flood of bad requests must not flood the journal; never the secret).

The run journals each one; watcher.py decides what an alert does.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from backout.errors import BackoutError
from backout.store import inbox
from backout.store.db import Store
from backout.triggers.alerts import Alert, WebhookPayload

KIND = "alertmanager"  # the inbox kind and actor of a queued alert
REJECTED = "rejected"  # the inbox kind of a refused request
REJECTIONS_PER_MINUTE = 10  # journalled; a flood of bad requests must not flood the journal


def parse_webhook(body: bytes) -> WebhookPayload | str:
    """The Alertmanager webhook in ``body``, or why it is not one."""
    try:
        return WebhookPayload.model_validate(json.loads(body))
    except (ValueError, ValidationError) as exc:
        return f"malformed Alertmanager webhook: {str(exc).splitlines()[0][:300]}"


def queue_alerts(store: Store, service: str, payload: WebhookPayload, run_id: str) -> None:
    """Queue every alert of ``payload`` for the run, in one transaction; BackoutError or
    SQLAlchemyError if the store cannot take them."""
    with store.session() as session:  # all of a webhook's alerts, or none
        for alert in payload.alerts:
            put_alert(session, service, alert, payload, run_id)


def put_alert(
    session: Session,
    service: str,
    alert: Alert,
    payload: WebhookPayload,
    run_id: str | None,
    actor: str = KIND,
) -> inbox.InboxRow:
    """One alert of ``payload`` in the inbox for ``service`` (and its run ``run_id``), as the
    run's watcher reads it; rings the service's doorbell once the session commits. The
    listener and the API server's alert endpoints both store alerts through this."""
    return inbox.put(session, service, KIND, alert.name, actor, alert.entry(payload), run_id)


def queue_rejection(
    store: Store, service: str, reason: str, client: str, left_out: int, run_id: str | None
) -> None:
    """Queue a rejection for the run's journal, saying how many were ``left_out`` before it.
    Never raises for the store: the client gets its 4xx even when the store cannot take it."""
    data = {"client": client, "left_out": left_out} if left_out else {"client": client}
    with contextlib.suppress(BackoutError, SQLAlchemyError), store.session() as session:
        inbox.put(session, service, REJECTED, reason, client, data, run_id)


class Throttle:
    """At most ``limit`` rejections a minute are journalled; the next one journalled says how
    many were left out."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit, self.window = limit, window
        self.lock = threading.Lock()
        self.times: list[float] = []
        self.dropped = 0

    def admit(self) -> int | None:
        """How many were left out before this one, or None to leave this one out too."""
        now = time.monotonic()
        with self.lock:
            self.times = [t for t in self.times if now - t < self.window]
            if len(self.times) >= self.limit:
                self.dropped += 1
                return None
            self.times.append(now)
            dropped, self.dropped = self.dropped, 0
            return dropped
