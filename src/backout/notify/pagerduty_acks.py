"""A PagerDuty acknowledgement as an ack: PagerDuty's V3 webhook ``incident.acknowledged``
for an incident that a backout run raised takes the run, as ``backout ack`` would.

A run's PagerDuty channel sends every event with ``dedup_key`` = the run id, so the
incident PagerDuty opens carries it back as ``data.incident_key``. What arrives is trusted
only with a valid ``X-PagerDuty-Signature`` (``v1=`` HMAC-SHA256 of the raw body under the
subscription's secret; several ``v1=`` values during a secret's rotation), compared in
constant time.

PagerDuty delivers at least once, and an ack that ``backout`` sends to PagerDuty comes back
as a webhook: neither records a second ack. An event is recorded once (its id is kept in
the audit record), and a run already acknowledged since it began waiting is left as it is.
The PagerDuty channels of the run are not told of an ack that came from PagerDuty.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from backout.notify.escalation import audited, waiting
from backout.notify.people import acknowledge
from backout.store import repo
from backout.store.models import RunRow

SIGNATURE_HEADER = "X-PagerDuty-Signature"
ACKNOWLEDGED = "incident.acknowledged"


def signature_ok(body: bytes, header: str | None, secrets: Sequence[str]) -> bool:
    """True if one of the header's ``v1=`` signatures is the body's HMAC under a secret."""
    if not header:
        return False
    given = [part.strip()[3:] for part in header.split(",") if part.strip().startswith("v1=")]
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(expected.encode(), g.encode()) for g in given):
            return True
    return False


def sign(body: bytes, secret: str) -> str:
    """The ``X-PagerDuty-Signature`` value PagerDuty would send (for tests and dry runs)."""
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class PagerDutyEvent:
    """What backout reads of a V3 webhook: the event's id and type, the incident's key
    (a run id when a backout run raised it), its page, and who did it."""

    id: str
    event_type: str
    incident_key: str
    incident_url: str
    agent: str


class BadPayload(ValueError):
    """The body is not a PagerDuty V3 webhook."""


def parse_event(body: bytes) -> PagerDutyEvent:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadPayload(f"the body is not JSON ({exc})") from None
    event = doc.get("event") if isinstance(doc, dict) else None
    if not isinstance(event, dict) or not isinstance(event.get("event_type"), str):
        raise BadPayload("not a PagerDuty V3 webhook: expected {'event': {'event_type': ...}}")
    data = _object(event.get("data"))
    agent = _object(event.get("agent"))
    return PagerDutyEvent(
        id=_text(event.get("id")),
        event_type=event["event_type"],
        incident_key=_text(data.get("incident_key")),
        incident_url=_text(data.get("html_url")),
        agent=_text(agent.get("summary")) or _text(agent.get("id")) or "someone",
    )


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class Taken:
    """What became of one webhook: the HTTP status to answer, why, and the run it acked."""

    status: int
    message: str
    run_id: str | None = None
    acknowledged: bool = False


def take(session: Session, event: PagerDutyEvent) -> Taken:
    """Acknowledge the run that ``event`` names, if it is an acknowledgement of one.
    Anything else is answered 200 (PagerDuty would retry a 4xx or 5xx for nothing)."""
    if event.event_type != ACKNOWLEDGED:
        return Taken(200, f"ignored: {event.event_type} is not {ACKNOWLEDGED}")
    row = session.get(RunRow, event.incident_key) if event.incident_key else None
    if row is None:
        return Taken(200, "ignored: the incident was not raised by a backout run")
    acks = audited(session, "run.acknowledged", row.id)
    if event.id and any(a.details.get("pagerduty_event") == event.id for a in acks):
        return Taken(200, f"already recorded: event {event.id}", row.id)
    wait = waiting(repo.load_events(session, row.id))
    since = wait.since if wait else 0.0
    earlier = [a for a in acks if a.at >= since]
    if earlier:
        return Taken(200, f"run {row.id} was already acknowledged by {earlier[-1].actor}", row.id)
    where = f" ({event.incident_url})" if event.incident_url else ""
    acknowledge(
        session,
        row,
        f"pagerduty:{event.agent}",
        f"{event.agent} acknowledged the incident in PagerDuty{where}.",
        source={"source": "pagerduty", "pagerduty_event": event.id},
        skip_kinds=frozenset({"pagerduty"}),
    )
    return Taken(200, f"run {row.id} acknowledged by {event.agent}", row.id, acknowledged=True)
