"""Plan models of telling people and handing over: ``notify:`` (channels, routes, messages,
contacts, escalation, update reminders), ``status_page:`` and ``disaster_recovery:``."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from backout.kernel.events import NOTIFY_EVENTS
from backout.spec.fields import Duration, Kinded, Model


class NotifyChannel(Kinded):
    """One destination: a channel kind (slack, pagerduty, teams, webhook, email …) with its
    options. Option values may be templates reading ``secrets`` and ``environment``
    (``"{{ secrets.slack_webhook }}"``); they are rendered when a message is sent."""


class NotifyRoute(Model):
    events: list[str] = Field(
        min_length=1, description="Notify events to send (`backout notify events`), or `*`."
    )
    to: list[str] = Field(min_length=1, description="Names of `notify.channels` to send them to.")
    environments: list[str] | None = Field(
        None, description="Only for runs in these environments (e.g. page only in production)."
    )

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        unknown = [e for e in value if e != "*" and e not in NOTIFY_EVENTS]
        if unknown:
            raise ValueError(
                f"unknown notify event {unknown[0]!r}; expected `*` or one of "
                + ", ".join(NOTIFY_EVENTS)
            )
        return value


class EscalationLevel(Model):
    after: Duration = Field(
        description="How long the run may wait unacknowledged before this level is told."
    )
    roles: list[str] = Field(min_length=1, description="Roles of `notify.contacts` to call on.")
    to: list[str] = Field(min_length=1, description="Channels to tell them through.")


class UpdateCadence(Model):
    role: str = Field(description="The role of `notify.contacts` that posts updates (comms).")
    to: list[str] = Field(min_length=1, description="Channels the reminders go to.")
    first_within: Duration = Field(
        300.0, description="The first update is due this long after the trigger fired."
    )
    every: Duration | None = Field(
        None, description="Then one is due this long after the last, until the run is resolved."
    )


class Notify(Model):
    channels: dict[str, NotifyChannel] = Field(
        default_factory=dict, description="Named destinations, each one channel kind."
    )
    routes: list[NotifyRoute] = Field(
        default_factory=list, description="Which events go to which channels."
    )
    messages: dict[str, str] = Field(
        default_factory=dict,
        description="Per notify event, a template replacing the built-in message text.",
    )
    links: dict[str, str] = Field(
        default_factory=dict,
        description="Links every message carries, label -> URL (a dashboard, the status page).",
    )
    contacts: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Role -> channel -> who to mention there (a Slack <@U…>, an email login).",
    )
    escalation: list[EscalationLevel] = Field(
        default_factory=list,
        description="Who is called on, and when, while a run waits for a person and nobody "
        "has run `backout ack`.",
    )
    updates: UpdateCadence | None = Field(
        None, description="Remind the comms role to post updates (`backout notify update`)."
    )

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, value: dict[str, NotifyChannel]) -> dict[str, NotifyChannel]:
        for name in value:
            if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_-]*$", name):  # no '.': delivery keys
                raise ValueError(f"channel {name!r}: use letters, digits, '_' or '-'")
        return value

    @field_validator("messages")
    @classmethod
    def _message_events(cls, value: dict[str, str]) -> dict[str, str]:
        for event in value:
            if event not in NOTIFY_EVENTS:
                raise ValueError(
                    f"messages.{event}: not a notify event; expected one of "
                    + ", ".join(NOTIFY_EVENTS)
                )
        return value

    @model_validator(mode="after")
    def _names_are_declared(self) -> Notify:
        known = ", ".join(self.channels) or "none declared"
        places = [(f"routes[{i}].to", r.to) for i, r in enumerate(self.routes)]
        places += [(f"escalation[{i}].to", e.to) for i, e in enumerate(self.escalation)]
        places += [("updates.to", self.updates.to)] if self.updates else []
        places += [(f"contacts.{role}", list(c)) for role, c in self.contacts.items()]
        for where, names in places:
            for name in names:
                if name not in self.channels:
                    raise ValueError(
                        f"{where}: no channel named {name!r} in notify.channels (declared: {known})"
                    )
        roles = ", ".join(self.contacts) or "none declared"
        wanted = [(f"escalation[{i}].roles", e.roles) for i, e in enumerate(self.escalation)]
        wanted += [("updates.role", [self.updates.role])] if self.updates else []
        for where, names in wanted:
            for name in names:
                if name not in self.contacts:
                    raise ValueError(
                        f"{where}: no role {name!r} in notify.contacts (declared: {roles})"
                    )
        return self


class StatusPage(Model):
    """How the service appears on the status page (``backout status-page build``): its
    component, and how long a recovered incident stays in monitoring."""

    component: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="The component's name on the page (default: the service, shown as "
        "`shop` or `shop (production)`).",
    )
    group: str | None = Field(
        None, min_length=1, max_length=200, description="The component group it is shown in."
    )
    internal: bool = Field(
        False,
        description="Never published: its component, incidents and updates stay off the "
        "page, the JSON and the feed (`backout incident list` still shows them).",
    )
    quiet: Duration = Field(
        1800.0,
        description="A monitoring incident with no new update for this long is resolved.",
    )
    description: str | None = Field(
        None, max_length=500, description="A line shown with the component on the page."
    )
    maintenance: bool = Field(
        False,
        description="Announce change windows: an approved change of the service with a "
        "`--window` is shown as scheduled maintenance, and the component is under "
        "maintenance while the window is open or the change is in progress.",
    )


class DisasterRecovery(Model):
    """Who takes over when the way back itself fails, and with what."""

    owner: str = Field(
        min_length=1,
        description="Who owns disaster recovery: a role of notify.contacts, or a name.",
    )
    runbook: str | None = Field(None, description="A link to the disaster-recovery runbook.")
    plan: str | None = Field(
        None, description="A backout plan file that recovers (relative to this plan)."
    )
    auto: bool = Field(
        False,
        description="Start `plan` at once when the backout fails, if its own gate passes "
        "(it validates, and a drill is not due).",
    )
    page: list[str] = Field(
        default_factory=list,
        description="Channels of notify.channels told of the hand-off (the owner mentioned).",
    )

    @model_validator(mode="after")
    def _auto_needs_a_plan(self) -> DisasterRecovery:
        if self.auto and not self.plan:
            raise ValueError("`auto: true` starts `plan:`; name the recovery plan file")
        return self
