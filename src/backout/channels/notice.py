"""A notification as every notification channel receives it: what happened to which run,
already rendered and redacted, independent of any service's payload shape.

The notify layer builds one :class:`Notice` per (run event, channel) and queues it in the
outbox as ``delivery.payload["notice"]``; a channel turns it into the payload its service
documents (Slack Block Kit, a PagerDuty event, a Teams Adaptive Card, a signed webhook,
an email). Nothing in a notice is a secret: it was redacted with the run's secrets before
it was queued.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from backout.channels.base import Delivery

Severity = Literal["info", "warning", "error", "critical"]

# notify events that end an incident (a paging channel resolves, a chat header goes green)
RESOLVING = frozenset({"run.backed_out", "run.promoted", "run.healthy", "rehearsal.passed"})
# notify events a person must act on
ACTIONABLE = frozenset({"approval.waiting", "run.needs_attention", "run.failed", "step.failed"})


@dataclass(frozen=True)
class Notice:
    """One rendered notification.

    ``event`` is the notify event (``trigger.fired``, ``run.backed_out`` …, listed in
    docs/notifications.md); ``title`` is one line, ``text`` a few; ``fields`` are labelled
    facts shown as a table; ``links`` maps a label to a URL; ``explain`` is the command
    that shows the whole story (``backout explain RUN``)."""

    event: str
    title: str
    text: str
    severity: Severity
    run_id: str
    service: str
    environment: str = ""
    plan: str = ""
    status: str = ""
    risk: str = "medium"
    mode: str = "backout"
    reason: str = ""
    explain: str = ""
    at: float = 0.0
    fields: list[tuple[str, str]] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)
    mentions: list[str] = field(default_factory=list)
    test: bool = False

    @property
    def subject(self) -> str:
        """``service@environment`` (or the service alone), as people name it."""
        return f"{self.service}@{self.environment}" if self.environment else self.service

    @property
    def resolving(self) -> bool:
        return self.event in RESOLVING

    @property
    def timestamp(self) -> str:
        """ISO 8601 in UTC, as PagerDuty and the webhook receivers expect it."""
        return dt.datetime.fromtimestamp(self.at, tz=dt.UTC).isoformat().replace("+00:00", "Z")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["fields"] = [list(pair) for pair in self.fields]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Notice:
        known = {name for name in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["fields"] = [(str(k), str(v)) for k, v in values.get("fields", [])]
        return cls(**values)

    @classmethod
    def of(cls, delivery: Delivery) -> Notice:
        """The notice a delivery carries."""
        return cls.from_json(delivery.payload["notice"])
