"""Alerts handed to the API server (``POST /api/v1/alerts/alertmanager`` and
``POST /api/v1/alerts``): each is stored in the trigger inbox for the service it names, as
the webhook listener of a run stores it (triggers/listener_inbox.py), and the service's
running deploy or watch is rung to read it at once.

An alert is for the service that ``service`` names (the endpoint's ``?service=``), else the
service of its ``service`` label. A plan with ``environments:`` keys its runs
``service@environment`` (``shop@staging``), so the environment that ``environment`` names
(``?environment=``), else the alert's ``environment`` label, is added to a service that
does not name one already (:func:`service_of`). All the alerts of one request are stored,
or none (one transaction). What acts on one is the run's watcher (triggers/watcher.py): a
firing alert that matches an ``alertmanager:`` trigger of the plan backs the service out,
once per firing; a resolved one, or a copy of one that already made a run back out, is
journalled and nothing more. The answer says what was stored, for which run, and which
alerts are copies of one that already acted (``duplicate_of``).

A generic alert (any sender, not Alertmanager) is made into a one-alert webhook first, so
both go through the one path and the watcher cannot tell them apart.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backout.commands.caller import Caller
from backout.engine.queries import watching_run
from backout.errors import Conflict, UsageError
from backout.spec.fields import NAME_PATTERN
from backout.store import audit, inbox
from backout.triggers.alerts import Alert, WebhookPayload, parse_time
from backout.triggers.listener_inbox import put_alert

WARM_UP_SERVICE = "-"  # no service is named so (names start with a letter or digit)

SERVICE_LABEL = "service"
ENVIRONMENT_LABEL = "environment"
MAX_SERVICE = 200  # the inbox's column
GENERIC_RECEIVER = "api"  # the webhook ``receiver`` a generic alert is given
AUDITED = "trigger.alert"


class GenericAlert(BaseModel):
    """One alert from any sender, in a form a script can write by hand."""

    model_config = ConfigDict(extra="forbid")

    service: str = Field(min_length=1, max_length=MAX_SERVICE, description="The service.")
    alertname: str = Field(
        min_length=1, max_length=200, description="What is wrong (the `alertname` label)."
    )
    status: Literal["firing", "resolved"] = "firing"
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="More labels, for the `match`/`match_re` of `alertmanager:` triggers.",
    )
    reason: str = Field("", max_length=2000, description="In plain words (its summary).")
    starts_at: str | None = Field(
        None,
        description="RFC 3339; when the problem began (default: now). Copies of one firing "
        "carry the same starts_at, and act once.",
    )
    fingerprint: str | None = Field(
        None, max_length=64, description="Identifies the alert (default: a hash of its labels)."
    )

    @field_validator("starts_at")
    @classmethod
    def _rfc3339(cls, value: str | None) -> str | None:
        if value is not None:
            parse_time(value)
        return value

    def webhook(self, actor: str) -> WebhookPayload:
        """This alert as a one-alert Alertmanager webhook (version 4)."""
        labels = {**self.labels, "alertname": self.alertname, SERVICE_LABEL: self.service}
        annotations = {"summary": self.reason} if self.reason else {}
        starts = self.starts_at or dt.datetime.now(tz=dt.UTC).isoformat()
        alert = Alert(
            status=self.status,
            labels=labels,
            annotations=annotations,
            startsAt=starts,
            fingerprint=self.fingerprint or "",
        )
        return WebhookPayload(
            version="4",
            groupKey=f"api:{actor}",
            status=self.status,
            receiver=GENERIC_RECEIVER,
            alerts=[alert],
        )


@dataclass(frozen=True)
class StoredAlert:
    """One alert in the inbox: for which service and run, and whether it is a copy of one
    that already made a run back out (that run's id)."""

    inbox_id: int
    service: str
    alertname: str
    status: str
    fingerprint: str
    starts_at: str
    run_id: str | None  # the running deploy or watch rung for it; None: none was running
    duplicate_of: str | None


@dataclass(frozen=True)
class AlertDelivery:
    """What the inbox did with one request's alerts."""

    alerts: list[StoredAlert]

    def to_json(self) -> dict[str, Any]:
        rung = {(a.service, a.run_id) for a in self.alerts if a.run_id is not None}
        unwatched = {a.service for a in self.alerts if a.run_id is None}
        return {
            "stored": len(self.alerts),
            "firing": sum(a.status == "firing" for a in self.alerts),
            "resolved": sum(a.status == "resolved" for a in self.alerts),
            "duplicates": sum(a.duplicate_of is not None for a in self.alerts),
            "rung": [{"service": s, "run_id": r} for s, r in sorted(rung)],
            "unwatched": sorted(unwatched),
            "alerts": [asdict(a) for a in self.alerts],
        }


def service_of(
    alert: Alert, index: int, service: str | None = None, environment: str | None = None
) -> str:
    """The service ``alert`` is for, as runs key it: ``service`` if given, else its
    ``service`` label; with the environment ``environment`` names, else its ``environment``
    label, as ``service@environment`` (unless the service names its environment already)."""
    name = service if service is not None else alert.labels.get(SERVICE_LABEL)
    where = "service" if service is not None else f"alerts.{index}.labels.{SERVICE_LABEL}"
    if not name or not name.strip():
        raise UsageError(
            f"{where}: the alert names no service",
            hint=f"give the alert a {SERVICE_LABEL!r} label, or POST to "
            "/api/v1/alerts/alertmanager?service=NAME",
        )
    if "@" not in name:
        name = _in_environment(name, alert, index, environment)
    if len(name) > MAX_SERVICE:
        raise UsageError(
            f"{where}: a service name is at most {MAX_SERVICE} characters"
            + (f" ({name!r} with its environment)" if "@" in name else ""),
            hint="name the service as its plan does",
        )
    return name


def _in_environment(name: str, alert: Alert, index: int, environment: str | None) -> str:
    """``name@ENV`` for the environment given, else the alert's label; ``name`` without one
    (an empty label is no label, as in Prometheus)."""
    label = alert.labels.get(ENVIRONMENT_LABEL)
    given = environment if environment is not None else label
    if not given:
        return name
    where = f"alerts.{index}.labels.{ENVIRONMENT_LABEL}" if environment is None else "environment"
    if len(given) > MAX_SERVICE or not re.fullmatch(NAME_PATTERN, given):
        raise UsageError(
            f"{where}: {given[:60]!r} is not an environment's name (letters, digits, '.', "
            f"'_' or '-', at most {MAX_SERVICE} characters)",
            hint="name the environment as the plan's `environments:` does, e.g. staging",
        )
    return f"{name}@{given}"


def deliver_alerts(
    caller: Caller,
    payload: WebhookPayload,
    service: str | None = None,
    source: str = "api",
    environment: str | None = None,
) -> AlertDelivery:
    """Store every alert of ``payload`` for its service's running deploy or watch (all or
    none), audited once per service; the runs are rung when the transaction commits."""
    services = [
        service_of(alert, i, service, environment) for i, alert in enumerate(payload.alerts)
    ]
    stored: list[StoredAlert] = []
    with caller.store.session() as session:
        runs: dict[str, str | None] = {}
        for name in dict.fromkeys(services):
            try:
                runs[name] = watching_run(session, name).id
            except Conflict:
                runs[name] = None  # kept all the same: the record of what was sent
        for alert, name in zip(payload.alerts, services, strict=True):
            earlier = inbox.acted_on(session, name, alert.key)
            row = put_alert(session, name, alert, payload, runs[name], caller.actor)
            fingerprint, starts_at = alert.key
            stored.append(
                StoredAlert(
                    row.id,
                    name,
                    alert.name,
                    alert.status,
                    fingerprint,
                    starts_at,
                    runs[name],
                    earlier.run_id if earlier else None,
                )
            )
        for name, run_id in runs.items():
            mine = [a for a in stored if a.service == name]
            audit.append(
                session,
                caller.actor,
                AUDITED,
                f"run:{run_id}" if run_id else f"service:{name}",
                {
                    "service": name,
                    "source": source,
                    "receiver": payload.receiver,
                    "group_key": payload.groupKey[:200],
                    "alerts": [f"{a.alertname} ({a.status})" for a in mine][:50],
                },
            )
    return AlertDelivery(stored)


def warm_up(caller: Caller) -> None:
    """Make the reads an alert's delivery makes, for a service no run has (nothing is
    written): a process compiles each statement the first time it runs it, tens of
    milliseconds on this path, and a server's first alert should cost what any other does.
    """
    with caller.store.session(read_only=True) as session:
        with contextlib.suppress(Conflict):
            watching_run(session, WARM_UP_SERVICE)
        inbox.acted_on(session, WARM_UP_SERVICE, ("", ""))
