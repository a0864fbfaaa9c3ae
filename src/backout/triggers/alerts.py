"""Alertmanager's webhook payload (version 4) and label matching for `alertmanager:` triggers.

The shape is Alertmanager's documented ``webhook_config`` body: ``version``, ``groupKey``,
``status``, ``receiver``, ``groupLabels``, ``commonLabels``, ``commonAnnotations``,
``externalURL`` and ``alerts`` (each with ``status``, ``labels``, ``annotations``,
``startsAt``, ``endsAt``, ``generatorURL``, ``fingerprint``).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Alert(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str
    endsAt: str = ""
    generatorURL: str = ""
    fingerprint: str = ""


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
