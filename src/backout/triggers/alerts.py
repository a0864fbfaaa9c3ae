"""Alertmanager's webhook payload (version 4) and label matching for `alertmanager:` triggers.

The shape is Alertmanager's documented ``webhook_config`` body: ``version``, ``groupKey``,
``status``, ``receiver``, ``groupLabels``, ``commonLabels``, ``commonAnnotations``,
``externalURL`` and ``alerts`` (each with ``status``, ``labels``, ``annotations``,
``startsAt``, ``endsAt``, ``generatorURL``, ``fingerprint``).

An alert is identified by its ``fingerprint`` (Alertmanager's hash of its labels) and its
``startsAt``: every Alertmanager of an HA set, and every repeat of a notification, sends
the same pair for the same firing, while the same labels firing again later get a new
``startsAt``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


def parse_time(text: str) -> dt.datetime:
    """An RFC 3339 time with its offset (Go sends nanoseconds; microseconds are kept)."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an RFC 3339 time") from None
    if when.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset (RFC 3339 needs one, e.g. Z)")
    return when.astimezone(dt.UTC)


class Alert(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str
    endsAt: str = ""
    generatorURL: str = ""
    fingerprint: str = Field(default="", max_length=64)

    @field_validator("startsAt")
    @classmethod
    def _rfc3339(cls, value: str) -> str:
        parse_time(value)
        return value

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "alert")

    @property
    def key(self) -> tuple[str, str]:
        """(fingerprint, startsAt in UTC): the same for every copy of one firing. Members of
        an HA set may print the same instant in different zones, hence the normalisation."""
        fingerprint = self.fingerprint or _labels_hash(self.labels)
        return fingerprint, parse_time(self.startsAt).isoformat(timespec="microseconds")

    def entry(self, payload: WebhookPayload) -> dict[str, Any]:
        """What the trigger inbox keeps of this alert (JSON)."""
        fingerprint, starts_at = self.key
        return {
            "status": self.status,
            "labels": self.labels,
            "annotations": self.annotations,
            "fingerprint": fingerprint,
            "starts_at": starts_at,
            "starts_ts": parse_time(self.startsAt).timestamp(),
            "generator_url": self.generatorURL,
            "group_key": payload.groupKey,
            "delivered_by": payload.externalURL,
        }


def _labels_hash(labels: dict[str, str]) -> str:
    """A stand-in fingerprint for senders that leave it out (Alertmanager always sends it)."""
    canonical = json.dumps(labels, sort_keys=True, separators=(",", ":"))
    return "labels:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


class WebhookPayload(BaseModel):
    model_config = ConfigDict(extra="allow")

    version: Literal["4"]
    groupKey: str
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    truncatedAlerts: int = 0
    alerts: list[Alert]


def matches(options: dict[str, Any], labels: dict[str, str]) -> bool:
    """Every ``match`` label equal, every ``match_re`` label a full regex match."""
    equal = options.get("match", {}) or {}
    regex = options.get("match_re", {}) or {}
    if any(labels.get(key) != value for key, value in equal.items()):
        return False
    return all(re.fullmatch(pattern, labels.get(key, "")) for key, pattern in regex.items())
